"""The TensorFlow backend against the NumPy reference: every built-in op with
injected params, sampling with the same key, the eager / tf.function / tf.data /
XLA paths, layouts and dtypes, and the Hypothesis invariants."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import augspec as aug  # noqa: E402
from augspec import recipes  # noqa: E402
from augspec.backends.tensorflow import TensorflowBackend, TFRun, derive_key_tf  # noqa: E402
from augspec.core.errors import InputError, InputTypeError, SpecError  # noqa: E402
from augspec.core.ops.geometric import affine_matrix  # noqa: E402
from augspec.core.random import counter_words, random_bits  # noqa: E402
from augspec.core.spec import Context  # noqa: E402

K = 5
N, H, W = 4, 12, 14


def _images(dtype: str, n: int = N, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    return rng.random((n, h, w, 3), dtype=np.float32)


def _labels(n: int = N, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, (n,))


@pytest.fixture(scope="module")
def fit_data() -> np.ndarray:
    return _images("float32", 16, 6, 6, seed=3)


def _op_cases() -> list:
    fitted_std = aug.Pipeline([aug.Standardize(featurewise_center=True, featurewise_std=True,
                                               samplewise_center=True)]).fit(_images("float32", 16, seed=3)).ops[0]
    zca = aug.Pipeline([aug.Standardize(featurewise_center=True), aug.ZCAWhitening(epsilon=0.1)]).fit(
        _images("float32", 16, 6, 6, seed=3)).ops
    return [
        ("affine", [aug.Affine(rotate=25, translate=0.1, scale=(0.8, 1.2), shear=10, shear_y=(-5, 5))], "geo"),
        ("affine_nearest_fill", [aug.Affine(rotate=20, translate=0.15, interpolation="nearest",
                                            fill=(0.2, 0.4, 0.6))], "nearest"),
        ("affine_fill_scalar", [aug.Affine(rotate=30, scale=(0.7, 0.9), fill=0.5)], "geo"),
        ("affine_edge", [aug.Affine(rotate=40, translate=0.4, scale=(0.4, 1.6), fill_mode="nearest")], "edge"),
        ("affine_reflect", [aug.Affine(rotate=40, translate=0.6, scale=(0.3, 1.6), fill_mode="reflect"),
                            aug.HorizontalFlip(p=0.5)], "edge"),
        ("affine_reflect_nearest", [aug.Affine(rotate=30, translate=0.5, fill_mode="reflect",
                                               interpolation="nearest")], "nearest"),
        ("nearest_ties", [aug.Affine(scale=(0.5, 0.5), translate=(0.25, 0.25), interpolation="nearest",
                                     fill=(0.1, 0.2, 0.3))], "nearest"),  # every tap a tie
        ("hflip", [aug.HorizontalFlip(p=0.5)], "pixel"),
        ("vflip", [aug.VerticalFlip(p=0.5)], "pixel"),
        ("flips_then_affine", [aug.HorizontalFlip(), aug.VerticalFlip(), aug.Affine(rotate=10)], "geo"),
        ("brightness", [aug.Brightness(0.4, p=0.7)], "pixel"),
        ("contrast", [aug.Contrast(0.5)], "pixel"),
        ("saturation", [aug.Saturation(0.5)], "pixel"),
        ("hue_yiq", [aug.Hue(0.3)], "pixel"),
        ("hue_hsv", [aug.Hue(0.3, mode="hsv")], "pixel"),
        ("color_jitter", [aug.ColorJitter(0.4, 0.4, 0.4, 0.1)], "pixel"),
        ("color_jitter_hsv", [aug.ColorJitter(0.4, 0.4, 0.4, 0.1, hue_mode="hsv")], "pixel"),
        ("gaussian_noise", [aug.GaussianNoise(std=(0.01, 0.1))], "pixel"),
        ("rescale", [aug.Rescale(2.0, -1.0)], "pixel"),
        ("normalize", [aug.Normalize()], "pixel"),
        ("standardize", [fitted_std], "pixel"),
        ("zca", list(zca), "zca"),
        ("cutout", [aug.CutOut(holes=3, size=(0.2, 0.6), fill=(0.1, 0.5, 0.9))], "pixel"),
        ("mixup", [aug.MixUp(alpha=0.8)], "pixel"),
        ("cutmix", [aug.CutMix(alpha=1.0)], "pixel"),
        ("label_smoothing", [aug.LabelSmoothing(0.1)], "pixel"),
        ("dropout", [aug.Dropout(0.3, noise_shape=(None, 1, 1, None))], "pixel"),
        ("one_of", [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)], p=0.8)], "pixel"),
        ("random_apply", [aug.RandomApply([aug.Brightness(0.3), aug.Affine(rotate=10)], p=0.5)], "geo"),
        ("r2", list(recipes.r2(num_classes=K).ops), "geo"),
    ]


CASES = _op_cases()


def _compare(ref: np.ndarray, out: np.ndarray, kind: str, dtype: str) -> None:
    out = np.asarray(out)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    if kind == "nearest":  # the same float64 taps: the same pixels, borders and fill included
        np.testing.assert_array_equal(out, ref)
        return
    if kind == "geo":  # resampling: interior pixels
        ref, out = ref[:, 1:-1, 1:-1], out[:, 1:-1, 1:-1]
    if ref.dtype == np.uint8:
        diff = np.abs(ref.astype(np.int16) - out.astype(np.int16))
        assert diff.max() <= 1
        return
    tol = 1e-5 if kind == "pixel" else 1e-4
    if kind == "zca":
        tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    err = np.abs(ref.astype(np.float64) - out.astype(np.float64))
    scale = max(1.0, float(np.abs(ref).max())) if kind == "pixel" else 1.0
    assert err.max() <= tol * scale, (kind, err.max())


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("name,ops,kind", CASES, ids=[c[0] for c in CASES])
def test_every_op_agrees_with_numpy(name: str, ops: list, kind: str, dtype: str) -> None:
    h, w = (6, 6) if kind == "zca" else (H, W)
    x = _images(dtype, h=h, w=w)
    y = _labels()
    pipe = aug.Pipeline(ops, num_classes=K, seed=7)
    nr = pipe.compile("numpy")
    tr = pipe.compile("tensorflow")
    params = nr.sample(N, x.shape[1:])
    ref_x, ref_y = nr.apply(x, y, params)
    out_x, out_y = tr.apply(x, y, params)
    _compare(ref_x, out_x.numpy(), kind, dtype)
    np.testing.assert_allclose(out_y.numpy(), ref_y, atol=1e-6)
    # sampling in TF with the same key gives numpy's params
    tr.set_state(step=0)
    tparams = tr.sample(N, x.shape[1:])
    assert set(tparams) == set(params)
    for k, v in params.items():
        np.testing.assert_allclose(tparams[k].numpy().astype(np.float64), np.asarray(v, np.float64), atol=1e-5,
                                   err_msg=k)


def test_derive_key_matches_core() -> None:
    for args in [(0, 0, 0, 0, 0), (7, 3, 12345, 1, 2), (2**63 - 1, 2**40, 2**33 + 5, 7, 9), (5, -1, -2, 0, 0)]:
        k0, k1 = derive_key_tf(args[0], *(tf.constant(v, tf.int64) for v in args[1:]))
        assert (int(k0), int(k1)) == aug.derive_key(*args)


# ------------------------------------------------------------ execution modes


@pytest.fixture(scope="module")
def r2_case():
    pipe = recipes.r2(num_classes=K, seed=11)
    x = _images("uint8", 8, 16, 16)
    y = _labels(8)
    nr = pipe.compile("numpy")
    ref = [nr(x[:4], y[:4]), nr(x[4:], y[4:])]
    return pipe, x, y, ref


def _check_batches(ref: list, got: list) -> None:
    for (rx, ry), (gx, gy) in zip(ref, got):
        np.testing.assert_allclose(np.asarray(gx), rx, atol=2e-4)
        np.testing.assert_allclose(np.asarray(gy), ry, atol=1e-6)


def test_eager_function_data_and_xla_paths_agree(r2_case) -> None:
    pipe, x, y, ref = r2_case
    tr = pipe.compile("tensorflow")
    assert isinstance(tr, TFRun)
    _check_batches(ref, [tr(x[:4], y[:4]), tr(x[4:], y[4:])])  # eager (one cached tf.function)
    assert tr.step == 2

    fn = tf.function(lambda a, b: tr(a, b))
    tr.set_state(step=0)
    _check_batches(ref, [fn(x[:4], y[:4]), fn(x[4:], y[4:])])  # step counter is a variable
    assert tr.step == 2

    xla = tf.function(lambda a, b, s: tr(a, b, step=s), jit_compile=True)
    _check_batches(ref, [xla(x[:4], y[:4], tf.constant(0, tf.int64)), xla(x[4:], y[4:], tf.constant(1, tf.int64))])

    ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True).enumerate()
          .map(lambda i, b: tr(b[0], b[1], step=i), num_parallel_calls=2, deterministic=True))
    _check_batches(ref, list(ds))
    assert tr.trace_count == 1  # the key enters as tensors: one trace for every step


@pytest.mark.parametrize("opts", [{"jit": True}, {"kernels": "native"}, {"kernels": "graph"}],
                         ids=["jit", "native", "graph"])
def test_backend_options_agree(r2_case, opts: dict) -> None:
    pipe, x, y, ref = r2_case
    tr = pipe.compile("tensorflow", **opts)
    _check_batches(ref, [tr(x[:4], y[:4]), tr(x[4:], y[4:])])
    assert tr.trace_count == 1


def test_dynamic_batch_size(r2_case) -> None:
    """A batch of unknown size (tf.data without drop_remainder, Keras fit on arrays):
    params and outputs equal those of the static batch, partial last batch included."""
    pipe, x, y, _ = r2_case
    nr = pipe.compile("numpy")
    ref = [nr(x[:3], y[:3]), nr(x[3:6], y[3:6]), nr(x[6:], y[6:])]
    tr = pipe.compile("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3).enumerate().map(lambda i, b: tr(b[0], b[1], step=i))
    assert ds.element_spec[0].shape[0] is None
    _check_batches(ref, list(ds))
    nr.set_state(step=0)
    pn = nr.sample(3, x.shape[1:])
    tp = tf.function(lambda n: tr._draw(n, (16, 16, 3), derive_key_tf(tr.seed, 0, 0, 0, 0)))(tf.constant(3))
    for k, v in pn.items():
        np.testing.assert_allclose(tp[k].numpy().astype(np.float64), np.asarray(v, np.float64), atol=1e-6, err_msg=k)


def test_one_trace_serves_every_step() -> None:
    tr = aug.Pipeline([aug.Affine(rotate=10), aug.Brightness(0.2)], seed=0).compile("tensorflow", kernels="graph")
    x = _images("float32")
    outs = [tr(x).numpy() for _ in range(4)]
    assert tr.trace_count == 1  # the counter is read and advanced inside the function
    outs.append(tr(x, step=tf.constant(9, tf.int64)).numpy())
    outs.append(tr(x, step=10, epoch=3).numpy())
    outs.append(tr(x, step=11).numpy())
    assert tr.trace_count == 2  # plus one for calls with an explicit key
    assert tr.step == 4
    assert not np.allclose(outs[0], outs[1])
    tr.set_epoch(0)
    np.testing.assert_array_equal(tr(x).numpy(), outs[0])


def test_set_epoch_reaches_traced_functions() -> None:
    tr = aug.Pipeline([aug.Brightness(0.4)], seed=3).compile("tensorflow", kernels="graph")
    nr = aug.Pipeline([aug.Brightness(0.4)], seed=3).compile("numpy")
    x = _images("float32")
    fn = tf.function(lambda a: tr(a))
    fn(x)
    tr.set_epoch(5)
    nr.set_epoch(5)
    np.testing.assert_allclose(fn(x).numpy(), nr(x), atol=1e-6)


def test_fitted_pipeline_inside_an_autograph_function() -> None:
    """Autograph leaves augspec's code alone inside a user's tf.function (R1: Standardize)."""
    x = _images("uint8", 8, 8, 8)
    pipe = recipes.r1(x, seed=4)
    tr, nr = pipe.compile("tensorflow"), pipe.compile("numpy")
    out = tf.function(lambda a: tr(a))(x)
    np.testing.assert_allclose(out.numpy()[:, 1:-1, 1:-1], nr(x)[:, 1:-1, 1:-1], atol=1e-3)


def test_nchw_layout_agrees() -> None:
    pipe = aug.Pipeline([aug.Affine(rotate=15, translate=0.1), aug.HorizontalFlip(),
                         aug.ColorJitter(0.3, 0.3, 0.3, 0.05), aug.CutOut(), aug.GaussianNoise(0.05),
                         aug.Dropout(0.2, noise_shape=(None, 1, 1, None)), aug.Normalize(),
                         aug.CutMix()], num_classes=K, seed=2)
    x = _images("float32")
    y = _labels()
    nr = pipe.compile("numpy")
    params = nr.sample(N, x.shape[1:])
    ref_x, ref_y = nr.apply(x, y, params)
    tr = pipe.compile("tensorflow", layout="NCHW")
    out_x, out_y = tr.apply(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, params)
    got = out_x.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got[:, 1:-1, 1:-1], ref_x[:, 1:-1, 1:-1], atol=1e-4 * 4.5)
    np.testing.assert_allclose(out_y.numpy(), ref_y, atol=1e-6)
    tr.set_state(step=0)
    tp = tr.sample(N, (3, H, W))
    np.testing.assert_array_equal(tp["5/keep"].numpy(), np.asarray(params["5/keep"]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "uint8"])
def test_dtypes_kept(dtype: str) -> None:
    pipe = aug.Pipeline([aug.Affine(rotate=10), aug.ColorJitter(0.2, 0.2), aug.CutOut()], seed=0)
    x32 = _images("float32")
    x = tf.cast(tf.constant(x32), dtype) if dtype != "uint8" else tf.constant(_images("uint8"))
    out = pipe.compile("tensorflow")(x)
    assert out.dtype == x.dtype and tuple(out.shape) == tuple(x.shape)
    ref = pipe.compile("numpy")(tf.cast(x, "float32").numpy() if dtype != "uint8" else x.numpy())
    got = tf.cast(out, "float32").numpy()
    tol = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 1e-4, "uint8": 1.0}[dtype]
    np.testing.assert_allclose(got[:, 1:-1, 1:-1], np.asarray(ref, np.float32)[:, 1:-1, 1:-1], atol=tol)


def test_soft_labels_single_image_and_empty_batch() -> None:
    pipe = aug.Pipeline([aug.MixUp(0.5), aug.LabelSmoothing(0.2)], num_classes=K, seed=0)
    tr, nr = pipe.compile("tensorflow"), pipe.compile("numpy")
    x = _images("float32")
    soft = np.random.default_rng(0).dirichlet(np.ones(K), N).astype(np.float32)
    gx, gy = tr(x, soft)
    rx, ry = nr(x, soft)
    np.testing.assert_allclose(gy.numpy(), ry, atol=1e-6)
    one_x, one_y = tr(x[0], np.int64(2))
    assert tuple(one_x.shape) == x.shape[1:] and tuple(one_y.shape) == (K,)
    ex, ey = tr(np.zeros((0, H, W, 3), np.float32), np.zeros((0,), np.int64))
    assert tuple(ex.shape) == (0, H, W, 3)


def test_split_before_mix_single_image_and_soft_labels() -> None:
    """kernels="xla" splits its XLA sub-function before a mix stage that follows other stages."""
    pipe = aug.Pipeline([aug.Brightness(0.3), aug.MixUp(0.5), aug.LabelSmoothing(0.1)], num_classes=K, seed=0)
    tr, nr = pipe.compile("tensorflow"), pipe.compile("numpy")
    assert tr._cut(tr.plan) == 1
    one = _images("float32")[0]
    (gx, gy), (rx, ry) = tr(one, np.int64(2)), nr(one, np.int64(2))
    assert tuple(gx.shape) == one.shape and tuple(gy.shape) == (K,)
    np.testing.assert_allclose(gx.numpy(), rx, atol=1e-6)
    np.testing.assert_allclose(gy.numpy(), ry, atol=1e-6)
    xb = _images("uint8")
    soft = np.full((N, K), 1.0 / K, np.float32)
    (gx, gy), (rx, ry) = tr(xb, soft), nr(xb, soft)
    assert gx.dtype == tf.uint8
    assert np.abs(gx.numpy().astype(int) - rx.astype(int)).max() <= 1
    np.testing.assert_allclose(gy.numpy(), ry, atol=1e-6)


def test_auto_picks_tensorflow_for_tensors() -> None:
    run = aug.Pipeline([aug.Brightness(0.2)], seed=0).compile("auto")
    out = run(tf.constant(_images("float32")))
    assert isinstance(out, tf.Tensor) and isinstance(run.run, TFRun)


def test_errors() -> None:
    tr = aug.Pipeline([aug.Affine(rotate=10), aug.MixUp()], num_classes=K, seed=0).compile("tensorflow")
    x = _images("float32")
    with pytest.raises(InputError, match="class ids"):
        tr(x, np.array([0, 1, 2, K]))
    with pytest.raises(InputTypeError):
        tr(np.array([["a"]]))
    with pytest.raises(InputError, match="only the batch size may be unknown"):
        tf.function(lambda a: tr(a, tf.zeros((4,), tf.int64)), autograph=False,
                    input_signature=[tf.TensorSpec([4, None, W, 3], tf.float32)]).get_concrete_function()
    with pytest.raises(SpecError):
        TensorflowBackend(kernels="fast")
    with pytest.raises(InputTypeError):
        tr(x, _labels(), step=1.5)


def test_native_warp_matches_gather_and_reference() -> None:
    x = _images("float32", 3, 20, 24)
    inv = np.tile(np.eye(3, dtype=np.float32), (3, 1, 1))
    a = np.deg2rad([13.0, -40.0, 90.0])
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 0], inv[:, 1, 1] = np.cos(a), np.sin(a) * 1.3, -np.sin(a), np.cos(a) * 0.7
    inv[:, 0, 2], inv[:, 1, 2] = [2.5, -3.0, 7.25], [1.0, 4.5, -2.0]
    npb = aug.Pipeline([]).compile("numpy").backend
    for mode in ("constant", "nearest", "reflect"):
        ref = npb.warp_affine(x, inv, "bilinear", (0.3,), mode)
        for kernels in ("native", "graph"):
            got = TensorflowBackend(kernels=kernels).warp_affine(tf.constant(x), tf.constant(inv), "bilinear", (0.3,), mode)
            np.testing.assert_allclose(got.numpy(), ref, atol=1e-4, err_msg=f"{mode} {kernels}")
        got = tf.function(lambda v, m, mode=mode: TensorflowBackend(kernels="graph").warp_affine(
            v, m, "bilinear", (0.3,), mode), jit_compile=True)(tf.constant(x), tf.constant(inv))
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-4, err_msg=f"{mode} xla")
    np.testing.assert_array_equal(  # identity reproduces the input exactly
        TensorflowBackend(kernels="graph").warp_affine(tf.constant(x), tf.constant(np.tile(np.eye(3, dtype=np.float32),
                                                                                          (3, 1, 1))), "bilinear",
                                                     (0.0,)).numpy(), x)


def test_generator_runs_on_uint32_bit_identical() -> None:
    """The counter hash on tf.uint32 tensors (eager, graph, XLA) gives NumPy's bits, and the
    words of derive_key_tf feed it as they are."""
    npb = aug.Pipeline([]).compile("numpy").backend
    tfb = TensorflowBackend()
    c = np.concatenate([counter_words(0, 0, 9), counter_words(5, 2**31 - 4, 9), counter_words(2**32 - 1, 2**32 - 10, 9)],
                       axis=1)
    key = aug.derive_key(7, 3, 2**33 + 5, 1, 2)
    ref = random_bits(npb, c, (np.asarray(key[0], np.uint32), np.asarray(key[1], np.uint32)))

    def bits(cc: Any, e: Any, s: Any) -> Any:
        return random_bits(tfb, cc, derive_key_tf(7, e, s, tf.constant(1, tf.int64), tf.constant(2, tf.int64)))

    args = (tf.constant(c), tf.constant(3, tf.int64), tf.constant(2**33 + 5, tf.int64))
    for fn in (bits, tf.function(bits), tf.function(bits, jit_compile=True)):
        got = fn(*args)
        assert got.dtype == tf.uint32
        np.testing.assert_array_equal(got.numpy(), ref)


def test_class_ids_out_of_range_raise_in_graphs() -> None:
    """In tf.function and tf.data, out-of-range ids fail (not all-zero one-hot rows)."""
    pipe = aug.Pipeline([aug.Brightness(0.2), aug.MixUp(0.5)], num_classes=K, seed=0)
    x = _images("float32")
    msg = r"class ids must lie in \[0, 5\)"
    for kernels in ("xla", "graph"):  # the split XLA sub-functions, and plain ops
        tr = pipe.compile("tensorflow", kernels=kernels)
        fn = tf.function(lambda a, b, tr=tr: tr(a, b))
        fn(x, _labels())  # valid ids pass
        for bad in ([0, 1, 2, K], [0, -1, 2, 3]):
            with pytest.raises(tf.errors.InvalidArgumentError, match=msg):
                fn(x, np.array(bad))
    ds = tf.data.Dataset.from_tensor_slices((x, np.array([0, 1, K + 3, 2]))).batch(2).enumerate().map(
        lambda i, b: tr(b[0], b[1], step=i))
    with pytest.raises(tf.errors.InvalidArgumentError, match=msg):
        list(ds)
    with pytest.raises(InputError, match="class ids"):  # eagerly, apply too
        tr.apply(x, np.array([0, 1, 2, K]), pipe.compile("numpy").sample(N, x.shape[1:]))


@aug.spec
class _FixedRotation(aug.GeometricOp):
    """A plugin geometric op: a fixed rotation about the image centre (its own matrix kernel)."""

    name = "test_tf_fixed_rotation"
    degrees: float = 30.0
    p: float = 1.0

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        c, s = math.cos(math.radians(self.degrees)), math.sin(math.radians(self.degrees))
        cx, cy = ctx.width / 2.0, ctx.height / 2.0
        z = 0.0 * B.ones((ctx.n,), "float32")
        return affine_matrix(B, c + z, -s + z, cx - c * cx + s * cy + z, s + z, c + z, cy - s * cx - c * cy + z)


def test_plugin_geometric_op_fuses_into_one_warp(monkeypatch) -> None:
    """A plugin geometric op between the built-in random warp and the flip joins their
    stage: ONE warp a call on TF (traced or run eagerly), and NumPy's output."""
    pipe = aug.Pipeline([aug.Affine(rotate=20, translate=0.1, scale=0.1), _FixedRotation(25.0),
                         aug.HorizontalFlip(p=0.5)], seed=4)
    x = _images("float32")
    nr = pipe.compile("numpy")
    refs = [nr(x) for _ in range(3)]
    for kernels in ("xla", "graph"):
        tr = pipe.compile("tensorflow", kernels=kernels)
        assert [st.kind for st in tr.plan.stages] == ["geometric"]
        calls = []
        real = tr.backend.warp_affine

        def counting(*a: Any, real: Any = real, calls: list = calls, **k: Any) -> Any:
            calls.append(1)
            return real(*a, **k)

        monkeypatch.setattr(tr.backend, "warp_affine", counting)
        tf.config.run_functions_eagerly(True)  # the Python stages run on every call
        try:
            for i, ref in enumerate(refs):
                _compare(ref, tr(x).numpy(), "geo", "float32")
                assert len(calls) == i + 1  # one warp per call
        finally:
            tf.config.run_functions_eagerly(False)
        tr.set_state(step=0)
        calls.clear()
        for ref in refs:  # traced once: the one trace holds one warp
            _compare(ref, tr(x).numpy(), "geo", "float32")
        assert len(calls) == 1 and tr.trace_count == 1


def test_backend_source_names_no_builtin_op() -> None:
    """The backend is written against the op families, never a built-in op's class."""
    import augspec.backends.tensorflow as mod

    with open(mod.__file__, encoding="utf-8") as f:
        src = f.read()
    for name in ("CutMix", "MixUp", "CutOut", "Normalize", "Rescale", "ColorJitter", "Affine"):
        assert not re.search(rf"\b{name}\b", src), name


# ------------------------------------------------------------ Hypothesis


_FULL = aug.Pipeline([aug.Affine(rotate=20, translate=0.1, scale=0.1), aug.HorizontalFlip(),
                      aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.CutOut(), aug.GaussianNoise(0.05),
                      aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], num_classes=K, seed=5)
_P0 = aug.Pipeline([aug.Affine(rotate=20, p=0.0), aug.HorizontalFlip(p=0.0), aug.ColorJitter(0.4, 0.4, p=0.0),
                    aug.CutOut(p=0.0), aug.GaussianNoise(0.1, p=0.0), aug.RandomApply(aug.Brightness(0.5), p=0.0)],
                   seed=5)


@pytest.fixture(scope="module")
def hyp_runs():
    # plain graph kernels: each new signature is traced, not XLA-compiled (test time)
    return {k: p.compile("tensorflow", kernels="graph") for k, p in (("full", _FULL), ("full2", _FULL), ("p0", _P0))}


@given(dtype=st.sampled_from(["uint8", "float32"]), step=st.integers(0, 2**40),
       soft=st.booleans(), data_seed=st.integers(0, 1000))
def test_invariants(hyp_runs, dtype: str, step: int, soft: bool, data_seed: int) -> None:
    n = 3
    x = _images(dtype, n, 8, 8, seed=data_seed)
    x_copy = x.copy()
    rng = np.random.default_rng(data_seed)
    y = rng.dirichlet(np.ones(K), n).astype(np.float32) if soft else rng.integers(0, K, (n,))
    run = hyp_runs["full"]
    ox, oy = run(x, y, step=step)
    ox2, oy2 = hyp_runs["full2"](x, y, step=step)  # same seed, same step: same output
    np.testing.assert_array_equal(ox.numpy(), ox2.numpy())
    np.testing.assert_array_equal(oy.numpy(), oy2.numpy())
    assert tuple(ox.shape) == x.shape and ox.dtype.name == dtype  # bounded pipeline: dtype kept
    xo = ox.numpy().astype(np.float64)
    if dtype == "float32":
        assert xo.min() >= 0.0 and xo.max() <= 1.0
    yo = oy.numpy()
    assert yo.shape == (n, K) and yo.min() >= 0.1 / K - 1e-6
    np.testing.assert_allclose(yo.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, x_copy)  # input not mutated
    np.testing.assert_array_equal(hyp_runs["p0"](x, step=step).numpy(), x)  # p = 0: identity


def test_trace_caches_stay_bounded_with_ever_new_image_sizes(monkeypatch):
    """A stream of new image sizes does not grow the run's traced functions without bound."""
    import augspec.backends.tensorflow as btf

    monkeypatch.setattr(btf.TFRun, "MAX_SIGNATURES", 3)
    run = aug.Pipeline([aug.HorizontalFlip(p=0.5)], seed=0).compile("tensorflow")
    for s in range(4, 12):
        out = run(tf.zeros((2, s, s, 3), tf.uint8))
        assert out.shape == (2, s, s, 3)
        assert len(run._concrete) <= 3
    assert run.trace_count <= 3
