"""Fidelity numbers of augspec's size-setting ops against torchvision.transforms.v2
(the reference), Pillow and albumentations: what ``tests/test_torchvision_fidelity.py``
asserts, printed as tables.

    python benchmarks/fidelity_torchvision.py [--backend numpy,torch] [--draws 10000]

Needs torch and torchvision (exits 2 without them); Pillow, scikit-image (the test
photographs; noise without it), albumentations and scipy add their rows where installed.

Tables:

1. max |augspec - torchvision| (uint8 levels) per op, on interior pixels (the border
   where a crop's filter touches the crop's own edge excluded: torchvision crops first
   and renormalises there, augspec reads the image beyond; see the test's docstring)
   and over the whole output, with the share of pixels that differ at all.
2. Resize of a 480 x 640 image to 120 x 160 (a 4x shrink): PSNR between augspec,
   torchvision (antialias=True / False), Pillow's bilinear (antialiased) and
   albumentations / OpenCV's INTER_LINEAR (not antialiased); the same on noise.
3. RandomResizedCrop's boxes: two-sample KS p-values of augspec's against
   torchvision's draws (area fraction, aspect ratio) on 375 x 500 and 50 x 800 images.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def _need_torchvision():
    try:
        import torch
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F
    except ImportError as e:
        print(f"fidelity_torchvision: needs torch and torchvision ({e})", file=sys.stderr)
        raise SystemExit(2) from None
    return torch, v2, F


torch, v2, F = _need_torchvision()

import augspec as aug  # noqa: E402
from augspec.backends.numpy import NumpyBackend  # noqa: E402
from augspec.core.spec import Context  # noqa: E402
from augspec.recipes import R3_SIZES  # noqa: E402


def photo(h: int, w: int, seed: int = 0, noise_rows: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    try:
        from augspec.testing_images import photo as _photo

        a = np.array(_photo(("astronaut", "coffee", "chelsea", "rocket")[seed % 4], (h, w)).convert("RGB"))
    except ImportError:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if noise_rows:
        a[: h // 3] = rng.integers(0, 256, (h // 3, w, 3), dtype=np.uint8)
    return a


def chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).contiguous().numpy()


def apply(op: aug.Op, backend: str, images, seed: int = 0, params_from=None):
    run = aug.Pipeline([op], seed=seed).compile(backend)
    x = ([chw(a) for a in images] if isinstance(images, list) else chw(images)) if backend == "torch" else images
    if params_from is not None:
        params = params_from(run)
        out = run.apply(x, params=params)
    else:
        params, out = None, run(x)
    o = out.numpy() if backend == "torch" else np.asarray(out)
    if backend == "torch":
        o = o.transpose(0, 2, 3, 1) if o.ndim == 4 else o.transpose(1, 2, 0)
    return o, params


def stats(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return (int(d.max()), float((d > 0).mean())) if d.size else (0, 0.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def border(out: int, crop: float) -> int:
    return math.ceil(max(1.0, out / crop)) + 1


def np_params(params) -> dict:
    return {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in params.items()}


def rrc_boxes(op, params, sizes) -> np.ndarray:
    p = {k[2:]: v for k, v in np_params(params).items() if k.startswith("0/")}
    hs = np.asarray([s[0] for s in sizes], np.float32)
    ws = np.asarray([s[1] for s in sizes], np.float32)
    top, left, h, w = op.box(NumpyBackend(), p, Context(len(sizes), hs, ws, 3))
    return np.stack([np.asarray(v) for v in (top, left, h, w)], axis=1).astype(np.int64)


# ------------------------------------------------------------------ table 1


def op_rows(backend: str) -> list[tuple[str, int, int, float]]:
    """(case, max interior diff, max diff, share of differing values) per op."""
    rows = []
    img = photo(480, 640)
    for size in (240, 120, (120, 160), 224, 600, (700, 900), (300, 800)):
        out, _ = apply(aug.Resize(size), backend, img)
        ref = hwc(F.resize(chw(img), [size] if isinstance(size, int) else list(size), antialias=True))
        m, frac = stats(out, ref)
        kind = "shrink" if (size if isinstance(size, int) else size[0]) < 480 else "enlarge"
        rows.append((f"Resize({size}) of 480x640 ({kind})", m, m, frac))
    out, _ = apply(aug.Resize((120, 160), antialias=False), backend, img)
    m, frac = stats(out, hwc(F.resize(chw(img), [120, 160], antialias=False)))
    rows.append(("Resize((120, 160), antialias=False) vs antialias=False", m, m, frac))
    img = photo(375, 500, seed=3)
    for size in (224, (201, 99), (400, 520), (300, 601)):
        out, _ = apply(aug.CenterCrop(size), backend, img)
        ref = hwc(F.center_crop(chw(img), [size, size] if isinstance(size, int) else list(size)))
        m, frac = stats(out, ref)
        rows.append((f"CenterCrop({size}) of 375x500", m, m, frac))
    img = photo(40, 30, seed=4)
    for mode, tv in (("constant", "constant"), ("nearest", "edge"), ("reflect", "symmetric")):
        out, _ = apply(aug.Pad((1, 2, 3, 7), fill_mode=mode), backend, img)
        m, frac = stats(out, hwc(F.pad(chw(img), [1, 2, 3, 7], padding_mode=tv)))
        rows.append((f"Pad((1, 2, 3, 7), {mode}) = torchvision {tv}", m, m, frac))
    imgs = np.stack([photo(32, 32, seed=s) for s in range(64)])
    for mode, tv in (("constant", "constant"), ("nearest", "edge"), ("reflect", "symmetric")):
        op = aug.RandomCrop(32, padding=4, fill_mode=mode)
        run = aug.Pipeline([op], seed=7).compile(backend)
        params = run.sample(64)
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous() if backend == "torch" else imgs
        out = run.apply(x, params=params)
        out = out.permute(0, 2, 3, 1).numpy() if backend == "torch" else np.asarray(out)
        p = np_params(params)
        B = NumpyBackend()
        tops = np.asarray(op._offset(B, p["0/top"], 32, 32, 4, 4)).astype(int) + 4
        lefts = np.asarray(op._offset(B, p["0/left"], 32, 32, 4, 4)).astype(int) + 4
        ref = np.stack([hwc(F.crop(F.pad(chw(imgs[i]), [4], padding_mode=tv), int(tops[i]), int(lefts[i]), 32, 32))
                        for i in range(64)])
        m, frac = stats(out, ref)
        rows.append((f"RandomCrop(32, padding=4, {mode}) x 64, offsets injected", m, m, frac))
    sizes = [R3_SIZES[i % len(R3_SIZES)] for i in range(28)] + [(131, 97)] * 4 + [(50, 800)] * 4
    op = aug.RandomResizedCrop(224)
    imgs = [photo(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    out, params = apply(op, backend, imgs, seed=11, params_from=lambda r: r.sample(len(imgs)))
    boxes = rrc_boxes(op, params, sizes)
    mi = mf = 0
    diff = tot = 0
    for img, o, (t, x0, h, w) in zip(imgs, out, boxes):
        ref = hwc(F.resized_crop(chw(img), int(t), int(x0), int(h), int(w), [224, 224], antialias=True))
        by, bx = border(224, h), border(224, w)
        a, _ = stats(o[by:224 - by, bx:224 - bx], ref[by:224 - by, bx:224 - bx])
        b, frac = stats(o, ref)
        mi, mf = max(mi, a), max(mf, b)
        diff += frac * o.size
        tot += o.size
    rows.append(("RandomResizedCrop(224) x 36 mixed sizes, boxes injected", mi, mf, diff / tot))
    return rows


def alb_rows() -> list[tuple[str, int, int, float]]:
    try:
        import albumentations as A
        import cv2
    except ImportError:
        return [("albumentations", -1, -1, float("nan"))]
    rows = []
    img = photo(480, 640, seed=5)
    for size in ((600, 800), (700, 900), (120, 160), (240, 320)):
        out, _ = apply(aug.Resize(size), "numpy", img)
        m, frac = stats(out, A.Resize(*size)(image=img)["image"])
        kind = "enlarge" if size[0] > 480 else "shrink: OpenCV does not antialias"
        rows.append((f"Resize({size}) vs A.Resize ({kind})", m, m, frac))
    out, _ = apply(aug.Resize((120, 160), antialias=False), "numpy", img)
    m, frac = stats(out, A.Resize(120, 160)(image=img)["image"])
    rows.append(("Resize((120, 160), antialias=False) vs A.Resize", m, m, frac))
    img = photo(375, 500, seed=6)
    for size in ((201, 300), (224, 224)):
        out, _ = apply(aug.CenterCrop(size), "numpy", img)
        m, frac = stats(out, A.CenterCrop(*size)(image=img)["image"])
        note = "" if (375 - size[0]) % 4 != 3 and (500 - size[1]) % 4 != 3 else " (offset floor vs round: 1 px)"
        rows.append((f"CenterCrop({size}) vs A.CenterCrop{note}", m, m, frac))
    img = photo(40, 30, seed=8)
    for mode, bm in (("constant", cv2.BORDER_CONSTANT), ("nearest", cv2.BORDER_REPLICATE),
                     ("reflect", cv2.BORDER_REFLECT)):
        out, _ = apply(aug.Pad((1, 2, 3, 7), fill_mode=mode), "numpy", img)
        m, frac = stats(out, A.Pad(padding=(1, 2, 3, 7), fill=0, border_mode=bm, p=1.0)(image=img)["image"])
        rows.append((f"Pad((1, 2, 3, 7), {mode}) vs A.Pad", m, m, frac))
    sizes = [(131, 97)] * 24 + [(375, 500)] * 8
    op = aug.RandomResizedCrop(224, scale=(0.08, 0.2))
    imgs = [photo(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    out, params = apply(op, "numpy", imgs, seed=5, params_from=lambda r: r.sample(len(imgs)))
    mi = mf = 0
    n = 0
    for img, o, (t, x0, h, w) in zip(imgs, out, rrc_boxes(op, params, sizes)):
        if h > 224 or w > 224:
            continue
        crop = A.Crop(x_min=int(x0), y_min=int(t), x_max=int(x0 + w), y_max=int(t + h))(image=img)["image"]
        ref = A.Resize(224, 224)(image=crop)["image"]
        by, bx = border(224, h), border(224, w)
        mi = max(mi, stats(o[by:224 - by, bx:224 - bx], ref[by:224 - by, bx:224 - bx])[0])
        mf = max(mf, stats(o, ref)[0])
        n += 1
    rows.append((f"RandomResizedCrop enlarging boxes x {n} vs A.Crop + A.Resize", mi, mf, float("nan")))
    return rows


# ------------------------------------------------------------------ table 2


def psnr_rows() -> list[tuple[str, float, float]]:
    from PIL import Image

    out = []
    for label, img in (("photo", photo(480, 640, seed=0, noise_rows=False)),
                       ("noise", np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8))):
        tv_aa = hwc(F.resize(chw(img), [120, 160], antialias=True))
        tv_plain = hwc(F.resize(chw(img), [120, 160], antialias=False))
        pil = np.asarray(Image.fromarray(img).resize((160, 120), Image.Resampling.BILINEAR))
        box = img.reshape(120, 4, 160, 4, 3).astype(np.float64).mean(axis=(1, 3))
        box = np.floor(box + 0.5).astype(np.uint8)  # the 4x4 area mean
        ours, _ = apply(aug.Resize((120, 160)), "numpy", img)
        ours_plain, _ = apply(aug.Resize((120, 160), antialias=False), "numpy", img)
        refs = {"torchvision antialias=True": tv_aa, "Pillow BILINEAR": pil, "4x4 area mean": box}
        for name, ref in refs.items():
            out.append((f"{label}: vs {name}", psnr(ours, ref), psnr(ours_plain, ref)))
        out.append((f"{label}: vs torchvision antialias=False", psnr(ours, tv_plain), psnr(ours_plain, tv_plain)))
        try:
            import albumentations as A

            cv = A.Resize(120, 160)(image=img)["image"]
            out.append((f"{label}: vs albumentations (OpenCV INTER_LINEAR)", psnr(ours, cv), psnr(ours_plain, cv)))
        except ImportError:
            pass
        out.append((f"{label}: torchvision antialias=True vs Pillow (for scale)", psnr(tv_aa, pil), float("nan")))
    return out


# ------------------------------------------------------------------ table 3


def ks_rows(n: int) -> list[tuple[str, str, str, str]]:
    """(image, quantity, KS statistic or augspec's share, p-value or torchvision's share)."""
    try:
        from scipy import stats as st
    except ImportError:
        return []
    rows = []
    for h, w in ((375, 500), (50, 800)):
        op = aug.RandomResizedCrop(224)
        run = aug.Pipeline([op], seed=1).compile("numpy")
        a = rrc_boxes(op, run.sample(n), [(h, w)] * n)
        t = v2.RandomResizedCrop(224, antialias=True)
        im = torch.empty((3, h, w), dtype=torch.uint8)
        torch.manual_seed(1)
        b = np.asarray([[p["top"], p["left"], p["height"], p["width"]] for p in (t.make_params([im]) for _ in range(n))])
        quantities = {
            "area fraction": lambda x, h=h, w=w: x[:, 2] * x[:, 3] / (h * w),
            "aspect ratio w / h": lambda x: x[:, 3] / x[:, 2],
            "top / (H - h + 1)": lambda x, h=h: x[:, 0] / (h - x[:, 2] + 1),
            "left / (W - w + 1)": lambda x, w=w: x[:, 1] / (w - x[:, 3] + 1),
        }
        for name, f in quantities.items():
            r = st.ks_2samp(f(a), f(b), method="asymp")
            rows.append((f"{h} x {w}", name, f"D = {r.statistic:.4f}", f"p = {r.pvalue:.3g}"))
        if h == 50:  # the fallback: the centred 50 x 67 window
            fa = float(np.mean((a[:, 2] == 50) & (a[:, 3] == 67)))
            fb = float(np.mean((b[:, 2] == 50) & (b[:, 3] == 67)))
            rows.append((f"{h} x {w}", "share of 50 x 67 (fallback) boxes", f"augspec {fa:.4f}", f"torchvision {fb:.4f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy,torch", help="augspec backends to check (default numpy,torch)")
    p.add_argument("--draws", type=int, default=10_000, help="RandomResizedCrop boxes per side for the KS tests")
    args = p.parse_args(argv)
    import torchvision

    print(f"augspec vs torchvision {torchvision.__version__} (torch {torch.__version__})\n")
    for backend in [b.strip() for b in args.backend.split(",") if b.strip()]:
        print(f"### max |augspec[{backend}] - torchvision.transforms.v2| (uint8 levels)\n")
        print("| case | max interior | max overall | share differing |\n|---|---:|---:|---:|")
        for name, mi, mf, frac in op_rows(backend):
            print(f"| {name} | {mi} | {mf} | {frac:.2%} |")
        print()
    print("### max |augspec[numpy] - albumentations| (uint8 levels)\n")
    print("| case | max interior | max overall | share differing |\n|---|---:|---:|---:|")
    for name, mi, mf, frac in alb_rows():
        print(f"| {name} | {mi} | {mf} | {'' if frac != frac else f'{frac:.2%}'} |")
    print("\n### Resize 480x640 -> 120x160 (4x shrink): PSNR (dB)\n")
    print("| reference | augspec antialias=True | augspec antialias=False |\n|---|---:|---:|")
    for name, a, b in psnr_rows():
        print(f"| {name} | {a:.2f} | {'' if b != b else f'{b:.2f}'} |")
    rows = ks_rows(args.draws)
    if rows:
        print(f"\n### RandomResizedCrop boxes (H x W): augspec vs torchvision, {args.draws} draws each, two-sample KS\n")
        print("| image | quantity | statistic | p-value |\n|---|---|---:|---:|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
