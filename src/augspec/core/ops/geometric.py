"""Geometric specs: each contributes a per-sample 3x3 forward matrix; the planner
composes consecutive ones and resamples once.

Frame: pixel (i, j) has its centre at (x, y) = (j + 0.5, i + 0.5) in [0, W] x [0, H],
y down. Rotation, scale and shear are about the image centre (W/2, H/2)::

    M = T(c + t) . R(angle) . S(sx, sy) . Sh(shear_x, shear_y) . T(-c)
    R = [[cos a, sin a], [-sin a, cos a]]    (a > 0 turns content counter-clockwise on screen)
    Sh = [[1, tan shear_x], [tan shear_y, 1]]
    t = (tx * W, ty * H)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..random import Distribution, Uniform
from ..spec import Context, GeometricOp, check_channels, check_choice, check_range, spec

#: what a warp reads outside the image (``Affine.fill_mode``)
FILL_MODES = ("constant", "nearest", "reflect")


def affine_matrix(B: Any, a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> Any:
    """Stack (N,) entries into (N, 3, 3) matrices [[a, b, c], [d, e, f], [0, 0, 1]]."""
    zero = 0.0 * a
    one = zero + 1.0
    return B.reshape(B.stack([a, b, c, d, e, f, zero, zero, one], axis=-1), (-1, 3, 3))


#: the smallest ``|det|`` of the shear part ``[[1, tan sx], [tan sy, 1]]`` a range may reach
MIN_SHEAR_DET = 1e-3


def _check_invertible(shear: tuple[float, float], shear_y: tuple[float, float]) -> None:
    """Refuse shear ranges that reach a singular map: the shear part has determinant
    ``1 - tan(sx) tan(sy)``; the product of tangents takes every value between its
    extremes at the corners of the two ranges (each tangent is monotonic there), so the
    map can be singular iff that interval comes within ``MIN_SHEAR_DET`` of 1."""
    deg = math.pi / 180.0
    products = [math.tan(a * deg) * math.tan(b * deg) for a in shear for b in shear_y]
    lo, hi = min(products), max(products)
    if lo < 1.0 + MIN_SHEAR_DET and hi > 1.0 - MIN_SHEAR_DET:
        raise SpecError(
            f"Affine: shear={shear!r} with shear_y={shear_y!r} reaches a singular map: tan(shear) * tan(shear_y) "
            f"spans [{lo:.4g}, {hi:.4g}] and the determinant 1 - tan(shear) tan(shear_y) comes within "
            f"{MIN_SHEAR_DET} of 0; keep that product away from 1 over both ranges")


@spec
class Affine(GeometricOp):
    """Random rotation (degrees), translation (fraction of W and H), scale and shear (degrees).

    Each of ``rotate``, ``translate``, ``scale``, ``shear`` is a symmetric bound
    (``scale=0.1`` means factors in [0.9, 1.1]) or a ``(low, high)`` range.
    ``translate_y`` (default: the range of ``translate``), ``scale_y`` (default:
    isotropic, the x factor) and ``shear_y`` (default 0) set the y axis apart.
    ``fill_mode`` says what points outside the image read: ``"constant"`` the
    value ``fill``; ``"nearest"`` the nearest edge pixel (a a | a b c d | d d);
    ``"reflect"`` the image mirrored about its edge (b a | a b c d | d c), the
    "reflect" of Keras and SciPy and OpenCV's ``BORDER_REFLECT``.
    """

    name = "affine"
    samplewise = True
    channel_fields = ("fill",)
    rotate: Any = 0.0
    translate: Any = 0.0
    scale: Any = 0.0
    shear: Any = 0.0
    translate_y: Any = None
    scale_y: Any = None
    shear_y: Any = 0.0
    interpolation: str = "bilinear"
    fill: Any = 0.0
    fill_mode: str = "constant"
    p: float = 1.0

    def __post_init__(self) -> None:
        n = "Affine"
        s = object.__setattr__
        s(self, "rotate", check_range(n, "rotate", self.rotate, lo=-360, hi=360))
        s(self, "translate", check_range(n, "translate", self.translate, lo=-1, hi=1))
        if self.translate_y is not None:
            s(self, "translate_y", check_range(n, "translate_y", self.translate_y, lo=-1, hi=1))
        s(self, "scale", check_range(n, "scale", self.scale, center=1.0, lo=1e-3, hi=1e3))
        if self.scale_y is not None:
            s(self, "scale_y", check_range(n, "scale_y", self.scale_y, center=1.0, lo=1e-3, hi=1e3))
        s(self, "shear", check_range(n, "shear", self.shear, lo=-80, hi=80))
        s(self, "shear_y", check_range(n, "shear_y", self.shear_y, lo=-80, hi=80))
        _check_invertible(self.shear, self.shear_y)
        check_choice(n, "interpolation", self.interpolation, ("bilinear", "nearest"))
        s(self, "fill", check_channels(n, "fill", self.fill))
        check_choice(n, "fill_mode", self.fill_mode, FILL_MODES)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        ty = self.translate if self.translate_y is None else self.translate_y
        d = {
            "rotate": Uniform(low=self.rotate[0], high=self.rotate[1]),
            "translate_x": Uniform(low=self.translate[0], high=self.translate[1]),
            "translate_y": Uniform(low=ty[0], high=ty[1]),
            "scale_x": Uniform(low=self.scale[0], high=self.scale[1]),
            "shear_x": Uniform(low=self.shear[0], high=self.shear[1]),
            "shear_y": Uniform(low=self.shear_y[0], high=self.shear_y[1]),
        }
        if self.scale_y is not None:
            d["scale_y"] = Uniform(low=self.scale_y[0], high=self.scale_y[1])
        return d

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        deg = math.pi / 180.0
        ang = params["rotate"] * deg
        cos, sin = B.cos(ang), B.sin(ang)
        sx = params["scale_x"]
        sy = params["scale_y"] if "scale_y" in params else sx
        hx = B.tan(params["shear_x"] * deg)
        hy = B.tan(params["shear_y"] * deg)
        # L = R . S . Sh
        rs00, rs01, rs10, rs11 = cos * sx, sin * sy, -sin * sx, cos * sy
        l00 = rs00 + rs01 * hy
        l01 = rs00 * hx + rs01
        l10 = rs10 + rs11 * hy
        l11 = rs10 * hx + rs11
        cx, cy = ctx.width / 2.0, ctx.height / 2.0
        tx = cx + params["translate_x"] * ctx.width - (l00 * cx + l01 * cy)
        ty = cy + params["translate_y"] * ctx.height - (l10 * cx + l11 * cy)
        return affine_matrix(B, l00, l01, tx, l10, l11, ty)


@spec
class HorizontalFlip(GeometricOp):
    """Mirror left-right: x -> W - x."""

    name = "horizontal_flip"
    samplewise = True
    axis_aligned = True
    p: float = 0.5
    flip_axis = "w"

    def __post_init__(self) -> None:
        self._validate_p()

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        one = B.ones((ctx.n,), "float32")
        return affine_matrix(B, -one, 0 * one, ctx.width * one, 0 * one, one, 0 * one)


@spec
class VerticalFlip(GeometricOp):
    """Mirror top-bottom: y -> H - y."""

    name = "vertical_flip"
    samplewise = True
    axis_aligned = True
    p: float = 0.5
    flip_axis = "h"

    def __post_init__(self) -> None:
        self._validate_p()

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        one = B.ones((ctx.n,), "float32")
        return affine_matrix(B, one, 0 * one, 0 * one, 0 * one, -one, ctx.height * one)
