"""The tone ops (Invert, Grayscale, Solarize, SolarizeAdd, Posterize, Equalize, AutoContrast):
fidelity against PIL's ImageOps with the params injected, per-sample params, the field
checks, and every backend against the NumPy reference (gated per sample, both layouts,
eager and traced). Against torchvision itself: test_tone_torchvision.py."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image, ImageOps

import augspec as aug
from augspec.core.errors import SpecError, SpecTypeError

# ------------------------------------------------------------------ helpers


def _images(n=6, h=24, w=32, seed=0):
    """Random uint8 images, some of low contrast (a narrow band of levels, one of them a
    constant channel), so that equalize and autocontrast have work to do."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (max(n, 5), h, w, 3), dtype=np.uint8)
    x[1] = 90 + x[1] // 5  # levels 90..141
    x[2] = 200 + x[2] // 16
    x[3, :, :, 1] = 77  # a constant channel
    x[4] = np.where(rng.random((h, w, 3)) < 0.5, 10, 250).astype(np.uint8)  # two levels
    return x[:n]


def _photo():
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed (the real photo)")
    return data.chelsea()  # 300 x 451 RGB


def _apply(op, x, values=None, backend="numpy"):
    """``op`` on the uint8 NHWC batch ``x`` with its draws set per sample to ``values``
    (a dict: draw name -> (N,) values), through sample + apply."""
    run = aug.Pipeline([op], seed=0).compile(backend, layout="NHWC")
    params = run.sample(len(x), x.shape[1:])
    for name, v in (values or {}).items():
        key = f"0/{name}"
        assert key in params, (key, list(params))
        params[key] = np.asarray(v, np.float32).reshape(params[key].shape)
    return np.asarray(run.apply(x, params=params))


def _pil(fn, x):
    """``fn(PIL image, i)`` per image, back to a uint8 NHWC batch."""
    return np.stack([np.asarray(fn(Image.fromarray(a), i)) for i, a in enumerate(x)])


def _levels_apart(a, b):
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def _solarize_add_ref(img, add, thresh=128):
    """timm's ``solarize_add`` look-up table (any sign of ``add``, clipped to [0, 255])."""
    lut = np.array([min(255, max(0, i + add)) if i < thresh else i for i in range(256)], np.uint8)
    return lut[img]


def _posterize_ref(im, bits):
    """PIL's posterize; bits = 0 (which recent Pillow refuses) keeps no bit: black."""
    return ImageOps.posterize(im, bits) if bits else Image.fromarray(np.zeros_like(np.asarray(im)))


# ------------------------------------------------------------- fidelity (PIL)


def _cases(n):
    """(op, injected values or None, PIL reference fn(img, i), levels allowed)."""
    thresholds = [0, 1, 64, 128, 200, 255][:n] + [128] * max(0, n - 6)
    bits = [0, 1, 2, 4, 6, 8][:n] + [4] * max(0, n - 6)
    adds = [-40, 0, 30, 110, 255, -255][:n] + [30] * max(0, n - 6)
    return [
        ("invert", aug.Invert(), None, lambda im, i: ImageOps.invert(im), 0),
        ("grayscale", aug.Grayscale(), None, lambda im, i: im.convert("L").convert("RGB"), 1),
        ("solarize", aug.Solarize((0.0, 1.0)), {"threshold": np.array(thresholds) / 255.0},
         lambda im, i: ImageOps.solarize(im, thresholds[i]), 0),
        ("solarize_add", aug.SolarizeAdd((-1.0, 1.0)), {"addition": np.array(adds) / 255.0},
         lambda im, i: Image.fromarray(_solarize_add_ref(np.asarray(im), adds[i])), 0),
        ("posterize", aug.Posterize((0, 8)), {"bits": np.array(bits, np.float32)},
         lambda im, i: _posterize_ref(im, bits[i]), 0),
        ("equalize", aug.Equalize(), None, lambda im, i: ImageOps.equalize(im), 0),
        # PIL truncates the stretched level, augspec rounds it: one level apart at most
        ("autocontrast", aug.AutoContrast(), None, lambda im, i: ImageOps.autocontrast(im), 1),
    ]


@pytest.mark.parametrize("case", range(7), ids=[c[0] for c in _cases(6)])
def test_matches_pil_on_random_images(case):
    x = _images()
    _, op, values, ref, tol = _cases(len(x))[case]
    got = _apply(op, x, values)
    assert got.dtype == np.uint8 and got.shape == x.shape
    assert _levels_apart(got, _pil(ref, x)) <= tol


@pytest.mark.parametrize("case", range(7), ids=[c[0] for c in _cases(6)])
def test_matches_pil_on_a_photo(case):
    p = _photo()
    x = np.stack([p, p // 3 + 60, p[::-1, ::-1], 255 - p])  # the photo, a dull copy and two more
    _, op, values, ref, tol = _cases(len(x))[case]
    got = _apply(op, x, values)
    assert _levels_apart(got, _pil(ref, x)) <= tol


def test_equalize_and_autocontrast_change_a_dull_photo():
    p = _photo() // 4 + 100  # levels 100..163
    for op in (aug.Equalize(), aug.AutoContrast()):
        out = _apply(op, p[None])[0]
        assert out.min() <= 5 and out.max() >= 250, op


def test_float_input_gives_the_uint8_results_over_255():
    x = _images()
    xf = x.astype(np.float32) / np.float32(255.0)
    for _, op, values, _, _ in _cases(len(x)):
        a = _apply(op, x, values)
        b = _apply(op, xf, values)
        assert b.dtype == np.float32
        assert _levels_apart(np.floor(b * 255.0 + 0.5).astype(np.uint8), a) == 0, op


def test_solarize_at_the_threshold_level_is_inverted():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    for k in (1, 100, 128, 129, 254, 255):
        out = _apply(aug.Solarize(k / 255.0), x)
        v = x.ravel().astype(int)
        np.testing.assert_array_equal(out.ravel(), np.where(v >= k, 255 - v, v))


def test_equalize_leaves_a_constant_or_two_level_channel_as_pil_does():
    x = np.zeros((2, 5, 7, 3), np.uint8)
    x[0] = 17  # constant: step 0, unchanged
    x[1, :, :3] = 40  # two levels per channel
    x[1, :, 3:] = 90
    out = _apply(aug.Equalize(), x)
    np.testing.assert_array_equal(out, _pil(lambda im, i: ImageOps.equalize(im), x))
    np.testing.assert_array_equal(out[0], 17)


def test_one_channel_images():
    x = _images()[..., :1]
    np.testing.assert_array_equal(_apply(aug.Grayscale(), x), x)  # C = 1: the identity
    got = _apply(aug.Equalize(), x)
    ref = np.stack([np.asarray(ImageOps.equalize(Image.fromarray(a[..., 0])))[..., None] for a in x])
    np.testing.assert_array_equal(got, ref)


def test_invert_and_grayscale_fuse_with_the_colour_stage():
    pipe = aug.Pipeline([aug.Brightness(0.3), aug.Invert(), aug.Grayscale(p=0.5)], seed=0)
    run = pipe.compile("numpy")
    assert [st.kind for st in run.plan.stages] == ["color"]
    x = _images()
    params = run.sample(len(x), x.shape[1:])
    fused = run.apply(x, params=params)
    one_by_one = pipe.compile("numpy", fuse=False).apply(x, params=params)
    assert _levels_apart(fused, one_by_one) <= 1
    on = np.asarray(params["2/apply"])
    assert on.any() and not on.all()
    assert (fused[on] == fused[on][..., :1]).all() and not (fused[~on] == fused[~on][..., :1]).all()


# ------------------------------------------------------------ per-sample params


def test_posterize_bits_per_sample():
    x = _images(2)
    got = _apply(aug.Posterize((0, 8)), x, {"bits": [2, 6]})
    np.testing.assert_array_equal(got[0], x[0] & 0b11000000)
    np.testing.assert_array_equal(got[1], x[1] & 0b11111100)
    for i, b in enumerate((2, 6)):
        np.testing.assert_array_equal(got[i], _apply(aug.Posterize(b), x[i:i + 1])[0])


def test_posterize_rounds_a_float_bits_draw():
    x = _images(4)
    got = _apply(aug.Posterize((0, 8)), x, {"bits": [2.49, 2.5, 7.6, 8.0]})
    for i, b in enumerate((2, 3, 8, 8)):
        np.testing.assert_array_equal(got[i], np.asarray(_posterize_ref(Image.fromarray(x[i]), b)))


@pytest.mark.parametrize("op", [aug.Solarize((0.2, 0.9)), aug.SolarizeAdd((-0.4, 0.4)), aug.Posterize((1, 7)),
                                aug.Equalize(), aug.AutoContrast(), aug.Invert(p=0.5), aug.Grayscale(p=0.5)],
                         ids=lambda o: o.name)
def test_each_sample_as_if_alone(op):
    """Drawn params differ across the batch, and each sample's result is its own."""
    x = _images(6)
    run = aug.Pipeline([op], seed=3).compile("numpy")
    params = run.sample(len(x), x.shape[1:])
    for k, v in params.items():
        if k != "0/apply":
            assert len(np.unique(v)) > 1, k  # per-sample values
    out = run.apply(x, params=params)
    for i in range(len(x)):
        one = run.apply(x[i:i + 1], params={k: v[i:i + 1] for k, v in params.items()})
        np.testing.assert_array_equal(out[i], one[0])


def test_gated_samples_are_untouched():
    x = _images(8)
    for op in (aug.Equalize(p=0.5), aug.Posterize(2, p=0.5), aug.AutoContrast(p=0.5)):
        run = aug.Pipeline([op], seed=1).compile("numpy")
        params = run.sample(len(x), x.shape[1:])
        on = np.asarray(params["0/apply"])
        assert on.any() and not on.all()
        out = run.apply(x, params=params)
        np.testing.assert_array_equal(out[~on], x[~on])
        assert not np.array_equal(out[on], x[on])


def test_draw_names_are_the_documented_ones():
    assert set(aug.Solarize().draws()) == {"threshold"}
    assert set(aug.SolarizeAdd().draws()) == {"addition"}
    assert set(aug.Posterize().draws()) == {"bits"}
    for op in (aug.Invert(), aug.Grayscale(), aug.Equalize(), aug.AutoContrast()):
        assert op.draws() == {}


def test_a_policy_threshold_above_one_inverts_nothing():
    x = _images(2)
    np.testing.assert_array_equal(_apply(aug.Solarize(), x, {"threshold": [256 / 255, 1.0]})[0], x[0])


def test_specs_round_trip_and_eval():
    ops = [aug.Invert(p=0.3), aug.Grayscale(), aug.Solarize((0.1, 0.6), p=0.5), aug.SolarizeAdd(0.2, threshold=0.4),
           aug.Posterize((2, 6)), aug.Equalize(p=0.7), aug.AutoContrast()]
    for op in ops:
        assert aug.from_dict(aug.to_dict(op)) == op
    assert aug.Solarize(0.3).threshold == (0.3, 0.3) and aug.Posterize(4).bits == (4.0, 4.0)
    assert aug.SolarizeAdd().addition == (0.1, 0.1) and aug.SolarizeAdd().threshold == 128 / 255


# ---------------------------------------------------------------- bad fields


@pytest.mark.parametrize("make, error, words", [
    (lambda: aug.Solarize(1.5), SpecError, ("Solarize", "threshold", "1.5", "[0.0, 1.0]")),
    (lambda: aug.Solarize((0.8, 0.2)), SpecError, ("Solarize", "threshold", "inverted")),
    (lambda: aug.Solarize("half"), SpecTypeError, ("Solarize", "threshold")),
    (lambda: aug.SolarizeAdd(2.0), SpecError, ("SolarizeAdd", "addition", "[-1.0, 1.0]")),
    (lambda: aug.SolarizeAdd(0.1, threshold=-0.1), SpecError, ("SolarizeAdd", "threshold", "-0.1")),
    (lambda: aug.Posterize(9), SpecError, ("Posterize", "bits", "9", "[0.0, 8.0]")),
    (lambda: aug.Posterize((-1, 4)), SpecError, ("Posterize", "bits")),
    (lambda: aug.Posterize(float("nan")), SpecError, ("Posterize", "bits", "NaN")),
    (lambda: aug.Invert(p=2), SpecError, ("Invert", "p", "2")),
    (lambda: aug.Grayscale(p=-0.5), SpecError, ("Grayscale", "p")),
    (lambda: aug.Equalize(p=1.5), SpecError, ("Equalize", "p")),
    (lambda: aug.AutoContrast(p="x"), SpecTypeError, ("AutoContrast", "p")),
])
def test_bad_fields_name_op_and_field(make, error, words):
    with pytest.raises(error) as e:
        make()
    assert isinstance(e.value, (SpecError, SpecTypeError))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_grayscale_refuses_two_channels():
    with pytest.raises(aug.InputError, match="Grayscale"):
        aug.Pipeline([aug.Grayscale()]).compile("numpy")(np.zeros((1, 4, 4, 2), np.uint8))


# ------------------------------------------------------------------ backends

OPS = [aug.Invert(p=0.5), aug.Grayscale(p=0.5), aug.Solarize((0.0, 1.0), p=0.5), aug.SolarizeAdd((-0.5, 0.5), p=0.5),
       aug.Posterize((0, 8), p=0.5), aug.Equalize(p=0.5), aug.AutoContrast(p=0.5)]


def _framework(backend):
    mod = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax", "albumentations": "albumentations"}[backend]
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} is not installed")


def _to(backend, a):
    if backend == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(a))
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(a)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(a)
    return a


def _batch():
    return _images(8, 16, 20, seed=5)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_backends_agree_with_numpy_on_injected_params(backend, layout):
    _framework(backend)
    x = _batch()
    xl = x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for op in OPS:
        pipe = aug.Pipeline([op], seed=11)
        ref = pipe.compile("numpy", layout=layout)
        run = pipe.compile(backend, layout=layout)
        params = ref.sample(len(x), xl.shape[1:])
        assert np.asarray(params["0/apply"]).any() and not np.asarray(params["0/apply"]).all()
        want = ref.apply(xl, params=params)
        got = run.apply(_to(backend, xl), params={k: _to(backend, np.asarray(v)) for k, v in params.items()})
        got = np.asarray(got)
        assert got.dtype == np.uint8
        # grayscale: a luma may be a half level exactly, rounded either way; autocontrast divides
        assert _levels_apart(got, want) <= (1 if op.name in ("grayscale", "autocontrast") else 0), (
            backend, layout, op.name)
        # float32 in: the same values within float32 rounding
        xf = (xl / np.float32(255.0)).astype(np.float32)
        wf = ref.apply(xf, params=params)
        gf = np.asarray(run.apply(_to(backend, xf), params={k: _to(backend, np.asarray(v)) for k, v in params.items()}))
        np.testing.assert_allclose(gf, wf, atol=2e-6, err_msg=f"{backend} {layout} {op.name}")


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_backends_agree_with_numpy_in_a_full_call(backend):
    """``run(x)``: draws and kernels inside the backend's own call (TF: an XLA-compiled
    sub-function; JAX: one jit) give the NumPy reference's output for the same seed."""
    _framework(backend)
    x = _batch()
    layout = "NHWC"
    ops = OPS + [aug.Brightness(0.2), aug.Equalize(), aug.Posterize((3, 6)), aug.AutoContrast()]
    ref = aug.Pipeline(ops, seed=5).compile("numpy", layout=layout)
    run = aug.Pipeline(ops, seed=5).compile(backend, layout=layout)
    for _ in range(2):
        want, got = ref(x), np.asarray(run(_to(backend, x)))
        assert _levels_apart(got, want) <= 1


def test_tensorflow_graph_modes_and_an_unknown_batch():
    _framework("tensorflow")
    import tensorflow as tf

    x = _batch()
    ops = [aug.Equalize(p=0.5), aug.AutoContrast(p=0.5), aug.Posterize((1, 7)), aug.Solarize(0.5, p=0.5)]
    want = aug.Pipeline(ops, seed=2).compile("numpy")(x)
    for opts in ({"jit": True}, {"kernels": "graph"}):
        run = aug.Pipeline(ops, seed=2).compile("tensorflow", **opts)
        assert _levels_apart(np.asarray(run(tf.convert_to_tensor(x))), want) <= 1, opts
    # tf.data without drop_remainder: the batch size is unknown when tracing
    run = aug.Pipeline(ops, seed=2).compile("tensorflow", kernels="graph")
    params = aug.Pipeline(ops, seed=2).compile("numpy").sample(len(x), x.shape[1:])
    fn = tf.function(lambda im, pr: run.apply(im, params=pr),
                     input_signature=[tf.TensorSpec((None, *x.shape[1:]), tf.uint8),
                                      {k: tf.TensorSpec((None,), tf.as_dtype(np.asarray(v).dtype))
                                       for k, v in params.items()}])
    got = fn(tf.convert_to_tensor(x), {k: tf.convert_to_tensor(np.asarray(v)) for k, v in params.items()})
    ref = aug.Pipeline(ops, seed=2).compile("numpy").apply(x, params=params)
    assert _levels_apart(got.numpy(), ref) <= 1


def test_albumentations_backend_per_image():
    _framework("albumentations")
    x = _batch()
    for op in OPS:
        pipe = aug.Pipeline([op], seed=4)
        ref, run = pipe.compile("numpy"), pipe.compile("albumentations", exact_draws=True)
        for i in range(3):
            want = ref(x[i:i + 1])[0]
            assert _levels_apart(run(x[i]), want) <= 1, op.name


# ------------------------------------------------------------- the primitives


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax"])
def test_bincount_and_channel_extrema_primitives(backend):
    if backend != "numpy":
        _framework(backend)
    from augspec.backends.base import Backend
    from augspec.core.registry import load_backend

    B = load_backend(backend, layout="NHWC")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 7, (5, 40)).astype(np.int32)
    idx[2] = 6
    got = np.asarray(B.to_numpy(B.bincount(B.asarray(idx), 7)))
    assert got.dtype == np.float32 and got.shape == (5, 7)
    np.testing.assert_array_equal(got, np.stack([np.bincount(r, minlength=7) for r in idx]))
    assert np.asarray(B.to_numpy(B.bincount(B.asarray(np.zeros((0, 3), np.int32)), 4))).shape == (0, 4)
    x = rng.random((3, 5, 7, 2)).astype(np.float32)
    for name, ref in (("channel_min", x.min(axis=(1, 2))), ("channel_max", x.max(axis=(1, 2)))):
        np.testing.assert_array_equal(np.asarray(B.to_numpy(getattr(B, name)(B.asarray(x)))), ref)
        # the base class's default (pairwise halving), on this backend's arrays, odd sizes too
        for h, w in ((5, 7), (1, 1), (4, 3)):
            xs = np.ascontiguousarray(x[:, :h, :w])
            np.testing.assert_array_equal(np.asarray(B.to_numpy(getattr(Backend, name)(B, B.asarray(xs)))),
                                          getattr(xs, name[8:])(axis=(1, 2)))
