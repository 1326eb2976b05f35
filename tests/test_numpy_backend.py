"""The NumPy backend on bad and unusual input (issue item 8), NaN behaviour,
input immutability, and the R2 recipe on a full-size batch."""

from __future__ import annotations

import numpy as np
import pytest

import augspec as aug

RNG = np.random.default_rng(7)


def imgs(n=4, h=8, w=8, c=3, dtype=np.uint8):
    if dtype == np.uint8:
        return RNG.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    return RNG.random((n, h, w, c)).astype(dtype)


def frozen(*arrays):
    """Read-only copies: an in-place write raises, and the originals stay for comparison."""
    out = []
    for a in arrays:
        b = np.array(a)
        b.flags.writeable = False
        out.append(b)
    return out


def r2_pipeline(seed=0):
    return aug.Pipeline([
        aug.Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5),
        aug.HorizontalFlip(p=0.5),
        aug.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        aug.CutOut(holes=1, size=(0.1, 0.5)),
        aug.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        aug.OneOf([aug.MixUp(alpha=0.8), aug.CutMix(alpha=1.0)]),
        aug.LabelSmoothing(0.1),
    ], num_classes=1000, seed=seed)


def run_of(ops, **kw):
    layout = kw.pop("layout", "NHWC")
    return aug.Pipeline(ops, seed=0, **kw).compile("numpy", layout=layout)


def assert_untouched(call, x, y=None, exc=Exception, match=None):
    """``call`` raises ``exc`` (message matching) and leaves x (and y) as they were."""
    x0 = np.array(x)
    y0 = None if y is None else np.array(y)
    with pytest.raises(exc, match=match):
        call()
    np.testing.assert_array_equal(x, x0)
    if y is not None:
        np.testing.assert_array_equal(y, y0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("shape", [(8,), (8, 8), (2, 3, 8, 8, 3), ()])
def test_wrong_rank(shape):
    (x,) = frozen(np.zeros(shape, np.uint8))
    run = run_of([aug.HorizontalFlip()])
    assert_untouched(lambda: run(x), x, exc=aug.InputError, match=r"3-D\) or a batch \(4-D\).*NHWC")


@pytest.mark.parametrize("op,c", [(aug.Saturation(0.2), 1), (aug.Hue(0.1), 4), (aug.Contrast(0.2), 2),
                                  (aug.ColorJitter(saturation=0.3), 1), (aug.Hue(0.1, mode="hsv"), 1),
                                  (aug.Normalize(), 1), (aug.CutOut(fill=(0.1, 0.2, 0.3)), 4),
                                  (aug.Standardize(featurewise_center=True, mean=(0.1, 0.2, 0.3)), 2)])
def test_channel_count_an_op_cannot_use(op, c):
    (x,) = frozen(imgs(2, 5, 5, c))
    run = run_of([aug.HorizontalFlip(), op])
    assert_untouched(lambda: run(x), x, exc=aug.InputError, match=f"{type(op).__name__}.*{c} channels")
    assert isinstance(pytest.raises(ValueError, run, x).value, aug.InputError)


def test_channel_counts_ops_can_use():
    for c in (1, 2, 4):
        x = imgs(2, 5, 5, c, np.float32)
        out = run_of([aug.Affine(rotate=10), aug.Brightness(0.3), aug.GaussianNoise(0.01), aug.CutOut(),
                      aug.Normalize(0.5, 0.2), aug.Dropout(0.1)])(x)
        assert out.shape == x.shape
    x = imgs(2, 5, 5, 1, np.float32)
    assert run_of([aug.Contrast(0.3), aug.ColorJitter(0.3, 0.3)])(x).shape == x.shape


def test_layout_mix_up_is_explained():
    (x,) = frozen(imgs(2, 3, 32, 32))  # NCHW data given to an NHWC run: 32 "channels"
    assert_untouched(lambda: run_of([aug.HorizontalFlip()])(x), x, exc=aug.InputError, match="layout")


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint16, np.int8, np.bool_, np.complex64])
def test_unsupported_dtype(dtype):
    (x,) = frozen(np.zeros((2, 4, 4, 3), dtype))
    run = run_of([aug.HorizontalFlip()])
    assert_untouched(lambda: run(x), x, exc=TypeError, match="dtype|not numbers")


def test_non_array_images():
    run = run_of([aug.HorizontalFlip(p=1)])
    with pytest.raises(aug.InputTypeError):
        run(np.array([["a", "b"]]))
    with pytest.raises(aug.InputTypeError):
        run([[[[0.1]]], [[[0.2], [0.3]]]])  # ragged
    with pytest.raises(aug.InputTypeError):
        run(np.zeros((1, 2, 2, 1), object))
    # nested lists of numbers are fine
    out = run([[[[0.1], [0.2]]]])
    np.testing.assert_allclose(out, [[[[0.2], [0.1]]]])


def test_zero_sized_images_are_refused():
    for shape in ((2, 0, 4, 3), (2, 4, 0, 3), (2, 4, 4, 0)):
        (x,) = frozen(np.zeros(shape, np.uint8))
        assert_untouched(lambda x=x: run_of([aug.HorizontalFlip()])(x), x, exc=aug.InputError, match="non-zero")


@pytest.mark.parametrize("ids", [[0, 1, 10], [-1, 0, 1], [0, 1, 1000]])
def test_class_ids_out_of_range(ids):
    x, y = frozen(imgs(3), np.array(ids))
    run = run_of([aug.MixUp()], num_classes=10)
    assert_untouched(lambda: run(x, y), x, y, exc=aug.InputError, match=r"\[0, 10\)")


def test_bad_labels():
    x = imgs(3)
    run = run_of([aug.LabelSmoothing(0.1)], num_classes=4)
    for y, exc, match in (
        (np.array([0.0, 1.0, 2.0]), aug.InputTypeError, "integers"),
        (np.array([0, 1]), aug.InputError, "N = 3"),
        (np.zeros((3, 5), np.float32), aug.InputError, "5 classes but num_classes=4"),
        (np.zeros((3, 4), np.int64), aug.InputTypeError, "floating point"),
        (np.zeros((3, 4, 1), np.float32), aug.InputError, r"\(N,\) or soft"),
    ):
        (yf,) = frozen(y)
        assert_untouched(lambda yf=yf: run(x, yf), x, yf, exc=exc, match=match)


def test_label_changing_op_without_num_classes():
    x, y = frozen(imgs(3), np.array([0, 1, 2]))
    for op in (aug.MixUp(), aug.CutMix(), aug.LabelSmoothing(), aug.OneOf([aug.MixUp(), aug.CutMix()])):
        run = aug.Pipeline([op], seed=0).compile("numpy")
        assert_untouched(lambda run=run: run(x, y), x, y, exc=aug.InputError, match="num_classes")
        # soft labels carry K themselves
        soft = np.eye(3, dtype=np.float32)
        _, out = run(x, soft)
        assert out.shape == (3, 3)
        np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
        # and no labels at all is fine
        assert run(x).shape == x.shape


def test_bad_params():
    x = imgs(4)
    run = run_of([aug.Affine(rotate=10), aug.MixUp()], num_classes=3)
    p = run.sample(4, x.shape[1:])
    with pytest.raises(aug.InputError, match="another batch size"):
        run.apply(x[:3], None, p)
    with pytest.raises(aug.InputError, match="missing"):
        run.apply(x, None, {k: v for k, v in p.items() if k != "0/rotate"})
    with pytest.raises(aug.InputError, match="params are required"):
        run.apply(x, None, None)
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(aug.InputError, match="batch_size"):
            run.sample(bad)
    with pytest.raises(aug.InputError, match="image_shape"):
        run.sample(4, (8, 8))
    with pytest.raises(aug.SpecError, match="image_shape"):  # per-pixel draws need the image size
        run_of([aug.GaussianNoise()]).sample(4)


# -------------------------------------------------------- edge-case batches


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_empty_batch_returns_empty(dtype, layout):
    x = np.zeros((0, 6, 6, 3) if layout == "NHWC" else (0, 3, 6, 6), dtype)
    run = r2_pipeline().compile("numpy", layout=layout)
    out, y = run(x, np.zeros(0, np.int64))
    assert out.shape == x.shape and out.dtype == np.float32 and y.shape == (0, 1000)
    assert run(x).shape == x.shape
    assert run.sample(0, x.shape[1:])["5/choice"].shape == (0,)
    out = run_of([aug.HorizontalFlip(), aug.GaussianNoise()], layout=layout)(x)
    assert out.shape == x.shape and out.dtype == dtype


def test_batch_of_one_mixes_with_itself():
    """Documented: with one sample the partner is the sample itself, so MixUp and
    CutMix leave the image and its label as they are (label smoothing still applies)."""
    x = imgs(1, 9, 9, 3)
    for op in (aug.MixUp(0.8), aug.CutMix(1.0), aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)])):
        run = run_of([op], num_classes=5)
        p = run.sample(1, x.shape[1:])
        assert all(v.tolist() == [0] for k, v in p.items() if k.endswith("/partner"))
        out, y = run.apply(x, np.array([3]), p)
        np.testing.assert_array_equal(out, x)
        np.testing.assert_array_equal(y, [[0, 0, 0, 1, 0]])
    out, y = run_of([aug.CutMix(), aug.LabelSmoothing(0.5)], num_classes=5)(x[0], 3)  # one 3-D image
    assert out.shape == x[0].shape and y.shape == (5,)
    np.testing.assert_allclose(y, [0.1, 0.1, 0.1, 0.6, 0.1], atol=1e-7)


# ----------------------------------------------------------------------- NaN


def nan_image(c=1):
    x = np.full((1, 7, 7, c), 0.5, np.float32)
    x[0, 3, 3, 0] = np.nan
    return x


def nan_at(out, channel=0):
    return [tuple(v) for v in np.argwhere(np.isnan(out[0, :, :, channel])).tolist()]


def test_nan_stays_where_it_was_for_identity_like_ops():
    """NaN is not an error: it is carried through. Identity-like ops move it exactly:
    flips, the identity warp, whole-pixel shifts (taps of weight 0 are not read),
    pointwise ops (brightness, Normalize, clamping: np.clip keeps NaN)."""
    x = nan_image()
    cases = [
        ([aug.HorizontalFlip(p=1)], [(3, 3)]),
        ([aug.VerticalFlip(p=1), aug.HorizontalFlip(p=1)], [(3, 3)]),
        ([aug.Affine()], [(3, 3)]),
        ([aug.Affine(translate=(2 / 7, 2 / 7), translate_y=(-1 / 7, -1 / 7))], [(2, 5)]),
        ([aug.Affine(interpolation="nearest", rotate=(30, 30))], [(3, 3)]),
        ([aug.Brightness((0.5, 0.5))], [(3, 3)]),
        ([aug.Normalize(0.5, 0.25)], [(3, 3)]),
        ([aug.GaussianNoise(0.1)], [(3, 3)]),
        ([aug.Rescale(2.0, -1.0), aug.Dropout(0.0)], [(3, 3)]),
    ]
    for ops, where in cases:
        out = run_of(ops)(x)
        assert nan_at(out) == where, ops
    # CutOut overwrites it where the box covers it
    run = run_of([aug.CutOut(size=0.3)])
    p = run.sample(1, x.shape[1:])
    p["0/centre_y"][:], p["0/centre_x"][:] = 0.5, 0.5
    assert nan_at(run.apply(x, None, p)) == []


def test_nan_spreads_under_bilinear_and_mixing_ops():
    """A bilinear sample at a fractional position reads up to four input pixels,
    so one NaN spreads to the output pixels whose taps touch it; a colour matrix
    mixes the channels of a pixel; contrast (the image mean) and samplewise
    standardisation turn the whole image NaN; MixUp spreads it to the partner."""
    x = nan_image()
    out = run_of([aug.Affine(translate=(0.5 / 7, 0.5 / 7), translate_y=(0.5 / 7, 0.5 / 7))])(x)
    assert nan_at(out) == [(3, 3), (3, 4), (4, 3), (4, 4)]
    out = run_of([aug.Affine(rotate=(10, 10))])(x)
    assert (3, 3) in nan_at(out) and 2 <= len(nan_at(out)) <= 9
    x3 = nan_image(3)
    out = run_of([aug.Saturation((0.5, 0.5))])(x3)
    assert all(nan_at(out, ch) == [(3, 3)] for ch in range(3))
    for op in (aug.Contrast((0.5, 0.5)), aug.Standardize(samplewise_center=True)):
        assert np.isnan(run_of([op])(x3)).all()
    xx = np.concatenate([x, np.full_like(x, 0.25)])
    run = run_of([aug.MixUp()], num_classes=2)
    p = run.sample(2, x.shape[1:])
    p["0/partner"][:] = [1, 0]
    out, _ = run.apply(xx, np.array([0, 1]), p)
    assert nan_at(out[:1]) == [(3, 3)] and nan_at(out[1:]) == [(3, 3)]


# ------------------------------------------------------------- immutability


def test_input_never_mutated():
    for dtype in (np.uint8, np.float32, np.float64):
        for layout in ("NHWC", "NCHW"):
            x, y = frozen(imgs(6, 12, 10, 3, dtype), np.arange(6) % 1000)
            if layout == "NCHW":
                (x,) = frozen(x.transpose(0, 3, 1, 2))
            x0, y0 = x.copy(), y.copy()
            pipe = aug.Pipeline(list(r2_pipeline().ops) + [aug.GaussianNoise(0.1), aug.Dropout(0.2)],
                                num_classes=1000, seed=1)
            run = pipe.compile("numpy", layout=layout)
            out, soft = run(x, y)
            params = run.sample(6, x.shape[1:])
            snapshot = {k: v.copy() for k, v in params.items()}
            run.apply(x, y, params)
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
            for k, v in params.items():  # the params are not written either
                np.testing.assert_array_equal(v, snapshot[k])
            out[...] = 0  # the output is the caller's to write
            np.testing.assert_array_equal(x, x0)
    # soft labels, a single image, and the identity-like paths
    x, ysoft = frozen(imgs(2, 5, 5, 3, np.float32), np.full((2, 4), 0.25, np.float32))
    for ops in ([aug.HorizontalFlip(p=1)], [aug.LabelSmoothing(0.1)], [aug.MixUp()], [aug.Brightness(0.0)]):
        out, yo = run_of(ops, num_classes=4)(x, ysoft)
        assert out is x or not np.shares_memory(out, x)
        assert not np.shares_memory(yo, ysoft) or yo is ysoft
    out = run_of([aug.HorizontalFlip(p=1)])(x[0])
    assert not np.shares_memory(out, x)


# -------------------------------------------------------------------- R2


def test_r2_recipe_batch_64_224():
    x, y = frozen(RNG.integers(0, 256, (64, 224, 224, 3), dtype=np.uint8), RNG.integers(0, 1000, 64))
    run = r2_pipeline().compile("numpy")
    out, soft = run(x, y)
    assert out.dtype == np.float32 and out.shape == (64, 224, 224, 3)
    assert soft.dtype == np.float32 and soft.shape == (64, 1000)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert soft.min() >= 0.1 / 1000 - 1e-7
    assert np.all(np.isfinite(out))
    # normalised values: ((0 or 1) - mean) / std bounds them
    assert out.min() >= (0 - 0.485) / 0.229 - 1e-4 and out.max() <= (1 - 0.406) / 0.225 + 1e-4
    # per-sample draws: the 64 samples were not all treated alike
    assert len(np.unique(soft.argmax(axis=1))) > 32
    # NCHW gives the same batch
    out2, soft2 = r2_pipeline().compile("numpy", layout="NCHW")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y)
    np.testing.assert_allclose(out2.transpose(0, 2, 3, 1), out, atol=1e-4)
    np.testing.assert_array_equal(soft2, soft)
