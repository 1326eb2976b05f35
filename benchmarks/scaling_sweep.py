"""R2 on the torch backend's eager CPU path: ms per image for several batch sizes, in one line.

Run it in fresh processes, alternating two checkouts, to compare code versions
under the same drift (RESULTS.md, "Scaling"):

    for i in 1 2 3; do
        PYTHONPATH=/path/to/old/src python benchmarks/scaling_sweep.py
        PYTHONPATH=src python benchmarks/scaling_sweep.py
    done

Each batch size: 2 warm-up calls, then the median of max(7, 1024 / batch) calls,
rotating three uint8 input buffers; parameter sampling included.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from augspec.recipes import r2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="32,64,128,256")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run = r2().compile("torch", device="cpu")
    cells = []
    for n in [int(v) for v in a.batches.split(",")]:
        rng = np.random.default_rng(0)
        bufs = [torch.from_numpy(rng.integers(0, 256, (n, 3, a.size, a.size), dtype=np.uint8)) for _ in range(3)]
        labels = torch.randint(0, 1000, (n,))
        run(bufs[0], labels)
        run(bufs[1], labels)
        times = []
        for r in range(max(7, 1024 // n)):
            t = time.perf_counter()
            run(bufs[r % 3], labels)
            times.append((time.perf_counter() - t) * 1e3 / n)
        cells.append(f"batch {n}: {statistics.median(times):.3f}")
    print(f"R2 {a.size}px, ms per image | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
