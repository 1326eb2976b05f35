"""Perspective and ElasticTransform: the homography in closed form, the displacement rule,
one resampling per geometric stage (fused with Affine, the flips and the crops), gates,
the planner's stage rule, and the general warp's projective and displacement paths.
(Agreement of every backend with NumPy is ``check_backend``'s, in test_conformance.py;
agreement with torchvision is test_perspective_torchvision.py's.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import augspec as aug
from augspec.backends.numpy import NumpyBackend
from augspec.core.errors import SpecError, SpecTypeError
from augspec.core.ops.elastic import blur_matrix, kernel_size, reflect_index
from augspec.core.ops.perspective import corner_bounds
from augspec.core.plan import affine_inverse, matrix_inverse
from augspec.core.resample import warp
from augspec.core.spec import Context, has_displacement

B = NumpyBackend()


def run_of(*ops, seed=0, backend="numpy"):
    return aug.Pipeline(list(ops), seed=seed).compile(backend)


def smooth(n, h, w, c=3, seed=0):
    """Float32 images of low-frequency content (resampling twice costs little)."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    out = np.empty((n, h, w, c), np.float32)
    for k in range(n):
        for ch in range(c):
            a, b, p = rng.uniform(0.5, 2.0, 3)
            out[k, ..., ch] = 0.5 + 0.4 * np.sin(a * 2 * np.pi * i / h + p) * np.cos(b * 2 * np.pi * j / w)
    return out


def ramps(n, h, w):
    """Channels: x of the pixel centre, y of the pixel centre, 1 (the coverage)."""
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    one = np.stack([j, i, np.ones_like(i)], axis=-1).astype(np.float32)
    return np.broadcast_to(one, (n, h, w, 3)).copy()


def random_offsets(rng, n, h, w, distortion):
    bh, bw = corner_bounds(None, distortion, h, w)
    return np.stack([rng.integers(0, bw, (n, 4)), rng.integers(0, bh, (n, 4))], axis=-1)


def homography64(src, dst):
    """The float64 3x3 homography taking the 4 points ``src`` to ``dst`` (h33 = 1), solved."""
    a, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    c = np.linalg.solve(np.asarray(a, np.float64), np.asarray(rhs, np.float64))
    return np.append(c, 1.0).reshape(3, 3)


def corners(h, w, o):
    start = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    end = [(o[0, 0], o[0, 1]), (w - 1 - o[1, 0], o[1, 1]), (w - 1 - o[2, 0], h - 1 - o[2, 1]),
           (o[3, 0], h - 1 - o[3, 1])]
    return start, end


def bilinear64(img, m_inv, fill=0.0):
    """Float64 reference: ``img`` (H, W, C) sampled at ``m_inv`` applied to pixel centres,
    bilinear, taps outside reading ``fill``."""
    h, w, c = img.shape
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    p = np.stack([j, i, np.ones_like(i)], axis=-1) @ m_inv.T
    u, v = p[..., 0] / p[..., 2] - 0.5, p[..., 1] / p[..., 2] - 0.5
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    out = np.zeros((h, w, c))
    for dv, wv in ((0, 1 - fv), (1, fv)):
        for du, wu in ((0, 1 - fu), (1, fu)):
            ui, vi = (u0 + du).astype(int), (v0 + dv).astype(int)
            ok = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
            g = np.where(ok[..., None], img[np.clip(vi, 0, h - 1), np.clip(ui, 0, w - 1)], fill)
            out += (wv * wu)[..., None] * g
    return out


# ------------------------------------------------------------------ specs
@pytest.mark.parametrize("make, error, field", [
    (lambda: aug.Perspective(distortion=1.5), SpecError, "distortion"),
    (lambda: aug.Perspective(distortion=-0.1), SpecError, "distortion"),
    (lambda: aug.Perspective(distortion="a"), SpecTypeError, "distortion"),
    (lambda: aug.Perspective(p=1.2), SpecError, "p"),
    (lambda: aug.Perspective(interpolation="bicubic"), SpecError, "interpolation"),
    (lambda: aug.Perspective(fill=()), SpecError, "fill"),
    (lambda: aug.ElasticTransform(alpha=-1.0), SpecError, "alpha"),
    (lambda: aug.ElasticTransform(alpha=float("nan")), SpecError, "alpha"),
    (lambda: aug.ElasticTransform(sigma=-0.5), SpecError, "sigma"),
    (lambda: aug.ElasticTransform(sigma=1e9), SpecError, "sigma"),
    (lambda: aug.ElasticTransform(p=-0.1), SpecError, "p"),
    (lambda: aug.ElasticTransform(interpolation="area"), SpecError, "interpolation"),
    (lambda: aug.ElasticTransform(fill="x"), SpecTypeError, "fill"),
])
def test_bad_fields_name_op_and_field(make, error, field):
    with pytest.raises(error) as e:
        make()
    name = "Perspective" if "Perspective" in str(e.value) else "ElasticTransform"
    assert str(e.value).startswith(f"{name}: {field}")


def test_specs_round_trip_and_register():
    pipe = aug.Pipeline([aug.Perspective(0.3, p=0.7, fill=(0.1, 0.2, 0.3)),
                         aug.ElasticTransform(alpha=20.0, sigma=3.0, interpolation="nearest")], seed=2)
    assert aug.Pipeline.from_dict(pipe.to_dict()).ops == pipe.ops
    names = {o.name for o in aug.list_ops()}
    assert {"perspective", "elastic_transform"} <= names
    assert aug.Perspective.projective and not aug.Affine.projective
    assert has_displacement(aug.ElasticTransform()) and not has_displacement(aug.Affine())
    # random geometric ops are skipped at evaluation
    assert aug.Perspective().eval_ops() == () and aug.ElasticTransform().eval_ops() == ()


# ------------------------------------------------------------ perspective
@pytest.mark.parametrize("h, w, distortion", [(20, 28, 0.5), (33, 17, 0.9), (64, 64, 0.25), (9, 9, 1.0)])
def test_matrix_is_the_corner_homography(h, w, distortion):
    rng = np.random.default_rng(h * w)
    op = aug.Perspective(distortion, p=1.0)
    off = random_offsets(rng, 6, h, w, distortion)
    params = op.params_for(off, h, w)
    assert np.array_equal(np.asarray(op.offsets(B, params, Context(6, h, w, 3))), off)
    m = np.asarray(op.matrix(B, params, Context(6, h, w, 3)), np.float64)
    assert m.shape == (6, 3, 3)
    for k in range(6):
        start, end = corners(h, w, off[k])
        if off[k, 0, 0] + off[k, 1, 0] >= w - 1 or off[k, 0, 1] + off[k, 3, 1] >= h - 1 or \
                off[k, 3, 0] + off[k, 2, 0] >= w - 1 or off[k, 1, 1] + off[k, 2, 1] >= h - 1:
            continue  # corners that meet or cross (distortion near 1): see the next test
        ref = homography64(start, end)
        got = m[k] / m[k, 2, 2]
        assert np.allclose(got, ref, rtol=1e-5, atol=1e-6 * max(h, w)), (got, ref)
        for s, e in zip(start, end):  # the corners go to the moved corners
            q = m[k] @ np.array([s[0], s[1], 1.0])
            assert np.allclose(q[:2] / q[2], e, atol=1e-3)


def test_a_degenerate_quad_gives_the_fill():
    """At distortion 1 two corners can meet: the map is singular and every pixel reads the fill."""
    h, w = 9, 9
    op = aug.Perspective(1.0, p=1.0, fill=0.5)
    off = np.array([[[4, 0], [4, 0], [0, 0], [0, 0]]])  # the top corners meet at x = 4
    params = op.params_for(off, h, w)
    m = np.asarray(op.matrix(B, params, Context(1, h, w, 3)), np.float64)
    assert abs(np.linalg.det(m[0])) < 1e-6
    x = smooth(1, h, w)
    with np.errstate(all="raise"):
        out = run_of(op).apply(x, None, {"0/corners": params["corners"]})
    assert np.array_equal(out, np.full_like(x, 0.5))


def test_a_quiet_draw_is_the_identity():
    op = aug.Perspective(0.5, p=1.0)
    params = op.params_for(np.zeros((2, 4, 2)), 10, 12)
    m = np.asarray(op.matrix(B, params, Context(2, 10, 12, 3)))
    assert np.array_equal(m, np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3)))
    x = smooth(2, 10, 12)
    assert np.array_equal(run_of(op).apply(x, None, {"0/corners": params["corners"]}), x)


def test_perspective_images_match_a_float64_reference():
    h, w = 24, 30
    rng = np.random.default_rng(3)
    op = aug.Perspective(0.6, p=1.0, fill=0.25)
    off = random_offsets(rng, 4, h, w, 0.6)
    x = rng.random((4, h, w, 3)).astype(np.float32)
    out = run_of(op).apply(x, None, {"0/corners": op.params_for(off, h, w)["corners"]})
    for k in range(4):
        start, end = corners(h, w, off[k])
        ref = bilinear64(x[k].astype(np.float64), np.linalg.inv(homography64(start, end)), fill=0.25)
        assert np.abs(out[k] - ref).max() < 1e-4


def test_params_for_refuses_moves_out_of_bounds():
    op = aug.Perspective(0.5)
    with pytest.raises(aug.InputError, match="whole numbers"):
        op.params_for(np.full((1, 4, 2), 9), 16, 16)  # bound 0.5 * 8 + 1 = 5
    with pytest.raises(aug.InputError, match="shape"):
        op.params_for(np.zeros((1, 4)), 16, 16)


def test_draws_stay_within_torchvisions_bounds():
    h, w = 30, 41
    run = run_of(aug.Perspective(0.7, p=1.0), seed=5)
    params = run.sample(500, (h, w, 3))
    o = np.asarray(aug.Perspective(0.7).offsets(B, {"corners": params["0/corners"]}, Context(500, h, w, 3)))
    bh, bw = corner_bounds(None, 0.7, h, w)
    assert o[..., 0].min() == 0 and o[..., 0].max() == bw - 1
    assert o[..., 1].min() == 0 and o[..., 1].max() == bh - 1
    assert np.array_equal(o, np.floor(o))


def _interior(out, tol=1e-6):
    return out[..., 2] >= 1.0 - tol


@pytest.mark.parametrize("order", ["perspective_last", "perspective_first"])
def test_one_stage_equals_the_ops_one_after_another(order):
    """Coordinates of the composed map: ramp images carry each pixel's source (x, y)."""
    h, w, n = 40, 48, 5
    persp = aug.Perspective(0.4, p=1.0)
    affine = aug.Affine(rotate=12, scale=0.1, translate=0.05, shear=5)
    flip = aug.HorizontalFlip(p=0.5)
    ops = [affine, flip, persp] if order == "perspective_last" else [persp, affine, flip]
    fused = run_of(*ops, seed=11)
    assert len(fused.plan.stages) == 1
    x = ramps(n, h, w)
    params = fused.sample(n, (h, w, 3))
    out = fused.apply(x, None, params)
    seq = x
    for k, op in enumerate(ops):
        pre = f"{k}/"
        own = {"0/" + key[len(pre):]: v for key, v in params.items() if key.startswith(pre)}
        seq = run_of(op).apply(seq, None, own)
    both = _interior(out) & _interior(seq)
    assert both.mean() > 0.4
    # perspective last: every step resamples a linear ramp, which bilinear reproduces
    tol = 2e-3 if order == "perspective_last" else 0.05
    err = np.abs(out[..., :2] - seq[..., :2])[both]
    assert err.max() < tol, err.max()
    # and the fused map is the composition of the float64 maps
    m = np.eye(3)[None].repeat(n, 0)
    for k, op in enumerate(ops):
        pre = f"{k}/"
        own = {key[len(pre):]: v for key, v in params.items() if key.startswith(pre)}
        mk = np.asarray(op.matrix(B, own, Context(n, h, w, 3)), np.float64)
        if f"{k}/apply" in params:
            mk = np.where(params[f"{k}/apply"][:, None, None], mk, np.eye(3))
        m = mk @ m
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    for s in range(n):
        q = np.stack([j, i, np.ones_like(i)], axis=-1) @ np.linalg.inv(m[s]).T
        src = q[..., :2] / q[..., 2:]
        inner = _interior(out[s])
        assert np.abs(out[s][inner][:, :2] - src[inner]).max() < 2e-3


def test_fused_with_random_resized_crop():
    h, w, n, size = 30, 36, 4, 40
    crop = aug.RandomResizedCrop(size, scale=(0.2, 0.4))  # enlarges: plain bilinear, exact on ramps
    persp = aug.Perspective(0.5, p=1.0)
    fused = run_of(crop, persp, seed=4)
    assert len(fused.plan.stages) == 1
    x = ramps(n, h, w)
    params = fused.sample(n, (h, w, 3))
    out = fused.apply(x, None, params)
    assert out.shape == (n, size, size, 3)
    mid = run_of(crop).apply(x, None, {k: v for k, v in params.items() if k.startswith("0/")})
    seq = run_of(persp).apply(mid, None, {"0/corners": params["1/corners"]})
    # the crop's taps outside the image are renormalised, not blended with the fill: keep away
    # from the image's border
    away = (out[..., 0] > 1.5) & (out[..., 0] < w - 1.5) & (out[..., 1] > 1.5) & (out[..., 1] < h - 1.5)
    both = _interior(out) & _interior(seq) & away
    assert both.mean() > 0.4
    assert np.abs(out[..., :2] - seq[..., :2])[both].max() < 2e-3
    # the perspective sees the crop's size: its corners are those of the 40 x 40 output
    off = np.asarray(persp.offsets(B, {"corners": params["1/corners"]}, Context(n, size, size, 3)))
    assert off.max() <= corner_bounds(None, 0.5, size, size)[0] - 1


def test_images_of_different_sizes():
    """Perspective before a crop sees each image's own size (its bounds are per sample)."""
    rng = np.random.default_rng(2)
    imgs = [rng.random((hh, ww, 3)).astype(np.float32) for hh, ww in ((20, 24), (15, 31), (26, 18))]
    run = run_of(aug.Perspective(0.5, p=1.0), aug.CenterCrop(12), seed=9)
    params = run.sample(3, (26, 31, 3))
    out = run.apply(imgs, None, params)
    assert out.shape == (3, 12, 12, 3)
    for k, img in enumerate(imgs):
        alone = run.apply(img[None], None, {key: v[k:k + 1] for key, v in params.items()})
        assert np.abs(alone[0] - out[k]).max() < 1e-5


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("ops", [
    lambda: [aug.Perspective(0.5, p=0.5)],
    lambda: [aug.Affine(rotate=20, p=0.5), aug.Perspective(0.5, p=0.5), aug.VerticalFlip(p=0.5)],
    lambda: [aug.Perspective(0.5, p=0.5), aug.ElasticTransform(alpha=30.0, sigma=3.0, p=0.5)],
    lambda: [aug.ElasticTransform(alpha=30.0, sigma=3.0, p=0.5)],
])
def test_gated_off_samples_are_exactly_unchanged(backend, ops):
    if backend == "torch":
        torch = pytest.importorskip("torch")
    ops = ops()
    run = run_of(*ops, seed=1, backend=backend)
    n, h, w = 16, 18, 22
    x = np.random.default_rng(0).random((n, h, w, 3)).astype(np.float32)
    params = run.sample(n, (h, w, 3) if backend == "numpy" else (3, h, w))
    if backend == "torch":
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        out = run.apply(xt, None, params).numpy().transpose(0, 2, 3, 1)
        params = {k: v.numpy() for k, v in params.items()}
    else:
        out = run.apply(x, None, params)
    off = np.ones(n, bool)
    for k in range(len(ops)):
        off &= ~np.asarray(params[f"{k}/apply"])
    on = ~off
    assert off.any() and on.any()
    assert np.array_equal(out[off], x[off])
    assert not np.array_equal(out[on], x[on])


# ------------------------------------------------------------- elastic
def test_elastic_with_alpha_zero_is_the_identity():
    x = np.random.default_rng(1).random((3, 15, 19, 3)).astype(np.float32)
    for backend in ("numpy", "torch"):
        if backend == "torch":
            torch = pytest.importorskip("torch")
            xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            out = run_of(aug.ElasticTransform(alpha=0.0), backend="torch")(xt).numpy().transpose(0, 2, 3, 1)
        else:
            out = run_of(aug.ElasticTransform(alpha=0.0))(x)
        assert np.array_equal(out, x)


def test_blur_matrix_is_torchvisions_kernel_with_reflection():
    assert kernel_size(5.0) == 41 and kernel_size(0.5) == 5 and kernel_size(0.3) == 3 and kernel_size(1.0) == 9
    assert list(reflect_index(np.arange(-3, 9), 5)) == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]
    assert list(reflect_index(np.arange(-2, 3), 1)) == [0] * 5
    for n, sigma in ((7, 1.0), (30, 2.5), (12, 5.0), (1, 3.0)):
        gt = blur_matrix(n, sigma).astype(np.float64)
        assert np.allclose(gt.sum(axis=0), 1.0, atol=1e-6)  # each output's weights sum to 1
        v = np.random.default_rng(n).random(n)
        k = kernel_size(sigma)
        r = k // 2
        kern = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        kern /= kern.sum()
        ref = np.array([sum(kern[t + r] * v[reflect_index(np.array(o + t), n)] for t in range(-r, r + 1))
                        for o in range(n)])
        assert np.allclose(v @ gt, ref, atol=1e-6)


def _displacement(op, n=6, h=64, w=64, seed=0):
    run = run_of(op, seed=seed)
    params = run.sample(n, (h, w, 3))
    return np.asarray(op.displacement(B, {"field": params["0/field"]}, Context(n, h, w, 3)), np.float64)


def test_displacement_statistics():
    d5 = _displacement(aug.ElasticTransform(alpha=10.0, sigma=5.0))
    assert d5.shape == (6, 64, 64, 2)
    d0 = _displacement(aug.ElasticTransform(alpha=10.0, sigma=0.0))

    def corr(d, axis):
        a = d[..., 0]
        b = np.roll(a, 1, axis=axis)
        return np.corrcoef(a[:, 1:, 1:].ravel(), b[:, 1:, 1:].ravel())[0, 1]

    assert corr(d5, 1) > 0.95 and corr(d5, 2) > 0.95  # smooth: neighbours move together
    assert abs(corr(d0, 1)) < 0.05  # unsmoothed: independent
    # unsmoothed: uniform in [-alpha / 2, alpha / 2]
    assert np.abs(d0).max() <= 5.0 and np.abs(d0).max() > 4.9
    assert abs(d0.std() - 5.0 / np.sqrt(3.0)) < 0.05
    # the magnitude scales with alpha (same draws)
    d20 = _displacement(aug.ElasticTransform(alpha=20.0, sigma=5.0))
    assert np.allclose(d20, 2.0 * d5, rtol=1e-5, atol=1e-6)
    assert abs(d5[..., 0].mean()) < 0.1 and abs(d5[..., 1].mean()) < 0.1
    # the x and y fields are independent
    assert abs(np.corrcoef(d5[..., 0].ravel(), d5[..., 1].ravel())[0, 1]) < 0.1


def test_elastic_moves_pixels_by_its_displacement():
    """On ramp images the output holds each pixel's source: p + d(p)."""
    h, w, n = 32, 40, 3
    op = aug.ElasticTransform(alpha=8.0, sigma=4.0)
    run = run_of(op, seed=3)
    params = run.sample(n, (h, w, 3))
    out = run.apply(ramps(n, h, w), None, params)
    d = np.asarray(op.displacement(B, {"field": params["0/field"]}, Context(n, h, w, 3)))
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    inner = _interior(out)
    assert inner.mean() > 0.7
    assert np.abs(out[..., 0] - (j + d[..., 0]))[inner].max() < 1e-3
    assert np.abs(out[..., 1] - (i + d[..., 1]))[inner].max() < 1e-3


def test_displacement_ends_the_stage():
    def stages(*ops):
        return [[type(lf.op).__name__ for lf in st.leaves] for st in run_of(*ops).plan.stages]

    e = aug.ElasticTransform()
    assert stages(e, aug.Affine(rotate=5)) == [["ElasticTransform"], ["Affine"]]
    assert stages(aug.Affine(rotate=5), aug.HorizontalFlip(), e) == [["Affine", "HorizontalFlip", "ElasticTransform"]]
    assert stages(e, e) == [["ElasticTransform"], ["ElasticTransform"]]
    assert stages(aug.RandomResizedCrop(8), aug.Perspective(p=1.0), e, aug.VerticalFlip()) == [
        ["RandomResizedCrop", "Perspective", "ElasticTransform"], ["VerticalFlip"]]
    # a gated warp keeps out of a stage that sets the size (the crop keeps its separable resize)
    assert stages(aug.RandomResizedCrop(8), aug.Perspective(p=0.5), e) == [
        ["RandomResizedCrop"], ["Perspective", "ElasticTransform"]]


def test_elastic_after_a_crop_uses_the_crop_size():
    run = run_of(aug.RandomResizedCrop((10, 14)), aug.ElasticTransform(alpha=5.0, sigma=2.0), seed=1)
    params = run.sample(2, (30, 31, 3))
    assert params["1/field"].shape == (2, 10, 14, 2)
    assert run.apply(np.random.default_rng(0).random((2, 30, 31, 3)).astype(np.float32), None,
                     params).shape == (2, 10, 14, 3)


# ------------------------------------------------------------- the engine
def test_identity_warp_returns_the_pixels():
    x = np.random.default_rng(4).random((2, 9, 11, 3)).astype(np.float32)
    x[0, 3, 4, 1] = 1e30  # large values survive too (weights of exactly 0 and 1)
    eye = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3)).copy()
    for mode in ("constant", "nearest", "reflect"):
        for interp in ("bilinear", "nearest"):
            for projective, disp in ((False, None), (True, None), (True, np.zeros((2, 9, 11, 2), np.float32))):
                out = warp(B, x, eye, (9, 11), (9, 11), interp, (0.5,), mode, projective, disp)
                assert np.array_equal(out, x), (mode, interp, projective)


def test_matrix_inverse_in_closed_form():
    rng = np.random.default_rng(0)
    m = (np.eye(3) + 0.3 * rng.standard_normal((50, 3, 3))).astype(np.float32)
    got = np.asarray(matrix_inverse(B, m), np.float64)
    assert np.allclose(got, np.linalg.inv(m.astype(np.float64)), rtol=1e-4, atol=1e-4)
    aff = m.copy()
    aff[:, 2] = (0, 0, 1)
    assert np.allclose(matrix_inverse(B, aff), affine_inverse(B, aff), rtol=1e-5, atol=1e-6)
    eye = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3))
    assert np.array_equal(matrix_inverse(B, eye), eye)
    singular = np.zeros((1, 3, 3), np.float32)
    singular[0, 0, 0] = 1.0
    with np.errstate(all="raise"):
        assert np.array_equal(matrix_inverse(B, singular), np.zeros((1, 3, 3), np.float32))


def test_points_at_the_horizon_read_the_fill():
    """An inverse whose third coordinate crosses 0 inside the image: no NaN, no warning, fill there."""
    h, w = 8, 10
    x = np.random.default_rng(0).random((1, h, w, 3)).astype(np.float32)
    inv = np.array([[[1, 0, 0], [0, 1, 0], [1.0, 0, -4.5]]], np.float32)  # Z = x - 4.5: 0 in column 4
    for mode in ("constant", "nearest", "reflect"):
        for interp in ("bilinear", "nearest"):
            with np.errstate(all="raise"), warnings.catch_warnings():
                warnings.simplefilter("error")
                out = warp(B, x, inv, (h, w), (h, w), interp, (0.25,), mode, True)
            assert np.isfinite(out).all()
            assert np.array_equal(out[0, :, 4], np.full((h, 3), 0.25, np.float32))  # Z = 0: the fill
            assert np.allclose(out[0, :, 5], x[0, :, 5], atol=1e-6)  # Z = 1: the pixel itself
    nan = np.full((1, 3, 3), np.nan, np.float32)
    with np.errstate(all="raise"):
        out = warp(B, x, nan, (h, w), (h, w), "bilinear", (0.75,), "reflect", True)
    assert np.array_equal(out, np.full_like(x, 0.75))


def test_torch_agrees_with_numpy_on_a_fused_stage():
    torch = pytest.importorskip("torch")
    ops = [aug.RandomResizedCrop(20, scale=(0.5, 1.0)), aug.Affine(rotate=15, p=0.5), aug.Perspective(0.5),
           aug.HorizontalFlip(), aug.ElasticTransform(alpha=20.0, sigma=3.0, p=0.7), aug.Perspective(0.3, p=1.0)]
    x = smooth(6, 26, 30, seed=3)
    ref = run_of(*ops, seed=2)
    tor = run_of(*ops, seed=2, backend="torch")
    params = ref.sample(6, (26, 30, 3))
    want = ref.apply(x, None, params)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    got = tor.apply(xt, None, {k: torch.from_numpy(np.asarray(v)) for k, v in params.items()})
    got = got.numpy().transpose(0, 2, 3, 1)
    assert got.shape == want.shape == (6, 20, 20, 3)
    assert np.abs(got - want)[:, 1:-1, 1:-1].max() < 1e-4


def test_albumentations_runs_the_fused_stage_per_image():
    pytest.importorskip("albumentations")
    ops = [aug.Affine(rotate=10), aug.Perspective(0.5, p=1.0), aug.ElasticTransform(alpha=10.0, sigma=2.0)]
    pipe = aug.Pipeline(ops, seed=3)
    ref = pipe.compile("numpy")
    alb = pipe.compile("albumentations", exact_draws=True)
    x = (smooth(3, 20, 24, seed=1) * 255).astype(np.uint8)
    params = ref.sample(3, (20, 24, 3))
    want = ref.apply(x, None, params)
    got = alb.apply(x, None, params)
    assert np.abs(got.astype(int) - want.astype(int))[:, 1:-1, 1:-1].max() <= 1
