"""The JAX backend: jnp primitives, and a run that jit-compiles the whole call.

- Layout NHWC by default (NCHW allowed). Images: JAX arrays or anything
  ``jnp.asarray`` reads (not torch / tensorflow tensors); outputs are JAX arrays.
- No ``jax_enable_x64`` needed: dtype names map to the canonical jnp dtype, so
  while x64 is off "int64" is int32 and "float64" float32 (a float64 input then
  comes back float32; drawn indices and int64 labels are int32).
- ``run(images, labels)`` draws and applies inside ONE cached ``jax.jit``
  function (one trace per input shape/dtype): the key words, derived on the host
  from the run's step, are traced uint32 scalars, the draws happen on the device.
  Inside a user's ``jax.jit`` the step would be read once, at trace time.
  ``run.sample`` / ``run.apply`` run eagerly. Uniforms are NumPy's bit for bit.
- The warp's coordinates are float32 error-free sums (exact 8-bit product
  pieces, TwoSum): about 48 bits of ``inverse @ (j + 0.5, i + 0.5, 1)``, so tap
  indices and nearest picks (``floor(u + 0.5)``, ties up) are NumPy's float64
  ones except within ~2**-48 |coordinate| of a pixel edge (sizes < 32768); bilinear
  weights are float32 (within 1e-4 of NumPy).
- ``check_class_ids`` is None inside a trace: the run checks ids before its jit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..core.errors import InputTypeError
from ..core.run import Ragged, Run
from ..core.target_io import parse
from ..core.targets import Targets, move
from .base import Backend

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64, "int64": jnp.int64, "uint8": jnp.uint8,
           "bool": jnp.bool_, "float16": jnp.float16, "bfloat16": jnp.bfloat16, "int32": jnp.int32,
           "uint32": jnp.uint32}
_HI = lax.Precision.HIGHEST  # no TF32 / bf16 passes on accelerators: float32 products as NumPy's


def _dt(name: str) -> Any:
    """The jnp dtype of a name; 64-bit names become 32-bit ones while x64 is off."""
    return jax.dtypes.canonicalize_dtype(_DTYPES[name])


def _two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """``s + e == a + b`` exactly (Knuth), ``s`` the rounded sum."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _exact_sum(terms: Sequence[Any]) -> tuple[Any, Any]:
    """The sum of float32 terms as ``hi + lo`` with ``hi`` its float32 rounding."""
    hi, lo = terms[0], 0.0 * terms[0]
    for t in terms[1:]:
        hi, e = _two_sum(hi, t)
        lo = lo + e
    s = hi + lo
    return s, lo - (s - hi)


def _split3(a: Any) -> tuple[Any, Any, Any]:
    """``a`` as three float32 pieces of at most 8 significant bits each (exact sum)."""
    def top(v: Any) -> Any:
        bits = lax.bitcast_convert_type(v, jnp.uint32) & jnp.uint32(0xFFFF0000)
        return lax.bitcast_convert_type(bits, jnp.float32)

    r = a - top(a)
    return top(a), top(r), r - top(r)


def _floor_frac(hi: Any, lo: Any) -> tuple[Any, Any]:
    """``floor(hi + lo)`` (float32) and the fraction ``hi + lo - floor`` rounded to float32."""
    f = jnp.floor(hi)
    on = hi == f  # lo may then push the sum just below the integer
    neg = on & (lo < 0)
    frac = jnp.where(on, jnp.where(neg, 1.0 + lo, lo), (hi - f) + lo)
    return f - neg, frac


class JaxBackend(Backend):
    name = "jax"
    pack_multiple = 64  # fewer distinct buffer shapes, fewer traces
    array_module = "jax"

    def make_run(self, pipeline: Any, **run_options: Any) -> JaxRun:
        return JaxRun(pipeline, self, **run_options)

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        mod = type(images).__module__.split(".")[0]
        if mod in ("torch", "tensorflow"):
            raise InputTypeError(
                f"jax backend: got a {type(images).__module__}.{type(images).__name__}; convert it "
                "(np.asarray(t), dlpack) or compile the pipeline for that framework")
        try:
            a = jnp.asarray(images)
        except Exception as e:  # ragged lists, strings and the like
            raise InputTypeError(f"jax backend: cannot read the images as an array ({e})") from None
        if not (jnp.issubdtype(a.dtype, jnp.number) or a.dtype == jnp.bool_):
            raise InputTypeError(f"jax backend: images of dtype {a.dtype} are not numbers")
        return a

    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None:
        return None if isinstance(ids, jax.core.Tracer) else super().check_class_ids(ids, num_classes)

    def has_nan(self, x: Any) -> bool | None:
        return None if isinstance(x, jax.core.Tracer) else bool(jnp.issubdtype(x.dtype, jnp.floating) and jnp.isnan(x).any())

    def asarray(self, v: Any, dtype: str | None = None) -> Any:
        return jnp.asarray(v, dtype=_dt(dtype) if dtype else None)

    def cast(self, x: Any, dtype: str) -> Any:
        return jnp.asarray(x).astype(_dt(dtype))

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype if hasattr(x, "dtype") else jnp.asarray(x).dtype)

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(jnp.shape(x))

    def is_array(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    # ---------------------------------------------------------------- basics
    def arange(self, n: int, dtype: str = "int64") -> Any:
        return jnp.arange(n, dtype=_dt(dtype))

    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return jnp.ones(tuple(shape), dtype=_dt(dtype))

    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        return jnp.zeros(tuple(shape), dtype=_dt(dtype))

    def eye(self, n: int, dtype: str = "float32") -> Any:
        return jnp.eye(n, dtype=_dt(dtype))

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return jnp.reshape(x, tuple(shape))

    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        return jnp.broadcast_to(x, tuple(shape))

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return jnp.transpose(x, tuple(axes))

    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return jnp.stack(list(xs), axis=axis)

    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        return jnp.concatenate(list(xs), axis=axis)

    where = staticmethod(jnp.where)
    floor = staticmethod(jnp.floor)
    sqrt = staticmethod(jnp.sqrt)
    log = staticmethod(jnp.log)
    exp = staticmethod(jnp.exp)
    cos = staticmethod(jnp.cos)
    sin = staticmethod(jnp.sin)
    tan = staticmethod(jnp.tan)
    minimum = staticmethod(jnp.minimum)
    maximum = staticmethod(jnp.maximum)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return jnp.clip(x, lo, hi)

    def matmul(self, a: Any, b: Any) -> Any:
        return jnp.matmul(a, b, precision=_HI)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return jnp.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return jnp.mean(x, axis=axis, keepdims=keepdims)

    def any(self, x: Any, axis: Any = None) -> Any:
        return jnp.any(x, axis=axis)

    def argsort(self, x: Any) -> Any:
        return jnp.argsort(x, stable=True)

    def take(self, x: Any, idx: Any) -> Any:
        return jnp.take(x, idx, axis=0)

    def bincount(self, idx: Any, bins: int) -> Any:
        """A scatter-add of ones into ``R * bins`` counters, the rows offset by ``row * bins``."""
        r = idx.shape[0]
        flat = (idx.astype(jnp.int32) + jnp.arange(r, dtype=jnp.int32)[:, None] * bins).reshape(-1)
        counts = jnp.zeros((r * bins,), jnp.int32).at[flat].add(1, mode="drop")
        return counts.reshape(r, bins).astype(jnp.float32)

    def bitxor(self, a: Any, b: Any) -> Any:
        return jnp.bitwise_xor(a, jnp.uint32(b) if isinstance(b, int) else b)

    def shr(self, a: Any, n: int) -> Any:
        return jnp.right_shift(a, jnp.uint32(n))

    def mul32(self, a: Any, c: int) -> Any:
        return a * jnp.uint32(c)  # uint32 arithmetic wraps modulo 2**32

    # ---------------------------------------------------------------- images
    def flip(self, x: Any, axis: str) -> Any:
        return jnp.flip(x, axis=self._spatial_axes()[1 if axis == "w" else 0])

    def channel_min(self, x: Any) -> Any:
        return jnp.min(x, axis=self._spatial_axes())

    def channel_max(self, x: Any) -> Any:
        return jnp.max(x, axis=self._spatial_axes())

    def color_affine(self, x: Any, a: Any, t: Any) -> Any:
        a = jnp.asarray(a, jnp.float32)
        t = jnp.asarray(t, jnp.float32)
        if self.layout == "NHWC":
            n, h, w, c = x.shape
            out = jnp.matmul(x.reshape(n, h * w, c), jnp.swapaxes(a, 1, 2), precision=_HI).reshape(n, h, w, c)
            return out + t[:, None, None, :]
        n, c, h, w = x.shape
        out = jnp.matmul(a, x.reshape(n, c, h * w), precision=_HI).reshape(n, c, h, w)
        return out + t[:, :, None, None]

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        """As the NumPy backend's warp (pixel-centre frame, one pixel of ``fill`` padding,
        a bilinear tap of weight 0 reads its partner's pixel); coordinates as in the
        module notes: float32 pieces with about float64's tap indices."""
        x = self.to_nhwc(x)
        n, h, w, c = x.shape
        inv = jnp.asarray(inverse, jnp.float32)
        jj = (jnp.arange(w, dtype=jnp.float32) + 0.5)[None, None, :]
        ii = (jnp.arange(h, dtype=jnp.float32) + 0.5)[None, :, None]
        # nearest reads floor(u + 0.5) = floor(s); bilinear floor(u) with u = s - 0.5
        half = [] if interpolation == "nearest" else [jnp.full((1, 1, 1), -0.5, jnp.float32)]

        def coord(row: int) -> tuple[Any, Any]:
            e = [inv[:, row, k, None, None] for k in range(3)]
            terms = [p * ii for p in _split3(e[1])] + [e[2], *half] + [p * jj for p in _split3(e[0])]
            return _floor_frac(*_exact_sum(terms))

        (u0, fu), (v0, fv) = coord(0), coord(1)
        pad = jnp.broadcast_to(jnp.asarray(fill, jnp.float32), (n, h + 2, w + 2, c))
        flat = pad.at[:, 1:-1, 1:-1, :].set(x.astype(jnp.float32)).reshape(-1, c)
        base = (jnp.arange(n, dtype=jnp.int32) * ((h + 2) * (w + 2)))[:, None, None]

        def tap(i: Any, size: int) -> Any:
            """A tap's index into the padded image (index -1 and ``size`` are the fill)."""
            i = jnp.clip(i, -(1 << 30), 1 << 30).astype(jnp.int32)
            if fill_mode == "nearest":
                i = jnp.clip(i, 0, size - 1)
            elif fill_mode == "reflect":  # half-sample symmetric: period 2 size
                i = jnp.mod(i, 2 * size)
                i = jnp.where(i >= size, 2 * size - 1 - i, i)
            return jnp.clip(i, -1, size) + 1

        if interpolation == "nearest":
            return self.from_nhwc(jnp.take(flat, base + tap(v0, h) * (w + 2) + tap(u0, w), axis=0))
        ua, ub = tap(u0, w), tap(u0 + (fu > 0), w)
        ra, rb = base + tap(v0, h) * (w + 2), base + tap(v0 + (fv > 0), h) * (w + 2)
        fu, fv = fu[..., None], fv[..., None]
        gu, gv = 1.0 - fu, 1.0 - fv
        top = jnp.take(flat, ra + ua, axis=0) * gu + jnp.take(flat, ra + ub, axis=0) * fu
        bot = jnp.take(flat, rb + ua, axis=0) * gu + jnp.take(flat, rb + ub, axis=0) * fu
        return self.from_nhwc(top * gv + bot * fv)


class JaxRun(Run):
    """A pipeline compiled for JAX: ``run(images, labels)`` is one ``jax.jit`` call.

    The jitted functions are made on first use and dropped from pickles and copies;
    ``trace_count`` counts their traces (one per input shape/dtype and labels kind).
    """

    trace_count: int = 0

    def _jit(self, name: str) -> Any:
        fns = self.__dict__.setdefault("_jitted", {})
        if name not in fns:
            fns[name] = jax.jit(getattr(self, name))
        return fns[name]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in super().__getstate__().items() if k != "_jitted"}

    def __call__(self, images: Any, labels: Any = None, *, training: bool = True, sizes: Any = None,
                 **targets: Any) -> Any:
        req = parse(images, labels, sizes, targets)
        if req is not None:  # masks, boxes, keypoints: the core's two-step call (core/targets.py)
            return self._call_targets(req, training)
        B = self.backend
        images = self.images(images, sizes)
        if isinstance(images, Ragged):
            return self._call_ragged(images, labels, training)
        x = B.as_images(images)
        y = None if labels is None else B.as_labels(labels)
        if not training:
            return self._jit("_eval_body")(x, y)
        if y is not None and self.plan.changes_labels and jnp.issubdtype(y.dtype, jnp.integer):
            self._check_batch(self.plan, x, y)  # eager: the class-id range needs the values
        k0, k1 = self.key()
        self.step += 1
        return self._jit("_train_body")(x, y, np.uint32(k0), np.uint32(k1))

    def _targets_step(self, plan: Any, images: Any, labels: Any, t: Targets, ctx: Any, training: bool,
                      **key: Any) -> tuple[Any, Targets]:
        """A call with targets as one jitted function: draw, images, targets (a batch of images of
        different sizes: the core's two steps, eagerly)."""
        if isinstance(images, Ragged):
            return super()._targets_step(plan, images, labels, t, ctx, training, **key)
        B = self.backend
        x = B.as_images(images)
        y = None if labels is None else B.as_labels(labels)
        arrays = {f.name: getattr(t, f.name) for f in fields(Targets) if f.name != "soft"}
        fns = self.__dict__.setdefault("_jitted_targets", {})
        name = (training, t.soft)
        if name not in fns:
            fns[name] = jax.jit(functools.partial(self._targets_body, training, t.soft))
        if not training:
            out, arrays = fns[name](x, y, arrays, np.uint32(0), np.uint32(0))
            return out, replace(t, **arrays)
        if y is not None and self.plan.changes_labels and jnp.issubdtype(y.dtype, jnp.integer):
            self._check_batch(self.plan, x, y)  # eager: the class-id range needs the values
        k0, k1 = self.key()
        self.step += 1
        out, arrays = fns[name](x, y, arrays, np.uint32(k0), np.uint32(k1))
        return out, replace(t, **arrays)

    def _targets_body(self, training: bool, soft: bool, x: Any, y: Any, arrays: dict[str, Any], k0: Any,
                      k1: Any) -> Any:
        self.trace_count += 1
        plan = self.plan if training else self.eval_plan
        if training:
            shape = self.backend.shape(x)
            n, one = (shape[0], shape[1:]) if len(shape) == 4 else (1, shape)
            hwc = one if self.backend.layout == "NHWC" else (*one[1:], *one[:1])
            params = self._draw(n, hwc, (k0, k1))
            out = self._run(plan, x, y, params)
        else:
            params = {}
            out = self._evaluate(x, y)
        ctx = self._check_batch(plan, x, y, "check")[-1]
        t = move(plan, self.backend, Targets(soft=soft, **arrays), params, ctx, self.targets)
        return out, {f.name: getattr(t, f.name) for f in fields(Targets) if f.name != "soft"}

    def _train_body(self, x: Any, y: Any, k0: Any, k1: Any) -> Any:
        """Draw (on the device, from the traced key words) and apply: the jitted call."""
        self.trace_count += 1
        shape = self.backend.shape(x)
        n, one = (shape[0], shape[1:]) if len(shape) == 4 else (1, shape)
        hwc = one if self.backend.layout == "NHWC" else (*one[1:], *one[:1])
        params = self._draw(n, hwc, (k0, k1)) if len(one) == 3 else {}  # else _run says why
        return self._run(self.plan, x, y, params)

    def _call_ragged(self, images: Ragged, labels: Any, training: bool) -> Any:
        """Images of different sizes: checked on the host, then the padded batch and the
        sizes go into the jitted call (one trace per padded shape: ``pack_multiple``)."""
        B = self.backend
        y = None if labels is None else B.as_labels(labels)
        plan = self.plan if training else self.eval_plan
        self._check_batch(plan, images, y, "check")
        sizes = jnp.asarray(images.sizes, jnp.int32)
        if not training:
            return self._jit("_eval_ragged_body")(images.x, sizes, y)
        k0, k1 = self.key()
        self.step += 1
        return self._jit("_ragged_body")(images.x, sizes, y, np.uint32(k0), np.uint32(k1))

    def _ragged_body(self, x: Any, sizes: Any, y: Any, k0: Any, k1: Any) -> Any:
        self.trace_count += 1
        n, h, w, c = self.backend.image_dims(x)
        return self._run(self.plan, Ragged(x, sizes), y, self._draw(n, (h, w, c), (k0, k1)))

    def _eval_ragged_body(self, x: Any, sizes: Any, y: Any) -> Any:
        self.trace_count += 1
        return self._run(self.eval_plan, Ragged(x, sizes), y, {}, convert_labels=False)

    def _eval_body(self, x: Any, y: Any) -> Any:
        self.trace_count += 1
        return self._evaluate(x, y)
