"""Regularizers on scarce data: a small CNN on 10 % of scikit-learn's handwritten digits.

    python examples/scarce_data.py --framework torch        # or tensorflow; a few minutes on 2 CPU cores
    python examples/scarce_data.py --tiny --out /tmp/sd     # a smoke test (seconds)

Data: ``sklearn.datasets.load_digits`` (1797 8x8 greyscale digits, bundled, no
download), upsampled to 16x16, split half/half into train and test (stratified);
each run trains on a stratified 10 % of the training half (about 90 images) and
is scored on the whole test half. Settings, each on three seeds:

    none               no regularization
    geo+pixel          Affine (rotate 10, translate 0.1, scale 0.9-1.1, shear 5),
                       brightness / contrast 0.2, Gaussian noise 0.03
    geo+pixel+cutout   ... + CutOut (1 hole, 0.2-0.4 of the side)
    geo+pixel+mixup    ... + MixUp (alpha 0.4)
    geo+pixel+cutmix   ... + CutMix (alpha 1.0)
    geo+pixel+smooth   ... + label smoothing 0.1
    geo+pixel+dropout  ... + dropout 0.3 in the model's head
    all                geo+pixel + CutOut + (MixUp or CutMix) + smoothing + dropout

(No flips: a mirrored digit is another symbol.) The pipeline is compiled for the
framework's own backend (``torch``: NCHW tensors; ``tensorflow``: NHWC tensors),
falling back to NumPy if that backend is not installed. Output, in ``--out``: a
markdown table of test accuracy and expected calibration error (ECE, 15 bins;
mean ± std over seeds), a bar chart and a reliability diagram (PNG, drawn with Pillow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import augspec as aug

CLASSES = 10
SIDE = 16
ECE_BINS = 15


# ------------------------------------------------------------------- data


def load_digits_images(side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(N, side, side, 1) float32 in [0, 1] and (N,) int64 labels."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    if side != 8:
        x = zoom(x, (1, side / 8, side / 8), order=1)
    return np.clip(x, 0.0, 1.0)[..., None].astype(np.float32), d.target.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.5, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)


def stratified_subset(y: np.ndarray, fraction: float | None = None, per_class: int | None = None,
                      seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subset: ``fraction`` of each class, or ``per_class`` of each."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = per_class if per_class is not None else max(1, int(round(fraction * len(members))))
        idx.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(idx))


# -------------------------------------------------------------- settings


def geo_pixel() -> list[aug.Op]:
    return [aug.Affine(rotate=10, translate=0.1, scale=(0.9, 1.1), shear=5),
            aug.ColorJitter(brightness=0.2, contrast=0.2), aug.GaussianNoise(std=0.03)]


def settings() -> dict[str, tuple[list[aug.Op], float]]:
    """name -> (augspec ops, dropout rate of the model's head)."""
    g = geo_pixel
    return {
        "none": ([], 0.0),
        "geo+pixel": (g(), 0.0),
        "geo+pixel+cutout": (g() + [aug.CutOut(holes=1, size=(0.2, 0.4))], 0.0),
        "geo+pixel+mixup": (g() + [aug.MixUp(alpha=0.4)], 0.0),
        "geo+pixel+cutmix": (g() + [aug.CutMix(alpha=1.0)], 0.0),
        "geo+pixel+smooth": (g() + [aug.LabelSmoothing(0.1)], 0.0),
        "geo+pixel+dropout": (g(), 0.3),
        "all": (g() + [aug.CutOut(holes=1, size=(0.2, 0.4)), aug.OneOf([aug.MixUp(alpha=0.4), aug.CutMix(alpha=1.0)]),
                       aug.LabelSmoothing(0.1)], 0.3),
    }


# ---------------------------------------------------------------- metrics


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of |accuracy - confidence| x bin share."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: accuracy, mean confidence, count."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    acc, cf, n = np.zeros(bins), np.zeros(bins), np.zeros(bins, int)
    for b in range(bins):
        m = idx == b
        n[b] = m.sum()
        if n[b]:
            acc[b], cf[b] = correct[m].mean(), conf[m].mean()
    return acc, cf, n


# ------------------------------------------------------------ frameworks


def compile_for(framework: str, pipe: aug.Pipeline) -> tuple[Any, str]:
    """The pipeline compiled for the framework's backend, else NumPy (then batches are converted)."""
    names = {b.name for b in aug.list_backends() if b.available}
    if framework in names:
        try:
            return pipe.compile(framework), framework
        except Exception as e:  # the backend is there but cannot take this pipeline
            print(f"  ({framework} backend unusable: {e}; using numpy)", file=sys.stderr)
    return pipe.compile("numpy"), "numpy"


class TorchModel:
    """conv16-conv16-pool-conv32-pool | dropout-fc64-dropout | fc(classes), NCHW."""

    def __init__(self, classes: int, dropout: float, seed: int, side: int = SIDE):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(32 * (side // 4) ** 2, 64), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(64, classes)
        self.net = nn.Sequential(self.features, self.head)

    def to_input(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def new_head(self, classes: int, seed: int) -> None:
        from torch import nn

        self.torch.manual_seed(seed)
        self.head = nn.Linear(64, classes)
        self.net = self.torch.nn.Sequential(self.features, self.head)

    def trainable(self, part: str) -> list[Any]:
        """``all``, ``head``, or ``last`` (the last conv block and the head)."""
        if part == "all":
            return list(self.net.parameters())
        if part == "head":
            return list(self.head.parameters())
        return list(self.features[5].parameters()) + list(self.features[10].parameters()) + list(self.head.parameters())

    def fit(self, x: Any, soft_labels_fn: Callable[[Any, np.ndarray], tuple[Any, Any]], y: np.ndarray,
            steps: int, batch: int, lr: float, seed: int, part: str = "all") -> None:
        torch = self.torch
        params = self.trainable(part)
        for p in self.net.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=lr)
        rng = np.random.default_rng(seed)
        self.net.train()
        if part == "head":
            self.features.eval()  # frozen features: no dropout there either
        for _ in range(steps):
            idx = rng.integers(0, len(y), batch)
            xb, yb = soft_labels_fn(x[idx], y[idx])
            loss = -(yb * torch.log_softmax(self.net(xb), dim=1)).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def predict(self, x: Any) -> np.ndarray:
        self.net.eval()
        with self.torch.no_grad():
            return self.torch.softmax(self.net(x), dim=1).numpy()


class KerasModel:
    """The same CNN in Keras (NHWC), trained with a GradientTape loop."""

    def __init__(self, classes: int, dropout: float, seed: int, side: int = SIDE):
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        self.tf, self.keras = tf, keras
        L = keras.layers
        self.features = keras.Sequential([
            keras.Input((side, side, 1)),
            L.Conv2D(16, 3, padding="same", activation="relu"), L.Conv2D(16, 3, padding="same", activation="relu"),
            L.MaxPooling2D(), L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(), L.Flatten(),
            L.Dropout(dropout), L.Dense(64, activation="relu"), L.Dropout(dropout)])
        self.new_head(classes, seed)

    def to_input(self, x: np.ndarray) -> Any:
        return self.tf.convert_to_tensor(x)

    def new_head(self, classes: int, seed: int) -> None:
        self.keras.utils.set_random_seed(seed)
        self.head = self.keras.layers.Dense(classes)
        self.head.build((None, 64))

    def trainable(self, part: str) -> list[Any]:
        if part == "all":
            return self.features.trainable_variables + self.head.trainable_variables
        if part == "head":
            return list(self.head.trainable_variables)
        convs = [layer for layer in self.features.layers if isinstance(layer, self.keras.layers.Conv2D)]
        dense = [layer for layer in self.features.layers if isinstance(layer, self.keras.layers.Dense)]
        return convs[-1].trainable_variables + dense[-1].trainable_variables + self.head.trainable_variables

    def fit(self, x: Any, soft_labels_fn: Callable[[Any, np.ndarray], tuple[Any, Any]], y: np.ndarray,
            steps: int, batch: int, lr: float, seed: int, part: str = "all") -> None:
        tf = self.tf
        variables = self.trainable(part)
        opt = self.keras.optimizers.Adam(lr)
        rng = np.random.default_rng(seed)
        train_features = part != "head"

        @tf.function
        def step(xb: Any, yb: Any) -> Any:
            with tf.GradientTape() as tape:
                logits = self.head(self.features(xb, training=train_features))
                loss = tf.reduce_mean(tf.reduce_sum(-yb * tf.nn.log_softmax(logits), axis=1))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        for _ in range(steps):
            idx = rng.integers(0, len(y), batch)
            xb, yb = soft_labels_fn(tf.gather(x, idx), y[idx])
            step(xb, tf.cast(yb, tf.float32))

    def predict(self, x: Any) -> np.ndarray:
        return self.tf.nn.softmax(self.head(self.features(x, training=False))).numpy()


def make_model(framework: str, classes: int, dropout: float, seed: int) -> Any:
    return TorchModel(classes, dropout, seed) if framework == "torch" else KerasModel(classes, dropout, seed)


def augmenter(framework: str, model: Any, ops: list[aug.Op], classes: int, seed: int
              ) -> tuple[Callable[[Any, np.ndarray], tuple[Any, Any]], str]:
    """A function (framework batch, int labels) -> (augmented batch, (N, K) soft labels), and the backend used."""
    if not ops:
        eye = np.eye(classes, dtype=np.float32)
        return (lambda xb, yb: (xb, _labels_like(framework, eye[yb]))), "-"
    run, backend = compile_for(framework, aug.Pipeline(ops, num_classes=classes, seed=seed))

    def fn(xb: Any, yb: np.ndarray) -> tuple[Any, Any]:
        if backend == framework:
            ids = model.torch.from_numpy(yb) if framework == "torch" else model.tf.convert_to_tensor(yb)
            xo, yo = run(xb, ids)
        else:  # NumPy fallback: NHWC NumPy in and out
            xn = np.asarray(xb.numpy() if hasattr(xb, "numpy") else xb)
            xn = xn.transpose(0, 2, 3, 1) if framework == "torch" else xn
            xo, yo = run(xn, yb)
            xo = model.to_input(np.asarray(xo, np.float32))
            yo = _labels_like(framework, np.asarray(yo))
        if len(yo.shape) == 1:  # no label-changing op: class ids came back
            yo = _labels_like(framework, np.eye(classes, dtype=np.float32)[np.asarray(yo)])
        return xo, yo

    return fn, backend


def _labels_like(framework: str, y: np.ndarray) -> Any:
    if framework == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    import tensorflow as tf

    return tf.convert_to_tensor(y.astype(np.float32))


# ------------------------------------------------------------------ charts


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def bar_panel(draw: Any, box: tuple[int, int, int, int], title: str, labels: list[str], means: list[float],
              stds: list[float], ymax: float, fmt: str = "{:.3f}", colour=(70, 110, 180)) -> None:
    """One bar chart with error bars in ``box`` = (left, top, right, bottom)."""
    left, top, right, bottom = box
    f, fs = _font(14), _font(11)
    draw.text((left, top), title, fill="black", font=f)
    x0, y0, x1, y1 = left + 44, top + 26, right - 8, bottom - 70
    for k in range(5):
        v = ymax * k / 4
        yy = y1 - (y1 - y0) * k / 4
        draw.line([(x0, yy), (x1, yy)], fill=(225, 225, 225))
        draw.text((left, yy - 7), f"{v:.2f}", fill="black", font=fs)
    n = len(labels)
    w = (x1 - x0) / n
    for i, (lab, m, s) in enumerate(zip(labels, means, stds)):
        cx = x0 + w * (i + 0.5)
        h = (y1 - y0) * min(m, ymax) / ymax
        draw.rectangle([cx - w * 0.35, y1 - h, cx + w * 0.35, y1], fill=colour)
        e0, e1 = (y1 - (y1 - y0) * min(max(v, 0), ymax) / ymax for v in (m - s, m + s))
        draw.line([(cx, e0), (cx, e1)], fill="black", width=2)
        draw.line([(cx - 5, e0), (cx + 5, e0)], fill="black")
        draw.line([(cx - 5, e1), (cx + 5, e1)], fill="black")
        draw.text((cx - w * 0.45, y1 - h - 15), fmt.format(m), fill="black", font=fs)
        for j, part in enumerate(lab.replace("geo+pixel+", "+").split("+") if lab.startswith("geo") else [lab]):
            draw.text((cx - w * 0.45, y1 + 6 + 13 * j), ("+" if j and lab.startswith("geo+pixel") else "") + part,
                      fill="black", font=fs)
    draw.line([(x0, y1), (x1, y1)], fill="black")
    draw.line([(x0, y0), (x0, y1)], fill="black")


def reliability_panel(draw: Any, box: tuple[int, int, int, int], title: str, acc: np.ndarray, conf: np.ndarray,
                      count: np.ndarray) -> None:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration."""
    left, top, right, bottom = box
    f, fs = _font(14), _font(11)
    draw.text((left, top), title, fill="black", font=f)
    x0, y0 = left + 40, top + 26
    side = min(right - x0 - 8, bottom - y0 - 36)
    x1, y1 = x0 + side, y0 + side
    bins = len(acc)
    for b in range(bins):
        if count[b] == 0:
            continue
        bx0, bx1 = x0 + side * b / bins, x0 + side * (b + 1) / bins
        draw.rectangle([bx0 + 1, y1 - side * acc[b], bx1 - 1, y1], fill=(70, 110, 180))
        gap_top, gap_bot = sorted((y1 - side * acc[b], y1 - side * conf[b]))
        draw.rectangle([bx0 + 1, gap_top, bx1 - 1, gap_bot], outline=(200, 60, 60))
    draw.line([(x0, y1), (x1, y0)], fill=(120, 120, 120), width=1)
    draw.rectangle([x0, y0, x1, y1], outline="black")
    for k in range(0, 11, 5):
        draw.text((x0 + side * k / 10 - 8, y1 + 4), f"{k / 10:.1f}", fill="black", font=fs)
        draw.text((left, y1 - side * k / 10 - 7), f"{k / 10:.1f}", fill="black", font=fs)
    draw.text((x0 + side / 2 - 30, y1 + 18), "confidence", fill="black", font=fs)


# -------------------------------------------------------------------- main


def run_setting(framework: str, name: str, ops: list[aug.Op], dropout: float, data: tuple, seed: int,
                steps: int, batch: int, lr: float, model: Any = None) -> dict[str, Any]:
    """Train on the seed's 10 % of the training half (a fresh model, or ``model``: one with a
    ``CLASSES``-way head, e.g. pretrained) and score on the test half."""
    x_tr, y_tr, x_te, y_te = data
    idx = stratified_subset(y_tr, fraction=0.1, seed=seed)
    model = make_model(framework, CLASSES, dropout, seed) if model is None else model
    fn, backend = augmenter(framework, model, ops, CLASSES, seed)
    t0 = time.perf_counter()
    model.fit(model.to_input(x_tr[idx]), fn, y_tr[idx], steps, batch, lr, seed)
    probs = model.predict(model.to_input(x_te))
    return {"setting": name, "seed": seed, "n_train": len(idx), "acc": float((probs.argmax(1) == y_te).mean()),
            "ece": ece(probs, y_te), "probs": probs, "backend": backend, "seconds": time.perf_counter() - t0}


def summarize(results: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for n in names:
        rs = [r for r in results if r["setting"] == n]
        a, e = np.array([r["acc"] for r in rs]), np.array([r["ece"] for r in rs])
        out[n] = {"acc": a.mean(), "acc_std": a.std(), "ece": e.mean(), "ece_std": e.std(), "seeds": len(rs),
                  "backend": rs[0]["backend"], "n_train": rs[0]["n_train"],
                  "seconds": np.mean([r["seconds"] for r in rs])}
    return out


def markdown(summary: dict[str, dict[str, float]], args: argparse.Namespace, n_test: int) -> str:
    lines = [f"Digits (scikit-learn), {SIDE}x{SIDE}, trained on 10 % of the training half "
             f"(~{next(iter(summary.values()))['n_train']} images), tested on {n_test}; framework {args.framework}, "
             f"{args.steps} steps of batch {args.batch}, Adam lr {args.lr}; mean ± std over seeds "
             f"{', '.join(map(str, args.seed_list))}.", "",
             "| setting | test accuracy | ECE (15 bins) | augspec backend | s / run |", "|---|---:|---:|---|---:|"]
    for n, s in summary.items():
        lines.append(f"| {n} | {s['acc']:.3f} ± {s['acc_std']:.3f} | {s['ece']:.3f} ± {s['ece_std']:.3f} | "
                     f"{s['backend']} | {s['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def charts(summary: dict[str, dict[str, float]], results: list[dict[str, Any]], y_te: np.ndarray, out: Path,
           stem: str) -> list[Path]:
    from PIL import Image, ImageDraw

    names = list(summary)
    img = Image.new("RGB", (1100, 420), "white")
    d = ImageDraw.Draw(img)
    bar_panel(d, (10, 10, 550, 410), "test accuracy (mean ± std over seeds)", names,
              [summary[n]["acc"] for n in names], [summary[n]["acc_std"] for n in names], 1.0)
    ymax = max(0.05, max(summary[n]["ece"] + summary[n]["ece_std"] for n in names) * 1.2)
    bar_panel(d, (560, 10, 1090, 410), "expected calibration error (lower is better)", names,
              [summary[n]["ece"] for n in names], [summary[n]["ece_std"] for n in names], ymax,
              colour=(200, 120, 60))
    bars = out / f"{stem}.png"
    img.save(bars)
    shown = [n for n in ("none", "geo+pixel", "all") if n in summary] or names[:3]
    img = Image.new("RGB", (330 * len(shown) + 10, 380), "white")
    d = ImageDraw.Draw(img)
    for i, n in enumerate(shown):
        probs = np.concatenate([r["probs"] for r in results if r["setting"] == n])
        ys = np.concatenate([y_te for r in results if r["setting"] == n])
        acc, conf, count = reliability(probs, ys)
        reliability_panel(d, (10 + 330 * i, 10, 330 * (i + 1), 370), f"{n}: ECE {ece(probs, ys):.3f}", acc, conf, count)
    rel = out / f"{stem}_reliability.png"
    img.save(rel)
    return [bars, rel]


def example_parser(doc: str, steps: int, batch: int, lr: float, steps_help: str = "training steps per run",
                   lr_help: str | None = None) -> argparse.ArgumentParser:
    """The flags every example shares: --framework, --seeds, --steps, --batch, --lr."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--framework", choices=("torch", "tensorflow"), default="torch")
    p.add_argument("--seeds", default="0,1,2", help="comma separated (default 0,1,2)")
    p.add_argument("--steps", type=int, default=steps, help=f"{steps_help} (default {steps})")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    return p


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``p``'s arguments, with ``seed_list`` the seeds as integers."""
    args = p.parse_args(argv)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def chosen_settings(only: str | None, table: dict[str, Any]) -> list[str] | None:
    """The setting names ``--only`` asks for (all by default), or None (said on stderr) when
    one is not in ``table``."""
    names = [n.strip() for n in only.split(",")] if only else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"unknown settings {unknown}; choose from {list(table)}", file=sys.stderr)
        return None
    return names


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = example_parser(__doc__, steps=500, batch=32, lr=2e-3)
    p.add_argument("--only", help="comma separated setting names (default: all)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for the table and charts")
    p.add_argument("--tiny", action="store_true", help="smoke test: 1 seed, 3 settings, 15 steps")
    args = parse_args(p, argv)
    if args.tiny:
        args.seed_list, args.steps, args.batch = args.seed_list[:1], 15, 16
        args.only = args.only or "none,geo+pixel+cutmix,all"
    return args


def one_thread(framework: str) -> None:
    """Run the framework on one thread: a model this small runs best so (and the CPU may be shared)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if framework == "torch":
        import torch

        torch.set_num_threads(1)
    else:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started in this process
            pass


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    one_thread(args.framework)
    x, y = load_digits_images()
    x_tr, x_te, y_tr, y_te = split(x, y)
    table = settings()
    names = chosen_settings(args.only, table)
    if names is None:
        return 2
    results = []
    for n in names:
        ops, dropout = table[n]
        for s in args.seed_list:
            r = run_setting(args.framework, n, ops, dropout, (x_tr, y_tr, x_te, y_te), s, args.steps, args.batch,
                            args.lr)
            print(f"  {n:<18} seed {s}: accuracy {r['acc']:.3f}  ECE {r['ece']:.3f}  ({r['seconds']:.1f} s, "
                  f"backend {r['backend']})", flush=True)
            results.append(r)
    summary = summarize(results, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"scarce_data_{args.framework}"
    text = markdown(summary, args, len(y_te))
    (out / f"{stem}.md").write_text(text)
    pngs = charts(summary, results, y_te, out, stem)
    print()
    print(text)
    for p in [out / f"{stem}.md", *pngs]:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
