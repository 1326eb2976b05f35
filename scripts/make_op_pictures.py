"""Write the small picture of each built-in op for the README: docs/images/op_<name>.png.

    python scripts/make_op_pictures.py [--out docs/images] [--size 128]

Each picture is the op applied by the NumPy backend to scikit-image's cat
(``chelsea``), with its parameters pinned so the effect is plain to see (a range
``(v, v)`` fixes a value; MixUp and CutMix get lambda 0.6 and the coffee cup as the
partner). Float outputs (Normalize, Standardize, ZCA, Rescale, Dropout) are shown
rescaled to [0, 1] per image; label smoothing, which changes labels only, is drawn
as the label vector before and after. Also writes ``input.png`` (the cat) and
``ops.md`` (the markdown table the README embeds). Deterministic: rerun after
changing an op and commit the PNGs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import augspec as aug
from augspec.demo import load_images, square

ROOT = Path(__file__).resolve().parent.parent

# name -> (the op as pictured, one-line description)
EXAMPLES: dict[str, tuple[Callable[[], Any], str]] = {
    "affine": (lambda: aug.Affine(rotate=(20, 20), translate=(0.05, 0.05), scale=(0.85, 0.85), shear=(10, 10)),
               "rotate, translate, scale, shear: one warp, bilinear, constant fill"),
    "horizontal_flip": (lambda: aug.HorizontalFlip(p=1.0), "mirror left-right"),
    "vertical_flip": (lambda: aug.VerticalFlip(p=1.0), "mirror top-bottom"),
    "brightness": (lambda: aug.Brightness(factor=(1.5, 1.5)), "x -> b x"),
    "contrast": (lambda: aug.Contrast(factor=(0.4, 0.4)), "blend toward the mean luma"),
    "saturation": (lambda: aug.Saturation(factor=(0.2, 0.2)), "blend toward the grey image"),
    "hue": (lambda: aug.Hue(shift=(0.3, 0.3)), "rotate hue about the grey axis (YIQ; HSV as an option)"),
    "color_jitter": (lambda: aug.ColorJitter(brightness=(1.2, 1.2), contrast=(0.7, 0.7), saturation=(1.6, 1.6),
                                             hue=(-0.08, -0.08)),
                     "brightness, contrast, saturation, hue as one 3x4 map per sample"),
    "gaussian_noise": (lambda: aug.GaussianNoise(std=0.12), "add sigma z, z ~ N(0, 1) per pixel"),
    "rescale": (lambda: aug.Rescale(scale=2.0, offset=-1.0), "x -> scale x + offset (shown rescaled)"),
    "normalize": (lambda: aug.Normalize(), "(x - mean) / std per channel (shown rescaled)"),
    "standardize": (lambda: aug.Standardize(samplewise_center=True, samplewise_std=True),
                    "centre / scale per image or per channel, statistics fitted (shown rescaled)"),
    "zca_whitening": (lambda: aug.ZCAWhitening(epsilon=1e-2), "ZCA matrix fitted on a data set (shown rescaled)"),
    "cutout": (lambda: aug.CutOut(holes=3, size=(0.25, 0.25)), "erase boxes (DeVries & Taylor)"),
    "mixup": (lambda: aug.MixUp(alpha=1.0), "x = lambda x_i + (1 - lambda) x_j, labels likewise"),
    "cutmix": (lambda: aug.CutMix(alpha=1.0), "paste a box of the partner; label weight = pasted fraction"),
    "mosaic": (lambda: aug.Mosaic(), "four images of the batch around a random centre (YOLO); labels by area"),
    "label_smoothing": (lambda: aug.LabelSmoothing(0.3), "y -> (1 - alpha) y + alpha / K (labels only)"),
    "dropout": (lambda: aug.Dropout(rate=0.3), "inverted dropout: x * keep / (1 - rate) (shown rescaled)"),
    "one_of": (lambda: aug.OneOf([aug.MixUp(alpha=1.0), aug.CutMix(alpha=1.0)]),
               "one of several ops per sample (here MixUp or CutMix)"),
    "random_resized_crop": (lambda: aug.RandomResizedCrop(128, scale=(0.35, 0.35)),
                            "a random window (area, aspect) resized to the output size"),
    "resize": (lambda: aug.Resize((96, 128)), "to a size (an int: the shorter side), antialiased"),
    "center_crop": (lambda: aug.CenterCrop(96), "the centred window"),
    "random_crop": (lambda: aug.RandomCrop(112, padding=16), "a window at a random offset of the padded image"),
    "pad": (lambda: aug.Pad(16, fill=0.5), "pad each side"),
    "invert": (lambda: aug.Invert(), "x -> 1 - x (a linear colour map: fuses with the others)"),
    "grayscale": (lambda: aug.Grayscale(), "every channel becomes the luma w.x"),
    "solarize": (lambda: aug.Solarize(threshold=(0.5, 0.5)), "invert the pixels at or above the threshold"),
    "solarize_add": (lambda: aug.SolarizeAdd(addition=(0.3, 0.3)), "add to the pixels below the threshold (timm)"),
    "posterize": (lambda: aug.Posterize(bits=2), "keep the top bits of each level"),
    "equalize": (lambda: aug.Equalize(), "histogram equalisation per channel (PIL's rule)"),
    "autocontrast": (lambda: aug.AutoContrast(), "stretch each channel's range to [0, 1]"),
    "sharpness": (lambda: aug.Sharpness(factor=(3.0, 3.0)), "blend with the 3x3 smoothed image (PIL's rule)"),
    "gaussian_blur": (lambda: aug.GaussianBlur(kernel_size=15, sigma=(3.0, 3.0)), "separable Gaussian, per-sample sigma"),
    "random_erasing": (lambda: aug.RandomErasing(p=1.0, scale=(0.15, 0.15), mode="pixel", count=2),
                       "timm's random erasing: boxes of random area and aspect, constant or noise"),
    "perspective": (lambda: aug.Perspective(distortion=0.6, p=1.0), "a per-sample homography, fused into the warp"),
    "elastic_transform": (lambda: aug.ElasticTransform(alpha=60.0, sigma=5.0),
                          "a smoothed random displacement field (Simard et al.)"),
    "rand_augment": (lambda: aug.RandAugment(num_ops=2, magnitude=9), "two ops per image from the table, magnitude 9"),
    "trivial_augment_wide": (lambda: aug.TrivialAugmentWide(), "one op per image at a random magnitude"),
    "auto_augment": (lambda: aug.AutoAugment(), "one of 25 learnt sub-policies per image"),
    "augmix": (lambda: aug.AugMix(), "a Beta/Dirichlet mix of three augmented chains"),
    "synthetic": (lambda: aug.Synthetic("fractal", ratio=1.0),
                  "replace a share of the batch with generated samples and labels (here all: a fractal)"),
    "random_apply": (lambda: aug.RandomApply([aug.Hue(shift=(0.3, 0.3)), aug.CutOut(size=(0.3, 0.3))], p=1.0),
                     "ops applied together with probability p per sample"),
}


# ops registered by other modules (augspec.compat, plugins): keyword arguments for the registered class;
# the description is the first sentence of its docstring. Any other op is pictured with its defaults.
EXTRA_KWARGS: dict[str, dict[str, Any]] = {
    "channel_shift": {"shift": (0.2, 0.2)},
    "keras_affine": {"rotation": (20, 20), "zoom_x": (0.85, 0.85), "zoom_y": (0.85, 0.85), "shear": (10, 10)},
    "keras_zca_whitening": {"epsilon": 30},
}


def _describe(cls: type) -> str:
    doc = " ".join((cls.__doc__ or "").split())
    first = doc.split(". ")[0].rstrip(".").replace("``", "`")
    return first.replace("|", "\\|") or cls.__name__


def _display(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    lo, hi = x.min(), x.max()
    return (np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1) * 255 + 0.5).astype(np.uint8)


def _pin_mix(params: dict[str, Any], n: int) -> dict[str, Any]:
    """lambda 0.6, the box centred, the partner the other image, the OneOf choice alternating."""
    out = dict(params)
    for k, v in params.items():
        name = k.rsplit("/", 1)[-1]
        if name == "lam":
            out[k] = np.full_like(v, 0.6)
        elif name in ("centre_x", "centre_y") and v.ndim == 1:
            out[k] = np.full_like(v, 0.5)
        elif name == "partner":
            out[k] = ((np.arange(n) + 1) % n).astype(v.dtype)
        elif name == "choice":
            out[k] = (np.arange(n) % 2).astype(v.dtype)
    return out


def apply(op: Any, cat: np.ndarray, coffee: np.ndarray, zca_fit: np.ndarray | None = None) -> list[np.ndarray]:
    """The op's output(s) on the cat (for mixing ops: cat and coffee mixed, and for OneOf both choices)."""
    pipe = aug.Pipeline([op], num_classes=2, seed=3)
    if "zca" in op.name:
        pipe.fit(zca_fit)
    run = pipe.compile("numpy")
    batch = np.stack([cat, coffee])
    params = _pin_mix(run.sample(2, batch.shape[1:]), 2)
    out = run.apply(batch, np.array([0, 1]), params)
    x = out[0] if isinstance(out, tuple) else out
    return [_display(x[0])] + ([_display(x[1])] if isinstance(op, aug.OneOf) else [])


def label_picture(alpha: float, size: int, k: int = 5) -> np.ndarray:
    """Bars of a one-hot label over K classes (left) and the smoothed one (right)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    y = np.eye(k)[1]
    smooth = y * (1 - alpha) + alpha / k
    half = size // 2
    for j, (vec, colour) in enumerate(((y, (120, 120, 120)), (smooth, (70, 110, 180)))):
        x0 = j * half + 6
        w = (half - 12) / k
        for i, v in enumerate(vec):
            top = size - 10 - (size - 24) * v
            d.rectangle([x0 + i * w + 1, top, x0 + (i + 1) * w - 1, size - 10], fill=colour)
    d.line([(half, 6), (half, size - 6)], fill=(200, 200, 200))
    d.line([(4, size - 10), (size - 4, size - 10)], fill="black")
    return np.asarray(img)


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    imgs, names = load_images(size=args.size)
    cat, coffee = imgs[names.index("cat")], imgs[names.index("coffee")]
    Image.fromarray(cat).save(out / "input.png")
    # ZCA is fitted on 24x24 thumbnails of random crops of the four photographs, applied to the cat's thumbnail
    rng = np.random.default_rng(0)
    big, _ = load_images(size=96)
    crops = np.stack([square(big[i % 4, r:r + 48, c:c + 48], 24)
                      for i, r, c in zip(range(600), rng.integers(0, 48, 600), rng.integers(0, 48, 600))])
    small_cat, small_coffee = square(cat, 24), square(coffee, 24)
    rows, missing = [], []
    registry = {o.name: o for o in aug.list_ops()}
    for name, info in registry.items():
        if name in EXAMPLES:
            make, what = EXAMPLES[name]
            op = make()
        else:
            try:
                op = info.cls(**EXTRA_KWARGS.get(name, {}))
            except Exception as e:
                missing.append(f"{name} ({e})")
                continue
            what = _describe(info.cls)
        if name == "label_smoothing":
            pics = [label_picture(op.alpha, args.size)]
        elif "zca" in name:
            pics = [np.asarray(Image.fromarray(x).resize((args.size, args.size), Image.Resampling.NEAREST))
                    for x in apply(op, small_cat, small_coffee, crops)]
        else:
            pics = apply(op, cat, coffee)
        pic = np.concatenate([np.pad(x, ((0, 0), (0, 4 if i < len(pics) - 1 else 0), (0, 0)), constant_values=255)
                              for i, x in enumerate(pics)], axis=1)
        path = out / f"op_{name}.png"
        Image.fromarray(pic).save(path, optimize=True)
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        rows.append(f"| `{type(op).__name__}` (`{name}`) | {info.family} | {what} | ![{name}]({rel.as_posix()}) |")
        print(f"wrote {path}")
    table = ["| op | family | what it does | picture |", "|---|---|---|---|", *rows]
    (out / "ops.md").write_text("\n".join(table) + "\n")
    print(f"wrote {out / 'ops.md'}")
    if missing:
        print(f"no picture for: {', '.join(missing)} (add an entry to EXAMPLES or EXTRA_KWARGS)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
