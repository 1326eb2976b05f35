"""Recipe R2 (RECIPES.md) on the CPU: augspec's JAX backend beside augspec's torch
backend (eager), in one process, on the same images.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_jax.py              # batch 64, 224 x 224
    PYTHONPATH=src .venv/bin/python benchmarks/bench_jax.py --batch 4 --size 64 --repeats 1   # smoke

- torch: ``r2(...).compile("torch")``, NCHW uint8 torch tensors, int64 class ids
  (as ``bench_torch.py``'s "augspec torch eager" row).
- JAX: ``r2(...).compile("jax")``, NHWC uint8 JAX arrays already on the CPU device,
  int32 class ids; every timed call ends with ``jax.block_until_ready`` on the result.
  The first call (trace + XLA compile) is reported apart and not timed.

Three input buffers in rotation, parameter sampling inside every timed call, 2
warm-up calls, then ``--repeats`` rounds that time one call of each row in turn
(drift hits both rows alike); the median is reported. If ``compile("jax")`` or a
JAX call fails, the row says so and the script still prints the torch row.
The issue's target: the JAX row within 1.5x of the torch row's time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from augspec.bench import cpu_name  # noqa: E402
from augspec.recipes import r2  # noqa: E402

K = 1000
N_BUFFERS = 3
TARGET = 1.5


def _err(e: BaseException, n: int = 160) -> str:
    text = " ".join(str(e).split()).replace("|", "/")
    return f"{type(e).__name__}: {text}"[:n]


def torch_row(xs: list[np.ndarray], ys: list[np.ndarray]) -> Callable[[int], Any]:
    run = r2(num_classes=K, seed=0).compile("torch")
    tx = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in xs]
    ty = [torch.from_numpy(y.astype(np.int64)) for y in ys]
    return lambda i: run(tx[i % N_BUFFERS], ty[i % N_BUFFERS])


def jax_row(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[Callable[[int], Any], str]:
    """The timed JAX step (it blocks until the result is computed), and a note."""
    import jax

    run = r2(num_classes=K, seed=0).compile("jax")
    dev = jax.devices("cpu")[0]
    jx = [jax.device_put(x, dev) for x in xs]
    jy = [jax.device_put(y.astype(np.int32), dev) for y in ys]
    jax.block_until_ready((jx, jy))

    def step(i: int) -> Any:
        return jax.block_until_ready(run(jx[i % N_BUFFERS], jy[i % N_BUFFERS]))

    return step, f"jax {jax.__version__}, {dev.platform}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    n, s = a.batch, a.size
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8) for _ in range(N_BUFFERS)]
    ys = [rng.integers(0, K, (n,)) for _ in range(N_BUFFERS)]

    steps: dict[str, Callable[[int], Any]] = {}
    notes: dict[str, str] = {}
    steps["augspec torch eager"] = torch_row(xs, ys)
    steps["augspec torch eager"](0)
    notes["augspec torch eager"] = f"NCHW uint8 torch tensor, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    jname = 'augspec jax (compile("jax"), jitted call)'
    try:
        step, note = jax_row(xs, ys)
        t0 = time.perf_counter()
        out = step(0)  # trace + XLA compile
        first = time.perf_counter() - t0
        img = out[0] if isinstance(out, (tuple, list)) else out
        if tuple(img.shape) != (n, s, s, 3) or str(img.dtype) != "float32":
            raise RuntimeError(f"unexpected output {tuple(img.shape)} {img.dtype}")
        steps[jname] = step
        notes[jname] = f"NHWC uint8 JAX array on the CPU, {note}; first call (trace + compile) {first:.1f} s"
    except Exception as e:  # the backend is being written: report, do not fail the run
        notes[jname] = f"compile(\"jax\") or its call failed: {_err(e)}"
    for name in list(steps):
        try:
            for i in range(1, 1 + a.warmup):
                steps[name](i)
        except Exception as e:
            if name != jname:
                raise
            del steps[name]
            notes[jname] = f"a JAX call after the first failed: {_err(e)}"
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(a.repeats):
        for name, f in steps.items():
            t = time.perf_counter()
            f(r + 1 + a.warmup)
            times[name].append(time.perf_counter() - t)
    ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    for name, v in ms.items():
        print(f"  {name}: {v:.2f} ms", file=sys.stderr, flush=True)

    base = ms.get("augspec torch eager")
    date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"Machine: {cpu_name()}, {os.cpu_count()} cores (load average {load:.2f} at the end)  ",
             f"Date: {date}", "",
             f"### R2 JAX vs torch, batch {n}, {s}x{s}, uint8 in, float32 out (CPU)", "",
             f"Median of {a.repeats} rounds after {a.warmup} warm-ups; each round times one call of every row in turn.",
             "", "| row | params | ms / batch | ms / image | x augspec torch eager (time ratio) | note |",
             "|---|---|---:|---:|---:|---|"]
    for name in ("augspec torch eager", jname):
        if name in ms:
            ratio = f"{ms[name] / base:.2f}" if base else "-"
            lines.append(f"| {name} | per sample | {ms[name]:.2f} | {ms[name] / n:.4f} | {ratio} | {notes[name]} |")
        else:
            lines.append(f"| {name} | per sample | - | - | - | {notes[name]} |")
    lines.append("")
    if jname in ms and base:
        q = ms[jname] / base
        lines.append(f"JAX / torch eager = {q:.2f} (target <= {TARGET}): {'met' if q <= TARGET else 'NOT met'}.")
    else:
        lines.append("JAX row not timed: " + notes[jname])
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
