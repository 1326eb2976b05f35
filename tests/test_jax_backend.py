"""The JAX backend against the NumPy reference: RNG bits, sampling, every built-in op
with injected params, the jitted call (one trace per shape), dtypes, layouts, inputs."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from op_cases import FIT, OPS, K  # noqa: E402,F401

import augspec as aug  # noqa: E402
from augspec.backends.jax import JaxBackend  # noqa: E402
from augspec.backends.numpy import NumpyBackend  # noqa: E402
from augspec.core.errors import InputError, InputTypeError  # noqa: E402
from augspec.core.random import Uniform, bits_to_uniform, counter_words, random_bits  # noqa: E402

RNG = np.random.default_rng(1234)
X_U8 = RNG.integers(0, 256, (6, 12, 14, 3), dtype=np.uint8)  # NHWC
X_F32 = X_U8.astype(np.float32) / 255.0
Y = RNG.integers(0, K, (6,))


KIND = {name: kind for name, _, kind in OPS}


def _ops(name):
    return next(o[1] for o in OPS if o[0] == name)


def _compare(name, kind, xj, xn, dtype, layout="NHWC"):
    assert isinstance(xj, jax.Array), name
    xj = np.asarray(xj)
    assert xj.shape == xn.shape, name
    inner = (slice(None), slice(1, -1), slice(1, -1)) if layout == "NHWC" else (slice(None), slice(None), slice(1, -1), slice(1, -1))
    if dtype == "uint8" and xn.dtype == np.uint8:
        assert xj.dtype == np.uint8
        diff = np.abs(xj.astype(np.int32) - xn.astype(np.int32))
        if kind in ("warp", "nearest"):
            diff = diff[inner]
        assert diff.max() <= 1, (name, diff.max())
        return
    a, b = xj.astype(np.float64), xn.astype(np.float64)
    if kind == "warp":
        a, b = a[inner], b[inner]
    if kind in ("nearest", "exact"):
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        tol = 1e-4 if kind in ("warp", "edge") else 1e-5
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol, err_msg=name)


def _jparams(params):
    return {k: jnp.asarray(np.asarray(v)) for k, v in params.items()}


@pytest.mark.parametrize("name,ops,kind", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_agrees_with_numpy_on_injected_params(name, ops, kind, dtype):
    pipe = aug.Pipeline(ops, num_classes=K, seed=7)
    rn, rj = pipe.compile("numpy"), pipe.compile("jax")
    x = X_U8 if dtype == "uint8" else X_F32
    params = rn.sample(len(x), x.shape[1:])
    xn, yn = rn.apply(x, Y, params)
    xin = x.copy()
    xj, yj = rj.apply(xin, jnp.asarray(Y), _jparams(params))
    np.testing.assert_array_equal(xin, x)  # the input is never written to
    _compare(name, kind, xj, xn, dtype)
    assert isinstance(yj, jax.Array) and yj.shape == np.shape(yn)
    np.testing.assert_allclose(np.asarray(yj), yn, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["affine_flip", "affine_reflect", "nearest_ties", "color_jitter", "cutout", "one_of", "zca"])
def test_nchw_layout(name):
    pipe = aug.Pipeline(_ops(name), num_classes=K, seed=3)
    rn, rj = pipe.compile("numpy", layout="NCHW"), pipe.compile("jax", layout="NCHW")
    x = np.ascontiguousarray(X_F32.transpose(0, 3, 1, 2))
    params = rn.sample(len(x), x.shape[1:])
    xn, yn = rn.apply(x, Y, params)
    xj, yj = rj.apply(jnp.asarray(x), Y, _jparams(params))
    _compare(name, KIND[name], xj, xn, "float32", layout="NCHW")
    np.testing.assert_allclose(np.asarray(yj), yn, atol=1e-6)


def test_random_bits_bit_exact():
    counters = counter_words(3, 0, 5000)
    for key in [(0, 0), (1, 2), (0xFFFFFFFF, 0x80000000), (123456789, 987654321)]:
        bn = random_bits(NumpyBackend(), counters, (np.uint32(key[0]), np.uint32(key[1])))
        bj = random_bits(JaxBackend(), jnp.asarray(counters), (jnp.uint32(key[0]), jnp.uint32(key[1])))
        assert bj.dtype == jnp.uint32
        np.testing.assert_array_equal(np.asarray(bj), bn)
        np.testing.assert_array_equal(np.asarray(bits_to_uniform(JaxBackend(), bj)), bits_to_uniform(NumpyBackend(), bn))


@pytest.mark.parametrize("name", ["affine_reflect", "color_jitter_hsv", "one_of", "dropout", "r2", "cutout_p"])
def test_same_seed_same_draws_as_numpy(name):
    pipe = aug.Pipeline(_ops(name), num_classes=K, seed=11)
    rn, rj = pipe.compile("numpy"), pipe.compile("jax")
    rn.set_state(epoch=2, step=5)
    rj.set_state(epoch=2, step=5)
    pn, pj = rn.sample(6, X_F32.shape[1:]), rj.sample(6, X_F32.shape[1:])
    assert rj.step == rn.step == 6
    uniform = {d.key for d in rj.plan.sampler.draws if isinstance(d.dist, Uniform)}
    for key, v in pn.items():
        a, b = np.asarray(pj[key]), np.asarray(v)
        assert isinstance(pj[key], jax.Array) and a.shape == b.shape, key
        if key in uniform or b.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b.astype(a.dtype), err_msg=key)  # int64 ids come as int32
        else:  # Normal / Beta: transcendental functions of equal uniforms
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", ["affine", "nearest_ties", "affine_reflect", "vflip", "color_jitter", "one_of",
                                  "dropout", "r2"])
def test_jitted_call_matches_eager_apply_and_numpy(name):
    pipe = aug.Pipeline(_ops(name), num_classes=K, seed=5)
    rj, rn = pipe.compile("jax"), pipe.compile("numpy")
    for step in (0, 3):
        rj.set_state(step=step)
        params = rj.sample(len(X_U8), X_U8.shape[1:])
        xe, ye = rj.apply(X_F32, Y, params)
        rj.set_state(step=step)
        xj, yj = rj(X_F32, Y)
        assert rj.step == step + 1
        _compare(name, KIND[name], xj, np.asarray(xe), "float32")
        np.testing.assert_allclose(np.asarray(yj), np.asarray(ye), atol=1e-6)
        rn.set_state(step=step)
        xn, yn = rn(X_F32, Y)  # the same seed and step: the same draws as NumPy's call
        _compare(name, KIND[name], xj, xn, "float32")
        np.testing.assert_allclose(np.asarray(yj), yn, atol=1e-5)


def test_one_trace_per_shape():
    ops = [aug.Affine(rotate=10), aug.HorizontalFlip(), aug.CutOut(size=0.3), aug.LabelSmoothing(0.1)]
    rj = aug.Pipeline(ops, num_classes=K, seed=1).compile("jax")
    outs = [np.asarray(rj(X_U8, Y)[0]) for _ in range(3)]
    assert rj.trace_count == 1 and rj.step == 3
    assert not np.array_equal(outs[0], outs[1])  # a new key each step, same trace
    rj.set_epoch(4)
    rj(X_U8, Y)
    assert rj.trace_count == 1
    rj(X_U8[:4], Y[:4])
    assert rj.trace_count == 2
    rj(X_U8[:4], Y[:4])
    rj(X_F32, Y)  # another dtype
    assert rj.trace_count == 3
    clone = pickle.loads(pickle.dumps(rj))  # the jitted functions are not pickled
    np.testing.assert_array_equal(np.asarray(clone(X_U8, Y)[0]), np.asarray(copy.deepcopy(rj)(X_U8, Y)[0]))


def test_single_image_dtypes_and_empty_batch():
    rj = aug.Pipeline([aug.Affine(rotate=10), aug.Brightness(0.2)], seed=2).compile("jax")
    out = rj(X_U8[0])
    assert isinstance(out, jax.Array) and out.shape == X_U8.shape[1:] and out.dtype == jnp.uint8
    assert rj(jnp.asarray(X_U8)).dtype == jnp.uint8
    assert rj(X_F32.astype(np.float16)).dtype == jnp.float16
    assert rj(jnp.asarray(X_F32, jnp.bfloat16)).dtype == jnp.bfloat16
    assert rj(X_F32.astype(np.float64)).dtype == jnp.float32  # no x64: float64 becomes float32
    assert rj.sample(0, X_U8.shape[1:]) is not None
    for r in (rj, aug.Pipeline([aug.MixUp(0.5)], num_classes=K, seed=2).compile("jax")):
        xo, yo = r(X_U8[:0], Y[:0])
        assert xo.shape == (0, 12, 14, 3) and xo.dtype == jnp.uint8 and yo.shape[0] == 0
    rn = aug.Pipeline([aug.Normalize()], seed=2).compile("jax")
    assert rn(X_U8).dtype == jnp.float32  # leaves [0, 1]: uint8 comes back float32
    xs, ys = aug.Pipeline([aug.MixUp(0.5)], num_classes=K, seed=2).compile("jax")(X_U8[0], 3)
    assert xs.shape == X_U8.shape[1:] and ys.shape == (K,)


def test_inputs_and_errors():
    rj = aug.Pipeline([aug.CutMix(1.0)], num_classes=K, seed=2).compile("jax")
    torch_like = type("Tensor", (), {"__module__": "torch"})()
    tf_like = type("EagerTensor", (), {"__module__": "tensorflow.python.framework.ops"})()
    for bad in (torch_like, tf_like, [[1, 2], [3]], np.array(["a"])):
        with pytest.raises(InputTypeError):
            rj(bad)
    with pytest.raises(InputError, match="class ids"):
        rj(X_U8, np.full(6, K))
    with pytest.raises(InputError):
        rj(X_U8[0, 0])  # 2-D
    out, y = rj(X_F32.tolist(), Y.tolist())  # lists are read too
    assert out.shape == X_U8.shape and y.shape == (6, K)
    assert not jax.config.jax_enable_x64 and rj.backend.arange(3).dtype == jnp.int32
    auto = aug.Pipeline([aug.HorizontalFlip()], seed=2).compile("auto")
    assert isinstance(auto(jnp.asarray(X_U8)), jax.Array) and auto.run.backend.name == "jax"


def test_check_class_ids_inside_and_outside_a_trace():
    B = JaxBackend()
    assert B.check_class_ids(jnp.asarray([0, 3]), 4) is True
    assert B.check_class_ids(jnp.asarray([0, 4]), 4) is False
    seen = []
    jax.jit(lambda y: seen.append(B.check_class_ids(y, 4)) or y)(jnp.asarray([0, 9]))
    assert seen == [None]


def test_eval_runs_deterministic_ops_only():
    rj = aug.Pipeline([aug.Affine(rotate=30), aug.Normalize()], seed=2).compile("jax")
    rn = aug.Pipeline([aug.Affine(rotate=30), aug.Normalize()], seed=2).compile("numpy")
    np.testing.assert_allclose(np.asarray(rj(X_U8, training=False)), rn(X_U8, training=False), atol=1e-5)
    assert rj.step == 0


@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect"])
@pytest.mark.parametrize("interp", ["nearest", "bilinear"])
def test_warp_coordinates_match_float64(mode, interp):
    """Random and tie-heavy inverses on a wide image: the float32 coordinates pick NumPy's taps."""
    rng = np.random.default_rng(5)
    x = rng.random((4, 9, 700, 2), dtype=np.float32)
    inv = np.zeros((4, 3, 3), np.float32)
    inv[:, 2, 2] = 1
    inv[0, :2] = [[1.0, 0, 0.25], [0, 1, -0.5]]  # whole and half pixel shifts
    inv[1, :2] = [[0.5, 0, 0.25], [0, 2, 0.5]]  # ties everywhere
    inv[2, :2] = np.float32([[5 / 3, 0, 31 / 6], [0, 0.4, 4.2]])  # near-ties a plain float32 sum misses
    inv[3, :2] = rng.normal(0, 1, (2, 3)).astype(np.float32) * [1, 1, 7]
    fill = (0.3, 0.7)
    out = JaxBackend().warp_affine(jnp.asarray(x), jnp.asarray(inv), interp, fill, mode)
    ref = NumpyBackend().warp_affine(x, inv, interp, fill, mode)
    if interp == "nearest":
        np.testing.assert_array_equal(np.asarray(out), ref)
        jitted = jax.jit(lambda x, inv: JaxBackend().warp_affine(x, inv, interp, fill, mode))
        np.testing.assert_array_equal(np.asarray(jitted(jnp.asarray(x), jnp.asarray(inv))), ref)  # survives XLA
    else:
        np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)
