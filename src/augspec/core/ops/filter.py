"""Filter specs: Sharpness (PIL's and torchvision's) and GaussianBlur (torchvision's).

Both are per-sample pixel maps written once against ``B`` (see ``docs/ops-filter.md``):

- ``Sharpness``: the *degenerate* image is ``x`` filtered with the 3x3 kernel
  ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` (PIL's ``ImageFilter.SMOOTH``), its 1-pixel
  border equal to ``x`` (PIL and torchvision leave the border unfiltered); the output is
  ``degenerate + f (x - degenerate)``: ``f = 0`` blurs, ``f = 1`` is the identity, ``f > 1``
  sharpens. An image of height or width 2 or less is all border: unchanged.
- ``GaussianBlur``: the separable Gaussian of ``K`` taps at offsets ``k`` in
  ``[-(K-1)/2, (K-1)/2]`` with weights ``exp(-k^2 / (2 sigma^2))`` normalised, ``sigma`` in
  pixels drawn per sample, the image extended by reflection without repeating the edge
  pixel (torchvision's and ``np.pad``'s ``"reflect"``: ``c b | a b c | b a``), one
  ``B.gather_sum`` pass per axis.

While the pipeline is in [0, 1] (before Normalize) the pixel stage clamps the result to
[0, 1]; after Normalize nothing clamps it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError, SpecTypeError
from ..random import Distribution, Uniform
from ..spec import Context, PixelOp, check_int, check_range, spec
from ..tables import host_table

#: the largest Gaussian kernel side GaussianBlur takes
MAX_KERNEL = 1023


def _spatial_axes(B: Any) -> tuple[int, int]:
    return (1, 2) if B.layout == "NHWC" else (2, 3)


def _slice(x: Any, axis: int, start: int, stop: int | None) -> Any:
    """``x`` sliced along one axis (basic indexing: every backend's arrays take it)."""
    key = [slice(None)] * 4
    key[axis] = slice(start, stop)
    return x[tuple(key)]


def sharpen(B: Any, x: Any, factor: Any) -> Any:
    """``degenerate + f (x - degenerate)`` (see the module notes), ``factor`` (N,) per sample,
    computed as ``x + (1 - f) (degenerate - x)`` (torchvision's form: ``f = 1`` gives ``x``).

    The interior of the degenerate image is ``(box3x3(x) + 4 x) / 13`` from shifted slices of
    ``x`` in its own layout (no transpose); the border of the output is ``x`` itself (there
    ``degenerate == x``), so it is joined back with two ``concat``."""
    ha, wa = _spatial_axes(B)
    _, h, w, _ = B.image_dims(x)
    if h <= 2 or w <= 2:
        return x
    rows = _slice(x, ha, 0, h - 2) + _slice(x, ha, 1, h - 1) + _slice(x, ha, 2, h)
    box = _slice(rows, wa, 0, w - 2) + _slice(rows, wa, 1, w - 1) + _slice(rows, wa, 2, w)
    centre = _slice(_slice(x, ha, 1, h - 1), wa, 1, w - 1)
    degenerate = (box + 4.0 * centre) * (1.0 / 13.0)
    # x + (1 - f) (degenerate - x): torchvision's form, exactly x where f = 1
    inner = centre + (1.0 - B.per_sample(factor)) * (degenerate - centre)
    band = _slice(x, ha, 1, h - 1)
    middle = B.concat([_slice(band, wa, 0, 1), inner, _slice(band, wa, w - 1, w)], axis=wa)
    return B.concat([_slice(x, ha, 0, 1), middle, _slice(x, ha, h - 1, h)], axis=ha)


@spec
class Sharpness(PixelOp):
    """PIL's ``ImageEnhance.Sharpness`` / torchvision's ``adjust_sharpness`` with a factor
    ``f`` drawn per sample: ``factor=v`` draws ``f`` in ``[1 - v, 1 + v]`` (as Brightness), a
    ``(low, high)`` pair in that range (``low >= 0``); ``(2, 2)`` is torchvision's
    ``RandomAdjustSharpness(2)``. ``f = 0`` gives the smoothed image, 1 the image itself.
    The draw is ``"factor"``, the factor itself."""

    name = "sharpness"
    samplewise = True
    factor: Any = 0.5
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_range("Sharpness", "factor", self.factor, center=1.0, lo=0.0,
                                                       hi=1e3))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"factor": Uniform(low=self.factor[0], high=self.factor[1])}

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        return sharpen(B, x, params["factor"])


# ------------------------------------------------------------------ Gaussian blur


@host_table
def reflect_index(length: int, k: int) -> Any:
    """The (length, k) float32 source lines of a ``k``-tap filter centred on each of
    ``length`` lines: ``l + j - (k - 1) / 2`` mirrored into ``[0, length)`` without repeating
    the edge line (period ``2 (length - 1)``; ``np.pad``'s ``"reflect"``, which torchvision
    pads with, repeated for a reach beyond the image); a 1-line axis reads line 0."""
    import numpy as np

    i = np.arange(length)[:, None] + np.arange(k)[None, :] - (k - 1) // 2
    if length == 1:
        return np.zeros((1, k), np.float32)
    period = 2 * (length - 1)
    i = np.mod(i, period)
    i = np.where(i >= length, period - i, i)
    return np.ascontiguousarray(i.astype(np.float32))


def gaussian_weights(B: Any, sigma: Any, k: int) -> Any:
    """(N, k) normalised weights ``exp(-0.5 (j / sigma)^2)`` for ``j`` in ``[-(k-1)/2, (k-1)/2]``
    (torchvision's ``_get_gaussian_kernel1d``), ``sigma`` (N,) in pixels; a ``sigma`` at or
    below 1e-6 (a policy's 0) gives the one centre tap."""
    import numpy as np

    r = (k - 1) // 2
    offs = B.reshape(B.asarray(np.arange(-r, r + 1, dtype=np.float32), "float32"), (1, k))
    s = B.reshape(B.maximum(sigma, 1e-6 + 0.0 * sigma), (-1, 1))
    z = offs / s
    wk = B.exp(-0.5 * (z * z))
    return wk / B.sum(wk, axis=1, keepdims=True)


def gaussian_pass(B: Any, x: Any, sigma: Any, k: int, axis: str) -> Any:
    """One separable pass of ``k`` taps along ``axis`` (``"h"`` or ``"w"``), reflect padding."""
    n, h, w, _ = B.image_dims(x)
    length = h if axis == "h" else w
    idx = B.cast(B.asarray(reflect_index(length, k), "float32"), "int64")
    idx = B.broadcast_to(B.reshape(idx, (1, length, k)), (n, length, k))
    wts = B.broadcast_to(B.reshape(gaussian_weights(B, sigma, k), (n, 1, k)), (n, length, k))
    return B.gather_sum(x, idx, wts, axis)


def _kernel_size(value: Any) -> tuple[int, int]:
    vals = value if isinstance(value, (list, tuple)) else (value, value)
    if len(vals) != 2:
        raise SpecTypeError(f"GaussianBlur: kernel_size must be an odd int or a (height, width) pair of odd ints, "
                            f"got {value!r}")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise SpecTypeError(f"GaussianBlur: kernel_size must be an odd int or a (height, width) pair of odd "
                                f"ints, got {value!r}")
        k = check_int("GaussianBlur", "kernel_size", v, 1, MAX_KERNEL)
        if k % 2 == 0:
            raise SpecError(f"GaussianBlur: kernel_size={value!r} must be odd (1, 3, 5, ... up to {MAX_KERNEL})")
        out.append(k)
    return out[0], out[1]


@spec
class GaussianBlur(PixelOp):
    """torchvision's ``GaussianBlur``: a separable Gaussian of ``kernel_size`` taps (an odd
    int, or a ``(height, width)`` pair: note torchvision's pair is ``(x, y)``, width first)
    with ``sigma`` in pixels drawn per sample, uniform in the ``sigma`` range (a number:
    that sigma), the same on both axes; the image is extended by reflection (``c b | a b c |
    b a``, torchvision's padding). The draw is ``"sigma"``, in pixels."""

    name = "gaussian_blur"
    samplewise = True
    kernel_size: Any = 23
    sigma: Any = (0.1, 2.0)
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_size", _kernel_size(self.kernel_size))
        s = check_range("GaussianBlur", "sigma", self.sigma, lo=0.0, hi=1e4, symmetric=False)
        if s[0] <= 0.0:
            raise SpecError(f"GaussianBlur: sigma={self.sigma!r} must be > 0 (the allowed range is (0, 10000.0])")
        object.__setattr__(self, "sigma", s)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"sigma": Uniform(low=self.sigma[0], high=self.sigma[1])}

    def prepare(self, ctx: Context) -> None:
        reflect_index(int(ctx.height), self.kernel_size[0])
        reflect_index(int(ctx.width), self.kernel_size[1])

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        kh, kw = self.kernel_size
        sigma = params["sigma"]
        first = getattr(B, "first_pass", None) or "w"
        for axis in (first, "h" if first == "w" else "w"):
            k = kh if axis == "h" else kw
            if k > 1:
                x = gaussian_pass(B, x, sigma, k, axis)
        return x
