"""Images per second from a folder of JPEGs of mixed sizes to augmented R3 batches
(``augspec.recipes.r3``: RandomResizedCrop 224, flip, colour jitter 0.4, Normalize,
random erasing p 0.25, MixUp 0.8 or CutMix 1.0, label smoothing 0.1), through each
library's data loader, with ``--workers`` loader workers. Prints a markdown table;
asserts nothing.

    python benchmarks/bench_loader.py [--images 2000] [--workers 2] [--batch 64] [--only augspec]

Rows (each skipped, with the reason, where its libraries are missing, so the script
runs in any venv; run it once in a venv with torchvision + timm and once in one with
TensorFlow for every row):

- ``torchvision``: ``torchvision.datasets.ImageFolder`` (Pillow decode) + v2 transforms
  per image in the workers (RandomResizedCrop(224, antialias) on the PIL image,
  RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4), PILToTensor, ToDtype(float32,
  scale), Normalize, RandomErasing(0.25)), ``default_collate``, then
  ``RandomChoice([MixUp(0.8), CutMix(1.0)])`` and smoothing 0.1 in the main loop.
- ``timm``: ``timm.data.create_dataset('', root)`` + ``create_loader(is_training=True,
  color_jitter=0.4, re_prob=0.25, use_prefetcher=False)``, then ``timm.data.Mixup``
  (mixup 0.8, cutmix 1.0, switch 0.5, smoothing 0.1, per sample) in the main loop.
- ``augspec decode only``: ``augspec.torch.ImageFolder`` and a collate that returns the
  list of images: the ceiling set by decoding.
- ``augspec Collate (workers)``: ``augspec.torch.ImageFolder`` + ``Collate(r3(),
  batch_only=False)``: each worker decodes, packs and runs the whole pipeline on its
  batch (torch backend, one thread per worker).
- ``augspec Collate (workers), min_size=224``: the same with JPEG draft decoding (a
  480 x 640 file decodes at 240 x 320): faster, but crops come from fewer pixels.
- ``augspec Collate(device="cpu") + iterate``: the workers decode and pack; the main
  process runs the pipeline (``collate.iterate(loader)``).
- ``tf.data + augspec[tensorflow]``: ``tf.io.read_file`` + ``tf.io.decode_jpeg``
  (``num_parallel_calls=workers``), ``ragged_batch``, ``.map(run)`` with the compiled
  R3 run (a ragged batch in, one trace), ``prefetch``. Not by default (``--only
  tf-padded``): the same with ``padded_batch`` to a static 512 x 640 buffer and the
  images' sizes, ``run(x, y, sizes=sizes)``.
- ``tf.data + Keras 3 layers``: decode, then per image (in the same parallel map)
  ``tf.image.sample_distorted_bounding_box`` (area 0.08-1, ratio 3/4-4/3, 10
  attempts; the Inception crop, TensorFlow's own ImageNet preprocessing: Keras 3 has
  no RandomResizedCrop, and ``Resizing(256)`` + ``RandomCrop(224)`` would be another
  augmentation) and ``tf.image.resize(224, antialias=True)``; ``batch``; then on the
  batch ``RandomFlip``, ``RandomColorJitter(0.4, 0.4, 0.4)``, ``RandomErasing(0.25)``,
  ``Rescaling``, ``Normalization``, and ``MixUp(0.8)`` or ``CutMix(1.0)`` (one per
  batch, as torchvision's RandomChoice), smoothing 0.1.

Method: the folder is written once (``--root``; default a folder in the temp
directory, reused while it holds ``--images`` files): photographs from scikit-image at
``R3_SIZES`` in turn, JPEG quality 90, 10 classes. Each row is one shuffled epoch
(``drop_last``): the first ``--warmup`` batches (worker start-up, traces) are not
timed, the rest are; images per second = timed images / seconds. Run on an otherwise
idle machine: the workers and the main process share its cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 10
SEED = 0


class Skip(Exception):
    pass


# ------------------------------------------------------------------ the folder


def write_folder(root: str, n: int, classes: int = NUM_CLASSES) -> str:
    """``root/c<k>/<i>.jpg``: ``n`` JPEGs (quality 90) at ``R3_SIZES`` in turn; kept and
    reused where it already holds ``n`` files."""
    from augspec.recipes import R3_SIZES
    from augspec.testing_images import PHOTOS, photo

    have = sum(len(fs) for _, _, fs in os.walk(root)) if os.path.isdir(root) else 0
    if have == n:
        return root
    if have:
        raise SystemExit(f"{root} holds {have} files, not {n}: pass another --root")
    cache: dict[tuple[str, tuple[int, int]], Any] = {}
    for i in range(n):
        folder = os.path.join(root, f"c{i % classes}")
        os.makedirs(folder, exist_ok=True)
        key = (PHOTOS[(i // len(R3_SIZES)) % len(PHOTOS)], R3_SIZES[i % len(R3_SIZES)])
        if key not in cache:
            cache[key] = photo(*key)
        cache[key].save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return root


# ------------------------------------------------------------------ torch rows


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed") from None
    return torch


def _list_collate(samples: list) -> tuple[list, Any]:
    import torch

    return [s[0] for s in samples], torch.stack([s[1] for s in samples])


def _loader(ds: Any, args: argparse.Namespace, collate: Any, **kw: Any) -> Any:
    torch = _torch()
    g = torch.Generator().manual_seed(SEED)
    return torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True, generator=g,
                                       num_workers=args.workers, collate_fn=collate, **kw)


def row_torchvision(root: str, args: argparse.Namespace) -> Iterator[Any]:
    torch = _torch()
    try:
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2
    except ImportError:
        raise Skip("torchvision is not installed") from None
    t = v2.Compose([
        v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4),
        v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomErasing(p=0.25)])
    mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=NUM_CLASSES), v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)])
    loader = _loader(ImageFolder(root, transform=t), args, torch.utils.data.default_collate)
    for x, y in loader:
        x, y = mix(x, y)
        yield x, y * 0.9 + 0.1 / NUM_CLASSES


def row_timm(root: str, args: argparse.Namespace) -> Iterator[Any]:
    torch = _torch()
    try:
        from timm.data import Mixup, create_dataset, create_loader
    except ImportError:
        raise Skip("timm is not installed") from None
    torch.manual_seed(SEED)
    ds = create_dataset("", root=root, split="train", is_training=True, search_split=False)
    loader = create_loader(ds, input_size=(3, 224, 224), batch_size=args.batch, is_training=True, color_jitter=0.4,
                           re_prob=0.25, num_workers=args.workers, use_prefetcher=False, device=torch.device("cpu"),
                           persistent_workers=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=NUM_CLASSES,
                mode="elem")
    for x, y in loader:
        yield mix(x, y)


def _augspec_folder(root: str, min_size: int | None = None) -> Any:
    _torch()
    from augspec.torch import ImageFolder

    return ImageFolder(root, min_size=min_size)


def row_decode_only(root: str, args: argparse.Namespace) -> Iterator[Any]:
    yield from _loader(_augspec_folder(root), args, _list_collate)


def row_augspec_workers(root: str, args: argparse.Namespace, min_size: int | None = None) -> Iterator[Any]:
    from augspec.recipes import r3
    from augspec.torch import Collate, worker_init_fn

    collate = Collate(r3(NUM_CLASSES, seed=SEED), batch_only=False)
    yield from _loader(_augspec_folder(root, min_size), args, collate, worker_init_fn=worker_init_fn)


def row_augspec_main(root: str, args: argparse.Namespace) -> Iterator[Any]:
    from augspec.recipes import r3
    from augspec.torch import Collate, worker_init_fn

    collate = Collate(r3(NUM_CLASSES, seed=SEED), device="cpu")
    yield from collate.iterate(_loader(_augspec_folder(root), args, collate, worker_init_fn=worker_init_fn))


# ------------------------------------------------------------- TensorFlow rows


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError:
        raise Skip("tensorflow is not installed") from None
    return tf


def _tf_files(root: str) -> tuple[list[str], list[int]]:
    from augspec.datasets import scan_folder

    samples, _ = scan_folder(root)
    return [p for p, _ in samples], [k for _, k in samples]


def _tf_decoded(tf: Any, root: str, args: argparse.Namespace, per_image: Callable | None = None) -> Any:
    paths, labels = _tf_files(root)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths), seed=SEED)

    def load(path: Any, label: Any) -> Any:
        x = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return (per_image(x) if per_image else x), label

    return ds.map(load, num_parallel_calls=args.workers)


def row_tf_augspec(root: str, args: argparse.Namespace) -> Iterator[Any]:
    tf = _tf()
    from augspec.recipes import r3

    run = r3(NUM_CLASSES, seed=SEED).compile("tensorflow")
    ds = _tf_decoded(tf, root, args).ragged_batch(args.batch, drop_remainder=True)
    ds = ds.map(lambda x, y: run(x, y)).prefetch(2)
    yield from ds


def row_tf_augspec_padded(root: str, args: argparse.Namespace) -> Iterator[Any]:
    """``padded_batch`` to a static (512, 640) buffer and each image's size, ``run(x, y,
    sizes=sizes)``: a static buffer shape lets the trace bound the filter by it."""
    tf = _tf()
    from augspec.recipes import R3_SIZES, r3

    run = r3(NUM_CLASSES, seed=SEED).compile("tensorflow")
    q = run.backend.pack_multiple
    hm = -(-max(h for h, _ in R3_SIZES) // q) * q
    wm = -(-max(w for _, w in R3_SIZES) // q) * q
    ds = _tf_decoded(tf, root, args).map(lambda x, y: (x, tf.shape(x)[:2], y))
    ds = ds.padded_batch(args.batch, padded_shapes=([hm, wm, 3], [2], []), drop_remainder=True)
    yield from ds.map(lambda x, s, y: run(x, y, sizes=s)).prefetch(2)


def row_tf_keras(root: str, args: argparse.Namespace) -> Iterator[Any]:
    tf = _tf()
    try:
        import keras
    except ImportError:
        raise Skip("keras is not installed") from None
    if not keras.__version__.startswith("3"):
        raise Skip("needs Keras 3")
    L = keras.layers

    def crop(x: Any) -> Any:  # the Inception crop: Keras 3 has no RandomResizedCrop
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.shape(x), tf.zeros([1, 0, 4]), min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
        return tf.image.resize(tf.slice(x, begin, size), (224, 224), antialias=True)

    layers = [L.RandomFlip("horizontal", seed=SEED),
              L.RandomColorJitter(value_range=(0, 255), brightness_factor=0.4, contrast_factor=0.4,
                                  saturation_factor=0.4, seed=SEED),
              L.RandomErasing(factor=0.25, value_range=(0, 255), seed=SEED),
              L.Rescaling(1 / 255.0),
              L.Normalization(mean=IMAGENET_MEAN, variance=tuple(s * s for s in IMAGENET_STD))]
    mixup, cutmix = L.MixUp(alpha=0.8, seed=SEED), L.CutMix(factor=1.0, seed=SEED)

    def augment(x: Any, y: Any) -> Any:
        for layer in layers:
            x = layer(x, training=True)
        d = {"images": x, "labels": tf.one_hot(y, NUM_CLASSES)}
        out = tf.cond(tf.random.uniform(()) < 0.5, lambda: mixup(d, training=True), lambda: cutmix(d, training=True))
        return out["images"], out["labels"] * 0.9 + 0.1 / NUM_CLASSES

    ds = _tf_decoded(tf, root, args, crop).batch(args.batch, drop_remainder=True).map(augment).prefetch(2)
    yield from ds


#: (key, name, make); the rows after DEFAULT run only when ``--only`` names them
ROWS: list[tuple[str, str, Callable[..., Iterator[Any]]]] = [
    ("torchvision", "torchvision ImageFolder + v2 per image (workers), MixUp/CutMix (main)", row_torchvision),
    ("timm", "timm create_loader (workers), Mixup (main)", row_timm),
    ("decode", "augspec ImageFolder, decode only (no augmentation)", row_decode_only),
    ("augspec-workers", "augspec ImageFolder + Collate(r3) (workers)", row_augspec_workers),
    ("augspec-workers-draft", "augspec ImageFolder(min_size=224) + Collate(r3) (workers)",
     lambda root, args: row_augspec_workers(root, args, min_size=224)),
    ("augspec-main", 'augspec ImageFolder + Collate(r3, device="cpu") (pack: workers; augment: main)', row_augspec_main),
    ("tf-augspec", "tf.data decode + ragged_batch + augspec[tensorflow] map", row_tf_augspec),
    ("tf-keras", "tf.data decode + Inception crop + Keras 3 layers", row_tf_keras),
    ("tf-padded-augspec", "tf.data decode + padded_batch (static) + augspec[tensorflow] map with sizes",
     row_tf_augspec_padded),
]
DEFAULT = 8


def time_row(make: Callable[..., Iterator[Any]], root: str, args: argparse.Namespace) -> tuple[float, int, float]:
    """(images per second, timed images, seconds) over one epoch after ``args.warmup`` batches."""
    it = make(root, args)
    seen = 0
    t0 = None
    for k, batch in enumerate(it):
        x = batch[0]
        if k == 0:
            n = int(x.shape[0]) if hasattr(x, "shape") else len(x)
            if n != args.batch:
                raise RuntimeError(f"batch of {n}, expected {args.batch}")
        if k + 1 == args.warmup:
            t0 = time.perf_counter()
        elif k + 1 > args.warmup:
            seen += args.batch
    if t0 is None or seen == 0:
        raise RuntimeError("too few batches for the warm-up: use more --images or a smaller --warmup")
    dt = time.perf_counter() - t0
    return seen / dt, seen, dt


def _preimport() -> None:
    """torch-side libraries before TensorFlow (importing them after it crashes some builds)."""
    for mod in ("torch", "torchvision", "timm"):
        try:
            __import__(mod)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000, help="JPEGs in the folder, one epoch (default 2000)")
    ap.add_argument("--workers", type=int, default=2, help="loader workers / tf.data parallel calls (default 2)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--warmup", type=int, default=3, help="batches not timed (default 3)")
    ap.add_argument("--root", help="the image folder (written if missing; default: in the temp directory)")
    ap.add_argument("--only", metavar="KEY[,KEY]", help="rows whose key contains one of these: "
                    + ", ".join(k for k, _, _ in ROWS))
    args = ap.parse_args(argv)
    _preimport()
    root = args.root or os.path.join(tempfile.gettempdir(), f"augspec-bench-loader-{args.images}")
    t = time.perf_counter()
    write_folder(root, args.images)
    print(f"# folder {root}: {args.images} JPEGs ({time.perf_counter() - t:.1f} s to write or check)", file=sys.stderr)
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    from augspec.bench import cpu_name

    lines = [f"Machine: {cpu_name()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}; load average before: {os.getloadavg()[0]:.2f}",
             f"{args.images} JPEGs (R3_SIZES, quality 90), batch {args.batch}, {args.workers} workers, "
             f"{args.warmup} warm-up batches", "",
             "| loader | images / s | ms / image | timed |", "|---|---:|---:|---|"]
    for i, (key, name, make) in enumerate(ROWS):
        if (only and not any(o in key for o in only)) or (not only and i >= DEFAULT):
            continue
        print(f"  {key} ...", file=sys.stderr, flush=True)
        try:
            ips, seen, dt = time_row(make, root, args)
            lines.append(f"| {name} | {ips:.1f} | {1e3 / ips:.2f} | {seen} images in {dt:.1f} s |")
        except Skip as e:
            lines.append(f"| {name} | skipped: {e} | | |")
        except Exception as e:  # a broken row is reported, the others still run
            lines.append(f"| {name} | failed: {type(e).__name__}: {str(e)[:160]} | | |")
    lines.append(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
