"""R2 (RECIPES.md) through augspec's albumentations backend vs the same pipeline written
by hand in albumentations, side by side in one process; plus the agreement table
(albumentations backend, and stock albumentations transforms, vs the NumPy reference
with ranges pinned to one value).

    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/bench_albumentations.py            # both
    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/bench_albumentations.py --runs 7 --images 64
    ... --only agreement | --only speed

Per-image params are drawn per sample on both sides. The batch part (MixUp or CutMix
+ label smoothing, batch 64) runs on the collated batch: augspec's NumPy batch run,
and timm's Mixup on torch tensors where timm is importable.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import cv2  # noqa: E402

import augspec as aug  # noqa: E402
from augspec.recipes import IMAGENET_MEAN, IMAGENET_STD, r2  # noqa: E402


def hand_written() -> A.Compose:
    return A.Compose([
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), shear=(-5, 5),
                 interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=1.0),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.1, 0.5), hole_width_range=(0.1, 0.5),
                        fill=0, p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ], seed=0)


def timeit(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def speed(runs: int, n: int, size: int) -> list[str]:
    rng = np.random.default_rng(0)
    bufs = [rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for _ in range(3)]
    labels = rng.integers(0, 1000, n)
    run = r2(num_classes=1000).compile("albumentations")
    comp = hand_written()
    state = {"i": 0}

    def batch() -> np.ndarray:
        state["i"] += 1
        return bufs[state["i"] % len(bufs)]

    def ours_images():
        x = batch()
        return [run(img) for img in x]

    def hand_images():
        x = batch()
        return [comp(image=img)["image"] for img in x]

    def ours_full():
        return run.collate([(run(img), int(lbl)) for img, lbl in zip(batch(), labels)])

    rows = []
    t_ours = timeit(ours_images, runs)
    t_hand = timeit(hand_images, runs)
    rows.append(("per-image part (steps 1-5), per sample", t_hand, t_ours))
    try:
        import torch
        from timm.data import Mixup

        mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=1000,
                    mode="elem")
        lab_t = torch.as_tensor(labels)

        def hand_full():
            x = np.stack([comp(image=img)["image"] for img in batch()])
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            return mix(xt, lab_t)

        peer = "albumentations + timm Mixup (torch, CPU)"
    except Exception:  # timm absent: a hand-written NumPy MixUp stands in
        def hand_full():
            x = np.stack([comp(image=img)["image"] for img in batch()])
            perm = rng.permutation(n)
            lam = rng.beta(0.8, 0.8, n).astype(np.float32)
            return lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]

        peer = "albumentations + NumPy MixUp"
    t_of = timeit(ours_full, runs)
    t_hf = timeit(hand_full, runs)
    rows.append((f"full R2 (+ collate, MixUp/CutMix, smoothing) vs {peer}", t_hf, t_of))

    # where the time of the augspec path goes: the kernels themselves vs the rest
    img = bufs[0][0]
    m = np.array([[1.0, 0.05, 2.0], [-0.05, 1.0, 1.0]], np.float32)
    c = np.array([[1.1, 0.1, 0.0, 3.0], [0.0, 0.9, 0.1, 2.0], [0.1, 0.0, 1.0, 1.0]], np.float32)
    norm = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def kernels():
        o = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        cv2.mean(o)
        o = cv2.transform(o, c)
        o[10:60, 20:70] = 0
        return norm.apply(o)

    t_k = timeit(lambda: [kernels() for _ in range(n)], runs)
    out = [
        "| row | params | hand-written albumentations (ms / batch) | augspec `compile(\"albumentations\")` "
        "(ms / batch) | augspec / hand |",
        "|---|---|---|---|---|",
    ]
    for name, th, to in rows:
        out.append(f"| {name} | per sample | {th * 1e3:.1f} | {to * 1e3:.1f} | {to / th:.2f} |")
    out.append("")
    out.append(f"OpenCV kernels alone (warp + mean + transform + fill + normalize) for the same {n} images: "
               f"{t_k * 1e3:.1f} ms; augspec's own per-image overhead (draws, matrices, dispatch): "
               f"{(t_ours - t_k) * 1e3 / n * 1e3:.0f} us per image.")
    return out


def pinned_cases() -> dict[str, tuple[list, A.BasicTransform | None]]:
    c = cv2.BORDER_CONSTANT
    return {
        "rotate 10": ([aug.Affine(rotate=(10, 10))], A.Affine(rotate=(10, 10), border_mode=c, p=1)),
        "translate 0.1": ([aug.Affine(translate=(0.1, 0.1))],
                          A.Affine(translate_percent=(0.1, 0.1), border_mode=c, p=1)),
        "scale 1.2": ([aug.Affine(scale=(1.2, 1.2))], A.Affine(scale=(1.2, 1.2), border_mode=c, p=1)),
        "shear 5": ([aug.Affine(shear=(5, 5))], A.Affine(shear={"x": (5, 5), "y": (0, 0)}, border_mode=c, p=1)),
        "rotate 10, translate 0.1, scale 1.2, shear 5": (
            [aug.Affine(rotate=(10, 10), translate=(0.1, 0.1), scale=(1.2, 1.2), shear=(5, 5))],
            A.Affine(rotate=(10, 10), translate_percent=(0.1, 0.1), scale=(1.2, 1.2),
                     shear={"x": (5, 5), "y": (0, 0)}, border_mode=c, p=1)),
        "horizontal flip": ([aug.HorizontalFlip(p=1.0)], A.HorizontalFlip(p=1)),
        "brightness 1.2": ([aug.Brightness((1.2, 1.2))],
                           A.ColorJitter(brightness=(1.2, 1.2), contrast=(1, 1), saturation=(1, 1), hue=(0, 0), p=1)),
        "contrast 0.7": ([aug.Contrast((0.7, 0.7))],
                         A.ColorJitter(brightness=(1, 1), contrast=(0.7, 0.7), saturation=(1, 1), hue=(0, 0), p=1)),
        "saturation 1.3": ([aug.Saturation((1.3, 1.3))],
                           A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1.3, 1.3), hue=(0, 0), p=1)),
        "hue 0.1 (YIQ, augspec's default)": ([aug.Hue((0.1, 0.1))],
                                             A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1),
                                                           hue=(0.1, 0.1), p=1)),
        "hue 0.1 (HSV)": ([aug.Hue((0.1, 0.1), mode="hsv")],
                          A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=(0.1, 0.1), p=1)),
        "colour jitter b1.2 c0.8 s1.3 h0.05 (HSV)": (
            [aug.ColorJitter(brightness=(1.2, 1.2), contrast=(0.8, 0.8), saturation=(1.3, 1.3), hue=(0.05, 0.05),
                             hue_mode="hsv")],
            A.ColorJitter(brightness=(1.2, 1.2), contrast=(0.8, 0.8), saturation=(1.3, 1.3), hue=(0.05, 0.05), p=1)),
        "normalize (ImageNet)": ([aug.Normalize()], A.Normalize()),
    }


def agreement(size: int = 224) -> list[str]:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(raw, (0, 0), 3.0)
    smooth = np.floor((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255 + 0.5).astype(np.uint8)
    noise = raw.astype(np.uint8)
    out = [
        f"Images {size}x{size} RGB uint8; differences in uint8 levels (after Normalize: times std * 255). "
        "'smooth': blurred noise stretched to 0..255 (natural-image-like); 'noise': i.i.d. uniform pixels "
        "(worst case for interpolation). Border pixels included.",
        "",
        "| pinned spec | augspec backend vs NumPy, smooth: max / mean | noise: max / mean "
        "| stock albumentations vs NumPy, smooth: max / mean |",
        "|---|---|---|---|",
    ]
    for name, (ops, stock) in pinned_cases().items():
        pipe = aug.Pipeline(ops, seed=0)
        ra, rn = pipe.compile("albumentations"), pipe.compile("numpy")
        scale = 255.0 * np.asarray(IMAGENET_STD) if any(isinstance(o, aug.Normalize) for o in ops) else None

        def diff(a, b, scale=scale):
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            return d * scale if scale is not None else (d if a.dtype == np.uint8 else d * 255)

        cells = []
        for img in (smooth, noise):
            d = diff(ra(img), rn(img))
            cells.append(f"{d.max():.2f} / {d.mean():.3f}")
        s = stock(image=smooth)["image"] if stock is not None else None
        d = diff(s, rn(smooth)) if s is not None else None
        cells.append(f"{d.max():.2f} / {d.mean():.3f}" if d is not None else "-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    # R2 per-image part, unpinned, same key: the same draws on both sides
    pipe = r2(num_classes=10)
    ra = pipe.compile("albumentations")
    rn = aug.Pipeline(list(pipe.ops[:5]), seed=0).compile("numpy")
    worst, means = 0.0, []
    for _ in range(20):
        d = np.abs(ra(smooth) - rn(smooth[None])[0]) * np.asarray(IMAGENET_STD) * 255
        worst, means = max(worst, float(d.max())), means + [float(d.mean())]
    out.append(f"| R2 steps 1-5, unpinned, same seed (20 calls) | {worst:.2f} / {np.mean(means):.3f} | | |")
    return out


def header() -> list[str]:
    try:
        date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    except OSError:
        date = time.ctime()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [f"Machine: {cpu}, {os.cpu_count()} CPUs; albumentations {A.__version__}, OpenCV {cv2.__version__}, "
            f"NumPy {np.__version__}; cv2 threads {cv2.getNumThreads()}. Date: {date}.", ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", type=int, default=64, help="batch size (images per timed batch)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--only", choices=("speed", "agreement"), default=None)
    a = ap.parse_args()
    lines = header()
    if a.only in (None, "speed"):
        lines += [f"### R2, batch {a.images}, {a.size}x{a.size}, median of {a.runs} runs after 2 warm-ups", ""]
        lines += speed(a.runs, a.images, a.size) + [""]
    if a.only in (None, "agreement"):
        lines += ["### Agreement with the NumPy reference (ranges pinned to one value)", ""] + agreement(a.size)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
