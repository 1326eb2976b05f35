"""The PyTorch backend: the whole pipeline as a few batched tensor operations.

``Pipeline.compile("torch", layout="NCHW", device=None, jit=False)``.

- Images are torch tensors (or anything ``torch.as_tensor`` reads), NCHW (the
  default) or NHWC logical layout; channels_last memory works. uint8, float16,
  bfloat16, float32 and float64 are accepted; the computation is float32.
- Device: with ``device=None`` the work happens on the images' device and the
  outputs stay there; with ``device="cuda"`` (say) inputs are moved there first
  (non-blocking) and the outputs live there. Params are drawn on that device
  from the counter vector (cached per batch and image shape) and the key, an
  int64 tensor copied from pinned memory: nothing in a call waits for the device.
- Geometry: the pixel-frame inverse matrix is turned into the normalized frame
  of ``grid_sample`` with ``align_corners=False`` (pixel centres map exactly);
  zeros padding, and a fill ``f`` as ``warp(x - f) + f``.
- Eager mode runs ``TorchPlan``: the planner's stages with the uint8 scale
  folded into the first linear stage, colour maps as one batched matmul (CPU) or
  C unrolled multiply-adds (GPU, and under compile: inductor fuses them), masks
  and Normalize in place on private buffers reused across calls, the partner
  gather and the blend as one ``lerp``. ``jit=True`` compiles sample + apply
  with ``torch.compile(fullgraph=True)`` on the generic stages (inductor fuses them);
  ``jit="cudagraph"`` captures the eager call in a CUDA graph.
- Params come from ``FastSampler``: the core sampler's values with ~140 kernels
  instead of ~900 (one uniform pass, every Beta draw in one vectorized Gamma).
- CPU memory: a batch over ``TorchPlan.CPU_CHUNK_BYTES`` (6 MiB of float32) runs its
  leading per-sample stages, and a mix right after them, chunk by chunk, so each
  chunk's intermediates stay in the cache (the params are drawn for the whole batch
  first, so the values do not change). Large outputs are advised as huge pages, and
  an output of an earlier call that nothing references any more is written again
  instead of faulting in fresh pages (``_Buffers.fresh``). Together they keep the
  cost per image flat from batch 32 to 256 at 224².
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import InputError, InputTypeError, SpecError
from ..core.ops.mix import CutMix, MixUp
from ..core.plan import Plan, affine_inverse
from ..core.run import Run
from ..core.spec import Context
from ..distributed import default_rank
from .base import Backend

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "uint8": torch.uint8,
           "bool": torch.bool, "float16": torch.float16, "bfloat16": torch.bfloat16, "int32": torch.int32}


def _is_identity(m: Any) -> Any:
    """(N,) bool: which (N, 3, 3) matrices are exactly the identity."""
    return (m == torch.eye(3, dtype=m.dtype, device=m.device)).flatten(1).all(dim=1)


def to_device(t: Any, device: Any) -> Any:
    """A host tensor on ``device`` without waiting for the device: CPU tensors as they
    are, others through pinned memory with a non-blocking copy."""
    device = torch.device(device)
    if device.type == "cpu":
        return t
    if device.type == "cuda" and torch.cuda.is_available():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


@torch.library.custom_op("augspec::grid_sample", mutates_args=())
def _grid_sample_op(x: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """``grid_sample`` (align_corners=False) as an op the compiler keeps whole: on the
    CPU, aten's vectorized kernel beats inductor's decomposition."""
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


@_grid_sample_op.register_fake
def _(x: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    return x.new_empty((x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]))


#: devices where a compiled pipeline keeps the warp as one extern kernel (``augspec::grid_sample``)
EXTERN_WARP_DEVICES = {"cpu"}

#: ``Affine.fill_mode`` as ``grid_sample``'s padding: with align_corners=False "border"
#: clamps the coordinate to the edge pixels' centres, the same as clamping the taps, and
#: "reflection" mirrors it about the image edge (-0.5, W - 0.5), the same as mirroring the
#: taps (index -1 reads 0) of a linear interpolation
PADDING = {"constant": "zeros", "nearest": "border", "reflect": "reflection"}


def _warp_nearest(x: Any, inverse: Any, fill: Any, fill_mode: str) -> Any:
    """Nearest-pixel warp of NCHW ``x`` by gathering, with the reference's rule exactly:
    the source index is ``floor(u + 1/2)`` of the float64 continuous index ``u``
    (ties round up; ``grid_sample`` rounds them to even), mapped by ``fill_mode``;
    ``fill`` (C,) is read outside the image in "constant" mode."""
    n, c, h, w = x.shape
    inv = inverse.to(torch.float64)
    jj = torch.arange(w, device=x.device, dtype=torch.float64) + 0.5
    ii = torch.arange(h, device=x.device, dtype=torch.float64) + 0.5

    def index(r: int, size: int) -> tuple[Any, Any]:
        s = inv[:, r, 0, None, None] * jj[None, None, :] + inv[:, r, 1, None, None] * ii[None, :, None] + inv[:, r, 2, None, None]
        i = torch.floor((s - 0.5) + 0.5)
        if fill_mode == "nearest":
            i = i.clamp(0, size - 1)
        elif fill_mode == "reflect":  # half-sample symmetric: period 2 size
            i = torch.remainder(i.clamp(-(2.0 ** 40), 2.0 ** 40), 2 * size)
            i = torch.where(i >= size, 2 * size - 1 - i, i)
        valid = (i >= 0) & (i <= size - 1)
        return i.clamp(0, size - 1).to(torch.int64), valid

    ui, uvalid = index(0, w)
    vi, vvalid = index(1, h)
    idx = (vi * w + ui).reshape(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, idx).view(n, c, h, w)
    if fill_mode == "constant":
        out = torch.where((uvalid & vvalid)[:, None], out, fill.to(out.dtype).reshape(1, -1, 1, 1))
    return out


def _grid_sample(x: Any, grid: Any, mode: str, padding: str = "zeros") -> Any:
    if x.device.type in EXTERN_WARP_DEVICES and not x.requires_grad and _compiling():
        return _grid_sample_op(x, grid, mode, padding)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def _resample(B: Any, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...], fill_mode: str,
              grid_out: Any = None) -> Any:
    """NCHW ``x`` sampled at the pixel-frame ``inverse`` (the warp of both the generic
    and the eager path): nearest by gathering (``_warp_nearest``), bilinear with
    ``grid_sample`` (its padding for "nearest" / "reflect", a fill ``f`` as
    ``warp(x - f) + f``). ``grid_out`` is a buffer for the grid."""
    n, c, h, w = x.shape
    if interpolation == "nearest":
        fv = B.asarray(tuple(float(v) for v in fill), "float32")
        return _warp_nearest(x, inverse, fv.expand(c) if fv.numel() == 1 else fv, fill_mode)
    grid = B.sample_grid(inverse, n, h, w, x.dtype, out=grid_out)
    if fill_mode != "constant":
        return _grid_sample(x, grid, "bilinear", PADDING[fill_mode])
    if any(v != 0.0 for v in fill):
        f = B.asarray(tuple(float(v) for v in fill), "float32").to(x.dtype).reshape(1, -1, 1, 1)
        return _grid_sample(x - f, grid, "bilinear").add_(f)
    return _grid_sample(x, grid, "bilinear")


#: at most this many tensors in ``TorchBackend.asarray``'s constant cache
_CONST_ENTRIES = 256

#: channel counts up to this get the unrolled (elementwise) colour map on a GPU / under compile
_SMALL_C = 4


def _color_affine_unrolled(x: Any, a: Any, t: Any, nhwc: bool, out: Any = None) -> Any:
    """``out_c = sum_j a[:, c, j] x_j + t_c`` as C broadcast multiply-adds over the image.

    Traced (``torch.compile``) or with autograd: one expression that inductor fuses into
    its neighbours. Eager: ``addcmul`` into one destination (C passes, no temporaries)."""
    c = a.shape[1]
    if nhwc:
        cols = [a[:, None, None, :, j] for j in range(c)]  # (N, 1, 1, C): column j of A
        xs = [x[..., j:j + 1] for j in range(c)]  # (N, H, W, 1): channel j
        tt = t[:, None, None, :]
    else:
        cols = [a[:, :, j, None, None] for j in range(c)]  # (N, C, 1, 1)
        xs = [x[:, j:j + 1] for j in range(c)]  # (N, 1, H, W)
        tt = t[:, :, None, None]
    if _compiling() or (torch.is_grad_enabled() and (x.requires_grad or a.requires_grad or t.requires_grad)):
        r = cols[0] * xs[0]
        for j in range(1, c):
            r = r + cols[j] * xs[j]
        return r + tt
    dst = torch.addcmul(tt, cols[0], xs[0]) if out is None else torch.addcmul(tt, cols[0], xs[0], out=out)
    for j in range(1, c):
        dst.addcmul_(cols[j], xs[j])
    return dst


def _mode() -> bool:
    """Part of every cache key: a tensor made under ``torch.inference_mode`` cannot be
    written, or saved for backward, outside it."""
    return torch.is_inference_mode_enabled()


def _compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - old torch
        return False


class TorchBackend(Backend):
    """Primitives on torch tensors. ``device``: where inputs are moved (None: stay put);
    ``jit``: False, True (``torch.compile(fullgraph=True)``), a mode string such as
    ``"reduce-overhead"``, or a dict of ``torch.compile`` keyword arguments."""

    name = "torch"
    array_module = "torch"

    def __init__(self, layout: str = "NCHW", device: Any = None, jit: Any = False, **options: Any):
        super().__init__(layout, **options)
        try:
            self.device = torch.device(device) if device is not None else None
        except (RuntimeError, TypeError) as e:
            raise SpecError(f"torch backend: device={device!r} is not a torch device ({e})") from None
        if not (isinstance(jit, (bool, str, dict))):
            raise SpecError(f"torch backend: jit must be True, False, a torch.compile mode or a dict, got {jit!r}")
        self.jit = jit
        #: the device of the call in progress (set by TorchRun from the images)
        self.current = self.device or torch.device("cpu")
        #: ``asarray``'s constant cache, least recently used first: (tensor, weakref to the
        #: array or None); big arrays are keyed by identity and dropped when the array dies
        self._consts: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()

    def make_run(self, pipeline: Any, **run_options: Any) -> TorchRun:
        return TorchRun(pipeline, self, **run_options)

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        if isinstance(images, torch.Tensor):
            x = images
        else:
            mod = type(images).__module__.split(".")[0]
            if mod in ("tensorflow", "jax", "jaxlib"):
                raise InputTypeError(f"torch backend: got a {mod} array; convert it with .numpy() first")
            try:
                x = torch.as_tensor(np.asarray(images))
            except Exception as e:
                raise InputTypeError(f"torch backend: cannot read the images as a tensor ({e})") from None
        if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16,
                                                                       torch.int32, torch.int64, torch.bool)):
            raise InputTypeError(f"torch backend: images of dtype {x.dtype} are not numbers")
        if self.device is not None and x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        return x

    def as_labels(self, labels: Any) -> Any:
        if isinstance(labels, torch.Tensor):
            y = labels
        else:
            try:
                y = torch.as_tensor(np.asarray(labels))
            except Exception as e:
                raise InputTypeError(f"torch backend: cannot read the labels as a tensor ({e})") from None
        if y.device != self.current:
            y = y.to(self.current, non_blocking=True)
        return y

    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None:
        """On the CPU, checked through a NumPy view (no dispatch); elsewhere None: a check would sync."""
        if ids.device.type != "cpu":
            return None
        a = ids.detach().resolve_conj().resolve_neg().numpy()
        return bool(a.size == 0 or (a.min() >= 0 and a.max() < num_classes))

    def asarray(self, v: Any, dtype: str | None = None) -> Any:
        dt = _DTYPES[dtype] if dtype else None
        dev = self.current
        if isinstance(v, torch.Tensor):
            return v.to(device=dev, dtype=dt or v.dtype)
        if _compiling():
            return torch.as_tensor(v, dtype=dt, device=dev)
        if isinstance(v, (bool, int, float)):  # filled on the device: no copy
            return torch.full((), v, dtype=dt or torch.as_tensor(v).dtype, device=dev)
        by_id = isinstance(v, np.ndarray) and v.size > 4096
        if by_id and dev.type == "cpu":  # a CPU tensor of a big array is (at most) one copy: nothing to save
            return torch.as_tensor(v, dtype=dt)
        if isinstance(v, np.ndarray):  # small arrays by value (kernels may rebuild them), big ones by identity
            key = (("np", id(v)) if by_id else ("npv", v.tobytes())) + (v.shape, str(v.dtype), dtype, dev, _mode())
        else:
            try:
                key = ("v", v if isinstance(v, tuple) else tuple(v), dtype, dev, _mode())
                hash(key)
            except TypeError:
                key = None
        consts = self._consts
        if key is not None:
            hit = consts.get(key)
            if hit is not None and (hit[1] is None or hit[1]() is v):
                try:
                    consts.move_to_end(key)
                except KeyError:  # pragma: no cover - evicted by another thread meanwhile
                    pass
                return hit[0]
        t = to_device(torch.as_tensor(np.asarray(v), dtype=dt), dev)
        if key is not None:
            ref = None
            if by_id:  # the entry lives as long as the array (a fresh array per call keeps nothing)
                def drop(r: Any, k: Any = key, d: Any = consts) -> None:
                    e = d.get(k)
                    if e is not None and e[1] is r:
                        d.pop(k, None)

                try:
                    ref = weakref.ref(v, drop)
                except TypeError:  # pragma: no cover - an ndarray subclass without weakref support
                    return t
            consts[key] = (t, ref)
            while len(consts) > _CONST_ENTRIES:  # least recently used first
                consts.popitem(last=False)
        return t

    def cast(self, x: Any, dtype: str) -> Any:
        if not isinstance(x, torch.Tensor):
            return self.asarray(x, dtype)
        return x.to(_DTYPES[dtype])

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).replace("torch.", "")

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(x.shape)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype == torch.bfloat16:
                x = x.float()
            return x.numpy()
        return np.asarray(x)

    # ---------------------------------------------------------------- basics
    def arange(self, n: int, dtype: str = "int64") -> Any:
        return torch.arange(n, dtype=_DTYPES[dtype], device=self.current)

    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return torch.ones(tuple(shape), dtype=_DTYPES[dtype], device=self.current)

    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return torch.zeros(tuple(shape), dtype=_DTYPES[dtype], device=self.current)

    def eye(self, n: int, dtype: str = "float32") -> Any:
        return torch.eye(n, dtype=_DTYPES[dtype], device=self.current)

    def _t(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x
        if isinstance(x, (bool, int, float)):
            return torch.full((), x, device=self.current)  # no host-to-device copy
        return self.asarray(x)

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return torch.reshape(self._t(x), tuple(shape))

    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        return self._t(x).expand(tuple(shape))

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return self._t(x).permute(tuple(axes))

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return torch.stack([self._t(v) for v in xs], dim=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return torch.cat([self._t(v) for v in xs], dim=axis)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return torch.where(cond, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return torch.clamp(self._t(x), lo, hi)

    def floor(self, x: Any) -> Any:
        return torch.floor(self._t(x))

    def sqrt(self, x: Any) -> Any:
        return torch.sqrt(self._t(x))

    def log(self, x: Any) -> Any:
        return torch.log(self._t(x))

    def exp(self, x: Any) -> Any:
        return torch.exp(self._t(x))

    def cos(self, x: Any) -> Any:
        return torch.cos(self._t(x))

    def sin(self, x: Any) -> Any:
        return torch.sin(self._t(x))

    def tan(self, x: Any) -> Any:
        return torch.tan(self._t(x))

    def minimum(self, a: Any, b: Any) -> Any:
        if not isinstance(b, torch.Tensor):
            return torch.clamp(a, max=b)
        if not isinstance(a, torch.Tensor):
            return torch.clamp(b, max=a)
        return torch.minimum(a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        if not isinstance(b, torch.Tensor):
            return torch.clamp(a, min=b)
        if not isinstance(a, torch.Tensor):
            return torch.clamp(b, min=a)
        return torch.maximum(a, b)

    def matmul(self, a: Any, b: Any) -> Any:
        return torch.matmul(a, b)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = x if x.dtype == torch.float64 else x.float()
        out = x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)
        return out.float()

    def any(self, x: Any, axis: Any = None) -> Any:
        return x.any() if axis is None else x.any(dim=axis)

    def argsort(self, x: Any) -> Any:
        return torch.argsort(x, stable=True)

    def take(self, x: Any, idx: Any) -> Any:
        return torch.index_select(x, 0, idx)

    def bitxor(self, a: Any, b: Any) -> Any:
        return torch.bitwise_xor(a, b)

    def bitand(self, a: Any, b: Any) -> Any:
        return torch.bitwise_and(a, b)

    def shr(self, a: Any, n: int) -> Any:
        return torch.bitwise_right_shift(a, n)

    def logical_xor(self, a: Any, b: Any) -> Any:
        return torch.logical_xor(a, b)

    def logical_not(self, a: Any) -> Any:
        return torch.logical_not(a)

    def one_hot(self, ids: Any, k: int) -> Any:
        # a comparison, not F.one_hot (which checks the range on the host) nor scatter (device assert)
        return (ids.reshape(-1, 1) == torch.arange(k, device=ids.device).reshape(1, -1)).float()

    # ---------------------------------------------------------------- images
    def flip(self, x: Any, axis: str) -> Any:
        ax = self._spatial_axes()[1 if axis == "w" else 0]
        return torch.flip(x, dims=(ax,))

    def channel_mean(self, x: Any) -> Any:
        return x.mean(dim=self._spatial_axes())

    def color_affine(self, x: Any, a: Any, t: Any, out: Any = None) -> Any:
        """``A x + t`` per pixel (``out``: an optional buffer shaped like ``x``).

        With few channels (C <= 4) on a GPU or under ``torch.compile``: the unrolled
        broadcast form ``out_c = sum_j a[:, c, j] x_j + t_c`` (elementwise, so inductor
        fuses it with its neighbours; a batched GEMM with inner dimension C is slow on
        a GPU and stays an extern call). Eager on the CPU, or many channels: one
        batched matmul (the faster of the two there)."""
        a = a.to(x.dtype)
        t = t.to(x.dtype)
        nhwc = self.layout == "NHWC"
        if x.shape[-1 if nhwc else 1] <= _SMALL_C and (x.device.type != "cpu" or _compiling()):
            return _color_affine_unrolled(x, a, t, nhwc, out)
        if nhwc:
            n, h, w, c = x.shape
            r = torch.baddbmm(t[:, None, :], x.reshape(n, h * w, c), a.transpose(1, 2))
            return r.view(n, h, w, c)
        n, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            xv = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
            r = torch.baddbmm(t[:, None, :], xv, a.transpose(1, 2))
            return r.view(n, h, w, c).permute(0, 3, 1, 2)
        if out is not None:
            torch.baddbmm(t[:, :, None], a, x.reshape(n, c, h * w), out=out.view(n, c, h * w))
            return out
        return torch.baddbmm(t[:, :, None], a, x.reshape(n, c, h * w)).view(n, c, h, w)

    def sample_grid(self, inverse: Any, n: int, h: int, w: int, dtype: Any, out: Any = None) -> Any:
        """The ``grid_sample`` grid (N, H, W, 2) of a pixel-frame inverse matrix.

        With ``align_corners=False`` a normalized coordinate g is the pixel-frame
        coordinate ``(g + 1) W / 2``, and output pixel j has its centre at
        ``j + 0.5``, so the source coordinate of output pixel (i, j) is
        ``g_x = (2 / W) (a (j + 0.5) + b (i + 0.5) + c) - 1`` (likewise g_y): two
        broadcast multiply-adds over (N, H, W), no (N, H*W, 3) matmul."""
        inv = inverse.to(torch.float64) if inverse.device.type == "cpu" else inverse
        dev = inverse.device
        xs = (torch.arange(w, device=dev, dtype=inv.dtype) + 0.5).reshape(1, 1, w)
        ys = (torch.arange(h, device=dev, dtype=inv.dtype) + 0.5).reshape(1, h, 1)
        r = torch.stack([inv[:, 0, :] * (2.0 / w), inv[:, 1, :] * (2.0 / h)], dim=1)  # rows scaled
        r = torch.cat([r[:, :, :2], r[:, :, 2:] - 1.0], dim=-1).to(dtype)
        xs, ys = xs.to(dtype), ys.to(dtype)
        a, b, c = r[:, 0, 0, None, None], r[:, 0, 1, None, None], r[:, 0, 2, None, None]
        d, e, f = r[:, 1, 0, None, None], r[:, 1, 1, None, None], r[:, 1, 2, None, None]
        if _compiling() or out is None:
            gx = a * xs + (b * ys + c)
            gy = d * xs + (e * ys + f)
            return torch.stack([gx, gy], dim=-1)
        torch.addcmul(b * ys + c, xs, a, out=out[..., 0])
        torch.addcmul(d * xs + f, ys, e, out=out[..., 1])
        return out

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        nchw = self.layout == "NCHW"
        xs = x if nchw else x.permute(0, 3, 1, 2)
        out = _resample(self, xs, inverse, interpolation, fill, fill_mode)
        if interpolation != "nearest":
            # the identity reproduces the pixels exactly (grid_sample's normalized frame is off by an ulp)
            out = torch.where(_is_identity(inverse).reshape(-1, 1, 1, 1), xs, out)
        return out if nchw else out.permute(0, 2, 3, 1)


# ======================================================================= plan


#: how many earlier CPU outputs a run keeps for reuse (``_Buffers.fresh``)
RECYCLED_OUTPUTS = 2
_MADV_HUGEPAGE = 14
_HUGE = 2 << 20


def _madvise_huge() -> Any:
    """libc's ``madvise`` on Linux, else None."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # pragma: no cover
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_madvise = _madvise_huge()


def _empty_huge(shape: tuple[int, ...]) -> Any:
    """A fresh float32 CPU tensor whose pages are advised as transparent huge pages.

    A large allocation is a fresh mapping each time, and writing it first costs a
    page fault per 4 KiB page (~40,000 for one 224² batch of 256): huge pages cut
    that 512-fold, as NumPy does for its own large arrays. Where the advice is not
    taken (another OS, THP off) this is ``torch.empty``."""
    t = torch.empty(shape, dtype=torch.float32)
    nbytes = t.numel() * 4
    if _madvise is not None and nbytes >= 2 * _HUGE:
        start = -(-t.data_ptr() // _HUGE) * _HUGE
        length = (t.data_ptr() + nbytes - start) // _HUGE * _HUGE
        if length > 0:
            _madvise(start, length, _MADV_HUGEPAGE)  # advice only: a failure changes nothing
    return t


def _storage_refs(outputs: list[Any], i: int) -> tuple[int, int, int, int]:
    """The reference counts of ``outputs[i]``: Python and C++ of the tensor, Python
    and C++ of its storage (each including this function's own handles)."""
    st = outputs[i].untyped_storage()
    return sys.getrefcount(outputs[i]), outputs[i]._use_count(), sys.getrefcount(st), torch._C._storage_Use_Count(st._cdata)


def _unreferenced() -> tuple[int, int, int, int] | None:
    """The counts of a tensor that only a list references (measured: they differ across torch
    versions); None where this torch lacks the private counters (then nothing is reused)."""
    try:
        return _storage_refs([torch.empty(1)], 0)
    except (AttributeError, RuntimeError, TypeError):  # pragma: no cover - another torch
        return None


_UNREFERENCED = _unreferenced()


def _released(outputs: list[Any], i: int, shape: tuple[int, ...]) -> bool:
    """May ``outputs[i]``, an output of an earlier call, be written again as a ``shape`` output?

    Nothing but the list references it: no Python reference (a NumPy view holds one),
    no other tensor or view on its storage, no storage handle, DLPack capsule or weak
    reference, and not moved to shared memory (a DataLoader worker's batch is read by
    the main process). And the caller did not change it into something else: still a
    contiguous float32 tensor of that shape at the start of its own storage, outside
    autograd, and an inference tensor only inside ``torch.inference_mode``."""
    t = outputs[i]
    if _UNREFERENCED is None or (t.shape != shape or t.dtype != torch.float32 or t.requires_grad or t.storage_offset() != 0
            or not t.is_contiguous() or t.is_inference() != torch.is_inference_mode_enabled()):
        return False
    del t
    if _storage_refs(outputs, i) != _UNREFERENCED or weakref.getweakrefcount(outputs[i]):
        return False
    st = outputs[i].untyped_storage()
    return st.nbytes() == outputs[i].numel() * 4 and not st.is_shared()


def avoid_ptr(t: Any) -> int:
    return -1 if t is None else t.data_ptr()


class _Buffers(threading.local):
    """Private image buffers reused from call to call (never handed to the caller)."""

    def __init__(self) -> None:
        self.slots: dict[Any, Any] = {}
        #: a fresh tensor of this call that no stage reads any more (the warp's output):
        #: the last stage writes the result there instead of allocating
        self.spare: Any = None
        #: the index of the stage that writes this run's result, and where it must write
        #: it (a slice of the whole batch's output when the CPU runs chunk by chunk)
        self.last: int = -1
        self.out: Any = None
        #: the last large CPU outputs handed out, reused once the caller has let go of them
        self.recycle: list[Any] = []

    def fresh(self, shape: tuple[int, ...], device: Any) -> Any:
        """A float32 tensor for a call's output, never one the caller still holds.

        On the CPU a large fresh tensor is a fresh mapping, and writing it first costs
        a page fault per page (20 ms for a 224² batch of 256 even with huge pages):
        an output of an earlier call that nothing references any more (``_released``)
        is reused instead, as the CUDA caching allocator does on the GPU."""
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=torch.float32, device=device)
        for i in range(len(self.recycle)):
            if _released(self.recycle, i, shape):
                t = self.recycle.pop(i)
                self.recycle.append(t)
                return t
        t = _empty_huge(shape)
        if t.numel() * 4 >= _HUGE:
            self.recycle = [*self.recycle[-(RECYCLED_OUTPUTS - 1):], t] if RECYCLED_OUTPUTS > 1 else [t]
        return t

    def get(self, tag: str, like_shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
        key = (tag, like_shape, dtype, device, _mode())
        t = self.slots.get(key)
        if t is None:
            if len(self.slots) > 16:
                self.slots.clear()
            t = torch.empty(like_shape, dtype=dtype, device=device)
            self.slots[key] = t
        return t


class TorchPlan(Plan):
    """The planner's stages, run with fewer passes over the images (eager mode).

    The value of the images is ``scale * x`` where ``scale`` (1/255 for uint8 input)
    is folded into the first linear stage that follows (warp, colour map, Normalize,
    mix) instead of costing a pass of its own. Stages write into two private
    buffers in turn; the last image-writing stage writes a fresh tensor, so the
    output never aliases a buffer, and the caller's input is never written.
    """

    #: On the CPU a batch larger than this many bytes of float32 images runs its
    #: per-sample stages chunk by chunk, so that a chunk's intermediates stay in the
    #: cache between stages (a 256 x 224² batch is 154 MB per pass); the mixes and
    #: label stages then run on the whole batch. The values are the same: those
    #: stages treat every sample alone and the params are drawn for the whole batch.
    CPU_CHUNK_BYTES = 6 << 20

    def __init__(self, ops: Any, kernels: Any = None):
        super().__init__(ops, kernels)
        self.buffers = _Buffers()
        #: how many leading stages act on each sample alone: built-in ops of the
        #: per-sample families without a plugin kernel (a plugin kernel could look
        #: across the batch, so it ends the prefix)
        self.samplewise_prefix = 0
        for st in self.stages:
            if st.kind not in ("geometric", "color", "pixel", "region", "feature") or not all(
                    type(lf.op).__module__.startswith("augspec.") and lf.op.name not in self.kernels
                    for lf in st.leaves):
                break
            self.samplewise_prefix += 1

    # ------------------------------------------------------------- helpers
    def _is_last(self, i: int, fresh_out: bool) -> bool:
        return i == self.buffers.last and fresh_out

    def _in_place_ok(self, i: int, fresh_out: bool, x: Any) -> bool:
        """May stage ``i`` (given an owned ``x``) write its result over ``x``?"""
        if not self._is_last(i, fresh_out):
            return True
        out = self.buffers.out
        if out is not None:
            return x.data_ptr() == out.data_ptr()
        return x.data_ptr() not in self._buffer_ptrs()

    def _dest(self, i: int, fresh_out: bool, x: Any, avoid: Any = None) -> Any:
        """Where stage ``i`` writes an NCHW float32 image like ``x``."""
        if self._is_last(i, fresh_out):
            out = self.buffers.out
            if out is not None and out.shape == x.shape and out.data_ptr() not in (x.data_ptr(), avoid_ptr(avoid)):
                return out
            sp = self.buffers.spare
            if sp is not None and sp.shape == x.shape and sp.data_ptr() not in (x.data_ptr(), avoid_ptr(avoid)):
                self.buffers.spare = None
                return sp
            return self.buffers.fresh(tuple(x.shape), x.device)
        for tag in ("a", "b", "c"):
            buf = self.buffers.get(tag, tuple(x.shape), torch.float32, x.device)
            if buf.data_ptr() != x.data_ptr() and (avoid is None or buf.data_ptr() != avoid.data_ptr()):
                return buf
        raise AssertionError("no free buffer")  # pragma: no cover

    def run(self, B: TorchBackend, x: Any, scale: float, owned: bool, y: Any, params: Mapping[str, Any],
            ctx: Context, fuse: bool, fresh_out: bool, stages: tuple[int, int] | None = None,
            out: Any = None) -> tuple[Any, Any, float]:
        """Apply the stages ``range(*stages)`` (all by default); returns (x, y, scale)
        with the value ``scale * x``. With ``out`` (and ``fresh_out``) the result is
        written there."""
        lo, hi = stages if stages is not None else (0, len(self.stages))
        writes = [i for i in range(lo, hi) if self.stages[i].kind != "label"]
        buf = self.buffers
        buf.spare, buf.last, buf.out = None, (writes[-1] if writes else -1), (out if fresh_out else None)
        try:
            x, y, scale = self._run_stages(B, x, scale, owned, y, params, ctx, fuse, fresh_out, lo, hi)
            if buf.out is not None and x.data_ptr() != out.data_ptr():
                x = out.copy_(x)
            return x, y, scale
        finally:
            buf.spare, buf.last, buf.out = None, -1, None

    def run_chunked(self, B: TorchBackend, x: Any, dtype: str, y: Any, params: Mapping[str, Any], ctx: Context,
                    fuse: bool, fresh_out: bool) -> tuple[Any, Any, float] | None:
        """The CPU's cache-sized run (``CPU_CHUNK_BYTES``); None where it does not apply.

        The per-sample prefix runs chunk by chunk; a mix stage of built-in mixes right
        after it runs chunk by chunk too, reading the prefix's result from a private
        buffer (a partner may lie in any chunk) and writing the output; the stages
        after that run on the whole batch."""
        k = self.samplewise_prefix
        per = ctx.channels * ctx.height * ctx.width * 4
        if k == 0 or x.device.type != "cpu" or B.layout != "NCHW" or ctx.n * per <= self.CPU_CHUNK_BYTES:
            return None
        pieces = -(-ctx.n * per // self.CPU_CHUNK_BYTES)
        bounds = [j * ctx.n // pieces for j in range(pieces + 1)]  # balanced: sizes differ by one at most
        shape = (ctx.n, ctx.channels, ctx.height, ctx.width)
        mix = self.stages[k] if k < len(self.stages) else None
        mix_chunked = mix is not None and mix.kind == "mix" and all(
            isinstance(lf.op, (CutMix, MixUp)) and lf.op.name not in self.kernels for lf in mix.leaves)
        dest = self.buffers.get("prefix", shape, torch.float32, x.device) if mix_chunked else self.buffers.fresh(shape, x.device)
        keys = [d.key for d in self.sampler.draws]
        scale = 1.0
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            xf, scale, owned = self.as_float(x[lo:hi], dtype)
            pc = {key: params[key][lo:hi] for key in keys}
            cc = Context(hi - lo, ctx.height, ctx.width, ctx.channels, ctx.num_classes)
            _, _, scale = self.run(B, xf, scale, owned, None, pc, cc, fuse, True, stages=(0, k), out=dest[lo:hi])
        if mix_chunked:
            out = self.buffers.fresh(shape, x.device)
            y = self._mix_chunked(B, mix, dest, out, y, params, ctx, bounds)
            dest, k = out, k + 1
        return self.run(B, dest, scale, True, y, params, ctx, fuse, fresh_out, stages=(k, len(self.stages)))

    def as_float(self, x: Any, dtype: str) -> tuple[Any, float, bool]:
        """(xf, scale, owned): float32 images whose value is ``scale * xf``; a uint8 or
        other input is copied into a private buffer unscaled (the 1/255 is folded into
        the first linear stage), a float32 input is used as it is (not owned)."""
        if dtype == "float32":
            return x, 1.0, False
        xf = self.buffers.get("in", tuple(x.shape), torch.float32, x.device).copy_(x)
        return xf, (1.0 / 255.0 if dtype == "uint8" else 1.0), True

    def _run_stages(self, B, x, scale, owned, y, params, ctx, fuse, fresh_out, lo, hi):
        for i in range(lo, hi):
            st = self.stages[i]
            if st.kind == "label":
                x, y = self._label(B, st, x, y, params, ctx, fuse)
                continue
            fast = getattr(self, "_fast_" + st.kind, None)
            res = fast(B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out) if fast is not None else None
            if res is None:  # generic path: materialize the scale first
                if scale != 1.0:
                    x = torch.mul(x, scale, out=self._dest(i, False, x)) if not owned else x.mul_(scale)
                    scale, owned = 1.0, True
                x, y = getattr(self, "_" + st.kind)(B, st, x, y, params, ctx, fuse)
                if st.clamp:
                    x = torch.clamp(x, 0.0, 1.0)
                owned = False  # a kernel's output may alias its input or a param
                if self._is_last(i, fresh_out) and self.buffers.out is None and x.data_ptr() in self._buffer_ptrs():
                    x = x.clone()
            else:
                x_new, y, scale, owned_new = res
                if (owned and x_new.data_ptr() != x.data_ptr() and x.data_ptr() not in self._buffer_ptrs()
                        and x.dtype == torch.float32 and x.is_contiguous()):
                    self.buffers.spare = x  # the previous stage's fresh output is free now
                x, owned = x_new, owned_new
        return x, y, scale

    def _buffer_ptrs(self) -> set[int]:
        return {t.data_ptr() for t in self.buffers.slots.values()}

    # ---------------------------------------------------------- fast stages
    def _fast_geometric(self, B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out):
        if all(lf.op.flip_axis for lf in st.leaves):  # type: ignore[attr-defined]
            out, _ = self._geometric(B, st, x, y, params, ctx, fuse)  # flips commute with the scale
            return out, y, scale, out.data_ptr() != x.data_ptr()
        if B.layout != "NCHW":
            return None
        eye = torch.eye(3, device=x.device).expand(ctx.n, 3, 3)
        m = None
        for lf in st.leaves:
            mk = self.call(lf, "matrix", B, lf.params(params), ctx)
            g = self.gate(lf, params)
            if g is not None:
                mk = torch.where(g.reshape(-1, 1, 1), mk, eye)
            m = mk if m is None else torch.matmul(mk, m)
        inv = affine_inverse(B, m)
        n, c, h, w = x.shape
        interp = st.interpolation or "bilinear"
        fill = tuple(float(v) / scale for v in (st.fill if st.fill is not None else (0.0,)))  # x holds value / scale
        grid = None if interp == "nearest" else self.buffers.get("grid", (n, h, w, 2), torch.float32, x.device)
        out = _resample(B, x, inv, interp, fill, st.fill_mode or "constant", grid_out=grid)
        if interp != "nearest" and all(lf.gates for lf in st.leaves):
            # gated off everywhere: the exact input, as in the reference
            torch.where(_is_identity(inv).reshape(-1, 1, 1, 1), x, out, out=out)
        return out, y, scale, True

    def _fast_color(self, B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out):
        if B.layout != "NCHW" or not fuse:
            return None
        from ..core.ops.color import apply_to_vector, compose

        needs_mean = any(lf.op.needs_mean for lf in st.leaves)  # type: ignore[attr-defined]
        mean0 = x.mean(dim=(2, 3)) * scale if needs_mean else torch.zeros((ctx.n, ctx.channels), device=x.device)
        acc = None
        for lf in st.leaves:
            mean = mean0 if acc is None else apply_to_vector(B, acc[0], mean0) + acc[1]
            a, t = self.call(lf, "affine", B, lf.params(params), mean, ctx)
            g = self.gate(lf, params)
            if g is not None:
                eye = torch.eye(ctx.channels, device=x.device).expand(ctx.n, ctx.channels, ctx.channels)
                a, t = torch.where(g.reshape(-1, 1, 1), a, eye), torch.where(g.reshape(-1, 1), t, 0.0)
            acc = (a, t) if acc is None else compose(B, (a, t), acc)
        a, t = acc
        if scale != 1.0:
            a = a * scale
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            x = x.contiguous()
        out = B.color_affine(x, a, t, out=self._dest(i, fresh_out, x, avoid=x))
        if st.clamp:
            out.clamp_(0.0, 1.0)
        return out, y, 1.0, True

    def _fast_region(self, B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out):
        if B.layout != "NCHW":
            return None
        if not owned or not self._in_place_ok(i, fresh_out, x):
            dst = self._dest(i, fresh_out, x, avoid=x)
            x = dst.copy_(x)
        for lf in st.leaves:
            m = self.call(lf, "mask", B, lf.params(params), ctx)
            g = self.gate(lf, params)
            if g is not None:
                m = m & g.reshape(-1, 1, 1)
            fill = tuple(float(v) / scale for v in lf.op.fill)  # type: ignore[attr-defined]
            if len(fill) == 1:
                x.masked_fill_(m[:, None], fill[0])
            else:
                ft = B.asarray(fill, "float32").reshape(1, -1, 1, 1)
                torch.where(m[:, None], ft, x, out=x)
        return x, y, scale, True

    def _fast_pixel(self, B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out):
        from ..core.ops.pixel import Normalize, Rescale

        (lf,) = st.leaves
        op = lf.op
        if B.layout != "NCHW" or self.kernels.get(op.name) is not None or lf.gates:
            return None
        if isinstance(op, Normalize):
            c = ctx.channels
            mean = op.mean * c if len(op.mean) == 1 else op.mean
            std = op.std * c if len(op.std) == 1 else op.std
            mul = tuple(scale / s for s in std)
            add = tuple(-m / s for m, s in zip(mean, std))
        elif isinstance(op, Rescale):
            mul, add = (scale * op.scale,), (op.offset,)
        else:
            return None
        mt = B.asarray(mul, "float32").reshape(1, -1, 1, 1)
        at = B.asarray(add, "float32").reshape(1, -1, 1, 1)
        if owned and self._in_place_ok(i, fresh_out, x):
            dst = x
        else:
            dst = self._dest(i, fresh_out, x, avoid=x)
        # two passes: addcmul with a broadcast first operand is slower on the CPU than mul + add
        out = torch.mul(x, mt, out=dst).add_(at)
        if st.clamp:
            out.clamp_(0.0, 1.0)
        return out, y, 1.0, True

    def _mix_weights(self, B, st, params, ctx, device):
        """(partner, w, boxes, lw): the blend weight of the partner is ``w`` (None, or
        (N, 1, 1) / (N, H, W)) plus ``ry * rx`` for each CutMix box of ``boxes``
        (separable float factors (N, H, 1) and (N, 1, W)); ``lw`` (N,) the label weight."""
        perm = params[st.leaves[0].path + "/partner"]
        w_tot = lw_tot = None
        boxes = []
        for lf in st.leaves:
            g = self.gate(lf, params)
            gf = None if g is None else g.to(torch.float32)
            if isinstance(lf.op, CutMix) and self.kernels.get(lf.op.name) is None:
                lp = lf.params(params)
                y0, y1, x0, x1 = lf.op.box(B, lp, ctx)
                rows = torch.arange(ctx.height, device=device, dtype=torch.float32).reshape(1, -1, 1)
                cols = torch.arange(ctx.width, device=device, dtype=torch.float32).reshape(1, 1, -1)
                ry = ((rows >= y0.reshape(-1, 1, 1)) & (rows < y1.reshape(-1, 1, 1))).to(torch.float32)
                rx = ((cols >= x0.reshape(-1, 1, 1)) & (cols < x1.reshape(-1, 1, 1))).to(torch.float32)
                lw = (y1 - y0) * (x1 - x0) * (1.0 / (ctx.height * ctx.width)) if lf.op.correct_lambda \
                    else 1.0 - lp["lam"]
                if gf is not None:
                    ry, lw = ry * gf.reshape(-1, 1, 1), lw * gf
                boxes.append((ry, rx))
            else:
                w, lw = self.call(lf, "mix", B, lf.params(params), ctx)
                if gf is not None:
                    w, lw = w * gf.reshape(-1, 1, 1), lw * gf
                w_tot = w if w_tot is None else w_tot + w
            lw_tot = lw if lw_tot is None else lw_tot + lw
        return perm, w_tot, boxes, lw_tot

    @staticmethod
    def _blend_weight(w_tot, boxes, lo=None, hi=None):
        """The (n, 1, H|1, W|1) image weight of the partner for samples ``lo:hi``."""
        sl = slice(lo, hi)
        w = None if w_tot is None else w_tot[sl]
        for ry, rx in boxes:
            w = ry[sl] * rx[sl] if w is None else torch.addcmul(w, ry[sl], rx[sl])
        return w[:, None]

    @staticmethod
    def _mix_labels(y, perm, lw_tot):
        if y is None:
            return None
        return torch.lerp(y, torch.index_select(y, 0, perm), lw_tot.reshape(-1, 1))

    def _fast_mix(self, B, i, st, x, scale, owned, y, params, ctx, fuse, fresh_out):
        if B.layout != "NCHW":
            return None
        perm, w_tot, boxes, lw_tot = self._mix_weights(B, st, params, ctx, x.device)
        w = self._blend_weight(w_tot, boxes).to(x.dtype)
        # a gather, not index_select: the CPU index_select is pathologically slow after grid_sample
        n = x.shape[0]
        partner = self._dest(i, False, x, avoid=x)
        torch.gather(x.reshape(n, -1), 0, perm.reshape(n, 1).expand(n, x[0].numel()), out=partner.view(n, -1))
        if owned and self._in_place_ok(i, fresh_out, x):
            dst = x  # lerp in place: each element reads only itself and the partner copy
        else:
            dst = self._dest(i, fresh_out, x, avoid=partner)
        out = torch.lerp(x, partner, w, out=dst)
        return out, self._mix_labels(y, perm, lw_tot), scale, True

    def _mix_chunked(self, B, st, src, out, y, params, ctx, bounds):
        """A mix stage chunk by chunk: ``out[lo:hi] = lerp(src[lo:hi], src[partner[lo:hi]], w)``.
        ``out`` must not overlap ``src``, whose rows later chunks still read."""
        perm, w_tot, boxes, lw_tot = self._mix_weights(B, st, params, ctx, src.device)
        flat = src.view(ctx.n, -1)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            partner = self.buffers.get("partner", (hi - lo, *src.shape[1:]), torch.float32, src.device)
            torch.index_select(flat, 0, perm[lo:hi], out=partner.view(hi - lo, -1))
            torch.lerp(src[lo:hi], partner, self._blend_weight(w_tot, boxes, lo, hi), out=out[lo:hi])
        return self._mix_labels(y, perm, lw_tot)


# ==================================================================== sampler


class FastSampler:
    """The core ``Sampler``'s draws with fewer, larger kernels (same values).

    One hash pass and ONE uniform conversion for the whole counter vector; every
    Beta draw of the pipeline in one vectorized Gamma evaluation: the six
    Marsaglia-Tsang rounds of every Gamma (``random._gamma``) are computed side by
    side and the first accepted round is picked with an argmax, which is the
    core's sequential rule. Per-row constants (d, c, alpha) are cached per layout.
    This takes a call from about 900 tiny kernels to about 200, which is what
    bounds a GPU call (and small CPU batches)."""

    def __init__(self, sampler: Any):
        self.sampler = sampler
        self._consts: dict[Any, Any] = {}

    def constants(self, batch_size: int, hwc: Any, device: Any, mode: bool | None = None) -> tuple[Any, Any, Any, Any] | None:
        """Per-row Gamma constants (d, c, alpha, boost) of every Beta draw, cached on ``device``
        (called before a compiled call too, so the traced code only reads the cache)."""
        from ..core.random import Beta

        ck = (batch_size, hwc, str(device), _mode() if mode is None else mode)
        hit = self._consts.get(ck)
        if hit is not None or ck in self._consts:
            return hit
        entries, _, _ = self.sampler._layout(batch_size, hwc)
        betas = [(d.dist, rows * math.prod(vshape)) for d, _, rows, vshape, _ in entries if isinstance(d.dist, Beta)]
        out = None
        if betas:
            d_, c_, al_, bo_ = [], [], [], []
            for part in (0, 1):
                for dist, m in betas:
                    alpha = dist.a if part == 0 else dist.b
                    boost = alpha < 1.0
                    a = alpha + 1.0 if boost else alpha
                    d = a - 1.0 / 3.0
                    d_ += [d] * m
                    c_ += [1.0 / math.sqrt(9.0 * d)] * m
                    al_ += [alpha] * m
                    bo_ += [boost] * m
            t = [to_device(torch.tensor(v, dtype=torch.float32), device) for v in (d_, c_, al_)]
            out = (t[0], t[1], t[2], to_device(torch.tensor(bo_, dtype=torch.bool), device))
        if len(self._consts) > 16:
            self._consts.clear()
        self._consts[ck] = out
        return out

    def sample(self, B: Any, batch_size: int, key: tuple[Any, Any], hwc: Any, counters: Any,
               mode: bool | None = None) -> dict[str, Any]:
        from ..core.random import _GAMMA_ROUNDS, Beta, Permutation, bits_to_uniform, random_bits

        entries, _, total = self.sampler._layout(batch_size, hwc)
        params: dict[str, Any] = {}
        if total == 0:
            return self.sampler.sample(B, batch_size, key, hwc, counters=counters)
        bits = random_bits(B, counters, key)
        uni = bits_to_uniform(B, bits)
        betas = []
        for d, off, rows, vshape, nuni in entries:
            n = rows * math.prod(vshape) * nuni
            if isinstance(d.dist, Permutation):
                ar = torch.arange(batch_size, device=bits.device)
                params[d.key] = torch.argsort(bits[off:off + n] * max(batch_size, 1) + ar, stable=True)
                continue
            u = uni[off:off + n].reshape(rows, *vshape, nuni)
            if isinstance(d.dist, Beta):
                betas.append((d, u, rows, vshape))
                continue
            v = d.dist.transform(B, u)
            if not d.dist.per_sample:
                v = v.expand(batch_size, *vshape)
            params[d.key] = v
        if not betas:
            return params
        r3 = 3 * _GAMMA_ROUNDS
        sizes = [rows * math.prod(vshape) for _, _, rows, vshape in betas]
        dd, cc, alpha, boost = self.constants(batch_size, hwc, bits.device, mode)
        main, extra = [], []
        for part in (0, 1):
            for (d, u, _, _), m in zip(betas, sizes):
                na = u.shape[-1] - (3 * _GAMMA_ROUNDS + (1 if d.dist.b < 1.0 else 0))
                blk = u.reshape(m, u.shape[-1])
                blk = blk[:, :na] if part == 0 else blk[:, na:]
                main.append(blk[:, :r3])
                extra.append(blk[:, r3] if blk.shape[1] > r3 else torch.full((m,), 0.5, device=u.device))
        U = torch.cat(main).reshape(-1, _GAMMA_ROUNDS, 3)
        ub = 1.0 - torch.cat(extra)
        dcol, ccol = dd[:, None], cc[:, None]
        z = torch.sqrt(-2.0 * torch.log(1.0 - U[..., 0])) * torch.cos((2.0 * math.pi) * U[..., 1])
        v = 1.0 + ccol * z
        v3 = v * v * v
        lu = torch.log(1.0 - U[..., 2])
        pos = v3 > 0
        safe = torch.where(pos, v3, 1.0)
        ok = pos & (lu < 0.5 * z * z + dcol - dcol * safe + dcol * torch.log(safe))
        cand = dcol * safe
        first = torch.argmax(ok.to(torch.int32), dim=1, keepdim=True)  # the first accepted round
        out = torch.where(ok.any(dim=1), torch.gather(cand, 1, first)[:, 0], dd)
        out = out * torch.where(boost, torch.exp(torch.log(ub) / alpha), 1.0)
        half = out.shape[0] // 2
        x, y = out[:half], out[half:]
        ssum = x + y
        beta = torch.where(ssum > 0, x / torch.where(ssum > 0, ssum, 1.0), 0.5 + 0.0 * ssum)
        for (d, _, rows, vshape), part in zip(betas, torch.split(beta, sizes)):
            v = part.reshape(rows, *vshape)
            params[d.key] = v if d.dist.per_sample else v.expand(batch_size, *vshape)
        return params


# ======================================================================== run


class TorchRun(Run):
    """A pipeline compiled for torch: eager (``TorchPlan``) or ``torch.compile``d."""

    def __init__(self, pipeline: Any, backend: TorchBackend, **kw: Any):
        if kw.get("rank") is None:  # no rank= given: the process group's, else $RANK, else 0
            kw["rank"] = default_rank()
        super().__init__(pipeline, backend, **kw)
        self.plan = TorchPlan(pipeline.ops, self.kernels)
        self.fast_sampler = FastSampler(self.plan.sampler)
        self._counters: dict[Any, Any] = {}
        self._compiled: Any = None
        self._graphs: dict[Any, Any] = {}

    # --------------------------------------------------------------- device
    def _use_device(self, dev: Any) -> None:
        self.backend.current = torch.device(dev)

    def counters(self, batch_size: int, hwc: tuple[int, int, int] | None, device: Any) -> Any:
        """The sampler's static counter vector, cached on ``device``."""
        key = (batch_size, hwc, str(device), _mode())
        t = self._counters.get(key)
        if t is None:
            c = torch.from_numpy(self.plan.sampler.counters_numpy(batch_size, hwc))
            t = to_device(c, device)
            if len(self._counters) > 32:
                self._counters.clear()
            self._counters[key] = t
        return t

    def key_tensor(self, key: tuple[int, int], device: Any) -> Any:
        """The two key words as an int64 (2,) tensor on ``device`` (pinned, non-blocking copy)."""
        return to_device(torch.tensor([int(key[0]), int(key[1])], dtype=torch.int64), device)

    def _draw(self, batch_size: int, hwc: tuple[int, int, int] | None, key: tuple[int, int]) -> dict[str, Any]:
        dev = self.backend.current
        kt = self.key_tensor(key, dev)
        return self.fast_sampler.sample(self.backend, batch_size, tuple(kt.unbind(0)), hwc,
                                        counters=self.counters(batch_size, hwc, dev))

    def sample(self, batch_size: int, image_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Draw the params of one call on the run's device (``device=``, else the last images' device)."""
        if self.backend.device is not None:
            self._use_device(self.backend.device)
        return super().sample(batch_size, image_shape)

    # -------------------------------------------------------------- calling
    def __call__(self, images: Any, labels: Any = None, *, training: bool = True) -> Any:
        if not training:
            return self._evaluate(images, labels)
        B = self.backend
        x = B.as_images(images)
        self._use_device(x.device)
        shape = tuple(x.shape)
        if len(shape) not in (3, 4):
            return super().__call__(x, labels)  # the error message of the core
        if self.backend.jit == "cudagraph" and len(shape) == 4 and shape[0] > 0:
            return self._graph_call(x, labels)
        if self.backend.jit and len(shape) == 4 and shape[0] > 0:
            return self._jit_call(x, labels)
        n = shape[0] if len(shape) == 4 else 1
        params = self.sample(n, shape[1:] if len(shape) == 4 else shape)
        return self._run(self.plan, x, labels, params)

    def apply(self, images: Any, labels: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        if params is None:
            raise InputError("apply: params are required (draw them with run.sample)")
        x = self.backend.as_images(images)
        self._use_device(x.device)
        return self._run(self.plan, x, labels, self._params_on(params, x.device))

    def _params_on(self, params: Mapping[str, Any], device: Any) -> dict[str, Any]:
        out = {}
        for k, v in params.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.to(device, non_blocking=True)
            else:
                a = np.asarray(v)
                t = torch.from_numpy(np.ascontiguousarray(a))
                out[k] = t.to(device, non_blocking=True) if t.device != torch.device(device) else t
        return out

    def _evaluate(self, images: Any, labels: Any) -> Any:
        x = self.backend.as_images(images)
        self._use_device(x.device)
        return super()._evaluate(x, labels)

    # ----------------------------------------------------------------- core
    def _run(self, plan: Plan, images: Any, labels: Any, params: Mapping[str, Any], convert_labels: bool = True) -> Any:
        B = self.backend
        x = B.as_images(images)
        self._use_device(x.device)
        x, y, single, dtype, out_dtype, ctx = self._check_batch(plan, x, labels, convert_labels)
        if ctx.n == 0:
            xo = x.to(_DTYPES[out_dtype])
            return (xo, y) if labels is not None else xo
        self._check_params(plan, params, ctx.n)
        if isinstance(plan, TorchPlan) and not (x.requires_grad and torch.is_grad_enabled()):
            xo, yo = self._eager(plan, x, y, params, ctx, dtype, out_dtype)
        else:
            xo, yo = self._generic(plan, x, y, params, ctx, dtype, out_dtype)
        return self._finish(xo, yo, labels, single)

    def _finish(self, xo: Any, yo: Any, labels: Any, single: bool) -> Any:
        if single:
            xo = xo[0]
            if yo is not None and labels is not None:
                yo = yo[0]
        return xo if labels is None else (xo, yo)

    def _generic(self, plan: Plan, x: Any, y: Any, params: Mapping[str, Any], ctx: Context, dtype: str,
                 out_dtype: str) -> tuple[Any, Any]:
        """The core's numeric path on the primitives (also what ``torch.compile`` traces)."""
        B = self.backend
        xf = x.to(torch.float32)
        if dtype == "uint8":
            xf = xf * (1.0 / 255.0)
        xo, yo = plan.apply(B, xf, y, params, ctx, self.fuse)
        if out_dtype == "uint8":
            xo = torch.floor(torch.clamp(xo, 0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        elif out_dtype != "float32":
            xo = xo.to(_DTYPES[out_dtype])
        return xo, yo

    def _eager(self, plan: TorchPlan, x: Any, y: Any, params: Mapping[str, Any], ctx: Context, dtype: str,
               out_dtype: str) -> tuple[Any, Any]:
        B = self.backend
        if B.layout != "NCHW":
            return self._generic(plan, x, y, params, ctx, dtype, out_dtype)
        fresh_out = out_dtype == "float32"
        res = plan.run_chunked(B, x, dtype, y, params, ctx, self.fuse, fresh_out)
        if res is not None:
            xo, yo, scale = res
        else:
            xf, scale, owned = plan.as_float(x, dtype)
            xo, yo, scale = plan.run(B, xf, scale, owned, y, params, ctx, self.fuse, fresh_out)
        private = xo.data_ptr() in plan._buffer_ptrs()
        is_input = xo.data_ptr() == x.data_ptr()
        if out_dtype == "uint8":
            v = xo.mul_(scale * 255.0) if private else xo * (scale * 255.0)
            xo = v.clamp_(0.0, 255.0).add_(0.5).floor_().to(torch.uint8)
        elif out_dtype == "float32":
            if private or is_input:
                xo = xo * scale if scale != 1.0 else (xo.clone() if private else xo)
            elif scale != 1.0:
                xo = xo.mul_(scale)
        else:
            xo = (xo * scale if scale != 1.0 else xo).to(_DTYPES[out_dtype])
        return xo, yo

    # ------------------------------------------------------------------ jit
    def _jit_options(self) -> dict[str, Any]:
        j = self.backend.jit
        opts: dict[str, Any] = {"fullgraph": True, "dynamic": False}
        if isinstance(j, str):
            opts["mode"] = j
        elif isinstance(j, dict):
            opts.update(j)
        return opts

    def _traced(self, x: Any, y: Any, counters: Any, key: Any, meta: tuple) -> tuple[Any, Any]:
        n, h, w, c, k, dtype, out_dtype, ids = meta
        if ids:  # class ids: the one-hot inside the graph (no kernels outside it)
            y = self.backend.one_hot(y.to(torch.int64), k)
        ctx = Context(n, h, w, c, k)
        hwc = (h, w, c)
        params = self.fast_sampler.sample(self.backend, ctx.n, tuple(key.unbind(0)), hwc, counters=counters, mode=False)
        return self._generic(self._generic_plan, x, y, params, ctx, dtype, out_dtype)

    def _jit_call(self, x: Any, labels: Any) -> Any:
        if torch.is_inference_mode_enabled():
            # compiled code is traced and run outside inference mode (under it dynamo's guards
            # fail on the module constants); no_grad keeps it outside autograd as well
            with torch.inference_mode(False), torch.no_grad():
                return self._jit_call(x, labels)
        if self._compiled is None:
            self._generic_plan = Plan(self.pipeline.ops, self.kernels)
            self._compiled = torch.compile(self._traced, **self._jit_options())
        x4, y, single, dtype, out_dtype, ctx = self._check_batch(self.plan, x, labels, convert_labels=False)
        ids = False
        if y is not None and self.plan.changes_labels:
            if y.dim() == 1:  # the core's checks; the one-hot is traced (``_traced``)
                dt = self.backend.dtype_name(y)
                k = self.num_classes
                if not (dt.startswith("int") or dt.startswith("uint")):
                    raise InputTypeError(f"class ids must be integers, got dtype {dt}")
                if k is None:
                    raise InputError("class ids need num_classes: Pipeline(..., num_classes=K) "
                                     "(or pass soft (N, K) labels)")
                if self.backend.check_class_ids(y, k) is False:
                    raise InputError(f"class ids must lie in [0, {k}) (num_classes={k})")
                ids = True
            else:  # soft labels: the core's checks and cast
                y, k = self._labels(self.plan, y, ctx.n, False, True)
                ctx = Context(ctx.n, ctx.height, ctx.width, ctx.channels, k)
        hwc = (ctx.height, ctx.width, ctx.channels)
        key = self.key()
        self.step += 1
        counters = self.counters(ctx.n, hwc, x4.device)
        self.fast_sampler.constants(ctx.n, hwc, x4.device, False)  # cached before tracing: no recompilation
        kt = self.key_tensor(key, x4.device)
        meta = (ctx.n, ctx.height, ctx.width, ctx.channels, ctx.num_classes, dtype, out_dtype, ids)
        xo, yo = self._compiled(x4, y, counters, kt, meta)
        return self._finish(xo, yo, labels, single)

    # ------------------------------------------------------------ CUDA graphs
    def _graph_call(self, x: Any, labels: Any) -> Any:
        """``jit="cudagraph"``: the eager call (sampling included) captured once per
        input signature in a ``torch.cuda.CUDAGraph`` and replayed; no compiler.
        Inputs are copied into the graph's static tensors, outputs cloned out."""
        if x.device.type != "cuda":
            raise InputError(f"jit='cudagraph' needs CUDA tensors, got images on {x.device}")
        x4, y, single, dtype, out_dtype, ctx = self._check_batch(self.plan, x, labels)
        sig = (tuple(x4.shape), tuple(x4.stride()), x4.dtype, str(x4.device),
               None if y is None else (tuple(y.shape), y.dtype), _mode())
        key = self.key()
        self.step += 1
        kt = self.key_tensor(key, x4.device)
        g = self._graphs.get(sig)
        if g is None:
            g = self._capture(x4, y, kt, ctx, dtype, out_dtype)
            self._graphs[sig] = g
        graph, sx, sy, sk, out, _keep = g
        sx.copy_(x4)
        if sy is not None:
            sy.copy_(y)
        sk.copy_(kt)
        graph.replay()
        xo = out[0].clone()
        yo = out[1].clone() if out[1] is not None else None
        return self._finish(xo, yo, labels, single)

    def _capture(self, x4: Any, y: Any, kt: Any, ctx: Context, dtype: str, out_dtype: str) -> tuple:
        sx = x4.clone()
        sy = y.clone() if y is not None else None
        sk = kt.clone()
        hwc = (ctx.height, ctx.width, ctx.channels)
        counters = self.counters(ctx.n, hwc, x4.device)

        def body() -> tuple[Any, Any]:
            params = self.fast_sampler.sample(self.backend, ctx.n, tuple(sk.unbind(0)), hwc, counters=counters)
            return self._eager(self.plan, sx, sy, params, ctx, dtype, out_dtype)

        side = torch.cuda.Stream(device=x4.device)
        side.wait_stream(torch.cuda.current_stream(x4.device))
        with torch.cuda.stream(side):  # warm-up: fills the constant caches and buffers
            for _ in range(2):
                body()
        torch.cuda.current_stream(x4.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = body()
        keep = list(self.plan.buffers.slots.values())  # the graph writes there: keep them alive
        return graph, sx, sy, sk, out, keep
