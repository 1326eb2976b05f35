"""The TensorFlow backend: pure TF ops, for eager, ``tf.function``, ``tf.data`` and XLA.

``TensorflowBackend(layout="NHWC", jit=False)`` implements the primitive namespace
of ``backends/base.py`` with TensorFlow ops (NHWC by default, NCHW on request);
``pipeline.compile("tensorflow", jit=...)`` returns a :class:`TFRun`.

- Height, width and channels must be known when the pipeline is traced (a ``None``
  there raises an ``InputError`` that says so). The batch size may be unknown
  (``tf.data`` without ``drop_remainder``, Keras ``fit`` on arrays): ``B.shape``
  then returns it as a scalar tensor and the params are drawn per draw
  (``draw_dynamic``), bit-identical to a static batch.
- Randomness is the core's counter-based hash (``core/random.py``) on ``tf.uint32``
  tensors: TF has uint32 xor / shift / multiply (wrapping modulo 2**32) / cast
  kernels on the CPU and in XLA, faster than int64 with masks, so a key gives
  the same bits as the NumPy reference in eager, graph, ``tf.data`` and XLA
  modes. The key ``(seed, epoch, step, rank, worker)`` is folded in-graph from
  int64 tensors (SplitMix64 with logical shifts emulated on int64) into two
  uint32 words, so one trace serves every step.
- Input checks are the core's (``Run._check_batch``), stages run through the
  core's executor (``Plan.apply``). Class ids out of range raise: eagerly an
  ``InputError``; in a graph (``tf.function``, ``tf.data``) an
  ``InvalidArgumentError`` from ``tf.debugging`` asserts placed before any XLA
  sub-function. XLA drops assert ops, so inside ``jit=True`` or a user's
  ``jit_compile=True`` function the ids are not checked.
- The warp samples the input at ``inverse @ (j + 0.5, i + 0.5, 1)``: a gather
  based bilinear / nearest resampler (works under XLA) where taps outside the
  image read ``fill``. With ``kernels="native"`` (outside XLA), a bilinear warp
  with one fill value uses TF's ``ImageProjectiveTransformV3`` instead
  (conjugated by a half-pixel shift: that kernel puts pixel centres at integer
  coordinates, and it too reads the fill per tap). On the CPU the default,
  ``kernels="xla"`` (sampling and image stages as one XLA-compiled
  sub-function), is the fastest: the XLA gather warp takes about half the
  native op's time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.ops import control_flow_util as _cfu

from ..core.errors import InputError, InputTypeError, SpecError
from ..core.identity import process_worker
from ..core.random import M32, Permutation, Sampler, bits_to_uniform, random_bits
from ..core.run import Ragged, Run
from ..core.spec import Context
from ..core.target_io import parse
from ..core.targets import Targets, move
from ..distributed import default_rank, tf_replica_rank
from .base import Backend

_DTYPES = {"float32": tf.float32, "float64": tf.float64, "int64": tf.int64, "uint8": tf.uint8,
           "bool": tf.bool, "float16": tf.float16, "bfloat16": tf.bfloat16, "int32": tf.int32,
           "uint32": tf.uint32}
_M64 = (1 << 64) - 1


def _i64(c: int) -> int:
    """A 64-bit pattern as the signed int64 with the same bits."""
    c &= _M64
    return c - (1 << 64) if c >= (1 << 63) else c


def in_xla_context() -> bool:
    """True while tracing inside ``tf.function(jit_compile=True)`` (or another XLA context)."""
    if tf.executing_eagerly():
        return False
    try:
        return bool(_cfu.GraphOrParentsInXlaContext(_tf_ops.get_default_graph()))
    except Exception:  # pragma: no cover - private API moved: assume XLA, the safe choice
        return True


#: how a call runs outside XLA: one XLA-compiled sub-function ("xla"),
#: plain graph ops with the native ImageProjectiveTransformV3 warp ("native"),
#: or plain graph ops with the gather warp ("graph")
KERNEL_MODES = ("xla", "native", "graph")


class TensorflowBackend(Backend):
    """Primitives on ``tf.Tensor``.

    ``jit=True`` compiles a whole call (the step counter's variable ops included)
    with XLA (``tf.function(jit_compile=True)``). With ``jit=False`` the call is a
    plain ``tf.function`` that reads the variables and then runs key, sampling
    and image stages as ONE XLA-compiled sub-function (``kernels="xla"``, the
    default: XLA fuses the elementwise chain and the gather warp, 2-3x faster
    than op by op on the CPU; split before a mix stage that follows other stages,
    see ``TFRun._run_split``), or op by op (``kernels="native"``: TF's
    ``ImageProjectiveTransformV3`` warp where it applies, no XLA anywhere;
    ``kernels="graph"``: the gather warp, no XLA). Inside an XLA context the
    plain ops are used, whatever ``kernels`` says.
    """

    name = "tensorflow"
    pack_multiple = 64  # fewer distinct buffer shapes, fewer traces
    array_module = "tensorflow"

    def __init__(self, layout: str = "NHWC", jit: bool = False, kernels: str = "xla", max_image_side: int = 1024):
        super().__init__(layout)
        if not isinstance(jit, bool):
            raise SpecError(f"tensorflow backend: jit must be True or False, got {jit!r}")
        if kernels not in KERNEL_MODES:
            raise SpecError(f"tensorflow backend: kernels={kernels!r} is not one of {list(KERNEL_MODES)}")
        if isinstance(max_image_side, bool) or not isinstance(max_image_side, int) or max_image_side < 1:
            raise SpecError(f"tensorflow backend: max_image_side must be an int >= 1, got {max_image_side!r}")
        self.jit = jit
        self.kernels = kernels
        #: in a graph (tf.data) a ragged batch's sizes are unknown when tracing: the antialias
        #: filter of a resize reaches as far as images of at most this side need
        self.max_image_side = max_image_side

    def make_run(self, pipeline: Any, **run_options: Any) -> TFRun:
        return TFRun(pipeline, self, **run_options)

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        if isinstance(images, tf.Tensor):
            x = images
        elif isinstance(images, tf.Variable):
            x = tf.convert_to_tensor(images)
        else:
            root = type(images).__module__.split(".")[0]
            if root in ("torch", "jax", "jaxlib"):
                raise InputTypeError(
                    f"tensorflow backend: got a {type(images).__module__}.{type(images).__name__}; "
                    "convert it to a tf.Tensor or NumPy array, or compile the pipeline for that framework")
            try:
                a = np.asarray(images)
            except Exception as e:  # ragged lists and the like
                raise InputTypeError(f"tensorflow backend: cannot read the images as an array ({e})") from None
            if a.dtype.kind not in "uifb":
                raise InputTypeError(f"tensorflow backend: images of dtype {a.dtype} are not numbers")
            x = tf.convert_to_tensor(a)
        if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
            raise InputTypeError(f"tensorflow backend: tensors of dtype {x.dtype.name} are not numbers")
        return x

    def as_labels(self, labels: Any) -> Any:
        return self.as_images(labels)

    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None:
        if not tf.executing_eagerly():
            return None  # would need the values: no check in graph mode
        a = ids.numpy()
        return bool(a.size == 0 or (a.min() >= 0 and a.max() < num_classes))

    def has_nan(self, x: Any) -> bool | None:
        return None

    # ---------------------------------------------------------------- basics
    def asarray(self, v: Any, dtype: str | None = None) -> Any:
        if isinstance(v, (tf.Tensor, tf.Variable)):
            return tf.cast(v, _DTYPES[dtype]) if dtype else tf.convert_to_tensor(v)
        a = np.asarray(v)
        if dtype is None and a.dtype == np.float64:
            a = a.astype(np.float32)
        if dtype == "bfloat16":
            return tf.cast(tf.constant(a.astype(np.float32)), tf.bfloat16)
        if dtype == "uint32":
            return tf.constant(a.astype(np.uint32))
        return tf.constant(a, dtype=_DTYPES[dtype] if dtype else None)

    def cast(self, x: Any, dtype: str) -> Any:
        return tf.cast(x, _DTYPES[dtype])

    def dtype_name(self, x: Any) -> str:
        return tf.as_dtype(x.dtype).name

    def shape(self, x: Any) -> tuple[Any, ...]:
        """Static sizes as Python ints; a dimension unknown in graph mode (``None``, e.g. the
        batch of a ``tf.data`` pipeline without ``drop_remainder``) as an int32 scalar tensor."""
        s = x.shape if hasattr(x, "shape") else np.shape(x)
        if isinstance(s, tf.TensorShape):
            if s.rank is None:
                raise InputError("tensorflow backend: a tensor of unknown rank; augspec needs the rank and the "
                                 "image sizes statically (set them with tf.ensure_shape)")
            dims = s.as_list()
            if any(d is None for d in dims):
                dyn = tf.shape(x)
                return tuple(int(d) if d is not None else dyn[i] for i, d in enumerate(dims))
            return tuple(int(d) for d in dims)
        return tuple(int(d) for d in s)

    def is_array(self, x: Any) -> bool:
        return isinstance(x, (tf.Tensor, tf.Variable))

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.numpy() if hasattr(x, "numpy") else np.asarray(x)

    def arange(self, n: int, dtype: str = "int64") -> Any:
        return tf.range(n, dtype=_DTYPES[dtype])

    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return tf.ones(shape, dtype=_DTYPES[dtype])

    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return tf.zeros(shape, dtype=_DTYPES[dtype])

    def eye(self, n: int, dtype: str = "float32") -> Any:
        return tf.eye(n, dtype=_DTYPES[dtype])

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return tf.reshape(x, shape)

    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        return tf.broadcast_to(x, shape)

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return tf.transpose(x, axes)

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return tf.stack(list(xs), axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return tf.concat(list(xs), axis=axis)

    @staticmethod
    def _like(v: Any, ref: Any) -> Any:
        return v if isinstance(v, (tf.Tensor, tf.Variable)) else tf.constant(v, dtype=ref.dtype)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        ta, tb = isinstance(a, (tf.Tensor, tf.Variable)), isinstance(b, (tf.Tensor, tf.Variable))
        if ta and not tb:
            b = self._like(b, a)
        elif tb and not ta:
            a = self._like(a, b)
        elif not ta and not tb:
            a, b = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
        return tf.where(c, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return tf.minimum(tf.maximum(x, lo), hi)

    floor = staticmethod(tf.math.floor)
    sqrt = staticmethod(tf.math.sqrt)
    log = staticmethod(tf.math.log)
    exp = staticmethod(tf.math.exp)
    cos = staticmethod(tf.math.cos)
    sin = staticmethod(tf.math.sin)
    tan = staticmethod(tf.math.tan)

    def minimum(self, a: Any, b: Any) -> Any:
        return tf.minimum(a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return tf.maximum(a, b)

    def matmul(self, a: Any, b: Any) -> Any:
        return tf.linalg.matmul(a, b)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return tf.reduce_mean(tf.cast(x, tf.float32), axis=axis, keepdims=keepdims)

    def any(self, x: Any, axis: Any = None) -> Any:
        return tf.reduce_any(x, axis=axis)

    def argsort(self, x: Any) -> Any:
        """Stable argsort of a 1-D vector, by ranks and a one-hot scatter (O(n^2),
        n the batch size): XLA-friendly for any integer dtype."""
        n = self.shape(x)[0]
        ar = tf.range(n, dtype=tf.int64)
        xi, xj = x[:, None], x[None, :]
        before = (xj < xi) | ((xj == xi) & (ar[None, :] < ar[:, None]))
        rank = tf.reduce_sum(tf.cast(before, tf.int64), axis=1)  # rank[i] = position of x[i]
        onehot = tf.cast(rank[None, :] == ar[:, None], tf.int64)  # [p, i] = (rank[i] == p)
        return tf.reduce_sum(onehot * ar[None, :], axis=1)

    def take_along(self, x: Any, idx: Any, axis: str) -> Any:
        dim = (1 if axis == "h" else 2) if self.layout == "NHWC" else (2 if axis == "h" else 3)
        return tf.gather(x, idx, axis=dim, batch_dims=1)

    def take(self, x: Any, idx: Any) -> Any:
        """``x[idx]`` along the batch. Under XLA an optimisation barrier first makes
        XLA materialise ``x``: otherwise it fuses the producers of ``x`` (the whole
        warp) into the gather and recomputes them per element, ~8x slower on R2."""
        if x.shape.rank is not None and x.shape.rank >= 3 and in_xla_context():
            x = _xla_barrier(x)
        return tf.gather(x, idx, axis=0)

    def bincount(self, idx: Any, bins: int) -> Any:
        """One ``unsorted_segment_sum`` of ones (XLA and graph mode; ``R`` may be unknown when
        tracing), the rows offset by ``row * bins``."""
        idx = tf.cast(idx, tf.int32)
        r = tf.shape(idx)[0]
        flat = tf.reshape(idx + tf.range(r, dtype=tf.int32)[:, None] * bins, (-1,))
        counts = tf.math.unsorted_segment_sum(tf.ones_like(flat), flat, r * bins)
        return tf.cast(tf.reshape(counts, (-1, bins)), tf.float32)

    def logical_xor(self, a: Any, b: Any) -> Any:
        return tf.math.logical_xor(a, b)

    def logical_not(self, a: Any) -> Any:
        return tf.math.logical_not(a)

    # the generator's "uint32" arrays are tf.uint32 tensors (any integer dtype works:
    # Python ints take the dtype of the tensor; mul32 masks a wider one to 32 bits)
    @staticmethod
    def _int_like(b: Any, a: Any) -> Any:
        return tf.constant(b, a.dtype) if isinstance(b, int) else b

    def bitxor(self, a: Any, b: Any) -> Any:
        return tf.bitwise.bitwise_xor(a, self._int_like(b, a))

    def bitand(self, a: Any, b: Any) -> Any:
        return tf.bitwise.bitwise_and(a, self._int_like(b, a))

    def shr(self, a: Any, n: int) -> Any:
        return tf.bitwise.right_shift(a, tf.constant(n, a.dtype))

    def mul32(self, a: Any, c: int) -> Any:
        """The product modulo 2**32 (uint32 multiplication wraps)."""
        if a.dtype == tf.uint32:
            return a * tf.constant(c & M32, tf.uint32)
        return tf.bitwise.bitwise_and(a * tf.constant(c & M32, a.dtype), tf.constant(M32, a.dtype))

    def one_hot(self, ids: Any, k: int) -> Any:
        return tf.one_hot(tf.reshape(ids, (-1,)), k, dtype=tf.float32)

    # ---------------------------------------------------------------- images
    def flip(self, x: Any, axis: str) -> Any:
        ax = self._spatial_axes()[1 if axis == "w" else 0]
        return tf.reverse(x, axis=[ax])

    def channel_min(self, x: Any) -> Any:
        return tf.reduce_min(x, axis=self._spatial_axes())

    def channel_max(self, x: Any) -> Any:
        return tf.reduce_max(x, axis=self._spatial_axes())

    def color_affine(self, x: Any, a: Any, t: Any) -> Any:
        a = tf.cast(a, tf.float32)
        t = tf.cast(t, tf.float32)
        c = self.shape(a)[-1]
        if not in_xla_context():
            # one batched matmul pass (elementwise slices would cost a pass each)
            if self.layout == "NHWC":
                return tf.einsum("nhwc,ndc->nhwd", x, a) + t[:, None, None, :]
            return tf.einsum("nchw,ndc->ndhw", x, a) + t[:, :, None, None]
        if self.layout == "NHWC":
            # under XLA, out[..., d] = sum_c x[..., c] a[d, c] + t[d] fuses into the chain
            xs = [x[..., k:k + 1] for k in range(c)]
            cols = [a[:, None, None, :, k] for k in range(c)]  # (N, 1, 1, C) = a[:, :, k]
            out = t[:, None, None, :] + xs[0] * cols[0]
            for k in range(1, c):
                out = out + xs[k] * cols[k]
            return out
        xs = [x[:, k:k + 1] for k in range(c)]
        cols = [a[:, :, k, None, None] for k in range(c)]  # (N, C, 1, 1)
        out = t[:, :, None, None] + xs[0] * cols[0]
        for k in range(1, c):
            out = out + xs[k] * cols[k]
        return out

    def _use_native_warp(self, interpolation: str, fill: tuple[float, ...]) -> bool:
        return (self.kernels == "native" and not self.jit and interpolation == "bilinear"
                and len(set(float(v) for v in fill)) == 1 and not in_xla_context())

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        x = self.to_nhwc(x)
        n, h, w, c = self.shape(x)
        inv = tf.cast(inverse, tf.float32)
        fill = tuple(float(v) for v in fill)
        if fill_mode != "constant":
            fill = (0.0,)  # never read
        if self._use_native_warp(interpolation, fill):
            return self.from_nhwc(_native_warp(x, inv, fill[0], fill_mode))
        jj = tf.range(w, dtype=tf.float32) + 0.5
        ii = tf.range(h, dtype=tf.float32) + 0.5

        def coord(r: int, m: Any = inv, j: Any = jj, i: Any = ii) -> Any:
            return m[:, r, 0, None, None] * j[None, None, :] + m[:, r, 1, None, None] * i[None, :, None] + m[:, r, 2, None, None]

        u, v = coord(0) - 0.5, coord(1) - 0.5  # (N, H, W) continuous column / row index
        flat = tf.reshape(x, (n * h * w, c))
        base = tf.reshape(tf.range(n, dtype=tf.int32) * (h * w), (n, 1, 1))
        fill_t = tf.reshape(tf.constant(fill if len(fill) == c else fill * c, tf.float32), (1, 1, 1, -1))

        def mirror(i: Any, size: int) -> Any:  # half-sample symmetric: period 2 size
            i = tf.math.floormod(self.clip(i, -1e7, 1e7), 2.0 * size)
            return tf.where(i >= size, 2.0 * size - 1.0 - i, i)

        def tap(vf: Any, uf: Any) -> tuple[Any, Any]:
            if fill_mode == "reflect":
                uf, vf = mirror(uf, w), mirror(vf, h)
            valid = (uf >= 0.0) & (uf <= w - 1.0) & (vf >= 0.0) & (vf <= h - 1.0)
            if fill_mode != "constant":  # "nearest": the clip below is the answer
                valid = tf.ones_like(valid)
            ui = tf.cast(self.clip(uf, 0.0, w - 1.0), tf.int32)
            vi = tf.cast(self.clip(vf, 0.0, h - 1.0), tf.int32)
            return tf.gather(flat, base + vi * w + ui), valid

        if interpolation == "nearest":
            # the reference's float64 index, so ties and near-ties pick the same pixel
            f64 = (tf.cast(inverse, tf.float64), tf.cast(jj, tf.float64), tf.cast(ii, tf.float64))

            def index(r: int) -> Any:  # small integers: exact in float32
                return tf.cast(tf.math.floor((coord(r, *f64) - 0.5) + 0.5), tf.float32)

            g, valid = tap(index(1), index(0))
            return self.from_nhwc(tf.where(valid[..., None], g, fill_t))
        u0, v0 = tf.math.floor(u), tf.math.floor(v)
        fu, fv = u - u0, v - v0
        out = None
        wsum = None
        for dv, wv in ((0.0, 1.0 - fv), (1.0, fv)):
            for du, wu in ((0.0, 1.0 - fu), (1.0, fu)):
                g, valid = tap(v0 + dv, u0 + du)
                wk = tf.where(valid, wv * wu, 0.0)
                term = g * wk[..., None]
                out = term if out is None else out + term
                wsum = wk if wsum is None else wsum + wk
        if any(f != 0.0 for f in fill):
            out = out + (1.0 - wsum)[..., None] * fill_t
        return self.from_nhwc(out)


def _xla_barrier(x: Any) -> Any:
    try:
        from tensorflow.compiler.tf2xla.python import xla as _xla

        return _xla.optimization_barrier(x)[0]
    except Exception:  # pragma: no cover - private API moved: correct, only slower
        return x


def _native_warp(x: Any, inv: Any, fill: float, fill_mode: str = "constant") -> Any:
    """Bilinear warp with ImageProjectiveTransformV3 (NHWC float32, one fill value).
    Its NEAREST and REFLECT modes map the coordinate (clamped, or mirrored about -0.5
    and W - 0.5, then clamped), which for a linear interpolation equals our mapping
    of the taps.

    That kernel maps output index (j, i) to input index ``T (j, i, 1)`` with pixel
    centres at integers; ours maps centres ``(j + 0.5, i + 0.5)``, so
    ``T = S(-0.5) inv S(0.5)``: the linear part stays, the offset becomes
    ``c + 0.5 (a + b) - 0.5`` (and likewise for the second row)."""
    a, b, c = inv[:, 0, 0], inv[:, 0, 1], inv[:, 0, 2]
    d, e, f = inv[:, 1, 0], inv[:, 1, 1], inv[:, 1, 2]
    zero = tf.zeros_like(a)
    t = tf.stack([a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5, zero, zero], axis=1)
    h, w = x.shape[1], x.shape[2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=t, output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(fill, tf.float32), interpolation="BILINEAR", fill_mode=fill_mode.upper())


# ------------------------------------------------------------------------ keys


def _lshr(x: Any, n: int) -> Any:
    """Logical right shift of int64 bit patterns (tf.bitwise.right_shift is arithmetic)."""
    return tf.bitwise.bitwise_and(tf.bitwise.right_shift(x, tf.constant(n, tf.int64)),
                                  tf.constant((1 << (64 - n)) - 1, tf.int64))


def _splitmix64_tf(x: Any) -> Any:
    x = x + tf.constant(_i64(0x9E3779B97F4A7C15), tf.int64)
    x = tf.bitwise.bitwise_xor(x, _lshr(x, 30)) * tf.constant(_i64(0xBF58476D1CE4E5B9), tf.int64)
    x = tf.bitwise.bitwise_xor(x, _lshr(x, 27)) * tf.constant(_i64(0x94D049BB133111EB), tf.int64)
    return tf.bitwise.bitwise_xor(x, _lshr(x, 31))


def derive_key_tf(seed: int, epoch: Any, step: Any, rank: Any, worker: Any) -> tuple[Any, Any]:
    """``core.random.derive_key`` in-graph: the seed is folded on the host (it is fixed
    per run), then epoch, step, rank and worker as int64 tensors. Bit-identical; the
    two words come out as ``tf.uint32`` scalars, the generator's key."""
    from ..core.random import _splitmix64

    h = tf.constant(_i64(_splitmix64(int(seed) & _M64)), tf.int64)
    for v in (epoch, step, rank, worker):
        h = _splitmix64_tf(tf.bitwise.bitwise_xor(h, tf.cast(v, tf.int64)))
    m32 = tf.constant(M32, tf.int64)
    return (tf.cast(tf.bitwise.bitwise_and(h, m32), tf.uint32),
            tf.cast(tf.bitwise.bitwise_and(_lshr(h, 32), m32), tf.uint32))


def counter_words_tf(slot: int, count: Any) -> tuple[Any, Any]:
    """The counters ``(index, slot)`` of elements ``0 .. count - 1`` of a draw slot for a
    count held in a tensor: the index word a ``tf.uint32`` range, the slot word a uint32
    scalar (``random_bits`` only indexes the pair, and the hash broadcasts it)."""
    return tf.cast(tf.range(tf.cast(count, tf.int64), dtype=tf.int64), tf.uint32), tf.constant(slot, tf.uint32)


# ------------------------------------------------------------------------ run


def _int64_scalar(v: Any, name: str) -> Any:
    if isinstance(v, (tf.Tensor, tf.Variable)):
        if v.shape.rank not in (None, 0):
            raise InputError(f"{name} must be a scalar, got a tensor of shape {v.shape}")
        if not v.dtype.is_integer:
            raise InputTypeError(f"{name} must be an integer, got dtype {v.dtype.name}")
        return tf.cast(v, tf.int64)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer or an integer tensor, got {v!r}")
    return tf.constant(_i64(int(v)), tf.int64)


def _check_static_image(x: Any, layout: str) -> None:
    """Images must have a known rank (3 or 4) and static height, width and channels."""
    if x.shape.rank not in (3, 4):
        raise InputError(
            f"images must be one image (3-D) or a batch (4-D) in {layout} layout, got shape {x.shape}")
    dims = x.shape.as_list()
    one = dims[1:] if len(dims) == 4 else dims
    if any(d is None for d in one):
        raise InputError(
            f"tensorflow backend: images of shape {tuple(dims)} have an unknown (None) height, width or channel "
            "count in graph mode; augspec needs them statically (resize to a fixed size, or fix the shape with "
            "tf.ensure_shape); only the batch size may be unknown")


def draw_dynamic(B: Any, sampler: Sampler, n: Any, hwc: tuple[int, int, int] | None, key: tuple[Any, Any]
                 ) -> dict[str, Any]:
    """``Sampler.sample`` for a batch size held in a tensor: each draw hashes its own
    counters ``(arange(count), slot)``, the same words as the core's one-pass layout
    (the hash is elementwise), so the params equal those of a static batch."""
    n64 = tf.cast(n, tf.int64)
    params: dict[str, Any] = {}
    shapes = sampler.leaf_shapes(hwc)
    for d in sampler.draws:
        vshape = sampler.value_shape(d, hwc, shapes)
        nvals = math.prod(vshape)
        if isinstance(d.dist, Permutation):
            # a stable sort of the bits, as the core's sampler
            params[d.key] = B.argsort(random_bits(B, counter_words_tf(d.slot, n64), key))
            continue
        rows = n64 if d.dist.per_sample else tf.constant(1, tf.int64)
        nuni = d.dist.uniforms
        bits = random_bits(B, counter_words_tf(d.slot, rows * (nvals * nuni)), key)
        u = tf.reshape(bits_to_uniform(B, bits), tf.stack([rows, *(tf.constant(v, tf.int64) for v in vshape),
                                                           tf.constant(nuni, tf.int64)]))
        v = d.dist.transform(B, u)
        if not d.dist.per_sample:
            v = tf.broadcast_to(v, tf.stack([n64, *(tf.constant(s, tf.int64) for s in vshape)]))
        params[d.key] = v
    return params


class TFRun(Run):
    """A pipeline compiled for TensorFlow.

    ``run(images, labels=None, *, training=True, step=None, epoch=None)`` works
    eagerly (it then calls one cached ``tf.function``, XLA-compiled with
    ``jit=True``), inside ``tf.function`` (``jit_compile=True`` included) and
    inside ``tf.data.Dataset.map``. The key is ``(seed, epoch, step, rank,
    worker)`` folded in-graph from int64 tensors: ``step`` given (an int or an
    integer tensor, e.g. from ``dataset.enumerate()``) is used as is; otherwise
    the run's step counter (a ``tf.Variable``) is read and advanced. In
    ``tf.data`` with parallel calls, pass ``step`` from the element: a shared
    counter is not deterministic there. ``epoch``, ``step``, ``rank`` and
    ``worker`` are ``tf.Variable``s, so ``set_epoch`` reaches functions
    already traced.

    Distributed: ``rank`` defaults to :func:`augspec.distributed.default_rank`
    (``$RANK``, or torch.distributed's rank when initialised) unless
    ``compile(..., rank=)`` sets it. Inside ``tf.distribute`` (``strategy.run``),
    the key's rank is ``rank * num_replicas_in_sync + replica_id_in_sync_group``
    (:func:`augspec.distributed.tf_replica_rank`), so each replica of a
    ``MirroredStrategy`` / ``TPUStrategy`` draws its own stream with no extra code;
    outside a replica context it is ``rank``.
    """

    def __init__(self, pipeline: Any, backend: TensorflowBackend, **options: Any):
        if options.get("rank") is None:  # fixed at compile time: the key is folded in-graph from variables
            options["rank"] = default_rank()
        if options.get("worker") is None:
            options["worker"] = process_worker()
        with tf.init_scope():
            self._vars = {k: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"augspec_{k}")
                          for k in ("epoch", "step", "rank", "worker")}
        super().__init__(pipeline, backend, **options)
        self._make_functions()

    #: input signatures a run keeps traced functions for; past that they are all dropped (a
    #: stream of ever-new image sizes must not grow the trace caches without bound)
    MAX_SIGNATURES = 32

    def _make_functions(self) -> None:
        """The run's ``tf.function``s, new (their trace caches empty)."""
        jit = self.backend.jit
        # autograph off: the kernels have no data-dependent Python control flow by design
        fn = functools.partial(tf.function, autograph=False)
        self._train_fn = fn(self._train_body, jit_compile=jit)
        self._train_counter_fn = fn(self._train_counter_body, jit_compile=jit)
        self._apply_fn = fn(self._apply_body, jit_compile=jit)
        self._eval_fn = fn(self._eval_body, jit_compile=jit)
        self._xla_run = fn(self._run_plain, jit_compile=True)
        self._xla_train = fn(self._train_plain, jit_compile=True)
        self._xla_sample = fn(self._sample_body, jit_compile=True)
        self._xla_head = fn(self._xla_head_body, jit_compile=True)
        self._xla_tail = fn(self._xla_tail_body, jit_compile=True)
        self._ragged_fn = fn(self._ragged_body, jit_compile=jit)
        self._eval_ragged_fn = fn(self._eval_ragged_body, jit_compile=jit)
        self._apply_ragged_fn = fn(self._apply_ragged_body, jit_compile=jit)
        self._concrete: dict[Any, Any] = {}

    # state as variables --------------------------------------------------
    def _get(self, k: str) -> int:
        return int(self._vars[k].numpy())

    def _set(self, k: str, v: int) -> None:
        self._vars[k].assign(_i64(int(v)))

    epoch = property(lambda self: self._get("epoch"), lambda self, v: self._set("epoch", v))
    step = property(lambda self: self._get("step"), lambda self, v: self._set("step", v))
    rank = property(lambda self: self._get("rank"), lambda self, v: self._set("rank", v))
    worker = property(lambda self: self._get("worker"), lambda self, v: self._set("worker", v))

    @property
    def trace_count(self) -> int:
        """How many times the training functions were traced: one per input signature
        (calls with and without an explicit ``step`` / ``epoch`` use one function each)."""
        return int(self._train_fn.experimental_get_tracing_count()
                   + self._train_counter_fn.experimental_get_tracing_count())

    def key_tensors(self, step: Any = None, epoch: Any = None) -> tuple[Any, Any, Any, Any]:
        """The key inputs ``(epoch, step, rank, worker)`` of one call as int64 scalars
        (``derive_key_tf`` folds them); the step counter advances when ``step`` is None."""
        e = self._vars["epoch"].read_value() if epoch is None else _int64_scalar(epoch, "epoch")
        if step is None:
            s = self._vars["step"].assign_add(1, read_value=True)
            s = tf.convert_to_tensor(s) - 1
        else:
            s = _int64_scalar(step, "step")
        return self._key_inputs(e, s)

    def _key_inputs(self, e: Any, s: Any) -> tuple[Any, Any, Any, Any]:
        # in a tf.distribute replica context the replica id is folded into the rank
        return e, s, tf_replica_rank(self._vars["rank"].read_value()), self._vars["worker"].read_value()

    # calling ---------------------------------------------------------------
    # (do_not_convert: inside a user's tf.function, autograph leaves augspec's code as written)
    def images(self, images: Any, sizes: Any = None) -> Any:
        """As ``Run.images``, and a ``tf.RaggedTensor`` (N, None, None, C) (NHWC) is taken as
        the padded batch ``to_tensor()`` and its images' sizes (in the graph, no host read)."""
        if isinstance(images, tf.RaggedTensor):
            if self.backend.layout != "NHWC" or images.shape.rank != 4:
                raise InputError(f"tensorflow backend: a ragged batch must be (N, None, None, C) in NHWC layout, got "
                                 f"shape {images.shape} ({self.backend.layout})")
            h = images.row_lengths(axis=1)
            w = tf.reduce_max(images.row_lengths(axis=2), axis=1)
            return Ragged(images.to_tensor(), tf.stack([h, w], axis=1))
        if sizes is not None and isinstance(sizes, tf.Tensor) and not tf.executing_eagerly():
            return Ragged(self.backend.as_images(images), tf.cast(sizes, tf.int64))
        return super().images(images, sizes)

    @tf.autograph.experimental.do_not_convert
    def _call_ragged(self, images: Any, labels: Any, training: bool, step: Any, epoch: Any) -> Any:
        """A batch of images of different sizes: the padded batch and the sizes go into the
        function as two tensors (the host checks the sizes first where it has them)."""
        B = self.backend
        y = None if labels is None else B.as_labels(labels)
        if isinstance(images.sizes, np.ndarray):
            self._check_ragged(self.plan if training else self.eval_plan, images.sizes)
        sizes = tf.cast(tf.convert_to_tensor(images.sizes), tf.int64)
        eager = tf.executing_eagerly()
        if not training:
            return self._eval_ragged_fn(images.x, sizes, y) if eager else self._eval_ragged_body(images.x, sizes, y)
        y = self._guard_ids(y)
        keys = self.key_tensors(step, epoch)
        if eager:
            return self._ragged_fn(images.x, sizes, y, *keys)
        return self._ragged_body(images.x, sizes, y, *keys)

    def _ragged_body(self, x: Any, sizes: Any, y: Any, epoch: Any, step: Any, rank: Any, worker: Any) -> Any:
        n = self.backend.shape(x)[0]
        hwc = (None, None, self.backend.image_dims(x)[3])
        params = self._draw(n, hwc, derive_key_tf(self.seed, epoch, step, rank, worker))
        return Run._run(self, self.plan, Ragged(x, sizes), y, params)

    def _apply_ragged_body(self, x: Any, sizes: Any, y: Any, params: Any) -> Any:
        return Run._run(self, self.plan, Ragged(x, sizes), y, params)

    def _eval_ragged_body(self, x: Any, sizes: Any, y: Any) -> Any:
        return Run._run(self, self.eval_plan, Ragged(x, sizes), y, {}, convert_labels=False)

    @tf.autograph.experimental.do_not_convert
    def __call__(self, images: Any, labels: Any = None, *, training: bool = True, step: Any = None,
                 epoch: Any = None, sizes: Any = None, **targets: Any) -> Any:
        req = parse(images, labels, sizes, targets)
        if req is not None:  # masks, boxes, keypoints: the core's two-step call (core/targets.py)
            return self._call_targets(req, training, step=step, epoch=epoch)
        B = self.backend
        images = self.images(images, sizes)
        if isinstance(images, Ragged):
            return self._call_ragged(images, labels, training, step, epoch)
        x = B.as_images(images)
        y = None if labels is None else B.as_labels(labels)
        _check_static_image(x, B.layout)
        eager = tf.executing_eagerly()
        if not training:
            return self._eval_fn(x, y) if eager else self._eval_body(x, y)
        y = self._guard_ids(y)
        if eager and step is None and epoch is None and not tf.config.functions_run_eagerly():
            # the counter is read and advanced in the function; calling the concrete
            # function of this signature skips tf.function's dispatch (~0.2 ms a call)
            # (not under tf.config.run_functions_eagerly, which a concrete function ignores)
            sig = (tuple(x.shape), x.dtype, None if y is None else (tuple(y.shape), y.dtype))
            cf = self._concrete.get(sig)
            if cf is None:
                if len(self._concrete) >= self.MAX_SIGNATURES:
                    self._make_functions()
                cf = self._concrete[sig] = self._train_counter_fn.get_concrete_function(x, y)
            return cf(x, y)
        keys = self.key_tensors(step, epoch)
        return self._train_fn(x, y, *keys) if eager else self._train_body(x, y, *keys)

    def _targets_step(self, plan: Any, images: Any, labels: Any, t: Any, ctx: Any, training: bool,
                      step: Any = None, epoch: Any = None) -> tuple[Any, Any]:
        """A call with targets: the key from the step variables, in the graph where there is one
        (``tf.data``, a Keras layer), the batch size a tensor if unknown; then ``apply`` and the
        targets' pass under those params."""
        if not training:
            return super()._targets_step(plan, images, labels, t, ctx, training)
        if (tf.executing_eagerly() and step is None and epoch is None and not isinstance(images, Ragged)
                and not tf.config.functions_run_eagerly()):
            # eagerly: the whole step as one function (the targets' pass op by op costs 10x the images)
            fields_ = [f.name for f in dataclasses.fields(Targets) if f.name != "soft"]
            key = (t.soft, labels is None)
            fn = self.__dict__.setdefault("_targets_fns", {}).get(key)
            if fn is None:
                def body(x: Any, y: Any, arrays: dict[str, Any], soft: bool = t.soft) -> Any:
                    c = self._check_batch(plan, x, y, "check")[-1]  # this trace's sizes
                    out, moved = self._targets_step(plan, x, y, Targets(soft=soft, **arrays), c, training)
                    return out, {f: getattr(moved, f) for f in fields_}
                fn = self._targets_fns[key] = tf.function(body, autograph=False)
            x = self.backend.as_images(images)
            y = None if labels is None else self._guard_ids(self.backend.as_labels(labels))
            out, arrays = fn(x, y, {f: getattr(t, f) for f in fields_})
            return out, dataclasses.replace(t, **arrays)
        B = self.backend
        x = self._buffer(images)
        if isinstance(images, Ragged):
            n, hwc = B.shape(x)[0], (None, None, B.image_dims(x)[3])
        else:
            n, hwc = self._image_meta(x)
        e, s, r, w = self.key_tensors(step, epoch)
        params = self._draw(n, hwc, derive_key_tf(self.seed, e, s, r, w))
        out = self.apply(images, labels, params)
        if self.backend.kernels == "xla" and not tf.executing_eagerly() and not in_xla_context():
            # the pass compiled by XLA as the images are, so a nearest pick decides a tie as theirs does
            return out, self._xla_move(plan, t, params, ctx)
        return out, move(plan, B, t, params, ctx, self.targets)

    def _xla_move(self, plan: Any, t: Any, params: Any, ctx: Any) -> Any:
        fields_ = [f.name for f in dataclasses.fields(Targets) if f.name != "soft"]

        def body(arrays: dict[str, Any], params: Any) -> Any:
            moved = move(plan, self.backend, Targets(soft=t.soft, **arrays), params, ctx, self.targets)
            return {f: getattr(moved, f) for f in fields_}

        arrays = tf.function(body, jit_compile=True, autograph=False)({f: getattr(t, f) for f in fields_}, params)
        return dataclasses.replace(t, **arrays)

    def _guard_ids(self, y: Any) -> Any:
        """Class ids out of ``[0, num_classes)`` raise instead of becoming all-zero one-hot
        rows: eagerly an ``InputError``; in a graph, ids that pass through
        ``tf.debugging`` asserts (an ``InvalidArgumentError`` naming the range), made
        here, outside any XLA sub-function. XLA drops asserts: no check under XLA."""
        k = self.num_classes
        if y is None or not (y.shape.rank in (0, 1) and y.dtype.is_integer and self.plan.changes_labels and k):
            return y
        msg = f"class ids must lie in [0, {k}) (num_classes={k})"
        if tf.executing_eagerly():
            a = y.numpy()
            if a.size and (a.min() < 0 or a.max() >= k):
                raise InputError(msg)
            return y
        if in_xla_context():
            return y
        ids = tf.cast(y, tf.int64)
        checks = [tf.debugging.assert_non_negative(ids, message=msg),
                  tf.debugging.assert_less(ids, tf.constant(k, tf.int64), message=msg)]
        with tf.control_dependencies(checks):
            return tf.identity(y)

    def _image_meta(self, x: Any) -> tuple[int, tuple[int, int, int] | None]:
        shape = self.backend.shape(x)
        if len(shape) == 4:
            n, one = shape[0], shape[1:]
        else:
            n, one = 1, shape
        a, b, c = one
        hwc = (a, b, c) if self.backend.layout == "NHWC" else (b, c, a)
        return n, hwc

    def _train_body(self, x: Any, y: Any, epoch: Any, step: Any, rank: Any, worker: Any) -> Any:
        """Key, params and image stages; with ``kernels="xla"`` (outside XLA, in graph
        mode) all three run as one XLA-compiled sub-function, the variables outside it."""
        if self.backend.kernels == "xla" and not tf.executing_eagerly() and not in_xla_context():
            if self._cut(self.plan) is None:
                return self._xla_train(x, y, epoch, step, rank, worker)
            params = self._xla_sample(x, epoch, step, rank, worker)
            return self._run_split(self.plan, x, y, params, True)
        return self._train_plain(x, y, epoch, step, rank, worker)

    def _sample_body(self, x: Any, epoch: Any, step: Any, rank: Any, worker: Any) -> dict[str, Any]:
        n, hwc = self._image_meta(x)
        return self._draw(n, hwc, derive_key_tf(self.seed, epoch, step, rank, worker))

    def _train_plain(self, x: Any, y: Any, epoch: Any, step: Any, rank: Any, worker: Any) -> Any:
        n, hwc = self._image_meta(x)
        key = derive_key_tf(self.seed, epoch, step, rank, worker)
        params = self._draw(n, hwc, key)
        return self._run_plain(self.plan, x, y, params)

    def _train_counter_body(self, x: Any, y: Any) -> Any:
        return self._train_body(x, y, *self.key_tensors())

    def _apply_body(self, x: Any, y: Any, params: dict[str, Any]) -> Any:
        return self._run(self.plan, x, y, params)

    def _eval_body(self, x: Any, y: Any) -> Any:
        return Run._evaluate(self, x, y)

    def _draw(self, batch_size: Any, hwc: tuple[int, int, int] | None, key: tuple[Any, Any]) -> dict[str, Any]:
        B = self.backend
        if not isinstance(batch_size, int) or batch_size == 0:
            # (an empty batch too: the core's sampler reads its uint32 counters as the
            # uniforms when there are no values, which TF's float ops refuse)
            return draw_dynamic(B, self.plan.sampler, batch_size, hwc, key)
        counters = tf.constant(self.plan.sampler.counters_numpy(batch_size, hwc), tf.uint32)
        return self.plan.sampler.sample(B, batch_size, (key[0], key[1]), hwc, counters=counters)

    def _run(self, plan: Any, images: Any, labels: Any, params: Any, convert_labels: bool = True) -> Any:
        """The image stages: one XLA-compiled sub-function with ``kernels="xla"``
        (outside XLA and in graph mode), else op by op."""
        if self.backend.kernels == "xla" and not tf.executing_eagerly() and not in_xla_context():
            return self._run_split(plan, images, labels, params, convert_labels)
        return self._run_plain(plan, images, labels, params, convert_labels)

    def _run_plain(self, plan: Any, images: Any, labels: Any, params: Any, convert_labels: bool = True) -> Any:
        """The core's ``Run._run`` (its checks take a batch size held in a tensor)."""
        x = self.backend.as_images(images)
        _check_static_image(x, self.backend.layout)
        return Run._run(self, plan, x, labels, params, convert_labels)

    def _context(self, x: Any, k: Any) -> Context:
        n, h, w, c = self.backend.image_dims(x)
        return Context(n, h, w, c, k)

    def _finish(self, xo: Any, yo: Any, out_dtype: str, single: bool, has_labels: bool) -> Any:
        """The output conversion that ends ``Run._run``."""
        B = self.backend
        if out_dtype == "uint8":
            xo = B.cast(B.floor(B.clip(xo, 0.0, 1.0) * 255.0 + 0.5), "uint8")
        elif out_dtype != "float32":
            xo = B.cast(xo, out_dtype)
        if single:
            xo = tf.squeeze(xo, 0)
            if has_labels and yo is not None:
                yo = tf.squeeze(yo, 0)
        return (xo, yo) if has_labels else xo

    @staticmethod
    def _cut(plan: Any) -> int | None:
        """The first mix stage after other stages: where the XLA sub-function is split."""
        for i, st in enumerate(plan.stages):
            if st.kind == "mix" and i > 0:
                return i
        return None

    def _xla_head_body(self, plan: Any, x: Any, y: Any, params: Any, k: Any, cut: int) -> tuple:
        xf = tf.cast(x, tf.float32)
        if x.dtype == tf.uint8:
            xf = xf * (1.0 / 255.0)
        ctx = replace(self._context(xf, k), dtype=self.backend.dtype_name(x))  # the input's dtype
        return plan.apply(self.backend, xf, y, params, ctx, self.fuse, stages=(0, cut))

    def _xla_tail_body(self, plan: Any, xh: Any, yh: Any, params: Any, k: Any, cut: int, out_dtype: str,
                       single: bool, has_labels: bool) -> Any:
        xo, yo = plan.apply(self.backend, xh, yh, params, self._context(xh, k), self.fuse,
                            stages=(cut, len(plan.stages)))
        return self._finish(xo, yo, out_dtype, single, has_labels)

    def _run_split(self, plan: Any, images: Any, labels: Any, params: Any, convert_labels: bool) -> Any:
        """``kernels="xla"`` in graph mode: one XLA sub-function, or two split before the
        first mix stage. In one XLA cluster, the partner gather of a warped batch runs
        several times slower than the two parts apart (XLA CPU), so the batch entering
        the mix stage is materialised between two clusters. The core's checks (and the
        small label conversion) run before, outside XLA."""
        B = self.backend
        cut = self._cut(plan)
        x = B.as_images(images)
        _check_static_image(x, B.layout)
        n0 = B.shape(x)[0] if x.shape.rank == 4 else 1
        if cut is None or (isinstance(n0, int) and n0 == 0):
            return self._xla_run(plan, x, labels, params, convert_labels)
        xb, y, single, _, out_dtype, ctx = self._check_batch(plan, x, labels, convert_labels)
        self._check_params(plan, params, ctx.n, ctx)
        xh, yh = self._xla_head(plan, xb, y, params, ctx.num_classes, cut)
        return self._xla_tail(plan, xh, yh, params, ctx.num_classes, cut, out_dtype, single, labels is not None)

    def key(self) -> tuple[int, int]:
        from ..core.random import derive_key

        return derive_key(self.seed, self.epoch, self.step, self.rank, self.worker)

    @tf.autograph.experimental.do_not_convert
    def sample(self, batch_size: int, image_shape: tuple[int, ...] | None = None, *, step: Any = None,
               epoch: Any = None) -> dict[str, Any]:
        """Draw the params of one call as tensors (in-graph; advances the step counter
        unless ``step`` is given)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise InputError(f"sample: batch_size must be an integer >= 0, got {batch_size!r}")
        hwc = None
        if image_shape is not None:
            image_shape = tuple(int(v) for v in image_shape)
            if len(image_shape) != 3:
                raise InputError(f"sample: image_shape must be one image's shape (3 numbers), got {image_shape}")
            a, b, c = image_shape
            hwc = (a, b, c) if self.backend.layout == "NHWC" else (b, c, a)
        e, s, r, w = self.key_tensors(step, epoch)
        return self._draw(batch_size, hwc, derive_key_tf(self.seed, e, s, r, w))

    @tf.autograph.experimental.do_not_convert
    def apply(self, images: Any, labels: Any = None, params: Any = None, *, sizes: Any = None) -> Any:
        if params is None:
            raise InputError("apply: params are required (draw them with run.sample)")
        B = self.backend
        images = self.images(images, sizes)
        if isinstance(images, Ragged):
            y = None if labels is None else self._guard_ids(B.as_labels(labels))
            if isinstance(images.sizes, np.ndarray):
                self._check_ragged(self.plan, images.sizes)
            p = {k: v if isinstance(v, tf.Tensor) else tf.convert_to_tensor(np.asarray(v)) for k, v in params.items()}
            sz = tf.cast(tf.convert_to_tensor(images.sizes), tf.int64)
            body = self._apply_ragged_fn if tf.executing_eagerly() else self._apply_ragged_body
            return body(images.x, sz, y, p)
        x = B.as_images(images)
        y = None if labels is None else B.as_labels(labels)
        p = {k: v if isinstance(v, tf.Tensor) else tf.convert_to_tensor(np.asarray(v)) for k, v in params.items()}
        y = self._guard_ids(y)
        return self._apply_fn(x, y, p) if tf.executing_eagerly() else self._apply_body(x, y, p)
