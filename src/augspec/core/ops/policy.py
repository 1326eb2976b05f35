"""Policy augmentation: RandAugment, TrivialAugmentWide, AutoAugment and AugMix, with
torchvision's and timm's tables (``docs/policies.md``).

A policy is a container: it expands (``children``) into layers the planner flattens into
gated leaves, so every sample draws its own ops and magnitudes with no host round-trip.
A layer is a ``Choice`` of candidates; a candidate is an ordinary op (``Posterize``,
``Brightness``, ...) whose draws the policy replaces (``Given``) with a ``Magnitude``: a
per-sample level mapped to the op's parameter by the policy's table, with a random sign
where the table says so. The planner orders the candidates of one step so that the warps
of the step fuse into one resampling and the linear colour maps into one ``A x + t``;
the other ops run masked, where their gate is on.

The geometric candidates are three private ops whose matrices follow torchvision v2 and
timm (forward maps in augspec's frame, pixel centres at ``(j + 1/2, i + 1/2)``):

- rotate by ``angle`` degrees about the image centre, counter-clockwise;
- shear ``x' = x - f y`` (``ShearX``) or ``y' = y - f x`` (``ShearY``) about the corner
  ``(0, 0)``: PIL's ``transform(AFFINE, (1, f, 0, 0, 1, 0))``, torchvision's ``shear=atan(f)``
  at ``center=[0, 0]``;
- translate by ``v`` pixels (``x' = x + v``), where ``v`` is the table's value times the
  image side (``relative``) and truncated toward zero (``truncate``: torchvision's ``int()``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..containers import Choice, Given, RandomApply
from ..errors import SpecError, SpecTypeError
from ..random import Beta, Distribution, Magnitude, Uniform
from ..spec import Context, GeometricOp, Op, PixelOp, check_channels, check_choice, check_int, check_number, spec
from .geometric import affine_matrix

INTERPOLATIONS = ("nearest", "bilinear")


# ------------------------------------------------------------ the candidates
@spec
class PolicyRotate(GeometricOp):
    """Rotate by ``angle`` degrees (draw ``"angle"``) about the image centre."""

    name = "policy_rotate"
    samplewise = True
    channel_fields = ("fill",)
    interpolation: str = "nearest"
    fill: Any = (0.0,)
    p: float = 1.0

    def draws(self) -> dict[str, Distribution]:
        return {"angle": Uniform(low=0.0, high=0.0)}

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        a = params["angle"] * (math.pi / 180.0)
        cos, sin = B.cos(a), B.sin(a)
        cx, cy = ctx.width / 2.0, ctx.height / 2.0
        return affine_matrix(B, cos, sin, cx - (cos * cx + sin * cy), -sin, cos, cy - (cos * cy - sin * cx))


@spec
class PolicyShear(GeometricOp):
    """Shear about the corner (0, 0) by the factor ``f`` (draw ``"factor"``): ``x' = x - f y``
    (``axis="x"``) or ``y' = y - f x`` (``axis="y"``)."""

    name = "policy_shear"
    samplewise = True
    channel_fields = ("fill",)
    axis: str = "x"
    interpolation: str = "nearest"
    fill: Any = (0.0,)
    p: float = 1.0

    def draws(self) -> dict[str, Distribution]:
        return {"factor": Uniform(low=0.0, high=0.0)}

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        f = params["factor"]
        zero, one = 0.0 * f, 0.0 * f + 1.0
        if self.axis == "x":
            return affine_matrix(B, one, -f, zero, zero, one, zero)
        return affine_matrix(B, one, zero, zero, -f, one, zero)


@spec
class PolicyTranslate(GeometricOp):
    """Translate along ``axis`` by ``v`` pixels (draw ``"shift"``), ``x' = x + v``: ``v`` is
    the draw times the image side where ``relative``, truncated toward zero where ``truncate``."""

    name = "policy_translate"
    samplewise = True
    channel_fields = ("fill",)
    axis: str = "x"
    relative: bool = True
    truncate: bool = False
    interpolation: str = "nearest"
    fill: Any = (0.0,)
    p: float = 1.0

    def draws(self) -> dict[str, Distribution]:
        return {"shift": Uniform(low=0.0, high=0.0)}

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        v = params["shift"]
        if self.relative:
            v = v * (ctx.width if self.axis == "x" else ctx.height)
        if self.truncate:
            v = B.where(v < 0.0, -B.floor(-v), B.floor(v))
        zero, one = 0.0 * v, 0.0 * v + 1.0
        if self.axis == "x":
            return affine_matrix(B, one, zero, v, zero, one, zero)
        return affine_matrix(B, one, zero, zero, zero, one, v)


# -------------------------------------------------------------------- tables
# name -> (low, high, signed, offset): the parameter is offset + s * (low + (high - low) * l / L)
_TV_RAND: dict[str, tuple[float, float, bool, float] | None] = {
    "Identity": None,
    "ShearX": (0.0, 0.3, True, 0.0), "ShearY": (0.0, 0.3, True, 0.0),
    "TranslateX": (0.0, 150.0 / 331.0, True, 0.0), "TranslateY": (0.0, 150.0 / 331.0, True, 0.0),
    "Rotate": (0.0, 30.0, True, 0.0),
    "Brightness": (0.0, 0.9, True, 1.0), "Color": (0.0, 0.9, True, 1.0),
    "Contrast": (0.0, 0.9, True, 1.0), "Sharpness": (0.0, 0.9, True, 1.0),
    "Posterize": (8.0, 4.0, False, 0.0), "Solarize": (1.0, 0.0, False, 0.0),
    "AutoContrast": None, "Equalize": None,
}
_TV_AUTO = {**{k: v for k, v in _TV_RAND.items() if k != "Identity"}, "Invert": None}
_TV_TRIVIAL: dict[str, tuple[float, float, bool, float] | None] = {
    "Identity": None,
    "ShearX": (0.0, 0.99, True, 0.0), "ShearY": (0.0, 0.99, True, 0.0),
    "TranslateX": (0.0, 32.0, True, 0.0), "TranslateY": (0.0, 32.0, True, 0.0),
    "Rotate": (0.0, 135.0, True, 0.0),
    "Brightness": (0.0, 0.99, True, 1.0), "Color": (0.0, 0.99, True, 1.0),
    "Contrast": (0.0, 0.99, True, 1.0), "Sharpness": (0.0, 0.99, True, 1.0),
    "Posterize": (8.0, 2.0, False, 0.0), "Solarize": (1.0, 0.0, False, 0.0),
    "AutoContrast": None, "Equalize": None,
}
_TV_AUGMIX: dict[str, tuple[float, float, bool, float] | None] = {
    "ShearX": (0.0, 0.3, True, 0.0), "ShearY": (0.0, 0.3, True, 0.0),
    "TranslateX": (0.0, 1.0 / 3.0, True, 0.0), "TranslateY": (0.0, 1.0 / 3.0, True, 0.0),
    "Rotate": (0.0, 30.0, True, 0.0),
    "Posterize": (4.0, 0.0, False, 0.0), "Solarize": (1.0, 0.0, False, 0.0),
    "AutoContrast": None, "Equalize": None,
    "Brightness": (0.0, 0.9, True, 1.0), "Color": (0.0, 0.9, True, 1.0),
    "Contrast": (0.0, 0.9, True, 1.0), "Sharpness": (0.0, 0.9, True, 1.0),
}
_AUGMIX_PARTIAL = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")

#: timm's level-to-argument rules (``timm.data.auto_augment``), level in [0, 10]:
#: name -> Magnitude fields (besides the level's)
_TIMM_ARGS: dict[str, dict[str, Any] | None] = {
    "AutoContrast": None, "Equalize": None, "Invert": None,
    "Rotate": dict(low=0.0, high=30.0, signed=True),
    "Posterize": dict(low=0.0, high=4.0, floor=True),
    "PosterizeIncreasing": dict(low=0.0, high=4.0, floor=True, scale=-1.0, offset=4.0),
    "Solarize": dict(low=0.0, high=256.0, floor=True, scale=1.0 / 255.0),
    "SolarizeIncreasing": dict(low=0.0, high=256.0, floor=True, scale=-1.0 / 255.0, offset=256.0 / 255.0),
    "SolarizeAdd": dict(low=0.0, high=110.0, floor=True, scale=1.0 / 255.0),
    "Color": dict(low=0.1, high=1.9), "Contrast": dict(low=0.1, high=1.9),
    "Brightness": dict(low=0.1, high=1.9), "Sharpness": dict(low=0.1, high=1.9),
    "ColorIncreasing": dict(low=0.0, high=0.9, signed=True, offset=1.0, minimum=0.1),
    "ContrastIncreasing": dict(low=0.0, high=0.9, signed=True, offset=1.0, minimum=0.1),
    "BrightnessIncreasing": dict(low=0.0, high=0.9, signed=True, offset=1.0, minimum=0.1),
    "SharpnessIncreasing": dict(low=0.0, high=0.9, signed=True, offset=1.0, minimum=0.1),
    "ShearX": dict(low=0.0, high=0.3, signed=True), "ShearY": dict(low=0.0, high=0.3, signed=True),
    "TranslateXRel": dict(low=0.0, high=0.45, signed=True), "TranslateYRel": dict(low=0.0, high=0.45, signed=True),
}
_TIMM_RAND = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
              "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
_TIMM_RAND_INCREASING = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                         "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                         "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                         "TranslateYRel")

# torchvision's AutoAugment sub-policies: ((op, probability, magnitude bin), (op, probability, bin))
_AUTO_POLICIES: dict[str, tuple[tuple[tuple[str, float, int | None], ...], ...]] = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}


def _candidate(name: str, mag: Magnitude | None, interpolation: str, fill: tuple[float, ...],
               translate: tuple[bool, bool] = (True, True), p: float = 1.0) -> Op | None:
    """The op of table entry ``name`` at the magnitude ``mag`` (None: Identity)."""
    from . import color, filter, tone

    base = name.replace("Increasing", "").replace("Rel", "")
    geo = dict(interpolation=interpolation, fill=fill)
    ops: dict[str, tuple[Op, str | None]] = {
        "ShearX": (PolicyShear(axis="x", **geo), "factor"),
        "ShearY": (PolicyShear(axis="y", **geo), "factor"),
        "TranslateX": (PolicyTranslate(axis="x", relative=translate[0], truncate=translate[1], **geo), "shift"),
        "TranslateY": (PolicyTranslate(axis="y", relative=translate[0], truncate=translate[1], **geo), "shift"),
        "Rotate": (PolicyRotate(**geo), "angle"),
        "Brightness": (color.Brightness(), "factor"),
        "Color": (color.Saturation(), "factor"),
        "Contrast": (color.Contrast(), "factor"),
        "Sharpness": (filter.Sharpness(), "factor"),
        "Posterize": (tone.Posterize(), "bits"),
        "Solarize": (tone.Solarize(), "threshold"),
        "SolarizeAdd": (tone.SolarizeAdd(threshold=128.0 / 255.0), "addition"),
        "AutoContrast": (tone.AutoContrast(), None),
        "Equalize": (tone.Equalize(), None),
        "Invert": (tone.Invert(), None),
    }
    if base == "Identity":
        return None
    op, key = ops[base]
    given = ((key, mag),) if key is not None and mag is not None else ()
    return Given(op, given, p)


def _tv_magnitude(entry: tuple[float, float, bool, float] | None, max_level: float, **level: Any) -> Magnitude | None:
    if entry is None:
        return None
    low, high, signed, offset = entry
    return Magnitude(low=low, high=high, signed=signed, offset=offset, max_level=max_level, **level)


def _fill(owner: str, fill: Any) -> tuple[float, ...]:
    return check_channels(owner, "fill", fill, 0.0, 1.0)


def _layer(cands: list[Op | None], identity_weight: float = 0.0) -> Choice:
    """A layer choosing uniformly among ``cands`` (None: the identity)."""
    ops = [c for c in cands if c is not None]
    ident = sum(1.0 for c in cands if c is None) + identity_weight
    return Choice(tuple((c,) for c in ops), (1.0,) * len(ops), ident)


class _Policy(Op):
    """Base of the policy ops: a container whose ``children`` are the expanded layers."""

    family = "container"
    samplewise = True

    @property
    def children(self) -> tuple[Op, ...]:
        kids = self.__dict__.get("_children")
        if kids is None:
            kids = tuple(self.expand())
            object.__setattr__(self, "_children", kids)
        return kids

    def expand(self) -> list[Op]:
        raise NotImplementedError

    def _check_common(self) -> None:
        n = type(self).__name__
        check_choice(n, "interpolation", self.interpolation, INTERPOLATIONS)  # type: ignore[attr-defined]
        object.__setattr__(self, "fill", _fill(n, self.fill))  # type: ignore[attr-defined]
        self._validate_p()


# ------------------------------------------------------------------ policies
@spec
class RandAugment(_Policy):
    """``num_ops`` layers; each sample draws, per layer, one op uniformly from the table (with
    replacement) at strength ``magnitude`` (Cubuk et al. 2020).

    torchvision's table (default): ``magnitude`` is a bin of ``num_magnitude_bins`` (9 of 31),
    the 14 ops of ``torchvision.transforms.v2.RandAugment`` (Identity included), a random sign
    for the signed ones. ``timm_compat=True``: timm's ``rand_augment_transform``: 15 ops (the
    ``increasing`` variants where set), levels on [0, 10] (``magnitude_max`` caps them), each
    chosen op applied with probability ``op_prob`` (0.5). ``magnitude_std > 0`` draws the level
    per op from ``N(magnitude, magnitude_std)`` clipped to [0, max] (above 100: uniform on
    [0, magnitude]), timm's ``mstd``. ``increasing`` only selects timm's variants (torchvision's
    table already grows with the magnitude).
    """

    name = "rand_augment"
    channels = (3,)
    num_ops: int = 2
    magnitude: float = 9
    num_magnitude_bins: int = 31
    magnitude_std: float = 0.0
    increasing: bool = False
    timm_compat: bool = False
    magnitude_max: float | None = None
    op_prob: float | None = None
    interpolation: str = "nearest"
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        n, s = "RandAugment", object.__setattr__
        s(self, "num_ops", check_int(n, "num_ops", self.num_ops, 0, 16))
        if not isinstance(self.increasing, bool) or not isinstance(self.timm_compat, bool):
            raise SpecTypeError(f"{n}: increasing and timm_compat must be True or False")
        s(self, "num_magnitude_bins", check_int(n, "num_magnitude_bins", self.num_magnitude_bins, 2, 1000))
        top = float(self.magnitude_max) if self.magnitude_max is not None else (
            10.0 if self.timm_compat else self.num_magnitude_bins - 1.0)
        if self.magnitude_max is not None:
            s(self, "magnitude_max", check_number(n, "magnitude_max", self.magnitude_max, 0.0, 1000.0))
        s(self, "magnitude", check_number(n, "magnitude", self.magnitude, 0.0, top))
        s(self, "magnitude_std", check_number(n, "magnitude_std", self.magnitude_std, 0.0, 1e9))
        if self.op_prob is not None:
            s(self, "op_prob", check_number(n, "op_prob", self.op_prob, 0.0, 1.0))
        self._check_common()

    def _level(self) -> dict[str, Any]:
        top = self.magnitude_max if self.magnitude_max is not None else (
            10.0 if self.timm_compat else self.num_magnitude_bins - 1.0)
        if self.magnitude_std == 0.0:
            return dict(mode="fixed", level=self.magnitude)
        if self.magnitude_std > 100.0:
            return dict(mode="uniform", level=self.magnitude)
        return dict(mode="normal", level=self.magnitude, std=self.magnitude_std, level_max=top)

    def expand(self) -> list[Op]:
        out = []
        level = self._level()
        for _ in range(self.num_ops):
            if self.timm_compat:
                prob = 0.5 if self.op_prob is None else self.op_prob
                names = _TIMM_RAND_INCREASING if self.increasing else _TIMM_RAND
                cands = [_candidate(nm, None if _TIMM_ARGS[nm] is None else Magnitude(max_level=10.0, **level,
                                                                                        **_TIMM_ARGS[nm]),
                                    self.interpolation, self.fill, (True, False), prob) for nm in names]
            else:
                prob = 1.0 if self.op_prob is None else self.op_prob
                bins = self.num_magnitude_bins - 1.0
                cands = [_candidate(nm, _tv_magnitude(e, bins, **level), self.interpolation, self.fill, (True, True),
                                    prob) for nm, e in _TV_RAND.items()]
            out.append(_layer(cands))
        return out


@spec
class TrivialAugmentWide(_Policy):
    """One op per sample, uniformly from torchvision's wide table, at a magnitude bin drawn
    uniformly from ``num_magnitude_bins`` (Müller & Hutter 2021)."""

    name = "trivial_augment_wide"
    channels = (3,)
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        n = "TrivialAugmentWide"
        object.__setattr__(self, "num_magnitude_bins",
                           check_int(n, "num_magnitude_bins", self.num_magnitude_bins, 2, 1000))
        self._check_common()

    def expand(self) -> list[Op]:
        bins = self.num_magnitude_bins
        cands = [_candidate(nm, _tv_magnitude(e, bins - 1.0, mode="bins", bins=bins), self.interpolation, self.fill,
                            (False, True)) for nm, e in _TV_TRIVIAL.items()]
        return [_layer(cands)]


@spec
class AutoAugment(_Policy):
    """One of the 25 sub-policies of ``policy`` per sample (uniformly); each is two ops, each
    applied with its own probability at its own magnitude bin of 10 (Cubuk et al. 2019;
    torchvision's tables)."""

    name = "auto_augment"
    channels = (3,)
    policy: str = "imagenet"
    interpolation: str = "nearest"
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        check_choice("AutoAugment", "policy", self.policy, tuple(_AUTO_POLICIES))
        self._check_common()

    def expand(self) -> list[Op]:
        branches = []
        for sub in _AUTO_POLICIES[self.policy]:
            ops = []
            for nm, prob, bin_ in sub:
                mag = _tv_magnitude(_TV_AUTO[nm], 9.0, mode="fixed", level=float(bin_ or 0))
                ops.append(_candidate(nm, mag, self.interpolation, self.fill, (True, True), prob))
            branches.append(tuple(ops))
        return [Choice(tuple(branches), (1.0,) * len(branches))]


@spec
class AugMix(PixelOp):
    """``width`` chains of ``depth`` ops (1 to 3 per chain and sample where ``depth < 0``), each
    op uniform from torchvision's AugMix table at a magnitude bin uniform in ``[0, severity)``
    of 10, mixed as ``m x + (1 - m) sum_i w_i chain_i(x)`` with ``m ~ Beta(alpha, alpha)`` and
    ``w ~ Dirichlet(alpha, ..., alpha)`` per sample (Hendrycks et al. 2020; torchvision v2's
    ``AugMix``). The chains are sub-plans run on the whole batch, gated per sample like any
    policy; ``w`` is drawn by stick-breaking from Betas. ``all_ops=False`` leaves out the
    colour and sharpness ops (they overlap with common corruptions)."""

    name = "augmix"
    channels = (3,)
    samplewise = True
    severity: int = 3
    width: int = 3
    depth: int = -1
    alpha: float = 1.0
    all_ops: bool = True
    interpolation: str = "bilinear"
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        n, s = "AugMix", object.__setattr__
        s(self, "severity", check_int(n, "severity", self.severity, 1, 10))
        s(self, "width", check_int(n, "width", self.width, 1, 16))
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth == 0 or self.depth > 16:
            raise SpecError(f"AugMix: depth={self.depth!r} must be -1 (1 to 3 ops, drawn) or an integer in [1, 16]")
        s(self, "alpha", check_number(n, "alpha", self.alpha, 0.0, 1e3, lo_open=True))
        if not isinstance(self.all_ops, bool):
            raise SpecTypeError(f"{n}: all_ops must be True or False, got {self.all_ops!r}")
        check_choice(n, "interpolation", self.interpolation, INTERPOLATIONS)
        s(self, "fill", _fill(n, self.fill))
        self._validate_p()

    def chain(self) -> list[Op]:
        """The ops of one chain (its layers; the second and third gated by the drawn depth)."""
        names = tuple(_TV_AUGMIX) if self.all_ops else _AUGMIX_PARTIAL

        def layer() -> Choice:
            return _layer([_candidate(nm, _tv_magnitude(_TV_AUGMIX[nm], 9.0, mode="bins", bins=self.severity),
                                      self.interpolation, self.fill, (True, True)) for nm in names])

        if self.depth > 0:
            return [layer() for _ in range(self.depth)]
        return [layer(), RandomApply([layer(), RandomApply(layer(), p=0.5)], p=2.0 / 3.0)]

    def _plans(self) -> list[Any]:
        plans = self.__dict__.get("_plan_cache")
        if plans is None:
            from ..plan import Plan

            plans = [Plan(self.chain()) for _ in range(self.width)]
            object.__setattr__(self, "_plan_cache", plans)
        return plans

    def draws(self) -> dict[str, Distribution]:
        a = float(self.alpha)
        out: dict[str, Distribution] = {"m": Beta(a=a, b=a)}
        for i in range(self.width - 1):  # stick-breaking: w_i = b_i prod_{j<i} (1 - b_j), b_i ~ Beta(a, (k-i-1) a)
            out[f"b{i}"] = Beta(a=a, b=a * (self.width - i - 1))
        for i, plan in enumerate(self._plans()):
            for d in plan.sampler.draws:
                out[f"c{i}/{d.key}"] = d.dist
        return out

    def prepare(self, ctx: Context) -> None:
        for plan in self._plans():
            plan.prepare(ctx.n, (ctx.height, ctx.width, ctx.channels))

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        m = params["m"]
        out = B.per_sample(m) * x
        rest = 1.0 - m  # the weight the chains share
        for i, plan in enumerate(self._plans()):
            if i < self.width - 1:
                w = rest * params[f"b{i}"]
                rest = rest - w
            else:
                w = rest
            pre = f"c{i}/"
            sub = {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}
            xi, _ = plan.apply(B, x, None, sub, ctx)
            out = out + B.per_sample(w) * xi
        return out


# ---------------------------------------------------------------------- timm
def from_timm(config: str, *, img_mean: tuple[float, ...] | None = (0.485, 0.456, 0.406),
              interpolation: str = "bilinear") -> Op:
    """The policy op of a timm ``auto_augment`` string: ``"rand-m9-mstd0.5-inc1"`` (RandAugment:
    ``m`` magnitude, ``n`` layers, ``mstd``, ``mmax``, ``inc``, ``p`` op probability) or
    ``"augmix-m3-w3-d-1-a1"`` (AugMix: ``m`` severity, ``w`` width, ``d`` depth, ``a`` alpha;
    torchvision's AugMix tables). ``img_mean`` is the fill of the warps, as timm's
    ``create_transform`` sets it (the ImageNet mean, rounded to a level; None: timm's 128)."""
    if not isinstance(config, str):
        raise SpecTypeError(f"from_timm: config must be a string, got {config!r}")
    parts = config.split("-")
    fill = (128 / 255,) if img_mean is None else tuple(min(255, round(255 * v)) / 255 for v in img_mean)
    if parts[0] == "rand":
        kw: dict[str, Any] = dict(timm_compat=True, magnitude=10.0, interpolation=interpolation, fill=fill)
        for part in parts[1:]:
            key, val = _split(config, part)
            if key == "m":
                kw["magnitude"] = float(int(val))
            elif key == "n":
                kw["num_ops"] = int(val)
            elif key == "mstd":
                kw["magnitude_std"] = float(val)
            elif key == "mmax":
                kw["magnitude_max"] = float(int(val))
            elif key == "inc":
                kw["increasing"] = bool(int(val))
            elif key == "p":
                kw["op_prob"] = float(val)
            else:
                raise SpecError(f"from_timm: unknown RandAugment section {part!r} in {config!r} "
                                "(known: m, n, mstd, mmax, inc, p)")
        if kw["magnitude"] > kw.get("magnitude_max", 10.0):
            kw["magnitude"] = kw.get("magnitude_max", 10.0)
        return RandAugment(**kw)
    if parts[0] == "augmix":
        kw = dict(interpolation=interpolation, fill=fill)
        rest = "-".join(parts[1:]).replace("d-1", "d_1")
        for part in filter(None, rest.split("-")):
            key, val = _split(config, part.replace("_", "-"))
            names = {"m": "severity", "w": "width", "d": "depth", "a": "alpha", "b": None}
            if key not in names:
                raise SpecError(f"from_timm: unknown AugMix section {part!r} in {config!r} (known: m, w, d, a)")
            if names[key] is None:
                continue  # timm's "blended" flag: torchvision's mixing is used either way
            kw[names[key]] = float(val) if key == "a" else int(val)
        return AugMix(**kw)
    raise SpecError(f"from_timm: {config!r} is not a RandAugment ('rand-...') or AugMix ('augmix-...') string")


def _split(config: str, part: str) -> tuple[str, str]:
    m = re.fullmatch(r"([a-z]+)(-?[0-9.]+)", part)
    if m is None:
        raise SpecError(f"from_timm: cannot read the section {part!r} of {config!r}")
    return m.group(1), m.group(2)
