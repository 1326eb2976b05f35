"""Synthetic data: how fast ``fractal`` renders, and what ``Synthetic`` costs in a pipeline.

    PYTHONPATH=src python benchmarks/bench_synthetic.py                # CPU: NumPy and torch
    PYTHONPATH=src python benchmarks/bench_synthetic.py --compile      # + torch.compile (minutes to compile)
    PYTHONPATH=src python benchmarks/bench_synthetic.py --device cuda  # a GPU (gpu_check.py calls this too)

1. **Render rate**: ``fractal`` images of ``--size``^2 x 3 per second, ``--batch`` at a time:
   the generator called directly (NumPy, torch eager, torch compiled), and through the op
   (``Synthetic(ratio=1)`` in a pipeline: uint8 in, float32 out). Targets (issue #15):
   20,000 / s at 64 x 64 on the CPU (2 cores), 1,000,000 / s on an H100.
2. **The op's cost**: a pipeline (flip, colour jitter, normalize) on ``--pipe-batch`` uint8
   images alone, with ``Synthetic(ratio)`` of a generator that costs nothing (``zeros``: the
   op's own cost: the gate, the classes, the select or row writes, the labels), and of
   ``fractal``; against the generator's own time for the ``ratio * N`` images it makes.
   Target: the op adds at most the generator's own cost. Memory: the peak bytes a call
   allocates (NumPy: ``tracemalloc``; CUDA: ``max_memory_allocated``) with and without the
   op, in batches (one batch = N x H x W x C float32).

Rows are timed round-robin (one call of each row per round), medians reported; the load
average is printed (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import augspec as aug  # noqa: E402
from augspec.core.generators.fractal import Fractal  # noqa: E402
from augspec.core.synthetic import Generator, key_words  # noqa: E402

K = 100


class Zeros(Generator):
    """A generator that costs nothing: black images (the op's own cost is what is left)."""

    name = "zeros_bench"

    def __call__(self, B: Any, labels: Any, key: Any, shape: Any, num_classes: int, real: Any = None) -> Any:
        return B.zeros((B.shape(labels)[0], *shape), "float32")


def _register() -> None:
    from augspec.core.registry import get_registry

    if "zeros_bench" not in get_registry().generators:
        aug.register_generator(Zeros)


def round_robin(rows: dict[str, Callable[[], Any]], repeats: int, sync: Callable[[], None] = lambda: None
                ) -> dict[str, float]:
    """Median seconds of each row, one call of each per round (after one warm-up call each)."""
    for f in rows.values():
        f()
    sync()
    ts: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(repeats):
        for k, f in rows.items():
            sync()
            t = time.perf_counter()
            f()
            sync()
            ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


def render_rows(device: str, n: int, size: int, compile_: bool) -> dict[str, Callable[[], Any]]:
    gen = Fractal()
    shape = (size, size, 3)
    rng = np.random.default_rng(0)
    u = rng.random((n, 2)).astype(np.float32)
    labels = (np.arange(n) % K).astype(np.int64)
    gen.prepare(shape, K)
    rows: dict[str, Callable[[], Any]] = {}
    if device == "cpu":
        from augspec.backends.numpy import NumpyBackend

        Bn = NumpyBackend()
        kn = key_words(Bn, u)
        rows["fractal, NumPy"] = lambda: gen(Bn, labels, kn, shape, K)
    try:
        import torch

        from augspec.backends.torch import TorchBackend
    except ImportError:
        return rows
    dev = torch.device(device)
    Bt = TorchBackend(device=str(dev))
    Bt.current = dev
    kt = key_words(Bt, torch.from_numpy(u).to(dev))
    lt = torch.from_numpy(labels).to(dev)
    rows["fractal, torch eager"] = lambda: gen(Bt, lt, kt, shape, K)
    if compile_:
        f = torch.compile(lambda lab, key: gen(Bt, lab, key, shape, K))
        rows["fractal, torch.compile"] = lambda: f(lt, kt)
    x = torch.zeros((n, 3, size, size), dtype=torch.uint8, device=dev)
    y = torch.zeros(n, dtype=torch.int64, device=dev)
    run = aug.Pipeline([aug.Synthetic("fractal", ratio=1.0)], num_classes=K, seed=0).compile("torch")
    rows["Synthetic(fractal, ratio=1), torch pipeline"] = lambda: run(x, y)
    return rows


def pipelines(ratio: float) -> dict[str, aug.Pipeline]:
    base = [aug.HorizontalFlip(), aug.ColorJitter(0.4, 0.4, 0.4), aug.Normalize()]
    return {
        "pipeline": aug.Pipeline(base, num_classes=K, seed=0),
        f"+ Synthetic(zeros, {ratio})": aug.Pipeline([aug.Synthetic("zeros_bench", ratio=ratio), *base],
                                                     num_classes=K, seed=0),
        f"+ Synthetic(fractal, {ratio})": aug.Pipeline([aug.Synthetic("fractal", ratio=ratio), *base],
                                                       num_classes=K, seed=0),
    }


def op_rows(backend: str, device: str, n: int, size: int, ratio: float) -> tuple[dict[str, Callable[[], Any]], Any]:
    _register()
    rng = np.random.default_rng(1)
    xn = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    yn = (np.arange(n) % K).astype(np.int64)
    gen = Fractal()
    k = int(round(ratio * n))
    u = rng.random((k, 2)).astype(np.float32)
    if backend == "numpy":
        from augspec.backends.numpy import NumpyBackend

        B = NumpyBackend()
        x, y, lab, key = xn, yn, yn[:k], key_words(B, u)
    else:
        import torch

        from augspec.backends.torch import TorchBackend

        dev = torch.device(device)
        B = TorchBackend(device=str(dev))
        B.current = dev
        x = torch.from_numpy(xn).permute(0, 3, 1, 2).contiguous().to(dev)
        y = torch.from_numpy(yn).to(dev)
        lab, key = y[:k], key_words(B, torch.from_numpy(u).to(dev))
    rows: dict[str, Callable[[], Any]] = {}
    for label, pipe in pipelines(ratio).items():
        run = pipe.compile(backend)
        rows[label] = lambda run=run: run(x, y)
    rows[f"fractal alone, {k} images"] = lambda: gen(B, lab, key, (size, size, 3), K)
    return rows, (x, y)


def peak_bytes(fn: Callable[[], Any], device: str) -> int:
    """Peak bytes allocated during one call (NumPy: tracemalloc; CUDA: the caching allocator)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def synthetic_tables(device: str = "cpu", batch: int = 1024, size: int = 64, pipe_batch: int = 256,
                     pipe_size: int = 64, ratio: float = 0.25, repeats: int = 7, compile_: bool = False) -> list[str]:
    """The two tables (markdown lines): render rates, and the op's cost and memory."""
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device.startswith("cuda"):
        import torch

        sync = torch.cuda.synchronize  # noqa: E731
    lines = [f"### fractal render rate, {size}x{size}x3, batch {batch} ({device}; load {_load()})", "",
             "| path | ms / batch | images / s |", "|---|---:|---:|"]
    med = round_robin(render_rows(device, batch, size, compile_), repeats, sync)
    for k, s in med.items():
        lines.append(f"| {k} | {s * 1e3:.1f} | {batch / s:,.0f} |")
    backends = ["numpy", "torch"] if device == "cpu" else ["torch"]
    for backend in backends:
        rows, _ = op_rows(backend, device, pipe_batch, pipe_size, ratio)
        med = round_robin(rows, repeats, sync)
        base = med["pipeline"]
        gen_s = med[[k for k in med if k.startswith("fractal alone")][0]]
        lines += ["", f"### Synthetic's cost, {backend}, batch {pipe_batch} x {pipe_size}x{pipe_size}x3 uint8, "
                  f"ratio {ratio} ({device}; load {_load()})", "",
                  "| row | ms / batch | over the pipeline (ms) | over the pipeline and the generator (ms) | peak "
                  "alloc (batches) |", "|---|---:|---:|---:|---:|"]
        one = pipe_batch * pipe_size * pipe_size * 3 * 4
        for k, s in med.items():
            over = "" if k == "pipeline" or k.startswith("fractal alone") else f"{(s - base) * 1e3:+.1f}"
            both = f"{(s - base - gen_s) * 1e3:+.1f}" if "fractal," in k and "Synthetic" in k else ""
            peak = ""
            if not k.startswith("fractal alone") and (backend == "numpy" or device.startswith("cuda")):
                peak = f"{peak_bytes(rows[k], device) / one:.2f}"
            lines.append(f"| {k} | {s * 1e3:.1f} | {over} | {both} | {peak} |")
    return lines


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pipe-batch", type=int, default=256)
    ap.add_argument("--pipe-size", type=int, default=64)
    ap.add_argument("--ratio", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows (compiling takes minutes)")
    args = ap.parse_args()
    print("\n".join(synthetic_tables(args.device, args.batch, args.size, args.pipe_batch, args.pipe_size, args.ratio,
                                     args.repeats, args.compile)))


if __name__ == "__main__":
    main()
