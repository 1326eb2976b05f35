"""The demo behind ``augspec demo`` and ``augspec preview``: one pipeline, one seed,
every available backend, one PNG grid.

Images: the photographs bundled with scikit-image (``chelsea`` the cat, ``coffee``,
``astronaut``, ``rocket``; no download), or the images of a folder; each image is
its own class. Every backend gets the same uint8 NHWC batch (converted to its
array type and layout), the same seed, hence the same random draws, and its row
is compared with the NumPy row. Each cell is captioned with its soft label,
e.g. ``cat 0.62 · coffee 0.38``.

Needs Pillow (and scikit-image for the bundled photographs): ``pip install 'augspec[demo]'``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core.containers import OneOf
from .core.errors import AugspecError, InputError
from .core.ops.color import ColorJitter
from .core.ops.geometric import Affine, HorizontalFlip
from .core.ops.label import LabelSmoothing
from .core.ops.mix import CutMix, MixUp
from .core.ops.pixel import Normalize
from .core.ops.region import CutOut
from .core.pipeline import Pipeline

#: scikit-image sample images and the class name each stands for
SAMPLE_IMAGES = (("chelsea", "cat"), ("coffee", "coffee"), ("astronaut", "astronaut"), ("rocket", "rocket"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: a row agrees with the NumPy row when 99.5 % of values are within 2/255 and labels within 1e-4
AGREE_LEVELS, AGREE_FRACTION, AGREE_LABELS = 2, 0.995, 1e-4


def default_pipeline(num_classes: int, seed: int = 0) -> Pipeline:
    """R2 of RECIPES.md without Normalize (so the output stays a picture): affine, flip,
    colour jitter, one CutOut hole, MixUp (alpha 0.8) or CutMix (alpha 1.0), smoothing 0.1."""
    return Pipeline([
        Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5),
        HorizontalFlip(p=0.5),
        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        CutOut(holes=1, size=(0.1, 0.5)),
        OneOf([MixUp(alpha=0.8), CutMix(alpha=1.0)]),
        LabelSmoothing(0.1),
    ], num_classes=num_classes, seed=seed)


# ----------------------------------------------------------------- images


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise AugspecError("the demo needs Pillow: pip install 'augspec[demo]'") from None
    return Image


def square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` x ``size`` RGB uint8 (Pillow, bicubic)."""
    Image = _pil()
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    h, w = a.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    pic = Image.fromarray(np.ascontiguousarray(a[top:top + s, left:left + s]))
    return np.asarray(pic.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def load_images(images_dir: str | Path | None = None, size: int = 160,
                limit: int = 8) -> tuple[np.ndarray, list[str]]:
    """(N, size, size, 3) uint8 and one class name per image: the scikit-image photographs,
    or up to ``limit`` images of ``images_dir`` (sorted by name; the class is the file stem)."""
    if images_dir is None:
        try:
            from skimage import data
        except ImportError:
            raise AugspecError("the bundled photographs come from scikit-image: pip install 'augspec[demo]' "
                               "(or pass --images DIR)") from None
        pics = [square(getattr(data, fn)(), size) for fn, _ in SAMPLE_IMAGES]
        return np.stack(pics), [name for _, name in SAMPLE_IMAGES]
    Image = _pil()
    folder = Path(images_dir)
    if not folder.is_dir():
        raise InputError(f"--images: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    pics, names = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                pics.append(square(np.asarray(im.convert("RGB")), size))
            names.append(p.stem)
        except OSError:
            continue
    if not pics:
        raise InputError(f"--images: no readable image ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return np.stack(pics), names


# --------------------------------------------------------------- backends


def to_backend(run: Any, x: np.ndarray) -> Any:
    """A NumPy NHWC array (or labels) as the compiled run's array type and layout."""
    B = run.backend
    if x.ndim == 4 and getattr(B, "layout", "NHWC") == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    mod = getattr(B, "array_module", "numpy")
    if mod == "torch":
        import torch

        t = torch.from_numpy(x)
        device = getattr(B, "device", None)
        return t.to(device) if device is not None else t
    if mod == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(x)
    return x


def from_backend(run: Any, x: Any) -> np.ndarray:
    """The run's output as a NumPy array, NHWC for images."""
    B = run.backend
    a = np.asarray(B.to_numpy(x))
    if a.ndim == 4 and getattr(B, "layout", "NHWC") == "NCHW":
        a = a.transpose(0, 2, 3, 1)
    return a


def display_images(pipeline: Pipeline, x: np.ndarray) -> np.ndarray:
    """Output images as uint8 for display: uint8 as is; floats un-normalised by the
    pipeline's last Normalize when it has one, otherwise rescaled per image to [0, 1]."""
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    norms = [op for op in pipeline.ops if isinstance(op, Normalize)]
    if norms and x.shape[-1] in (len(norms[-1].std), 1):
        x = x * np.asarray(norms[-1].std, np.float32) + np.asarray(norms[-1].mean, np.float32)
    elif x.size and (x.min() < 0.0 or x.max() > 1.0):
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        hi = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-12)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class Row:
    """One backend's row of the grid."""

    backend: str
    images: np.ndarray | None = None  # (N, H, W, 3) uint8 for display
    labels: np.ndarray | None = None  # (N, K) soft labels, or None
    raw: np.ndarray | None = None  # the output as computed (NHWC)
    seconds_per_image: float | None = None
    error: str | None = None
    agrees: bool | None = None
    detail: str = ""
    captions: list[str] = field(default_factory=list)
    partial: Pipeline | None = None  # set when only this per-sample part is comparable with NumPy
    note: str = ""


def caption(label_row: np.ndarray, names: Sequence[str], top: int = 2, floor: float = 0.05) -> str:
    """``cat 0.62 · coffee 0.38``: the heaviest classes (at most ``top``, those above ``floor``)."""
    order = np.argsort(-label_row, kind="stable")[:top]
    parts = [f"{class_name(int(k), names)} {label_row[k]:.2f}" for i, k in enumerate(order)
             if i == 0 or label_row[k] >= floor]
    return " · ".join(parts)


def class_name(k: int, names: Sequence[str]) -> str:
    return names[k] if k < len(names) else f"class {k}"


def _labels_for(pipeline: Pipeline, n_names: int, n: int) -> tuple[np.ndarray, int]:
    """Class ids (image i has class i, modulo K) and K."""
    k = pipeline.num_classes or n_names
    return (np.arange(n) % n_names % k).astype(np.int64), k


def run_backend(pipeline: Pipeline, backend: str, images: np.ndarray, names: Sequence[str],
                repeats: int = 3, **options: Any) -> Row:
    """Compile ``pipeline`` for ``backend`` and run it on ``images`` (step 0 of epoch 0);
    any failure is caught and reported in the row."""
    row = Row(backend)
    try:
        run = pipeline.compile(backend, **options)
        ids, k = _labels_for(pipeline, len(names), len(images))
        x, y = to_backend(run, images), to_backend(run, ids)
        times = []
        out = None
        # A per-image backend (albumentations) runs the per-sample specs image by image and
        # the batch-level ones (MixUp, CutMix, smoothing) on the collated batch: ``run.batch``.
        split = bool(getattr(run, "batch_ops", None)) and callable(getattr(run, "batch", None))
        for _ in range(1 + max(1, repeats)):  # the first call warms up (tracing, caches)
            run.set_state(epoch=0, step=0)
            t0 = time.perf_counter()
            out = run(x, y)
            if split:
                per_sample = out[0] if isinstance(out, tuple) else out
                row.raw = from_backend(run, per_sample)
                out = run.batch(per_sample, y)
            xo = from_backend(run, out[0] if isinstance(out, tuple) else out)  # reading back syncs a device
            times.append(time.perf_counter() - t0)
        assert out is not None
        yo = from_backend(run, out[1]) if isinstance(out, tuple) else None
        if split:
            row.partial = run.pipeline
            row.note = "per image, then MixUp/CutMix/smoothing on the batch (own draws)"
        else:
            row.raw = xo
        row.images = display_images(pipeline, xo)
        if yo is not None:
            yo = yo.astype(np.float32)
            if yo.ndim == 1:
                yo = np.eye(k, dtype=np.float32)[yo.astype(np.int64)]
            row.labels = yo
        row.seconds_per_image = float(np.median(times[1:])) / max(1, len(images))
    except Exception as e:  # one backend's failure must not stop the others
        row.error = error_text(e)
    return row


def error_text(e: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (the first line, and the last where the first only introduces it)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = lines[0] if lines else ""
    if msg.endswith(":") and len(lines) > 1:
        msg = f"{msg} … {lines[-1]}"
    return f"{type(e).__name__}: {msg}"[:limit]


def compare(row: Row, ref: Row) -> None:
    """Set ``row.agrees`` and ``row.detail`` against the reference (NumPy) row."""
    if row.error or ref.error or row.raw is None or ref.raw is None:
        return
    if row.raw.shape != ref.raw.shape:
        row.agrees, row.detail = False, f"shape {row.raw.shape} vs {ref.raw.shape}"
        return
    scale = 255.0 if row.raw.dtype == np.uint8 and ref.raw.dtype == np.uint8 else 1.0
    d = np.abs(row.raw.astype(np.float64) - ref.raw.astype(np.float64)) / scale
    within = float(np.mean(d <= AGREE_LEVELS / 255.0 + 1e-9))
    ok = within >= AGREE_FRACTION
    detail = f"max |Δ| {d.max() * 255:.0f}/255, {100 * within:.2f}% within {AGREE_LEVELS}/255"
    if row.labels is not None and ref.labels is not None:
        dl = float(np.max(np.abs(row.labels - ref.labels))) if row.labels.shape == ref.labels.shape else np.inf
        ok = ok and dl <= AGREE_LABELS
        detail += f", labels max |Δ| {dl:.1e}"
    row.agrees, row.detail = ok, detail


def available_backends() -> list[str]:
    """Names of the registered backends whose framework is installed, NumPy first."""
    from .core.registry import list_backends

    names = [b.name for b in list_backends() if b.available]
    return sorted(names, key=lambda n: (n != "numpy", n))


def run_all(pipeline: Pipeline, images: np.ndarray, names: Sequence[str],
            backends: Sequence[str] | None = None, repeats: int = 3) -> list[Row]:
    """One row per backend (default: every available one); NumPy always runs, as the reference."""
    wanted = list(backends) if backends else available_backends()
    if "numpy" not in wanted:
        wanted.insert(0, "numpy")
    rows = [run_backend(pipeline, b, images, names, repeats=repeats) for b in wanted]
    ref = next(r for r in rows if r.backend == "numpy")
    for r in rows:
        if r.partial is not None and r.error is None:  # compare the per-sample part with NumPy's
            part = run_backend(r.partial, "numpy", images, names, repeats=0)
            labels, part.labels, r.labels = r.labels, None, None  # the labels come from the batch part
            compare(r, part)
            r.labels = labels
        if r.labels is not None:
            r.captions = [caption(lab, names) for lab in r.labels]
        elif r.images is not None:
            ids, _ = _labels_for(pipeline, len(names), len(images))
            r.captions = [class_name(int(i), names) for i in ids]
        if r is not ref and r.partial is None:
            compare(r, ref)
    return rows


def summary_line(row: Row) -> str:
    """``torch        0.41 ms/image  agrees with numpy (max |Δ| 1/255 ...)``."""
    if row.error:
        return f"{row.backend:<15} failed: {row.error}"
    t = f"{row.seconds_per_image * 1e3:8.2f} ms/image" if row.seconds_per_image is not None else ""
    if row.backend == "numpy":
        verdict = "reference"
    elif row.agrees is None:
        verdict = "not compared"
    else:
        verdict = ("agrees with numpy" if row.agrees else "DIFFERS from numpy") + f" ({row.detail})"
        if row.partial is not None:
            verdict = f"{row.note}; per-sample part {verdict}"
    return f"{row.backend:<15}{t}  {verdict}"


# ------------------------------------------------------------------ grid


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render_grid(rows: Sequence[Row], originals: np.ndarray, names: Sequence[str], path: str | Path,
                title: str = "", cell: int | None = None) -> Path:
    """Write the grid PNG: a first row of inputs, then one row per backend; returns the path.

    Size: width ``LABEL_W + N * (cell + PAD) + PAD``, height ``TITLE_H + (1 + rows) * (cell + CAPTION_H + PAD)``.
    """
    Image = _pil()
    from PIL import ImageDraw

    n, h = originals.shape[0], originals.shape[1]
    cell = cell or h
    lay = grid_layout(n, len(rows), cell)
    canvas = Image.new("RGB", (lay["width"], lay["height"]), "white")
    draw = ImageDraw.Draw(canvas)
    f_title, f_cap, f_side, f_small = _font(16), _font(12), _font(14), _font(11)
    draw.text((PAD, 8), _fit(draw, title, f_title, lay["width"] - 2 * PAD), fill="black", font=f_title)

    def put_row(r: int, label: str, sub: str, pics: np.ndarray | None, caps: Sequence[str], error: str | None,
                colour: str = "black") -> None:
        y = TITLE_H + r * (cell + CAPTION_H + PAD)
        draw.text((PAD, y + 4), _fit(draw, label, f_side, LABEL_W - 2 * PAD), fill="black", font=f_side)
        for i, line in enumerate(sub.split("\n") if sub else []):
            draw.text((PAD, y + 24 + 15 * i), _fit(draw, line, f_small, LABEL_W - 2 * PAD), fill=colour,
                      font=f_small)
        if error is not None:
            draw.rectangle([LABEL_W, y, lay["width"] - PAD, y + cell], fill=(245, 235, 235))
            for i, chunk in enumerate(_wrap(draw, error, f_cap, lay["width"] - LABEL_W - 2 * PAD)[:6]):
                draw.text((LABEL_W + PAD, y + PAD + 16 * i), chunk, fill=(150, 0, 0), font=f_cap)
            return
        assert pics is not None
        for i in range(len(pics)):
            x0 = LABEL_W + i * (cell + PAD)
            pic = Image.fromarray(np.ascontiguousarray(pics[i]))
            if pic.size != (cell, cell):
                pic = pic.resize((cell, cell), Image.Resampling.BILINEAR)
            canvas.paste(pic, (x0, y))
            if i < len(caps):  # one line, or one class per line where it does not fit
                lines = [caps[i]] if draw.textlength(caps[i], font=f_cap) <= cell + PAD - 2 else caps[i].split(" · ")
                for j, line in enumerate(lines[:2]):
                    draw.text((x0, y + cell + 3 + 14 * j), _fit(draw, line, f_cap, cell + PAD - 2), fill="black",
                              font=f_cap)

    ids = np.arange(n) % len(names)
    put_row(0, "input", "class = image", originals, [names[i] for i in ids], None)
    for r, row in enumerate(rows, start=1):
        sub = "" if row.seconds_per_image is None else f"{row.seconds_per_image * 1e3:.2f} ms/image"
        colour = "black"
        if row.backend != "numpy" and row.agrees is not None:
            sub += "\n" + ("= numpy" if row.agrees else "≠ numpy")
            if row.partial is not None:
                sub += " per image\nmix: own draws"
            colour = (0, 110, 0) if row.agrees else (170, 0, 0)
        put_row(r, row.backend, sub, row.images, row.captions, row.error, colour)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


LABEL_W, TITLE_H, CAPTION_H, PAD = 130, 34, 32, 6


def grid_layout(n_images: int, n_rows: int, cell: int) -> dict[str, int]:
    """Pixel size of the grid for ``n_images`` columns and ``n_rows`` backend rows (plus the input row)."""
    return {"width": LABEL_W + n_images * (cell + PAD) + PAD,
            "height": TITLE_H + (1 + n_rows) * (cell + CAPTION_H + PAD)}


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = word
    return lines + ([cur] if cur else [])


# ----------------------------------------------------------------- entry


@dataclass
class DemoResult:
    path: Path
    rows: list[Row]
    names: list[str]


def demo(out: str | Path = "augspec-demo.png", *, images_dir: str | Path | None = None, seed: int | None = 0,
         backends: Sequence[str] | None = None, size: int = 160, copies: int = 2,
         pipeline: Pipeline | None = None, title: str | None = None) -> DemoResult:
    """Run ``pipeline`` (default: ``default_pipeline``) on the images, ``copies`` times each
    (so one row shows several draws), on every backend, and write the grid to ``out``."""
    imgs, names = load_images(images_dir, size=size)
    batch = np.concatenate([imgs] * max(1, copies))
    if pipeline is None:
        pipe = default_pipeline(len(names), 0 if seed is None else seed)
    else:  # every backend must draw from the same seed: the given one, else the config's, else 0
        seed = seed if seed is not None else (pipeline.seed if pipeline.seed is not None else 0)
        pipe = Pipeline(pipeline.ops, num_classes=pipeline.num_classes, seed=seed)
    rows = run_all(pipe, batch, names, backends)
    ttl = title.replace("{seed}", str(pipe.seed)) if title else (
        f"augspec demo · seed {pipe.seed} · affine, flip, colour jitter, CutOut, MixUp|CutMix, smoothing 0.1")
    path = render_grid(rows, batch, names, out, title=ttl)
    return DemoResult(path, rows, names)
