"""Targets that follow the images: segmentation masks, bounding boxes, keypoints.

One pass, written once against ``B``, runs after a call's images with the same params
(``move``): each planner stage says what it does to the targets, from the same family
methods the images used, so every op of a family (a plugin's too) moves them with no
code of its own.

Conventions (docs/targets.md):

- **Frame.** Boxes and keypoints are in the pixel frame of the geometric ops: pixel
  ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, its centre at ``(j + 0.5, i + 0.5)``.
  Boxes are ``xyxy`` inside (``xywh``, ``cxcywh`` and coordinates normalised by the
  image's width and height are converted at the door, and back on the way out).
- **At the door** boxes are clipped to their image and kept by the rules below.
- **Geometric stage** (its composed forward matrix ``M``, one per sample): a mask is
  resampled through the same stage with ``"nearest"`` and the fill ``ignore_index`` (a
  soft mask: the stage's own interpolation, fill 0); a box becomes the enclosing box of
  its four transformed corners, clipped to the output, and is dropped (with its label)
  when its clipped area is 0, below ``min_visibility`` of the unclipped one, or narrower
  or lower than ``min_size`` pixels; a keypoint becomes ``M p`` and is invisible outside
  the output. A stage with a displacement field (``ElasticTransform``) moves points by
  the field's inverse (``p = q - d(p)``, a fixed point, 4 rounds) and a box by 16 points
  of its outline.
- **Region** (a region op's mask, or the ``boxes`` of a pixel op that writes boxes,
  e.g. ``RandomErasing``): the region is ``ignore_index`` in a mask (0 in a soft mask);
  a box whose share left uncovered is 0 or below ``min_visibility`` is dropped; a
  keypoint under it is invisible.
- **Mix** (partner ``perm``, partner pixel weight ``w``): a mask takes the partner's
  value where ``w > 0.5`` (a soft mask blends by ``w``). Boxes: the partner's boxes are
  appended to the sample's own (the box slots double). A spatially uniform ``w``
  (``MixUp``) keeps both sets, with box weights ``1 - w`` and ``w``; a pasted box
  (``paste_box``: ``CutMix``) keeps the partner's boxes clipped to it and the sample's
  own boxes by the share it leaves uncovered; any other weight map counts a pixel as
  the partner's where ``w > 0.5``. A box of weight 0 is dropped. Keypoints stay the
  sample's own, invisible where the partner's pixels are.
- **Tiles** (``Mosaic``): masks are tiled as the images; each tile's boxes move with
  its image and are clipped to the tile's rectangle (the box slots times the tiles);
  keypoints are the sample's own, invisible outside its tile.
- **Synthetic**: a replaced sample's mask is all ``ignore_index``; its boxes are
  dropped and its keypoints invisible. Colour, pixel, feature and label stages leave
  targets as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import SpecError
from .resample import stage_displacement, stage_map
from .spec import Context, check_number, has_displacement

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

#: the names of the targets a call takes (and returns), besides the images and labels
TARGET_NAMES = ("masks", "boxes", "box_labels", "box_valid", "keypoints", "keypoint_visible")

#: a dict call's keys (singular and plural spellings) and the target each one is
DICT_KEYS = {"image": "images", "images": "images", "label": "labels", "labels": "labels",
             "mask": "masks", "masks": "masks", "boxes": "boxes", "bboxes": "boxes", "box_labels": "box_labels",
             "box_valid": "box_valid", "keypoints": "keypoints", "keypoint_visible": "keypoint_visible",
             "sizes": "sizes"}

#: rounds of the fixed point that inverts a displacement field for points
DISPLACEMENT_ROUNDS = 4


@dataclass(frozen=True)
class TargetRules:
    """How targets follow the images (``compile(..., targets=TargetRules(...))`` or a dict):
    ``ignore_index`` fills masks where the image has no source pixel (outside a warp, a
    CutOut hole, a synthetic sample); a box is dropped when its visible share falls below
    ``min_visibility`` in a stage or a side below ``min_size`` pixels."""

    ignore_index: int = 255
    min_visibility: float = 0.0
    min_size: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int):
            raise SpecError(f"TargetRules: ignore_index must be an integer, got {self.ignore_index!r}")
        if not -(2 ** 24) <= self.ignore_index <= 2 ** 24:
            raise SpecError(f"TargetRules: ignore_index must lie in [-2**24, 2**24] (exact in float32), got "
                            f"{self.ignore_index}")
        object.__setattr__(self, "min_visibility",
                           check_number("TargetRules", "min_visibility", self.min_visibility, 0.0, 1.0))
        object.__setattr__(self, "min_size", check_number("TargetRules", "min_size", self.min_size, 0.0, 1e6))

    @staticmethod
    def of(v: Any) -> TargetRules:
        if v is None:
            return TargetRules()
        if isinstance(v, TargetRules):
            return v
        if isinstance(v, Mapping):
            bad = sorted(set(v) - {"ignore_index", "min_visibility", "min_size"})
            if bad:
                raise SpecError(f"targets: unknown rules {bad}; use ignore_index, min_visibility, min_size")
            return TargetRules(**v)
        raise SpecError(f"targets must be a TargetRules or a dict of its fields, got {v!r}")


@dataclass
class Targets:
    """The targets of a batch inside a call, as backend arrays.

    ``mask``: float32 in the backend's layout, one channel of class ids (``soft`` False)
    or C channels of soft masks; ``boxes`` (N, M, 4) float32 ``xyxy`` pixels with
    ``valid`` (N, M) bool, ``labels`` (N, M) int64 or None, ``weights`` (N, M) float32;
    ``points`` (N, K, 2) float32 ``(x, y)`` pixels with ``visible`` (N, K) bool."""

    mask: Any = None
    soft: bool = False
    boxes: Any = None
    valid: Any = None
    labels: Any = None
    weights: Any = None
    points: Any = None
    visible: Any = None


# ------------------------------------------------------------------- the pass
def move(plan: Any, B: Any, t: Targets, params: Mapping[str, Any], ctx: Context, rules: TargetRules) -> Targets:
    """``t`` through every stage of ``plan`` under ``params`` (the call's draws); ``ctx`` is
    the call's input context (sizes as numbers, or (N,) arrays for images of different
    sizes)."""
    ctxs = plan.stage_contexts(B, ctx)
    if t.boxes is not None:  # the boxes as they lie in the input image (its own size, in a ragged batch)
        t = _clipped(B, t, t.boxes, _size(B, ctx.height), _size(B, ctx.width), rules)
    flips: dict[str, Any] = {}  # pending flips of points and boxes: exact when they cancel
    for i, st in enumerate(plan.stages):
        c = ctxs[i]
        if st.kind == "geometric" and all(getattr(lf.op, "flip_axis", None) for lf in st.leaves):
            if t.mask is not None:
                t = replace(t, mask=plan._geometric(B, st, t.mask, None, params, c, True)[0])
            for axis, parity in _flip_parity(plan, B, st, params, c).items():
                flips[axis] = parity if axis not in flips else B.logical_xor(flips[axis], parity)
            continue
        if flips and st.kind in ("geometric", "region", "mix", "tile", "pixel"):
            t, flips = _flipped(B, t, flips, c), {}
        if st.kind == "synthetic":
            (lf,) = st.leaves
            t = _replaced(B, t, plan.call(lf, "replace", B, lf.params(params), c), rules)
        elif st.kind == "geometric":
            t = _geometric(plan, B, st, t, params, c, ctxs[i + 1], rules)
        elif st.kind == "region":
            for lf in st.leaves:
                m = plan.call(lf, "mask", B, lf.params(params), c)
                t = _covered(B, t, _gated(plan, B, lf, params, m), c, rules)
        elif st.kind == "pixel":
            (lf,) = st.leaves
            edges = _written_boxes(lf.op, B, lf.params(params), c)
            if edges is not None:
                from .ops.region import box_mask

                t = _covered(B, t, _gated(plan, B, lf, params, box_mask(B, *edges, c)), c, rules)
        elif st.kind == "mix":
            t = _mix(plan, B, st, t, params, c, rules)
        elif st.kind == "tile":
            t = _tile(plan, B, st, t, params, c, rules)
    return _flipped(B, t, flips, ctxs[-1]) if flips else t


def _flip_parity(plan: Any, B: Any, st: Any, params: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Per axis, the (N,) bool "flipped an odd number of times" of a stage of pure flips."""
    out: dict[str, Any] = {}
    for lf in st.leaves:
        g = plan.gate(lf, params)
        on = g if g is not None else B.ones((ctx.n,), "float32") > 0.0
        a = lf.op.flip_axis
        out[a] = on if a not in out else B.logical_xor(out[a], on)
    return out


def _flipped(B: Any, t: Targets, flips: dict[str, Any], ctx: Context) -> Targets:
    """Points and boxes mirrored where ``flips`` says (``x -> W - x``, ``y -> H - y``)."""
    for axis, parity in flips.items():
        k, size = (0, _size(B, ctx.width)) if axis == "w" else (1, _size(B, ctx.height))
        on = B.reshape(parity, (-1, 1))
        if t.points is not None:
            cols = [t.points[..., 0], t.points[..., 1]]
            cols[k] = B.where(on, size - cols[k], cols[k])
            t = replace(t, points=B.stack(cols, axis=-1))
        if t.boxes is not None:
            cols = [t.boxes[..., j] for j in range(4)]
            lo, hi = cols[k], cols[k + 2]
            cols[k], cols[k + 2] = B.where(on, size - hi, lo), B.where(on, size - lo, hi)
            t = replace(t, boxes=B.stack(cols, axis=-1))
    return t


def box_slots(plan: Any) -> int:
    """How many times the box slots grow through ``plan``: twice per mix stage, the tile count
    (``TileOp.count``) per tile stage."""
    k = 1
    for st in plan.stages:
        if st.kind == "mix":
            k *= 2
        elif st.kind == "tile":
            k *= int(getattr(st.leaves[0].op, "count", 1))
    return k


def _gated(plan: Any, B: Any, lf: Any, params: Mapping[str, Any], m: Any) -> Any:
    g = plan.gate(lf, params)
    return m if g is None else m & B.reshape(g, (-1, 1, 1))


def _written_boxes(op: Any, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
    """The boxes ``(y0, y1, x0, x1)`` a pixel op writes over (its ``boxes`` capability), else None."""
    fn = getattr(op, "boxes", None)
    return fn(B, params, ctx) if callable(fn) else None


def _replaced(B: Any, t: Targets, gate: Any, rules: TargetRules) -> Targets:
    if t.mask is not None:
        fill = 0.0 if t.soft else float(rules.ignore_index)
        t = replace(t, mask=B.where(B.per_sample(gate), fill, t.mask))
    if t.boxes is not None:
        t = replace(t, valid=t.valid & B.logical_not(B.reshape(gate, (-1, 1))))
    if t.points is not None:
        t = replace(t, visible=t.visible & B.logical_not(B.reshape(gate, (-1, 1))))
    return t


# --------------------------------------------------------------- geometric
def _geometric(plan: Any, B: Any, st: Any, t: Targets, params: Mapping[str, Any], ctx: Context, out: Context,
               rules: TargetRules) -> Targets:
    if t.mask is not None:
        if t.soft:
            mst = replace(st, fill=(0.0,), antialias=False if st.antialias is None else st.antialias)
        else:
            mst = replace(st, interpolation="nearest", fill=(float(rules.ignore_index),), antialias=False)
        t = replace(t, mask=plan._geometric(B, mst, t.mask, None, params, ctx, True)[0])
    if t.boxes is None and t.points is None:
        return t
    m, _, _ = stage_map(plan, B, st, params, ctx)
    projective = any(getattr(lf.op, "projective", False) for lf in st.leaves)
    disp = None
    if has_displacement(st.leaves[-1].op):
        disp = stage_displacement(plan, B, st, params, out)
    oh, ow = _size(B, out.height), _size(B, out.width)
    if t.points is not None:
        x, y = _map_points(B, m, t.points[..., 0], t.points[..., 1], projective, disp, out)
        inside = (x >= 0.0) & (x < ow) & (y >= 0.0) & (y < oh)
        t = replace(t, points=B.stack([x, y], axis=-1), visible=t.visible & inside)
    if t.boxes is not None:
        x0, y0, x1, y1 = (t.boxes[..., k] for k in range(4))
        if disp is None:  # the four corners
            px = B.stack([x0, x1, x0, x1], axis=-1)
            py = B.stack([y0, y0, y1, y1], axis=-1)
        else:  # 16 points of the outline: the field bends the edges
            fr = [k / 4.0 for k in range(4)]
            px = B.stack([x0 + f * (x1 - x0) for f in fr] + [x1] * 4 + [x1 - f * (x1 - x0) for f in fr] + [x0] * 4, -1)
            py = B.stack([y0] * 4 + [y0 + f * (y1 - y0) for f in fr] + [y1] * 4 + [y1 - f * (y1 - y0) for f in fr], -1)
        n, mm, p = B.shape(px)
        qx, qy = _map_points(B, m, B.reshape(px, (n, mm * p)), B.reshape(py, (n, mm * p)), projective, disp, out)
        qx, qy = B.reshape(qx, (n, mm, p)), B.reshape(qy, (n, mm, p))
        moved = B.stack([_lo(B, qx, p), _lo(B, qy, p), _hi(B, qx, p), _hi(B, qy, p)], axis=-1)
        t = _clipped(B, t, moved, oh, ow, rules)
    return t


def _clipped(B: Any, t: Targets, boxes: Any, h: Any, w: Any, rules: TargetRules) -> Targets:
    """``boxes`` (the targets' boxes moved, unclipped) clipped to ``[0, w] x [0, h]`` and kept by
    the rules against their unclipped area."""
    x0, y0, x1, y1 = (boxes[..., k] for k in range(4))
    before = _area(B, x0, y0, x1, y1)
    cx0, cx1, cy0, cy1 = _clip(B, x0, w), _clip(B, x1, w), _clip(B, y0, h), _clip(B, y1, h)
    out = B.stack([cx0, cy0, cx1, cy1], axis=-1)
    return replace(t, boxes=out, valid=_keep(B, t.valid, out, _area(B, cx0, cy0, cx1, cy1), before, rules))


def _size(B: Any, v: Any) -> Any:
    """A size as a number, or (N, 1) to broadcast against (N, M) coordinates."""
    return float(v) if isinstance(v, (int, float)) else B.reshape(B.cast(v, "float32"), (-1, 1))


def _clip(B: Any, v: Any, hi: Any) -> Any:
    """``v`` clipped to ``[0, hi]`` (a number, or (N, 1)); ``+ 0.0`` turns a -0.0 into 0.0."""
    return B.minimum(B.maximum(v, 0.0 * v), hi + 0.0 * v) + 0.0


def _lo(B: Any, v: Any, p: int) -> Any:
    out = v[..., 0]
    for k in range(1, p):
        out = B.minimum(out, v[..., k])
    return out


def _hi(B: Any, v: Any, p: int) -> Any:
    out = v[..., 0]
    for k in range(1, p):
        out = B.maximum(out, v[..., k])
    return out


def _area(B: Any, x0: Any, y0: Any, x1: Any, y1: Any) -> Any:
    return B.maximum(x1 - x0, 0.0 * x0) * B.maximum(y1 - y0, 0.0 * y0)


def _keep(B: Any, valid: Any, boxes: Any, after: Any, before: Any, rules: TargetRules) -> Any:
    """``valid`` and the rules: a box of area 0, below ``min_visibility`` of ``before``, or with
    a side below ``min_size`` is dropped."""
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    ok = valid & (after > 0.0)
    if rules.min_visibility > 0.0:
        ok = ok & (after >= rules.min_visibility * before)
    if rules.min_size > 0.0:
        ok = ok & (w >= rules.min_size) & (h >= rules.min_size)
    return ok


def _map_points(B: Any, m: Any, x: Any, y: Any, projective: bool, disp: Any, out: Context) -> tuple[Any, Any]:
    """(N, P) points through the forward matrices ``m`` (N, 3, 3); with a displacement
    field ``disp`` (N, H, W, 2) in output pixels, the output point ``q`` whose source is
    the point: ``q + d(q) = M p``, solved by ``q <- M p - d(q)``."""

    def row(r: int, k: int) -> Any:
        return B.reshape(m[:, r, k], (-1, 1))

    X = row(0, 0) * x + row(0, 1) * y + row(0, 2)
    Y = row(1, 0) * x + row(1, 1) * y + row(1, 2)
    if projective:
        Z = row(2, 0) * x + row(2, 1) * y + row(2, 2)
        ok = B.maximum(Z, -Z) > 1e-12
        Z = B.where(ok, Z, 1.0 + 0.0 * Z)
        X = B.where(ok, X / Z, -1e9 + 0.0 * X)
        Y = B.where(ok, Y / Z, -1e9 + 0.0 * Y)
    if disp is None:
        return X, Y
    n, oh, ow, _ = B.shape(disp)
    flat = B.reshape(disp, (n * oh * ow, 2))
    base = B.reshape(B.arange(n) * (oh * ow), (-1, 1))
    qx, qy = X, Y
    for _ in range(DISPLACEMENT_ROUNDS):
        i = B.clip(B.floor(qy), 0.0, float(oh - 1))
        j = B.clip(B.floor(qx), 0.0, float(ow - 1))
        idx = base + B.cast(i, "int64") * ow + B.cast(j, "int64")
        d = B.reshape(B.take(flat, B.reshape(idx, (-1,))), (*B.shape(qx), 2))
        qx, qy = X - d[..., 0], Y - d[..., 1]
    return qx, qy


# ------------------------------------------------------------------ regions
def coverage(B: Any, region: Any, boxes: Any) -> Any:
    """The area of each box (N, M, 4) covered by ``region`` (N, H, W) float (1 inside), exact
    for fractional edges: ``sum_{i,j} r[i, j] |row i & box| |col j & box|`` as one batched
    product ``(rows @ r) . cols``."""
    n, h, w = B.shape(region)
    ii = B.reshape(B.cast(B.arange(h), "float32"), (1, 1, h))
    jj = B.reshape(B.cast(B.arange(w), "float32"), (1, 1, w))

    def overlap(lo: Any, hi: Any, k: Any) -> Any:
        lo, hi = lo[..., None], hi[..., None]
        return B.maximum(B.minimum(hi, k + 1.0) - B.maximum(lo, k), 0.0 * k)

    rows = overlap(boxes[..., 1], boxes[..., 3], ii)  # (N, M, H)
    cols = overlap(boxes[..., 0], boxes[..., 2], jj)  # (N, M, W)
    return B.sum(B.matmul(rows, region) * cols, axis=-1)


def _point_values(B: Any, region: Any, points: Any) -> Any:
    """``region`` (N, H, W) at the pixel each (N, K, 2) point lies in (clamped to the image)."""
    n, h, w = B.shape(region)
    i = B.clip(B.floor(points[..., 1]), 0.0, float(h - 1))
    j = B.clip(B.floor(points[..., 0]), 0.0, float(w - 1))
    idx = B.reshape(B.arange(n) * (h * w), (-1, 1)) + B.cast(i, "int64") * w + B.cast(j, "int64")
    return B.reshape(B.take(B.reshape(region, (-1,)), B.reshape(idx, (-1,))), B.shape(i))


def _covered(B: Any, t: Targets, m: Any, ctx: Context, rules: TargetRules) -> Targets:
    """A region ``m`` (N, H, W) bool written over the images."""
    if t.mask is not None:
        fill = 0.0 if t.soft else float(rules.ignore_index)
        t = replace(t, mask=B.where(B.spatial(m), fill, t.mask))
    r = B.cast(m, "float32")
    if t.boxes is not None:
        area = _area(B, *(t.boxes[..., k] for k in range(4)))
        left = area - coverage(B, r, t.boxes)
        ok = t.valid & (left > 1e-6 * area)
        if rules.min_visibility > 0.0:
            ok = ok & (left >= rules.min_visibility * area)
        t = replace(t, valid=ok)
    if t.points is not None:
        t = replace(t, visible=t.visible & (_point_values(B, r, t.points) < 0.5))
    return t


# ---------------------------------------------------------------------- mix
def _mix(plan: Any, B: Any, st: Any, t: Targets, params: Mapping[str, Any], ctx: Context,
         rules: TargetRules) -> Targets:
    perm = params[st.leaves[0].path + "/partner"]
    total = None
    per_leaf = []
    for lf in st.leaves:
        p = lf.params(params)
        w, _ = plan.call(lf, "mix", B, p, ctx)
        g = plan.gate(lf, params)
        if g is not None:
            w = w * B.reshape(B.cast(g, "float32"), (-1, 1, 1))
        total = w if total is None else total + w
        per_leaf.append((lf, p, g, w))
    if t.mask is not None:
        other = B.take(t.mask, perm)
        if t.soft:
            wm = B.spatial(total)
            mask = (1.0 - wm) * t.mask + wm * other
        else:
            mask = B.where(B.spatial(total > 0.5), other, t.mask)
        t = replace(t, mask=mask)
    if t.points is not None:
        n, k, _ = B.shape(t.points)
        wmap = total if B.shape(total)[1:] != (1, 1) else B.broadcast_to(total, (n, 1, 1))
        t = replace(t, visible=t.visible & (_point_values(B, wmap, t.points) <= 0.5))
    if t.boxes is None:
        return t
    own_w, own_ok = t.weights, t.valid
    pb, pv, pw = B.take(t.boxes, perm), B.take(t.valid, perm), B.take(t.weights, perm)
    p_ok = pv & B.logical_not(pv)
    p_boxes, p_wt = pb, pw
    area_own = _area(B, *(t.boxes[..., k] for k in range(4)))
    area_p = _area(B, *(pb[..., k] for k in range(4)))
    for lf, p, g, w in per_leaf:
        on = (lambda v: v) if g is None else (lambda v, g=g: v & B.reshape(g, (-1, 1)))
        sel = (lambda a, b: a) if g is None else (
            lambda a, b, g=g: B.where(B.reshape(g, (-1,) + (1,) * (len(B.shape(a)) - 1)), a, b))
        paste = getattr(lf.op, "paste_box", None)
        if B.shape(w)[1:] == (1, 1):  # spatially uniform: both sets, weighted
            lam = B.reshape(w, (-1, 1))
            own_w = sel(own_w * (1.0 - lam), own_w)
            p_wt = sel(pw * lam, p_wt)
            p_ok = sel(pv, p_ok)
        elif callable(paste) and lf.op.name not in plan.kernels:
            y0, y1, x0, x1, _ = paste(B, p, ctx)
            y0, y1, x0, x1 = (B.reshape(v, (-1, 1)) for v in (y0, y1, x0, x1))
            cx0, cx1 = B.minimum(B.maximum(pb[..., 0], x0), x1), B.minimum(B.maximum(pb[..., 2], x0), x1)
            cy0, cy1 = B.minimum(B.maximum(pb[..., 1], y0), y1), B.minimum(B.maximum(pb[..., 3], y0), y1)
            clipped = B.stack([cx0, cy0, cx1, cy1], axis=-1)
            inside = _area(B, cx0, cy0, cx1, cy1)
            p_boxes = sel(clipped, p_boxes)
            pok = _keep(B, pv, clipped, inside, area_p, rules)
            p_ok = sel(pok, p_ok)
            ix0, ix1 = B.maximum(t.boxes[..., 0], x0), B.minimum(t.boxes[..., 2], x1)
            iy0, iy1 = B.maximum(t.boxes[..., 1], y0), B.minimum(t.boxes[..., 3], y1)
            left = area_own - _area(B, ix0, iy0, ix1, iy1)
            own_ok = own_ok & ~on(~_left_ok(B, left, area_own, rules))
        else:  # a weight map: the partner's pixels where w > 0.5
            r = B.cast(w > 0.5, "float32")
            covered = coverage(B, r, t.boxes)
            own_ok = own_ok & ~on(~_left_ok(B, area_own - covered, area_own, rules))
            inside = coverage(B, r, pb)
            pok = pv & _left_ok(B, inside, area_p, rules)
            p_ok = sel(pok, p_ok)
    own_ok = own_ok & (own_w > 0.0)
    p_ok = p_ok & (p_wt > 0.0)
    labels = None if t.labels is None else B.concat([t.labels, B.take(t.labels, perm)], axis=1)
    return replace(t, boxes=B.concat([t.boxes, p_boxes], axis=1), valid=B.concat([own_ok, p_ok], axis=1),
                   weights=B.concat([own_w, p_wt], axis=1), labels=labels)


def _left_ok(B: Any, left: Any, area: Any, rules: TargetRules) -> Any:
    ok = left > 1e-6 * area
    if rules.min_visibility > 0.0:
        ok = ok & (left >= rules.min_visibility * area)
    return ok


# --------------------------------------------------------------------- tiles
def _tile(plan: Any, B: Any, st: Any, t: Targets, params: Mapping[str, Any], ctx: Context,
          rules: TargetRules) -> Targets:
    """A tile op (``Mosaic``): masks tiled as the images (nearest, ``ignore_index`` where a tile's
    image does not reach); each tile's boxes moved by its shift and clipped to its rectangle
    (the box slots times the tiles); keypoints the sample's own (tile 0's, when it is the
    sample itself), invisible outside that tile."""
    from .plan import tile_layout, tile_pixels

    (lf,) = st.leaves
    sources, shifts, bounds = tile_layout(plan, B, lf, params, ctx)
    k = B.shape(sources)[1]
    if t.mask is not None:
        fill = (0.0,) if t.soft else (float(rules.ignore_index),)
        t = replace(t, mask=tile_pixels(B, t.mask, sources, shifts, bounds, ctx,
                                        "bilinear" if t.soft else "nearest", fill))
    if t.points is not None:
        d = B.reshape(shifts[:, 0], (-1, 1, 2))
        p = t.points + d
        b = B.reshape(bounds[:, 0], (-1, 1, 4))
        inside = (p[..., 0] >= b[..., 0]) & (p[..., 0] < b[..., 2]) & (p[..., 1] >= b[..., 1]) & (p[..., 1] < b[..., 3])
        t = replace(t, points=p, visible=t.visible & inside)
    if t.boxes is None:
        return t
    boxes, valid, weights, labels = [], [], [], []
    for j in range(k):
        src = sources[:, j]
        d = B.reshape(shifts[:, j], (-1, 1, 2))
        moved = B.take(t.boxes, src) + B.concat([d, d], axis=-1)
        r = B.reshape(bounds[:, j], (-1, 1, 4))
        x0, y0 = B.maximum(moved[..., 0], r[..., 0]), B.maximum(moved[..., 1], r[..., 1])
        x1, y1 = B.minimum(moved[..., 2], r[..., 2]), B.minimum(moved[..., 3], r[..., 3])
        x1, y1 = B.maximum(x1, x0), B.maximum(y1, y0)
        clipped = B.stack([x0, y0, x1, y1], axis=-1) + 0.0
        before = _area(B, *(moved[..., i] for i in range(4)))
        boxes.append(clipped)
        valid.append(_keep(B, B.take(t.valid, src), clipped, _area(B, x0, y0, x1, y1), before, rules))
        weights.append(B.take(t.weights, src))
        if t.labels is not None:
            labels.append(B.take(t.labels, src))
    return replace(t, boxes=B.concat(boxes, axis=1), valid=B.concat(valid, axis=1),
                   weights=B.concat(weights, axis=1), labels=B.concat(labels, axis=1) if labels else None)
