"""The CI version of the soak (issue 7, part 4): 1,000 calls of the compiled R2
pipeline at a tiny size, with a bound on memory growth.

The full soak (20,000 calls per backend) is ``benchmarks/soak.py``; this runs the
same code path (``--one``: one backend in a fresh interpreter, so the resident
memory is that backend's alone) and, for NumPy, also counts the bytes Python and
NumPy hold with ``tracemalloc``, which sees a leak of a few bytes per call.
No timing is asserted.
"""

from __future__ import annotations

import gc
import json
import os
import pathlib
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import augspec as aug
from augspec.recipes import r2

SOAK = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
CALLS = 1000
TRACED_CALLS = 400


def _available(name: str) -> bool:
    return any(b.name == name and b.available for b in aug.list_backends())


def _soak(backend: str, calls: int, size: int, batch: int, warmup: int = 100) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(SOAK), "--one", backend, "--calls", str(calls), "--size", str(size),
           "--batch", str(batch), "--warmup", str(warmup), "--threads", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("SOAK ")][-1]
    return json.loads(line[5:])


def _check(res: dict, calls: int) -> None:
    assert res["calls"] == calls
    assert res["median_ms"] > 0 and res["max_ms"] >= res["p99_ms"] >= res["median_ms"] >= res["p5_ms"]
    # resident memory after the run is within 5 % of what it was after the warm-up
    assert res["growth_pct"] < 5.0, res["rss_trace_mb"]
    # and the second half of the run did not climb (a leak is a steady slope, warm-up a step):
    # its highest sample is not above the first half's highest (the allocator's heap top
    # moves by a few MB from sample to sample, so single samples are compared peak to peak)
    trace = [mb for _, mb in res["rss_trace_mb"]]
    first, second = trace[: len(trace) // 2], trace[len(trace) // 2:]
    # (a leak of 10 KB per call, as a per-call constant cache once had, climbs 5 MB here)
    assert max(second) - max(first) < max(1.5, 0.005 * max(first)), res["rss_trace_mb"]


def test_soak_numpy_1000_calls():
    _check(_soak("numpy", CALLS, size=16, batch=4), CALLS)


@pytest.mark.skipif(not _available("torch"), reason="torch not available")
def test_soak_torch_1000_calls():
    _check(_soak("torch", CALLS, size=8, batch=2), CALLS)


@pytest.mark.skipif(not _available("torch"), reason="torch not available")
def test_soak_torch_chunked_and_recycled_outputs():
    """A batch big enough for the CPU chunks (7 MB of float32) and the output recycling:
    memory stays flat over 300 calls (the soak drops each output before the next call)."""
    _check(_soak("torch", 300, size=128, batch=36, warmup=30), 300)


@pytest.mark.skipif(not _available("albumentations"), reason="albumentations not available")
def test_soak_albumentations_1000_calls():
    _check(_soak("albumentations", CALLS, size=8, batch=2), CALLS)


def test_numpy_run_holds_no_memory_across_calls():
    """tracemalloc sees NumPy's buffers: once warm, more calls keep (almost) nothing.

    Python's and NumPy's internal caches churn by some 10-25 KB, and NumPy's
    dtype-name strings creep by a few bytes per call, so the bound is 120 bytes per
    call over a window after warm-up: well below keeping any array of a call (the
    smallest here is 768 bytes) or the constant-cache leak the soak once found (10 KB)."""
    run = r2(num_classes=10).compile("numpy")
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8) for _ in range(4)]
    ys = [rng.integers(0, 10, (4,)) for _ in range(4)]
    for i in range(200):
        run(xs[i % 4], ys[i % 4])
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(200):  # let the traced caches settle
            run(xs[i % 4], ys[i % 4])
        gc.collect()
        base, _ = tracemalloc.get_traced_memory()
        for i in range(TRACED_CALLS):
            run(xs[i % 4], ys[i % 4])
        gc.collect()
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert now - base < 120 * TRACED_CALLS, f"{now - base} bytes more after {TRACED_CALLS} calls"


def test_soak_script_cli_smoke(tmp_path):
    """The benchmark script itself: the table, the JSON and the exit status."""
    out_md = tmp_path / "soak.md"
    cmd = [sys.executable, str(SOAK), "--calls", "20", "--warmup", "2", "--size", "8", "--batch", "2",
           "--backends", "numpy", "--out", str(out_md)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| numpy | 20 |" in res.stdout
    text = out_md.read_text()
    assert "RSS start" in text and "p99" in text and "batch 2 of 8 x 8" in text
    bad = subprocess.run([sys.executable, str(SOAK), "--calls", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--calls" in bad.stderr
