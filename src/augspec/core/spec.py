"""The Op base class, the op families, and the validation helpers specs share.

An op (a *spec*) is a frozen dataclass of hyper-parameters. It declares its
random draws (``draws``) and implements the kernel of its family against the
backend primitive namespace ``B``; the planner (``plan.py``) fuses consecutive
ops of a family. Every per-sample op has ``p``, the probability that it applies
to each sample; the planner draws that Bernoulli, not the op.

Values inside a pipeline are floating point in [0, 1] (uint8 inputs are divided
by 255 first) until an op that leaves that range runs (``bounded = False``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .errors import SpecError, SpecTypeError
from .random import Distribution

Range = tuple[float, float]


# ---------------------------------------------------------------- validation


def _num(op: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecTypeError(f"{op}: {name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v):
        raise SpecError(f"{op}: {name} must not be NaN")
    return v


def check_number(op: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf,
                 *, lo_open: bool = False, hi_open: bool = False) -> float:
    """A real number in [lo, hi] (or open ends), else an error naming op, field, value and range."""
    v = _num(op, name, value)
    bad = v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi)
    if bad or math.isinf(v):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise SpecError(f"{op}: {name}={value!r} is outside the allowed range {lb}{lo}, {hi}{rb}")
    return v


def check_int(op: str, name: str, value: Any, lo: int = 0, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SpecTypeError(f"{op}: {name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise SpecError(f"{op}: {name}={v} is outside the allowed range [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def check_prob(op: str, name: str, value: Any) -> float:
    return check_number(op, name, value, 0.0, 1.0)


def check_range(op: str, name: str, value: Any, *, center: float = 0.0, lo: float = -math.inf,
                hi: float = math.inf, symmetric: bool = True) -> Range:
    """A ``(low, high)`` range; a single number ``v`` means ``(center - v, center + v)``
    (or ``(v, v)`` where ``symmetric`` is False). Both ends must lie in [lo, hi]."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecTypeError(f"{op}: {name} must be a number or a (low, high) pair, got {value!r}")
        a, b = _num(op, name, value[0]), _num(op, name, value[1])
        if a > b:
            raise SpecError(f"{op}: {name}={tuple(value)!r} is an inverted range (low > high)")
    else:
        v = _num(op, name, value)
        if symmetric:
            if v < 0:
                raise SpecError(f"{op}: {name}={value!r} must be >= 0 (a symmetric bound about {center})")
            a, b = center - v, center + v
        else:
            a = b = v
    for end in (a, b):
        if end < lo or end > hi or math.isinf(end):
            raise SpecError(f"{op}: {name}={value!r} gives the range ({a}, {b}), outside the allowed [{lo}, {hi}]")
    return (a, b)


def check_channels(op: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> tuple[float, ...]:
    """A scalar or a per-channel tuple of numbers, stored as a tuple."""
    vals = value if isinstance(value, (list, tuple)) else (value,)
    if len(vals) == 0:
        raise SpecError(f"{op}: {name} must not be empty")
    return tuple(check_number(op, name, v, lo, hi) for v in vals)


def check_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise SpecError(f"{op}: {name}={value!r} is not one of {list(choices)}")
    return value


# ---------------------------------------------------------------------- ops


@dataclass(frozen=True)
class Context:
    """What a kernel knows of the batch besides its params: sizes and the number of classes."""

    n: int
    #: the images' size: Python ints, or (N,) float32 arrays of each image's own size in the
    #: geometric stage that takes a batch of images of different sizes
    height: Any
    width: Any
    channels: int
    num_classes: int | None = None
    #: the input images' dtype name (``"uint8"``, ``"float32"``, ...), where the run knows it:
    #: a Synthetic sample enters the batch in that dtype (``Plan._synthetic``)
    dtype: str | None = None


class Op:
    """Base of every spec. Subclasses are frozen dataclasses registered by name."""

    name: ClassVar[str] = ""
    #: the family, read by the planner: geometric, color, pixel, region, mix, label, feature,
    #: synthetic, container
    family: ClassVar[str] = ""
    #: False when the output leaves [0, 1] (Normalize, Standardize, ZCA, Rescale, Dropout)
    bounded: ClassVar[bool] = True
    #: channel counts the op accepts (None: any)
    channels: ClassVar[tuple[int, ...] | None] = None
    #: True when the op changes labels (they become (N, K) soft labels)
    changes_labels: ClassVar[bool] = False
    #: True when the op's kernel treats every sample alone (no batch statistics), so a
    #: backend may run it on slices of the batch (chunking); declared per class, never
    #: inherited from a family, so a plugin op is chunked only when it says so
    samplewise: ClassVar[bool] = False

    p: float

    def _validate_p(self) -> None:
        object.__setattr__(self, "p", check_prob(type(self).__name__, "p", self.p))

    def draws(self) -> dict[str, Distribution]:
        """The random draws of one call, by name (``p`` is drawn by the planner)."""
        return {}

    #: fields holding one value, or one value per channel (``fill``, ``mean``, ...): the run
    #: checks them against the images' channel count and names the op and field
    channel_fields: ClassVar[tuple[str, ...]] = ()

    def prepare(self, ctx: Context) -> None:
        """Build the host tables (``core/tables.py``) a call on images of ``ctx``'s size reads,
        before any trace; called by ``Plan.prepare``. Most ops have none."""

    def eval_ops(self) -> tuple[Op, ...]:
        """What this op becomes at evaluation (``training=False``): itself where it is
        deterministic (no draws, ``p == 1``, labels untouched), else nothing. Geometric
        ops that set the output size have their own rule (``GeometricOp.eval_ops``)."""
        det = not self.draws() and self.p == 1.0 and not self.changes_labels
        return (self,) if det and self.family not in ("container", "geometric") else ()

    def accepts_channels(self, c: int) -> bool:
        return self.channels is None or c in self.channels

    def channel_mismatch(self, c: int) -> str | None:
        """The first per-channel field whose length is neither 1 nor ``c``, else None."""
        for name in self.channel_fields:
            v = getattr(self, name, None)
            if v is not None and len(v) not in (1, c):
                return name
        return None

    # serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from .serialize import to_dict

        return to_dict(self)

    @classmethod
    def config_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.init)  # type: ignore[arg-type]


def spec(cls: type) -> type:
    """Make an Op subclass a frozen, keyword-friendly dataclass."""
    return dataclass(frozen=True, eq=True, repr=True)(cls)


class GeometricOp(Op):
    """Contributes a per-sample 3x3 forward matrix in pixel coordinates.

    ``matrix(B, params, ctx)`` returns ``(N, 3, 3)`` float32: content at
    ``q`` in the input moves to ``M q`` in the output (frame [0, W] x [0, H], y down).

    An op that sets the output size (``sets_size``: crops, resizes, pads) also has
    ``output_size(M, h, w)``: the size of its output given its input's, where ``h``
    and ``w`` are Python numbers (``M`` is ``SCALAR``) or, for a batch of images of
    different sizes, (N,) float32 arrays (``M`` is the backend ``B``); its ``ctx``
    then holds those arrays too. Such an op applies to every sample (``p == 1``, no
    gate). ``axis_aligned`` ops (a per-axis scale and shift: crops, resizes, pads,
    flips) let the stage resample separably, with ``antialias`` when it shrinks;
    ``footprint(h, w)`` bounds the source pixels per output pixel along y and x for an
    input of at most ``h`` x ``w`` (the number of filter taps is set from it).

    A ``projective`` op's matrices may have a last row other than ``0 0 1`` (a homography:
    Perspective); the stage then divides by the third coordinate and is one general warp
    (``core/resample.py``). An op may also override ``displacement(B, params, ctx)``:
    an ``(N, H, W, 2)`` float32 field ``(dx, dy)`` in pixels of the op's output
    (ElasticTransform). The planner ends a geometric stage after such an op, so it is
    always the last of its stage, and an output pixel ``p`` of the stage reads the input
    at ``M^-1 (p + d(p))`` (``M`` the stage's composed matrix, the op's own included);
    where the op's gate is off, ``d`` is 0. ``displacement`` is always the op's own method
    (a registered op kernel replaces ``matrix`` only).
    """

    family = "geometric"
    #: fill and interpolation of the warp (None: no preference)
    fill = None
    interpolation = None
    #: antialiasing when the map shrinks (None: no preference)
    antialias = None
    #: "w" or "h" for a pure flip (the planner then skips the resampling)
    flip_axis: ClassVar[str | None] = None
    #: True for an op whose output size differs from its input's (see the class notes)
    sets_size: ClassVar[bool] = False
    #: True when every matrix is a per-axis scale and shift (no rotation or shear)
    axis_aligned: ClassVar[bool] = False
    #: True when a matrix may be projective (last row not ``0 0 1``; see the class notes)
    projective: ClassVar[bool] = False

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError

    def displacement(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        """An ``(N, H, W, 2)`` float32 displacement ``(dx, dy)`` in pixels of the op's output,
        added to each output pixel before the stage's inverse matrix (see the class notes);
        None (this default) for none. An op that overrides it ends its stage."""
        return None

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        """The output's (height, width) for an input of ``h`` x ``w`` (the same by default)."""
        return h, w

    def footprint(self, h: float, w: float) -> tuple[float, float]:
        """An upper bound of ``|d source / d output|`` along y and x, for inputs of at most
        ``h`` x ``w``; 1 for maps that do not shrink."""
        return 1.0, 1.0

    def check_size(self, h: int, w: int) -> None:
        """Refuse (``InputError``) an input size this op cannot take; called with each
        image's size where the sizes are known on the host."""

    def eval_ops(self) -> tuple[Op, ...]:
        """At evaluation a random geometric op is skipped; a deterministic one that sets the
        size (Resize, CenterCrop, Pad) stays; a random one that sets the size overrides
        this with its documented rule (RandomResizedCrop: resize and centre-crop)."""
        return (self,) if self.sets_size and not self.draws() and self.p == 1.0 else ()


def has_displacement(op: Any) -> bool:
    """True for a geometric op that overrides ``GeometricOp.displacement`` (it ends its stage)."""
    fn = getattr(type(op), "displacement", None)
    return fn is not None and fn is not GeometricOp.displacement


class ColorOp(Op):
    """A colour map. When ``linear``, ``affine(B, params, mean, ctx)`` returns ``(A, t)``,
    ``(N, C, C)`` and ``(N, C)``, with ``x -> A x + t`` per pixel; ``mean`` is the
    ``(N, C)`` per-channel mean of the op's input (linear ops compose exactly since
    the mean of ``A x + t`` is ``A mean + t``). Otherwise ``pixels`` is the kernel."""

    family = "color"
    linear = True
    #: True when ``affine`` reads ``mean`` (the planner then computes it once per stage)
    needs_mean = False

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        raise NotImplementedError

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        a, t = self.affine(B, params, B.channel_mean(x), ctx)
        return B.color_affine(x, a, t)


class PixelOp(Op):
    """An elementwise per-sample map: ``pixels(B, x, params, ctx) -> x``.

    ``channel_map(ctx)`` may return ``(mul, add)``, per-channel tuples with
    ``pixels(x) == mul * x + add`` for every call (no draws): backends fold such a
    map into their neighbours (a uint8 scale, one pass with a clamp)."""

    family = "pixel"

    def channel_map(self, ctx: Context) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        return None

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError


class RegionOp(Op):
    """Writes ``fill`` inside a per-sample mask: ``mask(B, params, ctx) -> (N, H, W)`` bool.

    ``boxes(B, params, ctx)`` may return ``(y0, y1, x0, x1)``, each ``(N, k)`` with
    integer values, when the mask is exactly the union of the ``k`` axis-aligned boxes
    rows ``[y0, y1)`` x columns ``[x0, x1)`` of each sample (edges clipped to the image;
    an empty box has ``y0 == y1`` or ``x0 == x1``); None otherwise. Backends may fill
    such boxes directly instead of building the mask."""

    family = "region"

    def mask(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError

    def boxes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any] | None:
        return None


class MixOp(Op):
    """Pairs each sample with a partner (the draw ``partner``, a permutation).

    ``mix(B, params, ctx)`` returns ``(w, lw)``: ``w`` the weight of the
    partner per pixel, ``(N, H, W)`` or ``(N, 1, 1)``, and ``lw`` ``(N,)`` the
    partner's label weight. The output is ``(1 - w) x + w x[partner]``.
    """

    family = "mix"
    changes_labels = True

    def mix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
        raise NotImplementedError

    def paste_box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, ...] | None:
        """``(y0, y1, x0, x1, lw)`` (each (N,)) when the partner's pixel weight is 1 on the
        rows ``[y0, y1)`` and columns ``[x0, x1)`` and 0 elsewhere, ``lw`` its label weight;
        None otherwise. Backends blend such a box with separable masks."""
        return None


class TileOp(Op):
    """Makes each output image from whole-pixel translated tiles of several images of the batch.

    ``tiles(B, params, ctx)`` returns ``(sources, shifts, bounds)``: ``sources`` (N, T)
    int64 the batch index each tile reads (tile 0 may be the sample itself), ``shifts``
    (N, T, 2) float32 whole-pixel ``(dx, dy)`` by which the source moves, and ``bounds``
    (N, T, 4) float32 each tile's output rectangle ``(x0, y0, x1, y1)`` (they partition the
    image; later tiles win). Labels mix by the tiles' areas. (``Mosaic``.)"""

    family = "tile"
    changes_labels = True
    #: the tiles per output image (T)
    count: ClassVar[int] = 1

    def tiles(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any]:
        raise NotImplementedError


class LabelOp(Op):
    """Changes (N, K) soft labels only: ``labels(B, y, params, ctx) -> y``."""

    family = "label"
    changes_labels = True

    def labels(self, B: Any, y: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError


class FeatureOp(Op):
    """Acts on activations (or images) of any shape: ``features(B, x, params, ctx) -> x``."""

    family = "feature"
    bounded = False

    def features(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError


class SyntheticOp(Op):
    """Replaces some samples of the batch with generated ones and their labels.

    ``replace(B, params, ctx)`` gives the (N,) bool gate of the samples replaced,
    ``classes(B, params, ctx)`` the (N,) int64 class of each, and ``generate(B, labels, key,
    ctx, real)`` the images (N, H, W, C) float32 NHWC in [0, 1] (or ``(images, soft
    labels)``) for the (N, 2) ``"uint32"`` keys ``key`` (``core/synthetic.py``). The
    planner runs these stages first, before every other op, so what follows augments real
    and synthetic samples alike. Labels become (N, K) soft labels."""

    family = "synthetic"
    changes_labels = True

    def replace(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError

    def classes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        raise NotImplementedError

    def generate(self, B: Any, labels: Any, key: Any, ctx: Context, real: Any = None) -> Any:
        raise NotImplementedError


class FitOp(PixelOp):
    """A pixel op with statistics learnt from data by ``fit(x)`` (returns a new op)."""

    bounded = False

    def fit(self, x: Any) -> FitOp:  # x: NHWC float64 numpy array in the pipeline's value domain
        raise NotImplementedError

    @property
    def fitted(self) -> bool:
        return True


def check_ops(owner: str, name: str, ops: Any) -> tuple[Op, ...]:
    if isinstance(ops, Op):
        ops = (ops,)
    if not isinstance(ops, (list, tuple)):
        raise SpecTypeError(f"{owner}: {name} must be a list of ops, got {type(ops).__name__}")
    out = tuple(ops)
    for i, o in enumerate(out):
        if not isinstance(o, Op):
            raise SpecTypeError(f"{owner}: {name}[{i}] is not an op: {o!r}")
    return out
