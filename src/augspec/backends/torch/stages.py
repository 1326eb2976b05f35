"""The torch stage kernels: the eager fast path of each planner stage kind, registered
in the registry's kernel table (``stage.<kind>``, backend ``torch``) and called by
the core executor. They act on any op of the stage's family, built-in or plugin,
through the family method and the capabilities ops declare
(``PixelOp.channel_map``, ``MixOp.paste_box``); none names an op.

Each takes ``(call, flow)`` and returns a ``Flow``, or None to leave the stage to the
generic path (outside the eager path: ``torch.compile``, autograd, NHWC). The images'
value is ``flow.scale * flow.x``: a uint8 input's 1/255 is folded into the first
linear stage (warp, colour map, channel map, blend) instead of costing a pass. They
write into the memory's private buffers in turn; the stage that writes the call's
result writes a fresh tensor (``TorchMemory.dest``), and the caller's input is never
written.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import torch

from ...core.executor import Flow, StageCall
from ...core.plan import affine_inverse
from ...core.resample import needs_warp, resample_stage, sets_size, stage_map
from .memory import TorchMemory
from .warp import _is_identity, _resample


def eager(fn: Callable) -> Callable:
    """Run ``fn`` on the eager NCHW path only, and hand a fresh intermediate that the
    stage no longer reads to the memory as the spare output."""

    @functools.wraps(fn)
    def kernel(call: StageCall, flow: Flow) -> Flow | None:
        mem = call.memory
        if not isinstance(mem, TorchMemory) or call.B.layout != "NCHW":
            return None
        res = fn(call, flow, mem)
        if res is not None:
            x = flow.x
            if (flow.owned and res.x.data_ptr() != x.data_ptr() and not mem.is_private(x)
                    and x.dtype == torch.float32 and x.is_contiguous()):
                mem.spare = x
        return res

    return kernel


def replace_fill(stage: Any, fill: tuple[float, ...]) -> Any:
    """The stage with another fill (a fill of value / scale for a flow at ``scale``)."""
    return dataclasses.replace(stage, fill=fill)


def _gated(call: StageCall, leaf: Any) -> Any:
    return call.plan.gate(leaf, call.params)


@eager
def geometric(call: StageCall, flow: Flow, mem: TorchMemory) -> Flow | None:
    """One resampling at the composed inverse matrix (flips alone: a masked flip)."""
    plan, st, ctx, B, x = call.plan, call.stage, call.ctx, call.B, flow.x
    fill = tuple(float(v) / flow.scale for v in (st.fill if st.fill is not None else (0.0,)))  # x holds value / scale
    if (sets_size(st) and not needs_warp(st) and isinstance(ctx.height, int) and x.dtype == torch.float32
            and (st.interpolation or "bilinear") == "bilinear"
            and not all(getattr(lf.op, "axis_aligned", False) for lf in st.leaves)):
        # a crop fused with a rotation or shear: one grid_sample at the output size (the core's
        # general warp, bilinear, with grid_sample's taps)
        m, oh, ow = stage_map(plan, B, st, call.params, ctx)
        out = _resample(B, x, affine_inverse(B, m), "bilinear", fill, st.fill_mode or "constant", size=(oh, ow))
        return Flow(out, flow.y, flow.scale, True, flow.finite)
    if sets_size(st) or needs_warp(st) or not isinstance(ctx.height, int):  # the core's resampling, at the flow's scale
        out = resample_stage(plan, B, replace_fill(st, fill), x, call.params, ctx)
        return Flow(out, flow.y, flow.scale, True, flow.finite)
    if all(lf.op.flip_axis for lf in st.leaves):  # flips commute with the scale
        out, _ = plan._geometric(B, st, x, flow.y, call.params, ctx, call.fuse)
        return Flow(out, flow.y, flow.scale, out.data_ptr() != x.data_ptr(), flow.finite)
    eye = torch.eye(3, device=x.device).expand(ctx.n, 3, 3)
    m = None
    for lf in st.leaves:
        mk = plan.call(lf, "matrix", B, lf.params(call.params), ctx)
        g = _gated(call, lf)
        if g is not None:
            mk = torch.where(g.reshape(-1, 1, 1), mk, eye)
        m = mk if m is None else torch.matmul(mk, m)
    inv = affine_inverse(B, m)
    interp = st.interpolation or "bilinear"
    gated = all(lf.gates for lf in st.leaves)
    idx = plan.gated_rows(B, st, call.params) if gated else None
    if idx is not None:  # an eager CPU batch: warp only the samples some gate is on for
        if idx.numel() == 0:
            return flow
        sub = _warp(B, x.index_select(0, idx), inv.index_select(0, idx), interp, fill, st, mem, False)
        if flow.owned and x.dtype == torch.float32 and mem.in_place_ok(call, x):  # scratch: the rows in place
            return Flow(x.index_copy_(0, idx, sub), flow.y, flow.scale, True, flow.finite)
        return Flow(x.to(torch.float32).index_copy(0, idx, sub), flow.y, flow.scale, True, flow.finite)
    return Flow(_warp(B, x, inv, interp, fill, st, mem, gated), flow.y, flow.scale, True, flow.finite)


def _warp(B: Any, x: Any, inv: Any, interp: str, fill: tuple, st: Any, mem: TorchMemory, gated: bool) -> Any:
    n, c, h, w = x.shape
    grid = None if interp == "nearest" else mem.scratch("grid", (n, h, w, 2), x.device)
    out = _resample(B, x, inv, interp, fill, st.fill_mode or "constant", grid_out=grid)
    if interp != "nearest" and gated:
        # gated off everywhere: the exact input, as in the reference
        torch.where(_is_identity(inv).reshape(-1, 1, 1, 1), x, out, out=out)
    return out


@eager
def color(call: StageCall, flow: Flow, mem: TorchMemory) -> Flow | None:
    """The composed colour map ``A x + t`` in one pass, with the scale folded into ``A``
    (images that may hold NaN or inf: the generic stage, ``color_map``)."""
    if not call.fuse:
        return None
    if not flow.finite:  # NaN or inf present (seen on the host where that is free: B.compact): the generic stage
        some = call.B.compact(~torch.isfinite(flow.x).reshape(flow.x.shape[0], -1).all(1))
        if some is None or some.numel():
            return None
    from ...core.ops.color import apply_to_vector, compose

    plan, st, ctx, B, x, scale = call.plan, call.stage, call.ctx, call.B, flow.x, flow.scale
    needs_mean = any(lf.op.needs_mean for lf in st.leaves)
    mean0 = x.mean(dim=(2, 3)) * scale if needs_mean else torch.zeros((ctx.n, ctx.channels), device=x.device)
    acc = None
    for lf in st.leaves:
        mean = mean0 if acc is None else apply_to_vector(B, acc[0], mean0) + acc[1]
        a, t = plan.call(lf, "affine", B, lf.params(call.params), mean, ctx)
        g = _gated(call, lf)
        if g is not None:
            eye = torch.eye(ctx.channels, device=x.device).expand(ctx.n, ctx.channels, ctx.channels)
            a, t = torch.where(g.reshape(-1, 1, 1), a, eye), torch.where(g.reshape(-1, 1), t, 0.0)
        acc = (a, t) if acc is None else compose(B, (a, t), acc)
    a, t = acc
    if scale != 1.0:
        a = a * scale
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        x = x.contiguous()
    out = B.color_affine(x, a, t, out=mem.dest(call, x, avoid=x))
    if st.clamp:
        out.clamp_(0.0, 1.0)
    return Flow(out, flow.y, 1.0, True, flow.finite)


@eager
def region(call: StageCall, flow: Flow, mem: TorchMemory) -> Flow | None:
    """Each op's mask filled in place (a copy first where ``x`` is not this call's)."""
    plan, st, ctx, B, x, scale = call.plan, call.stage, call.ctx, call.B, flow.x, flow.scale
    if not flow.owned or not mem.in_place_ok(call, x):
        x = mem.dest(call, x, avoid=x).copy_(x)
    for lf in st.leaves:
        m = plan.call(lf, "mask", B, lf.params(call.params), ctx)
        g = _gated(call, lf)
        if g is not None:
            m = m & g.reshape(-1, 1, 1)
        fill = tuple(float(v) / scale for v in lf.op.fill)
        if len(fill) == 1:
            x.masked_fill_(m[:, None], fill[0])
        else:
            ft = B.asarray(fill, "float32").reshape(1, -1, 1, 1)
            torch.where(m[:, None], ft, x, out=x)
    return Flow(x, flow.y, scale, True, flow.finite)


@eager
def pixel(call: StageCall, flow: Flow, mem: TorchMemory) -> Flow | None:
    """An ungated op with a static ``channel_map``: ``mul * x + add`` with the scale folded in."""
    plan, ctx, B, x, scale = call.plan, call.ctx, call.B, flow.x, flow.scale
    (lf,) = call.stage.leaves
    if lf.op.name in plan.kernels or lf.gates:
        return None
    cmap = lf.op.channel_map(ctx) if hasattr(lf.op, "channel_map") else None
    if cmap is None:
        return None
    mul, add = cmap
    mt = B.asarray(tuple(scale * v for v in mul), "float32").reshape(1, -1, 1, 1)
    at = B.asarray(tuple(add), "float32").reshape(1, -1, 1, 1)
    dst = x if flow.owned and mem.in_place_ok(call, x) else mem.dest(call, x, avoid=x)
    # two passes: addcmul with a broadcast first operand is slower on the CPU than mul + add
    out = torch.mul(x, mt, out=dst).add_(at)
    if call.stage.clamp:
        out.clamp_(0.0, 1.0)
    return Flow(out, flow.y, 1.0, True, flow.finite)


# ------------------------------------------------------------------------ mix


def _mix_weights(call: StageCall, device: Any) -> tuple[Any, Any, list, Any]:
    """(partner, w, boxes, lw): the blend weight of the partner is ``w`` (None, or
    (N, 1, 1) / (N, H, W)) plus ``ry * rx`` for each pasted box of ``boxes``
    (separable float factors (N, H, 1) and (N, 1, W)); ``lw`` (N,) the label weight."""
    plan, st, ctx, B, params = call.plan, call.stage, call.ctx, call.B, call.params
    perm = params[st.leaves[0].path + "/partner"]
    w_tot = lw_tot = None
    boxes = []
    for lf in st.leaves:
        g = _gated(call, lf)
        gf = None if g is None else g.to(torch.float32)
        box = None if lf.op.name in plan.kernels else lf.op.paste_box(B, lf.params(params), ctx)
        if box is not None:
            y0, y1, x0, x1, lw = box
            rows = torch.arange(ctx.height, device=device, dtype=torch.float32).reshape(1, -1, 1)
            cols = torch.arange(ctx.width, device=device, dtype=torch.float32).reshape(1, 1, -1)
            ry = ((rows >= y0.reshape(-1, 1, 1)) & (rows < y1.reshape(-1, 1, 1))).to(torch.float32)
            rx = ((cols >= x0.reshape(-1, 1, 1)) & (cols < x1.reshape(-1, 1, 1))).to(torch.float32)
            if gf is not None:
                ry, lw = ry * gf.reshape(-1, 1, 1), lw * gf
            boxes.append((ry, rx))
        else:
            w, lw = plan.call(lf, "mix", B, lf.params(params), ctx)
            if gf is not None:
                w, lw = w * gf.reshape(-1, 1, 1), lw * gf
            w_tot = w if w_tot is None else w_tot + w
        lw_tot = lw if lw_tot is None else lw_tot + lw
    return perm, w_tot, boxes, lw_tot


def _blend_weight(w_tot: Any, boxes: list, lo: int | None = None, hi: int | None = None) -> Any:
    """The (n, 1, H|1, W|1) image weight of the partner for samples ``lo:hi``."""
    sl = slice(lo, hi)
    w = None if w_tot is None else w_tot[sl]
    for ry, rx in boxes:
        w = ry[sl] * rx[sl] if w is None else torch.addcmul(w, ry[sl], rx[sl])
    return w[:, None]


def _mix_labels(y: Any, perm: Any, lw_tot: Any) -> Any:
    if y is None:
        return None
    w = lw_tot.reshape(-1, 1)
    yp = torch.index_select(y, 0, perm)
    return torch.where(w == 0.0, y, torch.where(w == 1.0, yp, torch.lerp(y, yp, w)))


@eager
def mix(call: StageCall, flow: Flow, mem: TorchMemory) -> Flow | None:
    """One partner gather and one ``lerp`` for the whole stage (the scale commutes)."""
    x = flow.x
    perm, w_tot, boxes, lw_tot = _mix_weights(call, x.device)
    w = _blend_weight(w_tot, boxes).to(x.dtype)
    # a gather, not index_select: the CPU index_select is pathologically slow after grid_sample
    n = x.shape[0]
    partner = mem.dest(StageCall(**{**call.__dict__, "last": False}), x, avoid=x)
    torch.gather(x.reshape(n, -1), 0, perm.reshape(n, 1).expand(n, x[0].numel()), out=partner.view(n, -1))
    if flow.owned and mem.in_place_ok(call, x):
        dst = x  # in place: each element reads only itself and the partner copy
    else:
        dst = mem.dest(call, x, avoid=partner)
    out = _select_lerp(x, partner, w, dst) if not flow.finite else torch.lerp(x, partner, w, out=dst)
    return Flow(out, _mix_labels(flow.y, perm, lw_tot), flow.scale, True, flow.finite)


def _select_lerp(x: Any, partner: Any, w: Any, out: Any) -> Any:
    """``lerp(x, partner, w)`` into ``out`` (which may be ``x``) that selects where ``w`` is
    exactly 0 or 1 (``core.plan.blend``): the partner copy takes ``x`` where ``w == 0``
    first, so the lerp reads no NaN of the other side, then ``w == 1`` takes the partner."""
    torch.where(w == 0.0, x, partner, out=partner)
    torch.lerp(x, partner, w, out=out)
    return torch.where(w == 1.0, partner, out, out=out)


def mix_chunked(call: StageCall, src: Any, out: Any, y: Any, bounds: list[int], finite: bool = False) -> Any:
    """The mix stage chunk by chunk: ``out[lo:hi] = lerp(src[lo:hi], src[partner[lo:hi]], w)``
    (``out`` must not overlap ``src``, whose rows later chunks still read; ``finite``: no NaN or
    inf in ``src``, so no select is needed); returns the labels."""
    if call.memory is None or not isinstance(call.memory, TorchMemory):  # pragma: no cover - executor contract
        raise TypeError("mix_chunked runs on the torch eager path only")
    perm, w_tot, boxes, lw_tot = _mix_weights(call, src.device)
    flat = src.view(call.ctx.n, -1)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        partner = call.memory.scratch("partner", (hi - lo, *src.shape[1:]), src.device)
        torch.index_select(flat, 0, perm[lo:hi], out=partner.view(hi - lo, -1))
        w = _blend_weight(w_tot, boxes, lo, hi)
        if finite:
            torch.lerp(src[lo:hi], partner, w, out=out[lo:hi])
        else:
            _select_lerp(src[lo:hi], partner, w, out[lo:hi])
    return _mix_labels(y, perm, lw_tot)


mix.chunked = mix_chunked  # type: ignore[attr-defined]

#: the stage kernels by kind, as the built-in plugin registers them
STAGE_KERNELS = {"geometric": geometric, "color": color, "region": region, "pixel": pixel, "mix": mix}
