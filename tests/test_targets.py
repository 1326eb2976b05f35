"""Masks, boxes and keypoints follow the images (core/targets.py, core/target_io.py).

Invariants (Hypothesis), the rules of each stage kind, the door (forms, formats, errors),
every backend against NumPy, the integrations, and fidelity to albumentations where the
warp is whole-pixel (torchvision: tests/test_targets_torchvision.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import augspec as aug
from augspec.core.errors import InputError, InputTypeError, SpecError

H, W = 12, 16


def _images(n=4, h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _masks(n=4, h=H, w=W, k=5, seed=1):
    return np.random.default_rng(seed).integers(0, k, (n, h, w)).astype(np.uint8)


def _boxes(n=4, m=3, h=H, w=W, seed=2, inside=True):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 0.6, (n, m, 2)) * [w, h] if inside else rng.uniform(-0.3, 0.9, (n, m, 2)) * [w, h]
    wh = rng.uniform(0.15, 0.4, (n, m, 2)) * [w, h]
    return np.concatenate([lo, lo + wh], -1).astype(np.float32)


def _run(ops, backend="numpy", seed=0, **kw):
    return aug.Pipeline(list(ops), seed=seed, num_classes=3).compile(backend, **kw)


GEOMETRIC = st.sampled_from([
    lambda: aug.HorizontalFlip(), lambda: aug.VerticalFlip(),
    lambda: aug.Affine(rotate=30, translate=0.2, scale=(0.7, 1.3), shear=10),
    lambda: aug.Affine(rotate=20, interpolation="nearest", fill_mode="reflect"),
    lambda: aug.Perspective(p=0.7), lambda: aug.ElasticTransform(p=0.5),
    lambda: aug.RandomResizedCrop((10, 10), scale=(0.3, 1.0)), lambda: aug.RandomCrop((8, 9), padding=3),
    lambda: aug.Pad((1, 2, 3, 4)), lambda: aug.CenterCrop((9, 11)), lambda: aug.Resize((7, 20)),
])
ANY_OP = st.one_of(GEOMETRIC, st.sampled_from([
    lambda: aug.ColorJitter(0.3, 0.3, 0.3), lambda: aug.CutOut(size=(0.2, 0.5)),
    lambda: aug.RandomErasing(p=0.7), lambda: aug.GaussianNoise(0.1),
]))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ invariants
@SETTINGS
@given(st.lists(ANY_OP, min_size=1, max_size=4), st.integers(0, 2 ** 31 - 1))
def test_mask_class_set_never_grows_and_boxes_stay_inside(makers, seed):
    ops = [m() for m in makers]
    masks = _masks(k=4, seed=seed % 7)
    out = _run(ops, seed=seed)(_images(seed=seed % 5), masks=masks, boxes=_boxes(inside=False, seed=seed % 11),
                               keypoints=_boxes(seed=seed % 3)[..., :2])
    allowed = set(np.unique(masks).tolist()) | {255}
    assert set(np.unique(out["masks"]).tolist()) <= allowed
    oh, ow = out["images"].shape[1:3]
    b, v = out["boxes"], out["box_valid"]
    assert out["masks"].shape == (4, oh, ow)
    kept = b[v]
    assert np.all(kept[:, 0] >= 0) and np.all(kept[:, 1] >= 0)
    assert np.all(kept[:, 2] <= ow) and np.all(kept[:, 3] <= oh)
    assert np.all(kept[:, 2] > kept[:, 0]) and np.all(kept[:, 3] > kept[:, 1])
    assert np.all(b[~v] == 0)
    p, pv = out["keypoints"], out["keypoint_visible"]
    assert np.all((p[pv] >= 0) & (p[pv] < [ow, oh]))


@SETTINGS
@given(st.sampled_from(["h", "v"]), st.booleans(), st.integers(0, 1000))
def test_a_flip_twice_returns_boxes_and_keypoints_exactly(axis, apart, seed):
    flip = aug.HorizontalFlip(p=1.0) if axis == "h" else aug.VerticalFlip(p=1.0)
    ops = [flip, aug.Brightness(0.2), flip] if apart else [flip, flip]  # two stages, or one fused stage
    boxes = _boxes(seed=seed)
    pts = (np.random.default_rng(seed).uniform(0, 1, (4, 6, 2)) * [W, H]).astype(np.float32)
    out = _run(ops, seed=seed)(_images(), boxes=boxes, keypoints=pts)
    assert np.array_equal(out["boxes"], boxes)
    assert np.array_equal(out["keypoints"], pts)
    assert out["box_valid"].all() and out["keypoint_visible"].all()


WHOLE_PIXEL = st.sampled_from([
    lambda: aug.HorizontalFlip(), lambda: aug.VerticalFlip(), lambda: aug.RandomCrop((7, 9), padding=2),
    lambda: aug.CenterCrop((10, 10)), lambda: aug.Pad((2, 1, 0, 3)),
    lambda: aug.Affine(rotate=(90, 90), interpolation="nearest", p=0.5),
])


@SETTINGS
@given(st.lists(WHOLE_PIXEL, min_size=1, max_size=3), st.integers(0, H - 1), st.integers(0, H - 1),
       st.integers(0, 10 ** 6))
def test_a_keypoint_lands_where_its_pixel_went(makers, i, j, seed):
    """A one-hot image traces the pixel: where it lands in the output, the keypoint is there."""
    x = np.zeros((1, H, H, 1), np.float32)
    x[0, i, j, 0] = 1.0
    out = _run([m() for m in makers], seed=seed)(x, keypoints=np.array([[[j + 0.5, i + 0.5]]], np.float32))
    img = out["images"][0, ..., 0]
    if out["keypoint_visible"][0, 0]:
        oi, oj = np.floor(out["keypoints"][0, 0, ::-1]).astype(int)
        assert img[oi, oj] == 1.0 and img.sum() == 1.0
    else:
        assert img.sum() == 0.0


def test_an_elastic_keypoint_follows_its_pixel_within_a_pixel():
    x = np.zeros((8, 32, 32, 1), np.float32)
    rng = np.random.default_rng(0)
    ij = rng.integers(8, 24, (8, 2))
    x[np.arange(8), ij[:, 0], ij[:, 1], 0] = 1.0
    pts = (ij[:, ::-1] + 0.5)[:, None, :].astype(np.float32)
    out = _run([aug.ElasticTransform(alpha=30.0, sigma=5.0, p=1.0, interpolation="nearest")])(x, keypoints=pts)
    for k in range(8):
        hits = np.argwhere(out["images"][k, ..., 0] > 0)
        if len(hits) == 0:
            continue
        d = np.abs(hits + 0.5 - out["keypoints"][k, 0, ::-1]).max(axis=1).min()
        assert d <= 1.5, (k, hits, out["keypoints"][k])


# ------------------------------------------------------------------ stage rules
def test_masks_move_nearest_with_the_image_and_fill_ignore_index():
    x = np.arange(H * W, dtype=np.float32).reshape(1, H, W, 1) / (H * W)
    m = np.arange(H * W, dtype=np.int32).reshape(1, H, W)
    out = _run([aug.Affine(rotate=(25, 25), translate=(0.1, 0.1), interpolation="nearest")],
               targets={"ignore_index": -1})(x, masks=m)
    img, mask = out["images"][0, ..., 0], out["masks"][0]
    assert mask.dtype == np.int32
    inside = mask >= 0
    assert np.allclose(img[inside] * (H * W), mask[inside], atol=1e-3)  # the same source pixel
    assert (~inside).any() and np.all(img[~inside] == 0)


def test_soft_masks_take_the_images_warp_in_either_layout():
    x = np.random.default_rng(0).random((2, H, W, 3)).astype(np.float32)
    soft_nhwc = x[..., :2].copy()
    soft_nchw = np.ascontiguousarray(soft_nhwc.transpose(0, 3, 1, 2))
    run = _run([aug.Affine(rotate=20), aug.RandomResizedCrop((8, 8))])
    a = run(x, masks=soft_nhwc)
    run.set_state(step=0)
    b = run(x, masks=soft_nchw)
    assert a["masks"].shape == (2, 8, 8, 2) and b["masks"].shape == (2, 2, 8, 8)
    assert np.allclose(a["masks"], a["images"][..., :2], atol=1e-5)
    assert np.allclose(b["masks"].transpose(0, 2, 3, 1), a["masks"])


def test_boxes_below_min_visibility_are_dropped_with_their_labels():
    x = _images(1)
    boxes = [np.array([[0, 0, 4, 4], [6, 2, 14, 10], [10, 0, 16, 12]], np.float32)]
    labels = [np.array([7, 8, 9])]
    crop = aug.CenterCrop((12, 8))  # columns 4..12 of 16
    out = _run([crop], targets={"min_visibility": 0.5})(x, boxes=boxes, box_labels=labels)
    assert out["box_labels"][0].tolist() == [8]  # box 0 leaves, box 2 keeps a third of its width
    assert np.allclose(out["boxes"][0], [[2, 2, 8, 10]])
    out = _run([crop])(x, boxes=boxes, box_labels=labels)  # min_visibility 0: anything left stays
    assert out["box_labels"][0].tolist() == [8, 9]
    assert np.allclose(out["boxes"][0], [[2, 2, 8, 10], [6, 0, 8, 12]])
    out = _run([crop], targets={"min_size": 3})(x, boxes=boxes, box_labels=labels)
    assert out["box_labels"][0].tolist() == [8]


def test_cutout_writes_ignore_index_and_drops_covered_boxes_and_keypoints():
    run = _run([aug.CutOut(holes=1, size=(0.5, 0.5), p=1.0)])
    n = 6
    x = np.full((n, H, H, 3), 200, np.uint8)
    m = np.ones((n, H, H), np.uint8)
    # a tiny box and keypoint at every pixel centre's neighbourhood: fully covered ones go
    grid = np.stack(np.meshgrid(np.arange(H) + 0.25, np.arange(H) + 0.25), -1).reshape(-1, 2)
    boxes = np.concatenate([grid, grid + 0.5], -1)[None].repeat(n, 0).astype(np.float32)
    out = run(x, masks=m, boxes=boxes, keypoints=(grid + 0.25)[None].repeat(n, 0).astype(np.float32))
    hole = out["images"][..., 0] == 0
    assert np.array_equal(out["masks"] == 255, hole)
    assert hole.any(axis=(1, 2)).all()
    cell = hole.reshape(n, -1)  # the pixel each box and keypoint sits in, row-major as the grid
    assert np.array_equal(out["box_valid"], ~cell)
    assert np.array_equal(out["keypoint_visible"], out["box_valid"])


def test_random_erasing_covers_targets_like_a_region_op():
    run = _run([aug.RandomErasing(p=1.0, scale=(0.2, 0.3))])
    x = np.full((4, H, W, 3), 0.5, np.float32)
    out = run(x, masks=np.zeros((4, H, W), np.uint8))
    assert np.array_equal(out["masks"] == 255, out["images"][..., 0] == 0)


def test_cutmix_pastes_the_partners_mask_and_boxes():
    from augspec.backends.numpy import NumpyBackend
    from augspec.core.spec import Context

    n = 6
    x = (np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, H, W, 3), np.float32)) / n
    m = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None, None], (n, H, W)).copy()
    boxes = np.array([[[1, 1, 15, 11]]] * n, np.float32)
    lab = np.arange(n)[:, None]
    op = aug.CutMix(p=1.0)
    out = _run([op], seed=3)(x, masks=m, boxes=boxes, box_labels=lab)
    params = {k.split("/")[1]: v for k, v in _run([op], seed=3).sample(n, (H, W, 3)).items()}
    y0, y1, x0, x1 = op.box(NumpyBackend(), params, Context(n, H, W, 3))
    perm = params["partner"]
    src = np.rint(out["images"][..., 0] * n).astype(int)
    assert np.array_equal(out["masks"], src)  # every pixel's class is its image's source
    b, v, bl = out["boxes"], out["box_valid"], out["box_labels"]
    assert b.shape == (n, 2, 4)
    for i in range(n):
        cx0, cy0 = max(x0[i], 1), max(y0[i], 1)
        cx1, cy1 = min(x1[i], 15), min(y1[i], 11)
        inside = cx1 > cx0 and cy1 > cy0
        assert v[i, 1] == inside
        if inside:  # the partner's box, clipped to the pasted box
            assert np.allclose(b[i, 1], [cx0, cy0, cx1, cy1]) and bl[i, 1] == perm[i]
        covered = (cx1 - cx0) * (cy1 - cy0) if inside else 0.0
        assert v[i, 0] == (covered < 14 * 10)  # the own box goes only when the paste covers it whole


def test_mixup_keeps_both_box_sets_with_weights_lambda_and_one_minus_lambda():
    n = 5
    boxes = _boxes(n)
    out = _run([aug.MixUp(alpha=0.5)], seed=1)(_images(n), np.arange(n) % 3, boxes=boxes)
    w = out["box_weights"]
    assert out["boxes"].shape == (n, 6, 4)
    assert np.allclose(w[:, :3] + w[:, 3:], 1.0, atol=1e-6)
    assert np.array_equal(out["boxes"][:, :3], boxes)
    perm = [int(np.flatnonzero((boxes == out["boxes"][i, 3:]).all(axis=(1, 2)))[0]) for i in range(n)]
    y = np.eye(3)[np.arange(n) % 3]
    lam = w[:, 0:1]  # the sample's own share: its labels mix by the same lambda
    assert np.allclose(out["labels"], lam * y + (1 - lam) * y[perm], atol=1e-5)


def test_mosaic_tiles_four_images_around_the_centre():
    n, s = 5, 16
    x = (np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, s, s, 3), np.float32)) / n
    m = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, s, s)).copy()
    b = np.array([[[2, 2, 14, 14]]] * n, np.float32)
    out = _run([aug.Mosaic()], seed=4)(x, np.arange(n) % 3, masks=m, boxes=b, box_labels=np.arange(n)[:, None],
                                      keypoints=np.array([[[13.5, 13.5]]] * n, np.float32))
    p = {k.split("/")[1]: v for k, v in _run([aug.Mosaic()], seed=4).sample(n, (s, s, 3)).items()}
    src = np.rint(out["images"][..., 0] * n).astype(int)
    assert np.array_equal(out["masks"], src) and out["boxes"].shape == (n, 4, 4)
    for i in range(n):
        cx, cy = int(np.floor(p["centre_x"][i] * s)), int(np.floor(p["centre_y"][i] * s))
        assert src[i, 0, 0] == i  # the top left is the sample itself, its bottom right corner at the centre
        quads = [(0, 0, cx, cy), (cx, 0, s, cy), (0, cy, cx, s), (cx, cy, s, s)]
        shifts = [(cx - s, cy - s), (cx, cy - s), (cx - s, cy), (cx, cy)]
        for q, ((x0, y0, x1, y1), (dx, dy)) in enumerate(zip(quads, shifts)):
            want = np.clip([2 + dx, 2 + dy, 14 + dx, 14 + dy], [x0, y0, x0, y0], [x1, y1, x1, y1])
            ok = want[2] > want[0] and want[3] > want[1]
            assert out["box_valid"][i, q] == ok
            if ok:
                assert np.allclose(out["boxes"][i, q], want)
                assert out["box_labels"][i, q] == src[i, y0, x0]  # the label of the image the quadrant shows
        kx, ky = 13.5 + cx - s, 13.5 + cy - s
        assert np.allclose(out["keypoints"][i, 0], [kx, ky])
        assert out["keypoint_visible"][i, 0] == (0 <= kx < cx and 0 <= ky < cy)
    areas = np.stack([(src == k).mean(axis=(1, 2)) for k in range(n)], 1)  # each image's share of the pixels
    want = areas @ np.eye(3)[np.arange(n) % 3]
    assert np.allclose(out["labels"], want, atol=1e-6)


def test_a_gated_mix_appends_no_partner_boxes_where_off():
    out = _run([aug.CutMix(p=0.0)])(_images(), boxes=_boxes())
    assert out["box_valid"][:, :3].all() and not out["box_valid"][:, 3:].any()


def test_synthetic_samples_get_an_ignored_mask_and_no_boxes():
    run = _run([aug.Synthetic("fractal", ratio=0.5, exact=True)])
    out = run(_images(), np.array([0, 1, 2, 0]), masks=_masks(), boxes=_boxes(), keypoints=_boxes()[..., :2])
    replaced = np.any(out["labels"] != np.eye(3)[[0, 1, 2, 0]], axis=1)
    assert replaced.sum() == 2
    assert np.all(out["masks"][replaced] == 255) and np.array_equal(out["masks"][~replaced], _masks()[~replaced])
    assert not out["box_valid"][replaced].any() and out["box_valid"][~replaced].all()
    assert not out["keypoint_visible"][replaced].any()


def test_colour_and_pixel_ops_leave_targets_alone():
    ops = [aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.GaussianNoise(0.1), aug.Normalize(), aug.LabelSmoothing(0.1)]
    m, b, k = _masks(), _boxes(), _boxes()[..., :2]
    out = _run(ops)(_images(), np.arange(4) % 3, masks=m, boxes=b, keypoints=k)
    assert np.array_equal(out["masks"], m) and np.array_equal(out["boxes"], b) and np.array_equal(out["keypoints"], k)


def test_evaluation_moves_targets_through_the_deterministic_ops():
    run = _run([aug.Resize((8, 8)), aug.HorizontalFlip()])  # evaluation: the resize, no flip
    m = _masks(h=16, w=16)
    b = _boxes(h=16, w=16)
    out = run(_images(h=16, w=16), masks=m, boxes=b, training=False)
    assert out["masks"].dtype == np.uint8
    assert np.array_equal(out["masks"], m[:, 1::2, 1::2])  # nearest: source pixel 2 o + 1/2, rounded up
    assert np.allclose(out["boxes"], b / 2, atol=1e-5)


# ------------------------------------------------------------------------ door
def test_box_formats_and_normalised_coordinates_round_trip():
    boxes = _boxes(2)
    xywh = np.concatenate([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], -1)
    cxcywh = np.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
    run = _run([aug.HorizontalFlip(p=1.0)])
    want = run(_images(2), boxes=boxes)["boxes"]
    for fmt, b in (("xywh", xywh), ("cxcywh", cxcywh)):
        got = run(_images(2), boxes=b, box_format=fmt)["boxes"]
        back = {"xywh": lambda v: np.concatenate([v[..., :2], v[..., :2] + v[..., 2:]], -1),
                "cxcywh": lambda v: np.concatenate([v[..., :2] - v[..., 2:] / 2, v[..., :2] + v[..., 2:] / 2], -1)}
        assert np.allclose(back[fmt](got), want, atol=1e-4)
    norm = boxes / np.array([W, H, W, H], np.float32)
    crop = _run([aug.Resize((H * 2, W * 2))])
    assert np.allclose(crop(_images(2), boxes=norm, normalized=True)["boxes"], norm, atol=1e-5)


def test_a_dict_call_answers_with_the_same_keys():
    run = _run([aug.HorizontalFlip()])
    d = {"image": _images(), "label": np.arange(4) % 3, "mask": _masks(), "bboxes": list(_boxes()),
         "box_labels": [np.arange(3)] * 4, "keypoints": _boxes()[..., :2]}
    out = run(d)
    assert set(out) == set(d) | {"keypoint_visible"}
    assert isinstance(out["bboxes"], list) and out["mask"].shape == (4, H, W)


def test_one_image_and_its_targets():
    run = _run([aug.HorizontalFlip(p=1.0)])
    out = run(_images(1)[0], masks=_masks(1)[0], boxes=_boxes(1)[0], keypoints=_boxes(1)[0, :, :2])
    assert out["images"].shape == (H, W, 3) and out["masks"].shape == (H, W)
    assert out["boxes"].shape == (3, 4) and out["keypoints"].shape == (3, 2)
    assert np.array_equal(out["masks"], _masks(1)[0][:, ::-1])


def test_images_of_different_sizes_with_their_masks():
    sizes = [(10, 14), (16, 9), (12, 12)]
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    masks = [np.full((h, w), i, np.uint8) for i, (h, w) in enumerate(sizes)]
    boxes = [np.array([[0, 0, w, h]], np.float32) for h, w in sizes]
    out = _run([aug.Resize((8, 8))])(imgs, masks=masks, boxes=boxes)
    assert out["masks"].shape == (3, 8, 8)
    for i in range(3):
        assert np.all(out["masks"][i] == i)
        assert np.allclose(out["boxes"][i], [[0, 0, 8, 8]])


def test_inputs_are_not_written():
    m, b, k = _masks(), _boxes(), _boxes()[..., :2]
    copies = [v.copy() for v in (m, b, k)]
    _run([aug.Affine(rotate=30), aug.CutOut(), aug.CutMix()])(_images(), np.arange(4) % 3, masks=m, boxes=b,
                                                                keypoints=k)
    assert all(np.array_equal(a, c) for a, c in zip((m, b, k), copies))


@pytest.mark.parametrize("kw, err, words", [
    ({"masks": np.zeros((4, H, W), np.float32)}, InputTypeError, "integers"),
    ({"masks": np.zeros((4, H, W + 1), np.uint8)}, InputError, "masks"),
    ({"masks": np.zeros((4, H, W), np.int8)}, InputError, "ignore_index"),
    ({"boxes": np.zeros((4, 3, 5), np.float32)}, InputError, "boxes"),
    ({"boxes": [np.zeros((3, 4))] * 3}, InputError, "3 entries for 4 images"),
    ({"boxes": _boxes(), "box_labels": np.zeros((4, 2), np.int64)}, InputError, "box_labels"),
    ({"box_labels": np.zeros((4, 2))}, InputError, "need boxes"),
    ({"keypoints": np.zeros((4, 3, 3))}, InputError, "keypoints"),
    ({"boxes": _boxes(), "box_format": "yxyx"}, InputError, "box_format"),
    ({"masks_": 1}, InputTypeError, "unknown keyword"),
])
def test_bad_targets_are_named(kw, err, words):
    with pytest.raises(err, match=words):
        _run([aug.HorizontalFlip()])(_images(), **kw)


def test_bad_dict_keys_and_rules_are_named():
    with pytest.raises(InputError, match="unknown key 'imgs'"):
        _run([aug.HorizontalFlip()])({"imgs": _images()})
    with pytest.raises(SpecError, match="min_visibility"):
        _run([aug.HorizontalFlip()], targets={"min_visibility": 2})
    with pytest.raises(SpecError, match="unknown rules"):
        _run([aug.HorizontalFlip()], targets={"ignore": 1})


# -------------------------------------------------------------------- backends
PIPE = [aug.Affine(rotate=25, translate=0.1, scale=(0.8, 1.2), p=0.8), aug.HorizontalFlip(),
        aug.RandomResizedCrop((10, 12)), aug.CutOut(size=0.3, p=0.5), aug.RandomErasing(p=0.5),
        aug.OneOf([aug.CutMix(), aug.MixUp()]), aug.Perspective(p=0.5), aug.ElasticTransform(p=0.5),
        aug.Mosaic(p=0.7)]


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_every_backend_moves_targets_as_numpy(backend):
    pytest.importorskip({"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}[backend])
    x, y, m, b = _images(), np.arange(4) % 3, _masks(), _boxes(inside=False)
    k = _boxes()[..., :2]
    want = _run(PIPE, targets={"min_visibility": 0.2})(x, y, masks=m, boxes=b, box_labels=np.ones((4, 3), int),
                                                        keypoints=k)
    xb = x
    if backend == "torch":
        import torch

        xb = torch.from_numpy(x).permute(0, 3, 1, 2)
    run = _run(PIPE, backend, targets={"min_visibility": 0.2})
    got = run(xb, y, masks=m, boxes=b, box_labels=np.ones((4, 3), int), keypoints=k)
    for key in ("masks", "box_valid", "box_labels", "keypoint_visible"):
        assert np.array_equal(np.asarray(got[key]), want[key]), key
    for key in ("boxes", "keypoints", "box_weights"):
        assert np.allclose(np.asarray(got[key]), want[key], atol=1e-3), key


def test_the_albumentations_backend_moves_targets_and_defers_the_mix():
    pytest.importorskip("albumentations")
    per_image = PIPE[:5]
    x, m, b = _images(), _masks(), _boxes(inside=False)
    want = _run(per_image)(x, masks=m, boxes=list(b))
    got = _run(per_image, "albumentations", exact_draws=True)(x, masks=m, boxes=list(b))
    assert np.array_equal(got["masks"], want["masks"])
    assert all(np.allclose(g, w_, atol=1e-4) for g, w_ in zip(got["boxes"], want["boxes"]))
    run = _run(PIPE[:6], "albumentations", defer_batch_ops=True)
    out = run(x, np.arange(4) % 3, masks=m, boxes=b)
    mixed = run.batch(out["images"], out["labels"], masks=out["masks"], boxes=out["boxes"],
                      box_valid=out["box_valid"])
    assert mixed["boxes"].shape == (4, 6, 4) and mixed["masks"].shape == (4, 10, 12)


def test_tf_data_draws_new_params_per_batch():
    tf = pytest.importorskip("tensorflow")
    run = _run([aug.Affine(rotate=40, translate=0.2), aug.HorizontalFlip()], "tensorflow")
    x, b = _images(8), _boxes(8)
    ds = tf.data.Dataset.from_tensor_slices((x, b)).batch(4, drop_remainder=True)
    ds = ds.map(lambda xi, bi: run(xi, boxes=bi))
    outs = [{k: v.numpy() for k, v in o.items()} for o in ds.take(2)]
    outs2 = [{k: v.numpy() for k, v in o.items()} for o in ds.take(2)]
    assert not np.allclose(outs[0]["boxes"], outs2[0]["boxes"])  # a new draw each pass
    assert outs[0]["boxes"].shape == (4, 3, 4)


# ------------------------------------------------------------ albumentations
def _albu_params():
    import albumentations as A

    return dict(bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.3),
                keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))


@pytest.mark.parametrize("ours, theirs", [
    (lambda: aug.HorizontalFlip(p=1.0), lambda A: A.HorizontalFlip(p=1.0)),
    (lambda: aug.VerticalFlip(p=1.0), lambda A: A.VerticalFlip(p=1.0)),
    (lambda: aug.CenterCrop((8, 10)), lambda A: A.CenterCrop(8, 10)),
    (lambda: aug.Pad((2, 3, 1, 4)), lambda A: A.Pad((2, 3, 1, 4), fill=0, fill_mask=255)),
])
def test_masks_boxes_keypoints_equal_albumentations_on_whole_pixel_ops(ours, theirs):
    A = pytest.importorskip("albumentations")
    x, m, b = _images(1), _masks(1), _boxes(1, 5, inside=False)[0]
    b = np.clip(b, 0, [W, H, W, H])
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b = b[keep]
    pts = _boxes(1, 4)[0, :, :2]
    lab = np.arange(len(b))
    t = A.Compose([theirs(A)], **_albu_params())
    ref = t(image=x[0], mask=m[0], bboxes=b, labels=lab, keypoints=pts - 0.5)  # albumentations: pixel centres at k
    out = _run([ours()], targets={"min_visibility": 0.3})(x, masks=m, boxes=[b], box_labels=[lab], keypoints=[pts])
    assert np.array_equal(out["masks"][0], ref["mask"])
    assert np.array_equal(out["box_labels"][0], np.asarray(ref["labels"]))
    assert np.allclose(out["boxes"][0], np.asarray(ref["bboxes"]).reshape(-1, 4), atol=1.0)
    assert np.allclose(out["keypoints"][0] - 0.5, np.asarray(ref["keypoints"])[:, :2], atol=1e-4)


def test_random_crop_drops_the_boxes_albumentations_drops():
    """The crop's offset read back from an index mask, then albumentations' Crop there."""
    A = pytest.importorskip("albumentations")
    idx = np.arange(H * W, dtype=np.int32).reshape(1, H, W)
    for seed in range(12):
        b = _boxes(1, 6, seed=seed, inside=True)[0]
        lab = np.arange(6)
        out = _run([aug.RandomCrop((7, 8))], seed=seed, targets={"min_visibility": 0.3})(
            _images(1), masks=idx, boxes=[b], box_labels=[lab])
        y0, x0 = divmod(int(out["masks"][0, 0, 0]), W)
        t = A.Compose([A.Crop(x0, y0, x0 + 8, y0 + 7)], **_albu_params())
        ref = t(image=_images(1)[0], bboxes=b, labels=lab, keypoints=np.zeros((0, 2)))
        assert out["box_labels"][0].tolist() == list(ref["labels"]), seed
        assert np.allclose(out["boxes"][0], np.asarray(ref["bboxes"]).reshape(-1, 4), atol=1.0)


# ---------------------------------------------------------------- integrations
def test_torch_collate_takes_dict_samples_with_targets():
    torch = pytest.importorskip("torch")
    from augspec.torch import Augment, Collate

    rng = np.random.default_rng(0)
    samples = [{"image": torch.from_numpy(rng.integers(0, 256, (3, H, W), dtype=np.uint8)),
                "label": i % 3, "mask": torch.from_numpy(_masks(1)[0]),
                "boxes": torch.from_numpy(_boxes(1, 1 + i)[0]), "box_labels": torch.arange(1 + i), "id": i}
               for i in range(4)]
    pipe = aug.Pipeline([aug.HorizontalFlip(p=1.0), aug.MixUp()], seed=0, num_classes=3)
    loader = torch.utils.data.DataLoader(samples, batch_size=4, collate_fn=Collate(pipe, batch_only=False))
    (out,) = list(loader)
    assert out["image"].shape == (4, 3, H, W) and out["label"].shape == (4, 3)
    assert torch.equal(out["id"], torch.arange(4))
    assert isinstance(out["boxes"], list) and sum(len(b) for b in out["boxes"]) == 2 * (1 + 2 + 3 + 4)
    assert all(len(b) == len(lb) == len(w) for b, lb, w in zip(out["boxes"], out["box_labels"], out["box_weights"]))
    assert torch.equal(out["mask"], torch.from_numpy(_masks(1)).flip(-1).expand(4, H, W))  # one mask, mirrored
    module = Augment(aug.Pipeline([aug.VerticalFlip(p=1.0)], seed=0))
    got = module(torch.zeros(2, 3, H, W, dtype=torch.uint8), masks=torch.from_numpy(_masks(2)))
    assert torch.equal(got["masks"], torch.from_numpy(_masks(2)).flip(1))
    module.eval()
    got = module(torch.zeros(2, 3, H, W, dtype=torch.uint8), masks=torch.from_numpy(_masks(2)))
    assert torch.equal(got["masks"], torch.from_numpy(_masks(2)))


def test_keras_layer_takes_a_dict_in_tf_data():
    tf = pytest.importorskip("tensorflow")
    from augspec.keras import Augment

    layer = Augment(aug.Pipeline([aug.HorizontalFlip(p=1.0), aug.RandomResizedCrop((8, 8))], seed=0))
    x, m, b = _images(8), _masks(8), _boxes(8)
    ds = tf.data.Dataset.from_tensor_slices({"image": x, "mask": m, "boxes": b}).batch(4)
    ds = ds.map(lambda d: layer(d, training=True))
    out = next(iter(ds))
    assert set(out) == {"image", "mask", "boxes", "box_valid"}
    assert out["image"].shape == (4, 8, 8, 3) and out["mask"].shape == (4, 8, 8) and out["boxes"].shape == (4, 3, 4)
    kept = out["boxes"].numpy()[out["box_valid"].numpy()]
    assert np.all((kept >= 0) & (kept <= 8))


def test_tensorflow_masks_agree_eagerly_in_a_function_and_with_numpy():
    """The eager call compiles its whole step; in a graph the pass is compiled as the images are
    (XLA), so a nearest pick decides a tie the images' way; every batch shape its own trace."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    m0 = np.kron(rng.integers(0, 4, (16, 6, 6)), np.ones((8, 8), int)).astype(np.uint8)
    x0 = np.repeat((m0 * 60)[..., None], 3, -1).astype(np.float32) / 255
    ops = [aug.RandomResizedCrop((48, 48), scale=(0.5, 1.0), interpolation="nearest", antialias=False)]
    eager = _run(ops, "tensorflow")
    fn_run = _run(ops, "tensorflow")
    fn = tf.function(lambda a, b: fn_run(a, masks=b))
    ref = _run(ops)
    for step in range(3):
        want = ref(x0, masks=m0)
        got_e = eager(tf.constant(x0), masks=tf.constant(m0))
        got_f = fn(tf.constant(x0), tf.constant(m0))
        assert np.array_equal(got_e["masks"].numpy(), want["masks"]), step
        assert np.array_equal(got_f["masks"].numpy(), want["masks"]), step
        assert np.array_equal(np.rint(got_f["images"].numpy()[..., 0] * 255 / 60), got_f["masks"].numpy())
    small = eager(tf.constant(x0[:5]), masks=tf.constant(m0[:5]))  # another shape after the first
    assert small["masks"].shape == (5, 48, 48)
