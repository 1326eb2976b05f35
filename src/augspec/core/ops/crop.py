"""Geometric specs that set the output size: crops, resizes and pads.

Each is a per-axis scale and shift (``axis_aligned``) from its input's frame to its
output's, so a stage of them (with flips) resamples separably, once, with a
triangle filter widened by the shrink factor where ``antialias`` (see
``core/resample.py``); with ``Affine`` in the same stage it is one general warp.

Frame as in ``geometric.py``: pixel (i, j) has its centre at (j + 0.5, i + 0.5).
A crop of the rows ``[top, top + h)`` and columns ``[left, left + w)`` resized to
``H' x W'`` is ``x' = (x - left) W' / w``, ``y' = (y - top) H' / h``: the sampling of
torchvision's ``resized_crop`` (``align_corners=False``) and Pillow's ``resize(box=)``.

Sizes are Python numbers or, for a batch of images of different sizes, (N,) float32
arrays; ``M`` is the namespace their arithmetic uses: ``SCALAR`` or the backend ``B``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, SpecError, SpecTypeError
from ..random import Distribution, Uniform
from ..spec import Context, GeometricOp, check_channels, check_choice, check_int, check_number, check_range, spec
from ..tables import host_table
from .geometric import FILL_MODES, affine_matrix
from .region import lookup

#: how many (area, ratio) tries RandomResizedCrop draws before its fallback (torchvision's 10)
CROP_TRIES = 10

#: cells of a ``Tabulated`` draw's table: the top 12 of a uniform's 24 bits pick the cell
_CELLS = 1 << 12


@host_table
def curve_table(curve: str, low: float, high: float) -> Any:
    """The (2**12, 2) float32 rows ``(T, D)`` of ``Tabulated(curve, low, high)``: the draw from
    ``u = (i * 2**12 + j) / 2**24`` is ``T[i] + D[i] * (j / 2**12)``. ``T[i]`` is the curve at
    ``i / 2**12`` (float64, rounded to float32); ``D[i]`` the step to the next knot, cut to 12
    significant bits, so ``D * j / 2**12`` is exact and the sum is the one rounding (the same
    under a fused multiply-add)."""
    import numpy as np

    t = np.arange(_CELLS + 1, dtype=np.float64) / _CELLS
    knots = low + (high - low) * t if curve == "linear" else np.exp(math.log(low) + (math.log(high) - math.log(low)) * t)
    head = knots[:-1].astype(np.float32)
    step = np.maximum(knots[1:] - head.astype(np.float64), 0.0)
    m, e = np.frexp(step)
    step = np.ldexp(np.floor(m * _CELLS) / _CELLS, e)
    return np.ascontiguousarray(np.stack([head, step.astype(np.float32)], axis=1))


@dataclass(frozen=True, kw_only=True)
class Tabulated(Distribution):
    """A uniform (``curve="linear"``) or log-uniform (``"log"``) draw on ``[low, high]``, read
    from a host table with exact float32 operations: an exact function of its 24-bit uniform,
    the same on every backend bit for bit (``Uniform``'s ``low + (high - low) u`` may be
    contracted to one fused multiply-add on one device and not on another; ``exp`` differs
    by an ulp between libraries). The crop sizes decided from these draws are integers, so
    they must not depend on either. Piecewise linear between 4097 knots of the curve."""

    curve: str
    low: float
    high: float

    def transform(self, B: Any, u: Any) -> Any:
        table = curve_table(self.curve, float(self.low), float(self.high))
        g = u[..., 0] * float(_CELLS)  # exact: u holds 24 bits
        i = B.floor(g)
        td = lookup(B, table, i)
        return td[..., 0] + td[..., 1] * (g - i)


class _Scalar:
    """The arithmetic of sizes that are Python numbers (``output_size`` of static shapes)."""

    floor = staticmethod(math.floor)
    sqrt = staticmethod(math.sqrt)
    exp = staticmethod(math.exp)
    minimum = staticmethod(min)
    maximum = staticmethod(max)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return a if c else b


SCALAR = _Scalar()


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real)


def namespace(B: Any, *sizes: Any) -> Any:
    """``SCALAR`` where every size is a Python number, else ``B``."""
    return SCALAR if all(_is_number(v) for v in sizes) else B


def round_half_up(M: Any, v: Any) -> Any:
    return M.floor(v + 0.5)


def round_half_even(M: Any, v: Any) -> Any:
    """Python's ``round`` of values that are multiples of 1/2 (a centring offset)."""
    r = M.floor(v)
    odd = r - 2.0 * M.floor(r * 0.5)
    return r + M.where(v - r > 0.25, odd, 0.0 * r)


def check_size(op: str, name: str, value: Any) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int means a square."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecTypeError(f"{op}: {name} must be an int or a (height, width) pair, got {value!r}")
        return check_int(op, name, value[0], lo=1, hi=1 << 16), check_int(op, name, value[1], lo=1, hi=1 << 16)
    v = check_int(op, name, value, lo=1, hi=1 << 16)
    return v, v


def _check_sets_size(op: GeometricOp) -> None:
    if op.p != 1.0:
        raise SpecError(f"{type(op).__name__}: p={op.p!r}; an op that sets the output size applies to every sample (p=1)")


def crop_matrix(B: Any, top: Any, left: Any, h: Any, w: Any, out_h: Any, out_w: Any, n: int) -> Any:
    """The (N, 3, 3) map of the crop ``[top, top + h) x [left, left + w)`` resized to ``out_h x out_w``."""
    one = B.ones((n,), "float32")
    sx = one * (out_w / w) if _is_number(w) and _is_number(out_w) else one * out_w / w
    sy = one * (out_h / h) if _is_number(h) and _is_number(out_h) else one * out_h / h
    return affine_matrix(B, sx, 0.0 * one, -left * sx, 0.0 * one, sy, -top * sy)


def centre_offset(M: Any, size: Any, target: Any) -> Any:
    """torchvision's ``center_crop`` offset along one axis: ``round((size - target) / 2)``
    (half to even) when the image is at least as large; ``-((target - size) // 2)`` (it
    pads, the larger half after) when smaller."""
    d = size - target
    return M.where(d >= 0, round_half_even(M, d * 0.5), -M.floor(-d * 0.5))


def _check_fill(op: Any, name: str) -> None:
    """``fill`` and ``fill_mode``: None means no preference (the stage's, else 0 and "constant")."""
    if op.fill is not None:
        object.__setattr__(op, "fill", check_channels(name, "fill", op.fill))
    if getattr(op, "fill_mode", None) is not None:
        check_choice(name, "fill_mode", op.fill_mode, FILL_MODES)


def _check_resample(op: str, interpolation: str, antialias: Any) -> None:
    check_choice(op, "interpolation", interpolation, ("bilinear", "nearest"))
    if not isinstance(antialias, bool):
        raise SpecTypeError(f"{op}: antialias must be True or False, got {antialias!r}")


@spec
class Resize(GeometricOp):
    """Resize to ``size``: an int sets the shorter side to it, keeping the aspect ratio
    (the longer becomes ``int(size * long / short)``, torchvision's rule); a
    ``(height, width)`` pair is exact. ``antialias``: shrinking filters with a triangle
    widened by the shrink factor (torchvision v2's and Pillow's bilinear), not a
    bilinear tap pair that aliases."""

    name = "resize"
    samplewise = True
    sets_size = True
    axis_aligned = True
    size: Any = 224
    interpolation: str = "bilinear"
    antialias: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.size, (list, tuple)):
            object.__setattr__(self, "size", check_size("Resize", "size", self.size))
        else:
            object.__setattr__(self, "size", check_int("Resize", "size", self.size, lo=1, hi=1 << 16))
        _check_resample("Resize", self.interpolation, self.antialias)
        self._validate_p()
        _check_sets_size(self)

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        if isinstance(self.size, tuple):
            return self.size
        s = float(self.size)
        short, long = M.minimum(h, w), M.maximum(h, w)
        other = M.floor(s * long / short)
        wide = w > h  # the width is the longer side
        return M.where(wide, s + 0.0 * other, other), M.where(wide, other, s + 0.0 * other)

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        oh, ow = self.output_size(namespace(B, ctx.height, ctx.width), ctx.height, ctx.width)
        return crop_matrix(B, 0.0, 0.0, ctx.height, ctx.width, oh, ow, ctx.n)

    def footprint(self, h: float, w: float) -> tuple[float, float]:
        if isinstance(self.size, tuple):
            return max(h / self.size[0], 1.0), max(w / self.size[1], 1.0)
        f = max(min(h, w) / self.size, 1.0)
        return f, f


@spec
class CenterCrop(GeometricOp):
    """The centred ``size`` window (an int: a square), torchvision's offsets; an image
    smaller than the window is padded with ``fill`` (the larger half after). ``fill`` and
    ``fill_mode`` of the crops and ``Pad``: None takes the stage's (else 0, "constant")."""

    name = "center_crop"
    samplewise = True
    sets_size = True
    axis_aligned = True
    channel_fields = ("fill",)
    size: Any = 224
    fill: Any = None
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", check_size("CenterCrop", "size", self.size))
        _check_fill(self, "CenterCrop")
        self._validate_p()
        _check_sets_size(self)

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        return self.size

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        M = namespace(B, ctx.height, ctx.width)
        th, tw = self.size
        top, left = centre_offset(M, ctx.height, th), centre_offset(M, ctx.width, tw)
        return crop_matrix(B, top, left, th, tw, th, tw, ctx.n)


def _padding(op: str, value: Any) -> tuple[int, int, int, int]:
    """torchvision's padding: an int for every side, ``(left/right, top/bottom)`` or
    ``(left, top, right, bottom)``; stored as (left, top, right, bottom)."""
    vals = value if isinstance(value, (list, tuple)) else (value,)
    if len(vals) not in (1, 2, 4):
        raise SpecTypeError(f"{op}: padding must be an int, 2 or 4 ints, got {value!r}")
    v = tuple(check_int(op, "padding", p, lo=0, hi=1 << 14) for p in vals)
    if len(v) == 1:
        return v * 4
    if len(v) == 2:
        return (v[0], v[1], v[0], v[1])
    return v  # type: ignore[return-value]


@spec
class Pad(GeometricOp):
    """Pad each side (``padding`` as torchvision: an int, ``(left/right, top/bottom)`` or
    ``(left, top, right, bottom)``) with ``fill`` (``fill_mode="constant"``), the edge
    pixel (``"nearest"``, torchvision's "edge") or the mirror image (``"reflect"``:
    b a | a b, torchvision's "symmetric")."""

    name = "pad"
    samplewise = True
    sets_size = True
    axis_aligned = True
    channel_fields = ("fill",)
    padding: Any = 0
    fill: Any = None
    fill_mode: Any = None
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", _padding("Pad", self.padding))
        _check_fill(self, "Pad")
        self._validate_p()
        _check_sets_size(self)

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        left, top, right, bottom = self.padding
        return h + (top + bottom), w + (left + right)

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        left, top, _, _ = self.padding
        oh, ow = self.output_size(B, ctx.height, ctx.width)
        return crop_matrix(B, -float(top), -float(left), oh, ow, oh, ow, ctx.n)


@spec
class RandomCrop(GeometricOp):
    """A ``size`` window at a uniformly random integer offset of the image padded by
    ``padding`` (as ``Pad``; the CIFAR recipe is ``RandomCrop(32, padding=4)``), reading
    ``fill`` / the edge / the mirror image there (``fill_mode`` as ``Pad``). An image
    smaller than the window (after ``padding``) is refused unless ``pad_if_needed``,
    which pads it by the shortfall on both sides (torchvision's rule). At evaluation:
    ``CenterCrop(size)``."""

    name = "random_crop"
    samplewise = True
    sets_size = True
    axis_aligned = True
    channel_fields = ("fill",)
    size: Any = 224
    padding: Any = 0
    pad_if_needed: bool = False
    fill: Any = None
    fill_mode: Any = None
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", check_size("RandomCrop", "size", self.size))
        object.__setattr__(self, "padding", _padding("RandomCrop", self.padding))
        if not isinstance(self.pad_if_needed, bool):
            raise SpecTypeError(f"RandomCrop: pad_if_needed must be True or False, got {self.pad_if_needed!r}")
        _check_fill(self, "RandomCrop")
        self._validate_p()
        _check_sets_size(self)

    def draws(self) -> dict[str, Distribution]:
        return {"top": Uniform(low=0.0, high=1.0), "left": Uniform(low=0.0, high=1.0)}

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        return self.size

    def check_size(self, h: int, w: int) -> None:
        left, top, right, bottom = self.padding
        th, tw = self.size
        if not self.pad_if_needed and (h + top + bottom < th or w + left + right < tw):
            raise InputError(f"RandomCrop: size={self.size} is larger than an image of {h}x{w} padded by "
                             f"{self.padding}; pass pad_if_needed=True or a smaller size")

    @staticmethod
    def _offset(B: Any, u: Any, size: Any, target: int, lo: int, hi: int) -> Any:
        """The window's offset in the input's frame: ``randint(0, padded - target + 1)``
        minus the leading padding, the padding grown by the shortfall where needed."""
        M = namespace(B, size)
        short = M.maximum(target - (size + lo + hi), 0.0 * size)
        lead = lo + short
        room = size + lo + hi + 2.0 * short - target
        return B.floor(u * (room + 1.0)) - lead

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        left, top, right, bottom = self.padding
        th, tw = self.size
        y0 = self._offset(B, params["top"], ctx.height, th, top, bottom)
        x0 = self._offset(B, params["left"], ctx.width, tw, left, right)
        return crop_matrix(B, y0, x0, th, tw, th, tw, ctx.n)

    def eval_ops(self) -> tuple[GeometricOp, ...]:
        return (CenterCrop(size=self.size, fill=self.fill),)


@spec
class RandomResizedCrop(GeometricOp):
    """torchvision's ``RandomResizedCrop``: a window of area ``scale`` x the image's (a
    uniform fraction) and aspect ratio ``w / h`` in ``ratio`` (log-uniform), at a uniform
    integer offset, resized to ``size``. Of ``CROP_TRIES`` tries (all drawn at once) the
    first whose rounded sides fit the image wins; where none does, the fallback is the
    whole image clamped to the ratio range, centred. At evaluation (timm's rule): the
    shorter side resized to ``floor(size / crop_pct)``, then ``CenterCrop(size)``."""

    name = "random_resized_crop"
    samplewise = True
    sets_size = True
    axis_aligned = True
    size: Any = 224
    scale: Any = (0.08, 1.0)
    ratio: Any = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: str = "bilinear"
    antialias: bool = True
    crop_pct: float = 0.875
    p: float = 1.0

    def __post_init__(self) -> None:
        n = "RandomResizedCrop"
        object.__setattr__(self, "size", check_size(n, "size", self.size))
        object.__setattr__(self, "scale", check_range(n, "scale", self.scale, lo=0.0, hi=1.0, symmetric=False))
        if self.scale[1] <= 0.0:
            raise SpecError(f"{n}: scale={self.scale!r} must reach above 0")
        object.__setattr__(self, "ratio", check_range(n, "ratio", self.ratio, lo=1e-3, hi=1e3, symmetric=False))
        _check_resample(n, self.interpolation, self.antialias)
        object.__setattr__(self, "crop_pct", check_number(n, "crop_pct", self.crop_pct, 0.0, 1.0, lo_open=True))
        self._validate_p()
        _check_sets_size(self)

    def draws(self) -> dict[str, Distribution]:
        return {
            "area": Tabulated(curve="linear", low=self.scale[0], high=self.scale[1], shape=(CROP_TRIES,)),
            "ratio": Tabulated(curve="log", low=self.ratio[0], high=self.ratio[1], shape=(CROP_TRIES,)),
            "top": Uniform(low=0.0, high=1.0),
            "left": Uniform(low=0.0, high=1.0),
        }

    def prepare(self, ctx: Context) -> None:
        curve_table("linear", float(self.scale[0]), float(self.scale[1]))
        curve_table("log", float(self.ratio[0]), float(self.ratio[1]))

    def output_size(self, M: Any, h: Any, w: Any) -> tuple[Any, Any]:
        return self.size

    def footprint(self, h: float, w: float) -> tuple[float, float]:
        return max(h / self.size[0], 1.0), max(w / self.size[1], 1.0)

    def box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        """The crop ``(top, left, height, width)`` of each sample, (N,) float32 integers."""
        h = ctx.height if _is_number(ctx.height) else B.reshape(ctx.height, (-1, 1))
        w = ctx.width if _is_number(ctx.width) else B.reshape(ctx.width, (-1, 1))
        # integer decisions from correctly rounded operations only (products, a quotient, sqrt)
        # of exact draws: the same crop on every backend
        area = params["area"] * (h * w)
        r = params["ratio"]
        cw = B.floor(B.sqrt(area * r) + 0.5)
        ch = B.floor(B.sqrt(area / r) + 0.5)
        ok = (cw > 0.0) & (cw <= w) & (ch > 0.0) & (ch <= h)
        # the fallback: the whole image, clamped to the ratio range
        hf = ctx.height + 0.0 * params["top"]
        wf = ctx.width + 0.0 * params["top"]
        lo, hi = self.ratio
        narrow, wide = wf < hf * lo, wf > hf * hi
        fw = B.where(wide, B.floor(hf * hi + 0.5), wf)
        fh = B.where(narrow, B.floor(wf / lo + 0.5), hf)
        sel_w, sel_h = fw, fh
        for k in reversed(range(CROP_TRIES)):  # the first valid try wins
            sel_w = B.where(ok[:, k], cw[:, k], sel_w)
            sel_h = B.where(ok[:, k], ch[:, k], sel_h)
        found = B.any(ok, axis=1)
        top = B.where(found, B.floor(params["top"] * (hf - sel_h + 1.0)), B.floor((hf - sel_h) * 0.5))
        left = B.where(found, B.floor(params["left"] * (wf - sel_w + 1.0)), B.floor((wf - sel_w) * 0.5))
        return top, left, sel_h, sel_w

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        top, left, h, w = self.box(B, params, ctx)
        return crop_matrix(B, top, left, h, w, float(self.size[0]), float(self.size[1]), ctx.n)

    def eval_ops(self) -> tuple[GeometricOp, ...]:
        h, w = self.size
        sh, sw = math.floor(h / self.crop_pct), math.floor(w / self.crop_pct)
        resize = Resize(size=sh if sh == sw else (sh, sw), interpolation=self.interpolation, antialias=self.antialias)
        return (resize, CenterCrop(size=self.size))
