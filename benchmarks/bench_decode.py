"""Decode time per image of a folder of 1000 x 750 (w x h) JPEGs, full size vs JPEG draft
(DCT-domain scaling, ``augspec.datasets.decode_image(path, min_size=...)``), median of rounds.
Prints; asserts nothing.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_decode.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_decode.py --images 64 --rounds 7 --min-size 224

The folder is written into a temporary directory from scikit-image's photographs
(``augspec.testing_images``), quality 90. Single process, one thread (the caller's).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

from augspec.datasets import ImageFolderSamples, decode_image
from augspec.testing_images import PHOTOS, photo


def per_image_ms(paths: list[str], min_size: int | None, rounds: int) -> tuple[float, tuple[int, ...]]:
    shape: tuple[int, ...] = ()
    for p in paths[:2]:  # warm the file cache and the decoder
        shape = decode_image(p, min_size).shape
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for p in paths:
            decode_image(p, min_size)
        times.append((time.perf_counter() - t) / len(paths) * 1e3)
    return statistics.median(times), shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="JPEGs in the folder (default 32)")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes over the folder; the median is printed")
    ap.add_argument("--min-size", type=int, default=224, help="min_size for the draft decode (default 224)")
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=750)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "train")
        os.makedirs(os.path.join(root, "x"))
        jpegs = []
        for i in range(args.images):
            p = os.path.join(root, "x", f"{i:04d}.jpg")
            photo(PHOTOS[i % len(PHOTOS)], (args.height, args.width)).save(p, quality=90)
            jpegs.append(p)
        assert [p for p, _ in ImageFolderSamples(root).samples] == jpegs

        full_ms, full_shape = per_image_ms(jpegs, None, args.rounds)
        draft_ms, draft_shape = per_image_ms(jpegs, args.min_size, args.rounds)

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{len(jpegs)} JPEGs {args.width}x{args.height}, median of {args.rounds} rounds")
    print(f"full decode            {full_ms:7.2f} ms/image  -> {full_shape}")
    print(f"draft min_size={args.min_size:<7} {draft_ms:7.2f} ms/image  -> {draft_shape}")
    print(f"speed-up               {full_ms / draft_ms:7.2f} x")


if __name__ == "__main__":
    main()
