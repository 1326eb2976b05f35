"""The exact Keras ``ImageDataGenerator`` semantics as specs: ``KerasAffine``
(Keras' matrix), ``ChannelShift`` and ``KerasZCAWhitening`` (Keras' ZCA).

``augspec.compat.from_image_data_generator`` builds pipelines of them; they are
ordinary built-in ops (registered, serialisable, on every backend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SpecTypeError
from ..random import Distribution, Uniform
from ..spec import ColorOp, Context, GeometricOp, check_channels, check_choice, check_range, spec
from .color import brightness_affine
from .geometric import FILL_MODES, affine_matrix
from .pixel import ZCAWhitening

__all__ = ["KerasAffine", "ChannelShift", "KerasZCAWhitening"]


@spec
class KerasAffine(GeometricOp):
    """Keras' ``apply_affine_transform`` as a spec: rotation ``theta`` (degrees),
    shifts ``tx`` / ``ty``, shear (degrees) and zoom ``zx`` / ``zy``, each drawn
    uniformly per sample from its range.

    Keras builds the inverse (pull) map on (column, row) index coordinates centred
    at (H/2 - 1/2, W/2 - 1/2) (H first, as Keras does, also on non-square images)::

        K = T(o) . R(theta) . T(tx, ty) . Sh(shear) . Z(zx, zy) . T(-o)
        R = [[cos, -sin], [sin, cos]]   Sh = [[1, -sin s], [0, cos s]]   Z = diag(zx, zy)

    ``tx`` is drawn from ``height_shift`` times H and moves along the first (column)
    coordinate, ``ty`` from ``width_shift`` times W (as in Keras; ``*_pixels=True``
    takes the shift in pixels). The forward matrix is ``K^-1`` moved to augspec's
    pixel-centre frame.
    """

    name = "keras_affine"
    samplewise = True
    channel_fields = ("fill",)
    rotation: Any = 0.0
    height_shift: Any = 0.0
    width_shift: Any = 0.0
    height_shift_pixels: bool = False
    width_shift_pixels: bool = False
    shear: Any = 0.0
    zoom_x: Any = (1.0, 1.0)
    zoom_y: Any = None
    interpolation: str = "bilinear"
    fill: Any = 0.0
    fill_mode: str = "constant"
    p: float = 1.0

    def __post_init__(self) -> None:
        n, s = "KerasAffine", object.__setattr__
        s(self, "rotation", check_range(n, "rotation", self.rotation, lo=-360, hi=360))
        s(self, "height_shift", check_range(n, "height_shift", self.height_shift, lo=-1e4, hi=1e4))
        s(self, "width_shift", check_range(n, "width_shift", self.width_shift, lo=-1e4, hi=1e4))
        for f in ("height_shift_pixels", "width_shift_pixels"):
            if not isinstance(getattr(self, f), bool):
                raise SpecTypeError(f"{n}: {f} must be True or False, got {getattr(self, f)!r}")
        s(self, "shear", check_range(n, "shear", self.shear, lo=-89, hi=89))
        s(self, "zoom_x", check_range(n, "zoom_x", self.zoom_x, center=1.0, lo=1e-3, hi=1e3))
        s(self, "zoom_y", check_range(n, "zoom_y", self.zoom_x if self.zoom_y is None else self.zoom_y,
                                      center=1.0, lo=1e-3, hi=1e3))
        check_choice(n, "interpolation", self.interpolation, ("bilinear", "nearest"))
        s(self, "fill", check_channels(n, "fill", self.fill))
        check_choice(n, "fill_mode", self.fill_mode, FILL_MODES)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {
            "theta": Uniform(low=self.rotation[0], high=self.rotation[1]),
            "tx": Uniform(low=self.height_shift[0], high=self.height_shift[1]),
            "ty": Uniform(low=self.width_shift[0], high=self.width_shift[1]),
            "shear": Uniform(low=self.shear[0], high=self.shear[1]),
            "zx": Uniform(low=self.zoom_x[0], high=self.zoom_x[1]),
            "zy": Uniform(low=self.zoom_y[0], high=self.zoom_y[1]),
        }

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        deg = math.pi / 180.0
        th = params["theta"] * deg
        sh = params["shear"] * deg
        zx, zy = params["zx"], params["zy"]
        tx = params["tx"] * (1.0 if self.height_shift_pixels else float(ctx.height))
        ty = params["ty"] * (1.0 if self.width_shift_pixels else float(ctx.width))
        cos, sin = B.cos(th), B.sin(th)
        cs, ss = B.cos(th + sh), B.sin(th + sh)
        # L = R Sh Z = [[cos zx, -sin(th+s) zy], [sin zx, cos(th+s) zy]], det = zx zy cos(s)
        r = 1.0 / (zx * zy * B.cos(sh))
        i00, i01 = cs * zy * r, ss * zy * r
        i10, i11 = -sin * zx * r, cos * zx * r
        # pull: src = L (dst - c) + c + R t, c = (H/2, W/2); forward: dst = L^-1 (src - c - R t) + c
        c0, c1 = ctx.height / 2.0, ctx.width / 2.0
        v0 = c0 + cos * tx - sin * ty
        v1 = c1 + sin * tx + cos * ty
        return affine_matrix(B, i00, i01, c0 - (i00 * v0 + i01 * v1), i10, i11, c1 - (i10 * v0 + i11 * v1))


@spec
class ChannelShift(ColorOp):
    """Add one offset ``s`` to every channel, ``s`` uniform in ``shift`` (values in
    the pipeline's [0, 1] domain; Keras' ``channel_shift_range=r`` is ``shift=r/255``)."""

    name = "channel_shift"
    samplewise = True
    shift: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift", check_range("ChannelShift", "shift", self.shift, lo=-1.0, hi=1.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"shift": Uniform(low=self.shift[0], high=self.shift[1])}

    def affine(self, B: Any, params: Mapping[str, Any], mean: Any, ctx: Context) -> tuple[Any, Any]:
        a, _ = brightness_affine(B, 0.0 * params["shift"] + 1.0, ctx)
        t = B.reshape(params["shift"], (-1, 1)) * B.ones((1, ctx.channels), "float32")
        return a, t


@spec
class KerasZCAWhitening(ZCAWhitening):
    """ZCA with Keras' fit: ``U diag(sqrt(n) / (s + epsilon)) U^T`` from the thin SVD
    ``X^T = U diag(s) V^T`` of the (n, D) data (so the whitening acts on the span of
    the data only, and ``epsilon`` is added to the singular values of X, not to the
    eigenvalues of ``X^T X / n`` as ``ZCAWhitening`` does)."""

    name = "keras_zca_whitening"
    samplewise = True

    def fit(self, x: Any) -> KerasZCAWhitening:

        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
        s_inv = math.sqrt(flat.shape[0]) / (s + self.epsilon)
        return type(self)(self.epsilon, ((u * s_inv) @ u.T).astype(np.float32))
