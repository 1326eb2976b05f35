"""augspec.compat.from_image_data_generator against Keras' ImageDataGenerator.

Each comparison runs against a line-by-line NumPy/SciPy replica of Keras'
code (always), and against ``tf_keras.preprocessing.image.ImageDataGenerator``
itself where tf_keras is importable (it needs the full tensorflow package)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import augspec as aug
from augspec.compat import ChannelShift, KerasAffine, KerasZCAWhitening, from_image_data_generator

ndi = pytest.importorskip("scipy.ndimage")

try:  # the real thing, where installed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tf_keras.preprocessing.image import ImageDataGenerator as KerasIDG
except Exception:  # pragma: no cover - depends on the environment
    KerasIDG = None

needs_keras = pytest.mark.skipif(KerasIDG is None, reason="tf_keras is not installed")


def data(n: int = 24, h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, h, w, 3)).astype(np.float64)
    x = np.stack([ndi.gaussian_filter(i, (1.5, 1.5, 0)) for i in x])
    return np.clip((x - 128) * 3 + 128, 0, 255).astype(np.uint8)


# ------------------------------------------------------------ Keras replicas


def keras_fit(x, featurewise_center, featurewise_std, zca, zca_epsilon=1e-6, rescale=None):
    """ImageDataGenerator.fit, line by line (channels_last)."""
    x = np.asarray(x, np.float32).copy()
    if rescale:
        x *= rescale
    out = {}
    if featurewise_center:
        out["mean"] = np.mean(x, axis=(0, 1, 2))
        x -= out["mean"]
    if featurewise_std:
        out["std"] = np.std(x, axis=(0, 1, 2))
        x /= out["std"] + 1e-6
    if zca:
        n = len(x)
        flat = np.reshape(x, (n, -1))
        u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
        out["zca"] = (u * (np.sqrt(n) / (s + zca_epsilon))).dot(u.T)
    return out


def keras_affine(img, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, cval=0.0, mode="constant"):
    """apply_affine_transform (channels_last, order 1), line by line; also returns
    where each output pixel samples the input (row, col)."""
    t = np.deg2rad(theta)
    m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    m = m @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    s = np.deg2rad(shear)
    m = m @ np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    m = m @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    h, w = img.shape[:2]
    ox, oy = h / 2 - 0.5, w / 2 - 0.5
    m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m[:, [0, 1]] = m[:, [1, 0]]
    m[[0, 1]] = m[[1, 0]]
    out = np.stack([ndi.affine_transform(img[..., c], m[:2, :2], m[:2, 2], order=1, mode=mode, cval=cval)
                    for c in range(img.shape[2])], axis=-1)
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    src = np.einsum("ab,bhw->ahw", m[:2, :2], np.stack([ii, jj]).astype(float)) + m[:2, 2, None, None]
    return out, src


GEOMETRY = [dict(theta=20), dict(theta=-35), dict(tx=3), dict(ty=-2.5), dict(shear=15), dict(zx=1.3, zy=0.8),
            dict(theta=10, tx=2, ty=-3, shear=10, zx=1.1, zy=0.9)]


def augspec_with_params(img, prm, **gen_kw):
    gen_kw.setdefault("fill_mode", "constant")
    pipe = from_image_data_generator(rotation_range=1, width_shift_range=1.0, height_shift_range=1.0,
                                     shear_range=1, zoom_range=0.5, **gen_kw)
    run = pipe.compile("numpy")
    params = run.sample(1, img.shape)
    full = dict(theta=0, tx=0, ty=0, shear=0, zx=1, zy=1)
    full.update(prm)
    for k, v in full.items():
        params["0/" + k] = np.array([v], np.float32)
    return run.apply(img[None], None, params)[0]


@pytest.mark.parametrize("prm", GEOMETRY, ids=[str(p) for p in GEOMETRY])
def test_geometry_is_keras_apply_affine_transform(prm):
    img = data(1)[0]
    ref, src = keras_affine(img.astype(np.float64), **prm)
    ours = augspec_with_params(img, prm)  # rescale None: Keras' raw 0..255 values
    h, w = img.shape[:2]
    inside = (src[0] >= 1) & (src[0] <= h - 2) & (src[1] >= 1) & (src[1] <= w - 2)
    assert inside.sum() > 40
    np.testing.assert_allclose(ours[inside], ref[inside], atol=2e-3)
    if KerasIDG is not None:
        k = KerasIDG(fill_mode="constant").apply_transform(img.astype(np.float32), prm)
        np.testing.assert_allclose(k[inside], ref[inside], atol=2e-3)
    outside = (src[0] < -1) | (src[0] > h) | (src[1] < -1) | (src[1] > w)
    assert np.all(ours[outside] == 0)  # constant fill, cval 0


@pytest.mark.parametrize("mode", ["nearest", "reflect"])
@pytest.mark.parametrize("prm", GEOMETRY, ids=[str(p) for p in GEOMETRY])
def test_geometry_with_keras_fill_modes_agrees_on_the_whole_image(prm, mode):
    """With fill_mode "nearest" (Keras' default) or "reflect", augspec reproduces SciPy's
    order-1 resampling everywhere, borders included (in raw 0..255 units)."""
    img = data(1)[0]
    ref, _ = keras_affine(img.astype(np.float64), mode=mode, **prm)
    ours = augspec_with_params(img, prm, fill_mode=mode)
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    if KerasIDG is not None:
        k = KerasIDG(fill_mode=mode).apply_transform(img.astype(np.float32), prm)
        np.testing.assert_allclose(ours, k, atol=2e-3)


def test_cval_and_whole_pixel_shift_exact():
    img = data(1)[0]
    ref, src = keras_affine(img.astype(np.float64), tx=2, ty=-3, cval=51.0)
    ours = augspec_with_params(img, dict(tx=2, ty=-3), cval=51.0)
    np.testing.assert_allclose(ours, ref, atol=1e-3)  # whole pixels: no interpolation anywhere


@pytest.mark.parametrize("kw", [
    dict(featurewise_center=True),
    dict(featurewise_center=True, featurewise_std_normalization=True),
    dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255.0),
    dict(zca_whitening=True, zca_epsilon=0.1),
    dict(zca_whitening=True, rescale=1 / 255.0, zca_epsilon=1e-2),
    dict(samplewise_center=True, samplewise_std_normalization=True, featurewise_center=True),
])
def test_fit_and_standardize_match_keras(kw):
    x = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = from_image_data_generator(**kw).fit(x)
    zca = bool(kw.get("zca_whitening"))
    fw_c = kw.get("featurewise_center", False) or zca or kw.get("featurewise_std_normalization", False)
    fw_s = kw.get("featurewise_std_normalization", False) and not zca
    ref = keras_fit(x, fw_c, fw_s, zca, kw.get("zca_epsilon", 1e-6), kw.get("rescale"))
    st = next(op for op in pipe.ops if isinstance(op, aug.Standardize))
    np.testing.assert_allclose(st.mean, ref["mean"], rtol=1e-5)
    if fw_s:
        np.testing.assert_allclose(st.std, ref["std"], rtol=1e-5)
    if zca:
        (z,) = [op for op in pipe.ops if isinstance(op, KerasZCAWhitening)]
        np.testing.assert_allclose(z.matrix, ref["zca"], atol=1e-5 * np.abs(ref["zca"]).max())
    out = pipe.compile("numpy")(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    if KerasIDG is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = KerasIDG(**kw)
            g.fit(x)
        np.testing.assert_allclose(st.mean, g.mean.ravel(), rtol=1e-5)
        if fw_s:
            np.testing.assert_allclose(st.std, g.std.ravel(), rtol=1e-5)
        if zca:
            zm = g.zca_whitening_matrix
            np.testing.assert_allclose(z.matrix, zm, atol=1e-5 * np.abs(zm).max())
        expect = np.stack([g.standardize(xi.astype(np.float32).copy()) for xi in x])
        np.testing.assert_allclose(out, expect, atol=1e-4 * max(1.0, np.abs(expect).max()))


def test_standardized_output_formula():
    """No tf_keras needed: the fitted pipeline computes (x*rescale - mean) / (std + 1e-6)."""
    x = data()
    pipe = from_image_data_generator(featurewise_center=True, featurewise_std_normalization=True).fit(x)
    ref = keras_fit(x, True, True, False)
    expect = (x.astype(np.float32) - ref["mean"]) / (ref["std"] + 1e-6)
    np.testing.assert_allclose(pipe.compile("numpy")(x), expect, atol=1e-4)


@needs_keras
def test_random_draws_follow_keras_ranges():
    kw = dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.1, shear_range=10, zoom_range=0.2,
              brightness_range=(0.7, 1.3), fill_mode="constant")
    g = KerasIDG(**kw)
    np.random.seed(0)
    shape = (12, 16, 3)
    k = [g.get_random_transform(shape) for _ in range(3000)]
    run = from_image_data_generator(**kw, seed=0).compile("numpy")
    p = run.sample(3000, shape)
    pairs = {"theta": "0/theta", "shear": "0/shear", "zx": "0/zx", "zy": "0/zy", "brightness": "1/factor"}
    for kk, ak in pairs.items():
        kv = np.array([t[kk] for t in k], np.float64)
        av = np.asarray(p[ak], np.float64)
        assert abs(kv.min() - av.min()) < 0.02 * (kv.max() - kv.min())
        assert abs(kv.max() - av.max()) < 0.02 * (kv.max() - kv.min())
        assert abs(kv.mean() - av.mean()) < 0.12 * kv.std() + 1e-9
        assert abs(kv.std() - av.std()) < 0.08 * kv.std()
    # shifts: Keras draws the fraction, then multiplies by the side
    kv = np.array([t["tx"] for t in k]) / 12
    av = np.asarray(p["0/tx"], np.float64)
    assert abs(kv.std() - av.std()) < 0.05 * kv.std() and abs(kv.max() - av.max()) < 0.01
    kv = np.array([t["ty"] for t in k]) / 16
    av = np.asarray(p["0/ty"], np.float64)
    assert abs(kv.std() - av.std()) < 0.08 * kv.std()
    flips = np.asarray(run.sample(4000, shape).get("1/apply", np.zeros(1)))
    assert flips.size == 1  # no flip asked: no flip draw


def test_ranges_and_ops_of_the_classic_example():
    pipe = from_image_data_generator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
                                     horizontal_flip=True, featurewise_center=True,
                                     featurewise_std_normalization=True, fill_mode="constant", seed=0)
    names = [op.name for op in pipe.ops]
    assert names == ["keras_affine", "horizontal_flip", "rescale", "standardize"]
    ka = pipe.ops[0]
    assert ka.rotation == (-20.0, 20.0) and ka.height_shift == (-0.2, 0.2) and ka.zoom_x == (1.0, 1.0)
    with pytest.raises(aug.SpecError, match="fitted"):
        pipe.compile("numpy")
    x = data(8)
    run = pipe.fit(x).compile("numpy")
    out = run(x)
    assert out.shape == x.shape and out.dtype == np.float32
    p = run.sample(2000, x.shape[1:])
    assert -20 <= float(np.min(p["0/theta"])) < -19 and 19 < float(np.max(p["0/theta"])) <= 20
    assert 0.45 < float(np.mean(p["1/apply"])) < 0.55
    # serialisation round trip (the compat specs are registered)
    back = aug.from_dict(aug.to_dict(pipe))
    assert back == pipe


def test_brightness_and_channel_shift():
    x = data(4)
    pipe = from_image_data_generator(brightness_range=(1.5, 1.5), rescale=1 / 255.0, seed=0)
    out = pipe.compile("numpy")(x)
    assert out.dtype == np.uint8  # augspec's dtype rule: uint8 v stands for v / 255, Keras' float value
    np.testing.assert_allclose(out / 255.0, np.clip(x / 255.0 * 1.5, 0, 1), atol=0.5 / 255 + 1e-6)
    pipe = from_image_data_generator(channel_shift_range=30.0, seed=0)
    assert isinstance(pipe.ops[0], ChannelShift) and pipe.ops[0].shift == pytest.approx((-30 / 255, 30 / 255))
    run = pipe.compile("numpy")
    params = run.sample(4, x.shape[1:])
    out = run.apply(x, None, params)
    d = out - x.astype(np.float32)
    s = np.asarray(params["0/shift"]) * 255
    interior = (x > 40) & (x < 215)
    for i in range(4):
        np.testing.assert_allclose(d[i][interior[i]], s[i], atol=1e-3)


def test_flips_map_to_flip_specs():
    pipe = from_image_data_generator(horizontal_flip=True, vertical_flip=True, rescale=1 / 255.0)
    assert [type(op) for op in pipe.ops] == [aug.HorizontalFlip, aug.VerticalFlip]
    assert all(op.p == 0.5 for op in pipe.ops)
    assert len(from_image_data_generator().ops) == 1  # only the Rescale to raw 0..255 values


def test_what_augspec_cannot_honour_raises():
    def warp(pipe):
        (op,) = [o for o in pipe.ops if isinstance(o, KerasAffine)]
        return op

    assert warp(from_image_data_generator(rotation_range=10)).fill_mode == "nearest"  # Keras' default
    assert warp(from_image_data_generator(zoom_range=0.1, fill_mode="reflect")).fill_mode == "reflect"
    with pytest.raises(aug.SpecError, match="fill_mode='wrap'"):
        from_image_data_generator(rotation_range=10, fill_mode="wrap")
    from_image_data_generator(fill_mode="wrap", horizontal_flip=True)  # no warp, no fill: fine
    with pytest.raises(aug.SpecError, match="preprocessing_function"):
        from_image_data_generator(preprocessing_function=lambda v: v)
    with pytest.raises(aug.SpecError, match="whole-pixel"):
        from_image_data_generator(width_shift_range=4, fill_mode="constant")
    with pytest.raises(aug.SpecError, match="whole-pixel"):
        from_image_data_generator(height_shift_range=[-2, 0, 2], fill_mode="constant")
    with pytest.raises(aug.SpecError, match="validation_split"):
        from_image_data_generator(validation_split=0.2)
    with pytest.raises(aug.SpecError, match="data_format"):
        from_image_data_generator(data_format="NCHW")
    with pytest.raises(TypeError):
        from_image_data_generator(not_a_keras_arg=1)  # type: ignore[call-arg]


def test_pixel_shifts_and_channels_first():
    pipe = from_image_data_generator(width_shift_range=3.0, fill_mode="constant", rescale=1 / 255.0, seed=0,
                                     data_format="channels_first")
    ka = pipe.ops[0]
    assert isinstance(ka, KerasAffine) and ka.width_shift_pixels and ka.width_shift == (-3.0, 3.0)
    x = data(2)
    nchw = x.transpose(0, 3, 1, 2)
    out = pipe.compile("numpy", layout="NCHW")(nchw)
    assert out.shape == nchw.shape
    run = pipe.compile("numpy")
    params = run.sample(1, x.shape[1:])
    params["0/ty"] = np.array([2.0], np.float32)  # two whole pixels
    ref, _ = keras_affine(x[0].astype(np.float64), ty=2.0)
    np.testing.assert_allclose(run.apply(x[:1], None, params)[0].astype(np.float64), ref, atol=1e-3)


def test_keras_implications_warn():
    with pytest.warns(UserWarning, match="implies featurewise_center"):
        p = from_image_data_generator(featurewise_std_normalization=True)
    st = p.ops[-1]
    assert st.featurewise_center and st.featurewise_std
    with pytest.warns(UserWarning, match="overrides"):
        p = from_image_data_generator(zca_whitening=True, featurewise_center=True, featurewise_std_normalization=True)
    assert not p.ops[-2].featurewise_std
