"""Tone specs: the point maps and per-image histogram maps of the policy augmentations
(AutoAugment, RandAugment, TrivialAugment). Values are in [0, 1]; the uint8 grid is
``v = round(255 x)``, ``round(t) = floor(t + 0.5)``.

    invert:          x -> 1 - x                                  (linear colour map)
    grayscale:       x -> w.x in every channel, w = LUMA         (linear colour map)
    solarize t:      x -> 1 - x where x >= t, else x             (PIL / torchvision)
    solarize_add a:  x -> clip(x + a, 0, 1) where x < t, else x  (timm, t = 128/255)
    posterize b:     v -> floor(v / 2**(8-b)) 2**(8-b), b = round(bits) in [0, 8]
    equalize:        PIL's ImageOps.equalize per channel on the uint8 grid
    autocontrast:    (x - lo) / (hi - lo) per channel, lo / hi its min / max

Each per-sample value is read from ``params[<draw name>]`` alone (``threshold``,
``addition``, ``bits``), in the units above, so a policy may draw it instead. The
threshold comparisons allow ``2**-20``: a pixel ``k / 255`` read from uint8 compares
as the level ``k`` does, however a backend rounded ``k * (1 / 255)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..random import Distribution, Uniform
from ..spec import ColorOp, Context, PixelOp, check_number, check_range, spec
from .color import luma_weights

#: the threshold comparisons' allowance (a float32 ``k * (1/255)`` is within 2**-24 of ``k / 255``)
_EPS = 2.0 ** -20


def _levels(B: Any, x: Any) -> Any:
    """The uint8 level ``round(255 x)`` of each value (float32, in [0, 255]; NaN: 0)."""
    v = B.floor(B.clip(x, 0.0, 1.0) * 255.0 + 0.5)
    return B.where(v >= 0.0, v, 0.0 * v)


def _floor_div(B: Any, a: Any, d: Any) -> Any:
    """``a // d`` exactly for integer-valued float32 ``a >= 0`` and ``d >= 1`` below 2**23: the
    rounded quotient's floor, moved by one where the division rounded across an integer."""
    q = B.floor(a / d)
    r = a - q * d
    return q + B.cast(r >= d, "float32") - B.cast(r < 0.0, "float32")


def _cumsum(B: Any, h: Any) -> Any:
    """The inclusive cumulative sum along the last axis of (R, K) float32 counts: log2(K)
    shifted adds (Hillis-Steele), exact for integer values while the sums stay below 2**24."""
    k = B.shape(h)[-1]
    s = 1
    while s < k:
        h = h + B.concat([0.0 * h[:, :s], h[:, : k - s]], axis=1)
        s *= 2
    return h


def _per_image_channel(B: Any, v: Any, c: int) -> Any:
    """(N, C) -> a shape that broadcasts against a batch (any layout)."""
    return B.from_nhwc(B.reshape(v, (-1, 1, 1, c)))


@spec
class Invert(ColorOp):
    """``x -> 1 - x`` (PIL ``ImageOps.invert``, torchvision ``invert``): the linear map
    ``A = -I, t = 1``, so it fuses with the other linear colour ops."""

    name = "invert"
    samplewise = True
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        c = ctx.channels
        a = B.broadcast_to(B.eye(c, "float32") * -1.0, (ctx.n, c, c))
        return a, B.ones((ctx.n, c), "float32")


@spec
class Grayscale(ColorOp):
    """Every channel becomes the luma ``w.x``, ``w = (0.299, 0.587, 0.114)`` (ITU-R 601-2,
    PIL ``convert("L")`` and torchvision ``rgb_to_grayscale``), keeping the C channels;
    a linear colour map (one channel: the identity)."""

    name = "grayscale"
    samplewise = True
    channels = (1, 3)
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        c = ctx.channels
        w = B.asarray(luma_weights(c), "float32")
        rows = B.ones((c, 1), "float32") * B.reshape(w, (1, -1))  # every row: w
        return B.broadcast_to(rows, (ctx.n, c, c)), B.zeros((ctx.n, c), "float32")


@spec
class Solarize(PixelOp):
    """Invert the pixels at or above a threshold t: ``x -> 1 - x`` where ``x >= t``
    (PIL ``ImageOps.solarize``, torchvision ``solarize``). ``threshold`` in [0, 1]: a
    ``(low, high)`` range drawn per sample (draw ``threshold``), or a number ``v`` for
    ``(v, v)``; t = 1 inverts only the white pixels, t = 0 every pixel."""

    name = "solarize"
    samplewise = True
    threshold: Any = 0.5
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_range("Solarize", "threshold", self.threshold, lo=0.0, hi=1.0,
                                                          symmetric=False))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"threshold": Uniform(low=self.threshold[0], high=self.threshold[1])}

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        t = B.per_sample(params["threshold"])
        return B.where(x >= t - _EPS, 1.0 - x, x)


@spec
class SolarizeAdd(PixelOp):
    """Add a per-sample ``a`` to the pixels below a fixed threshold t, then clip to [0, 1]:
    ``x -> clip(x + a, 0, 1)`` where ``x < t``, else x (timm's ``solarize_add``, with
    ``a = addition`` in [-1, 1] as a fraction of the range: timm's 110 levels is 110/255).
    ``addition``: a ``(low, high)`` range drawn per sample (draw ``addition``) or a number
    ``v`` for ``(v, v)``; ``threshold`` in [0, 1] (timm's 128 levels by default)."""

    name = "solarize_add"
    samplewise = True
    addition: Any = 0.1
    threshold: float = 128.0 / 255.0
    p: float = 1.0

    def __post_init__(self) -> None:
        n = "SolarizeAdd"
        object.__setattr__(self, "addition", check_range(n, "addition", self.addition, lo=-1.0, hi=1.0,
                                                         symmetric=False))
        object.__setattr__(self, "threshold", check_number(n, "threshold", self.threshold, 0.0, 1.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"addition": Uniform(low=self.addition[0], high=self.addition[1])}

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        a = B.per_sample(params["addition"])
        return B.where(x >= self.threshold - _EPS, x, B.clip(x + a, 0.0, 1.0))


@spec
class Posterize(PixelOp):
    """Keep the top b bits of each uint8 level (PIL ``ImageOps.posterize``, torchvision
    ``posterize``): ``v = round(255 x)``, ``x -> floor(v / 2**(8-b)) 2**(8-b) / 255``, with
    ``b = round(bits)`` clipped to [0, 8] (b = 0 gives black, b = 8 the uint8 grid).
    ``bits`` in [0, 8]: a ``(low, high)`` range drawn per sample (draw ``bits``, a float
    that the kernel rounds) or a number ``v`` for ``(v, v)``."""

    name = "posterize"
    samplewise = True
    bits: Any = 4
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", check_range("Posterize", "bits", self.bits, lo=0.0, hi=8.0,
                                                     symmetric=False))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"bits": Uniform(low=self.bits[0], high=self.bits[1])}

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        b = B.clip(B.floor(params["bits"] + 0.5), 0.0, 8.0)
        q = B.per_sample(B.floor(B.exp((8.0 - b) * math.log(2.0)) + 0.5))  # 2**(8-b) exactly
        return B.floor(_levels(B, x) / q) * q * (1.0 / 255.0)


@spec
class Equalize(PixelOp):
    """Histogram equalisation of each channel of each image, PIL's ``ImageOps.equalize``
    rule (torchvision's ``equalize`` too) on the uint8 grid ``v = round(255 x)``: with
    ``h`` the 256-bin histogram, ``step = (sum(h) - h[last non-empty bin]) // 255``; where
    ``step == 0`` the channel is unchanged, else ``v -> min(255, (step // 2 + sum(h[:v]))
    // step)``; the output is that level / 255. Exact for images below 2**23 pixels
    (integer counts in float32); one histogram per channel (``B.bincount``), no loop
    over samples."""

    name = "equalize"
    samplewise = True
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        shape = tuple(B.shape(x))
        c = ctx.channels
        size = 1
        for d in shape[1:]:
            size *= d
        # bin v + 256 c of its image's row: one histogram per (image, channel)
        idx = B.cast(_levels(B, x), "int32") + B.per_channel(B.arange(c, "int32") * 256)
        h = B.reshape(B.bincount(B.reshape(idx, (-1, size)), 256 * c), (-1, 256))  # (N C, 256)
        incl = _cumsum(B, h)
        total = incl[:, 255:256]
        last = B.sum(h * B.cast((h > 0.0) & (incl == total), "float32"), axis=1, keepdims=True)
        step = _floor_div(B, total - last, 255.0)
        safe = B.where(step > 0.0, step, 1.0 + 0.0 * step)
        lut = B.minimum(_floor_div(B, B.floor(safe * 0.5) + (incl - h), safe), 255.0)
        lut = B.where(step > 0.0, lut, B.reshape(B.arange(256, "float32"), (1, 256)) + 0.0 * lut)
        # each pixel's entry: row (n C + c) of the (N C, 256) table
        rows = B.per_sample(B.arange(shape[0], "int32") * (256 * c))
        out = B.take(B.reshape(lut, (-1,)), B.reshape(idx + rows, (-1,)))
        return B.reshape(out, shape) * (1.0 / 255.0)


@spec
class AutoContrast(PixelOp):
    """Stretch each channel of each image to [0, 1]: ``lo`` and ``hi`` its minimum and
    maximum, ``x -> (x - lo) / (hi - lo)`` where ``hi > lo`` (else unchanged), clipped to
    [0, 1] (torchvision v2 ``autocontrast``; PIL ``ImageOps.autocontrast`` with no cutoff,
    which truncates to uint8 where this rounds: within one level)."""

    name = "autocontrast"
    samplewise = True
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        c = ctx.channels
        lo, hi = B.channel_min(x), B.channel_max(x)
        ok = hi > lo
        d = B.where(ok, hi - lo, 1.0 + 0.0 * lo)
        lo = B.where(ok, lo, 0.0 * lo)
        out = (x - _per_image_channel(B, lo, c)) / _per_image_channel(B, d, c)
        return B.clip(out, 0.0, 1.0)
