"""Masks and boxes against torchvision v2 (``tv_tensors``): with the same params, masks
equal torchvision's where the warp is whole-pixel (flips, crops, pads), boxes within a
pixel, and the same boxes removed by ``SanitizeBoundingBoxes`` (a side under a pixel: ``min_size=1`` on both)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

import augspec as aug  # noqa: E402

H, W = 14, 18
RULES = {"min_size": 1.0}


def _sample(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    m = rng.integers(0, 6, (1, H, W)).astype(np.uint8)
    lo = rng.uniform(-0.2, 0.8, (5, 2)) * [W, H]
    b = np.concatenate([lo, lo + rng.uniform(1.0, 8.0, (5, 2))], -1)
    b = np.clip(b, 0, [W, H, W, H]).astype(np.float32)
    b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
    return x, m, b


def _each(fn):
    """A torchvision functional over the image, mask and boxes of a sample dict."""
    return lambda d: {k: (v if k == "labels" else fn(v)) for k, v in d.items()}


def _theirs(fn, x, m, b):
    img = torch.from_numpy(x[0].transpose(2, 0, 1).copy())
    mask = tv_tensors.Mask(torch.from_numpy(m[0].copy()))
    boxes = tv_tensors.BoundingBoxes(torch.from_numpy(b), format="XYXY", canvas_size=(H, W))
    out = fn({"image": img, "mask": mask, "boxes": boxes, "labels": torch.arange(len(b))})
    out = v2.SanitizeBoundingBoxes(min_size=1.0)(out)
    return out["mask"].numpy(), out["boxes"].numpy(), out["labels"].numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ours, theirs", [
    (lambda s: aug.HorizontalFlip(p=1.0), lambda s: v2.RandomHorizontalFlip(p=1.0)),
    (lambda s: aug.VerticalFlip(p=1.0), lambda s: v2.RandomVerticalFlip(p=1.0)),
    (lambda s: aug.CenterCrop((9, 11)), lambda s: v2.CenterCrop((9, 11))),
    (lambda s: aug.Pad((3, 1, 2, 4)), lambda s: v2.Pad([3, 1, 2, 4], fill={tv_tensors.Mask: 255, "others": 0})),
])
def test_whole_pixel_ops_match_torchvision(ours, theirs, seed):
    x, m, b = _sample(seed)
    out = aug.Pipeline([ours(seed)], seed=seed).compile("numpy", targets=RULES)(x, masks=m, boxes=[b],
                                                                   box_labels=[np.arange(len(b))])
    tm, tb, tl = _theirs(theirs(seed), x, m, b)
    assert np.array_equal(out["masks"][0], tm)
    assert out["box_labels"][0].tolist() == tl.tolist()
    assert np.allclose(out["boxes"][0], tb, atol=1.0)


@pytest.mark.parametrize("seed", range(8))
def test_random_crop_matches_torchvision_at_the_same_offset(seed):
    """The crop's offset read back from an index mask; torchvision's crop there."""
    x, _, b = _sample(seed)
    idx = np.arange(H * W, dtype=np.int32).reshape(1, H, W)
    out = aug.Pipeline([aug.RandomCrop((8, 10))], seed=seed).compile("numpy", targets=RULES)(
        x, masks=idx, boxes=[b], box_labels=[np.arange(len(b))])
    top, left = divmod(int(out["masks"][0, 0, 0]), W)
    tm, tb, tl = _theirs(_each(lambda s: F.crop(s, top, left, 8, 10)), x, idx.astype(np.int32), b)
    assert np.array_equal(out["masks"][0], tm)
    assert out["box_labels"][0].tolist() == tl.tolist()
    assert np.allclose(out["boxes"][0], tb, atol=1.0)


@pytest.mark.parametrize("seed", range(4))
def test_affine_boxes_within_a_pixel_of_torchvision(seed):
    """A rotation, scale and shift given to both: torchvision rotates counter-clockwise for a
    positive angle (augspec's angle is clockwise in the image), about the same centre."""
    x, m, b = _sample(seed)
    ang, tx, ty, sc = 17.0 * (seed + 1) % 40 - 20, 2.0, -1.0, 1.1
    ours = aug.Affine(rotate=(ang, ang), translate=(tx / W, tx / W), translate_y=(ty / H, ty / H),
                      scale=(sc, sc), p=1.0, interpolation="nearest")
    out = aug.Pipeline([ours], seed=0).compile("numpy", targets=RULES)(x, masks=m, boxes=[b], box_labels=[np.arange(len(b))])
    tm, tb, tl = _theirs(_each(lambda s: F.affine(s, angle=-ang, translate=[tx, ty], scale=sc, shear=[0.0, 0.0])),
                          x, m, b)
    keep = np.isin(tl, out["box_labels"][0])
    assert keep.sum() >= len(tl) - 1 and len(out["box_labels"][0]) >= len(tl) - 1  # a border case may differ
    common = np.intersect1d(tl, out["box_labels"][0])
    ours_b = out["boxes"][0][np.isin(out["box_labels"][0], common)]
    assert np.allclose(ours_b, tb[np.isin(tl, common)], atol=1.0)
    agree = (out["masks"][0] == tm).mean()
    assert agree > 0.9  # nearest sampling at non-integer points: ties may round the other way
