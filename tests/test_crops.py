"""Crops, resizes and pads (RandomResizedCrop, Resize, CenterCrop, RandomCrop, Pad): exact
crops, antialiased resizing against Pillow, torchvision's box distribution, images of
different sizes in one call, and the evaluation rule. (Agreement of every backend with
the NumPy reference, ragged inputs included, is ``check_backend``'s, in
test_conformance.py; against torchvision itself: test_torchvision_fidelity.py.)"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import augspec as aug
import augspec.recipes
from augspec.core.errors import InputError, SpecError, SpecTypeError
from augspec.core.spec import Context


def images(shapes, seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    out = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    return out if dtype == np.uint8 else [(v / 255.0).astype(dtype) for v in out]


def run_of(*ops, seed=0, num_classes=None):
    return aug.Pipeline(list(ops), seed=seed, num_classes=num_classes).compile("numpy")


def psnr(a, b):
    m = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0 ** 2 / m)


def photo():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()  # 512 x 512 RGB


# ------------------------------------------------------------------ specs
@pytest.mark.parametrize("make, error, match", [
    (lambda: aug.Resize(0), SpecError, "size"),
    (lambda: aug.Resize((3, 4, 5)), SpecTypeError, "size"),
    (lambda: aug.Resize(8, interpolation="bicubic"), SpecError, "interpolation"),
    (lambda: aug.Resize(8, antialias="yes"), SpecTypeError, "antialias"),
    (lambda: aug.Resize(8, p=0.5), SpecError, "every sample"),
    (lambda: aug.CenterCrop(-1), SpecError, "size"),
    (lambda: aug.RandomCrop(8, padding=(1, 2, 3)), SpecTypeError, "padding"),
    (lambda: aug.RandomCrop(8, padding=-1), SpecError, "padding"),
    (lambda: aug.RandomCrop(8, fill_mode="wrap"), SpecError, "fill_mode"),
    (lambda: aug.Pad(2, fill=(1, 2)), None, None),
    (lambda: aug.RandomResizedCrop(8, scale=(0.5, 0.1)), SpecError, "inverted"),
    (lambda: aug.RandomResizedCrop(8, scale=(0.0, 0.0)), SpecError, "scale"),
    (lambda: aug.RandomResizedCrop(8, ratio=(0.0, 1.0)), SpecError, "ratio"),
    (lambda: aug.RandomResizedCrop(8, crop_pct=0.0), SpecError, "crop_pct"),
])
def test_specs_refuse_bad_fields(make, error, match):
    if error is None:
        make()
        return
    with pytest.raises(error, match=match):
        make()


def test_an_op_that_sets_the_size_cannot_be_gated():
    for ops in ([aug.OneOf([aug.RandomResizedCrop(8), aug.Resize((8, 8))])],
                [aug.RandomApply([aug.CenterCrop(8)], p=0.5)]):
        with pytest.raises(SpecError, match="every sample"):
            run_of(*ops)


def test_specs_round_trip_through_config():
    pipe = aug.Pipeline([aug.RandomResizedCrop((20, 24), scale=(0.3, 0.9)), aug.Resize(16), aug.CenterCrop(12),
                         aug.RandomCrop(10, padding=(1, 2), fill_mode="reflect"), aug.Pad((1, 2, 3, 4), fill=0.5)],
                        seed=3)
    again = aug.Pipeline.from_dict(pipe.to_dict())
    assert again.ops == pipe.ops


# ------------------------------------------------------------ exact crops
@pytest.mark.parametrize("hw, size", [((12, 14), (8, 10)), ((13, 14), (8, 9)), ((9, 9), (6, 6)), ((10, 11), (10, 11))])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_center_crop_is_torchvisions_window(hw, size, dtype):
    (x,) = images([hw], dtype=dtype)
    out = run_of(aug.CenterCrop(size))(x)
    top, left = int(round((hw[0] - size[0]) / 2.0)), int(round((hw[1] - size[1]) / 2.0))  # half to even
    np.testing.assert_array_equal(out, x[top:top + size[0], left:left + size[1]])


def test_center_crop_larger_than_the_image_pads_as_torchvision():
    (x,) = images([(5, 6)])
    out = run_of(aug.CenterCrop((8, 9)))(x)
    want = np.zeros((8, 9, 3), np.uint8)
    want[(8 - 5) // 2:(8 - 5) // 2 + 5, (9 - 6) // 2:(9 - 6) // 2 + 6] = x
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("mode, np_mode", [("constant", "constant"), ("nearest", "edge"), ("reflect", "symmetric")])
def test_random_crop_is_a_window_of_the_padded_image(mode, np_mode):
    xs = np.stack(images([(11, 13)] * 6, seed=2, dtype=np.float32))
    run = run_of(aug.RandomCrop((10, 12), padding=3, fill=0.25, fill_mode=mode))
    params = run.sample(6, (11, 13, 3))
    out = run.apply(xs, params=params)
    kw = {"constant_values": 0.25} if np_mode == "constant" else {}
    for i in range(6):
        top = math.floor(float(params["0/top"][i]) * (11 + 6 - 10 + 1))
        left = math.floor(float(params["0/left"][i]) * (13 + 6 - 12 + 1))
        padded = np.pad(xs[i], ((3, 3), (3, 3), (0, 0)), mode=np_mode, **kw)
        np.testing.assert_array_equal(out[i], padded[top:top + 10, left:left + 12])


def test_random_crop_refuses_a_too_small_image_unless_pad_if_needed():
    (x,) = images([(6, 7)])
    with pytest.raises(InputError, match="pad_if_needed"):
        run_of(aug.RandomCrop(8))(x[None])
    out = run_of(aug.RandomCrop(8, pad_if_needed=True))(x[None])
    assert out.shape == (1, 8, 8, 3)
    assert (out > 0).sum() <= x.size  # the image's pixels plus padding of zeros


@pytest.mark.parametrize("padding, mode, np_mode", [(2, "constant", "constant"), ((1, 2), "nearest", "edge"),
                                                    ((1, 2, 3, 4), "reflect", "symmetric")])
def test_pad_matches_numpy_pad(padding, mode, np_mode):
    (x,) = images([(7, 9)], dtype=np.float32)
    out = run_of(aug.Pad(padding, fill=0.5, fill_mode=mode))(x)
    left, top, right, bottom = aug.Pad(padding).padding
    kw = {"constant_values": 0.5} if np_mode == "constant" else {}
    np.testing.assert_array_equal(out, np.pad(x, ((top, bottom), (left, right), (0, 0)), mode=np_mode, **kw))


# ----------------------------------------------------------------- resize
@pytest.mark.parametrize("hw", [(375, 500), (500, 375), (224, 224), (10, 1000), (333, 500)])
def test_resize_int_sets_the_shorter_side_as_torchvision(hw):
    h, w = hw
    short, long = min(h, w), max(h, w)
    want_long = int(256 * long / short)
    want = (256, want_long) if h <= w else (want_long, 256)
    op = aug.Resize(256)
    assert tuple(int(v) for v in op.output_size(aug.core.ops.crop.SCALAR, h, w)) == want
    out = run_of(op)(np.zeros((1, h, w, 3), np.uint8))
    assert out.shape[1:3] == want


@pytest.mark.parametrize("factor", [2, 4])
def test_resize_antialias_matches_pillow_when_shrinking(factor):
    from PIL import Image

    img = photo()
    size = 512 // factor
    want = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    out = run_of(aug.Resize((size, size)))(img)
    plain = run_of(aug.Resize((size, size), antialias=False))(img)
    assert psnr(out, want) >= 30.0
    assert np.abs(out.astype(int) - want).max() <= 1
    if factor == 4:  # plain bilinear aliases: well below
        assert psnr(plain, want) < psnr(out, want) - 5.0


def test_resize_enlarging_matches_pillow_bilinear():
    from PIL import Image

    img = photo()[100:160, 200:290]
    want = np.asarray(Image.fromarray(img).resize((200, 150), Image.BILINEAR))
    out = run_of(aug.Resize((150, 200)))(img)
    assert np.abs(out.astype(int) - want).max() <= 1


def test_random_resized_crop_equals_pillows_resize_of_its_box():
    from PIL import Image

    img = photo()
    op = aug.RandomResizedCrop(96)
    run = run_of(op, seed=5)
    xs = np.stack([img] * 8)
    params = run.sample(8, img.shape)
    out = run.apply(xs, params=params)
    from augspec.backends.numpy import NumpyBackend

    B = NumpyBackend()
    top, left, h, w = (np.asarray(v) for v in op.box(B, {k.split("/", 1)[1]: v for k, v in params.items()},
                                                     Context(8, 512, 512, 3)))
    for i in range(8):
        box = (float(left[i]), float(top[i]), float(left[i] + w[i]), float(top[i] + h[i]))
        want = np.asarray(Image.fromarray(img).resize((96, 96), Image.BILINEAR, box=box))
        d = np.abs(out[i, 2:-2, 2:-2].astype(int) - want[2:-2, 2:-2])
        assert d.max() <= 1, (i, box, d.max())


# ------------------------------------------------- RandomResizedCrop's boxes
def torchvision_get_params(height, width, scale, ratio, rng):
    """torchvision's RandomResizedCrop.get_params, restated in plain Python (float64)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("hw", [(375, 500), (40, 800)])
def test_random_resized_crop_boxes_follow_torchvisions_distribution(hw):
    stats = pytest.importorskip("scipy.stats")
    from augspec.backends.numpy import NumpyBackend

    h, w = hw
    n = 10_000
    op = aug.RandomResizedCrop(224)
    run = run_of(op, seed=11)
    params = run.sample(n, (h, w, 3))
    top, left, ch, cw = (np.asarray(v, np.float64) for v in op.box(
        NumpyBackend(), {k.split("/", 1)[1]: v for k, v in params.items()}, Context(n, h, w, 3)))
    assert (ch >= 1).all() and (cw >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + ch <= h).all() and (left + cw <= w).all()
    rng = random.Random(0)
    ref = np.asarray([torchvision_get_params(h, w, (0.08, 1.0), (3 / 4, 4 / 3), rng) for _ in range(n)], np.float64)
    for ours, theirs in (((ch * cw) / (h * w), ref[:, 2] * ref[:, 3] / (h * w)), (cw / ch, ref[:, 3] / ref[:, 2]),
                         (top / np.maximum(h - ch, 1), ref[:, 0] / np.maximum(h - ref[:, 2], 1))):
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3


def test_random_resized_crop_falls_back_to_the_centred_clamped_image():
    from augspec.backends.numpy import NumpyBackend

    op = aug.RandomResizedCrop(8, scale=(0.9, 1.0))  # on 10 x 100 no try fits: the fallback
    run = run_of(op)
    params = run.sample(4, (10, 100, 3))
    box = op.box(NumpyBackend(), {k.split("/", 1)[1]: v for k, v in params.items()}, Context(4, 10, 100, 3))
    top, left, h, w = (np.asarray(v) for v in box)
    assert (h == 10).all() and (w == round(10 * 4 / 3)).all() and (top == 0).all() and (left == (100 - 13) // 2).all()


# --------------------------------------------------- images of different sizes
SHAPES = [(20, 30), (31, 17), (12, 12), (40, 25)]


def test_a_list_of_images_of_different_sizes_gives_one_batch():
    xs = images(SHAPES)
    before = [v.copy() for v in xs]
    run = run_of(aug.RandomResizedCrop(16), aug.HorizontalFlip(), aug.ColorJitter(0.4, 0.4, 0.4), seed=1)
    out = run(xs)
    assert out.shape == (4, 16, 16, 3) and out.dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(xs, before))  # nothing mutated


def test_a_padded_batch_with_sizes_equals_the_list():
    xs = images(SHAPES, seed=3)
    pad = np.zeros((4, 40, 30, 3), np.uint8)
    for i, v in enumerate(xs):
        pad[i, : v.shape[0], : v.shape[1]] = v
    sizes = np.asarray(SHAPES)
    run = run_of(aug.Resize(20), aug.CenterCrop(16), aug.HorizontalFlip())
    params = run.sample(4, (40, 30, 3))
    np.testing.assert_array_equal(run.apply(xs, params=params), run.apply(pad, params=params, sizes=sizes))


@pytest.mark.parametrize("ops", [
    [aug.RandomResizedCrop(16), aug.HorizontalFlip()],
    [aug.RandomCrop(18, padding=4, fill_mode="reflect")],
    [aug.RandomCrop(24, pad_if_needed=True, fill_mode="nearest")],
    [aug.Resize(20), aug.CenterCrop(22), aug.Affine(rotate=30)],
])
def test_the_padding_of_a_packed_batch_is_never_read(ops):
    xs = images(SHAPES, seed=7)
    pads = []
    for value in (0, 255):
        pad = np.full((4, 40, 30, 3), value, np.uint8)
        for i, v in enumerate(xs):
            pad[i, : v.shape[0], : v.shape[1]] = v
        pads.append(pad)
    run = run_of(*ops)
    params = run.sample(4, (40, 30, 3))
    a, b = (run.apply(p, params=params, sizes=np.asarray(SHAPES)) for p in pads)
    np.testing.assert_array_equal(a, b)


def test_each_image_of_a_list_is_read_inside_its_own_size():
    xs = images(SHAPES, seed=4, dtype=np.float32)
    run = run_of(aug.RandomResizedCrop(16, scale=(0.5, 1.0)), aug.Affine(rotate=10, fill_mode="reflect"))
    params = run.sample(4, (40, 30, 3))
    out = run.apply(xs, params=params)
    for i, v in enumerate(xs):
        one = run.apply(v, params={k: p[i:i + 1] for k, p in params.items()})
        np.testing.assert_allclose(one, out[i], atol=1e-6)


@pytest.mark.parametrize("ops, match", [
    ([aug.ColorJitter(0.4)], "RandomResizedCrop"),
    ([aug.Resize(16)], "CenterCrop"),
    ([aug.Pad(2)], "CenterCrop"),
])
def test_images_of_different_sizes_need_a_pipeline_that_fixes_the_size(ops, match):
    run = run_of(*ops)
    step = run.step
    with pytest.raises(InputError, match=match):
        run(images(SHAPES))
    assert run.step == step  # a refused call draws nothing


@pytest.mark.parametrize("sizes, match", [(np.asarray([[5, 5]]), "sizes must be"), (np.asarray([[0, 5], [5, 5]]), "lie in"),
                                          (np.asarray([[5, 50], [5, 5]]), "lie in")])
def test_sizes_are_checked(sizes, match):
    with pytest.raises(InputError, match=match):
        run_of(aug.CenterCrop(4))(np.zeros((2, 10, 10, 3), np.uint8), sizes=sizes)


def test_per_pixel_draws_after_a_crop_have_the_crops_size():
    run = run_of(aug.RandomResizedCrop((8, 9)), aug.GaussianNoise(0.1))
    params = run.sample(3, (40, 30, 3))
    assert params["1/noise"].shape == (3, 8, 9, 3)
    assert run(images(SHAPES[:3])).shape == (3, 8, 9, 3)


def test_mix_ops_after_a_crop_work_on_images_of_different_sizes():
    run = run_of(*aug.recipes.r3(num_classes=10, size=16).ops, num_classes=10)
    x, y = run(images(SHAPES), np.arange(4))
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32 and y.shape == (4, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


# ------------------------------------------------------------------ evaluation
def test_random_resized_crop_at_evaluation_resizes_and_centre_crops():
    xs = images(SHAPES, seed=6)
    out = run_of(aug.RandomResizedCrop(16), aug.HorizontalFlip(), aug.Normalize())(xs, training=False)
    want = run_of(aug.Resize(math.floor(16 / 0.875)), aug.CenterCrop(16), aug.Normalize())(xs)
    np.testing.assert_array_equal(out, want)
    rect = aug.RandomResizedCrop((16, 24), crop_pct=0.9).eval_ops()
    assert rect[0].size == (math.floor(16 / 0.9), math.floor(24 / 0.9)) and rect[1].size == (16, 24)


def test_evaluation_keeps_deterministic_size_ops_and_skips_random_ones():
    (x,) = images([(20, 30)])
    run = run_of(aug.Resize((12, 18)), aug.HorizontalFlip(p=1.0), aug.Affine(rotate=30), aug.RandomCrop(10),
                 aug.ColorJitter(0.4))
    out = run(x, training=False)
    want = run_of(aug.Resize((12, 18)), aug.CenterCrop(10))(x)
    np.testing.assert_array_equal(out, want)


def test_tta_runs_on_the_evaluation_batch_of_images_of_different_sizes():
    torch = pytest.importorskip("torch")

    pipe = aug.recipes.r3(num_classes=10, size=16)
    run = pipe.compile("torch")
    xs = [torch.from_numpy(v).permute(2, 0, 1).contiguous() for v in images(SHAPES, seed=9)]
    batch = run(xs, training=False)  # Resize(18) + CenterCrop(16) + Normalize
    assert tuple(batch.shape) == (4, 3, 16, 16) and batch.dtype == torch.float32

    class Model(torch.nn.Module):
        def forward(self, x):  # not flip-invariant: the mean of the left half of each channel
            return x[..., : x.shape[-1] // 2].mean(dim=(2, 3))

    y = aug.TTA(Model(), transforms=["identity", "hflip"])(batch)
    left, right = batch[..., :8].mean(dim=(2, 3)), batch[..., 8:].mean(dim=(2, 3))
    torch.testing.assert_close(y, (left + right) / 2, rtol=1e-5, atol=1e-5)


# ------------------------------------- RandomResizedCrop's integers, on every backend
class _InexactExp:
    """A NumPy backend whose exp / log / cos / sin are off by one ulp (another library's
    rounding); sqrt, +, -, *, / stay correctly rounded, as IEEE 754 requires everywhere."""

    def __new__(cls):
        from augspec.backends.numpy import NumpyBackend

        class Backend(NumpyBackend):
            @staticmethod
            def _nudge(v):
                v = np.asarray(v, np.float32)
                odd = (v.view(np.uint32) & 1).astype(bool)
                moved = np.where(odd, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf)))
                return np.where(np.isfinite(v) & (v != 0), moved, v)

            def exp(self, x):
                return self._nudge(super().exp(x))

            def log(self, x):
                return self._nudge(super().log(x))

        return Backend()


def _boxes(run, op, n, hw):
    B = run.backend
    params = run.sample(n, (*hw, 3))
    p = {k.split("/", 1)[1]: v for k, v in params.items()}
    return [np.asarray(B.to_numpy(v), np.float64) for v in op.box(B, p, Context(n, hw[0], hw[1], 3))]


@pytest.mark.parametrize("hw", [(375, 500), (31, 47), (640, 480)])
def test_random_resized_crop_boxes_are_the_same_integers_on_every_backend(hw):
    """The crop's sides and offsets are integers decided from exact draws (``Tabulated``) and
    correctly rounded arithmetic only, so every backend picks the same crop, bit for bit, even
    one whose exp and log round differently."""
    op = aug.RandomResizedCrop(224)
    pipe = aug.Pipeline([op], seed=13)
    want = _boxes(pipe.compile("numpy"), op, 4000, hw)
    backends = [_InexactExp(), "torch", "jax", "tensorflow"]
    for b in backends:
        if isinstance(b, str):
            try:
                run = pipe.compile(b, layout="NHWC")
            except Exception as e:  # a framework not installed here
                pytest.skip(f"{b}: {e}")
        else:
            run = pipe.compile(b)
        got = _boxes(run, op, 4000, hw)
        for a, w in zip(got, want):
            np.testing.assert_array_equal(a, w)


def test_tabulated_draws_follow_their_law():
    stats = pytest.importorskip("scipy.stats")
    op = aug.RandomResizedCrop(8, scale=(0.1, 0.9), ratio=(0.5, 2.0))
    params = aug.Pipeline([op], seed=3).compile("numpy").sample(20_000, (10, 10, 3))
    area, ratio = np.asarray(params["0/area"]).ravel(), np.asarray(params["0/ratio"]).ravel()
    assert area.min() >= 0.1 and area.max() < 0.9 and ratio.min() >= 0.5 and ratio.max() < 2.0
    assert stats.kstest(area, "uniform", args=(0.1, 0.8)).pvalue > 1e-3
    assert stats.kstest(np.log(ratio), "uniform", args=(math.log(0.5), math.log(4.0))).pvalue > 1e-3
