"""The NumPy backend: the reference every other backend is tested against.

Batched and vectorized (no Python loop over samples); NHWC (default) or NCHW.
The warp samples the input at ``inverse @ (j + 0.5, i + 0.5, 1)`` with
coordinates in float64, reading ``fill`` outside the image: the image is padded
by one pixel of fill and indices are clipped into the padding, so a bilinear
tap that falls outside blends with the fill, as OpenCV's BORDER_CONSTANT does.
A bilinear tap of weight exactly 0 is not read, so identity, flips and
whole-pixel shifts move NaN (and inf) pixels exactly; at fractional positions a
NaN spreads to the output pixels whose taps touch it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import InputTypeError
from .base import Backend

_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "uint8": np.uint8,
           "bool": np.bool_, "float16": np.float16, "int32": np.int32, "uint32": np.uint32}


class NumpyBackend(Backend):
    name = "numpy"
    array_module = "numpy"

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        if type(images).__module__.split(".")[0] in ("torch", "tensorflow", "jax", "jaxlib"):
            raise InputTypeError(
                f"numpy backend: got a {type(images).__module__}.{type(images).__name__}; "
                "convert it with .numpy() or compile the pipeline for that framework"
            )
        try:
            a = np.asarray(images)
        except Exception as e:  # ragged lists and the like
            raise InputTypeError(f"numpy backend: cannot read the images as an array ({e})") from None
        if a.dtype.kind not in "uifb":
            raise InputTypeError(f"numpy backend: images of dtype {a.dtype} are not numbers")
        return a

    def has_nan(self, x: Any) -> bool | None:
        return bool(x.dtype.kind == "f" and np.isnan(x).any())

    def asarray(self, v: Any, dtype: str | None = None) -> Any:
        return np.asarray(v, dtype=_DTYPES[dtype] if dtype else None)

    def cast(self, x: Any, dtype: str) -> Any:
        return np.asarray(x).astype(_DTYPES[dtype], copy=False)

    def dtype_name(self, x: Any) -> str:
        return str(np.asarray(x).dtype)

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(np.shape(x))

    def is_array(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def copy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    def all_finite(self, x: Any) -> bool | None:
        return bool(np.isfinite(x).all()) if x.dtype.kind == "f" else True

    # ---------------------------------------------------------------- basics
    def arange(self, n: int, dtype: str = "int64") -> Any:
        return np.arange(n, dtype=_DTYPES[dtype])

    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return np.ones(shape, dtype=_DTYPES[dtype])

    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return np.zeros(shape, dtype=_DTYPES[dtype])

    def eye(self, n: int, dtype: str = "float32") -> Any:
        return np.eye(n, dtype=_DTYPES[dtype])

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return np.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        return np.broadcast_to(x, shape)

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return np.transpose(x, axes)

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return np.stack(xs, axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return np.concatenate(xs, axis=axis)

    where = staticmethod(np.where)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return np.clip(x, lo, hi)

    floor = staticmethod(np.floor)
    sqrt = staticmethod(np.sqrt)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    tan = staticmethod(np.tan)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    matmul = staticmethod(np.matmul)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return np.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return np.mean(x, axis=axis, keepdims=keepdims, dtype=np.float64).astype(np.float32)

    def any(self, x: Any, axis: Any = None) -> Any:
        return np.any(x, axis=axis)

    def argsort(self, x: Any) -> Any:
        return np.argsort(x, kind="stable")

    def take(self, x: Any, idx: Any) -> Any:
        return np.take(x, idx, axis=0)

    def compact(self, gate: Any) -> Any:
        return np.flatnonzero(np.asarray(gate))

    def put_rows(self, x: Any, idx: Any, rows: Any, inplace: bool = False) -> Any:
        out = x if inplace and isinstance(x, np.ndarray) and x.flags.writeable else np.array(x, copy=True)
        out[idx] = rows
        return out

    def bincount(self, idx: Any, bins: int) -> Any:
        """One ``np.bincount`` of the rows offset by ``row * bins``."""
        idx = np.asarray(idx)
        r = idx.shape[0]
        flat = (idx.astype(np.int64) + (np.arange(r, dtype=np.int64) * bins)[:, None]).ravel()
        return np.bincount(flat, minlength=r * bins).reshape(r, bins).astype(np.float32)

    def bitxor(self, a: Any, b: Any) -> Any:
        return np.bitwise_xor(a, np.uint32(b) if isinstance(b, int) else b)

    def shr(self, a: Any, n: int) -> Any:
        return np.right_shift(a, np.uint32(n))

    def mul32(self, a: Any, c: int) -> Any:
        return np.multiply(a, np.uint32(c))  # uint32 arithmetic wraps modulo 2**32

    # ---------------------------------------------------------------- images
    def flip(self, x: Any, axis: str) -> Any:
        ax = self._spatial_axes()[1 if axis == "w" else 0]
        return np.flip(x, axis=ax).copy()  # a copy: a run's output never views its input

    def channel_min(self, x: Any) -> Any:
        return np.min(x, axis=self._spatial_axes())

    def channel_max(self, x: Any) -> Any:
        return np.max(x, axis=self._spatial_axes())

    def color_affine(self, x: Any, a: Any, t: Any) -> Any:
        a = np.asarray(a, np.float32)
        t = np.asarray(t, np.float32)
        if self.layout == "NHWC":
            n, h, w, c = x.shape
            out = np.matmul(x.reshape(n, h * w, c), np.swapaxes(a, 1, 2)).reshape(n, h, w, c)
            return out + t[:, None, None, :]
        n, c, h, w = x.shape
        out = np.matmul(a, x.reshape(n, c, h * w)).reshape(n, c, h, w)
        return out + t[:, :, None, None]

    def pack_images(self, images: Any) -> tuple[Any, Any]:
        """One zero-padded array, each image copied once into its corner."""
        xs = [self.as_images(v) for v in images]
        if len({v.dtype for v in xs}) > 1:
            from ..core.errors import InputError

            raise InputError(f"images of different sizes must be of one dtype; got {sorted({str(v.dtype) for v in xs})}")
        sizes, shape = self.pack_shape(xs)
        return self.copy_into_corners(np.zeros(shape, dtype=xs[0].dtype), xs), sizes

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        x = self.to_nhwc(x)
        n, h, w, c = x.shape
        inv = np.asarray(inverse, dtype=np.float64)
        jj = np.arange(w, dtype=np.float64) + 0.5
        ii = np.arange(h, dtype=np.float64) + 0.5
        sx = inv[:, 0, 0, None, None] * jj[None, None, :] + inv[:, 0, 1, None, None] * ii[None, :, None] + inv[:, 0, 2, None, None]
        sy = inv[:, 1, 0, None, None] * jj[None, None, :] + inv[:, 1, 1, None, None] * ii[None, :, None] + inv[:, 1, 2, None, None]
        u = sx - 0.5  # continuous column index
        v = sy - 0.5
        pad = np.empty((n, h + 2, w + 2, c), dtype=np.float32)
        pad[...] = np.asarray(fill, dtype=np.float32)
        pad[:, 1:-1, 1:-1, :] = x
        # Gather through flat row indices into the (N * (H+2) * (W+2), C) view: one
        # np.take per tap is much faster than three broadcast fancy indices.
        flat = pad.reshape(-1, c)
        base = (np.arange(n, dtype=np.intp) * ((h + 2) * (w + 2)))[:, None, None]
        def tap(i: Any, size: int) -> Any:
            """A tap's index into the padded image (index -1 and ``size`` are the fill)."""
            if fill_mode == "nearest":
                i = np.clip(i, 0, size - 1)
            elif fill_mode == "reflect":  # half-sample symmetric: period 2 size
                i = np.mod(np.clip(i, -(1 << 40), 1 << 40), 2 * size)
                i = np.where(i >= size, 2 * size - 1 - i, i)
            return np.clip(i, -1, size).astype(np.intp) + 1

        if interpolation == "nearest":
            ui = tap(np.floor(u + 0.5), w)
            vi = tap(np.floor(v + 0.5), h)
            return self.from_nhwc(np.take(flat, base + vi * (w + 2) + ui, axis=0))
        u0 = np.floor(u)
        v0 = np.floor(v)
        fu = (u - u0).astype(np.float32)
        fv = (v - v0).astype(np.float32)
        # A tap of weight exactly 0 reads the same pixel as its partner tap (same value for
        # finite inputs), so identity and whole-pixel shifts keep NaN / inf where they were.
        ua = tap(u0, w)
        ub = tap(u0 + (fu > 0), w)
        ra = base + tap(v0, h) * (w + 2)
        rb = base + tap(v0 + (fv > 0), h) * (w + 2)
        fu, fv = fu[..., None], fv[..., None]
        gu, gv = 1.0 - fu, 1.0 - fv
        # top = a (1 - fu) + b fu; bot likewise; out = top (1 - fv) + bot fv (in place, same arithmetic)
        top = np.take(flat, ra + ua, axis=0)
        top *= gu
        tmp = np.take(flat, ra + ub, axis=0)
        tmp *= fu
        top += tmp
        bot = np.take(flat, rb + ua, axis=0)
        bot *= gu
        np.take(flat, rb + ub, axis=0, out=tmp)
        tmp *= fu
        bot += tmp
        top *= gv
        bot *= fv
        top += bot
        return self.from_nhwc(top)
