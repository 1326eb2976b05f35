"""The albumentations backend: the per-image CPU path for data-loader workers.

``pipe.compile("albumentations")`` returns a run for ``Dataset.__getitem__``:
``run(image)`` (one HWC image, uint8 in [0, 255] or float in [0, 1]) or
``run(image, label)`` applies the *per-sample* ops of the pipeline, image by
image, through albumentations / OpenCV kernels. The *batch ops* (``is_batch_op``:
mix and label ops, and containers holding one) and everything after the first of
them are *deferred*: they run on the collated batch, ``run.collate(samples)``
(NumPy) or ``run.batch(images, labels)`` (NumPy, or the torch / TensorFlow
backend when given their tensors). Compiling such a pipeline warns, naming the
deferred ops, unless ``defer_batch_ops=True`` (``False`` refuses it instead).

Draws come from augspec's counter-based generator under the key ``(seed,
epoch, step, rank, worker)``, one step per call, so the per-image run is
reproducible, a data-loader worker never repeats another's draws nor the main
process's (inside a torch DataLoader worker ``worker`` is its id + 1, read
automatically; 0 in the main process), and ``run(image)`` at step s draws exactly
what the NumPy backend draws for a batch of one at step s (per-pixel draws, such
as a noise op's, come from NumPy's PCG64 seeded by the key instead, for speed:
``exact_draws=True`` makes them bit-identical too).

Stage by stage (the planner's stages, see ``core/plan.py``); the fast paths are
chosen by what an op declares, never by its class, so a plugin op with the same
capability takes the same path:

- geometric: the forward matrices of consecutive geometric ops compose as in the
  NumPy backend and the image is warped ONCE by albumentations' ``warp_affine``
  (a stage that sets the size, crops / resizes / flips with the box inside the
  image: ONE Pillow ``resize(box=...)``, the same antialiased triangle filter and
  border rule as the core's separable resampling; otherwise the core's resampling, as
  for a stage with a projective or displacing op, ``core.resample.needs_warp``)
  (OpenCV ``warpAffine``, bilinear or nearest) with augspec's matrix moved to
  OpenCV's frame (pixel centres at integers there, at +0.5 here):
  ``M_cv = T(-1/2) M T(1/2)``. Stages of pure flips (``flip_axis``) use
  albumentations' ``hflip`` / ``vflip`` (exact).
- colour (linear): the composed per-image map ``x -> A x + t`` is one
  ``cv2.transform`` (a uint8 image saturates once, as augspec clamps once).
- region: an op whose mask is a union of axis-aligned boxes (``RegionOp.boxes``)
  has them filled by albumentations' cutout kernel; any other through its mask.
- pixel: an op with a static per-channel map (``PixelOp.channel_map``) is one
  look-up table (uint8, straight to float32) or one multiply-add (float); every
  other pixel / feature op runs its NumPy kernel on the one image, which is exact.

uint8 images stay uint8 through the geometric, colour and region stages (OpenCV
rounds after each, where augspec rounds once at the end: +-1 level) and become
float32 at the first op that needs float; the result has augspec's dtype rule.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import cv2  # noqa: E402
from albumentations.augmentations.dropout import functional as _fdropout  # noqa: E402
from albumentations.augmentations.geometric import functional as _fgeometric  # noqa: E402

from ..core.errors import InputError, SpecError  # noqa: E402
from ..core.pipeline import Pipeline  # noqa: E402
from ..core.plan import Leaf, Plan, Stage, _gate_affine, is_batch_op, split_pipeline  # noqa: E402
from ..core.random import M32, Bernoulli, DrawSpec, Normal, Sampler, Uniform  # noqa: E402
from ..core.resample import needs_warp, resample_stage, sets_size  # noqa: E402
from ..core.run import Run, _state_int  # noqa: E402
from ..core.spec import Context, Op  # noqa: E402
from .numpy import NumpyBackend  # noqa: E402

__all__ = ["AlbumentationsBackend", "AlbumentationsRun", "is_batch_op", "split_pipeline"]

_INTERP = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
#: a geometric stage's ``fill_mode`` as OpenCV borders (BORDER_REFLECT is half-sample symmetric, as ours;
#: albumentations' default BORDER_REFLECT_101 would not repeat the edge pixel)
_BORDER = {"constant": cv2.BORDER_CONSTANT, "nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}
_BATCH_SALT = 0x5EED_BA7C_0FF1_CE00


class AlbumentationsBackend(NumpyBackend):
    """Per-image HWC backend on albumentations / OpenCV (NumPy arrays, layout NHWC only).

    Options: ``exact_draws`` (default False) draws per-pixel randomness with augspec's
    counter-based generator too (bit-identical to the other backends, slower).
    ``defer_batch_ops`` says what compiling a pipeline with batch ops does (they
    cannot run per image, so they are deferred to ``run.batch`` / ``run.collate``):
    None (default) warns, naming them; True defers them silently; False refuses
    the pipeline (SpecError).
    """

    name = "albumentations"
    array_module = "numpy"

    def __init__(self, layout: str = "NHWC", *, exact_draws: bool = False, defer_batch_ops: bool | None = None,
                 **options: Any):
        if layout != "NHWC":
            raise SpecError(f"albumentations backend: images are HWC, so layout must be 'NHWC', got {layout!r}")
        if not isinstance(exact_draws, bool):
            raise SpecError(f"albumentations backend: exact_draws must be True or False, got {exact_draws!r}")
        if defer_batch_ops is not None and not isinstance(defer_batch_ops, bool):
            raise SpecError("albumentations backend: defer_batch_ops must be None (warn), True (defer silently) "
                            f"or False (refuse), got {defer_batch_ops!r}")
        super().__init__(layout, **options)
        self.exact_draws = exact_draws
        self.defer_batch_ops = defer_batch_ops

    def make_run(self, pipeline: Any, **run_options: Any) -> AlbumentationsRun:
        return AlbumentationsRun(pipeline, self, **run_options)


def _warn_outside_package(message: str) -> None:
    """A UserWarning attributed to the first caller outside augspec (the ``compile`` line)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _describe(op: Op) -> str:
    """An op's class name, with its children for a container (``Outer(Inner, Other)``)."""
    kids = getattr(op, "children", None) if op.family == "container" else None
    return type(op).__name__ + (f"({', '.join(_describe(k) for k in kids)})" if kids else "")


def _defer_batch_ops(suffix: Sequence[Op], policy: bool | None) -> None:
    """Apply the ``defer_batch_ops`` policy to the batch part ``suffix`` (non-empty)."""
    if policy is True:
        return
    names = [_describe(op) for op in suffix]
    batch = [n for n, op in zip(names, suffix) if is_batch_op(op)]
    after = [n for n, op in zip(names, suffix) if not is_batch_op(op)]
    what = f"batch op{'s' if len(batch) > 1 else ''} {', '.join(batch)}"
    if after:
        what += f" (and the per-sample op{'s' if len(after) > 1 else ''} {', '.join(after)} after the first of them)"
    if policy is False:
        raise SpecError(f"albumentations backend: the {what} cannot run per image and defer_batch_ops=False; "
                        "compile the per-sample ops only, or pass defer_batch_ops=True (or None) to run them "
                        "on the collated batch with run.batch(images, labels) / collate_fn=run.collate")
    _warn_outside_package(
        f"albumentations backend: the {what} cannot run per image, so run(image) does not apply them; "
        "apply them to the collated batch with run.batch(images, labels) or collate_fn=run.collate. "
        "Pass defer_batch_ops=True to compile to silence this warning (False makes it an error).")


# ------------------------------------------------------------------ stages


def _to_float(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1.0 / 255.0)
    return img if img.dtype == np.float32 else img.astype(np.float32)


def _channel_mean(img: np.ndarray) -> np.ndarray:
    """(C,) mean of each channel, in the value domain ([0, 1] for uint8)."""
    c = img.shape[2]
    if c <= 4:
        m = np.asarray(cv2.mean(img)[:c], dtype=np.float64)
    else:
        m = img.reshape(-1, c).mean(axis=0, dtype=np.float64)
    if img.dtype == np.uint8:
        m = m / 255.0
    return m.astype(np.float32)


class _StageBase:
    def __init__(self, run: AlbumentationsRun, st: Stage):
        self.plan = run.plan
        self.B = run.backend
        self.st = st

    def gate_on(self, lf: Leaf, params: Mapping[str, Any]) -> bool:
        g = Plan.gate(lf, params)
        return True if g is None else bool(np.asarray(g).reshape(-1)[0])


class _Geometry(_StageBase):
    """One warp per image through albumentations' ``warp_affine`` (or exact flips)."""

    def __init__(self, run: AlbumentationsRun, st: Stage):
        super().__init__(run, st)
        fill = tuple(float(v) for v in (st.fill if st.fill is not None else (0.0,)))
        self.flags = _INTERP[st.interpolation or "bilinear"]
        self.border = _BORDER[st.fill_mode or "constant"]
        self.flip_only = all(lf.op.flip_axis for lf in st.leaves)  # type: ignore[attr-defined]
        self.fill_u8 = tuple(min(255.0, max(0.0, math.floor(v * 255.0 + 0.5))) for v in fill)
        self.fill_f = fill
        # crops and resizes, and projective or displacing warps (``needs_warp``): the core's resampling
        self.sets_size = sets_size(st) or needs_warp(st)
        if self.sets_size:  # the fill in the image's own range (the resampling reads it as is)
            self.st_f = dataclasses.replace(st, fill=fill)
            self.st_u8 = dataclasses.replace(st, fill=tuple(v * 255.0 for v in fill))
            # Pillow's resize(box=) is the separable triangle filter with the same border rule
            self.pillow = (all(getattr(lf.op, "axis_aligned", False) for lf in st.leaves) and not needs_warp(st)
                           and (st.interpolation or "bilinear") == "bilinear" and st.antialias is not False
                           and (st.fill_mode or "constant") == "constant")

    def resized(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray | None:
        """A crop / resize / flip stage through Pillow's ``resize(box=...)`` when the stage's
        box lies inside the image (else None: the core's resampling)."""
        from PIL import Image

        from ..core.plan import affine_inverse
        from ..core.resample import stage_map

        m, oh, ow = stage_map(self.plan, self.B, self.st, params, ctx)
        inv = np.asarray(affine_inverse(self.B, m), np.float64)[0]
        ax, cx, ay, cy = inv[0, 0], inv[0, 2], inv[1, 1], inv[1, 2]
        x0, x1 = sorted((cx, cx + ax * ow))
        y0, y1 = sorted((cy, cy + ay * oh))
        eps = 1e-6
        if x0 < -eps or y0 < -eps or x1 > ctx.width + eps or y1 > ctx.height + eps or x1 <= x0 or y1 <= y0:
            return None
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(ctx.width)), min(y1, float(ctx.height)))
        if img.dtype == np.uint8 and img.shape[2] == 3:
            out = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR, box=box))
        else:  # one plane at a time (no premultiplied alpha), float planes in Pillow's "F" mode
            planes = [img[..., k] if img.dtype == np.uint8 else img[..., k].astype(np.float32)
                      for k in range(img.shape[2])]
            out = np.stack([np.asarray(Image.fromarray(p).resize((ow, oh), Image.BILINEAR, box=box))
                            for p in planes], axis=-1)
        if ax < 0:
            out = out[:, ::-1]
        if ay < 0:
            out = out[::-1]
        return np.ascontiguousarray(out)

    def matrix(self, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        """augspec's composed forward matrix (3, 3), float64, as ``Plan._geometric`` builds it."""
        B = self.B
        m = None
        for lf in self.st.leaves:
            if not self.gate_on(lf, params):
                continue
            mk = np.asarray(self.plan.call(lf, "matrix", B, lf.params(params), ctx), np.float64)[0]
            m = mk if m is None else mk @ m
        return np.eye(3) if m is None else m

    def __call__(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        if self.sets_size:
            # crops and resizes: Pillow where it applies, else the core's resampling of one
            # image (antialiased, as on every backend), in the image's own value range; uint8
            # stays uint8 (rounded)
            if self.pillow:
                out = self.resized(img, params, ctx)
                if out is not None:
                    return out
            st = self.st_u8 if img.dtype == np.uint8 else self.st_f
            out = resample_stage(self.plan, self.B, st, img[None], params, ctx)[0]
            if img.dtype == np.uint8:
                return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)
            return out
        if self.flip_only:
            parity = {"w": False, "h": False}
            for lf in self.st.leaves:
                if self.gate_on(lf, params):
                    parity[lf.op.flip_axis] = not parity[lf.op.flip_axis]  # type: ignore[attr-defined]
            if parity["w"]:
                img = _fgeometric.hflip(img)
            if parity["h"]:
                img = _fgeometric.vflip(img)
            return img
        cv = opencv_matrix(self.matrix(params, ctx))
        fill = self.fill_u8 if img.dtype == np.uint8 else self.fill_f
        if len(fill) == 1:  # one value for every channel (OpenCV reads a 1-tuple as (v, 0, 0, 0))
            fill = fill * img.shape[2]
        out = _fgeometric.warp_affine(img, cv, interpolation=self.flags, fill=fill, border_mode=self.border,
                                      output_shape=img.shape[:2])
        return out.reshape(img.shape)


def opencv_matrix(m: np.ndarray) -> np.ndarray:
    """augspec's forward matrix (pixel centres at +0.5) in OpenCV's frame (centres at
    integers): ``T(-1/2) M T(1/2)``, a (3, 3) float64 array for ``cv2.warpAffine``."""
    out = np.array(m, dtype=np.float64, copy=True)
    out[0, 2] = m[0, 2] + 0.5 * (m[0, 0] + m[0, 1]) - 0.5
    out[1, 2] = m[1, 2] + 0.5 * (m[1, 0] + m[1, 1]) - 0.5
    return out


class _Color(_StageBase):
    """The composed colour map of the stage as one ``cv2.transform``."""

    def __init__(self, run: AlbumentationsRun, st: Stage):
        super().__init__(run, st)
        self.needs_mean = any(lf.op.needs_mean for lf in st.leaves)  # type: ignore[attr-defined]

    def affine(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        from ..core.ops.color import apply_to_vector, compose

        B = self.B
        c = ctx.channels
        mean0 = _channel_mean(img)[None] if self.needs_mean else np.zeros((1, c), np.float32)
        acc = None
        for lf in self.st.leaves:
            mean = mean0 if acc is None else apply_to_vector(B, acc[0], mean0) + acc[1]
            a, t = self.plan.call(lf, "affine", B, lf.params(params), mean, ctx)
            a, t = _gate_affine(B, Plan.gate(lf, params), a, t, ctx)
            acc = (a, t) if acc is None else compose(B, (a, t), acc)
        assert acc is not None
        return np.asarray(acc[0], np.float32)[0], np.asarray(acc[1], np.float32)[0]

    def __call__(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        a, t = self.affine(img, params, ctx)
        if img.dtype != np.uint8 and not np.isfinite(img).all():  # NaN / inf: the core's rule (color_map)
            from ..core.ops.color import color_map

            out = np.asarray(color_map(self.B, img[None].astype(np.float32), a[None], t[None], False))[0]
            return np.clip(out, 0.0, 1.0) if self.st.clamp else out
        scale = 255.0 if img.dtype == np.uint8 else 1.0
        c = img.shape[2]
        if c <= 4:
            m = np.concatenate([a, (t * scale)[:, None]], axis=1).astype(np.float32)
            out = cv2.transform(img, m).reshape(img.shape)
        else:
            out = (img.reshape(-1, c).astype(np.float32) @ a.T + t * scale).reshape(img.shape)
            if img.dtype == np.uint8:
                out = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
        if out.dtype != np.uint8 and self.st.clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return out


class _Region(_StageBase):
    """Ops whose mask is a union of boxes (``RegionOp.boxes``) through albumentations'
    cutout kernel; other region ops through their mask."""

    def __call__(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        B = self.B
        for lf in self.st.leaves:
            if not self.gate_on(lf, params):
                continue
            fill = np.asarray(lf.op.fill, np.float64)  # type: ignore[attr-defined]
            if img.dtype == np.uint8:
                fill = np.clip(np.floor(fill * 255.0 + 0.5), 0, 255)
            fill_arr = np.broadcast_to(fill, (img.shape[2],)).astype(img.dtype)
            p = lf.params(params)
            boxes = self.boxes(lf, p, ctx)
            if boxes is not None:
                img = _fdropout.cutout(img, boxes, fill_arr, None)
            else:
                mask = np.asarray(self.plan.call(lf, "mask", B, p, ctx))[0]
                img = img.copy()
                img[mask] = fill_arr
        return img

    def boxes(self, lf: Leaf, p: Mapping[str, Any], ctx: Context) -> np.ndarray | None:
        """The op's boxes as albumentations' holes, (k, 4) int64 ``[x0, y0, x1, y1]``, or
        None: the op has no box form, or a kernel registered for it replaces its mask."""
        fn = getattr(lf.op, "boxes", None)
        if fn is None or lf.op.name in self.plan.kernels:
            return None
        edges = fn(self.B, p, ctx)
        if edges is None:
            return None
        y0, y1, x0, x1 = (np.asarray(v).reshape(-1) for v in edges)  # one image: (k,) each
        return np.stack([x0, y0, x1, y1], axis=-1).astype(np.int64)


class _ChannelMap(_StageBase):
    """A pixel op with a static per-channel map ``x -> mul * x + add`` (``PixelOp.channel_map``):
    one look-up table for uint8 images (straight to float32), one multiply-add for float ones.
    Where the op gives no map for the image's channel count, its NumPy kernel runs."""

    def __init__(self, run: AlbumentationsRun, st: Stage):
        super().__init__(run, st)
        self.fallback = _NumpyKernel(run, st, "pixels")
        self._maps: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}

    def maps(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(mul, add, uint8 table (256, 1, C)) float32 for ``ctx.channels``, or None."""
        c = ctx.channels
        if c not in self._maps:
            cm = self.st.leaves[0].op.channel_map(ctx)  # type: ignore[attr-defined]
            if cm is None:
                self._maps[c] = None
            else:
                mul = np.broadcast_to(np.asarray(cm[0], np.float32), (c,)).copy()
                add = np.broadcast_to(np.asarray(cm[1], np.float32), (c,)).copy()
                levels = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)  # as uint8 inputs are read
                lut = (levels[:, None] * mul + add).astype(np.float32)
                if self.st.clamp:
                    np.clip(lut, 0.0, 1.0, out=lut)
                self._maps[c] = (mul, add, np.ascontiguousarray(lut[:, None, :]))
        return self._maps[c]

    def __call__(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        maps = self.maps(ctx)
        if maps is None:
            return self.fallback(img, params, ctx)
        if not self.gate_on(self.st.leaves[0], params):
            return img
        mul, add, lut = maps
        if img.dtype == np.uint8:
            return cv2.LUT(img, lut).reshape(img.shape)
        out = np.multiply(img, mul, dtype=np.float32)
        out += add
        if self.st.clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return out


class _NumpyKernel(_StageBase):
    """Any other pixel or feature spec: its NumPy kernel on the one image (exact)."""

    def __init__(self, run: AlbumentationsRun, st: Stage, method: str):
        super().__init__(run, st)
        self.method = method

    def __call__(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context) -> np.ndarray:
        (lf,) = self.st.leaves
        if not self.gate_on(lf, params):
            return img
        out = self.plan.call(lf, self.method, self.B, _to_float(img)[None], lf.params(params), ctx)
        out = np.asarray(out, np.float32)[0]
        if self.st.clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return out


# --------------------------------------------------------------------- run


def _sizes_of(ctx: Context) -> np.ndarray:
    """(N, 2) int64 heights and widths of a context of images of different sizes."""
    return np.stack([np.asarray(ctx.height), np.asarray(ctx.width)], axis=1).astype(np.int64)


class AlbumentationsRun(Run):
    """A pipeline compiled for the albumentations backend (see the module docstring).

    ``run(image[, label])`` and ``run(batch[, labels])`` apply the per-sample part
    image by image (labels pass through); ``run.batch(images, labels)`` and
    ``run.collate(samples)`` apply the batch-level part (the deferred batch ops and
    what follows them) to a collated batch.

    ``worker``: None (the default) takes it from the torch DataLoader worker the run
    is called in, as the worker id + 1 (0 in the main process), so no two processes
    draw the same stream; ``worker=`` at compile time or ``set_state(worker=)`` fixes
    it exactly.

    The batch part draws at ``(seed ^ salt, epoch, batch_step, rank, worker)``
    where ``batch_step`` counts the batches mixed since ``set_epoch`` (+1 per
    ``run.batch`` / ``run.collate`` that has batch-level specs). It is part of
    ``run.state``; ``set_epoch`` resets it to 0 with ``step``, and
    ``set_state(step=s)`` moves it to ``s`` too (one run call per batch, the
    usual loop) unless ``batch_step=`` is given. So restoring ``(epoch, step)``
    (or the whole ``run.state``) reproduces the uninterrupted run's mixes.
    """

    def __init__(self, pipeline: Any, backend: AlbumentationsBackend, *, kernels: Mapping[str, Any] | None = None,
                 fuse: bool = True, epoch: int = 0, rank: int | None = None, worker: int | None = None,
                 targets: Any = None):
        # the ops of the synthetic family run first, on the whole batch (the planner's rule), then the per-image stages
        # (kept in their places, so the draws are the other backends')
        ops = tuple(pipeline.ops)
        others = [i for i, op in enumerate(ops) if op.family != "synthetic"]
        prefix, suffix = split_pipeline([ops[i] for i in others])
        if suffix:
            _defer_batch_ops(suffix, getattr(backend, "defer_batch_ops", None))
        self.full_pipeline = pipeline
        keep = set(others[: len(prefix)]) | {i for i, op in enumerate(ops) if op.family == "synthetic"}
        per_sample = Pipeline([ops[i] for i in sorted(keep)], num_classes=pipeline.num_classes, seed=pipeline.seed)
        super().__init__(per_sample, backend, kernels=kernels, fuse=fuse, epoch=epoch, rank=rank, worker=worker,
                         targets=targets)
        self.batch_ops: tuple[Op, ...] = suffix
        self._batch_runs: dict[tuple[str, str], Any] = {}
        self.batch_step = 0
        self._stages = [self._compile_stage(st) for st in self.plan.stages if st.kind != "synthetic"]
        small, big = [], []
        for d in self.plan.sampler.draws:
            (big if any(isinstance(s, str) for s in d.dist.shape) else small).append(d)
        self._pixel_draws: tuple[DrawSpec, ...] = tuple(big) if not backend.exact_draws else ()
        self._small_sampler = Sampler(small) if self._pixel_draws else self.plan.sampler

    def _compile_stage(self, st: Stage) -> Any:
        if st.kind == "geometric":
            return _Geometry(self, st)
        if st.kind == "color":
            return _Color(self, st)
        if st.kind == "region":
            return _Region(self, st)
        if st.kind == "pixel":
            op = st.leaves[0].op
            if getattr(op, "channel_map", None) is not None and op.name not in self.plan.kernels and not op.draws():
                return _ChannelMap(self, st)  # a static map: no draws besides the planner's gate
            return _NumpyKernel(self, st, "pixels")
        if st.kind == "feature":
            return _NumpyKernel(self, st, "features")
        raise SpecError(f"albumentations backend: {st.kind} stage of {type(st.leaves[0].op).__name__} "
                        "cannot run per image")  # unreachable: split_pipeline moves these to the batch

    @property
    def transforms(self) -> list[Any]:
        """The compiled per-image stages, in order (for inspection)."""
        return list(self._stages)

    # ------------------------------------------------------------ state
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: ``step`` and ``batch_step`` restart at 0."""
        super().set_epoch(epoch)
        self.batch_step = 0
        for r in self._batch_runs.values():
            r.set_epoch(epoch)

    def set_state(self, *, epoch: int | None = None, step: int | None = None, rank: int | None = None,
                  worker: int | None = None, batch_step: int | None = None) -> None:
        """Resume at (epoch, step), or move to another rank or worker. ``batch_step``
        (the batch part's step) follows ``step`` unless given."""
        super().set_state(epoch=epoch, step=step, rank=rank, worker=worker)
        if batch_step is not None:
            self.batch_step = _state_int("batch_step", batch_step)
        elif step is not None:
            self.batch_step = self.step
        for r in self._batch_runs.values():
            r.set_state(epoch=epoch, rank=rank, worker=worker)

    @property
    def state(self) -> dict[str, int]:
        """The key state: ``Run.state`` plus ``batch_step`` (the batch part's step)."""
        return {**super().state, "batch_step": self.batch_step}

    def plan_ops(self) -> list[Any]:
        return list(self.full_pipeline.ops)

    # ---------------------------------------------------------- drawing
    def _draw(self, batch_size: int, hwc: tuple[int, int, int] | None, key: tuple[int, int]) -> dict[str, Any]:
        B = self.backend
        ukey = (np.uint32(key[0]), np.uint32(key[1]))  # the generator's key: two uint32 words
        params = self._small_sampler.sample(B, batch_size, ukey, hwc)
        if not self._pixel_draws:
            return params
        rng = np.random.Generator(np.random.PCG64([key[0] & M32, key[1] & M32]))
        for d in self._pixel_draws:
            vshape = self.plan.sampler.value_shape(d, hwc)
            rows = batch_size if d.dist.per_sample else 1
            dist = d.dist
            if isinstance(dist, Normal):
                v = rng.standard_normal((rows, *vshape), dtype=np.float32) * np.float32(dist.std)
                v = v + np.float32(dist.mean)
            elif isinstance(dist, Uniform):
                v = np.float32(dist.low) + np.float32(dist.high - dist.low) * rng.random((rows, *vshape), np.float32)
            elif isinstance(dist, Bernoulli):
                v = rng.random((rows, *vshape), np.float32) < dist.p
            else:
                one = Sampler([d])
                one.image_shapes = self.plan.sampler.image_shapes
                v = one.sample(B, batch_size, ukey, hwc)[d.key]
                rows = batch_size
            if rows != batch_size:
                v = np.broadcast_to(v, (batch_size, *vshape))
            params[d.key] = v
        return params

    # --------------------------------------------------------- applying
    def _run(self, plan: Plan, images: Any, labels: Any, params: Mapping[str, Any], convert_labels: bool = True) -> Any:
        if plan is not self.plan:  # inference: the deterministic specs, through NumPy
            return super()._run(plan, images, labels, params, convert_labels)
        xb, y, single, dtype, out_dtype, bctx = self._check_batch(plan, self._input(images), labels, convert_labels)
        n, c = bctx.n, bctx.channels
        sizes = None if isinstance(bctx.height, int) else _sizes_of(bctx)  # images of different sizes
        if n == 0:
            xo = xb.astype(out_dtype)
            return (xo, y) if labels is not None else xo
        self._check_params(plan, params, n, bctx, self._hwc(xb))
        h, w = (int(sizes[0, 0]), int(sizes[0, 1])) if sizes is not None else (bctx.height, bctx.width)
        end = plan.stage_contexts(self.backend, Context(1, h, w, c))[-1]  # the output size (fixed, checked)
        oh, ow = end.height, end.width
        if plan.sources:  # the synthetic stages, on the batch, in the input's dtype
            xb, y, bctx = plan.apply_sources(self.backend, xb, y, params, bctx)
            if sizes is not None:  # a synthetic sample takes its own size
                sizes = _sizes_of(bctx)
        out = np.empty((n, oh, ow, c), dtype=out_dtype)
        for i in range(n):  # a per-image backend: one image at a time, as in a data-loader worker
            img = xb[i]
            if sizes is not None:  # each image in its own size
                h, w = int(sizes[i, 0]), int(sizes[i, 1])
                img = img[:h, :w]
            ctx = Context(1, h, w, c, self.num_classes)
            out[i] = self._one(img, {k: v[i:i + 1] for k, v in params.items()}, ctx, dtype, out_dtype)
        xo = out[0] if single else out
        if labels is None:
            return xo
        return xo, (y[0] if single else y)

    def _one(self, img: np.ndarray, params: Mapping[str, Any], ctx: Context, dtype: str, out_dtype: str) -> np.ndarray:
        src = img
        if dtype != "uint8" and dtype != "float32":
            img = img.astype(np.float32)
        for stage in self._stages:
            img = stage(img, params, ctx)
            if ctx.height != img.shape[0] or ctx.width != img.shape[1]:  # a stage that set the size
                ctx = Context(1, img.shape[0], img.shape[1], ctx.channels, ctx.num_classes)
        if img.dtype == np.uint8:
            out = img if out_dtype == "uint8" else img.astype(np.float32) * np.float32(1.0 / 255.0)
        elif out_dtype == "uint8":
            out = np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            out = img.astype(out_dtype, copy=False)
        if out is src or np.shares_memory(out, src):
            out = out.copy()
        return out

    # ------------------------------------------------------- the batch part
    def batch_run(self, framework: str = "numpy", layout: str | None = None) -> Any:
        """The batch-level part of the pipeline compiled for ``framework`` (cached);
        None when the pipeline has no batch-level spec."""
        if not self.batch_ops:
            return None
        lay = layout or ("NCHW" if framework == "torch" else "NHWC")
        key = (framework, lay)
        if key not in self._batch_runs:
            seed = (self.seed ^ _BATCH_SALT) & (2**63 - 1)
            pipe = Pipeline(list(self.batch_ops), num_classes=self.full_pipeline.num_classes, seed=seed)
            r = pipe.compile(framework, layout=lay, epoch=self.epoch, rank=self._rank, worker=self._worker,
                             targets=self.targets)
            self._batch_runs[key] = r
        return self._batch_runs[key]

    def batch(self, images: Any, labels: Any = None, *, layout: str | None = None, **targets: Any) -> Any:
        """Apply the batch-level specs to a collated batch: NumPy arrays through the
        NumPy backend (NHWC), torch tensors through the torch backend (``layout``,
        default NCHW), TensorFlow tensors through the TensorFlow backend (NHWC).
        Without batch-level specs, returns the inputs unchanged. Targets (``masks=``,
        ``boxes=``...) go through the batch-level specs too (a dict comes back)."""
        root = type(images).__module__.split(".")[0]
        framework = {"torch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow"}.get(root, "numpy")
        r = self.batch_run(framework, layout)
        if r is None:
            if targets:
                return {"images": images, **({"labels": labels} if labels is not None else {}), **targets}
            return images if labels is None else (images, labels)
        tf = sys.modules.get("tensorflow") if framework == "tensorflow" else None
        if tf is not None and not tf.executing_eagerly():
            # traced (tf.function / tf.data): the TF run advances its own step variable in-graph
            return r(images, labels, **targets)
        r.set_state(step=self.batch_step)
        out = r(images, labels, **targets)
        self.batch_step += 1
        return out

    def collate(self, samples: Sequence[Any], *, apply: bool = True) -> Any:
        """A ``collate_fn``: stack images (or ``(image, label)`` pairs) into an NHWC batch
        (and a label array), then apply the batch-level specs through NumPy."""
        if len(samples) == 0:
            raise InputError("collate: no samples")
        first = samples[0]
        pairs = isinstance(first, (tuple, list))
        ims = [np.asarray(s[0] if pairs else s) for s in samples]
        shapes = sorted({a.shape for a in ims})
        if len(shapes) > 1:
            raise InputError(f"collate: the samples have different shapes {shapes[:4]}; a batch needs one image "
                             "size (resize or crop the images to one size first)")
        images = np.stack(ims)
        labels = np.stack([np.asarray(s[1]) for s in samples]) if pairs else None
        if not apply:
            return images if labels is None else (images, labels)
        return self.batch(images, labels)
