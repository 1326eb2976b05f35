"""The torch run: eager (the core executor with the torch stage kernels and memory),
``torch.compile``d (``jit=True``: the generic stages traced whole; inductor fuses them),
or captured in a CUDA graph (``jit="cudagraph"``).

Params come from the core sampler on the images' device, from the counters (cached
per batch and image shape) and the key, an int64 tensor copied from pinned memory:
nothing in a call waits for the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ...core.errors import InputError, InputTypeError
from ...core.executor import Flow
from ...core.plan import Plan
from ...core.run import Ragged, Run
from ...core.spec import Context
from ...core.target_io import parse
from .primitives import _DTYPES, TorchBackend, _mode, to_device


class TorchRun(Run):
    """A pipeline compiled for torch: eager (the executor with the stage kernels) or ``torch.compile``d."""

    def __init__(self, pipeline: Any, backend: TorchBackend, **kw: Any):
        super().__init__(pipeline, backend, **kw)
        self.memory = backend.memory()
        self._counters: dict[Any, Any] = {}
        self._compiled: Any = None
        self._graphs: dict[Any, Any] = {}

    # --------------------------------------------------------------- device
    def _use_device(self, dev: Any) -> None:
        self.backend.current = torch.device(dev)

    def counters(self, batch_size: int, hwc: tuple[int, int, int] | None, device: Any) -> Any:
        """The sampler's static counter vector, cached on ``device``."""
        key = (batch_size, hwc, str(device), _mode())
        t = self._counters.get(key)
        if t is None:
            c = torch.from_numpy(self.plan.sampler.counters_numpy(batch_size, hwc).astype(np.int64))
            t = to_device(c, device)
            if len(self._counters) > 32:
                self._counters.clear()
            self._counters[key] = t
        return t

    def key_tensor(self, key: tuple[int, int], device: Any) -> Any:
        """The two key words as an int64 (2,) tensor on ``device`` (pinned, non-blocking copy)."""
        return to_device(torch.tensor([int(key[0]), int(key[1])], dtype=torch.int64), device)

    def _draw(self, batch_size: int, hwc: tuple[int, int, int] | None, key: tuple[int, int]) -> dict[str, Any]:
        dev = self.backend.current
        kt = self.key_tensor(key, dev)
        return self.plan.sampler.sample(self.backend, batch_size, tuple(kt.unbind(0)), hwc,
                                        counters=self.counters(batch_size, hwc, dev))

    def sample(self, batch_size: int, image_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Draw the params of one call on the run's device (``device=``, else the last images' device)."""
        if self.backend.device is not None:
            self._use_device(self.backend.device)
        return super().sample(batch_size, image_shape)

    # -------------------------------------------------------------- calling
    def __call__(self, images: Any, labels: Any = None, *, training: bool = True, sizes: Any = None,
                 **targets: Any) -> Any:
        req = parse(images, labels, sizes, targets)
        if req is not None:  # masks, boxes, keypoints: the core's two-step call (core/targets.py)
            return self._call_targets(req, training)
        images = self.images(images, sizes)
        if not training:
            return self._evaluate(images, labels)
        B = self.backend
        if isinstance(images, Ragged):
            self._use_device(images.x.device)
            self._check_batch(self.plan, images, labels, "check")
            x = images.x
            params = self.sample(x.shape[0], tuple(x.shape[1:]))
            return self._run(self.plan, images, labels, params)
        x = B.as_images(images)
        self._use_device(x.device)
        shape = tuple(x.shape)
        if len(shape) not in (3, 4):
            return super().__call__(x, labels)  # the error message of the core
        if self.backend.jit == "cudagraph" and len(shape) == 4 and shape[0] > 0:
            return self._graph_call(x, labels)
        if self.backend.jit and len(shape) == 4 and shape[0] > 0:
            return self._jit_call(x, labels)
        self._check_batch(self.plan, x, labels, "check")  # a rejected call draws nothing (its step is not spent)
        n = shape[0] if len(shape) == 4 else 1
        params = self.sample(n, shape[1:] if len(shape) == 4 else shape)
        return self._run(self.plan, x, labels, params)

    def apply(self, images: Any, labels: Any = None, params: Mapping[str, Any] | None = None, *,
              sizes: Any = None) -> Any:
        if params is None:
            raise InputError("apply: params are required (draw them with run.sample)")
        images = self.images(images, sizes)
        x = self._buffer(images)
        self._use_device(x.device)
        return self._run(self.plan, self._input(images, x), labels, self._params_on(params, x.device))

    def _params_on(self, params: Mapping[str, Any], device: Any) -> dict[str, Any]:
        out = {}
        for k, v in params.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.to(device, non_blocking=True)
            else:
                a = np.asarray(v)
                t = torch.from_numpy(np.ascontiguousarray(a))
                out[k] = t.to(device, non_blocking=True) if t.device != torch.device(device) else t
        return out

    def _evaluate(self, images: Any, labels: Any) -> Any:
        images = self.images(images)
        x = self._buffer(images)
        self._use_device(x.device)
        return super()._evaluate(self._input(images, x), labels)

    # ----------------------------------------------------------------- core
    def _run(self, plan: Plan, images: Any, labels: Any, params: Mapping[str, Any], convert_labels: bool = True) -> Any:
        x = self._buffer(images)
        self._use_device(x.device)
        x, y, single, dtype, out_dtype, ctx = self._check_batch(plan, self._input(images, x), labels, convert_labels)
        if ctx.n == 0:
            xo = x.to(_DTYPES[out_dtype]).clone()
            return (xo, y.clone()) if labels is not None else xo
        self._check_params(plan, params, ctx.n, ctx, self._hwc(x))
        if dtype != "uint8":
            self._check_range(plan, x)
        if plan.sources:  # the synthetic samples, into the input in its dtype (uint8 stays uint8)
            x, y, ctx = plan.apply_sources(self.backend, x, y, params, ctx)
        if not (x.requires_grad and torch.is_grad_enabled()):
            xo, yo = self._eager(plan, x, y, params, ctx, dtype, out_dtype, plan.sources)
        else:
            xo, yo = self._generic(plan, x, y, params, ctx, dtype, out_dtype, plan.sources)
            xo, yo = self._own_outputs(plan, dtype, xo, yo, y)
        if yo is y and yo is not None:
            yo = yo.clone()  # labels passed through: never the caller's tensor
        return self._finish(xo, yo, labels, single)

    def _finish(self, xo: Any, yo: Any, labels: Any, single: bool) -> Any:
        if single:
            xo = xo[0]
            if yo is not None and labels is not None:
                yo = yo[0]
        return xo if labels is None else (xo, yo)

    def _generic(self, plan: Plan, x: Any, y: Any, params: Mapping[str, Any], ctx: Context, dtype: str,
                 out_dtype: str, start: int = 0) -> tuple[Any, Any]:
        """The core's numeric path on the primitives (also what ``torch.compile`` traces),
        from stage ``start`` (after the synthetic stages, where the caller ran them)."""
        B = self.backend
        xf = x.to(torch.float32)
        if dtype == "uint8":
            xf = xf * (1.0 / 255.0)
        xo, yo = plan.apply(B, xf, y, params, ctx, self.fuse, stages=(start, len(plan.stages)))
        if out_dtype == "uint8":
            xo = torch.floor(torch.clamp(xo, 0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        elif out_dtype != "float32":
            xo = xo.to(_DTYPES[out_dtype])
        return xo, yo

    def _eager(self, plan: Plan, x: Any, y: Any, params: Mapping[str, Any], ctx: Context, dtype: str,
               out_dtype: str, start: int = 0) -> tuple[Any, Any]:
        """The executor with the stage kernels and this run's memory (NCHW), from stage
        ``start``; a large CPU batch in chunks (the backend's ``chunk_bytes``; the chunked
        stages start after the synthetic ones, which the caller ran)."""
        B = self.backend
        if B.layout != "NCHW":
            return self._generic(plan, x, y, params, ctx, dtype, out_dtype, start)
        mem = self.memory
        mem.fresh_out = out_dtype == "float32"
        ex = plan.executor
        bounds = ex.chunk_bounds(B, ctx) if x.device.type == "cpu" else None

        def to_flow(xc: Any, yc: Any = None) -> Flow:
            xf, scale, owned = mem.as_float(xc, dtype)
            return Flow(xf, yc, scale, owned, finite=finite)

        finite = self._finite(plan, x, dtype)

        mem.begin()
        try:
            if bounds is not None:
                flow = ex.run_chunked(B, x, to_flow, y, params, ctx, bounds, self.fuse, mem, x.device, finite)
            else:
                flow = ex.run(B, to_flow(x, y), params, ctx, self.fuse, mem, (start, len(plan.stages)))
        finally:
            mem.end()
        xo, yo, scale = flow.x, flow.y, flow.scale
        private = mem.is_private(xo)
        is_input = xo.data_ptr() == x.data_ptr()
        if out_dtype == "uint8":
            v = xo.mul_(scale * 255.0) if private else xo * (scale * 255.0)
            xo = v.clamp_(0.0, 255.0).add_(0.5).floor_().to(torch.uint8)
        elif out_dtype == "float32":
            if private or is_input:  # never the caller's tensor nor a private buffer
                xo = xo * scale if scale != 1.0 else xo.clone()
            elif scale != 1.0:
                xo = xo.mul_(scale)
        else:
            xo = (xo * scale if scale != 1.0 else xo).to(_DTYPES[out_dtype])
        return xo, yo

    # ------------------------------------------------------------------ jit
    def _jit_options(self) -> dict[str, Any]:
        j = self.backend.jit
        opts: dict[str, Any] = {"fullgraph": True, "dynamic": False}
        if isinstance(j, str):
            opts["mode"] = j
        elif isinstance(j, dict):
            opts.update(j)
        return opts

    def _traced(self, x: Any, y: Any, counters: Any, key: Any, meta: tuple) -> tuple[Any, Any]:
        n, h, w, c, k, dtype, out_dtype, ids = meta
        if ids:  # class ids: the one-hot inside the graph (no kernels outside it)
            y = self.backend.one_hot(y.to(torch.int64), k)
        ctx = Context(n, h, w, c, k, dtype)
        hwc = (h, w, c)
        params = self.plan.sampler.sample(self.backend, ctx.n, tuple(key.unbind(0)), hwc, counters=counters)
        return self._generic(self._generic_plan, x, y, params, ctx, dtype, out_dtype)

    def _jit_call(self, x: Any, labels: Any) -> Any:
        if torch.is_inference_mode_enabled():
            # compiled code is traced and run outside inference mode (under it dynamo's guards
            # fail on the module constants); no_grad keeps it outside autograd as well
            with torch.inference_mode(False), torch.no_grad():
                return self._jit_call(x, labels)
        if self._compiled is None:
            self._generic_plan = Plan(self.pipeline.ops, self.kernels)
            self._compiled = torch.compile(self._traced, **self._jit_options())
        x4, y, single, dtype, out_dtype, ctx = self._check_batch(self.plan, x, labels, convert_labels=False)
        ids = False
        if y is not None and self.plan.changes_labels:
            if y.dim() == 1:  # the core's checks; the one-hot is traced (``_traced``)
                dt = self.backend.dtype_name(y)
                k = self.num_classes
                if not (dt.startswith("int") or dt.startswith("uint")):
                    raise InputTypeError(f"class ids must be integers, got dtype {dt}")
                if k is None:
                    raise InputError("class ids need num_classes: Pipeline(..., num_classes=K) "
                                     "(or pass soft (N, K) labels)")
                if self.backend.check_class_ids(y, k) is False:
                    raise InputError(f"class ids must lie in [0, {k}) (num_classes={k})")
                ids = True
            else:  # soft labels: the core's checks and cast
                y, k = self._labels(self.plan, y, ctx.n, False, True)
                ctx = Context(ctx.n, ctx.height, ctx.width, ctx.channels, k, ctx.dtype)
        hwc = (ctx.height, ctx.width, ctx.channels)
        key = self.key()
        self.step += 1
        counters = self.counters(ctx.n, hwc, x4.device)
        self.plan.prepare(ctx.n, hwc, ctx.num_classes)  # host constants built before tracing: no recompilation
        kt = self.key_tensor(key, x4.device)
        meta = (ctx.n, ctx.height, ctx.width, ctx.channels, ctx.num_classes, dtype, out_dtype, ids)
        xo, yo = self._compiled(x4, y, counters, kt, meta)
        return self._finish(xo, yo, labels, single)

    # ------------------------------------------------------------ CUDA graphs
    def _graph_call(self, x: Any, labels: Any) -> Any:
        """``jit="cudagraph"``: the eager call (sampling included) captured once per
        input signature in a ``torch.cuda.CUDAGraph`` and replayed; no compiler.
        Inputs are copied into the graph's static tensors, outputs cloned out."""
        if x.device.type != "cuda":
            raise InputError(f"jit='cudagraph' needs CUDA tensors, got images on {x.device}")
        x4, y, single, dtype, out_dtype, ctx = self._check_batch(self.plan, x, labels)
        sig = (tuple(x4.shape), tuple(x4.stride()), x4.dtype, str(x4.device),
               None if y is None else (tuple(y.shape), y.dtype), _mode())
        key = self.key()
        self.step += 1
        kt = self.key_tensor(key, x4.device)
        g = self._graphs.get(sig)
        if g is None:
            g = self._capture(x4, y, kt, ctx, dtype, out_dtype)
            self._graphs[sig] = g
        graph, sx, sy, sk, out, _keep = g
        sx.copy_(x4)
        if sy is not None:
            sy.copy_(y)
        sk.copy_(kt)
        graph.replay()
        xo = out[0].clone()
        yo = out[1].clone() if out[1] is not None else None
        return self._finish(xo, yo, labels, single)

    def _capture(self, x4: Any, y: Any, kt: Any, ctx: Context, dtype: str, out_dtype: str) -> tuple:
        sx = x4.clone()
        sy = y.clone() if y is not None else None
        sk = kt.clone()
        hwc = (ctx.height, ctx.width, ctx.channels)
        counters = self.counters(ctx.n, hwc, x4.device)

        def body() -> tuple[Any, Any]:
            params = self.plan.sampler.sample(self.backend, ctx.n, tuple(sk.unbind(0)), hwc, counters=counters)
            return self._eager(self.plan, sx, sy, params, ctx, dtype, out_dtype)

        side = torch.cuda.Stream(device=x4.device)
        side.wait_stream(torch.cuda.current_stream(x4.device))
        with torch.cuda.stream(side):  # warm-up: fills the constant caches and buffers
            for _ in range(2):
                body()
        torch.cuda.current_stream(x4.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = body()
        keep = list(self.memory.slots.values())  # the graph writes there: keep them alive
        return graph, sx, sy, sk, out, keep

