"""Soak: many calls of the compiled R2 pipeline on each CPU backend (issue 7, part 4).

For each backend, in its own fresh interpreter (so one framework's memory does
not blur another's), the script compiles ``augspec.recipes.r2()``, warms up,
then makes ``--calls`` calls on uint8 batches (rotating among 8 input buffers),
and reports:

- resident memory (RSS, from /proc/self/status) after the warm-up and at the
  end, and its growth in percent (the bound is 5 %); RSS is also sampled every
  tenth of the run, so a leak shows as a steady climb rather than a plateau;
- the spread of the time per call: median, p5, p95, p99, max and the
  coefficient of variation (std / mean).

Default size: batch 8 of 32 x 32 RGB (small, so 20,000 calls per backend take
minutes, not hours, on a 2-core machine); labels are class ids over R2's 1000
classes. Backends: numpy, torch, tensorflow and albumentations (per-image part,
then ``run.batch`` for MixUp / CutMix / smoothing), where installed.

    python benchmarks/soak.py                      # 20,000 calls per backend
    python benchmarks/soak.py --calls 1000 --backends numpy,torch --json
    python benchmarks/soak.py --out benchmarks/results/soak.md

Exit status 1 if any backend's memory grew by more than ``--max-growth`` percent.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

ALL_BACKENDS = ("numpy", "torch", "tensorflow", "albumentations")


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def soak_one(backend: str, calls: int, batch: int, size: int, warmup: int, threads: int | None) -> dict[str, Any]:
    """Run the soak for one backend in this process and return the figures."""
    import numpy as np

    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from augspec.recipes import r2

    rng = np.random.default_rng(0)
    nhwc = [rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for _ in range(8)]
    ys = [rng.integers(0, 1000, (batch,)).astype(np.int64) for _ in range(8)]

    run = r2(num_classes=1000, seed=0).compile(backend)
    if backend == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        xs = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in nhwc]
        ys = [torch.from_numpy(y) for y in ys]

        def call(i: int) -> Any:
            return run(xs[i % 8], ys[i % 8])
    elif backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in nhwc]
        ys = [tf.constant(y) for y in ys]

        def call(i: int) -> Any:
            out = run(xs[i % 8], ys[i % 8])
            out[0].numpy()  # eager CPU ops are synchronous; this also guards against lazy work
            return out
    elif backend == "albumentations":
        xs = nhwc

        def call(i: int) -> Any:
            xo, yo = run(xs[i % 8], ys[i % 8])  # per-sample part, image by image
            return run.batch(xo, yo)  # MixUp / CutMix / smoothing on the batch
    else:
        xs = nhwc

        def call(i: int) -> Any:
            return run(xs[i % 8], ys[i % 8])

    t0 = time.perf_counter()
    for i in range(warmup):
        call(i)
    warm_s = time.perf_counter() - t0
    gc.collect()
    rss_start = rss_bytes()
    samples = [(0, rss_start)]
    every = max(1, calls // 10)
    times = []
    perf = time.perf_counter
    for i in range(calls):
        t = perf()
        out = call(i)
        times.append(perf() - t)
        del out
        if (i + 1) % every == 0:
            samples.append((i + 1, rss_bytes()))
    gc.collect()
    rss_end = rss_bytes()
    times_ms = sorted(t * 1e3 for t in times)
    mean = statistics.fmean(times_ms)
    return {
        "backend": backend,
        "calls": calls,
        "batch": batch,
        "size": size,
        "warmup_calls": warmup,
        "warmup_s": warm_s,
        "rss_start_mb": rss_start / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_peak_mb": max(r for _, r in samples) / 2**20,
        "growth_pct": 100.0 * (rss_end - rss_start) / rss_start,
        "rss_trace_mb": [(i, r / 2**20) for i, r in samples],
        "median_ms": _percentile(times_ms, 0.5),
        "p5_ms": _percentile(times_ms, 0.05),
        "p95_ms": _percentile(times_ms, 0.95),
        "p99_ms": _percentile(times_ms, 0.99),
        "max_ms": times_ms[-1],
        "mean_ms": mean,
        "cv": (statistics.pstdev(times_ms) / mean) if mean > 0 else float("nan"),
        "total_s": sum(times),
    }


def available_backends() -> list[str]:
    import augspec

    return [b.name for b in augspec.list_backends() if b.name in ALL_BACKENDS and b.available]


def run_in_subprocess(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", backend, "--calls", str(args.calls),
           "--batch", str(args.batch), "--size", str(args.size), "--warmup", str(args.warmup)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"backend": backend, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("SOAK ")][-1]
    return json.loads(line[5:])


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    from augspec.bench import cpu_name

    when = datetime.datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Z %Y")
    cpu = cpu_name()
    lines = [
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}; date: {when}.",
        f"Recipe R2 (`augspec.recipes.r2()`, K = 1000), batch {args.batch} of {args.size} x {args.size} RGB uint8, "
        f"{args.calls} calls per backend after {args.warmup} warm-up calls, each backend in a fresh process; "
        "params drawn per sample.",
        "",
        "| backend | calls | RSS start (MB) | RSS end (MB) | growth | median (ms) | p5 | p95 | p99 | max | CV | "
        "vs numpy (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = next((r["median_ms"] for r in results if r.get("backend") == "numpy" and "error" not in r), None)
    for r in results:
        if "error" in r:
            lines.append(f"| {r['backend']} | failed: {r['error']} |" + " |" * 10)
            continue
        ratio = f"{r['median_ms'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {r['backend']} | {r['calls']} | {r['rss_start_mb']:.1f} | {r['rss_end_mb']:.1f} | "
            f"{r['growth_pct']:+.2f} % | {r['median_ms']:.3f} | {r['p5_ms']:.3f} | {r['p95_ms']:.3f} | "
            f"{r['p99_ms']:.3f} | {r['max_ms']:.2f} | {r['cv']:.2f} | {ratio} |")
    lines += ["", "RSS every tenth of the run (MB):", ""]
    for r in results:
        if "error" not in r:
            lines.append(f"- {r['backend']}: " + ", ".join(f"{mb:.1f}" for _, mb in r["rss_trace_mb"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000, help="calls per backend (default 20000)")
    ap.add_argument("--batch", type=int, default=8, help="images per call (default 8)")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    ap.add_argument("--warmup", type=int, default=100, help="warm-up calls before the first RSS reading")
    ap.add_argument("--backends", default="", help="comma-separated (default: every available CPU backend)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads for torch (default: its own)")
    ap.add_argument("--max-growth", type=float, default=5.0, help="allowed RSS growth in percent (default 5)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON lines")
    ap.add_argument("--out", default="", help="also write the markdown table to this file")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: soak one backend in this process
    args = ap.parse_args(argv)
    if args.calls < 1 or args.batch < 1 or args.size < 1:
        ap.error("--calls, --batch and --size must be positive")

    if args.one:
        res = soak_one(args.one, args.calls, args.batch, args.size, args.warmup, args.threads or None)
        print("SOAK " + json.dumps(res))
        return 0

    names = [b for b in args.backends.split(",") if b] if args.backends else available_backends()
    results = []
    for b in names:
        print(f"soaking {b} ({args.calls} calls) ...", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(b, args))
    if args.json:
        for r in results:
            print(json.dumps(r))
    else:
        print(markdown(results, args))
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Soak: R2 on each CPU backend\n\n")
            f.write(f"Command: `python benchmarks/soak.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n")
            f.write(markdown(results, args))
    bad = [r for r in results if "error" in r or r["growth_pct"] > args.max_growth]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
