"""Pipeline: an ordered list of specs, the number of classes and a seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError, SpecError, SpecTypeError
from .spec import FitOp, Op, check_int, check_ops

#: the most classes a pipeline takes: soft labels are (N, K) float32, 4 MiB per sample here
MAX_CLASSES = 1 << 20


class Pipeline(Op):
    """Ops applied in order; ``num_classes`` is needed when labels come as class ids
    and an op changes labels; ``seed`` makes every call reproducible (None: fresh
    entropy at each ``compile``).

    ``compile(backend, **options)`` returns the callable run; ``fit(x)`` learns the
    statistics of Standardize and ZCAWhitening in place and returns the pipeline.
    """

    name = "pipeline"
    family = "container"
    p = 1.0

    def __init__(self, ops: Sequence[Op] | Op = (), num_classes: int | None = None, seed: int | None = None):
        self.ops: tuple[Op, ...] = check_ops("Pipeline", "ops", ops)
        if num_classes is not None:
            num_classes = check_int("Pipeline", "num_classes", num_classes, 1, MAX_CLASSES)
        if seed is not None:
            seed = check_int("Pipeline", "seed", seed, 0, 2**63 - 1)
        self.num_classes = num_classes
        self.seed = seed

    @property
    def children(self) -> tuple[Op, ...]:
        return self.ops

    def __repr__(self) -> str:
        return f"Pipeline({list(self.ops)!r}, num_classes={self.num_classes!r}, seed={self.seed!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def compile(self, backend: str = "numpy", **options: Any) -> Any:
        """Compile for a backend: "numpy", "torch", "tensorflow", "jax", "albumentations",
        a plugin's, "auto" (chosen by the type of the first images), or a backend object."""
        from .registry import compile_pipeline

        return compile_pipeline(self, backend, **options)

    def fit(self, x: Any, layout: str = "NHWC") -> Pipeline:
        """Fit every Standardize / ZCAWhitening on ``x`` (a NumPy-convertible batch)
        as it arrives at that op: the deterministic ops before it are applied, the
        random ones are skipped. Returns ``self``, now fitted."""
        from .registry import load_backend

        if layout not in ("NHWC", "NCHW"):
            raise SpecError(f"Pipeline.fit: layout={layout!r} is not 'NHWC' or 'NCHW'")
        a = np.asarray(x)
        if a.ndim != 4 or a.shape[0] == 0:
            raise InputError(f"Pipeline.fit: x must be a non-empty batch (N, H, W, C), got shape {a.shape}")
        if a.dtype.kind not in "uif":
            raise SpecTypeError(f"Pipeline.fit: x must be numbers, got dtype {a.dtype}")
        if layout == "NCHW":
            a = a.transpose(0, 2, 3, 1)
        cur = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
        B = load_backend("numpy", layout="NHWC")
        new_ops = []
        for op in self.ops:
            if isinstance(op, FitOp):
                op = op.fit(cur)
            if isinstance(op, Op) and op.family in ("pixel",) and not op.draws() and op.p == 1.0:
                from .spec import Context

                n, h, w, c = cur.shape
                cur = np.asarray(op.pixels(B, cur.astype(np.float32), {}, Context(n, h, w, c)), np.float64)
            new_ops.append(op)
        self.ops = tuple(new_ops)
        return self

    # serialization ---------------------------------------------------------
    def to_json(self, **kw: Any) -> str:
        from .serialize import to_json

        return to_json(self, **kw)

    def to_yaml(self) -> str:
        from .serialize import to_yaml

        return to_yaml(self)

    @classmethod
    def from_dict(cls, d: Any) -> Pipeline:
        from .serialize import from_dict

        out = from_dict(d)
        if not isinstance(out, Pipeline):
            raise SpecTypeError(f"Pipeline.from_dict: the config holds a {type(out).__name__}, not a pipeline")
        return out

    @classmethod
    def from_json(cls, s: str) -> Pipeline:
        from .serialize import from_json

        return cls.from_dict(from_json(s).to_dict())

    @classmethod
    def from_yaml(cls, s: str) -> Pipeline:
        from .serialize import from_yaml

        return cls.from_dict(from_yaml(s).to_dict())
