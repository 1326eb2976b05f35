"""Recipe R2 (RECIPES.md) on the CPU: augspec's torch backend side by side with
kornia + timm Mixup, torchvision v2 (per image, and batch-shared), and
albumentations + timm Mixup, in one process; then the scaling sweep.

    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/bench_torch.py            # full
    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/bench_torch.py --quick    # smoke run

Random uint8 images (several buffers in rotation), class-id labels, K = 1000.
Each row: median of ``--repeats`` timed calls after 2 warm-up calls, parameter
sampling included. Prints markdown tables; ``--out FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from augspec.bench import cpu_name  # noqa: E402
from augspec.recipes import IMAGENET_MEAN, IMAGENET_STD, r2  # noqa: E402

K = 1000


def timeit(fn: Callable[[int], Any], repeats: int, warmup: int = 2) -> float:
    for i in range(warmup):
        fn(i)
    ts = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def make_inputs(n: int, size: int, buffers: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g) for _ in range(buffers)]
    ys = [torch.randint(0, K, (n,), generator=g) for _ in range(buffers)]
    return xs, ys


# ---------------------------------------------------------------- the peers

def augspec_fn(n: int, size: int, jit: Any = False):
    run = r2(num_classes=K, seed=0).compile("torch", jit=jit)
    xs, ys = make_inputs(n, size)
    return lambda i: run(xs[i % 3], ys[i % 3])


def timm_mixup():
    from timm.data import Mixup

    return Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=K, mode="elem")


def kornia_fn(n: int, size: int):
    import kornia.augmentation as KA

    seq = KA.AugmentationSequential(
        KA.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), 5), KA.RandomHorizontalFlip(),
        KA.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0), KA.RandomErasing(p=1.0),
        KA.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)))
    mix = timm_mixup()
    xs, ys = make_inputs(n, size)

    def f(i):
        x = seq(xs[i % 3].float() / 255.0)
        return mix(x, ys[i % 3])

    return f


def _tv_transforms():
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=1.0),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _tv_mix():
    from torchvision.transforms import v2

    return v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=K), v2.CutMix(alpha=1.0, num_classes=K)])


def torchvision_per_image_fn(n: int, size: int):
    tf, mix = _tv_transforms(), _tv_mix()
    xs, ys = make_inputs(n, size)

    def f(i):
        x = torch.stack([tf(img) for img in xs[i % 3]])  # per-sample params need a loop
        x, y = mix(x, ys[i % 3])
        return x, y * 0.9 + 0.1 / K

    return f


def torchvision_batch_fn(n: int, size: int):
    tf, mix = _tv_transforms(), _tv_mix()
    xs, ys = make_inputs(n, size)

    def f(i):
        x = tf(xs[i % 3])  # ONE set of params for the whole batch
        x, y = mix(x, ys[i % 3])
        return x, y * 0.9 + 0.1 / K

    return f


def albumentations_fn(n: int, size: int):
    import albumentations as A

    comp = A.Compose([
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), shear=(-5, 5), p=1.0),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=1.0),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.1, 0.5), hole_width_range=(0.1, 0.5), p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    mix = timm_mixup()
    xs, ys = make_inputs(n, size)
    hwc = [[np.ascontiguousarray(img.permute(1, 2, 0).numpy()) for img in x] for x in xs]

    def f(i):
        out = np.stack([comp(image=img)["image"] for img in hwc[i % 3]])
        x = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
        return mix(x, ys[i % 3])

    return f


PEERS = [
    ("augspec torch eager", "per sample", lambda n, s: augspec_fn(n, s)),
    ("augspec torch jit=True", "per sample", lambda n, s: augspec_fn(n, s, jit=True)),
    ("kornia + timm Mixup", "per sample", kornia_fn),
    ("torchvision v2 per image + MixUp/CutMix", "per sample (mix: per batch)", torchvision_per_image_fn),
    ("torchvision v2 batch-shared + MixUp/CutMix", "SHARED by the batch", torchvision_batch_fn),
    ("albumentations + timm Mixup", "per sample", albumentations_fn),
]


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def r2_table(n: int, size: int, repeats: int, skip: set[str]) -> list[str]:
    """Build every row, warm each up, then time them round-robin (one call of each
    per round): load drift on a shared machine then hits every row alike."""
    made, rows = [], {}
    for name, params, make in PEERS:
        if any(s in name for s in skip):
            continue
        try:
            t0 = time.perf_counter()
            f = make(n, size)
            f(0)  # the first call (compilation for jit)
            first = time.perf_counter() - t0
            f(1)
            made.append((name, params, f, f"first call {first:.1f} s" if "jit" in name else ""))
        except Exception as e:  # a missing peer is reported, not fatal
            rows[name] = (params, None, f"{type(e).__name__}: {e}"[:80])
    times: dict[str, list[float]] = {name: [] for name, *_ in made}
    for r in range(repeats):
        for name, _, f, _ in made:
            t = time.perf_counter()
            f(r + 2)
            times[name].append(time.perf_counter() - t)
    for name, params, _, note in made:
        ms = statistics.median(times[name]) * 1e3
        rows[name] = (params, ms, note)
        print(f"  {name}: {ms:.1f} ms", file=sys.stderr, flush=True)
    base = rows.get("augspec torch eager", (None, None))[1]
    lines = [f"### R2, batch {n}, {size}x{size}, uint8 in, float32 out (CPU)", "",
             f"Median of {repeats} rounds; each round times one call of every row in turn.", "",
             "| pipeline | params | ms / batch | ms / image | x augspec eager (time ratio) | note |",
             "|---|---|---:|---:|---:|---|"]
    for name, params, _ in PEERS:
        if name not in rows:
            continue
        params, ms, note = rows[name]
        if ms is None:
            lines.append(f"| {name} | {params} | - | - | - | {note} |")
        else:
            ratio = f"{ms / base:.2f}" if base else "-"
            lines.append(f"| {name} | {params} | {ms:.1f} | {ms / n:.3f} | {ratio} | {note} |")
    return lines


def scaling_table(repeats: int, batches: list[int], sizes: list[int], jit: bool) -> list[str]:
    jit_cols = " jit ms / batch | jit ms / image |" if jit else ""
    lines = ["### Scaling (augspec torch, R2, CPU)", "",
             "| batch | size | eager ms / batch | eager ms / image |" + jit_cols,
             "|---:|---:|---:|---:|" + ("---:|---:|" if jit else "")]
    for size, n in [(224, b) for b in batches] + [(s, 64) for s in sizes if s != 224]:
        ms = timeit(augspec_fn(n, size), repeats)
        row = f"| {n} | {size} | {ms:.2f} | {ms / n:.3f} |"
        if jit:
            f = augspec_fn(n, size, jit=True)
            f(0)
            mj = timeit(f, repeats)
            row += f" {mj:.2f} | {mj / n:.3f} |"
        lines.append(row)
        print("  " + row, file=sys.stderr, flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="batch 8, 64 px, 3 repeats, no jit, short sweep")
    ap.add_argument("--no-jit", action="store_true", help="skip torch.compile rows (compilation takes minutes)")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-jit", action="store_true", help="also time jit=True in the sweep (one compile per row)")
    ap.add_argument("--skip", default="", help="comma-separated substrings of peer names to skip")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    a = ap.parse_args()
    skip = {s for s in a.skip.split(",") if s}
    if a.quick:
        a.batch, a.size, a.repeats = 8, 64, 3
    if a.no_jit or a.quick:
        skip.add("jit")
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    lines = [f"Machine: {machine()}  ", f"Date: {date}", ""]
    lines += r2_table(a.batch, a.size, a.repeats, skip)
    if not a.no_sweep:
        batches = [1, 8, 32] if a.quick else [1, 8, 32, 64, 128, 256]
        sizes = [64] if a.quick else [64, 224, 512]
        lines += [""] + scaling_table(a.repeats, batches, sizes, jit=a.sweep_jit)
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
