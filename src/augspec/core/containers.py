"""Containers: OneOf (one of several ops per sample) and RandomApply (ops applied
together with probability p per sample). The planner flattens them into their
leaves with per-sample gates, so their children still fuse with their neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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


# ------------------------------------------------------------------- internal
# The two containers below are what policy ops (``ops/policy.py``) expand into. They are
# not registered and not serialised: a pipeline holds the policy, which saves its own fields.


@dataclass(frozen=True, eq=True, repr=True)
class Given(Op):
    """``op`` with some of its draws replaced (``draws``: ``(name, distribution)`` pairs, by
    the op's own draw names): a policy's candidate, the op at the policy's magnitudes. The
    planner makes it a leaf of ``op`` itself, so it runs and fuses as ``op`` does."""

    name: ClassVar[str] = "given"
    family: ClassVar[str] = "container"
    op: Op
    given: tuple[tuple[str, Distribution], ...] = ()
    p: float = 1.0

    def __post_init__(self) -> None:
        own = self.op.draws()
        for key, _ in self.given:
            if key not in own:
                raise SpecError(f"Given: {type(self.op).__name__} has no draw {key!r} (its draws: {sorted(own)})")

    def leaf_draws(self) -> dict[str, Distribution]:
        return {**self.op.draws(), **dict(self.given)}

    @property
    def children(self) -> tuple[Op, ...]:
        return (self.op,)


@dataclass(frozen=True, eq=True, repr=True)
class Choice(Op):
    """One of ``branches`` per sample with ``weights``, or none (the identity) with the weight
    ``identity``: a policy's layer. A branch is a sequence of ops applied in order (an
    AutoAugment sub-policy; one op in RandAugment). Branches exclude each other, so the
    planner may order the ops of one step (the j-th op of every branch) as it likes: it puts
    the warps together, then the colour maps, so each step fuses into one warp and one
    colour map (``plan.flatten``). As in ``OneOf``, every branch sees the same input."""

    name: ClassVar[str] = "choice"
    family: ClassVar[str] = "container"
    branches: tuple[tuple[Op, ...], ...] = ()
    weights: tuple[float, ...] = ()
    identity: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.branches) or not self.branches:
            raise SpecError(f"Choice: {len(self.weights)} weights for {len(self.branches)} branches")

    def draws(self) -> dict[str, Distribution]:
        w = self.weights + ((self.identity,) if self.identity > 0 else ())
        return {"choice": Categorical(weights=w)}

    @property
    def children(self) -> tuple[Op, ...]:
        return tuple(op for branch in self.branches for op in branch)
