"""Colour specs. Brightness, contrast, saturation and (YIQ) hue are per-sample
linear maps of the channels, ``x -> A x + t``, so the planner composes a whole
colour jitter into one 3x4 map per sample and clamps once.

    brightness b:  x -> b x
    contrast c:    x -> c x + (1 - c) m     m = mean over the image of the luma w.x
    saturation s:  x -> s x + (1 - s) w.x   (a blend toward the grey image)
    hue h (YIQ):   a rotation by 2 pi h about the grey axis in YIQ space
    hue h (HSV):   H -> (H + h) mod 1 in HSV (torchvision's meaning; not linear)

with the luma weights w = (0.299, 0.587, 0.114). ColorJitter applies them in
that fixed order: brightness, contrast, saturation, hue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..random import Distribution, Uniform
from ..spec import ColorOp, Context, check_choice, check_range, spec

LUMA = (0.299, 0.587, 0.114)

_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64)
_YIQ_INV = np.linalg.inv(_YIQ)
# A(theta) = K0 + cos(theta) K1 + sin(theta) K2: the rotation of the (I, Q) plane,
# signed so that a positive shift moves hue the way HSV's does (red -> yellow -> green).
_K0 = _YIQ_INV @ np.diag([1.0, 0.0, 0.0]) @ _YIQ
_K1 = _YIQ_INV @ np.diag([0.0, 1.0, 1.0]) @ _YIQ
_K2 = _YIQ_INV @ np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]) @ _YIQ
# float32 copies made once: backends may cache constants by array identity
_K32 = tuple(k.astype(np.float32) for k in (_K0, _K1, _K2))


def luma_weights(c: int) -> tuple[float, ...]:
    return LUMA if c == 3 else (1.0,)


def _eye(B: Any, n: int, c: int) -> Any:
    return B.broadcast_to(B.eye(c, "float32"), (n, c, c))


def _scaled_eye(B: Any, s: Any, c: int) -> Any:
    return B.reshape(s, (-1, 1, 1)) * B.eye(c, "float32")


def brightness_affine(B: Any, b: Any, ctx: Context) -> tuple[Any, Any]:
    return _scaled_eye(B, b, ctx.channels), B.zeros((ctx.n, ctx.channels), "float32")


def contrast_affine(B: Any, c: Any, mean: Any, ctx: Context) -> tuple[Any, Any]:
    w = B.asarray(luma_weights(ctx.channels), "float32")
    m = B.sum(mean * w, axis=-1)  # (N,)
    t = B.reshape((1.0 - c) * m, (-1, 1)) * B.ones((1, ctx.channels), "float32")
    return _scaled_eye(B, c, ctx.channels), t


def saturation_affine(B: Any, s: Any, ctx: Context) -> tuple[Any, Any]:
    w = B.asarray(luma_weights(ctx.channels), "float32")
    grey = B.ones((ctx.channels, 1), "float32") * B.reshape(w, (1, -1))  # rows: w
    a = _scaled_eye(B, s, ctx.channels) + B.reshape(1.0 - s, (-1, 1, 1)) * grey
    return a, B.zeros((ctx.n, ctx.channels), "float32")


def hue_affine(B: Any, h: Any, ctx: Context) -> tuple[Any, Any]:
    ang = h * (2.0 * math.pi)
    k0, k1, k2 = (B.asarray(k, "float32") for k in _K32)
    a = k0 + B.reshape(B.cos(ang), (-1, 1, 1)) * k1 + B.reshape(B.sin(ang), (-1, 1, 1)) * k2
    return a, B.zeros((ctx.n, 3), "float32")


def compose(B: Any, second: tuple[Any, Any], first: tuple[Any, Any]) -> tuple[Any, Any]:
    """The map ``second . first`` of two per-sample affine colour maps."""
    a2, t2 = second
    a1, t1 = first
    return B.matmul(a2, a1), apply_to_vector(B, a2, t1) + t2


def apply_to_vector(B: Any, a: Any, v: Any) -> Any:
    """``a @ v`` for (N, C, C) and (N, C)."""
    return B.sum(a * B.reshape(v, (-1, 1, B.shape(v)[-1])), axis=-1)


def color_map(B: Any, x: Any, a: Any, t: Any, finite: bool = True) -> Any:
    """``A x + t`` per pixel (``B.color_affine``), where a channel takes nothing from a channel
    whose coefficient is exactly 0: a NaN or inf in one channel stays out of the channels that
    do not read it (``0 * inf`` is NaN; a gated-off sample's identity map keeps it exactly). The
    finite part is one ``color_affine``; each non-finite value is added where its coefficient
    is not 0. ``finite``: ``x`` holds no NaN or inf (integer input): the plain map; a backend
    that reads values on the host for free (``B.compact``) also takes it when it sees none."""
    if finite:
        return B.color_affine(x, a, t)
    ok = (x * 0.0) == 0.0  # False for NaN and +-inf
    n = B.shape(x)[0]
    some = B.compact(B.any(B.reshape(B.logical_not(ok), (n, -1)), axis=1))
    if some is not None and B.shape(some)[0] == 0:  # a CPU backend saw that all is finite: the plain map
        return B.color_affine(x, a, t)
    out = B.split_channels(B.color_affine(B.where(ok, x, 0.0), a, t))
    bad = B.split_channels(B.where(ok, 0.0, x))
    c = len(out)
    for i in range(c):
        for k in range(c):
            coef = B.per_sample(a[:, i, k])
            out[i] = out[i] + B.where(coef == 0.0, 0.0, coef * bad[k])
    return B.merge_channels(out)


def hsv_hue_shift(B: Any, x: Any, h: Any) -> Any:
    hsv = B.rgb_to_hsv(B.clip(x, 0.0, 1.0))
    hue, sat, val = B.split_channels(hsv)
    hue = hue + B.per_sample(h)
    hue = hue - B.floor(hue)
    return B.hsv_to_rgb(B.merge_channels([hue, sat, val]))


@spec
class Brightness(ColorOp):
    """Multiply by a factor b; ``factor=0.4`` draws b in [0.6, 1.4]."""

    name = "brightness"
    samplewise = True
    factor: Any = 0.2
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_range("Brightness", "factor", self.factor, center=1.0, lo=0.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"factor": Uniform(low=self.factor[0], high=self.factor[1])}

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        return brightness_affine(B, params["factor"], ctx)


@spec
class Contrast(ColorOp):
    """Blend toward the mean luma of the image by a factor c in the range."""

    name = "contrast"
    samplewise = True
    channels = (1, 3)
    needs_mean = True
    factor: Any = 0.2
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_range("Contrast", "factor", self.factor, center=1.0, lo=0.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"factor": Uniform(low=self.factor[0], high=self.factor[1])}

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        return contrast_affine(B, params["factor"], mean, ctx)


@spec
class Saturation(ColorOp):
    """Blend toward the grey image by a factor s in the range."""

    name = "saturation"
    samplewise = True
    channels = (3,)
    factor: Any = 0.2
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_range("Saturation", "factor", self.factor, center=1.0, lo=0.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"factor": Uniform(low=self.factor[0], high=self.factor[1])}

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        return saturation_affine(B, params["factor"], ctx)


@spec
class Hue(ColorOp):
    """Shift hue by h (a fraction of the hue circle, in [-0.5, 0.5]).

    ``mode="yiq"`` (default) rotates about the grey axis in YIQ space, a linear map
    that fuses with the other colour ops; ``mode="hsv"`` shifts H in HSV space.
    """

    name = "hue"
    samplewise = True
    channels = (3,)
    shift: Any = 0.1
    mode: str = "yiq"
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift", check_range("Hue", "shift", self.shift, lo=-0.5, hi=0.5))
        check_choice("Hue", "mode", self.mode, ("yiq", "hsv"))
        self._validate_p()

    @property
    def linear(self) -> bool:  # type: ignore[override]
        return self.mode == "yiq"

    def draws(self) -> dict[str, Distribution]:
        return {"shift": Uniform(low=self.shift[0], high=self.shift[1])}

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        return hue_affine(B, params["shift"], ctx)

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        if self.mode == "hsv":
            return hsv_hue_shift(B, x, params["shift"])
        return super().pixels(B, x, params, ctx)


@spec
class ColorJitter(ColorOp):
    """Brightness, contrast, saturation and hue, in that order, each drawn per sample.

    Same ranges as the single ops; a zero turns that part off.
    """

    name = "color_jitter"
    samplewise = True
    brightness: Any = 0.0
    contrast: Any = 0.0
    saturation: Any = 0.0
    hue: Any = 0.0
    hue_mode: str = "yiq"
    p: float = 1.0

    def __post_init__(self) -> None:
        n, s = "ColorJitter", object.__setattr__
        s(self, "brightness", check_range(n, "brightness", self.brightness, center=1.0, lo=0.0))
        s(self, "contrast", check_range(n, "contrast", self.contrast, center=1.0, lo=0.0))
        s(self, "saturation", check_range(n, "saturation", self.saturation, center=1.0, lo=0.0))
        s(self, "hue", check_range(n, "hue", self.hue, lo=-0.5, hi=0.5))
        check_choice(n, "hue_mode", self.hue_mode, ("yiq", "hsv"))
        self._validate_p()

    def _parts(self) -> tuple[bool, bool, bool, bool]:
        return (self.brightness != (1.0, 1.0), self.contrast != (1.0, 1.0),
                self.saturation != (1.0, 1.0), self.hue != (0.0, 0.0))

    def accepts_channels(self, c: int) -> bool:
        _, con, sat, hue = self._parts()
        if sat or hue:
            return c == 3
        return c in (1, 3) if con else True

    @property
    def linear(self) -> bool:  # type: ignore[override]
        return self.hue_mode == "yiq" or not self._parts()[3]

    @property
    def needs_mean(self) -> bool:  # type: ignore[override]
        return self._parts()[1]

    def draws(self) -> dict[str, Distribution]:
        b, c, s, h = self._parts()
        d: dict[str, Distribution] = {}
        if b:
            d["brightness"] = Uniform(low=self.brightness[0], high=self.brightness[1])
        if c:
            d["contrast"] = Uniform(low=self.contrast[0], high=self.contrast[1])
        if s:
            d["saturation"] = Uniform(low=self.saturation[0], high=self.saturation[1])
        if h:
            d["hue"] = Uniform(low=self.hue[0], high=self.hue[1])
        return d

    def _linear_affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context, with_hue: bool):
        acc = (_eye(B, ctx.n, ctx.channels), B.zeros((ctx.n, ctx.channels), "float32"))
        if "brightness" in params:
            acc = compose(B, brightness_affine(B, params["brightness"], ctx), acc)
        if "contrast" in params:
            m = apply_to_vector(B, acc[0], mean) + acc[1]
            acc = compose(B, contrast_affine(B, params["contrast"], m, ctx), acc)
        if "saturation" in params:
            acc = compose(B, saturation_affine(B, params["saturation"], ctx), acc)
        if with_hue and "hue" in params:
            acc = compose(B, hue_affine(B, params["hue"], ctx), acc)
        return acc

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        return self._linear_affine(B, params, mean, ctx, with_hue=True)

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        if self.linear:
            return super().pixels(B, x, params, ctx)
        a, t = self._linear_affine(B, params, B.channel_mean(x), ctx, with_hue=False)
        return hsv_hue_shift(B, B.color_affine(x, a, t), params["hue"])
