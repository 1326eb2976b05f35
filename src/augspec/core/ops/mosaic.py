"""``Mosaic``: four images of the batch in one, around a random centre (YOLO's rule).

The centre ``(cx, cy)`` is drawn per sample, ``floor(u W)`` and ``floor(u H)`` for ``u``
uniform in ``center``. The output's four quadrants around it each show one image,
translated by whole pixels so that one of its corners sits at the centre: the sample
itself in the top left (its bottom-right corner at the centre), its partners in the
top right (bottom-left corner), bottom left (top-right corner) and bottom right
(top-left corner). So each quadrant holds the part of its image nearest the centre,
as YOLO's 2s x 2s mosaic cropped to one image's size around its centre. Pixels a
quadrant's image does not reach are ``fill``. Labels mix by the quadrants' areas;
masks move as the images, boxes are each quadrant's image's boxes moved and clipped
to the quadrant (``core/targets.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..random import Distribution, Permutation, Uniform
from ..spec import Context, TileOp, check_channels, check_range, spec


@spec
class Mosaic(TileOp):
    name = "mosaic"
    count = 4
    channel_fields = ("fill",)
    center: Any = (0.25, 0.75)
    fill: Any = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", check_range("Mosaic", "center", self.center, lo=0.0, hi=1.0,
                                                       symmetric=False))
        object.__setattr__(self, "fill", check_channels("Mosaic", "fill", self.fill, -1e6, 1e6))
        self._validate_p()

    @property
    def bounded(self) -> bool:  # type: ignore[override]
        return all(0.0 <= v <= 1.0 for v in self.fill)

    def draws(self) -> dict[str, Distribution]:
        lo, hi = self.center
        return {"centre_x": Uniform(low=lo, high=hi), "centre_y": Uniform(low=lo, high=hi),
                "partner": Permutation(), "partner2": Permutation(), "partner3": Permutation()}

    def tiles(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any]:
        w, h = float(ctx.width), float(ctx.height)
        cx = B.minimum(B.floor(params["centre_x"] * w), w + 0.0 * params["centre_x"])
        cy = B.minimum(B.floor(params["centre_y"] * h), h + 0.0 * params["centre_y"])
        zero = 0.0 * cx
        own = B.arange(ctx.n)
        sources = B.stack([B.cast(v, "int64") for v in (own, params["partner"], params["partner2"],
                                                         params["partner3"])], axis=1)
        shifts = B.stack([B.stack([cx - w, cy - h], -1), B.stack([cx, cy - h], -1),
                          B.stack([cx - w, cy], -1), B.stack([cx, cy], -1)], axis=1)
        bounds = B.stack([B.stack([zero, zero, cx, cy], -1), B.stack([cx, zero, zero + w, cy], -1),
                          B.stack([zero, cy, cx, zero + h], -1), B.stack([cx, cy, zero + w, zero + h], -1)], axis=1)
        return sources, shifts, bounds
