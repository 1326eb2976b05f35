"""Targets that follow the images (masks, boxes), timed side by side with the peers in one
process (RECIPES.md's method): augspec's NumPy, torch (CPU) and albumentations backends
against albumentations and torchvision.transforms.v2 doing the same work.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_targets.py               # both benchmarks
    PYTHONPATH=src /work/tvenv/bin/python benchmarks/bench_targets.py         # + torchvision v2
    ... --quick                          # smoke run: batch 4, 128 px, 3 rounds
    ... --only seg | --only det          # one benchmark
    ... --peers numpy,torch,albumentations   # only these rows (keys below); a missing peer is skipped
    ... --threads 1                      # torch and OpenCV threads (default: the libraries' own)

1. Segmentation (``seg``): batch of uint8 RGB images and uint8 class-id masks (N, H, W),
   recipe R3 without its mix and label ops: RandomResizedCrop(size), HorizontalFlip,
   ColorJitter(0.4, 0.4, 0.4), Normalize (ImageNet), one CutOut hole of side 0.14-0.57
   with p = 0.25 (the mask takes the ignore index 255 there). Rows (keys): ``numpy``,
   ``torch`` (NCHW tensors), ``augspec-albumentations`` (the albumentations backend, one
   call on the batch), ``albumentations`` (``A.Compose`` with ``mask=``, a Python loop
   over the images).
2. Detection (``det``): uint8 RGB images with 1-50 random ``xyxy`` boxes per image (a
   variable count) and their integer labels: HorizontalFlip, Affine (rotate 10 degrees,
   translate 0.1, scale 0.9-1.1, bilinear, fill 0), RandomCrop(crop), ColorJitter(0.4,
   0.4, 0.4). A box is dropped when its clipped width or height falls below 1 pixel, on
   every row (augspec ``min_size=1``, albumentations ``min_width = min_height = 1``,
   torchvision ``SanitizeBoundingBoxes(min_size=1)``). Rows (keys): ``numpy`` and
   ``torch`` (boxes as a list of (M_i, 4) arrays), ``numpy-padded`` and ``torch-padded``
   (boxes padded to (N, 50, 4) with ``box_valid``), ``albumentations`` (``BboxParams``
   ``pascal_voc`` with a label field, a loop over the images), ``torchvision``
   (``tv_tensors.BoundingBoxes``, a loop over the images: v2 draws one set of params
   per call, so per-sample params need the loop).

Every row draws its params per sample. Each row is built and called ``--warmup`` times (2), then
the rows are timed round-robin, one call of each per round, so load drift on a shared
machine hits them alike; the table gives the median of the rounds. Inputs: random uint8
pixels, ``BUFFERS`` input batches in rotation, made before timing, in each row's own form
(NHWC arrays, NCHW tensors, per-image arrays or tv_tensors). The "kept" column counts the
boxes left after the first warm-up call, as a check that the rows filter alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import augspec as aug  # noqa: E402
from augspec.bench import cpu_name  # noqa: E402
from augspec.recipes import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

BUFFERS = 3
MAX_BOXES = 50
NUM_CLASSES_SEG = 21
NUM_CLASSES_DET = 80
IGNORE = 255
ROTATE, TRANSLATE, SCALE = 10.0, 0.1, (0.9, 1.1)
JITTER = 0.4
HOLE = (0.14, 0.57)
HOLE_P = 0.25


class Skip(Exception):
    """A row that cannot run here (a library not installed)."""


@dataclass
class Row:
    key: str
    name: str
    params: str
    step: Callable[[int], Any]  # one batch on input buffer i % BUFFERS
    kept: Callable[[Any], float] | None = None  # boxes per image in a step's output


# ------------------------------------------------------------------- inputs

def seg_inputs(n: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for _ in range(BUFFERS)]
    ms = [rng.integers(0, NUM_CLASSES_SEG, (n, size, size), dtype=np.uint8) for _ in range(BUFFERS)]
    return xs, ms


def random_boxes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """1 to MAX_BOXES ``xyxy`` boxes inside a size x size image, sides 2-50 % of it, and labels."""
    m = int(rng.integers(1, MAX_BOXES + 1))
    wh = rng.uniform(0.02, 0.5, (m, 2)) * size
    xy = rng.uniform(0.0, 1.0, (m, 2)) * (size - wh)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return boxes, rng.integers(0, NUM_CLASSES_DET, m).astype(np.int64)


def det_inputs(n: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for _ in range(BUFFERS)]
    boxes, labels = [], []
    for _ in range(BUFFERS):
        bl = [random_boxes(rng, size) for _ in range(n)]
        boxes.append([b for b, _ in bl])
        labels.append([lab for _, lab in bl])
    return xs, boxes, labels


def padded(boxes: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(boxes)
    pb = np.zeros((n, MAX_BOXES, 4), np.float32)
    pl = np.zeros((n, MAX_BOXES), np.int64)
    pv = np.zeros((n, MAX_BOXES), bool)
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        pb[i, : len(b)], pl[i, : len(b)], pv[i, : len(b)] = b, lab, True
    return pb, pv, pl


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed") from None
    return torch


def _albumentations() -> Any:
    try:
        import albumentations as A
    except ImportError:
        raise Skip("albumentations is not installed") from None
    return A


def _nchw(torch: Any, x: np.ndarray) -> Any:
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def _count_list(out: Any) -> float:
    return float(np.mean([len(b) for b in out["boxes"]]))


def _count_valid(out: Any) -> float:
    v = out["box_valid"]
    return float(np.asarray(v.numpy() if hasattr(v, "numpy") else v).sum(axis=1).mean())


# ------------------------------------------------------------------- segmentation

def seg_pipeline(size: int) -> aug.Pipeline:
    """R3 (augspec.recipes.r3) without its MixUp / CutMix and label smoothing."""
    return aug.Pipeline([
        aug.RandomResizedCrop(size),
        aug.HorizontalFlip(p=0.5),
        aug.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER),
        aug.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        aug.CutOut(holes=1, size=HOLE, p=HOLE_P),
    ], seed=0)


def seg_augspec(backend: str) -> Callable[[int, int], Row]:
    def make(n: int, size: int) -> Row:
        xs, ms = seg_inputs(n, size)
        if backend == "torch":
            torch = _torch()
            xs, ms = [_nchw(torch, x) for x in xs], [torch.from_numpy(m) for m in ms]
        run = seg_pipeline(size).compile(backend, targets={"ignore_index": IGNORE})
        how = {"numpy": "NHWC arrays", "torch": "CPU, NCHW tensors",
               "albumentations": "one call on the NHWC batch"}[backend]
        return Row(backend if backend != "albumentations" else "augspec-albumentations",
                   f"augspec {backend} ({how})", "per sample",
                   lambda i: run(xs[i % BUFFERS], masks=ms[i % BUFFERS]))

    return make


def seg_albumentations(n: int, size: int) -> Row:
    A = _albumentations()
    comp = A.Compose([
        A.RandomResizedCrop(size=(size, size)),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, hue=0.0, p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=HOLE, hole_width_range=HOLE, fill=0,
                        fill_mask=IGNORE, p=HOLE_P),
    ], seed=0)
    xs, ms = seg_inputs(n, size)

    def step(i: int) -> Any:
        x, m = xs[i % BUFFERS], ms[i % BUFFERS]
        outs = [comp(image=x[j], mask=m[j]) for j in range(n)]
        return np.stack([o["image"] for o in outs]), np.stack([o["mask"] for o in outs])

    return Row("albumentations", f"albumentations {A.__version__} (Compose per image, mask=)",
               "per sample (Python loop)", step)


SEG_ROWS: list[tuple[str, Callable[[int, int], Row]]] = [
    ("numpy", seg_augspec("numpy")),
    ("torch", seg_augspec("torch")),
    ("augspec-albumentations", seg_augspec("albumentations")),
    ("albumentations", seg_albumentations),
]


# ------------------------------------------------------------------- detection

def det_crop(size: int) -> int:
    return size * 7 // 8  # 448 of 512


def det_pipeline(size: int) -> aug.Pipeline:
    return aug.Pipeline([
        aug.HorizontalFlip(p=0.5),
        aug.Affine(rotate=ROTATE, translate=TRANSLATE, scale=SCALE),
        aug.RandomCrop(det_crop(size)),
        aug.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER),
    ], seed=0)


def det_augspec(backend: str, pad: bool) -> Callable[[int, int], Row]:
    def make(n: int, size: int) -> Row:
        xs, boxes, labels = det_inputs(n, size)
        run = det_pipeline(size).compile(backend, targets={"min_visibility": 0.0, "min_size": 1.0})
        if pad:
            pads = [padded(b, lab) for b, lab in zip(boxes, labels)]
        if backend == "torch":
            torch = _torch()
            xs = [_nchw(torch, x) for x in xs]
            if pad:
                pads = [tuple(torch.from_numpy(a) for a in p) for p in pads]
            else:
                boxes = [[torch.from_numpy(b) for b in bs] for bs in boxes]
                labels = [[torch.from_numpy(lab) for lab in ls] for ls in labels]
        form = "CPU, NCHW tensors, " if backend == "torch" else ""
        if pad:
            def step(i: int) -> Any:
                b, v, lab = pads[i % BUFFERS]
                return run(xs[i % BUFFERS], boxes=b, box_valid=v, box_labels=lab)

            return Row(f"{backend}-padded", f"augspec {backend} ({form}boxes padded (N, {MAX_BOXES}, 4) + box_valid)",
                       "per sample", step, _count_valid)

        def step_list(i: int) -> Any:
            k = i % BUFFERS
            return run(xs[k], boxes=boxes[k], box_labels=labels[k])

        return Row(backend, f"augspec {backend} ({form}boxes as a list)", "per sample", step_list, _count_list)

    return make


def det_albumentations(n: int, size: int) -> Row:
    A = _albumentations()
    import cv2

    crop = det_crop(size)
    comp = A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-ROTATE, ROTATE), translate_percent=(-TRANSLATE, TRANSLATE), scale=SCALE,
                 interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
        A.RandomCrop(height=crop, width=crop),
        A.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, hue=0.0, p=1.0),
    ], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.0, min_width=1,
                                min_height=1), seed=0)
    xs, boxes, labels = det_inputs(n, size)

    def step(i: int) -> Any:
        k = i % BUFFERS
        x, bs, ls = xs[k], boxes[k], labels[k]
        outs = [comp(image=x[j], bboxes=bs[j], labels=ls[j]) for j in range(n)]
        return np.stack([o["image"] for o in outs]), [o["bboxes"] for o in outs], [o["labels"] for o in outs]

    return Row("albumentations", f"albumentations {A.__version__} (Compose per image, BboxParams pascal_voc)",
               "per sample (Python loop)", step, lambda out: float(np.mean([len(b) for b in out[1]])))


def det_torchvision(n: int, size: int) -> Row:
    torch = _torch()
    try:
        import torchvision
        from torchvision import tv_tensors
        from torchvision.transforms import InterpolationMode, v2
    except ImportError:
        raise Skip("torchvision is not installed") from None
    tf = v2.Compose([
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomAffine(ROTATE, translate=(TRANSLATE, TRANSLATE), scale=SCALE,
                        interpolation=InterpolationMode.BILINEAR, fill=0),
        v2.RandomCrop(det_crop(size)),
        v2.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER),
        v2.SanitizeBoundingBoxes(min_size=1.0),
    ])
    xs, boxes, labels = det_inputs(n, size)
    samples = [[(tv_tensors.Image(img),
                 {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(b), format="XYXY", canvas_size=(size, size)),
                  "labels": torch.from_numpy(lab)})
                for img, b, lab in zip(_nchw(torch, x), bs, ls)]
               for x, bs, ls in zip(xs, boxes, labels)]

    def step(i: int) -> Any:
        outs = [tf(img, tgt) for img, tgt in samples[i % BUFFERS]]  # per-sample params need a loop
        return torch.stack([o[0] for o in outs]), [o[1] for o in outs]

    return Row("torchvision", f"torchvision {torchvision.__version__} v2 (per image, tv_tensors.BoundingBoxes)",
               "per sample (Python loop)", step, lambda out: float(np.mean([len(t["boxes"]) for t in out[1]])))


DET_ROWS: list[tuple[str, Callable[[int, int], Row]]] = [
    ("numpy", det_augspec("numpy", pad=False)),
    ("numpy-padded", det_augspec("numpy", pad=True)),
    ("torch", det_augspec("torch", pad=False)),
    ("torch-padded", det_augspec("torch", pad=True)),
    ("albumentations", det_albumentations),
    ("torchvision", det_torchvision),
]
PEER_KEYS = ("albumentations", "torchvision")


# ------------------------------------------------------------------- timing and the table

def table(title: str, rows_spec: list[tuple[str, Callable[[int, int], Row]]], n: int, size: int, rounds: int,
          warmup: int, keys: set[str] | None) -> list[str]:
    made: list[Row] = []
    notes: dict[str, str] = {}
    kept: dict[str, float] = {}
    names: dict[str, str] = {}
    for key, make in rows_spec:
        if keys is not None and key not in keys:
            continue
        print(f"  building {key} ...", file=sys.stderr, flush=True)
        try:
            row = make(n, size)
            out = row.step(0)
            if row.kept is not None:
                kept[key] = row.kept(out)
            for w in range(1, warmup):
                row.step(w)
            made.append(row)
            names[key] = row.name
        except Skip as e:
            notes[key] = f"skipped: {e}"
        except Exception as e:  # a broken row is reported, the others still run
            notes[key] = f"failed: {type(e).__name__}: {str(e)[:160]}"
    times: dict[str, list[float]] = {row.key: [] for row in made}
    for r in range(rounds):
        for row in made:
            t = time.perf_counter()
            row.step(warmup + r)
            times[row.key].append(time.perf_counter() - t)
    ms = {key: statistics.median(ts) * 1e3 for key, ts in times.items()}
    for row in made:
        print(f"  {row.key}: {ms[row.key]:.1f} ms / batch", file=sys.stderr, flush=True)
    peers = [p for p in PEER_KEYS if p in ms]
    has_kept = bool(kept)
    head = "| row | params | ms / batch | ms / image |" + "".join(f" {p} / row |" for p in peers)
    head += " kept boxes / image |" if has_kept else ""
    lines = [title, "", head, "|---|---|---:|---:|" + "---:|" * len(peers) + ("---:|" if has_kept else "")]
    for key, _ in rows_spec:
        if keys is not None and key not in keys:
            continue
        if key not in ms:
            lines.append(f"| {key} | {notes.get(key, '')} | - | - |" + " - |" * len(peers) + (" - |" if has_kept else ""))
            continue
        row = next(r for r in made if r.key == key)
        cells = f"| {names[key]} | {row.params} | {ms[key]:.1f} | {ms[key] / n:.3f} |"
        cells += "".join(f" {ms[p] / ms[key]:.2f} |" for p in peers)
        cells += f" {kept[key]:.1f} |" if has_kept else ""
        lines.append(cells)
    if peers:
        lines += ["", "`peer / row`: the peer's time over the row's (above 1: the row is faster)."]
    return lines


def header() -> list[str]:
    versions = [f"NumPy {np.__version__}"]
    try:
        import cv2

        versions.append(f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    except ImportError:
        pass
    try:
        import torch

        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    try:
        date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    except OSError:
        date = time.ctime()
    return [f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {sys.version.split()[0]} ({sys.executable}); "
            + ", ".join(versions) + f"; augspec from {os.path.dirname(os.path.realpath(aug.__file__))}  ",
            f"Date: {date}; load average (1, 5, 15 min) before: {_load()}", ""]


def set_threads(n: int) -> None:
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=512, help="input side; seg crops to it, det to 7/8 of it")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (one call of every row per round)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 4, 128 px, 3 rounds, 1 warm-up")
    ap.add_argument("--only", choices=("seg", "det"), default=None)
    ap.add_argument("--peers", default=None, help="comma-separated row keys to run (default all): seg: "
                    + ",".join(k for k, _ in SEG_ROWS) + "; det: " + ",".join(k for k, _ in DET_ROWS))
    ap.add_argument("--threads", type=int, default=None,
                    help="torch and OpenCV threads (default: the libraries' own, one per core)")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    a = ap.parse_args()
    if a.threads is not None:
        set_threads(a.threads)
    if a.quick:
        a.batch, a.size, a.rounds, a.warmup = 4, 128, 3, 1
    keys = {k.strip() for k in a.peers.split(",") if k.strip()} if a.peers else None
    unknown = sorted((keys or set()) - {k for k, _ in SEG_ROWS + DET_ROWS})
    if unknown:
        ap.error(f"--peers: unknown row keys {unknown}")
    lines = header()
    if a.quick:
        lines += ["**--quick: smoke settings, not a measurement.**", ""]
    if a.only in (None, "seg"):
        lines += table(f"### Segmentation: image + mask, batch {a.batch}, {a.size}x{a.size} uint8 RGB + uint8 mask, "
                       f"R3 without mix/label ops (RandomResizedCrop({a.size}), flip, ColorJitter 0.4, Normalize, "
                       f"CutOut p={HOLE_P}); median of {a.rounds} rounds after {a.warmup} warm-up calls",
                       SEG_ROWS, a.batch, a.size, a.rounds, a.warmup, keys) + [""]
    if a.only in (None, "det"):
        c = det_crop(a.size)
        lines += table(f"### Detection: image + 1-{MAX_BOXES} boxes with labels, batch {a.batch}, {a.size}x{a.size} "
                       f"uint8 RGB in, {c}x{c} uint8 out (flip, Affine rotate {ROTATE:g} translate {TRANSLATE:g} "
                       f"scale {SCALE[0]:g}-{SCALE[1]:g}, RandomCrop({c}), ColorJitter 0.4); median of {a.rounds} "
                       f"rounds after {a.warmup} warm-up calls", DET_ROWS, a.batch, a.size, a.rounds, a.warmup, keys)
        lines += [""]
    lines.append(f"Load average after: {_load()}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
