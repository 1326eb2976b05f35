"""ElasticTransform: torchvision v2's ``ElasticTransform`` (Simard et al. 2003) as a
geometric op with a displacement field.

Per sample, pixel and axis a uniform ``r`` in [-1, 1) is drawn (the draw ``field``, shape
``(H, W, 2)``: dx then dy), smoothed by a Gaussian of standard deviation ``sigma`` pixels
over a kernel of ``int(8 sigma + 1)`` taps (made odd), the image mirrored at its edges
without repeating the edge pixel (torch's ``"reflect"`` padding, folded again where the
kernel is longer than the image), and scaled to pixels:

    d = (alpha / 2) * smooth(r)

torchvision scales ``dx`` by ``alpha / W`` in its grid's normalised units, where ``W``
pixels span 2 units, so ``alpha / 2`` pixels per unit of the smoothed noise on both axes.
``sigma = 0`` leaves the noise unsmoothed (torchvision's rule). The smoothing is two
matrix products per field with host tables (``blur_matrix``), the same on every backend.

The op's matrix is the identity and its ``displacement`` is ``d``: an output pixel ``p``
of its stage reads the input at ``M^-1 (p + d(p))`` (``GeometricOp``), and the planner
ends a stage after it, so it fuses with the warps and crops before it into one
resampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from ..random import Distribution, H, Uniform, W
from ..spec import Context, GeometricOp, check_channels, check_choice, check_number, spec
from ..tables import host_table
from .geometric import affine_matrix

#: the largest ``sigma`` accepted (pixels)
MAX_SIGMA = 1000.0


def kernel_size(sigma: float) -> int:
    """torchvision's Gaussian kernel size for ``sigma``: ``int(8 sigma + 1)``, made odd."""
    k = int(8.0 * sigma + 1.0)
    return k + 1 if k % 2 == 0 else k


def reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into ``[0, n)`` without repeating the edge (-1 -> 1, n -> n - 2),
    periodically (period ``2 (n - 1)``); all 0 for ``n == 1``."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


@host_table
def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """The (n, n) float32 matrix ``G^T`` of the Gaussian smoothing of a line of ``n`` values,
    for the product ``line @ G^T``: ``(G v)[o] = sum_t k[t] v[reflect(o + t)]``, ``k``
    torchvision's kernel (``softmax(-(x / sigma)^2)`` at ``x = t / sqrt(2)``)."""
    k = kernel_size(sigma)
    r = k // 2
    lim = (k - 1) / (2.0 * math.sqrt(2.0))
    x = np.linspace(-lim, lim, k)
    e = -((x / sigma) ** 2)
    kern = np.exp(e - e.max())
    kern /= kern.sum()
    rows = np.repeat(np.arange(n), k)
    cols = reflect_index(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], n).reshape(-1)
    g = np.zeros((n, n), np.float64)
    np.add.at(g, (rows, cols), np.tile(kern, n))
    return np.ascontiguousarray(g.T.astype(np.float32))


@spec
class ElasticTransform(GeometricOp):
    """Elastic distortion (torchvision v2 ``ElasticTransform``; Simard et al. 2003): every
    pixel is displaced by smoothed uniform noise, ``alpha`` its strength and ``sigma`` (in
    pixels) its smoothness (see the module notes). ``interpolation`` ``"bilinear"`` or
    ``"nearest"``; ``fill`` what points outside the image read. It ends its geometric
    stage: the warps and crops before it and it are one resampling."""

    name = "elastic_transform"
    samplewise = True
    channel_fields = ("fill",)
    alpha: float = 50.0
    sigma: float = 5.0
    p: float = 1.0
    interpolation: str = "bilinear"
    fill: Any = 0.0

    def __post_init__(self) -> None:
        n = "ElasticTransform"
        object.__setattr__(self, "alpha", check_number(n, "alpha", self.alpha, 0.0, 1e6))
        object.__setattr__(self, "sigma", check_number(n, "sigma", self.sigma, 0.0, MAX_SIGMA))
        check_choice(n, "interpolation", self.interpolation, ("bilinear", "nearest"))
        object.__setattr__(self, "fill", check_channels(n, "fill", self.fill))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"field": Uniform(low=-1.0, high=1.0, shape=(H, W, 2))}

    def prepare(self, ctx: Context) -> None:
        if self.sigma > 0.0 and isinstance(ctx.height, int) and isinstance(ctx.width, int):
            blur_matrix(ctx.height, self.sigma)
            blur_matrix(ctx.width, self.sigma)

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        one = B.ones((ctx.n,), "float32")
        zero = 0.0 * one
        return affine_matrix(B, one, zero, zero, zero, one, zero)

    def displacement(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        f = params["field"]  # (N, H, W, 2)
        if self.sigma > 0.0:
            if not (isinstance(ctx.height, int) and isinstance(ctx.width, int)):
                raise InputError("ElasticTransform: the image size must be known (one size per batch)")
            h, w = ctx.height, ctx.width
            gw = B.asarray(blur_matrix(w, self.sigma), "float32")
            gh = B.asarray(blur_matrix(h, self.sigma), "float32")
            t = B.transpose(f, (0, 3, 1, 2))  # (N, 2, H, W)
            t = B.reshape(B.matmul(B.reshape(t, (-1, w)), gw), (-1, 2, h, w))  # along x
            t = B.transpose(t, (0, 1, 3, 2))  # (N, 2, W, H)
            t = B.reshape(B.matmul(B.reshape(t, (-1, h)), gh), (-1, 2, w, h))  # along y
            f = B.transpose(t, (0, 3, 2, 1))  # (N, H, W, 2)
        return f * (self.alpha / 2.0)
