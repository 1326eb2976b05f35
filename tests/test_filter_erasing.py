"""Sharpness, GaussianBlur and RandomErasing: fidelity to PIL and float64 references, the
per-sample draws, timm's erasing rule over many samples, the modes, and the spec checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import augspec as aug
from augspec.backends.numpy import NumpyBackend
from augspec.core.spec import Context


def _images(n, h, w, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _run(op, seed=0):
    return aug.Pipeline([op], seed=seed).compile("numpy")


def _with(params, key, values):
    out = dict(params)
    out[key] = np.asarray(values, dtype=np.float32).reshape(np.shape(params[key]))
    return out


# ---------------------------------------------------------------- Sharpness


def _pil_sharpness(im, f):
    from PIL import Image, ImageEnhance

    return np.asarray(ImageEnhance.Sharpness(Image.fromarray(im)).enhance(float(f)))


def test_sharpness_matches_pil_on_random_images():
    x = _images(6, 17, 23)
    run = _run(aug.Sharpness(factor=(0.0, 2.0)))
    factors = [0.0, 0.3, 1.0, 1.25, 1.7, 2.0]
    params = _with(run.sample(6, x.shape[1:]), "0/factor", factors)
    out = run.apply(x, None, params)
    assert out.dtype == np.uint8
    for i, f in enumerate(factors):
        d = np.abs(out[i].astype(int) - _pil_sharpness(x[i], f).astype(int))
        assert d.max() <= 1, (f, d.max())
    # the border is the input's
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    np.testing.assert_array_equal(out[:, :, -1], x[:, :, -1])


def test_sharpness_matches_pil_on_chelsea():
    data = pytest.importorskip("skimage.data")
    im = data.chelsea()
    run = _run(aug.Sharpness(factor=(0.0, 2.0)))
    x = np.stack([im, im, im])
    factors = [0.0, 0.6, 1.9]
    out = run.apply(x, None, _with(run.sample(3, x.shape[1:]), "0/factor", factors))
    for i, f in enumerate(factors):
        d = np.abs(out[i].astype(int) - _pil_sharpness(im, f).astype(int))
        assert d.max() <= 1, (f, d.max())


def test_sharpness_float_reference_and_small_images():
    x = np.random.default_rng(1).random((3, 9, 8, 3)).astype(np.float32)
    run = _run(aug.Sharpness(factor=(0.0, 1.0)))
    f = np.array([0.0, 0.5, 1.0], np.float32)
    out = run.apply(x, None, _with(run.sample(3, x.shape[1:]), "0/factor", f))
    xd = x.astype(np.float64)
    k = np.ones((3, 3)) / 13.0
    k[1, 1] = 5.0 / 13.0
    deg = xd.copy()
    inner = sum(k[i, j] * xd[:, i:i + 7, j:j + 6] for i in range(3) for j in range(3))
    deg[:, 1:-1, 1:-1] = inner
    want = np.clip(deg + f[:, None, None, None] * (xd - deg), 0, 1)
    np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_array_equal(out[2], x[2])  # f = 1: the image itself
    for h, w in ((2, 9), (9, 2), (1, 1)):  # all border: unchanged
        small = x[:, :h, :w]
        o = run.apply(small, None, run.sample(3, small.shape[1:]))
        np.testing.assert_array_equal(o, small)


def test_sharpness_draws_in_range():
    run = _run(aug.Sharpness(0.4))
    f = run.sample(2000, (8, 8, 3))["0/factor"]
    assert f.min() >= 0.6 and f.max() <= 1.4 and abs(f.mean() - 1.0) < 0.02
    assert aug.Sharpness(0.4).factor == (0.6, 1.4)


# ---------------------------------------------------------------- GaussianBlur


def _blur_reference(x, sigmas, kh, kw):
    """Direct float64 2-D convolution with the outer-product kernel, np.pad "reflect"."""
    out = np.empty(x.shape, np.float64)
    rh, rw = kh // 2, kw // 2
    h, w = x.shape[1:3]
    for n, s in enumerate(sigmas):
        gy = np.exp(-0.5 * (np.arange(-rh, rh + 1) / float(s)) ** 2)
        gx = np.exp(-0.5 * (np.arange(-rw, rw + 1) / float(s)) ** 2)
        k2 = np.outer(gy / gy.sum(), gx / gx.sum())
        p = np.pad(x[n].astype(np.float64), ((rh, rh), (rw, rw), (0, 0)), mode="reflect")
        acc = np.zeros((h, w, x.shape[3]))
        for i in range(kh):
            for j in range(kw):
                acc += k2[i, j] * p[i:i + h, j:j + w]
        out[n] = acc
    return out


@pytest.mark.parametrize("ks, hw", [(5, (12, 14)), ((3, 7), (10, 9)), (23, (12, 14)), ((9, 1), (6, 5)),
                                    (7, (1, 4))])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_gaussian_blur_matches_float64_reference(ks, hw, layout):
    x = np.random.default_rng(2).random((4, *hw, 3)).astype(np.float32)
    op = aug.GaussianBlur(kernel_size=ks, sigma=(0.1, 4.0))
    run = aug.Pipeline([op], seed=3).compile("numpy", layout=layout)
    xin = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
    sigmas = [0.1, 0.8, 1.7, 4.0]
    params = _with(run.sample(4, xin.shape[1:]), "0/sigma", sigmas)
    out = run.apply(xin, None, params)
    if layout == "NCHW":
        out = out.transpose(0, 2, 3, 1)
    want = _blur_reference(x, sigmas, *op.kernel_size)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_gaussian_blur_uint8_and_spec():
    x = _images(3, 11, 13)
    op = aug.GaussianBlur(kernel_size=(5, 3), sigma=1.5)
    assert op.kernel_size == (5, 3) and op.sigma == (1.5, 1.5)
    out = _run(op)(x)
    want = _blur_reference(x / 255.0, [1.5] * 3, 5, 3)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - np.round(want * 255)).max() <= 1
    assert aug.GaussianBlur().kernel_size == (23, 23)


def test_gaussian_blur_zero_sigma_is_identity():
    x = np.random.default_rng(4).random((2, 6, 7, 3)).astype(np.float32)
    run = _run(aug.GaussianBlur(5))
    out = run.apply(x, None, _with(run.sample(2, x.shape[1:]), "0/sigma", [0.0, 1e-9]))
    np.testing.assert_allclose(out, x, atol=1e-7)


# ------------------------------------------------------- per-sample params


@pytest.mark.parametrize("op, key", [
    (aug.Sharpness((0.0, 3.0)), "0/factor"),
    (aug.GaussianBlur(5, sigma=(0.3, 3.0)), "0/sigma"),
    (aug.RandomErasing(p=1.0, count=(1, 3), mode="rand"), "0/area"),
    (aug.RandomErasing(p=0.6, mode="pixel", scale=(0.1, 0.5)), "0/area"),
    (aug.RandomErasing(p=1.0, value=(0.1, 0.5, 0.9)), "0/top"),
])
def test_each_sample_equals_applying_it_alone(op, key):
    x = np.random.default_rng(5).random((6, 12, 14, 3)).astype(np.float32)
    run = _run(op, seed=11)
    params = run.sample(6, x.shape[1:])
    vals = np.asarray(params[key]).reshape(6, -1)
    assert len({tuple(v) for v in vals}) == 6  # the draws differ per sample
    out = run.apply(x, None, params)
    for i in range(6):
        one = run.apply(x[i:i + 1], None, {k: v[i:i + 1] for k, v in params.items()})
        np.testing.assert_array_equal(one[0], out[i])
    assert not np.array_equal(out[0], out[1])


# ---------------------------------------------------------------- RandomErasing


def _boxes(op, params, h, w, n):
    B = NumpyBackend()
    p = {k.split("/", 1)[1]: v for k, v in params.items()}
    return [np.asarray(v) for v in op.boxes(B, p, Context(n, h, w, 3))]


def _simulate(n, h, w, scale, ratio, count, p, seed=0):
    """timm's rule in float64: the erased fraction of each of ``n`` images."""
    rng = np.random.default_rng(seed)
    lr = (math.log(ratio[0]), math.log(ratio[1]))
    frac = np.zeros(n)
    for i in range(n):
        if rng.random() >= p:
            continue
        k = int(rng.integers(count[0], count[1] + 1))
        mask = np.zeros((h, w), bool)
        for _ in range(k):
            for _ in range(10):
                ta = rng.uniform(*scale) * h * w / k
                ar = math.exp(rng.uniform(*lr))
                bh, bw = int(round(math.sqrt(ta * ar))), int(round(math.sqrt(ta / ar)))
                if bw < w and bh < h:
                    t, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                    mask[t:t + bh, left:left + bw] = True
                    break
        frac[i] = mask.mean()
    return frac


def _erased(op, n, h, w, seed=0):
    """Our erased fraction of each of ``n`` images (a constant image, value 0 erases to 1)."""
    run = _run(op, seed=seed)
    x = np.zeros((n, h, w, 1), np.float32)
    out = run(x)
    return (out[..., 0] != 0).mean(axis=(1, 2))


@pytest.mark.parametrize("h, w, kw", [
    (20, 24, {}),
    (16, 16, {"count": (1, 4)}),
    (9, 30, {"scale": (0.1, 0.8), "ratio": (0.5, 2.0), "count": 3}),
    (32, 32, {"p": 0.5}),
])
def test_erased_fraction_matches_timm_rule(h, w, kw):
    kw = {"p": 1.0, **kw}
    op = aug.RandomErasing(value=1.0, **kw)
    n = 4000
    ours = _erased(op, n, h, w)
    sim = _simulate(20000, h, w, op.scale, op.ratio, op.count, op.p)
    se = math.sqrt(ours.var() / n + sim.var() / len(sim))
    assert abs(ours.mean() - sim.mean()) < 4 * se + 1e-3, (ours.mean(), sim.mean(), se)
    # the share of images that are touched at all (p, and boxes that found no fitting try)
    touched, sim_touched = (ours > 0).mean(), (sim > 0).mean()
    assert abs(touched - sim_touched) < 4 * math.sqrt(0.25 / n) + 0.01


def test_boxes_inside_and_sides_follow_the_rule():
    h, w, n = 14, 19, 3000
    op = aug.RandomErasing(p=1.0, count=(1, 3), scale=(0.02, 0.6))
    run = _run(op, seed=2)
    params = run.sample(n, (h, w, 3))
    y0, y1, x0, x1 = _boxes(op, params, h, w, n)
    assert y0.shape == (n, 3)
    for v in (y0, y1, x0, x1):
        assert np.array_equal(v, np.floor(v))
    assert (y0 >= 0).all() and (y1 <= h).all() and (x0 >= 0).all() and (x1 <= w).all()
    assert (y1 >= y0).all() and (x1 >= x0).all()
    bh, bw = y1 - y0, x1 - x0
    assert (bh < h).all() and (bw < w).all()
    # boxes past the sample's count are empty; the count is uniform over 1..3
    cnt = np.floor(params["0/count"]).astype(int)
    assert set(np.unique(cnt)) == {1, 2, 3}
    for c in (1, 2, 3):
        assert abs((cnt == c).mean() - 1 / 3) < 0.04
    slots = np.arange(3)[None, :]
    assert (bh[slots >= cnt[:, None]] == 0).all() and (bw[slots >= cnt[:, None]] == 0).all()
    # each drawn box is the first try that fits, with sides as timm rounds them (float64)
    area, ratio = params["0/area"].astype(np.float64), params["0/ratio"].astype(np.float64)
    ta = area * h * w / cnt[:, None, None]
    th, tw = np.floor(np.sqrt(ta * ratio) + 0.5), np.floor(np.sqrt(ta / ratio) + 0.5)
    ok = (th < h) & (tw < w)
    first = np.argmax(ok, axis=2)
    found = ok.any(axis=2)
    live = found & (slots < cnt[:, None])
    ii, kk = np.nonzero(live)
    agree = (th[ii, kk, first[ii, kk]] == bh[ii, kk]) & (tw[ii, kk, first[ii, kk]] == bw[ii, kk])
    assert agree.mean() > 0.999  # float32 vs float64 may differ only at a rounding boundary
    assert (bh[~live] == 0).all()


def test_erasing_boxes_are_exact_across_backends():
    torch = pytest.importorskip("torch")
    from augspec.backends.torch import TorchBackend

    h, w, n = 37, 53, 500
    op = aug.RandomErasing(p=1.0, count=(1, 5), scale=(0.0, 1.0), ratio=(0.1, 10.0))
    params = _run(op, seed=9).sample(n, (h, w, 3))
    want = _boxes(op, params, h, w, n)
    T = TorchBackend()
    p = {k.split("/", 1)[1]: torch.as_tensor(np.asarray(v)) for k, v in params.items()}
    got = [v.numpy() for v in op.boxes(T, p, Context(n, h, w, 3))]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def _box_regions(op, params, h, w, n):
    y0, y1, x0, x1 = _boxes(op, params, h, w, n)
    return y0.astype(int), y1.astype(int), x0.astype(int), x1.astype(int)


def test_erasing_const_mode_per_channel_value():
    x = np.random.default_rng(6).random((8, 15, 17, 3)).astype(np.float32)
    op = aug.RandomErasing(p=1.0, value=(0.25, 0.5, 0.75), count=2)
    run = _run(op, seed=4)
    params = run.sample(8, x.shape[1:])
    out = run.apply(x, None, params)
    y0, y1, x0, x1 = _box_regions(op, params, 15, 17, 8)
    mask = np.zeros((8, 15, 17), bool)
    for i in range(8):
        for k in range(2):
            mask[i, y0[i, k]:y1[i, k], x0[i, k]:x1[i, k]] = True
    assert mask.any()
    np.testing.assert_array_equal(out[mask], np.broadcast_to([0.25, 0.5, 0.75], out[mask].shape).astype(np.float32))
    np.testing.assert_array_equal(out[~mask], x[~mask])
    # the value is checked against the channels at the call
    with pytest.raises(aug.InputError, match="value"):
        run(np.zeros((2, 8, 8, 4), np.float32))


def test_erasing_rand_mode_one_colour_per_box():
    x = np.random.default_rng(7).random((200, 16, 16, 3)).astype(np.float32)
    op = aug.RandomErasing(p=1.0, mode="rand")
    assert not op.bounded
    run = _run(op, seed=5)
    params = run.sample(200, x.shape[1:])
    out = run.apply(x, None, params)
    y0, y1, x0, x1 = _box_regions(op, params, 16, 16, 200)
    colours = []
    for i in range(200):
        if y1[i, 0] == y0[i, 0] or x1[i, 0] == x0[i, 0]:
            np.testing.assert_array_equal(out[i], x[i])
            continue
        patch = out[i, y0[i, 0]:y1[i, 0], x0[i, 0]:x1[i, 0]]
        np.testing.assert_array_equal(patch, np.broadcast_to(params["0/color"][i, 0], patch.shape))
        colours.append(params["0/color"][i, 0])
    c = np.asarray(colours)
    assert len(c) > 150 and abs(c.mean()) < 0.15 and abs(c.std() - 1.0) < 0.15
    assert out.min() < 0.0 or out.max() > 1.0  # not clamped


def test_erasing_pixel_mode_noise_and_after_normalize():
    x = _images(64, 20, 20)
    op = aug.RandomErasing(p=1.0, mode="pixel", scale=(0.2, 0.4))
    run = aug.Pipeline([aug.Normalize(), op], seed=1).compile("numpy")
    params = run.sample(64, x.shape[1:])
    out = run.apply(x, None, params)
    assert out.dtype == np.float32
    y0, y1, x0, x1 = _box_regions(op, {k.replace("1/", "0/", 1): v for k, v in params.items()}, 20, 20, 64)
    from augspec.core.ops.erasing import pixel_noise
    from augspec.core.spec import Context

    B = run.backend
    noise = np.asarray(pixel_noise(B, params["1/noise_key"], Context(64, 20, 20, 3)))
    # each sample's noise is its own key's: the same key gives the same field, another key another
    again = np.asarray(pixel_noise(B, params["1/noise_key"][5:6], Context(1, 20, 20, 3)))
    np.testing.assert_array_equal(again[0], noise[5])
    assert np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1] < 0.05
    vals = []
    for i in range(64):
        patch = out[i, y0[i, 0]:y1[i, 0], x0[i, 0]:x1[i, 0]]
        np.testing.assert_array_equal(patch, noise[i, y0[i, 0]:y1[i, 0], x0[i, 0]:x1[i, 0]])
        vals.append(patch.reshape(-1))
    v = np.concatenate(vals)
    assert v.size > 5000 and abs(v.mean()) < 0.05 and abs(v.std() - 1.0) < 0.05
    # uint8 in, a constant fill in [0, 1]: bounded, uint8 out
    assert aug.RandomErasing().bounded and _run(aug.RandomErasing())(x).dtype == np.uint8
    assert not aug.RandomErasing(value=-1.0).bounded


def test_erasing_p():
    x = np.zeros((4000, 16, 16, 1), np.float32)
    op0 = aug.RandomErasing(p=0.0, value=1.0)
    np.testing.assert_array_equal(_run(op0)(x), x)
    frac = _erased(aug.RandomErasing(p=0.3, value=1.0, scale=(0.1, 0.3)), 4000, 16, 16)
    assert abs((frac > 0).mean() - 0.3) < 0.03
    assert aug.RandomErasing().p == 0.5


def test_erasing_eval_and_serialize():
    op = aug.RandomErasing(p=0.7, mode="rand", count=(2, 4), scale=(0.1, 0.2), ratio=(0.5, 2.0))
    assert aug.from_dict(aug.to_dict(aug.Pipeline([op]))).ops[0] == op
    assert op.eval_ops() == ()
    for o in (aug.Sharpness(0.3), aug.GaussianBlur((3, 5), sigma=(0.5, 1.0))):
        assert aug.from_dict(aug.to_dict(aug.Pipeline([o]))).ops[0] == o


# ----------------------------------------------------------- across backends


@pytest.mark.parametrize("op", [
    aug.Sharpness((0.0, 3.0), p=0.7),
    aug.GaussianBlur((3, 7), sigma=(0.2, 3.0), p=0.6),
    aug.RandomErasing(p=0.8, mode="rand", count=(1, 3)),
    aug.RandomErasing(p=1.0, mode="pixel", count=2, scale=(0.05, 0.6)),
    aug.RandomErasing(p=1.0, value=(0.2, 0.4, 0.6), ratio=(0.2, 5.0)),
])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_torch_agrees_with_numpy(op, layout):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).random((6, 13, 17, 3)).astype(np.float32)
    xin = x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    pipe = aug.Pipeline([aug.Normalize(), op], seed=3)
    ref = pipe.compile("numpy", layout=layout)
    run = pipe.compile("torch", layout=layout)
    params = ref.sample(6, xin.shape[1:])
    want = ref.apply(xin, None, params)
    got = run.apply(torch.from_numpy(xin), None, {k: torch.as_tensor(np.asarray(v)) for k, v in params.items()})
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- spec checks


@pytest.mark.parametrize("make, field", [
    (lambda: aug.Sharpness(factor=-0.5), "factor"),
    (lambda: aug.Sharpness(factor=1.5), "factor"),
    (lambda: aug.Sharpness(factor=(2.0, 1.0)), "factor"),
    (lambda: aug.Sharpness(p=1.5), "p"),
    (lambda: aug.GaussianBlur(kernel_size=4), "kernel_size"),
    (lambda: aug.GaussianBlur(kernel_size=0), "kernel_size"),
    (lambda: aug.GaussianBlur(kernel_size=(3, 6)), "kernel_size"),
    (lambda: aug.GaussianBlur(kernel_size=5000001), "kernel_size"),
    (lambda: aug.GaussianBlur(sigma=0.0), "sigma"),
    (lambda: aug.GaussianBlur(sigma=(-1.0, 2.0)), "sigma"),
    (lambda: aug.GaussianBlur(sigma=(2.0, 1.0)), "sigma"),
    (lambda: aug.RandomErasing(p=-0.1), "p"),
    (lambda: aug.RandomErasing(scale=(0.5, 2.0)), "scale"),
    (lambda: aug.RandomErasing(scale=(0.5, 0.1)), "scale"),
    (lambda: aug.RandomErasing(ratio=(0.0, 1.0)), "ratio"),
    (lambda: aug.RandomErasing(mode="random"), "mode"),
    (lambda: aug.RandomErasing(count=0), "count"),
    (lambda: aug.RandomErasing(count=(3, 1)), "count"),
    (lambda: aug.RandomErasing(count=(1, 1000)), "count"),
    (lambda: aug.RandomErasing(value=float("nan")), "value"),
])
def test_bad_fields_raise_naming_op_and_field(make, field):
    with pytest.raises(aug.SpecError) as e:
        make()
    msg = str(e.value)
    assert field in msg and msg.split(":")[0] in ("Sharpness", "GaussianBlur", "RandomErasing"), msg


@pytest.mark.parametrize("make", [
    lambda: aug.GaussianBlur(kernel_size=3.0),
    lambda: aug.GaussianBlur(kernel_size=(3, 5, 7)),
    lambda: aug.RandomErasing(count=(1, 2, 3)),
    lambda: aug.Sharpness(factor="big"),
])
def test_bad_types_raise_spec_type_error(make):
    with pytest.raises(aug.SpecTypeError):
        make()


def test_registered_and_exported():
    names = {o.name for o in aug.list_ops()}
    assert {"sharpness", "gaussian_blur", "random_erasing"} <= names
    for cls in (aug.Sharpness, aug.GaussianBlur, aug.RandomErasing):
        assert cls.samplewise and cls.__name__ in aug.__all__
        cls()  # builds with defaults
