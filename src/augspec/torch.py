"""PyTorch integration: augmentation as an ``nn.Module``, batch ops in a DataLoader
``collate_fn``, per-worker keys, and augspec's Dropout as an ``nn.Module``.

    import augspec as aug
    from augspec.torch import Augment, Collate, Dropout, worker_init_fn

    augment = Augment(aug.recipes.r2(), device="cuda")     # train(): augments; eval(): Normalize only
    loader = DataLoader(ds, batch_size=256, num_workers=8,
                        collate_fn=Collate(pipe), worker_init_fn=worker_init_fn)

Randomness follows the core: every call draws from the key ``(seed, epoch,
step, rank, worker)``. ``worker_init_fn`` sets ``worker = id + 1`` on every run
this module tracks in the worker process (0 is the main process), so workers
never repeat each other's draws, and the same seed gives the same batches.
``rank`` defaults to :func:`augspec.distributed.default_rank` (the process
group's rank, else ``$RANK``, else 0) when ``rank=`` is not given, so each
process of a distributed job draws its own stream.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .backends.torch import TorchBackend, TorchRun, to_device
from .core.errors import InputError, SpecError, SpecTypeError
from .core.ops.feature import Dropout as DropoutSpec
from .core.pipeline import Pipeline
from .core.plan import split_pipeline
from .core.random import Bernoulli, DrawSpec, Sampler, derive_key
from .core.run import _state_int
from .core.spec import Op
from .datasets import ImageFolderSamples
from .distributed import default_rank

__all__ = ["Augment", "Collate", "Packed", "collate_fn", "Dropout", "worker_init_fn", "track", "batch_ops"]

_TRACKED: weakref.WeakSet[Any] = weakref.WeakSet()


def track(run: Any) -> Any:
    """Have ``worker_init_fn`` give ``run`` (a compiled run, an Augment, a Collate
    or a Dropout module) the worker's key in each DataLoader worker. Returns it."""
    _TRACKED.add(run)
    return run


def _runs_of(obj: Any) -> list[Any]:
    if isinstance(obj, (Augment, Collate)):
        return [obj.run]
    if isinstance(obj, Dropout) or hasattr(obj, "set_state"):
        return [obj]
    return []


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: every tracked run in this worker, and every run,
    Augment or Collate held as an attribute of the worker's dataset, moves to
    ``worker = worker_id + 1`` (``run.set_state(worker=...)``): its key, and so its
    draws, differ from every other worker's and from the main process's."""
    objs = list(_TRACKED)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        ds = info.dataset
        objs.append(ds)
        objs.extend(vars(ds).values() if hasattr(ds, "__dict__") else ())
    seen: set[int] = set()
    for o in objs:
        for r in _runs_of(o):
            if id(r) not in seen:
                seen.add(id(r))
                r.set_state(worker=int(worker_id) + 1)


def _compile(pipeline: Any, options: dict[str, Any]) -> TorchRun:
    if isinstance(pipeline, TorchRun):
        if options:
            raise SpecError(f"options {sorted(options)} given with an already compiled run")
        return pipeline
    if isinstance(pipeline, Op) and not isinstance(pipeline, Pipeline):
        pipeline = Pipeline([pipeline])
    if not isinstance(pipeline, Pipeline):
        raise SpecTypeError(f"expected a Pipeline (or a torch run), got {type(pipeline).__name__}")
    return pipeline.compile("torch", **options)


class Augment(nn.Module):
    """A pipeline as a module: ``forward(images, labels=None)``.

    In ``train()`` mode the whole pipeline runs (random ops, per-sample draws); in
    ``eval()`` mode only its deterministic ops (Normalize, Standardize, ...), and
    labels pass through. ``get_extra_state`` holds the run's key state, so a
    checkpoint resumes the same stream of draws."""

    def __init__(self, pipeline: Any, **compile_options: Any):
        super().__init__()
        self.run = _compile(pipeline, compile_options)
        track(self)

    def forward(self, images: Any, labels: torch.Tensor | None = None, **targets: Any) -> Any:
        """``(images, labels)`` as the run gives them; with targets (``masks=``, ``boxes=``...) or a
        dict of images and targets, the run's dict (targets follow the deterministic ops in eval)."""
        if targets or isinstance(images, Mapping):
            return self.run(images, labels, training=self.training, **targets)
        if self.training:
            return self.run(images, labels)
        out = self.run(images, None, training=False)
        return out if labels is None else (out, labels)

    def set_epoch(self, epoch: int) -> None:
        self.run.set_epoch(epoch)

    def set_state(self, **state: int) -> None:
        self.run.set_state(**state)

    def get_extra_state(self) -> dict[str, int]:
        return dict(self.run.state)

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.run.seed = int(state["seed"])
        self.run.set_state(**{k: int(v) for k, v in state.items() if k != "seed"})


def batch_ops(pipeline: Pipeline) -> Pipeline:
    """The pipeline's batch part (``core.plan.split_pipeline``, the rule of every integration):
    everything from its first batch op (MixUp, CutMix, label smoothing or a container holding
    one) onward, in order, as a pipeline with the same classes and seed; the ops before it
    are the per-sample part a dataset's workers run."""
    return Pipeline(split_pipeline(pipeline.ops)[1], num_classes=pipeline.num_classes, seed=pipeline.seed)


class Packed(NamedTuple):
    """A batch of images of different sizes as ``Collate(device=...)`` returns it from the
    workers: ``images`` the zero-padded uint8 batch, ``sizes`` (N, 2) int64 heights and
    widths, ``labels``, and the samples' other fields. A tuple of tensors, so a DataLoader
    with ``pin_memory=True`` pins it."""

    images: torch.Tensor
    sizes: torch.Tensor
    labels: Any
    rest: tuple = ()


class Collate:
    """A DataLoader ``collate_fn``: collate the samples (``collate``, default
    ``torch.utils.data.default_collate``; images of different sizes are kept apart and
    packed into one padded batch), then apply the pipeline's batch ops
    (``batch_only=True``: MixUp, CutMix, label smoothing) or the whole pipeline to
    ``(images, labels, *rest)``. Picklable, so it works with spawned workers.

    With ``device=`` the workers only pack: ``__call__`` returns a ``Packed`` batch, and
    ``augment(packed)`` (or ``iterate(loader)``, batch by batch) moves it to the device
    and runs the whole pipeline there, in the main process, with its one stream of
    draws::

        collate = Collate(pipe, device="cuda")
        loader = DataLoader(ImageFolder(root), batch_size=256, num_workers=8, collate_fn=collate,
                            pin_memory=True, persistent_workers=True)
        for images, labels in collate.iterate(loader):
            ...
    """

    def __init__(self, pipeline: Pipeline, collate: Callable[[list], Any] | None = None, *,
                 batch_only: bool | None = None, device: Any = None, **compile_options: Any):
        if not isinstance(pipeline, Pipeline):
            raise SpecTypeError(f"Collate: expected a Pipeline, got {type(pipeline).__name__}")
        if batch_only is None:
            batch_only = device is None
        if device is not None and batch_only:
            raise SpecError("Collate: device= runs the whole pipeline on the device; batch_only=True contradicts it")
        self.pipeline = batch_ops(pipeline) if batch_only else pipeline
        self.collate = collate
        self.device = None if device is None else str(torch.device(device))
        self.options = compile_options
        self.run = self.pipeline.compile("torch", **compile_options)
        track(self)

    def __call__(self, samples: Sequence[Any]) -> Any:
        samples = list(samples)
        if samples and isinstance(samples[0], Mapping):
            return self._call_dicts(samples)
        images, labels, rest = self._collate(samples)
        if self.device is not None:
            if isinstance(images, torch.Tensor):
                return Packed(images, torch.tensor([tuple(images.shape[-2:])] * images.shape[0], dtype=torch.int64)
                              if images.dim() == 4 else torch.zeros((0, 2), dtype=torch.int64), labels, tuple(rest))
            x, sizes = self.run.backend.pack_images(images)
            return Packed(x, torch.from_numpy(sizes), labels, tuple(rest))
        xo, yo = self.run(images, labels)
        return (xo, yo, *rest)

    def _call_dicts(self, samples: list) -> dict[str, Any]:
        """Samples that are dicts of an image and its targets (``{"image", "label", "mask",
        "boxes", "box_labels", "keypoints"}``, as ``run`` takes them): images and masks stacked
        (a list where the sizes differ), boxes and their labels kept as per-image lists (their
        counts differ), the rest collated; the run's dict comes back, other keys beside it."""
        from .core.targets import DICT_KEYS

        if self.device is not None:
            raise SpecError("Collate: device= packs (images, labels, ...) tuples; with dict samples (targets), "
                            "leave device unset and move the batch yourself, or call the run on the device")
        keys = list(samples[0])
        if any(list(s) != keys for s in samples):
            raise InputError(f"Collate: the samples' keys differ (the first has {keys})")
        batch: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k in keys:
            vals = [s[k] for s in samples]
            name = DICT_KEYS.get(k)
            if name in ("images", "masks", "keypoints", "keypoint_visible"):
                vals = [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in vals]
                same = len({tuple(v.shape) for v in vals}) == 1
                batch[k] = torch.stack(vals) if same else vals
            elif name in ("boxes", "box_labels"):
                batch[k] = [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in vals]
            elif name == "labels":
                batch[k] = torch.utils.data.default_collate(vals)
            else:
                extra[k] = torch.utils.data.default_collate(vals) if self.collate is None else self.collate(vals)
        out = self.run(batch)
        out.update(extra)
        return out

    def _collate(self, samples: list) -> tuple[Any, Any, list]:
        """(images: a batch, or a list where they differ in size, labels, other fields)."""
        first = samples[0] if samples else None
        ragged = (self.collate is None and isinstance(first, (tuple, list)) and len(first) >= 2
                  and all(isinstance(s[0], torch.Tensor) for s in samples)
                  and len({tuple(s[0].shape) for s in samples}) > 1)
        if ragged:
            images = [s[0] for s in samples]
            rest = torch.utils.data.default_collate([tuple(s[1:]) for s in samples])
            return images, rest[0], list(rest[1:])
        collate = self.collate or torch.utils.data.default_collate
        batch = collate(samples)
        if isinstance(batch, dict):
            raise InputError("Collate: the collated batch is a dict; pass collate= returning (images, labels, ...)")
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError("Collate: the collated batch must be (images, labels, ...)")
        images, labels, *rest = batch
        return images, labels, rest

    def augment(self, packed: Packed) -> tuple[Any, ...]:
        """A ``Packed`` batch moved to the device and augmented: ``(images, labels, *rest)``."""
        dev = torch.device(self.device or "cpu")
        x = packed.images.to(dev, non_blocking=True)
        labels = packed.labels.to(dev, non_blocking=True) if isinstance(packed.labels, torch.Tensor) else packed.labels
        _, c, h, w = x.shape if self.run.backend.layout == "NCHW" else (x.shape[0], x.shape[3], *x.shape[1:3])
        uniform = bool((packed.sizes[:, 0] == h).all() and (packed.sizes[:, 1] == w).all())
        xo, yo = self.run(x, labels) if uniform else self.run(x, labels, sizes=packed.sizes.numpy())
        return (xo, yo, *packed.rest)

    def iterate(self, loader: Any) -> Any:
        """``augment`` of each batch of ``loader`` (a DataLoader with this collate_fn)."""
        for packed in loader:
            yield self.augment(packed)

    def set_epoch(self, epoch: int) -> None:
        self.run.set_epoch(epoch)

    def __getstate__(self) -> dict[str, Any]:
        import multiprocessing.context

        d = {"pipeline": self.pipeline.to_dict(), "collate": self.collate, "options": self.options,
             "state": self.run.state, "device": self.device}
        if multiprocessing.context.get_spawning_popen() is not None:  # a spawned worker: follow our epoch
            d["epoch_cell"] = self.run._epoch_cell
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.pipeline = Pipeline.from_dict(d["pipeline"])
        self.collate = d["collate"]
        self.device = d.get("device")
        self.options = d["options"]
        self.run = self.pipeline.compile("torch", **self.options)
        st = dict(d["state"])
        self.run.seed = st.pop("seed")
        self.run.set_state(**st)
        if d.get("epoch_cell") is not None:
            self.run.share_epoch_of(d["epoch_cell"])
        track(self)


def collate_fn(pipeline: Pipeline, **kw: Any) -> Collate:
    """``Collate(pipeline, **kw)``: a DataLoader collate_fn applying the batch ops."""
    return Collate(pipeline, **kw)


class Dropout(nn.Module):
    """Inverted dropout from an augspec ``Dropout`` spec (or a rate), with Keras'
    ``noise_shape``: the shape of the keep mask in the input's own axis order,
    ``None`` meaning that axis' size and 1 sharing the mask along the axis (so
    ``(None, None, 1, 1)`` on NCHW drops whole channels). Training:
    ``x * keep / (1 - rate)``, ``keep ~ Bernoulli(1 - rate)``, applied to each
    sample with probability ``p``; eval: the identity. The draws come from
    augspec's counter-based generator under the key ``(seed, epoch, step, rank,
    worker)``; each forward call advances ``step``. Gradients flow through."""

    def __init__(self, spec: DropoutSpec | float = 0.5, noise_shape: Sequence[int | None] | None = None,
                 seed: int | None = None):
        super().__init__()
        if not isinstance(spec, DropoutSpec):
            spec = DropoutSpec(rate=spec, noise_shape=noise_shape)
        elif noise_shape is not None:
            spec = DropoutSpec(rate=spec.rate, noise_shape=noise_shape, p=spec.p)
        self.spec = spec
        from .core.run import _fresh_seed

        self.seed = int(seed) if seed is not None else _fresh_seed()
        self.epoch = self.step = self.worker = 0
        self.rank = default_rank()  # the process group's rank, else $RANK, else 0
        self._backend = TorchBackend()
        self._samplers: dict[Any, Any] = {}
        self._counters: dict[Any, Any] = {}
        track(self)

    @property
    def rate(self) -> float:
        return self.spec.rate

    def extra_repr(self) -> str:
        return f"rate={self.spec.rate}, noise_shape={self.spec.noise_shape}, p={self.spec.p}"

    def set_state(self, *, epoch: int | None = None, step: int | None = None, rank: int | None = None,
                  worker: int | None = None) -> None:
        for k, v in (("epoch", epoch), ("step", step), ("rank", rank), ("worker", worker)):
            if v is not None:
                setattr(self, k, _state_int(k, v))

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.step = _state_int("epoch", epoch), 0

    def mask_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        ns = self.spec.noise_shape
        if ns is None:
            return tuple(shape)
        if len(ns) != len(shape):
            raise InputError(f"Dropout: noise_shape {ns} has {len(ns)} entries for an input of shape {tuple(shape)}")
        out = []
        for v, s in zip(ns, shape):
            v = s if v is None else v
            if v not in (1, s):
                raise InputError(f"Dropout: noise_shape {ns} does not broadcast to the input shape {tuple(shape)}")
            out.append(v)
        return tuple(out)

    def _sampler(self, mshape: tuple[int, ...]) -> tuple[Sampler, tuple[int, ...]]:
        hit = self._samplers.get(mshape)
        if hit is None:
            per_sample = len(mshape) > 0 and mshape[0] != 1
            rest = mshape[1:] if len(mshape) > 0 else ()
            draws = [DrawSpec("keep", Bernoulli(p=1.0 - self.spec.rate, shape=rest, per_sample=per_sample), 0)]
            if self.spec.p < 1.0:
                draws.append(DrawSpec("apply", Bernoulli(p=self.spec.p), 1))
            hit = (Sampler(draws), rest)
            self._samplers = {mshape: hit} if len(self._samplers) > 16 else {**self._samplers, mshape: hit}
        return hit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec.rate == 0.0 or x.dim() == 0 or x.shape[0] == 0:
            return x
        mshape = self.mask_shape(tuple(x.shape))
        sampler, _ = self._sampler(mshape)
        B = self._backend
        B.current = x.device
        n = x.shape[0]
        key = derive_key(self.seed, self.epoch, self.step, self.rank, self.worker)
        self.step += 1
        kt = to_device(torch.tensor([key[0], key[1]], dtype=torch.int64), x.device)
        ck = (mshape, n, str(x.device))
        counters = self._counters.get(ck)
        if counters is None:
            counters = B.asarray(sampler.counters_numpy(n, None), "uint32")
            self._counters = {ck: counters} if len(self._counters) > 16 else {**self._counters, ck: counters}
        params = sampler.sample(B, n, tuple(kt.unbind(0)), None, counters=counters)
        keep = params["keep"] if mshape[0] != 1 else params["keep"][:1]  # (n or 1, *rest) == mask shape
        out = x * (keep.to(x.dtype) * (1.0 / (1.0 - self.spec.rate)))
        if "apply" in params:
            g = params["apply"].reshape((n,) + (1,) * (x.dim() - 1))
            out = torch.where(g, out, x)
        return out


__all__ += ["ImageFolder"]


class ImageFolder(torch.utils.data.Dataset):
    """A ``root/<class>/<file>`` folder as a Dataset (:class:`augspec.datasets.ImageFolderSamples`):
    ``ds[i]`` is ``(image, label)``, the image a uint8 tensor at its own size, ``(3, H, W)``
    for ``layout="NCHW"`` or ``(H, W, 3)`` for ``"NHWC"``, RGB; the label an int64 scalar
    tensor, the class index into ``classes``. ``min_size`` (``(h, w)`` or an int) lets a
    JPEG decode reduced by 2, 4 or 8, never below it. Images differ in size: batch them
    with a ``collate_fn`` that resizes or crops, or returns lists. A file that cannot be
    decoded raises ``InputError`` naming it."""

    def __init__(self, root: Any, *, min_size: int | Sequence[int] | None = None, layout: str = "NCHW"):
        if layout not in ("NCHW", "NHWC"):
            raise SpecError(f"ImageFolder: layout={layout!r} is not one of ['NCHW', 'NHWC']")
        self.layout = layout
        self.data = ImageFolderSamples(root, min_size=min_size)

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    @property
    def samples(self) -> list[tuple[str, int]]:
        return self.data.samples

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.data[index]
        x = torch.from_numpy(image)
        if self.layout == "NCHW":
            x = x.permute(2, 0, 1).contiguous()
        return x, torch.tensor(label, dtype=torch.int64)
