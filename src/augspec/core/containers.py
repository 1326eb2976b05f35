"""Containers: OneOf (one of several ops per sample) and RandomApply (ops applied
together with probability p per sample). The planner flattens them into their
leaves with per-sample gates, so their children still fuse with their neighbours."""

from __future__ import annotations

from typing import Any

from .errors import SpecError, SpecTypeError
from .random import Categorical, Distribution
from .spec import Op, check_number, check_ops, check_prob, spec


@spec
class OneOf(Op):
    """Apply exactly one of ``ops`` to each sample (with probability ``p``),
    chosen with ``weights`` (default: equal). All candidates see the same input."""

    name = "one_of"
    family = "container"
    ops: Any = ()
    weights: Any = None
    p: float = 1.0

    def __post_init__(self) -> None:
        ops = check_ops("OneOf", "ops", self.ops)
        if not ops:
            raise SpecError("OneOf: ops must hold at least one op")
        object.__setattr__(self, "ops", ops)
        if self.weights is not None:
            if not isinstance(self.weights, (list, tuple)):
                raise SpecTypeError(f"OneOf: weights must be a list of numbers, got {self.weights!r}")
            if len(self.weights) != len(ops):
                raise SpecError(f"OneOf: {len(self.weights)} weights for {len(ops)} ops")
            w = tuple(check_number("OneOf", "weights", v, 0.0, 1e9) for v in self.weights)
            if sum(w) <= 0:
                raise SpecError(f"OneOf: weights={self.weights!r} must not all be zero")
            object.__setattr__(self, "weights", w)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        w = self.weights or (1.0,) * len(self.ops)
        return {"choice": Categorical(weights=w)}

    @property
    def children(self) -> tuple[Op, ...]:
        return self.ops


@spec
class RandomApply(Op):
    """Apply ``op`` (an op or a list of ops, applied in order) with probability ``p`` per sample."""

    name = "random_apply"
    family = "container"
    op: Any = ()
    p: float = 0.5

    def __post_init__(self) -> None:
        ops = check_ops("RandomApply", "op", self.op)
        if not ops:
            raise SpecError("RandomApply: op must be an op or a non-empty list of ops")
        object.__setattr__(self, "op", ops[0] if len(ops) == 1 and isinstance(self.op, Op) else ops)
        object.__setattr__(self, "p", check_prob("RandomApply", "p", self.p))

    @property
    def children(self) -> tuple[Op, ...]:
        return (self.op,) if isinstance(self.op, Op) else tuple(self.op)
