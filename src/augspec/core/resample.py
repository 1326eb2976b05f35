"""Resampling for geometric stages that set the output size or read images of
different sizes, written once against ``B``.

A stage's forward matrices compose leaf by leaf, each op seeing its input's size
(``stage_map``); the output grid is then sampled at ``M^-1 (j + 1/2, i + 1/2)``:

- ``separable``: where every op is ``axis_aligned`` the inverse map is
  ``u = a (o + 1/2) + c`` along each axis, and the stage is two 1-D passes of
  ``K`` taps (``B.take_along`` gathers, one multiply-add each). The taps of output
  ``o`` are the source pixels ``i`` with ``|i + 1/2 - u| < f`` weighted by the
  triangle ``1 - |i + 1/2 - u| / f``, normalised to sum 1, where ``f = max(|a|, 1)``
  with ``antialias`` (Pillow's and torchvision v2's antialiased bilinear: the filter
  widens with the shrink factor) and ``f = 1`` without (plain bilinear: two taps).
  ``K = ceil(2 F) + 1`` for the static bound ``F`` of ``f`` (``GeometricOp.footprint``
  of the batch's buffer size, or of ``B.max_image_side`` where a trace does not know
  it); ``f`` is capped at ``F``, so a wrong bound narrows the filter but keeps it centred.
  Nearest is one tap at ``floor(u + 1/2)``: a plain gather (``B.take_along``).
- ``warp``: any other map, bilinear or nearest, through ``B.take`` on the flattened
  batch (no antialiasing: the taps are the four neighbours). It also takes projective
  inverses (``GeometricOp.projective``: the source point is ``(X / Z, Y / Z)`` of
  ``M^-1 (x, y, 1) = (X, Y, Z)``; a point with ``Z`` at or near 0, where the source would
  lie more than ``2**20`` pixels away, or with a coordinate that is not finite, reads as
  outside: the fill, in every ``fill_mode``) and a displacement field added to the output
  point first (``GeometricOp.displacement``: ``M^-1 (p + d(p))``). Every geometric stage
  with a projective or displacing op comes here (``needs_warp``), on every backend.

Outside each sample's own extent (its size, in a batch packed from images of
different sizes) a tap reads by ``fill_mode``. In ``separable``: ``"constant"`` drops
the taps outside and renormalises the others (the border of Pillow's and
torchvision's resize, so a resized image has no dark rim), and an output whose taps
are all outside (a pad, a crop larger than the image) is ``fill``; ``"nearest"``
clamps the index; ``"reflect"`` mirrors it (-1 reads 0). In ``warp`` (as Affine's
warp) ``"constant"`` blends the outside taps' weight with ``fill``. A tap of weight
0 reads the stage's nearest tap instead, so a NaN (or inf) that a weight-0 tap would
touch stays out of the output, as in the reference warp. Coordinates are float32
on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .errors import InputError, SpecError
from .ops.crop import SCALAR, namespace
from .spec import Context, has_displacement

#: a projective point whose source lies farther than this (in pixels) reads as outside
FAR = float(2 ** 20)


def _static(v: Any) -> bool:
    return isinstance(v, (int, float))


def _as_int(v: Any) -> Any:
    return int(v) if _static(v) else v


def sets_size(stage: Any) -> bool:
    return stage.kind == "geometric" and any(getattr(lf.op, "sets_size", False) for lf in stage.leaves)


def needs_warp(stage: Any) -> bool:
    """True for a geometric stage with a projective op or an op with a displacement field:
    it is resampled by ``resample_stage`` (the general ``warp``) on every backend."""
    return stage.kind == "geometric" and any(getattr(lf.op, "projective", False) or has_displacement(lf.op)
                                             for lf in stage.leaves)


def stage_output(B: Any, stage: Any, h: Any, w: Any) -> tuple[Any, Any]:
    """The size a geometric stage gives an input of ``h`` x ``w`` (numbers or (N,) arrays)."""
    for lf in stage.leaves:
        if getattr(lf.op, "sets_size", False):
            h, w = lf.op.output_size(namespace(B, h, w), h, w)
            h, w = _as_int(h), _as_int(w)
    return h, w


def stage_map(plan: Any, B: Any, stage: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any]:
    """The composed forward matrices (N, 3, 3) of a geometric stage and its output size:
    each leaf's ``matrix`` gets a context with its own input's size."""
    eye = B.broadcast_to(B.eye(3, "float32"), (ctx.n, 3, 3))
    h, w = ctx.height, ctx.width
    m = None
    for lf in stage.leaves:
        c = replace(ctx, height=h, width=w)
        mk = plan.call(lf, "matrix", B, lf.params(params), c)
        g = plan.gate(lf, params)
        if g is not None:
            mk = B.where(B.reshape(g, (-1, 1, 1)), mk, eye)
        m = mk if m is None else B.matmul(mk, m)
        if getattr(lf.op, "sets_size", False):
            h, w = lf.op.output_size(namespace(B, h, w), h, w)
            h, w = _as_int(h), _as_int(w)
    return m, h, w


def stage_displacement(plan: Any, B: Any, stage: Any, params: Mapping[str, Any], ctx: Context) -> Any:
    """The (N, H, W, 2) displacement of a geometric stage (its last op's, 0 where that op's
    gate is off), or None; ``ctx`` holds the stage's output size (the planner ends a stage
    after an op with a displacement, so it is the last)."""
    for lf in stage.leaves[:-1]:
        if has_displacement(lf.op):
            raise SpecError(f"{type(lf.op).__name__} (at {lf.path}) has a displacement field, so it must be the last "
                            "op of its geometric stage")
    lf = stage.leaves[-1]
    if not has_displacement(lf.op):
        return None
    if not (_static(ctx.height) and _static(ctx.width)):
        raise InputError(f"{type(lf.op).__name__} (at {lf.path}): its displacement field needs one image size; "
                         "fix the size before it (CenterCrop(size), RandomResizedCrop(size) or Resize((height, width)))")
    d = lf.op.displacement(B, lf.params(params), ctx)
    if d is None:
        return None
    g = plan.gate(lf, params)
    return d if g is None else B.where(B.reshape(g, (-1, 1, 1, 1)), d, 0.0)


def footprint(stage: Any, h: float, w: float) -> tuple[float, float]:
    """A static bound of the source pixels per output pixel of an axis-aligned stage whose
    input is at most ``h`` x ``w``."""
    fy = fx = 1.0
    for lf in stage.leaves:
        a, b = lf.op.footprint(h, w)
        fy, fx = fy * a, fx * b
        if getattr(lf.op, "sets_size", False):
            h, w = (float(v) for v in lf.op.output_size(SCALAR, h, w))
    return fy, fx


# ---------------------------------------------------------------- separable
def _clamp_index(B: Any, i: Any, e: Any) -> Any:
    return B.minimum(B.maximum(i, 0.0 * i), e - 1.0 + 0.0 * i)


def _map_index(B: Any, i: Any, e: Any, fill_mode: str) -> tuple[Any, Any]:
    """(source index, in the image?) of a tap under ``fill_mode`` for extent ``e``."""
    if fill_mode == "reflect":  # half-sample symmetric: period 2 e
        i = i - 2.0 * e * B.floor(i / (2.0 * e))
        i = B.where(i >= e, 2.0 * e - 1.0 - i, i)
        return i, None
    if fill_mode == "nearest":
        return _clamp_index(B, i, e), None
    return _clamp_index(B, i, e), (i >= 0.0) & (i <= e - 1.0)


def axis_taps(B: Any, a: Any, c: Any, n_out: int, extent: Any, bound: float, interpolation: str,
              antialias: bool, fill_mode: str) -> tuple[Any, Any, Any]:
    """The taps of one axis: ``(index, weight, outside)``, index and weight (N, n_out, K)
    (index as float32 integers), ``outside`` (N, n_out) bool where no tap is in the image
    (``"constant"`` only; None otherwise)."""
    o = B.reshape(B.cast(B.arange(n_out), "float32") + 0.5, (1, -1))
    u = B.reshape(a, (-1, 1)) * o + (B.reshape(c, (-1, 1)) - 0.5)  # continuous source index
    e = float(extent) if _static(extent) else B.reshape(B.cast(extent, "float32"), (-1, 1))
    main, _ = _map_index(B, B.floor(u + 0.5), e, fill_mode)
    if interpolation == "nearest":
        raw = [(B.floor(u + 0.5), 1.0 + 0.0 * u)]
    else:
        if antialias and bound > 1.0:
            aa = B.reshape(a, (-1, 1))
            # the filter's reach is capped at the bound K is made for (a narrower but centred filter)
            f = B.minimum(B.maximum(B.maximum(aa, -aa), 0.0 * aa + 1.0), 0.0 * aa + bound)
            k_taps = int(math.ceil(2.0 * bound)) + 1
        else:
            f, k_taps = None, 2
        start = B.floor(u - (1.0 if f is None else f)) + 1.0
        raw = []
        for k in range(k_taps):
            i = start + float(k)
            d = B.maximum(i - u, u - i)
            raw.append((i, B.maximum(1.0 - (d if f is None else d / f), 0.0 * d)))
        if f is not None:  # normalise: the triangle's samples sum to about f
            total = raw[0][1]
            for _, wk in raw[1:]:
                total = total + wk
            raw = [(i, wk / total) for i, wk in raw]
    idx, wts, cover = [], [], None
    for i, wk in raw:
        j, valid = _map_index(B, i, e, fill_mode)
        if valid is not None:
            wk = B.where(valid, wk, 0.0 * wk)
            cover = wk if cover is None else cover + wk
        idx.append(B.where(wk > 0.0, j, main))
        wts.append(wk)
    outside = None
    if cover is not None:  # the taps inside the image, renormalised (Pillow's and torchvision's border)
        outside = cover <= 0.0
        partial = B.where(outside, 1.0 + 0.0 * cover, cover)
        wts = [B.where(partial < 1.0, wk / partial, wk) for wk in wts]
    return B.stack(idx, axis=-1), B.stack(wts, axis=-1), outside


def _lines(B: Any, v: Any, axis: str) -> Any:
    """(N, L) per-line values as a shape that broadcasts against a batch along ``axis``."""
    n, length = B.shape(v)
    if B.layout == "NHWC":
        return B.reshape(v, (n, length, 1, 1) if axis == "h" else (n, 1, length, 1))
    return B.reshape(v, (n, 1, length, 1) if axis == "h" else (n, 1, 1, length))


def _pass(B: Any, x: Any, taps: tuple[Any, Any, Any], axis: str, fill: Any, nearest: bool = False) -> Any:
    idx, wts, outside = taps
    if nearest:  # one tap of weight 1: a plain gather (no weighted sum), the fill where it is outside
        out = B.take_along(x, B.cast(idx[:, :, 0], "int64"), axis)
        if B.dtype_name(out) != "float32":
            out = B.cast(out, "float32")
        if outside is not None:
            out = B.where(_lines(B, outside, axis), 0.0 if fill is None else fill, out)
        return out
    out = B.gather_sum(x, B.cast(idx, "int64"), wts, axis)
    if outside is not None and fill is not None:
        out = B.where(_lines(B, outside, axis), fill, out)
    return out


def separable(B: Any, x: Any, inverse: Any, size: tuple[int, int], extent: tuple[Any, Any],
              bound: tuple[float, float], interpolation: str, antialias: bool, fill: tuple[float, ...],
              fill_mode: str) -> Any:
    """``x`` resampled at the axis-aligned ``inverse`` (N, 3, 3) to ``size`` (see the module notes)."""
    n, h, w, _ = B.image_dims(x)
    oh, ow = size
    ty = axis_taps(B, inverse[:, 1, 1], inverse[:, 1, 2], oh, extent[0], bound[0], interpolation, antialias,
                   fill_mode)
    tx = axis_taps(B, inverse[:, 0, 0], inverse[:, 0, 2], ow, extent[1], bound[1], interpolation, antialias,
                   fill_mode)
    f = None
    if fill_mode == "constant" and any(v != 0.0 for v in fill):
        f = B.per_channel(B.asarray(fill, "float32"))
    kx, ky = B.shape(tx[0])[2], B.shape(ty[0])[2]
    # the backend's preferred first axis (``Backend.first_pass``), else the pass that shrinks the work most
    first = getattr(B, "first_pass", None)
    if first is None:
        first = "w" if not (_static(h) and _static(w)) or h * ow * kx + oh * ow * ky <= oh * w * ky + oh * ow * kx \
            else "h"
    near = interpolation == "nearest"
    if first == "w":
        return _pass(B, _pass(B, x, tx, "w", f, near), ty, "h", f, near)
    return _pass(B, _pass(B, x, ty, "h", f, near), tx, "w", f, near)


# -------------------------------------------------------------------- warp
def warp(B: Any, x: Any, inverse: Any, size: tuple[int, int], extent: tuple[Any, Any], interpolation: str,
         fill: tuple[float, ...], fill_mode: str, projective: bool = False, displacement: Any = None) -> Any:
    """``x`` sampled at ``inverse @ (j + 1/2, i + 1/2, 1)`` on a ``size`` grid, bilinear or
    nearest, each sample inside its own ``extent`` (see the module notes). ``projective``:
    ``inverse`` may have any last row (the point is divided by its third coordinate);
    ``displacement``: an (N, oh, ow, 2) field ``(dx, dy)`` added to the output point first."""
    xn = B.to_nhwc(x)
    n, h, w, c = B.shape(xn)
    oh, ow = size
    jj = B.reshape(B.cast(B.arange(ow), "float32") + 0.5, (1, 1, ow))
    ii = B.reshape(B.cast(B.arange(oh), "float32") + 0.5, (1, oh, 1))
    if displacement is not None:  # exact where d is 0: the pixel centre itself
        jj = jj + displacement[..., 0]
        ii = ii + displacement[..., 1]

    def row(r: int) -> tuple[Any, Any, Any]:
        return tuple(B.reshape(inverse[:, r, k], (-1, 1, 1)) for k in range(3))  # type: ignore[return-value]

    inside = None
    if not projective:
        def coord(r: int) -> Any:
            a, b, t = row(r)
            return a * jj + (b * ii + (t - 0.5))

        u, v = coord(0), coord(1)
    else:
        def homogeneous(r: int) -> Any:
            a, b, t = row(r)
            return a * jj + (b * ii + t)

        hx, hy, hz = homogeneous(0), homogeneous(1), homogeneous(2)
        # |X / Z| and |Y / Z| below FAR: Z not near 0, nothing infinite or NaN (else outside)
        far = B.maximum(B.maximum(hx, -hx), B.maximum(hy, -hy))
        inside = B.maximum(hz, -hz) * FAR > far
        z = B.where(inside, hz, 1.0)
        u = B.where(inside, hx / z - 0.5, -2.0)
        v = B.where(inside, hy / z - 0.5, -2.0)
    eh = float(extent[0]) if _static(extent[0]) else B.reshape(B.cast(extent[0], "float32"), (-1, 1, 1))
    ew = float(extent[1]) if _static(extent[1]) else B.reshape(B.cast(extent[1], "float32"), (-1, 1, 1))
    flat = B.reshape(xn, (n * h * w, c))
    base = B.reshape(B.arange(n) * (h * w), (-1, 1, 1))
    fillv = B.reshape(B.asarray(fill, "float32"), (1, 1, 1, -1))

    def tap(vi: Any, ui: Any) -> tuple[Any, Any]:
        vi, vv = _map_index(B, vi, eh, fill_mode)
        ui, uv = _map_index(B, ui, ew, fill_mode)
        idx = base + B.cast(vi, "int64") * w + B.cast(ui, "int64")
        g = B.reshape(B.take(flat, B.reshape(idx, (-1,))), (n, oh, ow, c))
        if B.dtype_name(g) != "float32":
            g = B.cast(g, "float32")
        return g, (None if vv is None else vv & uv)

    if interpolation == "nearest":
        g, valid = tap(B.floor(v + 0.5), B.floor(u + 0.5))
        out = g if valid is None else B.where(B.reshape(valid, (n, oh, ow, 1)), g, fillv)
        if inside is not None and valid is None:  # "nearest" / "reflect": far points read the fill too
            out = B.where(B.reshape(inside, (n, oh, ow, 1)), out, fillv)
        return B.from_nhwc(out)
    u0, v0 = B.floor(u), B.floor(v)
    fu, fv = u - u0, v - v0
    u1 = u0 + B.cast(fu > 0.0, "float32")  # a weight-0 tap reads its partner's pixel
    v1 = v0 + B.cast(fv > 0.0, "float32")
    out, cover = None, None
    for vi, wv in ((v0, 1.0 - fv), (v1, fv)):
        for ui, wu in ((u0, 1.0 - fu), (u1, fu)):
            g, valid = tap(vi, ui)
            wt = wv * wu
            if valid is not None:
                wt = B.where(valid, wt, 0.0 * wt)
                cover = wt if cover is None else cover + wt
            t = g * B.reshape(wt, (n, oh, ow, 1))
            out = t if out is None else out + t
    if cover is not None:
        out = out + B.reshape(1.0 - cover, (n, oh, ow, 1)) * fillv
    elif inside is not None:  # "nearest" / "reflect": far points read the fill too
        out = B.where(B.reshape(inside, (n, oh, ow, 1)), out, fillv)
    return B.from_nhwc(out)


def resample_stage(plan: Any, B: Any, stage: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
    """A geometric stage that sets the size, reads images of different sizes or holds a
    projective or displacing op (``needs_warp``): ``x`` (a batch whose samples lie within
    ``(ctx.height, ctx.width)`` of its buffer) to a batch of the stage's output size."""
    m, oh, ow = stage_map(plan, B, stage, params, ctx)
    if not (_static(oh) and _static(ow)):
        raise InputError(
            "the images have different sizes and still do after the geometric ops "
            f"{[type(lf.op).__name__ for lf in stage.leaves]}: end them with an op that fixes the size "
            "(CenterCrop(size), RandomResizedCrop(size) or Resize((height, width)))")
    from .plan import affine_inverse, matrix_inverse

    projective = any(getattr(lf.op, "projective", False) for lf in stage.leaves)
    inverse = matrix_inverse(B, m) if projective else affine_inverse(B, m)
    disp = stage_displacement(plan, B, stage, params, replace(ctx, height=oh, width=ow))
    interp = stage.interpolation or "bilinear"
    fill = tuple(float(v) for v in (stage.fill if stage.fill is not None else (0.0,)))
    mode = stage.fill_mode or "constant"
    extent = (ctx.height, ctx.width)
    if disp is None and not projective and all(getattr(lf.op, "axis_aligned", False) for lf in stage.leaves):
        _, h, w, _ = B.image_dims(x)
        side = float(getattr(B, "max_image_side", 1024))  # sizes unknown when tracing: the backend's bound
        bound = footprint(stage, float(h) if _static(h) else side, float(w) if _static(w) else side)
        aa = stage.antialias if stage.antialias is not None else True
        return separable(B, x, inverse, (oh, ow), extent, bound, interp, aa, fill, mode)
    return warp(B, x, inverse, (oh, ow), extent, interp, fill, mode, projective, disp)
