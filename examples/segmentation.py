"""Semantic segmentation on scarce data: masks that follow the images through the augmentation.

    python examples/segmentation.py --framework torch           # or tensorflow; a few minutes on 2 CPU cores
    python examples/segmentation.py --tiny --out /tmp/seg       # a smoke test (seconds)

Data, built here with no download: random square crops of photographs that ship with
scikit-image (``skimage.data``: astronaut, coffee, chelsea, rocket, camera, coins,
...), resized to 48x48 RGB, with one to three filled shapes pasted on each: a disc, a
square (standing on a side) or a triangle (apex up), squares and triangles turned by
up to 10 degrees; random colour, shading, size (circumradius 1/10 to 1/4.5 of the
side) and place; a later shape covers an earlier one. The mask holds each pixel's
class: 0 background, 1 disc, 2 square, 3 triangle. 96 training images and 400 test
images, drawn once with fixed seeds (other crops of the same photographs). A small
U-Net (conv-BN-ReLU, 8-16-32 channels at full, half and quarter resolution, skip
connections, 27k parameters) is trained from scratch, Adam with a cosine decay,
with per-pixel cross-entropy that ignores the index 255. Settings, each on three
seeds (the seed sets the initialisation, the minibatch order and the augmentation
stream; the data stay fixed):

    none             no augmentation
    augment          RandomResizedCrop (48x48, scale 0.7-1, ratio 0.9-1.1),
                     HorizontalFlip, Affine (rotate 10, p 0.5), ColorJitter
                     (brightness / contrast / saturation 0.2); the masks go through
                     the same crop, flip and rotation (nearest), 255 where the
                     rotation leaves no source pixel
    augment+cutmix   ... + CutMix (alpha 1): in the pasted rectangle the mask takes
                     the partner's classes

Stronger geometry (scale 0.5-1 with the default ratios, rotate 15) needs many more
steps than this budget: on one seed it only matched ``none`` after 1500 steps.

Each batch is augmented by the compiled pipeline in one call, ``run(images,
masks=masks)``, compiled for the framework's own backend (``torch``: NCHW tensors;
``tensorflow``: NHWC tensors, the call wrapped in a ``tf.function``) with
``targets={"ignore_index": 255}``, falling back to NumPy if that backend is not
installed. Output, in ``--out``: ``segmentation_<framework>.md``, a markdown table of
test mIoU (mean of the four classes' IoU, background included) and pixel accuracy
(mean ± std over seeds), and each class's IoU (mean over seeds).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import augspec as aug

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scarce_data as sd  # noqa: E402  (one_thread: the frameworks on one thread)

SIDE = 48
CLASSES = 4
CLASS_NAMES = ("background", "disc", "square", "triangle")
IGNORE = 255
#: photographs bundled with scikit-image (grey ones are made RGB)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "camera",
          "coins", "brick", "grass", "gravel", "moon")
#: the seeds of the data (fixed for every run)
TRAIN_DATA_SEED, TEST_DATA_SEED = 1000, 2000
#: shapes per image (at least, at most) and their circumradius as a share of the side
SHAPES, RADIUS = (1, 3), (1 / 10, 1 / 4.5)
#: squares stand on a side and triangles on their base, turned by at most this many degrees
TILT = 10.0
#: the U-Net's channels at full resolution (2x and 4x at half and quarter)
WIDTH = 8


# ------------------------------------------------------------------- data


def load_photos() -> list[np.ndarray]:
    """The background photographs as uint8 RGB arrays."""
    import skimage.data

    out = []
    for name in PHOTOS:
        a = np.asarray(getattr(skimage.data, name)())
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        out.append(np.ascontiguousarray(a[..., :3]).astype(np.uint8))
    return out


def _shape_polygon(kind: int, cx: float, cy: float, r: float, tilt: float) -> list[tuple[float, float]]:
    """The corners of a square (kind 2) or triangle (kind 3, apex up) of circumradius ``r``, turned by ``tilt`` radians."""
    k = 4 if kind == 2 else 3
    angle = tilt + (np.pi / 4 if kind == 2 else -np.pi / 2)
    return [(cx + r * np.cos(angle + 2 * np.pi * i / k), cy + r * np.sin(angle + 2 * np.pi * i / k)) for i in range(k)]


def make_dataset(n: int, seed: int, photos: list[np.ndarray], side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N, side, side, 3) float32 in [0, 1] and their masks (N, side, side) uint8."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    pil = [Image.fromarray(p) for p in photos]
    xs = np.empty((n, side, side, 3), np.float32)
    ms = np.zeros((n, side, side), np.uint8)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for i in range(n):
        im = pil[rng.integers(len(pil))]
        w, h = im.size
        c = rng.uniform(0.25, 0.7) * min(w, h)
        x0, y0 = rng.uniform(0, w - c), rng.uniform(0, h - c)
        bg = im.resize((side, side), Image.BILINEAR, box=(x0, y0, x0 + c, y0 + c))
        x = np.asarray(bg, np.float32) / 255.0
        mask = np.zeros((side, side), np.uint8)
        for _ in range(rng.integers(SHAPES[0], SHAPES[1] + 1)):
            kind = int(rng.integers(1, CLASSES))
            r = rng.uniform(RADIUS[0] * side, RADIUS[1] * side)
            cx, cy = rng.uniform(r * 0.5, side - r * 0.5, size=2)
            layer = Image.new("L", (side, side), 0)
            d = ImageDraw.Draw(layer)
            if kind == 1:
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
            else:
                d.polygon(_shape_polygon(kind, cx, cy, r, np.deg2rad(rng.uniform(-TILT, TILT))), fill=1)
            inside = np.asarray(layer, bool)
            colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
            gx, gy = rng.normal(0.0, 0.15, 2)  # a shading gradient across the shape
            shade = (gx * (xx - cx / side) + gy * (yy - cy / side))[..., None]
            x = np.where(inside[..., None], np.clip(colour + shade, 0.0, 1.0), x)
            mask[inside] = kind
        x = x + rng.normal(0.0, 0.02, x.shape).astype(np.float32)
        xs[i], ms[i] = np.clip(x, 0.0, 1.0), mask
    return xs, ms


# -------------------------------------------------------------- settings


def augment_ops(side: int = SIDE) -> list[aug.Op]:
    """Crop, flip, a small rotation and colour; the masks follow the crop, the flip and the rotation."""
    return [aug.RandomResizedCrop((side, side), scale=(0.7, 1.0), ratio=(0.9, 1.1)), aug.HorizontalFlip(),
            aug.Affine(rotate=10, p=0.5), aug.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)]


def settings() -> dict[str, list[aug.Op]]:
    return {"none": [], "augment": augment_ops(), "augment+cutmix": augment_ops() + [aug.CutMix(alpha=1.0)]}


# ---------------------------------------------------------------- metrics


def confusion(pred: np.ndarray, gt: np.ndarray, classes: int = CLASSES, ignore: int = IGNORE) -> np.ndarray:
    """(classes, classes) pixel counts, rows the true class, columns the predicted one; pixels of ``ignore`` left out."""
    keep = gt != ignore
    g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    return np.bincount(g * classes + p, minlength=classes * classes).reshape(classes, classes)


def scores(cm: np.ndarray) -> dict[str, Any]:
    """mIoU (the mean over classes of TP / (TP + FP + FN); a class absent from both truth and
    prediction is left out of the mean), pixel accuracy and each class's IoU."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)), "pixel_acc": float(tp.sum() / max(cm.sum(), 1)), "iou": iou}


# ------------------------------------------------------------ frameworks


class TorchUNet:
    """A small U-Net (NCHW): conv-BN-ReLU blocks of ``width``, 2x and 4x channels at full, half
    and quarter resolution, nearest upsampling, skip connections."""

    def __init__(self, seed: int, width: int = WIDTH, classes: int = CLASSES):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        F = torch.nn.functional

        def block(i: int, o: int, convs: int = 2) -> Any:
            layers: list[Any] = []
            for k in range(convs):
                layers += [nn.Conv2d(i if k == 0 else o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
            return nn.Sequential(*layers)

        c = width

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.e1, self.e2, self.b = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
                self.d2, self.d1 = block(6 * c, 2 * c, 1), block(3 * c, c, 1)
                self.head = nn.Conv2d(c, classes, 1)

            def forward(self, x: Any) -> Any:
                e1 = self.e1(x)
                e2 = self.e2(F.max_pool2d(e1, 2))
                b = self.b(F.max_pool2d(e2, 2))
                d2 = self.d2(torch.cat([F.interpolate(b, scale_factor=2.0, mode="nearest"), e2], 1))
                d1 = self.d1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))
                return self.head(d1)

        self.net = Net()

    def to_input(self, x: np.ndarray, m: np.ndarray) -> tuple[Any, Any]:
        torch = self.torch
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(m)

    def fit(self, x: Any, m: Any, augment: Callable[[Any, Any], tuple[Any, Any]], steps: int, batch: int, lr: float,
            seed: int, xla: bool = True) -> None:
        """Adam with a cosine decay of the learning rate to 0 over ``steps`` (``xla``: TensorFlow only)."""
        torch = self.torch
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        rng = np.random.default_rng(seed)
        self.net.train()
        for _ in range(steps):
            idx = torch.from_numpy(rng.integers(0, len(m), batch))
            xb, mb = augment(x[idx], m[idx])
            loss = torch.nn.functional.cross_entropy(self.net(xb), mb.long(), ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()

    def predict(self, x: Any, batch: int = 100) -> np.ndarray:
        """(N, H, W) predicted class ids."""
        self.net.eval()
        with self.torch.no_grad():
            return np.concatenate([self.net(x[i:i + batch]).argmax(1).numpy() for i in range(0, len(x), batch)])


class KerasUNet:
    """The same U-Net in Keras (NHWC), trained with a GradientTape loop."""

    def __init__(self, seed: int, width: int = WIDTH, classes: int = CLASSES, side: int = SIDE):
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        self.tf, self.keras = tf, keras
        L = keras.layers

        def block(t: Any, o: int, convs: int = 2) -> Any:
            for _ in range(convs):
                t = L.Conv2D(o, 3, padding="same", use_bias=False)(t)
                t = L.ReLU()(L.BatchNormalization(momentum=0.9, epsilon=1e-5)(t))  # torch's BatchNorm2d defaults
            return t

        c = width
        inp = keras.Input((side, side, 3))
        e1 = block(inp, c)
        e2 = block(L.MaxPooling2D()(e1), 2 * c)
        b = block(L.MaxPooling2D()(e2), 4 * c)
        d2 = block(L.Concatenate()([L.UpSampling2D()(b), e2]), 2 * c, 1)
        d1 = block(L.Concatenate()([L.UpSampling2D()(d2), e1]), c, 1)
        self.net = keras.Model(inp, L.Conv2D(classes, 1)(d1))

    def to_input(self, x: np.ndarray, m: np.ndarray) -> tuple[Any, Any]:
        return self.tf.convert_to_tensor(x), self.tf.convert_to_tensor(m)

    def fit(self, x: Any, m: Any, augment: Callable[[Any, Any], tuple[Any, Any]], steps: int, batch: int, lr: float,
            seed: int, xla: bool = True) -> None:
        """As ``TorchUNet.fit``; ``xla``: the step compiled with XLA (about twice as fast on the
        CPU as the plain graph, after a compilation of several seconds)."""
        tf = self.tf
        net = self.net
        opt = self.keras.optimizers.Adam(self.keras.optimizers.schedules.CosineDecay(lr, max(steps, 1)))
        rng = np.random.default_rng(seed)

        @tf.function(jit_compile=xla)
        def step(xb: Any, mb: Any) -> Any:
            mb = tf.cast(mb, tf.int32)
            valid = mb != IGNORE
            weight = tf.cast(valid, tf.float32)
            with tf.GradientTape() as tape:
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.where(valid, mb, 0), net(xb, training=True))
                loss = tf.reduce_sum(ce * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
            opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
            return loss

        for _ in range(steps):
            idx = rng.integers(0, int(m.shape[0]), batch)
            xb, mb = augment(tf.gather(x, idx), tf.gather(m, idx))
            step(xb, mb)

    def predict(self, x: Any, batch: int = 100) -> np.ndarray:
        tf = self.tf
        return np.concatenate([tf.argmax(self.net(x[i:i + batch], training=False), -1).numpy()
                               for i in range(0, int(x.shape[0]), batch)])


def make_model(framework: str, seed: int) -> Any:
    return TorchUNet(seed) if framework == "torch" else KerasUNet(seed)


def augmenter(framework: str, ops: list[aug.Op], seed: int) -> tuple[Callable[[Any, Any], tuple[Any, Any]], str]:
    """A function (framework images, framework masks) -> the augmented pair, and the augspec backend used."""
    if not ops:
        return (lambda xb, mb: (xb, mb)), "-"
    pipe = aug.Pipeline(ops, seed=seed)
    rules = {"ignore_index": IGNORE}
    backend = "numpy"
    run = None
    if framework in {b.name for b in aug.list_backends() if b.available}:
        try:
            run, backend = pipe.compile(framework, targets=rules), framework
        except Exception as e:  # the backend is there but cannot take this pipeline
            print(f"  ({framework} backend unusable: {e}; using numpy)", file=sys.stderr)
    if run is None:
        run = pipe.compile("numpy", targets=rules)
    call = run
    if backend == "tensorflow":
        import tensorflow as tf

        # inside the training loop's own tf.function style: one graph per input signature
        call = tf.function(lambda images, masks: run(images, masks=masks))

    def fn(xb: Any, mb: Any) -> tuple[Any, Any]:
        if backend == framework:
            out = call(xb, masks=mb)
            return out["images"], out["masks"]
        xn, mn = np.asarray(xb.numpy()), np.asarray(mb.numpy())  # NumPy fallback: NHWC NumPy in and out
        out = run(xn.transpose(0, 2, 3, 1) if framework == "torch" else xn, masks=mn)
        xo, mo = np.asarray(out["images"], np.float32), np.asarray(out["masks"])
        if framework == "torch":
            import torch

            return torch.from_numpy(np.ascontiguousarray(xo.transpose(0, 3, 1, 2))), torch.from_numpy(mo)
        import tensorflow as tf

        return tf.convert_to_tensor(xo), tf.convert_to_tensor(mo)

    return fn, backend


# -------------------------------------------------------------------- main


def run_setting(framework: str, name: str, ops: list[aug.Op], data: tuple, seed: int, steps: int, batch: int,
                lr: float, xla: bool = True) -> dict[str, Any]:
    """A fresh U-Net trained on the training set and scored on the test set."""
    x_tr, m_tr, x_te, m_te = data
    model = make_model(framework, seed)
    fn, backend = augmenter(framework, ops, seed)
    t0 = time.perf_counter()
    model.fit(*model.to_input(x_tr, m_tr), fn, steps, batch, lr, seed, xla=xla)
    pred = model.predict(model.to_input(x_te, m_te)[0])
    s = scores(confusion(pred, m_te))
    return {"setting": name, "seed": seed, "backend": backend, "seconds": time.perf_counter() - t0, **s}


def summarize(results: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for n in names:
        rs = [r for r in results if r["setting"] == n]
        mi, pa = np.array([r["miou"] for r in rs]), np.array([r["pixel_acc"] for r in rs])
        out[n] = {"miou": mi.mean(), "miou_std": mi.std(), "pixel_acc": pa.mean(), "pixel_acc_std": pa.std(),
                  "iou": np.nanmean(np.stack([r["iou"] for r in rs]), axis=0), "backend": rs[0]["backend"],
                  "seconds": float(np.mean([r["seconds"] for r in rs])), "per_seed": {r["seed"]: r["miou"] for r in rs}}
    return out


def markdown(summary: dict[str, dict[str, Any]], args: argparse.Namespace, n_train: int, n_test: int) -> str:
    lines = [f"Shapes on scikit-image photographs, {SIDE}x{SIDE} RGB, {CLASSES} classes ({', '.join(CLASS_NAMES)}); "
             f"U-Net trained on {n_train} images, tested on {n_test}; framework {args.framework}, {args.steps} steps "
             f"of batch {args.batch}, Adam lr {args.lr}, cross-entropy ignoring {IGNORE}; mean ± std over seeds "
             f"{', '.join(map(str, args.seed_list))} (per-class IoU: the mean).", "",
             "| setting | test mIoU | pixel accuracy | " + " | ".join(f"IoU {c}" for c in CLASS_NAMES)
             + " | augspec backend | s / run |",
             "|---|---:|---:|" + "---:|" * CLASSES + "---|---:|"]
    for n, s in summary.items():
        lines.append(f"| {n} | {s['miou']:.3f} ± {s['miou_std']:.3f} | {s['pixel_acc']:.3f} ± {s['pixel_acc_std']:.3f} | "
                     + " | ".join(f"{v:.3f}" for v in s["iou"]) + f" | {s['backend']} | {s['seconds']:.1f} |")
    if "none" in summary and len(args.seed_list) > 1:
        lines.append("")
        base = summary["none"]["per_seed"]
        for n, s in summary.items():
            if n == "none":
                continue
            d = [s["per_seed"][k] - base[k] for k in sorted(base) if k in s["per_seed"]]
            lines.append(f"- {n} vs none: mIoU {s['miou'] - summary['none']['miou']:+.3f} (per seed "
                         f"{', '.join(f'{v:+.3f}' for v in d)}).")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = sd.example_parser(__doc__, steps=600, batch=16, lr=5e-3, lr_help="Adam's initial learning rate, cosine decay to 0")
    p.add_argument("--train", type=int, default=96, help="training images (default 96)")
    p.add_argument("--test", type=int, default=400, help="test images (default 400)")
    p.add_argument("--only", help="comma separated setting names (default: all)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for the table")
    p.add_argument("--tiny", action="store_true", help="smoke test: 1 seed, 16 training and 32 test images, 5 steps, no XLA")
    args = sd.parse_args(p, argv)
    if args.tiny:
        args.seed_list, args.steps, args.batch, args.train, args.test = args.seed_list[:1], 5, 8, 16, 32
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sd.one_thread(args.framework)
    table = settings()
    names = sd.chosen_settings(args.only, table)
    if names is None:
        return 2
    t_all = time.perf_counter()
    photos = load_photos()
    x_tr, m_tr = make_dataset(args.train, TRAIN_DATA_SEED, photos)
    x_te, m_te = make_dataset(args.test, TEST_DATA_SEED, photos)
    results = []
    for n in names:
        for s in args.seed_list:
            r = run_setting(args.framework, n, table[n], (x_tr, m_tr, x_te, m_te), s, args.steps, args.batch, args.lr,
                            xla=not args.tiny)
            print(f"  {n:<16} seed {s}: mIoU {r['miou']:.3f}  pixel accuracy {r['pixel_acc']:.3f}  "
                  f"({r['seconds']:.1f} s, backend {r['backend']})", flush=True)
            results.append(r)
    summary = summarize(results, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"segmentation_{args.framework}.md"
    text = markdown(summary, args, len(m_tr), len(m_te))
    path.write_text(text)
    print()
    print(text)
    print(f"wrote {path}")
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
