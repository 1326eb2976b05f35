"""The planner: a pipeline becomes a list of leaves with per-sample gates, then
stages that fuse consecutive ops of one family.

- Containers flatten: a leaf of ``RandomApply`` carries the gate "its Bernoulli
  draw", a leaf of ``OneOf`` the gate "choice == k"; an op with ``p < 1`` adds
  its own Bernoulli gate. Where a gate is off, the leaf is the identity.
- geometric: the forward matrices compose into one per sample and the batch is
  resampled ONCE at ``M^-1 p`` (pure flips skip resampling: a masked flip).
- color: linear colour maps compose into one ``A x + t`` per sample; the mean a
  contrast needs is carried through the composition exactly.
- region: masks per op, written in order; mix: one partner permutation and ONE
  gather per stage (a OneOf of mix ops is one stage: all candidates see the same
  input); label, pixel and feature ops run one by one.
- Values are clamped to [0, 1] at the end of each colour or pixel stage while the
  pipeline is still in that range (before Normalize and friends), and only there.

Stages never look at the values of arrays, so nothing here needs a host sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .containers import Choice, Given
from .errors import SpecError
from .ops.crop import SCALAR
from .random import Bernoulli, DrawSpec, Sampler
from .registry import op_kind
from .resample import needs_warp, resample_stage, sets_size, stage_output
from .spec import Context, FitOp, Op, has_displacement
from .synthetic import RealBatch, check_output, enter, key_words


@dataclass(frozen=True)
class Gate:
    """A per-sample condition: ``params[key]`` (a bool) or ``params[key] == index``."""

    key: str
    index: int | None = None


@dataclass(frozen=True)
class Leaf:
    op: Op
    path: str
    gates: tuple[Gate, ...]
    group: str | None = None  # path of the nearest OneOf

    def params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        pre = self.path + "/"
        return {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}


@dataclass
class Stage:
    kind: str
    leaves: list[Leaf] = field(default_factory=list)
    clamp: bool = False
    interpolation: str | None = None
    fill: tuple | None = None
    fill_mode: str | None = None
    antialias: bool | None = None


def flatten(ops: Sequence[Op]) -> tuple[list[Leaf], list[DrawSpec]]:
    leaves: list[Leaf] = []
    draws: list[DrawSpec] = []

    def add_draw(key: str, dist: Any) -> None:
        draws.append(DrawSpec(key, dist, len(draws)))

    def applied(path: str, gates: tuple[Gate, ...], p: float) -> tuple[Gate, ...]:
        """``gates`` and, for ``p < 1``, the Bernoulli ``"<path>/apply"`` drawn for it."""
        if p >= 1.0:
            return gates
        add_draw(f"{path}/apply", Bernoulli(p=p))
        return gates + (Gate(f"{path}/apply"),)

    def visit(op: Op, path: str, gates: tuple[Gate, ...], group: str | None) -> None:
        if isinstance(op, Given):  # the op itself, with some draws given (a policy's candidate)
            inner = op.op
            own = applied(path, gates, op.p * inner.p)
            for name, dist in op.leaf_draws().items():
                add_draw(f"{path}/{name}", dist)
            leaves.append(Leaf(inner, path, own, group))
            return
        if isinstance(op, Choice):  # a policy's layer: branch k where choice == k, step by step
            own = applied(path, gates, op.p)
            for name, dist in op.draws().items():
                add_draw(f"{path}/{name}", dist)
            for j in range(max(len(b) for b in op.branches)):
                step = sorted(((k, b[j]) for k, b in enumerate(op.branches) if len(b) > j),
                              key=lambda kb: _step_rank(kb[1]))
                for k, child in step:
                    visit(child, f"{path}.{k}.{j}", own + (Gate(f"{path}/choice", k),), path)
            return
        if op.family == "container":
            own = applied(path, gates, getattr(op, "p", 1.0))
            kids = op.children  # type: ignore[attr-defined]
            choice = op.draws()
            if "choice" in choice:  # OneOf: child k where choice == k
                for name, dist in choice.items():
                    add_draw(f"{path}/{name}", dist)
                for k, child in enumerate(kids):
                    visit(child, f"{path}.{k}", own + (Gate(f"{path}/choice", k),), path)
            else:
                for k, child in enumerate(kids):
                    visit(child, f"{path}.{k}", own, group)
            return
        own = applied(path, gates, op.p)
        for name, dist in op.draws().items():
            add_draw(f"{path}/{name}", dist)
        leaves.append(Leaf(op, path, own, group))

    for i, op in enumerate(ops):
        visit(op, str(i), (), None)
    return leaves, draws


def _gated_warp(lf: Leaf) -> bool:
    return bool(lf.gates) and not getattr(lf.op, "axis_aligned", False)


def _spoils_resize(stage: Stage, lf: Leaf) -> bool:
    """True where ``lf`` joining ``stage`` would put a gated rotation, shear or perspective (a
    policy's warp, identity for most samples) together with an op that sets the size: the whole
    batch would then take the general warp (no antialiasing) instead of the separable resize.
    Such a leaf starts a stage of its own; an ungated one still fuses with the crop."""
    sized = any(getattr(x.op, "sets_size", False) for x in stage.leaves)
    if getattr(lf.op, "sets_size", False):
        return any(_gated_warp(x) for x in stage.leaves)
    return sized and _gated_warp(lf)


def _step_rank(op: Op) -> int:
    """Where an op goes among the exclusive ops of one ``Choice`` step: warps, then linear
    colour maps, then the rest (in their order), so that the first two fuse."""
    inner = op.op if isinstance(op, Given) else op
    if inner.family == "container":
        return 2
    return {"geometric": 0, "color": 1}.get(op_kind(inner), 2)


def is_batch_op(op: Op) -> bool:
    """The one batch / per-sample rule of every integration: True for an op that needs
    the whole batch (a mix or label op) or a container holding one anywhere (it cannot
    run on one sample without dropping that child). A Synthetic op is one too (it draws
    the samples it replaces and their labels over the batch)."""
    if op.family in ("mix", "tile", "label", "synthetic"):
        return True
    kids = getattr(op, "children", None) if op.family == "container" else None
    return bool(kids) and any(is_batch_op(k) for k in kids)


def split_pipeline(ops: Sequence[Op]) -> tuple[tuple[Op, ...], tuple[Op, ...]]:
    """(per-sample prefix, batch suffix): the suffix starts at the first batch op. A pipeline
    with a Synthetic op is all suffix: that op runs first (the planner's rule), so the
    synthetic samples go through every other op too."""
    ops = tuple(ops)
    if any(op.family == "synthetic" for op in ops):
        return (), ops
    for i, op in enumerate(ops):
        if is_batch_op(op):
            return ops[:i], ops[i:]
    return ops, ()


def _kind(op: Op) -> str:
    return op_kind(op)


class Plan:
    """The stages of a pipeline and the sampler of its draws."""

    def __init__(self, ops: Sequence[Op], kernels: Mapping[str, Any] | None = None):
        self.kernels = dict(kernels or {})
        self.leaves, draws = flatten(ops)
        self.sampler = Sampler(draws)
        self.changes_labels = any(lf.op.changes_labels for lf in self.leaves)
        self.bounded = all(lf.op.bounded for lf in self.leaves)
        for lf in self.leaves:
            if isinstance(lf.op, FitOp) and not lf.op.fitted:
                raise SpecError(f"{type(lf.op).__name__} (at {lf.path}): statistics not fitted; call Pipeline.fit(x) first")
        self.stages = self._stages()
        #: how many leading stages are synthetic (``apply_sources``)
        self.sources = sum(1 for st in self.stages if st.kind == "synthetic")
        #: whether some stage sets the output size (crops, resizes, pads)
        self.sets_size = any(sets_size(st) for st in self.stages)
        self.sampler.image_shapes = self.draw_shapes

    # ------------------------------------------------------------------ sizes
    def stage_contexts(self, B: Any, ctx: Context) -> list[Context]:
        """The context each stage sees (its input's size), and last the output's: a stage
        that sets the size changes it for the stages after it."""
        out = [ctx]
        for st in self.stages:
            if sets_size(st):
                h, w = stage_output(B, st, ctx.height, ctx.width)
                ctx = replace(ctx, height=h, width=w)
            out.append(ctx)
        return out

    def prepare(self, n: int, hwc: tuple[Any, Any, int] | None, num_classes: int | None = None) -> None:
        """Build every host constant a call on ``n`` images of ``hwc`` (and ``num_classes``
        classes) reads (the sampler's layout, each op's tables: ``Op.prepare``), so a trace
        finds them built."""
        self.sampler.prepare(n, hwc)
        if hwc is None:
            return
        shapes = self.draw_shapes(hwc)
        for lf in self.leaves:
            h, w, c = shapes[lf.path]
            if isinstance(h, int) and isinstance(w, int):
                lf.op.prepare(Context(n, h, w, c, num_classes))

    def draw_shapes(self, hwc: tuple[Any, Any, int]) -> dict[str, tuple[Any, Any, int]]:
        """The (H, W, C) each leaf's draws see for an input of ``hwc`` (by leaf path): the
        output size of the size-setting ops before it (None where unknown when tracing)."""
        h, w, c = hwc
        out = {}
        for lf in self.leaves:
            out[lf.path] = (h, w, c)
            if getattr(lf.op, "sets_size", False):
                try:
                    h, w = (int(v) for v in lf.op.output_size(SCALAR, h, w))
                except TypeError:  # an input size unknown when tracing: known after a fixed-size op
                    h = w = None
        return out

    def _stages(self) -> list[Stage]:
        stages: list[Stage] = []
        bounded = True
        # Synthetic stages first, wherever they sit: every other op then augments real and
        # synthetic samples alike (the draws keep the pipeline's order)
        sources = [lf for lf in self.leaves if _kind(lf.op) == "synthetic"]
        for lf in sources:
            if lf.gates:
                raise SpecError(f"{type(lf.op).__name__} (at {lf.path}) replaces samples of the batch at its own "
                                "ratio: it cannot be inside OneOf or RandomApply")
            stages.append(Stage("synthetic", [lf]))
        for lf in self.leaves:
            kind = _kind(lf.op)
            if kind == "synthetic":
                continue
            last = stages[-1] if stages else None
            if kind == "geometric":
                if getattr(lf.op, "sets_size", False) and lf.gates:
                    raise SpecError(f"{type(lf.op).__name__} (at {lf.path}) sets the output size, so it applies to "
                                    "every sample: it cannot be inside OneOf or RandomApply")
                interp = getattr(lf.op, "interpolation", None)
                fill = getattr(lf.op, "fill", None)
                mode = getattr(lf.op, "fill_mode", None)
                aa = getattr(lf.op, "antialias", None)
                if (last is not None and last.kind == "geometric"
                        and not has_displacement(last.leaves[-1].op)  # a displacement ends its stage
                        and not _spoils_resize(last, lf)
                        and (interp is None or last.interpolation in (None, interp))
                        and (fill is None or last.fill in (None, fill))
                        and (mode is None or last.fill_mode in (None, mode))
                        and (aa is None or last.antialias in (None, aa))):
                    last.leaves.append(lf)
                    last.interpolation = last.interpolation or interp
                    last.fill = last.fill or fill
                    last.fill_mode = last.fill_mode or mode
                    last.antialias = last.antialias if last.antialias is not None else aa
                else:
                    stages.append(Stage("geometric", [lf], interpolation=interp, fill=fill, fill_mode=mode,
                                        antialias=aa))
            elif kind in ("color", "region", "mix") and last is not None and last.kind == kind and (
                kind != "mix" or (lf.group is not None and lf.group == last.leaves[0].group)
            ):
                last.leaves.append(lf)
            else:
                stages.append(Stage(kind, [lf], clamp=kind in ("color", "pixel") and bounded))
            if not lf.op.bounded:
                bounded = False
                stages[-1].clamp = False
        return stages

    # ------------------------------------------------------------------ apply
    @property
    def executor(self) -> Any:
        """The one executor (``executor.py``) with this plan's stage kernels."""
        ex = self.__dict__.get("_executor")
        if ex is None:
            from .executor import Executor

            ex = self.__dict__["_executor"] = Executor(self)
        return ex

    def apply(self, B: Any, x: Any, y: Any, params: Mapping[str, Any], ctx: Context, fuse: bool = True,
              stages: tuple[int, int] | None = None, finite: bool = False):
        """Run the stages (``range(*stages)``, all by default) on float32 values in [0, 1];
        ``finite``: the images hold no NaN or inf (they came in as integers)."""
        from .executor import Flow

        flow = self.executor.run(B, Flow(x, y, finite=finite), params, ctx, fuse, stages=stages)
        return (flow.x if flow.scale == 1.0 else flow.x * flow.scale), flow.y

    def apply_sources(self, B: Any, x: Any, y: Any, params: Mapping[str, Any], ctx: Context
                      ) -> tuple[Any, Any, Context]:
        """The leading synthetic stages on the input batch in its own dtype (``ctx.dtype``),
        never writing it: what ``apply`` would do in float32, since a synthetic sample
        enters the batch in the batch's dtype either way. Returns ``(x, y, ctx)``: in a batch
        of images of different sizes (``ctx.height`` an array) a synthetic sample is made at
        the op's ``size``, at the top left of its padded image, and takes that size, which the
        returned context says. Runs call this on their input, then the stages from ``sources``."""
        for st in self.stages[: self.sources]:
            (lf,) = st.leaves
            gate = self.call(lf, "replace", B, lf.params(params), ctx)
            x, y = self._synthetic(B, st, x, y, params, ctx, True, raw=True, gate=gate)[:2]
            if not isinstance(ctx.height, int):
                sh, sw = lf.op.size
                ctx = replace(ctx, height=B.where(gate, float(sh), ctx.height), width=B.where(gate, float(sw), ctx.width))
        return x, y, ctx

    def call(self, lf: Leaf, method: str, *args: Any) -> Any:
        """The leaf's kernel: the backend's registered one, else the op's own method."""
        fn = self.kernels.get(lf.op.name)
        return fn(lf.op, *args) if fn is not None else getattr(lf.op, method)(*args)

    @staticmethod
    def gate(leaf: Leaf, params: Mapping[str, Any]) -> Any:
        m = None
        for g in leaf.gates:
            v = params[g.key]
            c = v if g.index is None else v == g.index
            m = c if m is None else m & c
        return m

    def _geometric(self, B, st, x, y, params, ctx, fuse, owned=False):
        if sets_size(st) or needs_warp(st) or not isinstance(ctx.height, int):
            return resample_stage(self, B, st, x, params, ctx), y
        if all(lf.op.flip_axis for lf in st.leaves):  # type: ignore[attr-defined]
            for axis in ("w", "h"):
                parity = None  # per-sample XOR of gated flips; True where static
                static = False
                for lf in st.leaves:
                    if lf.op.flip_axis != axis:  # type: ignore[attr-defined]
                        continue
                    g = self.gate(lf, params)
                    if g is None:
                        static = not static
                    else:
                        parity = g if parity is None else B.logical_xor(parity, g)
                if parity is not None:
                    if static:
                        parity = B.logical_not(parity)
                    x = B.where(B.per_sample(parity), B.flip(x, axis), x)
                elif static:
                    x = B.flip(x, axis)
            return x, y
        eye = B.broadcast_to(B.eye(3, "float32"), (ctx.n, 3, 3))
        m = None
        for lf in st.leaves:
            mk = self.call(lf, "matrix", B, lf.params(params), ctx)
            g = self.gate(lf, params)
            if g is not None:
                mk = B.where(B.reshape(g, (-1, 1, 1)), mk, eye)
            m = mk if m is None else B.matmul(mk, m)
        fill = st.fill if st.fill is not None else (0.0,)
        mode = st.fill_mode or "constant"
        inverse = affine_inverse(B, m)
        idx = self.gated_rows(B, st, params)
        if idx is not None:  # an eager CPU batch: warp only the samples some gate is on for
            if B.shape(idx)[0] == 0:
                return x, y, owned
            rows = _warp_affine(B, B.take(x, idx), B.take(inverse, idx), st, fill, mode)
            return B.put_rows(x, idx, rows, inplace=owned), y, True
        return _warp_affine(B, x, inverse, st, fill, mode), y

    def _color(self, B, st, x, y, params, ctx, fuse, finite=False):
        """The stage's composed colour map (op by op where not ``fuse``); ``finite``: ``x`` holds
        no NaN or inf, else a channel takes nothing from one whose coefficient is 0 (``color_map``)."""
        from .ops.color import apply_to_vector, color_map, compose

        if not fuse:
            for lf in st.leaves:
                a, t = self.call(lf, "affine", B, lf.params(params), B.channel_mean(x), ctx)
                a, t = _gate_affine(B, self.gate(lf, params), a, t, ctx)
                x = color_map(B, x, a, t, finite)
            return x, y

        needs_mean = any(lf.op.needs_mean for lf in st.leaves)  # type: ignore[attr-defined]
        mean0 = B.channel_mean(x) if needs_mean else B.zeros((ctx.n, ctx.channels), "float32")
        acc = None
        for lf in st.leaves:
            mean = mean0 if acc is None else apply_to_vector(B, acc[0], mean0) + acc[1]
            a, t = self.call(lf, "affine", B, lf.params(params), mean, ctx)
            a, t = _gate_affine(B, self.gate(lf, params), a, t, ctx)
            acc = (a, t) if acc is None else compose(B, (a, t), acc)
        return color_map(B, x, acc[0], acc[1], finite), y

    def _pixel(self, B, st, x, y, params, ctx, fuse, owned=False):
        """The op where its gate is on; the stage's clamp applies to what the op produced
        (a sample whose gate is off passes unchanged, bit for bit). ``owned``: ``x`` is
        scratch of this call (``Flow.owned``), which the compacted path writes in place; that
        path returns ``(x, y, owned)``, the others ``(x, y)``."""
        (lf,) = st.leaves
        g = self.gate(lf, params)
        idx = None if g is None or not lf.op.samplewise or lf.op.name in self.kernels else B.compact(g)
        if idx is not None:  # a gated samplewise op on the gated samples only (eager CPU backends)
            out, mine = self._pixel_rows(B, st, lf, x, params, ctx, idx, owned)
            return out, y, mine
        out = self.call(lf, "pixels", B, x, lf.params(params), ctx)
        if st.clamp:
            out = B.clip(out, 0.0, 1.0)
        return (out if g is None else B.where(B.per_sample(g), out, x)), y

    def gated_rows(self, B: Any, st: Stage, params: Mapping[str, Any]) -> Any:
        """The samples some leaf of ``st`` is gated on for (``B.compact``), where every leaf is
        gated and the backend compacts; else None. The other samples pass the stage unchanged."""
        on = None
        for lf in st.leaves:
            g = self.gate(lf, params)
            if g is None:
                return None
            on = g if on is None else on | g
        return B.compact(on)

    def _pixel_rows(self, B, st, lf, x, params, ctx, idx, owned=False):
        """``lf``'s op on the samples ``idx`` (its params sliced alike), the others as they are:
        equal to the op on the whole batch then a select, for an op that reads each sample alone.
        Returns ``(x, y, owned)`` of the result, as ``_pixel``."""
        k = B.shape(idx)[0]
        if k == 0:
            return x, owned
        whole = k == ctx.n
        sub = lf.params(params) if whole else {key: B.take(v, idx) for key, v in lf.params(params).items()}
        rows = self.call(lf, "pixels", B, x if whole else B.take(x, idx), sub, ctx if whole else replace(ctx, n=k))
        if st.clamp:
            rows = B.clip(rows, 0.0, 1.0)
        return (rows, False) if whole else (B.put_rows(x, idx, rows, inplace=owned), True)

    def _feature(self, B, st, x, y, params, ctx, fuse):
        (lf,) = st.leaves
        out = self.call(lf, "features", B, x, lf.params(params), ctx)
        g = self.gate(lf, params)
        return (out if g is None else B.where(B.per_sample(g), out, x)), y

    def _region(self, B, st, x, y, params, ctx, fuse):
        for lf in st.leaves:
            m = self.call(lf, "mask", B, lf.params(params), ctx)
            g = self.gate(lf, params)
            if g is not None:
                m = m & B.reshape(g, (-1, 1, 1))
            fill = B.per_channel(B.asarray(lf.op.fill, "float32"))  # type: ignore[attr-defined]
            x = B.where(B.spatial(m), fill, x)
        return x, y

    def _mix(self, B, st, x, y, params, ctx, fuse, finite=False):
        perm = params[st.leaves[0].path + "/partner"]
        w_tot = lw_tot = None
        for lf in st.leaves:
            w, lw = self.call(lf, "mix", B, lf.params(params), ctx)
            g = self.gate(lf, params)
            if g is not None:
                gf = B.cast(g, "float32")
                w, lw = w * B.reshape(gf, (-1, 1, 1)), lw * gf
            w_tot = w if w_tot is None else w_tot + w
            lw_tot = lw if lw_tot is None else lw_tot + lw
        x = blend(B, x, B.take(x, perm), B.spatial(w_tot), select=not finite)
        if y is not None:
            y = blend(B, y, B.take(y, perm), B.reshape(lw_tot, (-1, 1)))
        return x, y

    def _synthetic(self, B, st, x, y, params, ctx, fuse, owned=False, raw=False, gate=None):
        """The op's generated samples where its gate is on, their labels likewise. On a backend
        that compacts (an eager CPU batch), only the replaced samples are generated (and their
        values checked); elsewhere all are, then selected, with no host read. A sample enters
        in the input's dtype (``ctx.dtype``): a uint8 batch gets ``round(255 v)``, as a bank
        stores it. ``raw``: ``x`` is the input itself, in that dtype (``apply_sources``), else
        float32 values in [0, 1]; ``gate``: the op's ``replace``, where the caller has it."""
        (lf,) = st.leaves
        op, p = lf.op, lf.params(params)
        k = op.num_classes(ctx)
        if gate is None:
            gate = self.call(lf, "replace", B, p, ctx)
        cls = self.call(lf, "classes", B, p, ctx)
        key = key_words(B, p["key"])
        gen = op.source()
        real = None
        if gen.reads_batch:
            xr = B.to_nhwc(x)
            if raw:
                xr = B.cast(xr, "float32") * (1.0 / 255.0 if ctx.dtype == "uint8" else 1.0)
            real = RealBatch(xr, y, B.logical_not(gate))
        pad = None
        if not isinstance(ctx.height, int):  # a batch of different sizes: made at the op's size
            if not raw:
                raise SpecError("Synthetic in a batch of images of different sizes runs through Plan.apply_sources")
            pad = _synthetic_size(B, op, x)
            ctx = replace(ctx, height=op.size[0], width=op.size[1])
        shape = (ctx.height, ctx.width, ctx.channels)
        idx = B.compact(gate)
        if idx is not None:
            m = B.shape(idx)[0]
            if m == 0:
                return x, y, owned
            out = self.call(lf, "generate", B, B.take(cls, idx), B.take(key, idx), replace(ctx, n=m), real)
            imgs, soft = check_output(B, op.generator, out, m, shape, k, True)
            rows = soft if soft is not None else B.one_hot(B.take(cls, idx), k)
            x = B.put_rows(x, idx, B.from_nhwc(_padded(B, enter(B, imgs, ctx.dtype, raw), pad)), inplace=owned)
            if y is not None:
                y = B.put_rows(y, idx, rows)
            return x, y, True
        out = self.call(lf, "generate", B, cls, key, ctx, real)
        imgs, soft = check_output(B, op.generator, out, ctx.n, shape, k, False)
        x = B.where(B.per_sample(gate), B.from_nhwc(_padded(B, enter(B, imgs, ctx.dtype, raw), pad)), x)
        if y is not None:
            rows = soft if soft is not None else B.one_hot(cls, k)
            y = B.where(B.reshape(gate, (-1, 1)), rows, y)
        return x, y

    def _tile(self, B, st, x, y, params, ctx, fuse):
        """Each output pixel from the tile whose rectangle holds it: its source image moved by
        the tile's whole-pixel shift (``fill`` outside the source); labels by the tiles' areas.
        Where the gate is off, the sample itself, unmoved."""
        (lf,) = st.leaves
        sources, shifts, bounds = tile_layout(self, B, lf, params, ctx)
        fill = tuple(float(v) for v in getattr(lf.op, "fill", (0.0,)))
        out = tile_pixels(B, x, sources, shifts, bounds, ctx, "nearest", fill)
        if y is not None:
            area = (bounds[..., 2] - bounds[..., 0]) * (bounds[..., 3] - bounds[..., 1]) * (1.0 / (ctx.height * ctx.width))
            ys = None
            for t in range(B.shape(sources)[1]):
                yt = B.take(y, sources[:, t]) * B.reshape(area[:, t], (-1, 1))
                ys = yt if ys is None else ys + yt
            y = ys
        return out, y

    def _label(self, B, st, x, y, params, ctx, fuse):
        if y is None:
            return x, y
        (lf,) = st.leaves
        out = self.call(lf, "labels", B, y, lf.params(params), ctx)
        g = self.gate(lf, params)
        return x, (out if g is None else B.where(B.reshape(g, (-1, 1)), out, y))


def tile_layout(plan: Plan, B: Any, lf: Leaf, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any]:
    """A tile op's ``(sources, shifts, bounds)`` with its gate: where off, one tile, the sample
    itself over the whole image (the others empty)."""
    sources, shifts, bounds = plan.call(lf, "tiles", B, lf.params(params), ctx)
    g = plan.gate(lf, params)
    if g is None:
        return sources, shifts, bounds
    n, t = B.shape(sources)
    own = B.broadcast_to(B.reshape(B.arange(n), (-1, 1)), (n, t))
    whole = B.asarray([[0.0, 0.0, float(ctx.width), float(ctx.height)]] + [[0.0, 0.0, 0.0, 0.0]] * (t - 1), "float32")
    on = B.reshape(g, (-1, 1))
    return (B.where(on, sources, own), B.where(B.reshape(g, (-1, 1, 1)), shifts, 0.0 * shifts),
            B.where(B.reshape(g, (-1, 1, 1)), bounds, B.broadcast_to(B.reshape(whole, (1, t, 4)), (n, t, 4))))


def tile_pixels(B: Any, x: Any, sources: Any, shifts: Any, bounds: Any, ctx: Context, interpolation: str,
                fill: tuple[float, ...]) -> Any:
    """The tiled batch: for each tile, its source moved by its shift (a whole-pixel warp: exact
    with either interpolation), written inside its rectangle."""
    from .ops.geometric import affine_matrix

    n = ctx.n
    one, zero = B.ones((n,), "float32"), B.zeros((n,), "float32")
    jj = B.reshape(B.cast(B.arange(ctx.width), "float32") + 0.5, (1, 1, -1))
    ii = B.reshape(B.cast(B.arange(ctx.height), "float32") + 0.5, (1, -1, 1))
    out = None
    for t in range(B.shape(sources)[1]):
        src = B.take(x, sources[:, t])
        inv = affine_matrix(B, one, zero, -shifts[:, t, 0], zero, one, -shifts[:, t, 1])
        moved = _warp_affine(B, src, inv, Stage("geometric", interpolation=interpolation), fill, "constant")
        b = B.reshape(bounds[:, t], (-1, 1, 1, 4))
        inside = (jj >= b[..., 0]) & (jj < b[..., 2]) & (ii >= b[..., 1]) & (ii < b[..., 3])
        out = moved if out is None else B.where(B.spatial(inside), moved, out)
    return out


def _synthetic_size(B: Any, op: Op, x: Any) -> tuple[int, int]:
    """The padding (rows, columns) that puts ``op.size`` images at the top left of the padded
    batch ``x`` of images of different sizes, or an error naming the op."""
    from .errors import InputError

    if op.size is None:
        raise InputError(f"{type(op).__name__}: the images have different sizes; give the size of the synthetic "
                         "samples, size=(height, width) (they then go through the ops after it like the others)")
    _, bh, bw, _ = B.image_dims(x)
    if not (isinstance(bh, int) and isinstance(bw, int)):
        raise InputError(f"{type(op).__name__}: a batch of images of different sizes needs a padded size known when "
                         "tracing (a static shape)")
    sh, sw = op.size
    if sh > bh or sw > bw:
        raise InputError(f"{type(op).__name__}: size={op.size} does not fit in the padded batch ({bh}, {bw}); "
                         "give a size no larger than the largest image")
    return bh - sh, bw - sw


def _padded(B: Any, imgs: Any, pad: tuple[int, int] | None) -> Any:
    """NHWC ``imgs`` padded with zeros at the bottom and right by ``pad`` (None: as they are)."""
    if pad is None or pad == (0, 0):
        return imgs
    n, h, w, c = B.shape(imgs)
    dt = B.dtype_name(imgs)
    if pad[0]:
        imgs = B.concat([imgs, B.cast(B.zeros((n, pad[0], w, c), "float32"), dt)], axis=1)
    if pad[1]:
        imgs = B.concat([imgs, B.cast(B.zeros((n, h + pad[0], pad[1], c), "float32"), dt)], axis=2)
    return imgs


def _warp_affine(B: Any, x: Any, inverse: Any, st: Stage, fill: Any, mode: str) -> Any:
    if mode == "constant":  # the four-argument call: backends written before fill_mode still work
        return B.warp_affine(x, inverse, st.interpolation or "bilinear", fill)
    return B.warp_affine(x, inverse, st.interpolation or "bilinear", fill, mode)


def blend(B: Any, x: Any, partner: Any, w: Any, select: bool = True) -> Any:
    """``(1 - w) x + w partner`` that *selects* where ``w`` is exactly 0 or 1, so a NaN or
    inf of the side with weight 0 never reaches the output (``0 * NaN`` is NaN);
    ``select=False`` where both sides are known finite (the plain blend, two passes fewer)."""
    mixed = (1.0 - w) * x + w * partner
    if not select:
        return mixed
    return B.where(w == 0.0, x, B.where(w == 1.0, partner, mixed))


def _gate_affine(B: Any, g: Any, a: Any, t: Any, ctx: Context) -> tuple[Any, Any]:
    if g is None:
        return a, t
    eye = B.broadcast_to(B.eye(ctx.channels, "float32"), (ctx.n, ctx.channels, ctx.channels))
    return B.where(B.reshape(g, (-1, 1, 1)), a, eye), B.where(B.reshape(g, (-1, 1)), t, 0.0 * t)


def affine_inverse(B: Any, m: Any) -> Any:
    """Inverse of (N, 3, 3) affine matrices (last row 0 0 1), in closed form."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    r = 1.0 / (a * e - b * d)
    from .ops.geometric import affine_matrix

    return affine_matrix(B, e * r, -b * r, (b * f - c * e) * r, -d * r, a * r, (c * d - a * f) * r)


def matrix_inverse(B: Any, m: Any) -> Any:
    """Inverse of (N, 3, 3) matrices, projective ones included, in closed form: the adjugate
    over the determinant. A singular matrix (determinant 0 or not finite) gives the zero
    matrix, whose every point reads as outside in the warp (``core/resample.py``)."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    g, h, i = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    c00, c01, c02 = e * i - f * h, f * g - d * i, d * h - e * g  # cofactors of the first row
    det = a * c00 + b * c01 + c * c02
    ok = (det != 0.0) & (det * 0.0 == 0.0)
    r = B.where(ok, 1.0 / B.where(ok, det, 1.0), 0.0)
    adj = [c00, c * h - b * i, b * f - c * e,
           c01, a * i - c * g, c * d - a * f,
           c02, b * g - a * h, a * e - b * d]
    return B.reshape(B.stack([v * r for v in adj], axis=-1), (-1, 3, 3))
