"""The torch primitives: the backend namespace ``B`` on torch tensors.

- Images are torch tensors (or anything ``torch.as_tensor`` reads), NCHW (the
  default) or NHWC logical layout; channels_last memory works. uint8, float16,
  bfloat16, float32 and float64 are accepted; the computation is float32.
- Device: with ``device=None`` the work happens on the images' device and the
  outputs stay there; with ``device="cuda"`` (say) inputs are moved there first
  (non-blocking). Constants are cached on the device (``asarray``); nothing in a
  primitive waits for the device.
- "uint32" values (the generator's words) are held in int64 (torch has no
  right shift on uint32); ``mul32`` masks its product to 32 bits.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...core.errors import InputError, InputTypeError, SpecError
from ..base import IMAGE_DTYPES, Backend
from .warp import _compiling, _is_identity, _resample

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "uint8": torch.uint8,
           "bool": torch.bool, "float16": torch.float16, "bfloat16": torch.bfloat16, "int32": torch.int32,
           "uint32": torch.int64}



def to_device(t: Any, device: Any) -> Any:
    """A host tensor on ``device`` without waiting for the device: CPU tensors as they
    are, others through pinned memory with a non-blocking copy."""
    device = torch.device(device)
    if device.type == "cpu":
        return t
    if device.type == "cuda" and torch.cuda.is_available():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)



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




class TorchBackend(Backend):
    """Primitives on torch tensors. ``device``: where inputs are moved (None: stay put);
    ``jit``: False, True (``torch.compile(fullgraph=True)``), a mode string such as
    ``"reduce-overhead"``, or a dict of ``torch.compile`` keyword arguments.
    ``compact_gates``: on an eager CPU batch, run a gated op (a policy's branch) on the
    samples it is gated on only (``compact``: reads the gate on the host, which costs
    nothing there); False runs it on the batch and selects, as on a device."""

    name = "torch"
    array_module = "torch"
    #: the executor's chunking policy on the CPU (eager, NCHW): a batch over this many
    #: bytes of float32 runs its samplewise stages chunk by chunk, each chunk's
    #: intermediates staying in the cache (a 256 x 224² batch is 154 MB per pass)
    chunk_bytes: int | None = 6 << 20

    def __init__(self, layout: str = "NCHW", device: Any = None, jit: Any = False, compact_gates: bool = True,
                 **options: Any):
        super().__init__(layout, **options)
        if not isinstance(compact_gates, bool):
            raise SpecError(f"torch backend: compact_gates must be True or False, got {compact_gates!r}")
        self.compact_gates = compact_gates
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

    def make_run(self, pipeline: Any, **run_options: Any) -> Any:
        from .run import TorchRun

        return TorchRun(pipeline, self, **run_options)

    def memory(self) -> Any:
        """The eager path's buffers and output pool (``memory.TorchMemory``)."""
        from .memory import TorchMemory

        return TorchMemory()

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        if isinstance(images, torch.Tensor):
            x = images
        elif isinstance(images, (list, tuple)) and images and all(isinstance(v, torch.Tensor) for v in images):
            try:
                x = torch.stack(list(images))
            except RuntimeError as e:
                raise InputTypeError(f"torch backend: cannot stack the images ({e})") from None
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
            what = "are not numbers" if x.is_complex() else "are not supported"
            raise InputTypeError(f"torch backend: images of dtype {str(x.dtype).replace('torch.', '')} {what}; "
                                 f"use one of {list(IMAGE_DTYPES)}")
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

    def copy(self, x: Any) -> Any:
        return x.clone()

    def all_finite(self, x: Any) -> bool | None:
        """On the CPU (one pass, no device); None on a device, where it would sync."""
        if not x.is_floating_point():
            return True
        return bool(torch.isfinite(x).all()) if x.device.type == "cpu" and not _compiling() else None

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

    def compact(self, gate: Any) -> Any:
        """The indices of the gated samples for an eager CPU batch (reading them costs no
        device sync there); None on a device or while compiling (the planner then selects)."""
        if not self.compact_gates or gate.device.type != "cpu" or torch.compiler.is_compiling():
            return None
        return torch.nonzero(gate.reshape(-1)).reshape(-1)

    def put_rows(self, x: Any, idx: Any, rows: Any, inplace: bool = False) -> Any:
        if inplace:
            return x.index_copy_(0, idx, rows.to(x.dtype))
        return x.index_copy(0, idx, rows.to(x.dtype))

    def bincount(self, idx: Any, bins: int) -> Any:
        """One ``scatter_add_`` of float32 ones along each row into (R, bins) counters (exact
        below 2**24, in any order of the adds); ``torch.bincount`` would read the maximum on
        the host, a sync."""
        idx = idx.to(torch.int64)
        counts = torch.zeros((idx.shape[0], bins), dtype=torch.float32, device=idx.device)
        return counts.scatter_add_(1, idx, torch.ones(idx.shape, dtype=torch.float32, device=idx.device))

    def take_along(self, x: Any, idx: Any, axis: str) -> Any:
        n, length = idx.shape
        dim = (1 if axis == "h" else 2) if self.layout == "NHWC" else (2 if axis == "h" else 3)
        shape = [n, 1, 1, 1]
        shape[dim] = length
        full = list(x.shape)
        full[dim] = length
        return torch.gather(x, dim, idx.reshape(shape).expand(full))

    def gather_sum(self, x: Any, idx: Any, w: Any, axis: str) -> Any:
        """One ``embedding_bag`` (a fused gather and weighted sum of whole rows): the lines
        along ``axis`` become rows of a table (columns through a transpose)."""
        if not x.is_floating_point():
            x = x.to(torch.float32)
        n, length, k = idx.shape
        if self.layout == "NCHW":
            _, c, h, wd = x.shape
            table = x if axis == "h" else x.transpose(2, 3)
            rows = h if axis == "h" else wd
            table = table.reshape(n * c * rows, -1)
            base = (torch.arange(n * c, device=x.device).reshape(n, c, 1, 1) * rows)
            bags = (base + idx.reshape(n, 1, length, k)).reshape(-1, k)
            wts = w.reshape(n, 1, length, k).expand(n, c, length, k).reshape(-1, k)
            out = F.embedding_bag(bags, table, per_sample_weights=wts.to(x.dtype), mode="sum")
            out = out.reshape(n, c, length, -1)
            return out if axis == "h" else out.transpose(2, 3)
        _, h, wd, c = x.shape
        if axis == "h":
            table = x.reshape(n * h, wd * c)
            bags = (torch.arange(n, device=x.device).reshape(n, 1, 1) * h + idx).reshape(-1, k)
            out = F.embedding_bag(bags, table, per_sample_weights=w.reshape(-1, k).to(x.dtype), mode="sum")
            return out.reshape(n, length, wd, c)
        table = x.reshape(n * h * wd, c)
        base = (torch.arange(n, device=x.device).reshape(n, 1, 1, 1) * h
                + torch.arange(h, device=x.device).reshape(1, h, 1, 1)) * wd
        bags = (base + idx.reshape(n, 1, length, k)).reshape(-1, k)
        wts = w.reshape(n, 1, length, k).expand(n, h, length, k).reshape(-1, k)
        out = F.embedding_bag(bags, table, per_sample_weights=wts.to(x.dtype), mode="sum")
        return out.reshape(n, h, length, c)

    @property
    def first_pass(self) -> str:
        """NCHW: rows first (the column pass transposes its input, better the smaller one)."""
        return "h" if self.layout == "NCHW" else "w"

    def pack_images(self, images: Any) -> tuple[Any, Any]:
        """One zero-padded tensor on the images' device (each copied once; on the CPU
        through NumPy views, whose strided copies are much faster than torch's here)."""
        xs = [self.as_images(v) for v in images]
        ref = xs[0]
        for v in xs:
            if v.dtype != ref.dtype or v.device != ref.device:
                raise InputError("images of different sizes must each be 3-D, of one dtype and on one device; got "
                                 f"{[(tuple(v.shape), str(v.dtype), str(v.device)) for v in xs[:4]]}...")
        sizes, shape = self.pack_shape(xs, "of one dtype and on one device")
        # uint8: the padding is never read (every tap lies inside its image) and cannot hold a NaN,
        # so it is left unwritten; float padding is zeroed (range and finiteness checks read it)
        make = torch.empty if ref.dtype == torch.uint8 else torch.zeros
        out = make(shape, dtype=ref.dtype, device=ref.device)
        if ref.device.type == "cpu" and ref.dtype != torch.bfloat16 and not any(v.requires_grad for v in xs):
            self.copy_into_corners(out.numpy(), [v.numpy() for v in xs])
        else:
            self.copy_into_corners(out, xs)
        return out, sizes

    def bitxor(self, a: Any, b: Any) -> Any:
        return torch.bitwise_xor(a, b)

    def bitand(self, a: Any, b: Any) -> Any:
        return torch.bitwise_and(a, b)

    def shr(self, a: Any, n: int) -> Any:
        return torch.bitwise_right_shift(a, n)

    def mul32(self, a: Any, c: int) -> Any:
        return torch.bitwise_and(a * c, 0xFFFFFFFF)  # "uint32" held in int64: the product modulo 2**32

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

    def channel_min(self, x: Any) -> Any:
        return torch.amin(x, dim=self._spatial_axes())

    def channel_max(self, x: Any) -> Any:
        return torch.amax(x, dim=self._spatial_axes())

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

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        nchw = self.layout == "NCHW"
        xs = x if nchw else x.permute(0, 3, 1, 2)
        out = _resample(self, xs, inverse, interpolation, fill, fill_mode)
        if interpolation != "nearest":
            # the identity reproduces the pixels exactly (grid_sample's normalized frame is off by an ulp)
            out = torch.where(_is_identity(inverse).reshape(-1, 1, 1, 1), xs, out)
        return out if nchw else out.permute(0, 2, 3, 1)

