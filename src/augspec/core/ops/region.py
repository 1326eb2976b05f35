"""Region specs (CutOut) and the box rule they share with CutMix.

A box of extent ``e`` pixels centred at ``c * size`` has the side ``s = round(e)``
and covers the rows (or columns) ``[round(c * size - s / 2), round(c * size + s / 2))``
clipped to ``[0, size]``, with ``round(v) = floor(v + 0.5)``. Both roundings are
decided exactly (``box_edges``): the same integers on every backend, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..random import Distribution, Uniform
from ..spec import Context, RegionOp, check_channels, check_int, check_range, spec
from ..tables import host_table


def lookup(B: Any, table: Any, idx: Any) -> Any:
    """``table[idx]`` for a host ``table`` (float32 NumPy, 1-D, or 2-D: rows) and an
    integer-valued float32 ``idx`` of any shape (its shape, plus the row's)."""
    t = B.asarray(table, "float32")
    shape = tuple(B.shape(idx))
    if len(shape) == 1:
        return B.take(t, B.cast(idx, "int32"))
    out = B.take(t, B.cast(B.reshape(idx, (-1,)), "int32"))
    return B.reshape(out, shape + tuple(table.shape[1:]))


def count_pairs(padded: Any) -> Any:
    """The (L + 1, 2) float32 rows ``(t[k], t[k + 1])`` of an ascending table ``t`` padded
    with ``-inf`` in front and ``+inf`` at the end (entries 1 to L), for ``exact_count``."""
    import numpy as np

    padded = np.asarray(padded, np.float32)
    return np.ascontiguousarray(np.stack([padded[:-1], padded[1:]], axis=1))


def exact_count(B: Any, x: Any, pairs: Any, guess: Any) -> Any:
    """The number of entries ``t <= x`` of an ascending float32 table (given as its
    ``count_pairs``), exactly, from a ``guess`` (integer-valued float32, not NaN) within one
    of it: float32 integers in ``[0, L]``.

    The count ``k`` is the one integer with ``t[k] <= x < t[k + 1]`` (padded table); one
    lookup and two comparisons of float32 values move the guess there. The guess may come
    from any arithmetic (``sqrt``) whose error is below one: how a backend rounds it never
    shows in the result."""
    k = B.clip(guess, 0.0, float(len(pairs) - 1))
    t = lookup(B, pairs, k)
    return k + B.cast(x >= t[..., 1], "float32") - B.cast(x < t[..., 0], "float32")


@host_table
def _centre_table(n: int) -> Any:
    """``t_g`` for ``g = 0 .. 3n`` (float32), the least float32 ``>= (g - n) / n``: for a float32
    ``c``, ``c >= t_g`` exactly when ``c * n >= g - n``. (``t * n`` is exact in float64 for
    ``n < 2**29``, so the host decides it exactly.)"""
    import numpy as np

    j = np.arange(-n, 2 * n + 1)
    t = (j / n).astype(np.float32)
    t = np.where(t.astype(np.float64) * n < j, np.nextafter(t, np.float32(np.inf)), t)
    prev = np.nextafter(t, np.float32(-np.inf))
    return np.where(prev.astype(np.float64) * n >= j, prev, t).astype(np.float32)


def prepare_edges(size: int) -> None:
    """Build the host table ``edges_of_side`` reads for an axis of ``size`` pixels."""
    _centre_table(2 * int(size))


def edges_of_side(B: Any, centre: Any, side: Any, size: int) -> tuple[Any, Any]:
    """``box_edges`` for a whole number of pixels ``side`` (integer-valued float32 in
    ``[0, 2 size]``): ``lo = floor(c * size - side / 2 + 0.5)``, ``hi = lo + side``, clipped
    to ``[0, size]``, both exact.

    With ``m = floor(2 size c)``, ``lo = floor((m + 1 - side) / 2)``: small integers only.
    The floor ``g`` of the rounded product ``c * 2 size`` is never below ``m`` (rounding is
    monotone and integers are float32) and at most one above it; one comparison of ``c``
    with the least float32 ``>= g / (2 size)`` (``_centre_table``, exact) settles which, on
    every backend. A centre outside ``[-1, 2]`` is clamped to it (no box with a side up to
    ``2 size`` changes); a NaN centre gives an empty box."""
    size = int(size)
    n = 2 * size
    c = B.clip(B.where(centre == centre, centre, -1.0), -1.0, 2.0)
    g = B.floor(c * float(n)) + float(n)  # in [0, 3n]; at most one above the exact floor
    g = g - B.cast(c < lookup(B, _centre_table(n), g), "float32")
    lo = B.floor((g + float(1 - n) - side) * 0.5)
    return B.clip(lo, 0.0, float(size)), B.clip(lo + side, 0.0, float(size))


def box_edges(B: Any, centre: Any, extent: Any, size: int) -> tuple[Any, Any]:
    """Integer-valued float32 edges ``[lo, hi)`` of boxes along one axis of ``size`` pixels:
    ``lo = floor(c * size - s / 2 + 0.5)``, ``hi = lo + s`` clipped to ``[0, size]``, with
    ``s = floor(extent + 0.5)`` the side in whole pixels: a box that is not clipped has
    exactly ``s`` pixels, wherever its centre.

    Every rounding is decided exactly from the float32 ``centre`` and ``extent``, so the edges
    are the same on every backend, bit for bit: the floor of the rounded ``extent + 0.5`` is
    never below ``s`` (rounding is monotone and integers are float32) and at most one above
    it, and one comparison of ``extent`` with the half-integer ``s - 0.5`` (exact) settles
    which; the centre as in ``edges_of_side``. Exact for sizes below 2**21. An extent
    outside ``[0, 2 size]`` is clamped to it (no box with a centre in ``[0, 1]`` changes); a
    NaN centre or extent gives an empty box."""
    size = int(size)
    e = B.cast(extent, "float32")
    e = B.clip(B.where(e == e, e, 0.0), 0.0, float(2 * size))
    s = B.floor(e + 0.5)
    s = s - B.cast(e < s - 0.5, "float32")
    return edges_of_side(B, B.cast(centre, "float32"), s, size)


def box_mask(B: Any, y0: Any, y1: Any, x0: Any, x1: Any, ctx: Context) -> Any:
    """(N, H, W) bool mask of the union of boxes; edges are (N,) or (N, k)."""
    if len(B.shape(y0)) == 1:
        y0, y1, x0, x1 = (B.reshape(v, (-1, 1)) for v in (y0, y1, x0, x1))
    rows = B.reshape(B.cast(B.arange(ctx.height), "float32"), (1, 1, -1, 1))
    cols = B.reshape(B.cast(B.arange(ctx.width), "float32"), (1, 1, 1, -1))
    k = B.shape(y0)[1]
    ry = (rows >= B.reshape(y0, (-1, k, 1, 1))) & (rows < B.reshape(y1, (-1, k, 1, 1)))
    rx = (cols >= B.reshape(x0, (-1, k, 1, 1))) & (cols < B.reshape(x1, (-1, k, 1, 1)))
    return B.any(ry & rx, axis=1)


@spec
class CutOut(RegionOp):
    """Erase ``holes`` boxes per image with ``fill`` (a value or one per channel).

    Each hole has its centre uniform over the image and a side of ``s * H`` by
    ``s * W`` pixels, ``s`` drawn from ``size`` (a fraction, or a ``(low, high)``
    range); holes may overlap and are clipped at the border (DeVries & Taylor).
    """

    name = "cutout"
    samplewise = True
    channel_fields = ("fill",)
    holes: int = 1
    size: Any = (0.1, 0.5)
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        n = "CutOut"
        object.__setattr__(self, "holes", check_int(n, "holes", self.holes, 1, 1000))
        object.__setattr__(self, "size", check_range(n, "size", self.size, lo=0.0, hi=1.0, symmetric=False))
        object.__setattr__(self, "fill", check_channels(n, "fill", self.fill))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        k = (self.holes,)
        return {
            "centre_y": Uniform(low=0.0, high=1.0, shape=k),
            "centre_x": Uniform(low=0.0, high=1.0, shape=k),
            "size": Uniform(low=self.size[0], high=self.size[1], shape=k),
        }

    def prepare(self, ctx: Context) -> None:
        for n in (ctx.height, ctx.width):
            prepare_edges(n)

    def boxes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        """The ``holes`` boxes of each sample: ``(y0, y1, x0, x1)``, each (N, holes)."""
        s = params["size"]
        y0, y1 = box_edges(B, params["centre_y"], s * ctx.height, ctx.height)
        x0, x1 = box_edges(B, params["centre_x"], s * ctx.width, ctx.width)
        return y0, y1, x0, x1

    def mask(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        return box_mask(B, *self.boxes(B, params, ctx), ctx)
