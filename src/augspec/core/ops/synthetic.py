"""Synthetic: replace a fraction of each batch with generated samples and their labels.

Per call, the samples replaced are drawn per sample (``replace ~ Bernoulli(ratio)``) or,
with ``exact=True``, exactly ``floor(ratio * N + 1/2)`` of them: the samples whose place in
a random permutation (the draw ``order``) is below that count. Each replaced sample gets
a class, ``sum_k [u >= c_k]`` for a uniform ``u`` (the draw ``class``) and the cumulative
class weights ``c`` (``class_weights``, uniform over the ``K`` classes by default), and a
key of two 24-bit words (the draw ``key``); the generator named by ``generator`` (a
registered factory, built with ``options``) makes its image from its class and key alone
(``core/synthetic.py``). Its label becomes the class's one-hot row, or the soft label the
generator returns (a variant of a real sample takes that sample's label).

The planner runs Synthetic stages before every other op, wherever they sit in the
pipeline, so every op augments real and synthetic samples alike; Synthetic cannot be
inside ``OneOf`` or ``RandomApply`` (its ``ratio`` is its gate). ``K`` is the pipeline's
``num_classes`` (or the soft labels' width), else ``len(class_weights)``. In a batch of
images of different sizes (a folder of JPEGs) a synthetic sample is made at ``size``, at the
top left of its padded image, and takes that size: the crop or resize after it treats it
like any image of that size. A ``size`` other than the batch's makes any batch one of
images of different sizes (an op that fixes the size must follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError, SpecError, SpecTypeError
from ..random import Bernoulli, Distribution, Permutation, Uniform
from ..spec import Context, SyntheticOp, check_int, check_number, check_prob, spec


def _options(value: Any) -> tuple[tuple[str, Any], ...]:
    """A generator's options: a mapping or (name, value) pairs, stored as sorted pairs (a
    frozen, hashable value that serialises as lists)."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(k, v) for k, v in items]
    except (TypeError, ValueError):
        raise SpecTypeError(f"Synthetic: options must be a mapping of generator options, got {value!r}") from None
    for k, _ in pairs:
        if not isinstance(k, str):
            raise SpecTypeError(f"Synthetic: option names must be strings, got {k!r}")
    if len({k for k, _ in pairs}) != len(pairs):
        raise SpecError(f"Synthetic: options name one option twice: {value!r}")
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs))


@spec
class Synthetic(SyntheticOp):
    """Replace ``ratio`` of each batch with images from ``generator`` (see the module notes):
    per sample with probability ``ratio``, or exactly ``round(ratio * N)`` samples when
    ``exact``; classes uniform or by ``class_weights``; ``options`` build the generator.
    ``size``: ``(height, width)`` of the synthetic samples (None: the batch's size; needed for
    a batch of images of different sizes); samples of another size than the batch's make it a
    batch of images of different sizes, so an op that fixes the size must follow."""

    name = "synthetic"
    generator: str = "fractal"
    ratio: float = 0.25
    exact: bool = False
    class_weights: Any = None
    options: Any = ()
    size: Any = None
    #: Synthetic has no apply probability of its own: ``ratio`` is its gate
    p = 1.0

    def __post_init__(self) -> None:
        n = "Synthetic"
        if not isinstance(self.generator, str) or not self.generator:
            raise SpecTypeError(f"{n}: generator must be a registered generator's name, got {self.generator!r}")
        object.__setattr__(self, "ratio", check_prob(n, "ratio", self.ratio))
        if not isinstance(self.exact, bool):
            raise SpecTypeError(f"{n}: exact must be True or False, got {self.exact!r}")
        if self.class_weights is not None:
            if not isinstance(self.class_weights, (list, tuple)) or not self.class_weights:
                raise SpecTypeError(f"{n}: class_weights must be a non-empty list of weights, got "
                                    f"{self.class_weights!r}")
            w = tuple(check_number(n, "class_weights", v, 0.0, 1e12) for v in self.class_weights)
            if sum(w) <= 0.0:
                raise SpecError(f"{n}: class_weights={self.class_weights!r} sum to 0")
            object.__setattr__(self, "class_weights", w)
        object.__setattr__(self, "options", _options(self.options))
        if self.size is not None:
            if not isinstance(self.size, (list, tuple)) or len(self.size) != 2:
                raise SpecTypeError(f"{n}: size must be (height, width) or None, got {self.size!r}")
            object.__setattr__(self, "size", (check_int(n, "size", self.size[0], 1, 1 << 15),
                                              check_int(n, "size", self.size[1], 1, 1 << 15)))

    def draws(self) -> dict[str, Distribution]:
        out: dict[str, Distribution] = {"order": Permutation()} if self.exact else {"replace": Bernoulli(p=self.ratio)}
        out["class"] = Uniform(low=0.0, high=1.0)
        out["key"] = Uniform(low=0.0, high=1.0, shape=(2,))
        return out

    # the generator ------------------------------------------------------------
    def source(self) -> Any:
        """The generator this op names, made once from the registry with ``options``."""
        gen = self.__dict__.get("_source")
        if gen is None:
            from ..registry import get_registry

            gen = get_registry().get_generator(self.generator).make(dict(self.options))
            object.__setattr__(self, "_source", gen)
        return gen

    def num_classes(self, ctx: Context) -> int:
        k = ctx.num_classes
        if k is None and self.class_weights is not None:
            k = len(self.class_weights)
        if k is None:
            raise InputError("Synthetic: the classes of synthetic samples need num_classes: Pipeline(..., "
                             "num_classes=K), soft (N, K) labels, or class_weights")
        if self.class_weights is not None and len(self.class_weights) != k:
            raise InputError(f"Synthetic: class_weights has {len(self.class_weights)} weights but there are {k} "
                             "classes")
        return int(k)

    def prepare(self, ctx: Context) -> None:
        if ctx.num_classes is None and self.class_weights is None:
            return  # the call says (or refuses) how many classes
        k = self.num_classes(ctx)
        self.source().check_classes(k)
        if isinstance(ctx.height, int) and isinstance(ctx.width, int):
            self.source().prepare((ctx.height, ctx.width, ctx.channels), k)

    # the family's methods ------------------------------------------------------
    def replace(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        if not self.exact:
            return params["replace"]
        order = params["order"]  # sample order[r] has rank r: replaced where r < count
        count = B.floor(B.cast(ctx.n, "float32") * self.ratio + 0.5) if not isinstance(ctx.n, int) \
            else float(int(np.floor(ctx.n * self.ratio + 0.5)))
        ranks = B.argsort(order)  # the inverse permutation: the rank of each sample
        return B.cast(ranks, "float32") < count

    def classes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        k = self.num_classes(ctx)
        w = np.asarray(self.class_weights if self.class_weights is not None else [1.0] * k, np.float64)
        cuts = (np.cumsum(w) / w.sum())[:-1].astype(np.float32)  # the first K - 1 cumulative weights
        if cuts.size == 0:
            return B.cast(0.0 * params["class"], "int64")
        u = B.reshape(params["class"], (-1, 1))
        c = B.reshape(B.asarray(cuts, "float32"), (1, -1))
        return B.cast(B.sum(B.cast(u >= c, "float32"), axis=1), "int64")

    def generate(self, B: Any, labels: Any, key: Any, ctx: Context, real: Any = None) -> Any:
        return self.source()(B, labels, key, (int(ctx.height), int(ctx.width), ctx.channels), self.num_classes(ctx),
                             real)
