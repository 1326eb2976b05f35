"""Benchmark the TensorFlow backend against Keras' own augmentation (RECIPES.md R2 and R1).

Run in the bench environment (it has tf_keras for ImageDataGenerator)::

    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/bench_tensorflow.py \\
        --write benchmarks/results/tensorflow.md

Side by side in one process, on the CPU: the median of ``--reps`` (R2) or
``--r1-reps`` (R1) timed calls after 3 warm-up calls, rotating among 3 input buffers, each call synchronised
by reading the result back (``.numpy()``). Parameter sampling is inside every
timed call. Every row draws its parameters per sample.

- R2 (224 x 224 uint8 -> float32, batch 64, K = 1000): augspec (eager call,
  default ``kernels="xla"``; ``kernels="native"``: no XLA anywhere; ``jit=True``)
  vs Keras 3 layers in a ``tf.function`` (with ``jit_compile=True`` where they
  compile).
- R1 (32 x 32, batch 32, featurewise statistics fitted on the training set):
  augspec vs ``tf_keras`` ``ImageDataGenerator.flow`` and Keras 3 layers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the recipes are CPU rows

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from augspec import recipes  # noqa: E402

R2_MEAN = np.array(recipes.IMAGENET_MEAN, np.float32)
R2_STD = np.array(recipes.IMAGENET_STD, np.float32)


def timeit(fn: Callable[[int], Any], reps: int, warmup: int = 3) -> float:
    """Median seconds of ``fn(i)`` (``i`` picks the input buffer); the result is read back."""

    def sync(r: Any) -> None:
        for t in tf.nest.flatten(r):
            np.asarray(t)

    for i in range(warmup):
        sync(fn(i))
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        sync(fn(i))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def keras3_available() -> dict[str, bool]:
    import keras

    names = ["RandomRotation", "RandomTranslation", "RandomZoom", "RandomShear", "RandomFlip", "RandomColorJitter",
             "RandomErasing", "Rescaling", "Normalization", "MixUp"]
    return {n: hasattr(keras.layers, n) for n in names}


# ------------------------------------------------------------------------- R2


def r2_keras(k: int) -> tuple[Callable, list[str]]:
    import keras

    L = keras.layers
    have = keras3_available()
    shear = float(np.tan(np.deg2rad(5.0)))
    geo = [L.RandomRotation(15 / 360, fill_mode="constant"), L.RandomTranslation(0.1, 0.1, fill_mode="constant"),
           L.RandomZoom((-0.1, 0.1), fill_mode="constant")]
    if have["RandomShear"]:
        geo.append(L.RandomShear(x_factor=shear, y_factor=shear, fill_mode="constant"))
    geo.append(L.RandomFlip("horizontal"))
    colour = []
    if have["RandomColorJitter"]:
        colour.append(L.RandomColorJitter(value_range=(0, 255), brightness_factor=0.4, contrast_factor=0.4,
                                          saturation_factor=0.4, hue_factor=0.1))
    if have["RandomErasing"]:
        colour.append(L.RandomErasing(factor=1.0, scale=(0.01, 0.25), fill_value=0.0, value_range=(0, 255)))
    norm = [L.Rescaling(1 / 255.0), L.Normalization(mean=R2_MEAN, variance=R2_STD ** 2)]
    mix = L.MixUp(alpha=0.8) if have["MixUp"] else None
    missing = [n for n, ok in have.items() if not ok]

    def f(x: Any, y: Any) -> Any:
        h = tf.cast(x, tf.float32)
        for layer in geo + colour + norm:
            h = layer(h, training=True)
        labels = tf.one_hot(y, k)
        if mix is not None:
            out = mix({"images": h, "labels": labels}, training=True)
            h, labels = out["images"], out["labels"]
        return h, labels * 0.9 + 0.1 / k

    return f, missing


def bench_r2(batch: int, reps: int, size: int = 224) -> tuple[list[tuple[str, float | None, str]], list[str]]:
    k = 1000
    rng = np.random.default_rng(0)
    xs = [tf.constant(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)) for _ in range(3)]
    ys = [tf.constant(rng.integers(0, k, (batch,)), tf.int64) for _ in range(3)]
    rows: list[tuple[str, float | None, str]] = []

    for label, opts in [("augspec TF, eager call (kernels='xla', default)", {}),
                        ("augspec TF, eager call (kernels='native', no XLA)", {"kernels": "native"}),
                        ("augspec TF, jit=True (XLA, whole call)", {"jit": True})]:
        run = recipes.r2(num_classes=k).compile("tensorflow", **opts)
        rows.append((label, timeit(lambda i, run=run: run(xs[i % 3], ys[i % 3]), reps), "per sample"))

    run = recipes.r2(num_classes=k).compile("tensorflow")
    fn = tf.function(lambda x, y: run(x, y), jit_compile=True)
    rows.append(("augspec TF, inside a user tf.function(jit_compile=True)",
                 timeit(lambda i: fn(xs[i % 3], ys[i % 3]), reps), "per sample"))

    kf, missing = r2_keras(k)
    kfn = tf.function(kf)
    rows.append(("Keras 3 layers in tf.function", timeit(lambda i: kfn(xs[i % 3], ys[i % 3]), reps), "per sample"))
    kjit = tf.function(r2_keras(k)[0], jit_compile=True)  # fresh layers: none of the graph above is reused
    try:
        t = timeit(lambda i: kjit(xs[i % 3], ys[i % 3]), reps)
        rows.append(("Keras 3 layers in tf.function(jit_compile=True)", t, "per sample"))
    except Exception as e:  # ImageProjectiveTransformV3 has no XLA kernel
        rows.append(("Keras 3 layers in tf.function(jit_compile=True)", None,
                     f"fails: {type(e).__name__} ({_first_line(e)})"))
    return rows, missing


# ------------------------------------------------------------------------- R1


def bench_r1(batch: int, reps: int) -> list[tuple[str, float | None, str]]:
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, (2048,))
    xs = [tf.constant(x_train[i * batch:(i + 1) * batch]) for i in range(3)]
    rows: list[tuple[str, float | None, str]] = []
    pipe = recipes.r1(x_train)
    for label, opts in [("augspec TF, eager call (kernels='xla', default)", {}),
                        ("augspec TF, eager call (kernels='native', no XLA)", {"kernels": "native"}),
                        ("augspec TF, jit=True (XLA, whole call)", {"jit": True})]:
        run = pipe.compile("tensorflow", **opts)
        rows.append((label, timeit(lambda i, run=run: run(xs[i % 3]), reps), "per sample"))

    try:
        from tf_keras.preprocessing.image import ImageDataGenerator

        gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, rotation_range=20,
                                 width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True)
        gen.fit(x_train.astype(np.float32))
        it = gen.flow(x_train, y_train, batch_size=batch, shuffle=True, seed=0)
        rows.append(("tf_keras ImageDataGenerator.flow", timeit(lambda i: next(it)[0], reps), "per sample (per image)"))
    except ImportError as e:
        rows.append(("tf_keras ImageDataGenerator.flow", None, f"missing: {e}"))

    import keras

    L = keras.layers
    xf = x_train.astype(np.float32)

    def r1_keras() -> Callable:
        norm = L.Normalization(mean=xf.mean(axis=(0, 1, 2)), variance=xf.var(axis=(0, 1, 2)))
        layers = [L.RandomRotation(20 / 360, fill_mode="nearest"),  # ImageDataGenerator's default, as R1's
                  L.RandomTranslation(0.2, 0.2, fill_mode="nearest"), L.RandomFlip("horizontal"), norm]

        def kf(x: Any) -> Any:
            h = tf.cast(x, tf.float32)
            for layer in layers:
                h = layer(h, training=True)
            return h

        return kf

    kfn = tf.function(r1_keras())
    rows.append(("Keras 3 layers in tf.function", timeit(lambda i: kfn(xs[i % 3]), reps), "per sample"))
    kjit = tf.function(r1_keras(), jit_compile=True)
    try:
        rows.append(("Keras 3 layers in tf.function(jit_compile=True)", timeit(lambda i: kjit(xs[i % 3]), reps),
                     "per sample"))
    except Exception as e:
        rows.append(("Keras 3 layers in tf.function(jit_compile=True)", None,
                     f"fails: {type(e).__name__} ({_first_line(e)})"))
    return rows


# ---------------------------------------------------------------------- report


def _first_line(e: Exception) -> str:
    """The informative line of a (long, traceback-laden) TF error, for the table."""
    text = str(e)
    if "unsupported operations" in text and "ImageProjectiveTransformV3" in text:
        return "XLA: unsupported op ImageProjectiveTransformV3"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("File ")]
    for key in ("No registered", "tf2xla conversion failed", "XLA", "Xla", "kernel"):
        for line in lines:
            if key in line:
                return line.replace("|", "/")[:120]
    return lines[-1].replace("|", "/")[:120] if lines else ""


def table(title: str, rows: list[tuple[str, float | None, str]], peers: list[str]) -> str:
    ours = [t for name, t, _ in rows if name.startswith("augspec") and t is not None]
    best = min(ours) if ours else None
    peer_times = {name: t for name, t, _ in rows if name in peers and t is not None}
    out = [f"### {title}", "", "| row | ms / batch | params | " + " | ".join(f"x vs {p}" for p in peer_times) + " |",
           "|---|---:|---|" + "---:|" * len(peer_times)]
    for name, t, note in rows:
        ms = f"{t * 1e3:.1f}" if t is not None else "n/a"
        ratios = [f"{pt / t:.1f}x" if (t is not None and name.startswith("augspec")) else "" for pt in
                  peer_times.values()]
        out.append(f"| {name} | {ms} | {note} | " + " | ".join(ratios) + " |")
    if best is not None:
        out.append("")
        out.append("Best augspec row: " + ", ".join(f"{pt / best:.1f}x faster than {p}" for p, pt in
                                                    peer_times.items()) + ".")
    return "\n".join(out)


def machine() -> str:
    from augspec.bench import cpu_name

    cpu = cpu_name()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores (load average {load:.1f} at start), Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed calls per R2 row")
    ap.add_argument("--r1-reps", type=int, default=30, help="timed calls per R1 row (they are short)")
    ap.add_argument("--r2-batch", type=int, default=64)
    ap.add_argument("--r1-batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224, help="R2 image side (224 in the recipe)")
    ap.add_argument("--only", choices=["r1", "r2"], default=None)
    ap.add_argument("--write", default=None, help="also write the markdown report to this file")
    args = ap.parse_args()

    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    parts = ["# TensorFlow backend: benchmarks (RECIPES.md R2 and R1, CPU)", "",
             f"- date: {date}", f"- machine: {machine()}",
             f"- command: `PYTHONPATH=src python benchmarks/bench_tensorflow.py --reps {args.reps} "
             f"--r1-reps {args.r1_reps}`",
             "- median of the timed calls after 3 warm-ups, 3 input buffers in rotation, results read back; "
             "parameter sampling included; ratio = peer time / augspec time", ""]
    if args.only in (None, "r2"):
        rows, missing = bench_r2(args.r2_batch, args.reps, args.size)
        parts.append(table(f"R2: {args.size} x {args.size} uint8 -> float32, batch {args.r2_batch}, K = 1000", rows,
                           ["Keras 3 layers in tf.function"]))
        parts.append("")
        parts.append("Keras 3 layers used: RandomRotation, RandomTranslation, RandomZoom, RandomShear, RandomFlip, "
                     "RandomColorJitter, RandomErasing, Rescaling, Normalization, MixUp (alpha 0.8; the recipe's "
                     "CutMix alternative and per-sample choice are not in this chain), label smoothing as one "
                     "expression. Missing in this Keras: " + (", ".join(missing) or "none") + ".")
        parts.append("")
        print("\n".join(parts[-4:]), flush=True)
    if args.only in (None, "r1"):
        rows = bench_r1(args.r1_batch, args.r1_reps)
        parts.append(table(f"R1: 32 x 32 uint8, batch {args.r1_batch}, featurewise statistics fitted", rows,
                           ["tf_keras ImageDataGenerator.flow", "Keras 3 layers in tf.function"]))
        parts.append("")
        print(parts[-2], flush=True)
    report = "\n".join(parts)
    if args.write:
        with open(args.write, "w") as f:
            f.write(report + "\n")
    print(f"\n(date {datetime.datetime.now().isoformat(timespec='seconds')})")


if __name__ == "__main__":
    main()
