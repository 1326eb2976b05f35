"""RandomErasing (Zhong et al.), with timm's rule and modes.

Per image (with probability ``p``, the planner's gate) ``count`` boxes, ``count`` drawn
per image from ``[min_count, max_count]`` (timm's ``min_count`` / ``max_count``). Each box
has up to ``ERASE_TRIES`` tries, all drawn at once:

    target area = a * H * W / count      a uniform in ``scale``
    aspect      = exp(uniform(log ratio))  (height / width)
    h = round(sqrt(target area * aspect)),  w = round(sqrt(target area / aspect))

a try is accepted where ``w < W`` and ``h < H``; the first accepted try of a box is its
size (a where-chain over the tries: no loop over samples, no host sync) and its corner is
uniform over the integer offsets, ``top`` in ``[0, H - h]``, ``left`` in ``[0, W - w]``. A
box with no accepted try erases nothing. The sides are decided exactly (``Tabulated``
draws and correctly rounded float32 operations, as ``RandomResizedCrop``'s crop), so the
boxes are the same integers on every backend.

The boxes are filled by ``mode``: ``"const"`` with ``value`` (one value or one per
channel), ``"rand"`` with one N(0, 1) value per channel per box, ``"pixel"`` with N(0, 1)
noise per pixel and channel. The normal values are meant for normalised images: put
RandomErasing after ``Normalize``, as timm does. In ``"rand"`` and ``"pixel"`` mode (and
with a constant outside [0, 1]) the op is not ``bounded``: nothing clamps its output to
[0, 1], and a uint8 input comes out float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SpecError, SpecTypeError
from ..random import C, Distribution, Normal, Uniform
from ..spec import Context, PixelOp, check_channels, check_choice, check_int, check_range, spec
from .crop import Tabulated, curve_table
from .region import box_mask

#: tries per box before it is given up (timm's and torchvision's 10)
ERASE_TRIES = 10

#: the most boxes per image
MAX_COUNT = 64

MODES = ("const", "rand", "pixel")


def pixel_noise(B: Any, noise_key: Any, ctx: Context) -> Any:
    """(N, H, W, C) N(0, 1) noise, each sample's from its own key: ``noise_key`` (N,) uniform
    draws whose 24 bits key a counter hash over the sample's values. Each 32-bit word
    (``lowbias32`` twice, keyed, of the value pair's index) gives two 16-bit uniforms and so,
    by Box-Muller's cosine and sine, two normals (resolution 2**-16: |z| < 4.72). Drawn here,
    from the op's params, rather than by the sampler: a backend that runs a gated op on its
    gated samples only (``B.compact``) hashes only the images erased (p = 0.25 in timm's
    recipe), and a device hashes them all without a host sync. The same words on every
    backend; the normals to an ulp of ``log``, ``cos`` and ``sin``."""
    from ..random import _mix32

    h, w, c = int(ctx.height), int(ctx.width), ctx.channels
    pairs = (h * w * c + 1) // 2
    k0 = B.reshape(B.cast(B.floor(noise_key * float(1 << 24)), "uint32"), (-1, 1))
    idx = B.reshape(B.asarray(np.arange(pairs, dtype=np.uint32), "uint32"), (1, -1))
    x = _mix32(B, B.bitxor(idx, k0))
    x = _mix32(B, B.bitxor(x, 0x9E3779B9))
    u1 = B.cast(B.shr(x, 16), "float32") * (1.0 / 65536.0)
    u2 = B.cast(B.shr(B.mul32(x, 1 << 16), 16), "float32") * (1.0 / 65536.0)  # the low 16 bits
    r = B.sqrt(-2.0 * B.log(1.0 - u1))
    a = (2.0 * math.pi) * u2
    z = B.concat([r * B.cos(a), r * B.sin(a)], axis=1)[:, : h * w * c]
    return B.reshape(z, (-1, h, w, c))


def _count(value: Any) -> tuple[int, int]:
    """``count``: an int, or timm's ``(min_count, max_count)``; stored as the pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecTypeError(f"RandomErasing: count must be an int or a (min, max) pair, got {value!r}")
        lo = check_int("RandomErasing", "count", value[0], 1, MAX_COUNT)
        hi = check_int("RandomErasing", "count", value[1], 1, MAX_COUNT)
        if lo > hi:
            raise SpecError(f"RandomErasing: count={tuple(value)!r} is an inverted range (min > max)")
        return lo, hi
    v = check_int("RandomErasing", "count", value, 1, MAX_COUNT)
    return v, v


@spec
class RandomErasing(PixelOp):
    """timm's ``RandomErasing`` (see the module notes): with probability ``p`` each image
    gets ``count`` boxes (an int, or a ``(min, max)`` range drawn per image) of area
    ``scale`` x the image's / count and aspect ratio (height / width) in ``ratio``
    (log-uniform), filled by ``mode`` (``"const"``: ``value``; ``"rand"``: a normal colour
    per box; ``"pixel"``: normal noise). Goes after ``Normalize``, as in timm.

    Draws (per sample): ``"count"`` the box count (a real in ``[min, max + 1)``, floored);
    ``"area"`` and ``"ratio"`` (count_max, tries): the area fraction before the division by
    the count, and the aspect ratio; ``"top"`` and ``"left"`` (count_max,): the box's offset
    as a fraction in [0, 1) of the ``H - h + 1`` (``W - w + 1``) offsets; ``"color"``
    (count_max, C) in ``"rand"`` mode; ``"noise_key"`` in ``"pixel"`` mode (the key of the
    sample's noise, ``pixel_noise``)."""

    name = "random_erasing"
    samplewise = True
    channel_fields = ("value",)
    p: float = 0.5
    scale: Any = (0.02, 1.0 / 3.0)
    ratio: Any = (0.3, 3.3)
    mode: str = "const"
    count: Any = 1
    value: Any = 0.0

    def __post_init__(self) -> None:
        n = "RandomErasing"
        self._validate_p()
        object.__setattr__(self, "scale", check_range(n, "scale", self.scale, lo=0.0, hi=1.0, symmetric=False))
        object.__setattr__(self, "ratio", check_range(n, "ratio", self.ratio, lo=1e-3, hi=1e3, symmetric=False))
        check_choice(n, "mode", self.mode, MODES)
        object.__setattr__(self, "count", _count(self.count))
        object.__setattr__(self, "value", check_channels(n, "value", self.value, -1e6, 1e6))

    @property
    def bounded(self) -> bool:  # type: ignore[override]
        """In [0, 1] out where in [0, 1] in: a constant fill in [0, 1] only."""
        return self.mode == "const" and all(0.0 <= v <= 1.0 for v in self.value)

    def draws(self) -> dict[str, Distribution]:
        m = self.count[1]
        out: dict[str, Distribution] = {
            "count": Tabulated(curve="linear", low=float(self.count[0]), high=float(self.count[1] + 1)),
            "area": Tabulated(curve="linear", low=self.scale[0], high=self.scale[1], shape=(m, ERASE_TRIES)),
            "ratio": Tabulated(curve="log", low=self.ratio[0], high=self.ratio[1], shape=(m, ERASE_TRIES)),
            "top": Uniform(low=0.0, high=1.0, shape=(m,)),
            "left": Uniform(low=0.0, high=1.0, shape=(m,)),
        }
        if self.mode == "rand":
            out["color"] = Normal(shape=(m, C))
        elif self.mode == "pixel":
            out["noise_key"] = Uniform(low=0.0, high=1.0)
        return out

    def prepare(self, ctx: Context) -> None:
        curve_table("linear", float(self.count[0]), float(self.count[1] + 1))
        curve_table("linear", float(self.scale[0]), float(self.scale[1]))
        curve_table("log", float(self.ratio[0]), float(self.ratio[1]))

    def boxes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        """The boxes of each sample: ``(y0, y1, x0, x1)``, each (N, count_max) integer-valued
        float32, rows ``[y0, y1)`` and columns ``[x0, x1)``; a box not drawn (beyond the
        sample's count) or with no accepted try is empty (``y1 == y0``, ``x1 == x0``)."""
        hh, ww = float(ctx.height), float(ctx.width)
        lo, hi = self.count
        m = hi
        cnt = B.minimum(B.maximum(B.floor(params["count"]), 0.0 * params["count"] + lo), 0.0 * params["count"] + hi)
        # integer decisions from correctly rounded float32 operations (a product, a quotient,
        # sqrt, + 0.5) of exact draws: the same sides on every backend
        area = params["area"] * (hh * ww) / B.reshape(cnt, (-1, 1, 1))
        r = params["ratio"]
        bh = B.floor(B.sqrt(area * r) + 0.5)
        bw = B.floor(B.sqrt(area / r) + 0.5)
        ok = (bw < ww) & (bh < hh)
        sel_h = sel_w = 0.0 * bh[..., 0]
        for t in reversed(range(ERASE_TRIES)):  # the first accepted try wins
            sel_h = B.where(ok[..., t], bh[..., t], sel_h)
            sel_w = B.where(ok[..., t], bw[..., t], sel_w)
        slots = B.reshape(B.cast(B.arange(m), "float32"), (1, m))
        active = B.any(ok, axis=2) & (slots < B.reshape(cnt, (-1, 1)))
        # randint(0, H - h) inclusive; u * n < n for a 24-bit u and an integer n: the min is a guard
        top = B.minimum(B.floor(params["top"] * (hh - sel_h + 1.0)), hh - sel_h)
        left = B.minimum(B.floor(params["left"] * (ww - sel_w + 1.0)), ww - sel_w)
        zero = 0.0 * sel_h
        return top, top + B.where(active, sel_h, zero), left, left + B.where(active, sel_w, zero)

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        y0, y1, x0, x1 = self.boxes(B, params, ctx)
        if self.mode == "const":
            fill = B.per_channel(B.asarray(self.value, "float32"))
            return B.where(B.spatial(box_mask(B, y0, y1, x0, x1, ctx)), fill, x)
        if self.mode == "pixel":
            noise = B.from_nhwc(pixel_noise(B, params["noise_key"], ctx))
            return B.where(B.spatial(box_mask(B, y0, y1, x0, x1, ctx)), noise, x)
        color = params["color"]  # (N, count_max, C): the later box wins where boxes overlap (timm's order)
        c = ctx.channels
        for k in range(self.count[1]):
            mk = box_mask(B, y0[:, k : k + 1], y1[:, k : k + 1], x0[:, k : k + 1], x1[:, k : k + 1], ctx)
            fill = B.from_nhwc(B.reshape(color[:, k], (-1, 1, 1, c)))
            x = B.where(B.spatial(mk), fill, x)
        return x
