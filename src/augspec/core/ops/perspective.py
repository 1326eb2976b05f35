"""Perspective: torchvision v2's ``RandomPerspective`` as a projective geometric op.

Each corner of the image moves inward by a random whole number of pixels, per sample
and per axis: along x by ``o`` in ``[0, bw)``, ``bw = int(distortion * (W // 2)) + 1``,
along y in ``[0, bh)``, ``bh = int(distortion * (H // 2)) + 1`` (torchvision's
``randint`` bounds). As in torchvision, the start corners are ``(0, 0)``, ``(W - 1, 0)``,
``(W - 1, H - 1)``, ``(0, H - 1)`` and the end corners

    tl = (o0x, o0y)   tr = (W - 1 - o1x, o1y)   br = (W - 1 - o2x, H - 1 - o2y)   bl = (o3x, H - 1 - o3y)

and the forward matrix ``M`` is the homography taking the start corners to the end
corners, in augspec's frame (pixel (i, j) centred at (j + 1/2, i + 1/2)): torchvision
evaluates its coefficients at pixel centres with ``align_corners=False`` grids, which is
this frame. (A side of one pixel uses 1 for ``W - 1`` so that its map stays the identity.)

``M`` is in closed form (Heckbert's square-to-quad): with the end corners
``(x0, y0) .. (x3, y3)`` (tl, tr, br, bl),

    dx1 = x1 - x2   dx2 = x3 - x2   dx3 = x0 - x1 + x2 - x3     (dy likewise)
    den = dx1 dy2 - dx2 dy1
    g = (dx3 dy2 - dx2 dy3) / den      h = (dx1 dy3 - dx3 dy1) / den
    Q = [[x1 - x0 + g x1, x3 - x0 + h x3, x0],
         [y1 - y0 + g y1, y3 - y0 + h y3, y0],
         [g,              h,              1 ]]

maps the unit square to the quad, and ``M = Q diag(1 / (W - 1), 1 / (H - 1), 1)``. A
degenerate quad (``den == 0``: possible only at ``distortion`` near 1 on tiny images)
gives the zero matrix, whose output is the fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..random import Distribution, Uniform
from ..spec import Context, GeometricOp, check_channels, check_choice, check_number, spec
from .crop import namespace

#: the corners in order, as the rows of the ``corners`` draw
CORNERS = ("top_left", "top_right", "bottom_right", "bottom_left")


def corner_bounds(M: Any, distortion: float, h: Any, w: Any) -> tuple[Any, Any]:
    """torchvision's exclusive bounds ``(bh, bw)`` of the inward moves for an ``h`` x ``w`` image
    (Python numbers with ``M = SCALAR``, else (N,) arrays with ``M = B``)."""
    if isinstance(h, (int, float)) and isinstance(w, (int, float)):
        return int(distortion * (int(h) // 2)) + 1, int(distortion * (int(w) // 2)) + 1
    return M.floor(distortion * M.floor(h * 0.5)) + 1.0, M.floor(distortion * M.floor(w * 0.5)) + 1.0


def quad_matrix(B: Any, x: Any, y: Any) -> Any:
    """(N, 3, 3) homographies taking the unit square's corners (0, 0), (1, 0), (1, 1), (0, 1)
    to the quads ``(x[k], y[k])``, k = 0..3 (lists of (N,) arrays), in closed form; a
    degenerate quad gives the zero matrix."""
    x0, x1, x2, x3 = x
    y0, y1, y2, y3 = y
    dx1, dx2, dx3 = x1 - x2, x3 - x2, (x0 - x1) + (x2 - x3)
    dy1, dy2, dy3 = y1 - y2, y3 - y2, (y0 - y1) + (y2 - y3)
    den = dx1 * dy2 - dx2 * dy1
    ok = den != 0.0
    r = B.where(ok, 1.0 / B.where(ok, den, 1.0), 0.0)
    g = (dx3 * dy2 - dx2 * dy3) * r
    h = (dx1 * dy3 - dx3 * dy1) * r
    rows = [x1 - x0 + g * x1, x3 - x0 + h * x3, x0,
            y1 - y0 + g * y1, y3 - y0 + h * y3, y0,
            g, h, 1.0 + 0.0 * den]
    rows = [B.where(ok, v, 0.0) for v in rows]
    return B.reshape(B.stack(rows, axis=-1), (-1, 3, 3))


@spec
class Perspective(GeometricOp):
    """A random perspective warp (torchvision v2 ``RandomPerspective``): each corner moves
    inward by a random whole number of pixels, up to ``distortion`` times half the side,
    and the image follows the homography from the corners to the moved corners (see the
    module notes). ``distortion`` in [0, 1]; ``interpolation`` ``"bilinear"`` or
    ``"nearest"``; ``fill`` what points outside the image read (one value or one per
    channel). It fuses with ``Affine``, the flips and the crops into one resampling."""

    name = "perspective"
    samplewise = True
    projective = True
    channel_fields = ("fill",)
    distortion: float = 0.5
    p: float = 0.5
    interpolation: str = "bilinear"
    fill: Any = 0.0

    def __post_init__(self) -> None:
        n = "Perspective"
        object.__setattr__(self, "distortion", check_number(n, "distortion", self.distortion, 0.0, 1.0))
        check_choice(n, "interpolation", self.interpolation, ("bilinear", "nearest"))
        object.__setattr__(self, "fill", check_channels(n, "fill", self.fill))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        # per corner (``CORNERS``) and axis (x, y): a uniform that picks the inward move
        return {"corners": Uniform(low=0.0, high=1.0, shape=(4, 2))}

    def offsets(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        """The inward moves (N, 4, 2), whole numbers as float32: row k is corner ``CORNERS[k]``,
        columns x and y; ``floor(u * bound)``, kept below the bound."""
        M = namespace(B, ctx.height, ctx.width)
        bh, bw = corner_bounds(M, self.distortion, ctx.height, ctx.width)
        u = params["corners"]
        out = []
        for k in range(4):
            row = []
            for a, bound in ((0, bw), (1, bh)):
                b = bound if isinstance(bound, (int, float)) else B.reshape(bound, (-1,))
                o = B.floor(u[:, k, a] * b)
                row.append(B.minimum(o, 0.0 * o + (b - 1.0)))
            out.append(B.stack(row, axis=-1))
        return B.stack(out, axis=1)

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        def side(v: Any) -> Any:  # the last pixel's coordinate, W - 1 (1 for a side of one pixel)
            if isinstance(v, (int, float)):
                return max(float(v) - 1.0, 1.0)
            v = B.reshape(v, (-1,))
            return B.maximum(v - 1.0, 0.0 * v + 1.0)

        wd, hd = side(ctx.width), side(ctx.height)
        o = self.offsets(B, params, ctx)
        ox, oy = [o[:, k, 0] for k in range(4)], [o[:, k, 1] for k in range(4)]
        xs = [ox[0], wd - ox[1], wd - ox[2], ox[3]]
        ys = [oy[0], oy[1], hd - oy[2], hd - oy[3]]
        q = quad_matrix(B, xs, ys)
        z = 0.0 * ox[0]
        scale = B.reshape(B.stack([z + 1.0 / wd, z + 1.0 / hd, z + 1.0], axis=-1), (-1, 1, 3))
        return q * scale  # Q . diag(1 / wd, 1 / hd, 1): the columns scaled

    def params_for(self, offsets: Any, height: int, width: int) -> dict[str, np.ndarray]:
        """The ``corners`` draw (float32, (N, 4, 2)) that gives the inward moves ``offsets``
        ((N, 4, 2) whole numbers, rows ``CORNERS``, columns x and y) on ``height`` x ``width``
        images: for injecting known corners (e.g. torchvision's) into ``run.apply``."""
        from ..errors import InputError

        o = np.asarray(offsets, np.float64)
        if o.ndim != 3 or o.shape[1:] != (4, 2):
            raise InputError(f"Perspective.params_for: offsets must have shape (N, 4, 2), got {o.shape}")
        bh, bw = corner_bounds(None, self.distortion, height, width)
        bound = np.array([bw, bh], np.float64)
        if (o < 0).any() or (o >= bound).any() or (o != np.floor(o)).any():
            raise InputError(f"Perspective.params_for: offsets must be whole numbers in [0, {bw}) along x and "
                             f"[0, {bh}) along y for {height} x {width} images")
        return {"corners": ((o + 0.5) / bound).astype(np.float32)}
