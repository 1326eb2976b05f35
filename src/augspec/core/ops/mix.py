"""Mix specs: MixUp and CutMix. Each sample i is paired with ``partner[i]``, a
random permutation of the batch (a batch of one mixes with itself).

    MixUp:  lambda ~ Beta(alpha, alpha); x = lambda x_i + (1 - lambda) x_j; y likewise.
    CutMix: lambda ~ Beta(alpha, alpha) (``TabulatedBeta``); centre uniform over the
            image; a box of round(W sqrt(1 - lambda)) by round(H sqrt(1 - lambda))
            pixels (``cut_side``), clipped (``region.edges_of_side``), is pasted from the
            partner; the partner's label weight is the pasted fraction of pixels
            (``correct_lambda=True``) or 1 - lambda as drawn.

``per_sample=False`` draws one lambda (and one box) for the whole batch.

CutMix's box edges are integers decided without transcendental arithmetic, so they
are the same on every backend, bit for bit: lambda is an exact function of a 24-bit
uniform (a table of Beta quantiles computed once on the host in float64, read with
exact float32 operations), and each side is decided by comparing lambda with
thresholds tabulated on the host (``region.exact_count``); ``sqrt`` only guesses the
side, to within one pixel, and the comparisons settle it. The edges then follow from
the side and the centre with exact arithmetic (``region.edges_of_side``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..random import Beta, Distribution, Permutation, Uniform
from ..spec import Context, MixOp, check_number, spec
from ..tables import host_table
from .region import box_mask, count_pairs, edges_of_side, exact_count, lookup, prepare_edges


def _check_bool(op: str, name: str, v: Any) -> None:
    if not isinstance(v, bool):
        from ..errors import SpecTypeError

        raise SpecTypeError(f"{op}: {name} must be True or False, got {v!r}")


# ------------------------------------------------------- exact Beta(a, a) draws

#: the quantile table has 2**_QBITS cells: the top bits of a 24-bit uniform pick the cell,
#: the low _QBITS bits the point inside it (24 = 2 * 12: every product below is exact)
_QBITS = 12
_QCELLS = 1 << _QBITS


def _log_betainc_sym(y: Any, a: float, lbeta: float) -> Any:
    """``log I_x(a, a)`` (the regularized incomplete beta function) at ``x = exp(y) <= 1/2``,
    float64, by its continued fraction (modified Lentz; it converges for x <= (a+1)/(2a+2))."""
    import numpy as np

    x = np.exp(y)
    tiny = 1e-300
    c = np.ones_like(x)
    d = 1.0 - (2.0 * a) * x / (a + 1.0)
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 5001):
        m2 = 2 * m
        delta = d
        for aa in (m * (a - m) * x / ((a - 1.0 + m2) * (a + m2)),
                   -(a + m) * (2.0 * a + m) * x / ((a + m2) * (a + 1.0 + m2))):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            delta = d * c
            h = h * delta
        if np.all(np.abs(delta - 1.0) <= 1e-15):
            break
    return a * y + a * np.log1p(-x) - lbeta - math.log(a) + np.log(h)


def _beta_sym_quantiles(a: float, p: Any) -> Any:
    """The quantiles of Beta(a, a) at ``0 < p <= 1/2`` (float64): Newton's method on
    ``log I_x - log p`` in ``log x``, kept inside a bracket (bisection where a step leaves
    it). For ``x <= 1/2``, ``(1 - t)**(a - 1)`` lies between 1 and ``2**(1 - a)`` on
    ``[0, x]``, so ``I_x`` lies between ``x**a / (a B)`` and ``2**(1 - a) x**a / (a B)``:
    the two ``x`` where those equal ``p`` bracket the quantile."""
    import numpy as np

    lbeta = 2.0 * math.lgamma(a) - math.lgamma(2.0 * a)
    lp = np.log(p)
    y0 = (lp + math.log(a) + lbeta) / a  # x^a / (a B) = p
    w = abs(a - 1.0) * math.log(2.0) / a
    lo, hi = (y0, y0 + w) if a >= 1.0 else (y0 - w, y0)
    hi = np.minimum(hi, math.log(0.5))
    lo = np.minimum(lo, hi)
    y = np.minimum(np.maximum(y0, lo), hi)
    # quantiles below 2**-130 are 0 in the float32 table: no need to find them
    active = hi > -130.0 * math.log(2.0)
    y = np.where(active, y, -np.inf)
    for _ in range(100):
        if not active.any():
            break
        ya = np.where(active, y, math.log(0.25))  # finished entries: any finite point
        li = _log_betainc_sym(ya, a, lbeta)
        f = li - lp
        lo = np.where(active & (f <= 0), ya, lo)
        hi = np.where(active & (f >= 0), ya, hi)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            slope = np.exp(a * ya + (a - 1.0) * np.log1p(-np.exp(ya)) - lbeta - li)  # d log I / d log x
            yn = ya - f / slope
        yn = np.where(~np.isfinite(yn) | (yn < lo) | (yn > hi), 0.5 * (lo + hi), yn)
        tol = 2e-14 * np.maximum(1.0, np.abs(ya))
        done = (np.abs(yn - ya) <= tol) | (hi - lo <= tol)
        y = np.where(active, yn, y)
        active = active & ~done
    return np.exp(y)


@host_table
def beta_table(alpha: float) -> Any:
    """The (3 * 2**12, 2) float32 rows ``(T, D)`` that ``TabulatedBeta(alpha)`` reads: the draw
    from the uniform ``u = (i * 2**12 + j) / 2**24`` is ``T[i] + D[i] * (j / 2**12)`` for
    ``0 < i < 2**12 - 1``; in the two end cells, where the quantile function bends most,
    it is row ``2**12 + j`` (``i = 0``) or ``2 * 2**12 + j`` (``i = 2**12 - 1``), whose ``T``
    is the quantile at ``u`` itself and ``D`` is 0.

    ``T`` holds Beta(alpha, alpha) quantiles (float64, rounded to float32; ``Q(1 - p) = 1 -
    Q(p)``); ``D[i]`` is the step to the next cell's ``T`` cut to 12 significant bits, so
    ``D[i] * j / 2**12`` is exact and the one rounding is the sum's (the same under FMA
    contraction). Quantiles below 2**-126 are 0 and steps below 2**-114 are 0, so every
    value read, product and sum is 0 or a normal float32: none is subnormal, so none is
    flushed to zero on any device. The draws never decrease with ``u``."""
    import numpy as np

    g = _QCELLS
    half = g // 2
    # the quantiles at i / 2**12 (cells) and j / 2**24, j < 2**12 (the first cell)
    p = np.concatenate([np.arange(1, half) / g, np.arange(1, g) / (g * g)])
    qs = _beta_sym_quantiles(float(alpha), p)
    cells, first = qs[: half - 1], np.concatenate([[0.0], qs[half - 1 :]])
    q = np.empty(g + 1, np.float64)
    q[0], q[half], q[g] = 0.0, 0.5, 1.0
    q[1:half] = cells
    q[half + 1 : g] = 1.0 - cells[::-1]
    # the last cell: Q(1 - (g - j) / g**2) = 1 - Q((g - j) / g**2), j = 0 .. g - 1
    last = 1.0 - np.concatenate([[q[1]], first[:0:-1]])
    tiny = np.finfo(np.float32).tiny
    t, first, last = (np.where(v < tiny, 0.0, v).astype(np.float32) for v in (q, first, last))
    d = np.maximum(t[1:].astype(np.float64) - t[:-1].astype(np.float64), 0.0)
    mant, expo = np.frexp(d)  # d = mant * 2**expo, 0.5 <= mant < 1
    d = np.ldexp(np.floor(mant * (1 << _QBITS)), expo - _QBITS)  # 12 significant bits, rounded down
    d[d < 2.0**-114] = 0.0  # so d * j / 2**12 is 0 or at least 2**-126
    rows = np.zeros((3 * g, 2), np.float32)
    rows[:g, 0], rows[:g, 1] = t[:-1], d
    rows[g : 2 * g, 0], rows[2 * g :, 0] = first, last
    return rows


@dataclass(frozen=True, kw_only=True)
class TabulatedBeta(Distribution):
    """Beta(alpha, alpha) by its inverse CDF, tabulated on the host (``beta_table``) and read
    with exact float32 operations: a draw is an exact function of its 24-bit uniform, so it
    is the same on every backend, bit for bit (``Beta``'s Marsaglia-Tsang draws go through
    ``exp`` / ``log`` / ``cos`` and agree only to float32 rounding). The quantile function
    is interpolated linearly between the quantiles at ``i / 2**12`` (exact at ``u`` itself
    in the two end cells): for alpha in (0, 1000] the law's CDF is within about 2e-5 of
    Beta(alpha, alpha)'s at every draw above 1e-7 (5e-5 below), beyond what the float32
    rounding of the draw itself moves it (float32 is coarse near 1)."""

    alpha: float

    def transform(self, B: Any, u: Any) -> Any:
        table = beta_table(float(self.alpha))
        g = u[..., 0] * float(_QCELLS)  # exact: u holds 24 bits
        i = B.floor(g)
        f = g - i  # exact: the low 12 bits over 2**12
        j = f * float(_QCELLS)  # exact integers
        idx = B.where(i == 0.0, j + float(_QCELLS), B.where(i == float(_QCELLS - 1), j + float(2 * _QCELLS), i))
        td = lookup(B, table, idx)
        return td[..., 0] + td[..., 1] * f


# ----------------------------------------------------------------- box sides


@host_table
def _cut_table(size: int) -> Any:
    """``count_pairs`` of ``[-inf, -f_1, ..., -f_size, +inf]``, ``f_j`` the largest float32 with
    ``round(size * sqrt(1 - f_j)) >= j`` (half up), i.e. ``f_j <= 1 - ((2j - 1) / (2 size))**2``,
    decided with Python integers."""
    import numpy as np

    den = 4 * size * size
    out = np.empty(size + 2, np.float32)
    out[0], out[-1] = -np.inf, np.inf
    down, up = np.float32(-np.inf), np.float32(np.inf)
    for j in range(1, size + 1):
        num = den - (2 * j - 1) ** 2  # f_j <= num / den
        v = np.float32(num / den)
        while True:
            a, b = float(v).as_integer_ratio()
            if a * den > num * b:  # above: one float32 down
                v = np.nextafter(v, down)
                continue
            a, b = float(np.nextafter(v, up)).as_integer_ratio()
            if a * den <= num * b:  # the next one up is not above: v is not the largest
                v = np.nextafter(v, up)
                continue
            break
        out[j] = -v
    return count_pairs(out)


def cut_side(B: Any, lam: Any, size: int) -> Any:
    """The CutMix box side along an axis of ``size`` pixels: ``round(size * sqrt(1 - lam))``
    rounded half up, exactly: float32 integers in ``[0, size]`` (0 for a NaN ``lam``).

    The side is the number of ``j`` in ``1..size`` with ``lam <= f_j`` (``_cut_table``), a
    comparison of float32 values, exact on every backend. ``sqrt`` only guesses the count
    (within one) and ``exact_count`` settles it, so its last bit never moves a side."""
    lam = B.cast(lam, "float32")
    lam = B.where(lam == lam, lam, 1.0)
    guess = B.floor(B.sqrt(B.clip(1.0 - lam, 0.0, 1.0)) * float(size) + 0.5)
    return exact_count(B, -lam, _cut_table(int(size)), guess)


# ----------------------------------------------------------------------- ops


@spec
class MixUp(MixOp):
    name = "mixup"
    alpha: float = 1.0
    per_sample: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_number("MixUp", "alpha", self.alpha, 0.0, 1e3, lo_open=True))
        _check_bool("MixUp", "per_sample", self.per_sample)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"lam": Beta(a=self.alpha, b=self.alpha, per_sample=self.per_sample), "partner": Permutation()}

    def mix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
        w = 1.0 - params["lam"]
        return B.reshape(w, (-1, 1, 1)), w


@spec
class CutMix(MixOp):
    name = "cutmix"
    alpha: float = 1.0
    correct_lambda: bool = True
    per_sample: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_number("CutMix", "alpha", self.alpha, 0.0, 1e3, lo_open=True))
        _check_bool("CutMix", "correct_lambda", self.correct_lambda)
        _check_bool("CutMix", "per_sample", self.per_sample)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        ps = self.per_sample
        return {
            "lam": TabulatedBeta(alpha=self.alpha, per_sample=ps),
            "centre_y": Uniform(low=0.0, high=1.0, per_sample=ps),
            "centre_x": Uniform(low=0.0, high=1.0, per_sample=ps),
            "partner": Permutation(),
        }

    def prepare(self, ctx: Context) -> None:
        beta_table(float(self.alpha))
        for n in (ctx.height, ctx.width):
            _cut_table(int(n))
            prepare_edges(n)

    def box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        lam, h, w = params["lam"], ctx.height, ctx.width
        if h == w:  # one side, both centres in one pass
            c = B.cast(B.stack([params["centre_y"], params["centre_x"]], axis=-1), "float32")
            lo, hi = edges_of_side(B, c, B.reshape(cut_side(B, lam, h), (-1, 1)), h)
            return lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]
        y0, y1 = edges_of_side(B, B.cast(params["centre_y"], "float32"), cut_side(B, lam, h), h)
        x0, x1 = edges_of_side(B, B.cast(params["centre_x"], "float32"), cut_side(B, lam, w), w)
        return y0, y1, x0, x1

    def paste_box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, ...]:
        y0, y1, x0, x1 = self.box(B, params, ctx)
        if self.correct_lambda:
            lw = (y1 - y0) * (x1 - x0) * (1.0 / (ctx.height * ctx.width))
        else:
            lw = 1.0 - params["lam"]
        return y0, y1, x0, x1, lw

    def mix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
        y0, y1, x0, x1, lw = self.paste_box(B, params, ctx)
        return B.cast(box_mask(B, y0, y1, x0, x1, ctx), "float32"), lw
