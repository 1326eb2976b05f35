"""The cost of a policy against the ops it chooses from: RandAugment(2, 9) on a batch, against
each op it can draw applied alone to the whole batch (p = 1), on one backend.

    python benchmarks/bench_policy.py [--backend torch] [--batch 64] [--size 224] [--repeats 7]

Target (the policies issue): RandAugment costs at most 3x its most expensive single op, not the
sum of all fourteen. Rows are timed round-robin; medians; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import augspec as aug
from augspec.core.ops import policy as P


def single_ops() -> dict[str, aug.Op]:
    """Each op of torchvision's RandAugment table at bin 9, applied to every sample."""
    from augspec.core.containers import Choice

    out = {}
    ra = aug.RandAugment(num_ops=1, magnitude=9)
    (layer,) = ra.children
    assert isinstance(layer, Choice)
    names = [n for n in P._TV_RAND if n != "Identity"]
    for name, (op,) in zip(names, layer.branches):
        out[name] = Choice(((op,),), (1.0,))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-compact", action="store_true",
                    help="torch: compact_gates=False, every op on the whole batch then a select (a device's path)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (a.batch, a.size, a.size, 3), dtype=np.uint8)
    rows = {"RandAugment(2, 9)": aug.RandAugment(num_ops=2, magnitude=9),
            "RandAugment(2, 9) timm inc1 mstd0.5": aug.from_timm("rand-m9-mstd0.5-inc1"),
            "TrivialAugmentWide": aug.TrivialAugmentWide(), "AutoAugment(imagenet)": aug.AutoAugment()}
    rows.update(single_ops())
    runs = {}
    for name, op in rows.items():
        opts = {"compact_gates": False} if a.no_compact else {}
        run = aug.Pipeline([op], seed=0).compile(a.backend, **opts)
        xb = x
        if a.backend == "torch":
            import torch

            xb = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        run(xb)
        runs[name] = (run, xb)
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(a.repeats):
        for name, (run, xb) in runs.items():
            t = time.perf_counter()
            run(xb)
            times[name].append(time.perf_counter() - t)
    med = {n: 1000 * statistics.median(v) for n, v in times.items()}
    singles = {n: v for n, v in med.items() if n in P._TV_RAND}
    worst = max(singles, key=singles.get)
    how = "gated ops on the whole batch + select" if a.no_compact else "gated ops on their samples only"
    print(f"backend {a.backend} ({how}), batch {a.batch}, {a.size}x{a.size} uint8, "
          f"load {os.getloadavg()[0]:.2f}")
    print()
    print("| pipeline | ms / batch | × most expensive single op |")
    print("|---|---:|---:|")
    for n, v in med.items():
        print(f"| {n} | {v:.1f} | {v / singles[worst]:.2f} |")
    print()
    print(f"most expensive single op: {worst} ({singles[worst]:.1f} ms); sum of the singles: "
          f"{sum(singles.values()):.1f} ms")


if __name__ == "__main__":
    main()
