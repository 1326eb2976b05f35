"""A compiled pipeline: ``run(images, labels)``, ``run.sample``, ``run.apply``.

One call draws its params from the key ``(seed, epoch, step, rank, worker)``
and then applies them deterministically. ``step`` counts the calls (and
``sample`` calls) since ``set_epoch``; ``set_state`` resumes anywhere.

The epoch also lives in a small shared-memory cell made with the run: a copy of
the run in a process forked or spawned from the one that made it (a DataLoader
worker, persistent or not) takes a new epoch set in that process at its next
draw, and restarts its step there, as a fresh worker would.

Conventions: a 3-D input is one image and comes back 3-D; an empty batch comes
back empty; uint8 stays uint8 (rounded half up, clamped) unless the pipeline
leaves [0, 1] (Normalize, Standardize, ZCA, Rescale, Dropout), then it comes
back float32; float inputs keep their dtype (computed in float32). Labels are
class ids ``(N,)`` or soft ``(N, K)``; with a label-changing op they come back
``(N, K)`` float32, otherwise as given. The inputs are never written to.
"""

from __future__ import annotations

import multiprocessing
import operator
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError, InputRangeWarning, InputTypeError
from .identity import process_rank, process_worker
from .ops.crop import SCALAR
from .plan import Plan
from .random import Bernoulli, Categorical, Permutation, derive_key
from .spec import Context
from .target_io import Request, parse, read, write
from .targets import TargetRules, move

IMAGE_DTYPES = ("uint8", "float16", "bfloat16", "float32", "float64")

#: how far outside [0, 1] float images may stray (rounding) before ``InputRangeWarning``
RANGE_SLACK = 1e-3


def _fresh_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


def _shared_epoch(epoch: int) -> Any:
    """A shared-memory int64 holding the epoch, or None where there is no shared memory."""
    try:
        return multiprocessing.RawValue("q", epoch)
    except (OSError, ValueError, ImportError):  # pragma: no cover - no /dev/shm or no mmap here
        return None


#: the largest epoch, step, rank or worker: the key folds them as 64-bit words, and
#: TensorFlow keeps them in int64 variables (2**63 and beyond would wrap)
MAX_STATE = 2**63 - 1


def _state_int(name: str, v: Any) -> int:
    """A non-negative integer for the key state (epoch, step, rank, worker)."""
    try:
        i = operator.index(v)
    except TypeError:
        if not (isinstance(v, float) and v.is_integer()):
            raise InputTypeError(f"{name} must be an integer, got {v!r}") from None
        i = int(v)
    if i < 0:
        raise InputError(f"{name} must be >= 0, got {i}")
    if i > MAX_STATE:
        raise InputError(f"{name} must be at most 2**63 - 1 (it is folded as a 64-bit word), got {i}")
    return i


def _test(cond: Any) -> bool | None:
    """A size comparison as a Python bool, or None where a size is known only when the graph
    runs (a symbolic tensor: TensorFlow's batch size with an unknown batch dimension)."""
    try:
        return bool(cond)
    except TypeError:
        return None


@dataclass(frozen=True)
class Ragged:
    """A batch of images of different sizes: ``x`` the zero-padded batch (each image at the
    top left of the largest height and width), ``sizes`` the (N, 2) NumPy int64 array of
    each image's (height, width)."""

    x: Any
    sizes: Any


def _is_image_list(images: Any) -> bool:
    return isinstance(images, (list, tuple)) and len(images) > 0 and all(
        hasattr(v, "shape") and len(v.shape) == 3 for v in images)


def _plan_output(plan: Plan, h: Any, w: Any) -> tuple[Any, Any]:
    """The size a plan's size-setting ops give images of ``h`` x ``w`` (None where unknown)."""
    for lf in plan.leaves:
        if getattr(lf.op, "sets_size", False):
            try:
                h, w = (int(v) for v in lf.op.output_size(SCALAR, h, w))
            except TypeError:
                h = w = None
    return h, w


def _differ(a: Any, b: Any) -> bool:
    """``a != b`` for sizes; unknown sizes are left to the kernels."""
    return _test(a != b) is True


class Run:
    """A pipeline compiled for one backend."""

    def __init__(self, pipeline: Any, backend: Any, *, kernels: Mapping[str, Any] | None = None, fuse: bool = True,
                 epoch: int = 0, rank: int | None = None, worker: int | None = None, targets: Any = None):
        self.pipeline = pipeline
        #: how masks, boxes and keypoints follow the images (``core/targets.py``)
        self.targets = TargetRules.of(targets)
        #: the ops as compiled: a later ``pipeline.fit`` does not change this run (training
        #: and evaluation keep the statistics they were compiled with)
        self.ops = tuple(pipeline.ops)
        self.backend = backend
        self.fuse = fuse
        self.kernels = dict(kernels or {})
        self.plan = Plan(self.ops, self.kernels)
        self.num_classes = pipeline.num_classes
        self.seed = pipeline.seed if pipeline.seed is not None else _fresh_seed()
        self.epoch, self.step = _state_int("epoch", epoch), 0
        self.rank, self.worker = rank, worker
        self._eval_plan: Plan | None = None
        self._range_checked = False
        self._own_epoch_cell()

    # ------------------------------------------------------------------ state
    def _own_epoch_cell(self) -> None:
        """A new shared epoch cell, written by this process only."""
        self._epoch_cell, self._cell_owner, self._cell_seen = _shared_epoch(self.epoch), os.getpid(), self.epoch

    def share_epoch_of(self, other: Run | Any) -> None:
        """From now on, follow the epochs that ``other`` (a run, or its ``_epoch_cell``) is
        set to in the process that made it (a spawned DataLoader worker rebuilding its run)."""
        cell = getattr(other, "_epoch_cell", other)
        self._epoch_cell, self._cell_owner = cell, -1
        self._cell_seen = None if cell is None else cell.value

    def _publish_epoch(self) -> None:
        if self._epoch_cell is not None and os.getpid() == self._cell_owner:
            self._epoch_cell.value = self.epoch
            self._cell_seen = self.epoch

    def _sync_epoch(self) -> None:
        """Take an epoch set in the process that made the run (see the module notes)."""
        cell = self._epoch_cell
        if cell is None or os.getpid() == self._cell_owner:
            return
        v = cell.value
        if v != self._cell_seen:
            self._cell_seen = v
            self.set_epoch(v)

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            d["_epoch_cell"] = None  # a pickle or a copy: a run of its own from now on
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        if self._epoch_cell is None:
            self._own_epoch_cell()

    # rank and worker: explicit (compile option, set_state) or, when None, found at each
    # draw (``core.identity``: the process group or $RANK; the DataLoader worker id + 1)
    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else process_rank()

    @rank.setter
    def rank(self, v: int | None) -> None:
        self._rank = None if v is None else _state_int("rank", v)

    @property
    def worker(self) -> int:
        return self._worker if self._worker is not None else process_worker()

    @worker.setter
    def worker(self, v: int | None) -> None:
        self._worker = None if v is None else _state_int("worker", v)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: the step counter restarts at 0."""
        self.epoch, self.step = _state_int("epoch", epoch), 0
        self._publish_epoch()

    def set_state(self, *, epoch: int | None = None, step: int | None = None, rank: int | None = None,
                  worker: int | None = None) -> None:
        """Resume at (epoch, step), or fix the rank or data-loader worker (from then on they
        are no longer found at call time)."""
        if epoch is not None:
            self.epoch = _state_int("epoch", epoch)
            self._publish_epoch()
        if step is not None:
            self.step = _state_int("step", step)
        if rank is not None:
            self.rank = _state_int("rank", rank)
        if worker is not None:
            self.worker = _state_int("worker", worker)

    @property
    def state(self) -> dict[str, int]:
        self._sync_epoch()
        return {"seed": self.seed, "epoch": self.epoch, "step": self.step, "rank": self.rank, "worker": self.worker}

    def key(self) -> tuple[int, int]:
        self._sync_epoch()
        return derive_key(self.seed, self.epoch, self.step, self.rank, self.worker)

    # ---------------------------------------------------------------- calling
    def __call__(self, images: Any, labels: Any = None, *, training: bool = True, sizes: Any = None,
                 **targets: Any) -> Any:
        """Augment a batch (4-D), one image (3-D) or a list of images of different sizes (or a
        padded batch with ``sizes``, (N, 2) heights and widths): see ``images``. With targets
        (``masks=``, ``boxes=``, ``keypoints=``... or a dict of them with the images), a dict
        of the same names (``core/target_io.py``)."""
        req = parse(images, labels, sizes, targets)
        if req is not None:
            return self._call_targets(req, training)
        images = self.images(images, sizes)
        if not training:
            return self._evaluate(images, labels)
        x = self._buffer(images)
        self._check_batch(self.plan, self._input(images, x), labels, "check")  # a rejected call draws nothing (its step is not spent)
        shape = self.backend.shape(x)
        n = shape[0] if len(shape) == 4 else 1
        params = self.sample(n, shape[1:] if len(shape) == 4 else shape) if len(shape) in (3, 4) else {}
        return self.apply(images, labels, params)

    def _call_targets(self, req: Request, training: bool, **key: Any) -> dict[str, Any]:
        """A call with targets: checked and read at the door (``core/target_io.py``), moved with the
        images under the same params (``_targets_step``), written back in the caller's forms."""
        B = self.backend
        images = self.images(req.images, req.sizes)
        plan = self.plan if training else self.eval_plan
        x = self._buffer(images)
        shape = B.shape(x)
        *_, ctx = self._check_batch(plan, self._input(images, x), req.labels, "check")
        single = len(shape) == 3
        _, h, w, _ = B.image_dims(x if not single else B.reshape(x, (1, *shape)))
        sizes = images.sizes if isinstance(images, Ragged) else None
        t, door = read(B, req, ctx.n, h, w, single, sizes, self.targets, ctx.height, ctx.width)
        door.mixes = any(st.kind in ("mix", "tile") for st in plan.stages)
        out, t = self._targets_step(plan, images, req.labels, t, ctx, training, **key)
        xo, yo = out if req.labels is not None else (out, None)
        end = plan.stage_contexts(B, ctx)[-1]
        return req.answer(xo, yo, write(B, t, door, req, end.height, end.width))

    def _targets_step(self, plan: Plan, images: Any, labels: Any, t: Any, ctx: Context, training: bool,
                      **key: Any) -> tuple[Any, Any]:
        """The images (and labels) of a call and its targets moved under the same params: drawn
        as ``__call__`` draws them, the images through ``apply`` (the backend's own path), the
        targets through ``core/targets.move``. A backend that compiles overrides this."""
        if training:
            x = self._buffer(images)
            shape = self.backend.shape(x)
            n = shape[0] if len(shape) == 4 else 1
            params = self.sample(n, shape[1:] if len(shape) == 4 else shape, **key)
            out = self.apply(images, labels, params)
        else:
            params = {}
            out = self._evaluate(images, labels)
        return out, move(plan, self.backend, t, params, ctx, self.targets)

    def images(self, images: Any, sizes: Any = None) -> Any:
        """The input as this backend's batch, or a ``Ragged`` one: a list (or tuple) of 3-D
        images of different sizes is packed (``B.pack_images``); a padded 4-D batch with
        ``sizes`` is taken as is (the pixels beyond each size are never resampled; float ones
        should be finite and in range, since the input checks read the whole batch)."""
        B = self.backend
        if isinstance(images, Ragged):
            return images
        if sizes is not None:
            import numpy as np

            x = B.as_images(images)
            shape = B.shape(x)
            sz = np.asarray(B.to_numpy(sizes) if B.is_array(sizes) else sizes)
            if len(shape) != 4 or sz.shape != (shape[0], 2) or sz.dtype.kind not in "iu":
                raise InputError(f"sizes must be (N, 2) integer heights and widths of a 4-D batch; got sizes of shape "
                                 f"{sz.shape} for images of shape {shape}")
            _, h, w, _ = B.image_dims(x)
            if sz.size and (sz.min() < 1 or sz[:, 0].max() > h or sz[:, 1].max() > w):
                raise InputError(f"sizes must lie in [1, {h}] x [1, {w}] (the batch's height and width)")
            return Ragged(x, sz.astype(np.int64))
        if _is_image_list(images) and len({tuple(v.shape) for v in images}) > 1:
            x, sz = B.pack_images(images)
            return Ragged(x, sz)
        return images

    def _buffer(self, images: Any) -> Any:
        """The backend array of the input (the padded batch of a ``Ragged`` one)."""
        return images.x if isinstance(images, Ragged) else self.backend.as_images(images)

    def _input(self, images: Any, x: Any = None) -> Any:
        """What ``_check_batch`` takes: the ``Ragged`` input, else the backend array."""
        if isinstance(images, Ragged):
            return images
        return x if x is not None else self.backend.as_images(images)

    def sample(self, batch_size: int, image_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Draw the params of one call (and advance the step). ``image_shape`` is one
        image's shape in the backend's layout; ops that draw per pixel need it."""
        try:
            batch_size = operator.index(batch_size) if not isinstance(batch_size, bool) else batch_size
        except TypeError:
            pass
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise InputError(f"sample: batch_size must be an integer >= 0, got {batch_size!r}")
        hwc = None
        if image_shape is not None:
            try:
                image_shape = tuple(operator.index(v) for v in image_shape)
            except TypeError:
                raise InputError(f"sample: image_shape must be 3 integers, got {image_shape!r}") from None
            if len(image_shape) != 3:
                raise InputError(f"sample: image_shape must be one image's shape (3 numbers), got {image_shape}")
            a, b, c = image_shape
            hwc = (a, b, c) if self.backend.layout == "NHWC" else (b, c, a)
        key = self.key()
        self.step += 1
        return self._draw(batch_size, hwc, key)

    def _draw(self, batch_size: int, hwc: tuple[int, int, int] | None, key: tuple[int, int]) -> dict[str, Any]:
        B = self.backend
        return self.plan.sampler.sample(B, batch_size, (B.asarray(key[0], "uint32"), B.asarray(key[1], "uint32")), hwc)

    def apply(self, images: Any, labels: Any = None, params: Mapping[str, Any] | None = None, *,
              sizes: Any = None) -> Any:
        """Apply the pipeline with the given params (deterministic)."""
        if params is None:
            raise InputError("apply: params are required (draw them with run.sample)")
        return self._run(self.plan, self.images(images, sizes), labels, params)

    def output_size(self, height: int | None, width: int | None, *, training: bool = True
                    ) -> tuple[int | None, int | None]:
        """The (height, width) of the output for images of ``height`` x ``width`` (None: not
        known, e.g. images of different sizes): what the size-setting ops make of it."""
        return _plan_output(self.plan if training else self.eval_plan, height, width)

    @property
    def eval_plan(self) -> Plan:
        """The plan of ``training=False``: each op's ``eval_ops`` (the deterministic ops,
        those that set the size included; RandomResizedCrop's resize and centre crop)."""
        if self._eval_plan is None:
            keep = [e for op in self.plan_ops() for e in op.eval_ops()]
            self._eval_plan = Plan(keep, self.kernels)
        return self._eval_plan

    def _evaluate(self, images: Any, labels: Any) -> Any:
        """Inference: the plan of ``eval_plan``."""
        return self._run(self.eval_plan, self.images(images), labels, {}, convert_labels=False)

    def plan_ops(self) -> list[Any]:
        return list(self.ops)

    # ------------------------------------------------------------------ core
    def _check_batch(self, plan: Plan, x: Any, labels: Any, convert_labels: bool | str = True):
        """Check a batch (or one image) against the plan: ``(x as a batch, soft or given
        labels, single, input dtype, output dtype, Context)``. Shared by every backend's run."""
        B = self.backend
        ragged = x if isinstance(x, Ragged) else None
        if ragged is not None:
            x = ragged.x
        shape = B.shape(x)
        if len(shape) not in (3, 4):
            raise InputError(
                f"images must be one image (3-D) or a batch (4-D) in {B.layout} layout, got shape {shape}")
        single = len(shape) == 3
        if single:
            x = B.reshape(x, (1, *shape))
        dtype = B.dtype_name(x)
        if dtype not in IMAGE_DTYPES:
            raise InputTypeError(f"images of dtype {dtype} are not supported; use one of {list(IMAGE_DTYPES)}")
        n, h, w, c = B.image_dims(x)
        if _test(h == 0) is True or _test(w == 0) is True or c == 0:
            raise InputError(f"images must have a non-zero height, width and channel count, got (H, W, C) = {(h, w, c)}")
        if c > 16:
            raise InputError(
                f"images have {c} channels: is the layout right? this backend reads {B.layout} (layout= when compiling)")
        for lf in plan.leaves:
            if not lf.op.accepts_channels(c):
                raise InputError(f"{type(lf.op).__name__} (at {lf.path}) cannot take images with {c} channels")
            bad = lf.op.channel_mismatch(c)
            if bad is not None:
                v = getattr(lf.op, bad)
                raise InputError(f"{type(lf.op).__name__} (at {lf.path}): {bad}={v!r} has {len(v)} values but the "
                                 f"images have {c} channels; give one value or {c}")
        y, k = self._labels(plan, labels, n, single, convert_labels)
        out_dtype = dtype if plan.bounded or dtype != "uint8" else "float32"
        if ragged is None and self._resized_sources(plan, h, w):
            # synthetic samples of another size make the batch one of images of different sizes
            import numpy as np

            from .resample import sets_size

            nxt = plan.stages[plan.sources] if len(plan.stages) > plan.sources else None
            if nxt is None or not sets_size(nxt):
                sizes_ = [st.leaves[0].op.size for st in plan.stages[: plan.sources]]
                raise InputError(f"Synthetic makes samples of size {sizes_[0]}, not the images' ({h}, {w}): an op that "
                                 "fixes the size must follow it, e.g. RandomResizedCrop(size) or Resize((height, width))")
            if isinstance(n, int):
                self._check_ragged(plan, np.tile(np.array([[h, w]], np.int64), (n, 1)))
            one = B.ones((n,), "float32")
            return x, y, single, dtype, out_dtype, Context(n, one * float(h), one * float(w), c, k, dtype)
        if ragged is None:
            if plan.sets_size and isinstance(h, int) and isinstance(w, int):
                self._walk_sizes(plan, h, w)
            return x, y, single, dtype, out_dtype, Context(n, h, w, c, k, dtype)
        self._check_ragged(plan, ragged.sizes)
        sizes = B.cast(B.asarray(ragged.sizes), "float32")
        return x, y, single, dtype, out_dtype, Context(n, sizes[:, 0], sizes[:, 1], c, k, dtype)

    @staticmethod
    def _resized_sources(plan: Plan, h: Any, w: Any) -> bool:
        """Whether a synthetic op of the plan makes samples of a ``size`` other than the batch's."""
        return any(st.leaves[0].op.size not in (None, (h, w)) for st in plan.stages[: plan.sources])

    @staticmethod
    def _walk_sizes(plan: Plan, h: int, w: int) -> None:
        """Every size-setting op checks the size of its input (``GeometricOp.check_size``)."""
        for lf in plan.leaves:
            if getattr(lf.op, "sets_size", False):
                lf.op.check_size(h, w)
                h, w = (int(v) for v in lf.op.output_size(SCALAR, h, w))

    @staticmethod
    def _check_ragged(plan: Plan, sizes: Any) -> None:
        """Images of different sizes need the first stage (after the synthetic ones, which
        need their ``size``) to fix the size; where the sizes are on the host (a NumPy array),
        every size-setting op checks each one, and each synthetic size."""
        import numpy as np

        from .resample import sets_size, stage_output

        made = []
        for st in plan.stages[: plan.sources]:
            op = st.leaves[0].op
            if op.size is None:
                raise InputError(f"{type(op).__name__} (at {st.leaves[0].path}): the images have different sizes; "
                                 "give the size of the synthetic samples, size=(height, width)")
            made.append(tuple(op.size))
        first = plan.stages[plan.sources] if len(plan.stages) > plan.sources else None
        if first is None or not sets_size(first):
            what = type(first.leaves[0].op).__name__ if first is not None else "nothing"
            raise InputError(
                f"the images have different sizes, but the pipeline starts with {what}{' after Synthetic' if made else ''}"
                ": make its first op fix the size, e.g. RandomResizedCrop(size), Resize((height, width)), or "
                "Resize(s) then CenterCrop(size)")
        if not isinstance(sizes, np.ndarray):  # known when the graph runs: the stage's resampling checks
            return
        outs = set()
        for h, w in {(int(a), int(b)) for a, b in sizes.tolist()} | set(made):
            Run._walk_sizes(plan, h, w)
            outs.add(stage_output(SCALAR, first, h, w))
        if len(outs) > 1:
            ops = [type(lf.op).__name__ for lf in first.leaves]
            raise InputError(f"the images have different sizes and still do after {ops} (sizes {sorted(outs)[:4]}...): "
                             "end them with an op that fixes the size, e.g. CenterCrop(size)")

    def _run(self, plan: Plan, images: Any, labels: Any, params: Mapping[str, Any], convert_labels: bool = True) -> Any:
        B = self.backend
        x, y, single, dtype, out_dtype, ctx = self._check_batch(plan, self._input(images), labels, convert_labels)
        n = ctx.n
        if _test(n == 0) is True:
            xo = B.copy(B.cast(x, out_dtype))
            return (xo, B.copy(y)) if labels is not None else xo
        self._check_params(plan, params, n, ctx, self._hwc(x))
        if dtype != "uint8":
            self._check_range(plan, x)
        if plan.sources:  # the synthetic samples, into the input in its dtype
            x, y, ctx = plan.apply_sources(B, x, y, params, ctx)
        xf = B.cast(x, "float32")
        if dtype == "uint8":
            xf = xf * (1.0 / 255.0)
        xo, yo = plan.apply(B, xf, y, params, ctx, self.fuse, stages=(plan.sources, len(plan.stages)),
                            finite=self._finite(plan, x, dtype))
        xo, yo = self._own_outputs(plan, dtype, xo, yo, y)
        if out_dtype == "uint8":
            xo = B.cast(B.floor(B.clip(xo, 0.0, 1.0) * 255.0 + 0.5), "uint8")
        elif out_dtype != "float32":
            xo = B.cast(xo, out_dtype)
        if single:
            xo = B.reshape(xo, B.shape(xo)[1:])
            if yo is not None and labels is not None:
                yo = B.reshape(yo, B.shape(yo)[1:])
        if labels is None:
            return xo
        return xo, yo

    def _own_outputs(self, plan: Plan, dtype: str, xo: Any, yo: Any, y: Any) -> tuple[Any, Any]:
        """Outputs of their own: where no stage wrote the images (a float32 batch through an
        empty or label-only plan) or the labels passed through, a copy, never the caller's
        array (an in-place edit of an output must not reach the input)."""
        B = self.backend
        if dtype == "float32" and all(st.kind == "label" for st in plan.stages):
            xo = B.copy(xo)
        if yo is not None and yo is y:
            yo = B.copy(yo)
        return xo, yo

    def _finite(self, plan: Plan, x: Any, dtype: str) -> bool:
        """Whether the images hold no NaN or inf: integer images cannot; float ones are asked
        of the backend where cheap (``all_finite``), and only when a blend would need to know."""
        if dtype == "uint8":
            return True
        if not any(st.kind == "mix" for st in plan.stages):
            return False
        return self.backend.all_finite(x) is True

    def _check_range(self, plan: Plan, x: Any) -> None:
        """Once per run, on its first floating-point batch: warn when the values leave
        [0, 1] (images as 0..255 floats, ``x.float()`` of a uint8 batch, would be saturated
        by every clamp). Only for plans that clamp (a batch part of MixUp & co takes
        normalized images as they are). One device read per run; skipped where symbolic."""
        if self._range_checked or not any(st.clamp for st in plan.stages):
            return
        self._range_checked = True
        B = self.backend
        try:
            outside = bool(B.to_numpy(B.any((x < -RANGE_SLACK) | (x > 1.0 + RANGE_SLACK))))
        except Exception:  # a symbolic tensor (graph mode, a trace): nothing to read
            return
        if outside:
            warnings.warn(
                "floating-point images should hold values in [0, 1] (augspec's convention; uint8 images are read as "
                "x / 255): this batch has values outside it, which colour ops and clamps would saturate. Pass uint8 "
                "images, or x / 255. (Checked once per run, on its first float batch.)", InputRangeWarning, stacklevel=4)

    def _labels(self, plan: Plan, labels: Any, n: int, single: bool, convert: bool | str) -> tuple[Any, int | None]:
        """Checked labels: converted to (N, K) float32 where the plan changes them and ``convert``
        is True; ``convert="check"`` checks everything and converts nothing."""
        B = self.backend
        k = self.num_classes
        if labels is None:
            return None, k
        y = B.as_labels(labels)
        shape = B.shape(y)
        if single:
            if len(shape) > 1:
                raise InputError(f"labels of one image must be a class id or a (K,) vector, got shape {shape}")
            y = B.reshape(y, (1, *shape))
            shape = B.shape(y)
        if len(shape) not in (1, 2) or _differ(shape[0], n):
            raise InputError(f"labels must be class ids (N,) or soft labels (N, K) with N = {n} images, got shape {shape}")
        if not convert or not plan.changes_labels:
            return y, k
        dt = B.dtype_name(y)
        if len(shape) == 1:
            if not (dt.startswith("int") or dt.startswith("uint")):
                raise InputTypeError(f"class ids must be integers, got dtype {dt}")
            if k is None:
                raise InputError("class ids need num_classes: Pipeline(..., num_classes=K) (or pass soft (N, K) labels)")
            if B.check_class_ids(y, k) is False:
                raise InputError(f"class ids must lie in [0, {k}) (num_classes={k})")
            return (y, k) if convert == "check" else (B.one_hot(B.cast(y, "int64"), k), k)
        if not dt.startswith("float") and dt != "bfloat16":
            raise InputTypeError(f"soft labels must be floating point, got dtype {dt}")
        if k is not None and _differ(shape[1], k):
            raise InputError(f"soft labels have {shape[1]} classes but num_classes={k}")
        return (y if convert == "check" else B.cast(y, "float32")), shape[1]

    def _hwc(self, x: Any) -> tuple[int, int, int]:
        """(H, W, C) of one image of the batch ``x`` (of its buffer, for images of different sizes)."""
        _, h, w, c = self.backend.image_dims(x)
        return (h if isinstance(h, int) else None), (w if isinstance(w, int) else None), c

    def _check_params(self, plan: Plan, params: Mapping[str, Any], n: int, ctx: Context | None = None,
                      hwc: tuple[int, int, int] | None = None) -> None:
        """Every declared draw present, drawn for this batch size, and (given the images'
        ``ctx``) of the declared per-sample shape and kind (bool, integer or float);
        ``hwc``: one input image's shape (default: the context's size)."""
        missing = [d.key for d in plan.sampler.draws if d.key not in params]
        if missing:
            raise InputError(f"params are missing {missing[:5]}{'...' if len(missing) > 5 else ''}: draw them with run.sample")
        B = self.backend
        for d in plan.sampler.draws:
            v = params[d.key]
            s = B.shape(v)
            if not s or _differ(s[0], n):
                raise InputError(f"params[{d.key!r}] has shape {s}, drawn for another batch size than {n}")
            if ctx is None:
                continue
            hwc = hwc if hwc is not None else (ctx.height, ctx.width, ctx.channels)
            want = plan.sampler.value_shape(d, hwc)
            if isinstance(d.dist, Permutation):
                want = ()
            if tuple(s[1:]) != tuple(want):
                raise InputError(f"params[{d.key!r}] has shape {s}; this batch needs {(s[0], *want)} "
                                 "(draw the params with run.sample for these images)")
            kind = "bool" if isinstance(d.dist, Bernoulli) else "int" if isinstance(d.dist, (Permutation, Categorical)) \
                else "float"
            dt = B.dtype_name(v)
            got = "bool" if dt == "bool" else "int" if "int" in dt else "float" if "float" in dt else dt
            if got != kind:
                raise InputTypeError(f"params[{d.key!r}] has dtype {dt}; this draw is {kind}")
