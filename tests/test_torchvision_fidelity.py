"""Fidelity of the size-setting ops against torchvision.transforms.v2 (and albumentations
where it has the op): Resize, CenterCrop, RandomCrop(padding, fill modes), Pad and
RandomResizedCrop with its crop box injected, uint8 in and out, within 1/255; and
RandomResizedCrop's box distribution against torchvision's own draws (two-sample KS).

Skipped (module-level, with the reason) where torchvision is not installed, as in the
main development venv; run it where it is::

    python -m pytest tests/test_torchvision_fidelity.py -q

Where the outputs are compared on "interior" pixels only, the excluded border is where
a crop's resampling filter touches the crop's own edge: torchvision crops first and
renormalises the filter at the crop's edge, augspec resamples the whole image and reads
the pixels beyond it (which is what a crop of a larger image means). The border is
``ceil(max(1, out / crop)) + 1`` output pixels per side along each axis: the filter's
reach in output pixels, plus one. Full-image resizes (``Resize``) are compared everywhere.

Albumentations resizes with OpenCV's ``INTER_LINEAR``, which does not antialias: its
resizes are compared where they enlarge only (a shrink is reported by
``benchmarks/fidelity_torchvision.py``, not asserted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (the fidelity reference)")

from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

import augspec as aug  # noqa: E402
from augspec.core.spec import Context  # noqa: E402
from augspec.recipes import R3_SIZES  # noqa: E402

BACKENDS = ("numpy", "torch")
TOL = 1  # uint8 levels


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A real photograph (scikit-image's, resized) where scikit-image and Pillow are
    installed, with uniform noise added to a third of the rows (the hardest content
    for a resampler); plain noise otherwise. (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    try:
        from augspec.testing_images import photo

        a = np.array(photo(("astronaut", "coffee", "chelsea", "rocket")[seed % 4], (h, w)).convert("RGB"))
    except ImportError:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[: h // 3] = rng.integers(0, 256, (h // 3, w, 3), dtype=np.uint8)
    return a


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).contiguous().numpy()


def _run(op: aug.Op, backend: str, seed: int = 0):
    return aug.Pipeline([op], seed=seed).compile(backend)


def _apply(run, backend: str, images, params=None) -> np.ndarray:
    """uint8 NHWC (or HWC) NumPy output of ``run`` on HWC images (a list or one)."""
    if backend == "torch":
        x = [_chw(a) for a in images] if isinstance(images, list) else _chw(images)
    else:
        x = images
    out = run(x) if params is None else run.apply(x, params=params)
    o = out.numpy() if backend == "torch" else np.asarray(out)
    if backend == "torch":
        o = o.transpose(0, 2, 3, 1) if o.ndim == 4 else o.transpose(1, 2, 0)
    assert o.dtype == np.uint8
    return o


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max()) if a.size else 0


def _border(out: int, crop: float) -> int:
    return math.ceil(max(1.0, out / crop)) + 1


# ------------------------------------------------------------------ Resize


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [
    240, 120,              # int (shorter side) of 480 x 640: shrink 2x and 4x
    (240, 320), (120, 160),  # pairs: the same
    224,                   # shrink 2.14x, torchvision's rule for the longer side (298)
    600, (700, 900),       # enlarge: 1.25x, and 1.46 x 1.41
    (300, 800),            # shrink one axis, enlarge the other
])
def test_resize_matches_torchvision(backend, size):
    img = _photo(480, 640)
    out = _apply(_run(aug.Resize(size), backend), backend, img)
    ref = _hwc(F.resize(_chw(img), [size] if isinstance(size, int) else list(size), antialias=True))
    assert _diff(out, ref) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hw", [(375, 500), (500, 333), (97, 131)])
def test_resize_int_rule_on_odd_sizes(backend, hw):
    img = _photo(*hw, seed=1)
    out = _apply(_run(aug.Resize(224), backend), backend, img)
    ref = _hwc(F.resize(_chw(img), [224], antialias=True))
    assert out.shape == ref.shape
    assert _diff(out, ref) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_without_antialias_matches_plain_bilinear(backend):
    img = _photo(480, 640, seed=2)
    out = _apply(_run(aug.Resize((120, 160), antialias=False), backend), backend, img)
    ref = _hwc(F.resize(_chw(img), [120, 160], antialias=False))
    assert _diff(out, ref) <= TOL


# -------------------------------------------------------------- CenterCrop


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [224, (201, 99), (375, 500), (400, 520), (401, 611), (300, 601)])
def test_center_crop_matches_torchvision(backend, size):
    img = _photo(375, 500, seed=3)  # smaller windows, the image itself, larger (padded) ones, mixed
    out = _apply(_run(aug.CenterCrop(size), backend), backend, img)
    ref = _hwc(F.center_crop(_chw(img), [size, size] if isinstance(size, int) else list(size)))
    assert _diff(out, ref) == 0


# ------------------------------------------------------- Pad and RandomCrop

FILL_MODES = [  # augspec fill_mode -> torchvision padding_mode
    ("constant", "constant"),
    ("nearest", "edge"),
    ("reflect", "symmetric"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode, tv_mode", FILL_MODES)
@pytest.mark.parametrize("padding", [4, (3, 5), (1, 2, 3, 7)])
def test_pad_matches_torchvision(backend, mode, tv_mode, padding):
    img = _photo(40, 30, seed=4)
    fill = (0.2, 0.4, 0.6) if mode == "constant" else None  # 51, 102, 153 in uint8
    out = _apply(_run(aug.Pad(padding, fill=fill, fill_mode=mode), backend), backend, img)
    pad = list(padding) if isinstance(padding, tuple) else [padding]
    ref = _hwc(F.pad(_chw(img), pad, fill=[51, 102, 153] if fill else 0, padding_mode=tv_mode))
    assert _diff(out, ref) == 0


def _random_crop_offsets(op: aug.RandomCrop, params: dict, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(top, left) of each sample's window in the padded image, from augspec's draws."""
    from augspec.backends.numpy import NumpyBackend

    B = NumpyBackend()
    left_pad, top_pad, right_pad, bottom_pad = op.padding
    y0 = op._offset(B, np.asarray(params["0/top"]), h, op.size[0], top_pad, bottom_pad)
    x0 = op._offset(B, np.asarray(params["0/left"]), w, op.size[1], left_pad, right_pad)
    return np.asarray(y0).astype(int) + top_pad, np.asarray(x0).astype(int) + left_pad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode, tv_mode", FILL_MODES)
def test_random_crop_cifar_matches_torchvision(backend, mode, tv_mode):
    """RandomCrop(32, padding=4): each sample's window (from augspec's draws) cut from
    torchvision's padded image."""
    n = 64
    imgs = np.stack([_photo(32, 32, seed=s) for s in range(n)])
    op = aug.RandomCrop(32, padding=4, fill_mode=mode)
    run = _run(op, backend, seed=7)
    params = run.sample(n)
    pnp = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in params.items()}
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous() if backend == "torch" else imgs
    out = run.apply(x, params=params)
    out = out.permute(0, 2, 3, 1).numpy() if backend == "torch" else np.asarray(out)
    tops, lefts = _random_crop_offsets(op, pnp, n, 32, 32)
    assert len({(int(a), int(b)) for a, b in zip(tops, lefts)}) > 20  # the offsets vary
    for i in range(n):
        padded = F.pad(_chw(imgs[i]), [4], fill=0, padding_mode=tv_mode)
        ref = _hwc(F.crop(padded, int(tops[i]), int(lefts[i]), 32, 32))
        assert _diff(out[i], ref) == 0, (i, tops[i], lefts[i])


# ------------------------------------------------------- RandomResizedCrop


def _rrc_boxes(op: aug.RandomResizedCrop, params: dict, sizes: list[tuple[int, int]]) -> np.ndarray:
    """(N, 4) integer (top, left, height, width) from augspec's draws via ``op.box``."""
    from augspec.backends.numpy import NumpyBackend

    B = NumpyBackend()
    p = {k[2:]: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in params.items() if k.startswith("0/")}
    hs = np.asarray([s[0] for s in sizes], np.float32)
    ws = np.asarray([s[1] for s in sizes], np.float32)
    top, left, h, w = op.box(B, p, Context(len(sizes), hs, ws, 3))
    return np.stack([np.asarray(v) for v in (top, left, h, w)], axis=1).astype(np.int64)


def _interior_diff(out: np.ndarray, ref: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> int:
    _, _, ch, cw = box
    by, bx = _border(size[0], ch), _border(size[1], cw)
    return _diff(out[by:size[0] - by, bx:size[1] - bx], ref[by:size[0] - by, bx:size[1] - bx])


def _rrc_case(backend: str, sizes: list[tuple[int, int]], seed: int, scale=(0.08, 1.0)):
    op = aug.RandomResizedCrop(224, scale=scale)
    run = _run(op, backend, seed=seed)
    imgs = [_photo(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    params = run.sample(len(imgs))
    out = _apply(run, backend, imgs, params)
    return op, imgs, out, _rrc_boxes(op, params, sizes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_resized_crop_matches_torchvision_resized_crop(backend):
    """Mixed sizes (R3's and a small image, where crops enlarge), the boxes injected into
    torchvision's ``resized_crop``; interior pixels within 1/255."""
    sizes = [R3_SIZES[i % len(R3_SIZES)] for i in range(28)] + [(131, 97)] * 4
    op, imgs, out, boxes = _rrc_case(backend, sizes, seed=11)
    assert out.shape == (len(sizes), 224, 224, 3)
    worst = 0
    for img, o, (t, x0, h, w) in zip(imgs, out, boxes):
        assert 0 <= t and t + h <= img.shape[0] and 0 <= x0 and x0 + w <= img.shape[1]
        ref = _hwc(F.resized_crop(_chw(img), int(t), int(x0), int(h), int(w), [224, 224], antialias=True))
        worst = max(worst, _interior_diff(o, ref, (t, x0, h, w), (224, 224)))
    assert worst <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_resized_crop_whole_image_matches_everywhere(backend):
    """scale=(1, 1) on 4:3 / 3:4 images: the window is the whole image (or a centred
    fallback), so the crop's edge is the image's and every pixel agrees."""
    sizes = [(375, 500), (480, 640), (500, 375)]
    op, imgs, out, boxes = _rrc_case(backend, sizes, seed=3, scale=(1.0, 1.0))
    for img, o, (t, x0, h, w) in zip(imgs, out, boxes):
        ref = _hwc(F.resized_crop(_chw(img), int(t), int(x0), int(h), int(w), [224, 224], antialias=True))
        if (t, x0, h, w) == (0, 0, img.shape[0], img.shape[1]):
            assert _diff(o, ref) <= TOL
        else:
            assert _interior_diff(o, ref, (t, x0, h, w), (224, 224)) <= TOL


# --------------------------------------------------------- albumentations


def _albumentations():
    try:
        import albumentations as A
        import cv2
    except ImportError:
        pytest.skip("albumentations is not installed")
    return A, cv2


@pytest.mark.parametrize("size", [(600, 800), (700, 900), (480, 1000)])
def test_resize_enlarge_matches_albumentations(size):
    A, _ = _albumentations()
    img = _photo(480, 640, seed=5)
    out = _apply(_run(aug.Resize(size), "numpy"), "numpy", img)
    ref = A.Resize(*size)(image=img)["image"]
    assert _diff(out, ref) <= TOL


@pytest.mark.parametrize("size", [(224, 224), (375, 500), (200, 499), (201, 300), (372, 497)])
def test_center_crop_matches_albumentations(size):
    """albumentations' centre offset is ``(H - h) // 2``, torchvision's (and augspec's)
    ``round((H - h) / 2)`` half to even: they differ by one pixel where ``H - h`` is 3
    mod 4 (75.5 -> 76 against 75). Equal elsewhere; there, albumentations' window is the
    one a pixel up (left)."""
    A, _ = _albumentations()
    img = _photo(375, 500, seed=6)
    h, w = size
    out = _apply(_run(aug.CenterCrop(size), "numpy"), "numpy", img)
    ref = A.CenterCrop(*size)(image=img)["image"]
    dy, dx = img.shape[0] - h, img.shape[1] - w
    ty, tx = round(dy / 2), round(dx / 2)  # Python's round: half to even, torchvision's rule
    assert np.array_equal(out, img[ty:ty + h, tx:tx + w])
    if (ty, tx) == (dy // 2, dx // 2):
        assert _diff(out, ref) == 0
    else:
        assert np.array_equal(ref, img[dy // 2:dy // 2 + h, dx // 2:dx // 2 + w])


@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect"])
def test_pad_matches_albumentations(mode):
    A, cv2 = _albumentations()
    border = {"constant": cv2.BORDER_CONSTANT, "nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}[mode]
    img = _photo(40, 30, seed=8)
    out = _apply(_run(aug.Pad((1, 2, 3, 7), fill=(0.2, 0.4, 0.6) if mode == "constant" else None,
                              fill_mode=mode), "numpy"), "numpy", img)
    ref = A.Pad(padding=(1, 2, 3, 7), fill=(51, 102, 153), border_mode=border, p=1.0)(image=img)["image"]
    assert _diff(out, ref) == 0


def test_random_resized_crop_enlarging_boxes_match_albumentations():
    """Boxes no larger than 224 on either side (enlarged: OpenCV's bilinear is then the
    same filter), injected as ``A.Crop`` + ``A.Resize``; interior pixels within 1/255."""
    A, _ = _albumentations()
    sizes = [(131, 97)] * 24 + [(375, 500)] * 8
    op, imgs, out, boxes = _rrc_case("numpy", sizes, seed=5, scale=(0.08, 0.2))
    checked = 0
    for img, o, (t, x0, h, w) in zip(imgs, out, boxes):
        if h > 224 or w > 224:
            continue
        crop = A.Crop(x_min=int(x0), y_min=int(t), x_max=int(x0 + w), y_max=int(t + h))(image=img)["image"]
        ref = A.Resize(224, 224)(image=crop)["image"]
        assert _interior_diff(o, ref, (t, x0, h, w), (224, 224)) <= TOL
        checked += 1
    assert checked >= 16


# ----------------------------------------------------- the box distribution


def _tv_boxes(h: int, w: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, 4) (top, left, height, width) of torchvision v2's RandomResizedCrop draws."""
    t = v2.RandomResizedCrop(224, antialias=True)
    img = torch.empty((3, h, w), dtype=torch.uint8)
    torch.manual_seed(seed)
    out = np.empty((n, 4), np.int64)
    for i in range(n):
        p = t.make_params([img])
        out[i] = (p["top"], p["left"], p["height"], p["width"])
    return out


def _aug_boxes(h: int, w: int, n: int, seed: int = 0) -> np.ndarray:
    op = aug.RandomResizedCrop(224)
    run = _run(op, "numpy", seed=seed)
    return _rrc_boxes(op, run.sample(n), [(h, w)] * n)


@pytest.mark.parametrize("hw", [(375, 500), (50, 800)])  # 500 x 375 (W x H); 50 x 800: the fallback triggers
def test_random_resized_crop_box_distribution_matches_torchvision(hw):
    stats = pytest.importorskip("scipy.stats", reason="scipy is not installed")
    h, w = hw
    n = 10_000
    a, t = _aug_boxes(h, w, n, seed=1), _tv_boxes(h, w, n, seed=1)
    for boxes in (a, t):
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= h).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 1] + boxes[:, 3] <= w).all()
    area = lambda b: b[:, 2] * b[:, 3] / (h * w)
    ratio = lambda b: b[:, 3] / b[:, 2]
    for name, f in (("area fraction", area), ("aspect ratio", ratio)):
        p = stats.ks_2samp(f(a), f(t), method="asymp").pvalue  # many ties: the exact method gives up
        assert p > 1e-3, f"{name}: KS p = {p:.2e}"
    if hw == (50, 800):  # mostly the centred fallback, 50 x 67: as often on both sides
        fa = np.mean((a[:, 2] == 50) & (a[:, 3] == 67))
        ft = np.mean((t[:, 2] == 50) & (t[:, 3] == 67))
        assert fa > 0.5 and abs(fa - ft) < 0.03
