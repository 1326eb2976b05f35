"""The one executor: runs a plan's stages on any backend.

For each stage it calls the backend's *stage kernel* for that stage kind, if one
is registered (``registry.stage_kernel_name(kind)``, e.g. torch's fused warp),
else the planner's generic stage, written once against ``B``. A stage kernel is

    kernel(call: StageCall, flow: Flow) -> Flow | None

and may decline (None) where it has no fast path; the generic stage then runs.

``Flow`` is the batch between stages: the images' value is ``scale * x`` (a
backend may fold the 1/255 of a uint8 input into the first linear stage instead
of a pass of its own: generic stages get ``scale == 1``, the executor multiplies
first), and ``owned`` says that ``x`` is scratch memory of this call that a stage
may overwrite (never the caller's input).

A stage that sets the size (crops, resizes, pads) changes the context of the stages
after it (``Plan.stage_contexts``). Chunking is an executor policy a backend switches on (``Backend.chunk_bytes``):
a batch larger than that many float32 bytes runs its leading *samplewise* stages
(the per-sample families whose every op declares ``samplewise``, without a
registered op kernel, which could look across the batch) chunk by chunk, so each
chunk's intermediates stay in the cache; the params are drawn for the whole batch
first and sliced, so the values do not change. A backend whose mix stage kernel
has a ``chunked`` attribute runs the mix right after that prefix chunk by chunk
too. The memory the chunks write is the backend's ``memory`` object (``Memory``).
A prefix with a crop or resize writes chunks of its output size; a batch of images of
different sizes is not chunked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .registry import stage_kernel_name
from .spec import Context

#: the stage kinds whose ops act on each sample alone (when every op says ``samplewise``)
SAMPLEWISE_KINDS = ("geometric", "color", "pixel", "region", "feature")


@dataclass
class Flow:
    """The batch between stages: value ``scale * x``; ``owned``: ``x`` may be overwritten;
    ``finite``: ``x`` holds no NaN or inf (integer input images cannot, and ops map finite
    values to finite values), so a blend may skip the select that keeps NaN from leaking."""

    x: Any
    y: Any
    scale: float = 1.0
    owned: bool = False
    finite: bool = False


@dataclass
class StageCall:
    """What a stage kernel knows besides the batch: the plan, the stage, its index, the
    params and sizes, whether it writes the call's result (``last``) and where (``out``)."""

    plan: Any
    B: Any
    stage: Any
    index: int
    params: Mapping[str, Any]
    ctx: Context
    fuse: bool
    memory: Any
    last: bool
    out: Any = None


class Memory:
    """Where stages write (a backend's ``memory()`` may return a subclass): the default
    allocates nothing ahead and keeps nothing, for backends whose arrays are values."""

    def begin(self) -> None:
        """A call starts."""

    def end(self) -> None:
        """A call ended: forget its per-call state."""

    def whole(self, shape: tuple[int, ...], device: Any) -> Any:
        """A float32 output of ``shape`` that chunks write slices of (chunking backends only)."""
        raise NotImplementedError

    def scratch(self, tag: str, shape: tuple[int, ...], device: Any) -> Any:
        """A private float32 buffer (chunking backends only)."""
        raise NotImplementedError

    def copy_into(self, dst: Any, src: Any) -> Any:
        """Write ``src`` into the slice ``dst`` (chunking backends only)."""
        raise NotImplementedError


def samplewise_prefix(plan: Any) -> int:
    """The end of the stages, after the leading synthetic ones, that act on each sample alone
    (see the module notes)."""
    k = plan.sources  # the synthetic stages come first (``Plan._stages``)
    for st in plan.stages[k:]:
        if st.kind not in SAMPLEWISE_KINDS or not all(
                getattr(lf.op, "samplewise", False) and lf.op.name not in plan.kernels for lf in st.leaves):
            break
        k += 1
    return k


class Executor:
    """Runs the stages of ``plan`` with the stage kernels of its kernel table."""

    def __init__(self, plan: Any):
        self.plan = plan
        self.stage_kernels = {kind: plan.kernels.get(stage_kernel_name(kind)) for kind in
                              {st.kind for st in plan.stages}}
        self.sources = plan.sources
        self.samplewise_prefix = samplewise_prefix(plan)

    # ------------------------------------------------------------------ whole
    def run(self, B: Any, flow: Flow, params: Mapping[str, Any], ctx: Context, fuse: bool = True,
            memory: Any = None, stages: tuple[int, int] | None = None, out: Any = None) -> Flow:
        """Stages ``range(*stages)`` (all by default). With ``out`` the last writing stage
        writes the result there (a stage kernel that cannot is followed by a copy)."""
        plan = self.plan
        lo, hi = stages if stages is not None else (0, len(plan.stages))
        writes = [i for i in range(lo, hi) if plan.stages[i].kind != "label"]
        last = writes[-1] if writes else -1
        mem = memory if memory is not None else _NO_MEMORY
        ctxs = plan.stage_contexts(B, ctx) if plan.sets_size or not isinstance(ctx.height, int) else None
        for i in range(lo, hi):
            st = plan.stages[i]
            if ctxs is not None:
                ctx = ctxs[i]
            kernel = self.stage_kernels.get(st.kind)
            res = None
            if kernel is not None:
                res = kernel(StageCall(plan, B, st, i, params, ctx, fuse, mem, i == last, out), flow)
            if res is None:
                if flow.scale != 1.0:
                    flow = Flow(flow.x * flow.scale, flow.y, 1.0, True, flow.finite)
                generic = getattr(plan, "_" + st.kind)
                if st.kind in ("mix", "color"):  # finite values need no select (a blend, a colour map)
                    got = generic(B, st, flow.x, flow.y, params, ctx, fuse, finite=flow.finite)
                elif st.kind in ("pixel", "geometric", "synthetic"):  # they may write the rows they change in place
                    # (never the stage that writes the result: a backend's scratch is not returned)
                    got = generic(B, st, flow.x, flow.y, params, ctx, fuse, owned=flow.owned and i != last)
                else:
                    got = generic(B, st, flow.x, flow.y, params, ctx, fuse)
                x, y = got[0], got[1]
                if st.clamp and st.kind != "pixel":  # a pixel stage clamps what its op wrote (Plan._pixel)
                    x = B.clip(x, 0.0, 1.0)
                # a generic stage's output may alias its input or a param, unless it says it owns it
                res = Flow(x, y, 1.0, len(got) > 2 and got[2] and not (st.clamp and st.kind != "pixel"), flow.finite)
            flow = res
        if out is not None and flow.x is not out:
            flow = replace(flow, x=mem.copy_into(out, flow.x))
        return flow

    # ---------------------------------------------------------------- chunked
    def chunk_bounds(self, B: Any, ctx: Context) -> list[int] | None:
        """The chunk edges of a batch under the backend's ``chunk_bytes`` policy, else None."""
        limit = getattr(B, "chunk_bytes", None)
        if not limit or self.samplewise_prefix == self.sources or not isinstance(ctx.height, int):
            return None  # (images of different sizes: one whole batch)
        per = ctx.channels * ctx.height * ctx.width * 4
        if ctx.n * per <= limit:
            return None
        pieces = -(-ctx.n * per // limit)
        return [j * ctx.n // pieces for j in range(pieces + 1)]  # balanced: sizes differ by one at most

    def run_chunked(self, B: Any, x: Any, to_flow: Any, y: Any, params: Mapping[str, Any], ctx: Context,
                    bounds: list[int], fuse: bool, memory: Any, device: Any, finite: bool = False) -> Flow:
        """The samplewise prefix chunk by chunk (``to_flow(x[lo:hi])`` makes a chunk's input
        flow), a chunkable mix after it likewise, then the rest on the whole batch; ``finite``
        as ``Flow.finite`` of the whole batch. The leading synthetic stages are the caller's,
        run before on the whole input (``Plan.apply_sources``): a generator is called once."""
        plan = self.plan
        k = self.samplewise_prefix
        end = plan.stage_contexts(B, ctx)[k]  # the prefix's output size (crops and resizes set it)
        shape = (ctx.n, *_with_size(B, B.shape(x)[1:], end.height, end.width))
        mix = plan.stages[k] if k < len(plan.stages) else None
        mix_kernel = self.stage_kernels.get("mix") if mix is not None and mix.kind == "mix" else None
        chunked_mix = getattr(mix_kernel, "chunked", None)
        dest = memory.scratch("prefix", shape, device) if chunked_mix is not None else memory.whole(shape, device)
        keys = [d.key for d in plan.sampler.draws]
        scale = 1.0
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            pc = {key: params[key][lo:hi] for key in keys}
            cc = replace(ctx, n=hi - lo)
            memory.begin()
            try:
                scale = self.run(B, to_flow(x[lo:hi]), pc, cc, fuse, memory, (self.sources, k),
                                 out=dest[lo:hi]).scale
            finally:
                memory.end()
        if chunked_mix is not None:
            out = memory.whole(shape, device)
            call = StageCall(plan, B, mix, k, params, end, fuse, memory, False)
            y = chunked_mix(call, dest, out, y, bounds, finite)
            dest, k = out, k + 1
        return self.run(B, Flow(dest, y, scale, True, finite), params, ctx, fuse, memory, (k, len(plan.stages)))


def _with_size(B: Any, one: tuple[int, ...], h: int, w: int) -> tuple[int, ...]:
    """One image's shape ``one`` in ``B``'s layout with height ``h`` and width ``w``."""
    return (h, w, one[2]) if B.layout == "NHWC" else (one[0], h, w)


_NO_MEMORY = Memory()
