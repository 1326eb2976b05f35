"""Region specs (CutOut) and the box rule they share with CutMix.

A box of extent ``e`` pixels centred at ``c * size`` covers the rows (or columns)
``[round(c * size - e / 2), round(c * size + e / 2))`` clipped to ``[0, size]``,
with ``round(v) = floor(v + 0.5)`` (the same on every backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..random import Distribution, Uniform
from ..spec import Context, RegionOp, check_channels, check_int, check_range, spec


def box_edges(B: Any, centre: Any, extent: Any, size: int) -> tuple[Any, Any]:
    """Integer-valued (float) edges ``[lo, hi)`` of boxes along one axis."""
    c = centre * size
    lo = B.clip(B.floor(c - extent * 0.5 + 0.5), 0.0, float(size))
    hi = B.clip(B.floor(c + extent * 0.5 + 0.5), 0.0, float(size))
    return lo, hi


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

    def boxes(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        """The ``holes`` boxes of each sample: ``(y0, y1, x0, x1)``, each (N, holes)."""
        s = params["size"]
        y0, y1 = box_edges(B, params["centre_y"], s * ctx.height, ctx.height)
        x0, x1 = box_edges(B, params["centre_x"], s * ctx.width, ctx.width)
        return y0, y1, x0, x1

    def mask(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        return box_mask(B, *self.boxes(B, params, ctx), ctx)
