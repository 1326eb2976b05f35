"""Unit tests of every op's maths on the NumPy reference backend.

Params are drawn with ``run.sample`` and, where a test needs a known value,
overridden before ``run.apply`` (randomness is data). Images are small so the
whole file runs in seconds.
"""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

import augspec as aug
from augspec.backends.numpy import NumpyBackend
from augspec.core.ops.color import LUMA
from augspec.core.ops.region import box_edges

RNG = np.random.default_rng(1234)
NP = NumpyBackend()


def compile_(ops, **kw):
    opts = {k: kw.pop(k) for k in ("layout", "fuse") if k in kw}
    return aug.Pipeline(ops, seed=kw.pop("seed", 0), **kw).compile("numpy", **opts)


def apply_with(ops, x, y=None, overrides=None, **kw):
    """Run ``ops`` on ``x`` with the drawn params, some of them replaced; returns (output, params)."""
    run = compile_(ops, **kw)
    params = run.sample(len(x), x.shape[1:])
    for k, v in (overrides or {}).items():
        assert k in params, k
        v = np.asarray(v)
        params[k] = np.broadcast_to(v, (len(x), *v.shape[1:]) if v.ndim else (len(x),)).astype(params[k].dtype)
    return run.apply(x, y, params), params


def rand_images(n=3, h=9, w=11, c=3, lo=0.0, hi=1.0, dtype=np.float32):
    return (lo + (hi - lo) * RNG.random((n, h, w, c))).astype(dtype)


def luma(x):
    return x @ np.asarray(LUMA, np.float64)


# ------------------------------------------------------------------ geometry


def test_rotation_sense_counter_clockwise_on_screen():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 4, 7, 0] = 1.0  # three pixels right of the centre pixel (4, 4)
    out, _ = apply_with([aug.Affine(rotate=(90, 90))], x)
    # counter-clockwise on screen: right of centre -> above centre
    assert np.unravel_index(np.argmax(out[0, :, :, 0]), (9, 9)) == (1, 4)
    assert out[0, 1, 4, 0] == pytest.approx(1.0, abs=1e-5)
    # the same as numpy's rot90 (which turns a displayed array counter-clockwise)
    x = rand_images(2, 8, 8, 3)
    out, _ = apply_with([aug.Affine(rotate=(90, 90))], x)
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
    out, _ = apply_with([aug.Affine(rotate=(-90, -90))], x)
    np.testing.assert_allclose(out, np.rot90(x, -1, axes=(1, 2)), atol=1e-5)
    out, _ = apply_with([aug.Affine(rotate=(180, 180))], x)
    np.testing.assert_allclose(out, x[:, ::-1, ::-1], atol=1e-5)


@pytest.mark.parametrize("h,w", [(9, 9), (7, 11), (8, 10)])
def test_rotation_scale_shear_about_the_centre(h, w):
    """The image centre is a fixed point: a symmetric blob there stays there."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    blob = np.exp(-(((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / 2.0)).astype(np.float32)[None, :, :, None]
    for op in (aug.Affine(rotate=(33, 33)), aug.Affine(scale=(1.7, 1.7)), aug.Affine(shear=(20, 20)),
               aug.Affine(shear=(0, 0), shear_y=(-25, -25)), aug.Affine(scale=(0.6, 0.6), scale_y=(1.3, 1.3))):
        out, _ = apply_with([op], blob)
        o = out[0, :, :, 0].astype(np.float64)
        cy = (o * yy).sum() / o.sum()
        cx = (o * xx).sum() / o.sum()
        assert abs(cx - w / 2) < 1e-3 and abs(cy - h / 2) < 1e-3, (op, cx, cy)


def _point_image(h, w, i, j):
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, i, j, 0] = 1.0
    return x


def test_scale_and_shear_move_points_as_documented():
    # 11x11, centre pixel (5, 5); nearest sampling so a point stays one pixel
    x = _point_image(11, 11, 5, 7)  # (dx, dy) = (2, 0)
    out, _ = apply_with([aug.Affine(scale=(2, 2), interpolation="nearest")], x)
    assert out[0, 5, 9, 0] == 1.0  # (4, 0): twice as far from the centre
    x = _point_image(11, 11, 7, 5)  # (dx, dy) = (0, 2)
    # Sh = [[1, tan(shear_x)], [tan(shear_y), 1]]: (0, 2) -> (2 tan 45, 2) = (2, 2)
    out, _ = apply_with([aug.Affine(shear=(45, 45), interpolation="nearest")], x)
    assert out[0, 7, 7, 0] == 1.0 and out.sum() == 1.0
    x = _point_image(11, 11, 5, 7)  # (2, 0) -> (2, 2 tan 45)
    out, _ = apply_with([aug.Affine(shear_y=(45, 45), interpolation="nearest")], x)
    assert out[0, 7, 7, 0] == 1.0 and out.sum() == 1.0
    # anisotropic scale
    x = _point_image(11, 11, 6, 6)  # (1, 1) -> (2, 1)... scale_x 2, scale_y 1
    out, _ = apply_with([aug.Affine(scale=(2, 2), scale_y=(1, 1), interpolation="nearest")], x)
    assert out[0, 6, 7, 0] == 1.0


def test_composition_of_geometric_ops_is_one_matrix_in_order():
    x = rand_images(2, 10, 10, 3)
    both, _ = apply_with([aug.Affine(rotate=(30, 30), scale=(1.2, 1.2))], x)
    seq, _ = apply_with([aug.Affine(scale=(1.2, 1.2)), aug.Affine(rotate=(30, 30))], x)
    np.testing.assert_allclose(both, seq, atol=1e-5)
    # translation is applied last: T(c + t) R S Sh T(-c)
    a, _ = apply_with([aug.Affine(rotate=(90, 90), translate=(0.2, 0.2), translate_y=(0.0, 0.0))], x)
    b, _ = apply_with([aug.Affine(rotate=(90, 90)), aug.Affine(translate=(0.2, 0.2), translate_y=(0.0, 0.0))], x)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("h,w,dx,dy", [(10, 7, 3, -2), (12, 12, -5, 4), (13, 11, 0, 1), (6, 9, 8, 0)])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_whole_pixel_translation_reproduces_input_pixels_exactly(h, w, dx, dy, layout):
    x = rand_images(2, h, w, 3)
    exp = np.zeros_like(x)
    src_y = slice(max(-dy, 0), h - max(dy, 0))
    src_x = slice(max(-dx, 0), w - max(dx, 0))
    dst_y = slice(max(dy, 0), h - max(-dy, 0))
    dst_x = slice(max(dx, 0), w - max(-dx, 0))
    if dx < w and dy < h:
        exp[:, dst_y, dst_x] = x[:, src_y, src_x]
    ops = [aug.Affine(translate=(dx / w, dx / w), translate_y=(dy / h, dy / h))]
    xin = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
    out, _ = apply_with(ops, xin, layout=layout)
    if layout == "NCHW":
        out = out.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(out, exp)


def test_identity_affine_and_nearest_reproduce_input_exactly():
    x = rand_images(3, 7, 9, 3)
    for op in (aug.Affine(), aug.Affine(interpolation="nearest")):
        out, _ = apply_with([op], x)
        np.testing.assert_array_equal(out, x)


def test_fill_value_outside_and_bilinear_blend_at_border():
    x = np.ones((1, 4, 4, 3), np.float32) * 0.5
    out, _ = apply_with([aug.Affine(translate=(0.5, 0.5), translate_y=(0, 0), fill=(0.1, 0.2, 0.3))], x)
    np.testing.assert_array_equal(out[0, :, :2], np.broadcast_to(np.float32([0.1, 0.2, 0.3]), (4, 2, 3)))
    np.testing.assert_array_equal(out[0, :, 2:], x[0, :, :2])
    # half a pixel: the first column blends the fill and the first input column 50/50
    out, _ = apply_with([aug.Affine(translate=(0.125, 0.125), translate_y=(0, 0))], x)
    np.testing.assert_allclose(out[0, :, 0], 0.25, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 1:], 0.5, atol=1e-6)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("d", [3, -3, 11, -14])
def test_fill_modes_nearest_and_reflect_on_whole_pixel_shifts(interpolation, d):
    """out[j] = x[j - d], the tap index mapped: "nearest" clamps it, "reflect" mirrors it
    about the edge (-1 reads 0, -2 reads 1, ...; period 2W)."""
    w = 14
    x = rand_images(2, 3, w, 3)
    src = np.arange(w) - d
    mirrored = np.mod(src, 2 * w)
    mirrored = np.where(mirrored >= w, 2 * w - 1 - mirrored, mirrored)
    for mode, idx in (("nearest", np.clip(src, 0, w - 1)), ("reflect", mirrored)):
        op = aug.Affine(translate=(d / w, d / w), translate_y=(0, 0), fill_mode=mode, interpolation=interpolation)
        out, _ = apply_with([op], x)
        np.testing.assert_array_equal(out, x[:, :, idx], err_msg=mode)


def test_fill_modes_blend_like_a_mirrored_or_clamped_image():
    """Half a pixel left of the image: "nearest" reads the edge pixel, "reflect" too (-0.5
    lies between -1 and 0, which both read pixel 0); 1.5 px: reflect blends pixels 0 and 1."""
    x = rand_images(1, 2, 5, 1)
    for t, mode, expect in ((0.5, "nearest", x[0, :, 0]), (0.5, "reflect", x[0, :, 0]),
                            (1.5, "nearest", x[0, :, 0]), (1.5, "reflect", 0.5 * (x[0, :, 0] + x[0, :, 1]))):
        op = aug.Affine(translate=(t / 5, t / 5), translate_y=(0, 0), fill_mode=mode)
        out, _ = apply_with([op], x)
        np.testing.assert_allclose(out[0, :, 0], expect, atol=1e-6, err_msg=f"{mode} {t}")


def test_geometric_ops_with_other_fill_modes_are_separate_warps():
    from augspec.core.plan import Plan

    plan = Plan([aug.Affine(rotate=5), aug.HorizontalFlip(), aug.Affine(rotate=5, fill_mode="reflect"),
                 aug.Affine(scale=0.1, fill_mode="reflect")])
    assert [(st.kind, len(st.leaves), st.fill_mode) for st in plan.stages] == [
        ("geometric", 2, "constant"), ("geometric", 2, "reflect")]
    with pytest.raises(ValueError, match=r"Affine.*fill_mode.*'wrap'"):
        aug.Affine(fill_mode="wrap")
    spec = aug.Affine(rotate=10, fill_mode="nearest")
    assert aug.Pipeline.from_dict(aug.Pipeline([spec]).to_dict()).ops[0] == spec


def test_flips_are_exact_and_twice_is_identity():
    x = rand_images(4, 5, 6, 3)
    out, _ = apply_with([aug.HorizontalFlip(p=1)], x)
    np.testing.assert_array_equal(out, x[:, :, ::-1])
    out, _ = apply_with([aug.VerticalFlip(p=1)], x)
    np.testing.assert_array_equal(out, x[:, ::-1])
    out, _ = apply_with([aug.HorizontalFlip(p=1), aug.HorizontalFlip(p=1)], x)
    np.testing.assert_array_equal(out, x)
    out, _ = apply_with([aug.VerticalFlip(p=1), aug.HorizontalFlip(p=1), aug.VerticalFlip(p=1)], x)
    np.testing.assert_array_equal(out, x[:, :, ::-1])
    # a flip in the warp (fused with an Affine) is exact too
    out, _ = apply_with([aug.HorizontalFlip(p=1), aug.Affine()], x)
    np.testing.assert_array_equal(out, x[:, :, ::-1])
    out, _ = apply_with([aug.VerticalFlip(p=1), aug.Affine(), aug.VerticalFlip(p=1)], x)
    np.testing.assert_array_equal(out, x)


def test_gated_flips_follow_their_per_sample_draws():
    x = rand_images(6, 5, 6, 3)
    g1 = np.array([1, 0, 1, 0, 1, 1], bool)
    g2 = np.array([1, 1, 0, 0, 0, 1], bool)
    out, _ = apply_with([aug.HorizontalFlip(p=0.5), aug.HorizontalFlip(p=0.5)], x,
                        overrides={"0/apply": g1, "1/apply": g2})
    for i in range(6):
        exp = x[i, :, ::-1] if g1[i] ^ g2[i] else x[i]
        np.testing.assert_array_equal(out[i], exp)
    out, p = apply_with([aug.HorizontalFlip(p=0.5), aug.VerticalFlip(p=1.0)], x, overrides={"0/apply": g1})
    for i in range(6):
        exp = x[i, ::-1, ::-1] if g1[i] else x[i, ::-1]
        np.testing.assert_array_equal(out[i], exp)


# ------------------------------------------------------------------- colour


def test_brightness_formula():
    x = rand_images(3, 4, 5, 3, 0.1, 0.6)
    b = np.float32([0.7, 1.0, 1.5])
    out, _ = apply_with([aug.Brightness(0.5)], x, overrides={"0/factor": b})
    np.testing.assert_allclose(out, x * b[:, None, None, None], atol=1e-6)


@pytest.mark.parametrize("c", [1, 3])
def test_contrast_blends_toward_the_mean_luma(c):
    x = rand_images(3, 4, 5, c, 0.2, 0.8)
    f = np.float32([0.5, 1.0, 1.2])
    out, _ = apply_with([aug.Contrast(0.5)], x, overrides={"0/factor": f})
    w = np.asarray(LUMA if c == 3 else (1.0,))
    m = (x.astype(np.float64) @ w).mean(axis=(1, 2))
    exp = f[:, None, None, None] * x + (1 - f[:, None, None, None]) * m[:, None, None, None]
    np.testing.assert_allclose(out, exp, atol=1e-6)
    # factor 0: the flat image of the mean luma
    out, _ = apply_with([aug.Contrast((0.0, 0.0))], x)
    np.testing.assert_allclose(out, np.broadcast_to(m[:, None, None, None], x.shape), atol=1e-6)


def test_saturation_blends_toward_grey():
    x = rand_images(3, 4, 5, 3, 0.2, 0.8)
    s = np.float32([0.0, 0.5, 1.3])
    out, _ = apply_with([aug.Saturation(0.5)], x, overrides={"0/factor": s})
    g = luma(x.astype(np.float64))[..., None]
    exp = s[:, None, None, None] * x + (1 - s[:, None, None, None]) * g
    np.testing.assert_allclose(out, exp, atol=1e-6)
    np.testing.assert_allclose(out[0], np.broadcast_to(g[0], (4, 5, 3)), atol=1e-6)  # s = 0: grey
    # saturation keeps luma
    np.testing.assert_allclose(luma(out), luma(x), atol=1e-5)


def test_hue_yiq_keeps_luma_and_composes_as_a_rotation():
    x = rand_images(4, 5, 6, 3, 0.35, 0.65)
    h = np.float32([0.0, 0.1, -0.25, 0.5])
    out, _ = apply_with([aug.Hue(0.5)], x, overrides={"0/shift": h})
    np.testing.assert_allclose(luma(out), luma(x), atol=1e-5)
    np.testing.assert_allclose(out[0], x[0], atol=1e-6)  # shift 0 is the identity
    assert np.abs(out[1:] - x[1:]).max() > 0.01
    # two shifts add up (a rotation about the grey axis)
    a, _ = apply_with([aug.Hue((0.1, 0.1)), aug.Hue((0.15, 0.15))], x)
    b, _ = apply_with([aug.Hue((0.25, 0.25))], x)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # +0.5 then +0.5 is a full turn
    a, _ = apply_with([aug.Hue((0.5, 0.5)), aug.Hue((0.5, 0.5))], x)
    np.testing.assert_allclose(a, x, atol=1e-5)
    # grey stays grey
    grey = np.full((1, 2, 2, 3), 0.4, np.float32)
    out, _ = apply_with([aug.Hue((0.3, 0.3))], grey)
    np.testing.assert_allclose(out, grey, atol=1e-6)


def test_hue_yiq_turns_the_way_hsv_does():
    x = np.float32([0.6, 0.3, 0.3]).reshape(1, 1, 1, 3)  # red, HSV hue 0
    out, _ = apply_with([aug.Hue((0.05, 0.05))], x)
    h = colorsys.rgb_to_hsv(*out[0, 0, 0])[0]
    assert 0.0 < h < 0.2  # toward yellow
    out, _ = apply_with([aug.Hue((-0.05, -0.05))], x)
    h = colorsys.rgb_to_hsv(*out[0, 0, 0])[0]
    assert 0.8 < h < 1.0  # toward magenta


def test_hue_hsv_mode_shifts_h_and_keeps_s_v():
    x = rand_images(3, 3, 4, 3, 0.05, 0.95)
    h = np.float32([0.1, -0.3, 0.45])
    out, _ = apply_with([aug.Hue(0.5, mode="hsv")], x, overrides={"0/shift": h})
    for i in range(3):
        for r in range(3):
            for c in range(4):
                h0, s0, v0 = colorsys.rgb_to_hsv(*x[i, r, c].astype(np.float64))
                h1, s1, v1 = colorsys.rgb_to_hsv(*out[i, r, c].astype(np.float64))
                assert s1 == pytest.approx(s0, abs=1e-5) and v1 == pytest.approx(v0, abs=1e-5)
                d = (h1 - (h0 + h[i])) % 1.0
                assert min(d, 1 - d) < 1e-4
    # the same op inside ColorJitter
    cj, _ = apply_with([aug.ColorJitter(hue=0.5, hue_mode="hsv")], x, overrides={"0/hue": h})
    np.testing.assert_allclose(cj, out, atol=1e-6)


def test_color_jitter_order_is_brightness_contrast_saturation_hue():
    x = rand_images(3, 4, 5, 3, 0.3, 0.6)
    b, c, s, h = (np.float32(v) for v in ([0.9, 1.1, 1.2], [0.8, 1.2, 0.9], [0.7, 1.3, 1.0], [0.05, -0.1, 0.0]))
    cj, _ = apply_with([aug.ColorJitter(0.4, 0.4, 0.4, 0.1)], x,
                       overrides={"0/brightness": b, "0/contrast": c, "0/saturation": s, "0/hue": h})
    seq, _ = apply_with([aug.Brightness(0.4), aug.Contrast(0.4), aug.Saturation(0.4), aug.Hue(0.1)], x,
                        overrides={"0/factor": b, "1/factor": c, "2/factor": s, "3/shift": h}, fuse=False)
    np.testing.assert_allclose(cj, seq, atol=1e-5)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_fused_colour_stage_equals_unfused(layout):
    ops = [aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.Contrast(0.5, p=0.5), aug.Brightness(0.3),
           aug.Hue(0.2, p=0.7), aug.Saturation(0.5), aug.Contrast(0.3)]
    x = rand_images(8, 6, 7, 3, 0.2, 0.8)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    fused = compile_(ops, layout=layout, seed=5)
    plain = compile_(ops, layout=layout, seed=5, fuse=False)
    assert len(fused.plan.stages) == 1
    a, b = fused(x), plain(x)
    np.testing.assert_allclose(a, b, atol=2e-6)
    assert np.abs(a - x).max() > 0.01


def test_colour_clamps_once_at_the_end_of_the_stage():
    x = np.full((1, 2, 2, 3), 0.8, np.float32)
    out, _ = apply_with([aug.Brightness((1.5, 1.5)), aug.Brightness((0.5, 0.5))], x)
    np.testing.assert_allclose(out, 0.6, atol=1e-6)  # no clamp to 1.0 between the two
    out, _ = apply_with([aug.Brightness((1.5, 1.5))], x)
    assert out.max() == 1.0


# -------------------------------------------------------------------- pixel


def test_gaussian_noise_statistics():
    x = np.full((8, 32, 32, 3), 0.5, np.float32)
    out, _ = apply_with([aug.GaussianNoise(std=0.08)], x, seed=3)
    d = out.astype(np.float64) - 0.5
    assert abs(d.mean()) < 0.003
    assert abs(d.std() - 0.08) < 0.003
    # per_channel=False: the same noise in every channel
    out, _ = apply_with([aug.GaussianNoise(std=0.08, per_channel=False)], x, seed=3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    # sigma drawn per sample from a range; mean shifts everything
    out, p = apply_with([aug.GaussianNoise(std=(0.01, 0.1), mean=0.1)], x, seed=4)
    d = out.astype(np.float64) - 0.5
    sig = p["0/sigma"]
    assert np.all((sig >= 0.01) & (sig <= 0.1))
    np.testing.assert_allclose(d.std(axis=(1, 2, 3)), sig, rtol=0.05)
    np.testing.assert_allclose(d.mean(axis=(1, 2, 3)), 0.1, atol=0.01)


def test_gaussian_noise_is_clamped_while_bounded():
    x = np.full((2, 16, 16, 3), 0.99, np.float32)
    out, _ = apply_with([aug.GaussianNoise(std=0.2)], x)
    assert out.max() <= 1.0 and out.min() >= 0.0
    out, _ = apply_with([aug.Rescale(1.0), aug.GaussianNoise(std=0.2)], x)  # unbounded after Rescale
    assert out.max() > 1.0


def test_rescale_and_normalize_formulas():
    x = rand_images(2, 3, 4, 3)
    out, _ = apply_with([aug.Rescale(2.0, -1.0)], x)
    np.testing.assert_allclose(out, 2 * x - 1, atol=1e-6)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out, _ = apply_with([aug.Normalize(mean, std)], x)
    np.testing.assert_allclose(out, (x - np.float32(mean)) / np.float32(std), rtol=1e-5, atol=1e-6)
    # a scalar mean/std applies to every channel; uint8 in, float32 out, on the [0, 1] scale
    xu = (x * 255).astype(np.uint8)
    out = compile_([aug.Normalize(0.5, 0.25)])(xu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (xu / 255.0 - 0.5) / 0.25, atol=1e-5)


def test_standardize_samplewise_matches_numpy():
    x = rand_images(3, 5, 6, 3)
    out, _ = apply_with([aug.Standardize(samplewise_center=True, samplewise_std=True, epsilon=1e-6)], x)
    xd = x.astype(np.float64)
    m = xd.mean(axis=(1, 2, 3), keepdims=True)
    s = xd.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (xd - m) / (s + 1e-6), atol=1e-5)
    out, _ = apply_with([aug.Standardize(samplewise_center=True)], x)
    np.testing.assert_allclose(out, xd - m, atol=1e-6)


def test_fit_learns_featurewise_mean_and_std():
    data = rand_images(40, 4, 5, 3, 0.1, 0.9)
    data[..., 1] *= 0.5
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True, featurewise_std=True)], seed=0)
    with pytest.raises(aug.SpecError, match="not fitted"):
        pipe.compile("numpy")
    pipe.fit(data)
    st = pipe.ops[0]
    np.testing.assert_allclose(st.mean, data.astype(np.float64).mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(st.std, data.astype(np.float64).std(axis=(0, 1, 2)), rtol=1e-6)
    out = pipe.compile("numpy")(data)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    # uint8 data is fitted on the [0, 1] scale; NCHW data by its channel axis
    du = (data * 255).round().astype(np.uint8)
    p2 = aug.Pipeline([aug.Standardize(featurewise_center=True)], seed=0).fit(du.transpose(0, 3, 1, 2), layout="NCHW")
    np.testing.assert_allclose(p2.ops[0].mean, (du / 255.0).mean(axis=(0, 1, 2)), rtol=1e-6)
    assert p2.ops[0].std is None


def test_fit_sees_the_deterministic_ops_before_it():
    data = rand_images(20, 4, 4, 3)
    pipe = aug.Pipeline([aug.Affine(rotate=30), aug.Normalize(0.5, 0.25),
                         aug.Standardize(featurewise_center=True)], seed=0).fit(data)
    np.testing.assert_allclose(pipe.ops[2].mean, ((data.astype(np.float64) - 0.5) / 0.25).mean(axis=(0, 1, 2)),
                               rtol=1e-5)


def test_zca_whitening_matches_numpy_and_whitens():
    n, h, w, c = 400, 3, 3, 2
    d = h * w * c
    q, _ = np.linalg.qr(RNG.standard_normal((d, d)))
    base = RNG.standard_normal((n, d)) * np.linspace(0.02, 0.1, d)  # correlated, well conditioned
    data = (0.5 + base @ q).reshape(n, h, w, c).astype(np.float32)
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True), aug.ZCAWhitening(epsilon=1e-6)], seed=0).fit(data)
    zca = pipe.ops[1]
    centred = data.astype(np.float64) - data.astype(np.float64).mean(axis=(0, 1, 2))
    flat = centred.reshape(n, -1)
    sigma = flat.T @ flat / n
    u, s, _ = np.linalg.svd(sigma)
    exp_m = u @ np.diag(1.0 / np.sqrt(s + 1e-6)) @ u.T
    np.testing.assert_allclose(zca.matrix, exp_m, rtol=1e-3, atol=1e-3 * np.abs(exp_m).max())
    out = pipe.compile("numpy")(data).reshape(n, -1).astype(np.float64)
    np.testing.assert_allclose(out, flat @ exp_m, atol=2e-3 * np.abs(flat @ exp_m).max())
    cov = out.T @ out / n
    np.testing.assert_allclose(cov, np.eye(h * w * c), atol=0.02)
    # wrong image size for a fitted matrix
    with pytest.raises(aug.InputError, match="ZCAWhitening"):
        pipe.compile("numpy")(data[:, :2])


# ------------------------------------------------------------------- region


def test_cutout_box_rule_and_fill():
    x = np.ones((3, 12, 12, 3), np.float32)
    # centre 0.5, size 0.25: e = 3 -> [6 - 1.5 + .5, 6 + 1.5 + .5) floored = [5, 8) (half up)
    cy = np.float32([[0.5], [0.0], [1.0]])
    cx = np.float32([[0.5], [0.25], [0.5]])
    sz = np.float32([[0.25], [0.5], [0.25]])
    out, _ = apply_with([aug.CutOut(size=(0.1, 0.5), fill=(0.1, 0.2, 0.3))], x,
                        overrides={"0/centre_y": cy, "0/centre_x": cx, "0/size": sz})
    erased = np.all(out == np.float32([0.1, 0.2, 0.3]), axis=-1)
    exp = np.zeros((3, 12, 12), bool)
    exp[0, 5:8, 5:8] = True
    exp[1, 0:3, 0:6] = True  # rows [-3+.5 -> -3 (clipped 0), 3+.5 -> 3); cols [3 - 3, 3 + 3)
    exp[2, 11:12, 5:8] = True  # rows [12 - 1.5 + .5 = 11, 14 -> 12)
    np.testing.assert_array_equal(erased, exp)
    np.testing.assert_array_equal(out[~exp], 1.0)


def test_cutout_several_holes_union_and_box_edges():
    x = np.ones((1, 10, 10, 1), np.float32)
    out, _ = apply_with([aug.CutOut(holes=2, size=0.2)], x,
                        overrides={"0/centre_y": np.float32([[0.2, 0.8]]), "0/centre_x": np.float32([[0.2, 0.5]])})
    exp = np.ones((10, 10), np.float32)
    exp[1:3, 1:3] = 0
    exp[7:9, 4:6] = 0
    np.testing.assert_array_equal(out[0, :, :, 0], exp)
    lo, hi = box_edges(NP, np.float32([0.5, 0.5, 0.0]), np.float32([3, 4, 5]), 10)
    np.testing.assert_array_equal(lo, [4, 3, 0])
    np.testing.assert_array_equal(hi, [7, 7, 3])


def test_cutout_drawn_sizes_in_range():
    x = np.ones((64, 20, 20, 1), np.float32)
    out, p = apply_with([aug.CutOut(size=(0.1, 0.5))], x)
    frac = (out == 0).mean(axis=(1, 2, 3))
    s = p["0/size"][:, 0]
    assert np.all((s >= 0.1) & (s <= 0.5))
    assert np.all(frac <= 0.5 ** 2 + 0.1)
    assert np.all(frac > 0)


# ---------------------------------------------------------------------- mix


def _id_images(n, h, w):
    """Sample i is the constant (i + 1) / (n + 1): the source of every pixel is readable."""
    return np.broadcast_to(((np.arange(n) + 1) / (n + 1)).astype(np.float32)[:, None, None, None],
                           (n, h, w, 3)).copy()


@pytest.mark.parametrize("h,w", [(16, 16), (13, 21), (7, 5)])
def test_cutmix_label_weight_equals_pasted_fraction_exactly(h, w):
    n = 32
    x = _id_images(n, h, w)
    y = np.arange(n)
    run = compile_([aug.CutMix(alpha=1.0)], num_classes=n, seed=11)
    params = run.sample(n, (h, w, 3))
    out, soft = run.apply(x, y, params)
    perm = params["0/partner"]
    lam = params["0/lam"]
    seen = 0
    for i in range(n):
        j = perm[i]
        if j == i:
            continue
        seen += 1
        from_partner = np.all(out[i] == x[j], axis=-1)
        from_self = np.all(out[i] == x[i], axis=-1)
        assert np.all(from_partner | from_self)
        count = int(from_partner.sum())
        lw = float(soft[i, j])
        assert round(lw * h * w) == count
        assert abs(lw - count / (h * w)) <= 1e-7
        assert soft[i, i] == pytest.approx(1 - lw, abs=1e-7)
        # the pasted region is a box
        rows, cols = np.nonzero(from_partner)
        if count:
            assert count == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        # before clipping and rounding the box is W sqrt(1 - lam) by H sqrt(1 - lam)
        ext_h, ext_w = h * np.sqrt(1 - lam[i]), w * np.sqrt(1 - lam[i])
        assert ext_h * ext_w / (h * w) == pytest.approx(1 - lam[i], rel=1e-5, abs=1e-6)
        if count:
            assert rows.max() - rows.min() + 1 <= ext_h + 1 and cols.max() - cols.min() + 1 <= ext_w + 1
    assert seen > n // 2
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)


def test_cutmix_box_unclipped_area_matches_one_minus_lambda():
    h = w = 200
    lam = np.float32([0.1, 0.36, 0.5, 0.75, 0.96])
    n = len(lam)
    x = _id_images(n, h, w)
    out, p = apply_with([aug.CutMix()], x, np.eye(n, dtype=np.float32),
                        overrides={"0/lam": lam, "0/centre_y": np.full(n, 0.5), "0/centre_x": np.full(n, 0.5),
                                   "0/partner": np.roll(np.arange(n), 1)})
    soft = out[1]
    for i in range(n):
        j = (i - 1) % n
        # centred boxes are not clipped: rounding moves each side by at most one pixel
        area = 1 - lam[i]
        side = h * np.sqrt(area)
        pasted = np.all(out[0][i] == x[j], axis=-1).sum()
        assert (side - 1) ** 2 <= pasted <= (side + 1) ** 2
        assert soft[i, j] == pytest.approx(pasted / (h * w), abs=1e-7)
        assert soft[i, j] == pytest.approx(area, abs=2 / h)


def test_cutmix_correct_lambda_false_keeps_drawn_lambda():
    n, h, w = 16, 10, 12
    x = _id_images(n, h, w)
    run = compile_([aug.CutMix(alpha=0.5, correct_lambda=False)], num_classes=n, seed=2)
    params = run.sample(n, (h, w, 3))
    _, soft = run.apply(x, np.arange(n), params)
    perm, lam = params["0/partner"], params["0/lam"]
    for i in range(n):
        if perm[i] != i:
            assert soft[i, perm[i]] == pytest.approx(1 - lam[i], abs=1e-6)
            assert soft[i, i] == pytest.approx(lam[i], abs=1e-6)


def test_mixup_is_the_convex_combination():
    n = 10
    x = rand_images(n, 4, 5, 3)
    y = RNG.random((n, 7)).astype(np.float32)
    y /= y.sum(1, keepdims=True)
    run = compile_([aug.MixUp(alpha=0.4)], seed=9)
    params = run.sample(n, x.shape[1:])
    out, soft = run.apply(x, y, params)
    lam = params["0/lam"][:, None]
    perm = params["0/partner"]
    assert sorted(perm) == list(range(n))
    assert np.all((lam >= 0) & (lam <= 1))
    np.testing.assert_allclose(out, lam[:, :, None, None] * x + (1 - lam[:, :, None, None]) * x[perm], atol=1e-6)
    np.testing.assert_allclose(soft, lam * y + (1 - lam) * y[perm], atol=1e-6)


def test_mix_per_sample_false_draws_one_lambda_and_box():
    n, h, w = 12, 10, 10
    x = _id_images(n, h, w)
    run = compile_([aug.MixUp(per_sample=False)], num_classes=n, seed=1)
    p = run.sample(n, (h, w, 3))
    assert np.all(p["0/lam"] == p["0/lam"][0])
    run = compile_([aug.CutMix(per_sample=False)], num_classes=n, seed=1)
    p = run.sample(n, (h, w, 3))
    for k in ("0/lam", "0/centre_x", "0/centre_y"):
        assert np.all(p[k] == p[k][0])
    out, _ = run.apply(x, np.arange(n), p)
    masks = [np.all(out[i] != x[i], axis=-1) for i in range(n) if p["0/partner"][i] != i]
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])
    # per sample (the default) draws differ
    run = compile_([aug.MixUp()], seed=1)
    p = run.sample(n, (h, w, 3))
    assert len(np.unique(p["0/lam"])) == n


def test_mix_batch_of_one_mixes_with_itself():
    x = rand_images(1, 6, 6, 3)
    for op in (aug.MixUp(0.4), aug.CutMix(1.0)):
        out, soft = compile_([op], num_classes=4)(x, np.array([2]))
        np.testing.assert_allclose(out, x, atol=1e-6)
        np.testing.assert_allclose(soft, [[0, 0, 1, 0]], atol=1e-6)


def test_mixup_gate_p():
    n = 200
    x = _id_images(n, 2, 2)
    run = compile_([aug.MixUp(p=0.3)], num_classes=n, seed=4)
    p = run.sample(n, (2, 2, 3))
    out, soft = run.apply(x, np.arange(n), p)
    off = ~p["0/apply"]
    np.testing.assert_array_equal(out[off], x[off])
    np.testing.assert_array_equal(soft[off], np.eye(n, dtype=np.float32)[off])
    assert 0.2 < p["0/apply"].mean() < 0.4


# ------------------------------------------------------------------- labels


def test_label_smoothing_formula():
    k, a = 10, 0.2
    out, soft = compile_([aug.LabelSmoothing(a)], num_classes=k)(rand_images(5, 2, 2, 3), np.arange(5))
    exp = np.eye(k)[:5] * (1 - a) + a / k
    np.testing.assert_allclose(soft, exp, atol=1e-7)
    assert soft.min() == pytest.approx(a / k) and soft.max() == pytest.approx(1 - a + a / k)
    # soft labels in: y -> (1 - a) y + a / K
    y = RNG.random((5, k)).astype(np.float32)
    y /= y.sum(1, keepdims=True)
    _, soft = compile_([aug.LabelSmoothing(a)], num_classes=k)(rand_images(5, 2, 2, 3), y)
    np.testing.assert_allclose(soft, (1 - a) * y + a / k, atol=1e-7)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)


def test_r2_style_mix_then_smoothing_rows_sum_to_one_and_min_alpha_over_k():
    k, a = 20, 0.1
    pipe = [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(a)]
    _, soft = compile_(pipe, num_classes=k, seed=3)(rand_images(16, 8, 8, 3), RNG.integers(0, k, 16))
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert soft.min() >= a / k - 1e-7
    np.testing.assert_allclose(soft.min(1), a / k, atol=1e-7)  # at most 2 of 20 classes are mixed


# ------------------------------------------------------------------ feature


def test_dropout_inverted_scaling():
    x = rand_images(4, 16, 16, 3, 0.5, 1.0)
    out, p = apply_with([aug.Dropout(rate=0.25)], x, seed=6)
    keep = p["0/keep"]
    np.testing.assert_allclose(out[keep], x[keep] / 0.75, rtol=1e-6)
    assert np.all(out[~keep] == 0)
    assert abs(keep.mean() - 0.75) < 0.03
    assert abs(out.mean() / x.mean() - 1) < 0.03
    # at inference: the identity
    run = compile_([aug.Dropout(rate=0.25)])
    np.testing.assert_array_equal(run(x, training=False), x)


def test_dropout_noise_shape():
    x = rand_images(6, 8, 8, 4, 0.5, 1.0)
    out, p = apply_with([aug.Dropout(rate=0.5, noise_shape=(None, 1, 1, None))], x, seed=1)
    assert p["0/keep"].shape == (6, 1, 1, 4)
    dropped = out == 0
    assert np.all(dropped == dropped[:, :1, :1, :])  # whole channels per sample
    out, p = apply_with([aug.Dropout(rate=0.5, noise_shape=(1, None, None, 1))], x, seed=1)
    assert p["0/keep"].shape == (6, 8, 8, 1)
    dropped = out == 0
    assert np.all(dropped == dropped[:1, :, :, :1])  # one spatial mask for the batch
    assert 0 < dropped.mean() < 1
    with pytest.raises(aug.SpecError, match="noise_shape"):
        compile_([aug.Dropout(noise_shape=(None, 1))])
    # NCHW: noise_shape is still read in NHWC order
    out, p = apply_with([aug.Dropout(rate=0.5, noise_shape=(None, 1, 1, None))], x.transpose(0, 3, 1, 2),
                        layout="NCHW", seed=1)
    dropped = out == 0
    assert np.all(dropped == dropped[:, :, :1, :1])


# --------------------------------------------------------------- containers


def test_one_of_gives_each_sample_exactly_one_op_with_the_weights():
    n = 600
    x = rand_images(n, 3, 4, 3, 0.2, 0.8)
    ops = [aug.OneOf([aug.HorizontalFlip(p=1), aug.VerticalFlip(p=1), aug.Brightness((0.5, 0.5))],
                     weights=(1, 2, 3))]
    run = compile_(ops, seed=8)
    params = run.sample(n, x.shape[1:])
    out = run.apply(x, None, params)
    choice = params["0/choice"]
    cands = [x[:, :, ::-1], x[:, ::-1], x * np.float32(0.5)]
    for k in range(3):
        sel = choice == k
        np.testing.assert_allclose(out[sel], cands[k][sel], atol=1e-7)
        for other in set(range(3)) - {k}:
            assert np.all(np.abs(out[sel] - cands[other][sel]).max(axis=(1, 2, 3)) > 0)
    counts = np.bincount(choice, minlength=3) / n
    np.testing.assert_allclose(counts, [1 / 6, 2 / 6, 3 / 6], atol=0.05)


def test_one_of_p_and_nested_random_apply():
    n = 400
    x = rand_images(n, 2, 3, 3, 0.2, 0.8)
    run = compile_([aug.OneOf([aug.Brightness((0.5, 0.5)), aug.RandomApply(aug.HorizontalFlip(p=1), p=0.5)],
                              p=0.6)], seed=2)
    params = run.sample(n, x.shape[1:])
    out = run.apply(x, None, params)
    on, ch, ra = params["0/apply"], params["0/choice"], params["0.1/apply"]
    exp = np.where((on & (ch == 0))[:, None, None, None], x * np.float32(0.5), x)
    exp = np.where((on & (ch == 1) & ra)[:, None, None, None], x[:, :, ::-1], exp)
    np.testing.assert_allclose(out, exp, atol=1e-7)
    assert 0.5 < on.mean() < 0.7


def test_random_apply_gates_its_ops_together():
    n = 500
    x = rand_images(n, 3, 4, 3, 0.2, 0.8)
    run = compile_([aug.RandomApply([aug.HorizontalFlip(p=1), aug.Brightness((0.5, 0.5))], p=0.3)], seed=3)
    params = run.sample(n, x.shape[1:])
    out = run.apply(x, None, params)
    g = params["0/apply"]
    np.testing.assert_allclose(out[g], x[g][:, :, ::-1] * np.float32(0.5), atol=1e-7)
    np.testing.assert_array_equal(out[~g], x[~g])
    assert abs(g.mean() - 0.3) < 0.06
    # p = 1: always, and no gate is drawn
    run = compile_([aug.RandomApply(aug.VerticalFlip(p=1), p=1.0)])
    assert run.sample(2, x.shape[1:]) == {}
    np.testing.assert_array_equal(run(x[:2]), x[:2, ::-1])


def test_op_p_gates_each_sample():
    n = 400
    x = rand_images(n, 3, 3, 3, 0.2, 0.8)
    run = compile_([aug.Brightness((0.5, 0.5), p=0.25)], seed=1)
    params = run.sample(n, x.shape[1:])
    out = run.apply(x, None, params)
    g = params["0/apply"]
    np.testing.assert_allclose(out[g], x[g] * np.float32(0.5), atol=1e-7)
    np.testing.assert_array_equal(out[~g], x[~g])
    assert abs(g.mean() - 0.25) < 0.06


# ------------------------------------------------------------ layouts, dtypes

FULL = [aug.Affine(rotate=20, translate=0.1, scale=0.1, shear=5), aug.HorizontalFlip(), aug.VerticalFlip(p=0.3),
        aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.Hue(0.1, mode="hsv", p=0.5), aug.GaussianNoise(0.03, p=0.5),
        aug.CutOut(holes=2, size=(0.1, 0.4), fill=(0.5, 0.4, 0.3)),
        aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.Normalize(), aug.Dropout(0.1),
        aug.LabelSmoothing(0.1)]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_layouts_nhwc_and_nchw_give_the_same_result(dtype):
    x = rand_images(6, 10, 12, 3)
    if dtype == np.uint8:
        x = (x * 255).astype(np.uint8)
    x = x.astype(dtype)
    y = np.arange(6) % 5
    a, ya = compile_(FULL, num_classes=5, seed=21)(x, y)
    b, yb = compile_(FULL, num_classes=5, seed=21, layout="NCHW")(x.transpose(0, 3, 1, 2), y)
    assert a.dtype == b.dtype == (np.float32 if dtype == np.uint8 else dtype)
    np.testing.assert_allclose(b.transpose(0, 2, 3, 1), a, atol=1e-5)
    np.testing.assert_allclose(ya, yb, atol=1e-7)


def test_uint8_rounds_half_up_and_stays_uint8():
    v = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    out = compile_([aug.Brightness((0.5, 0.5))])(v)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, (v.astype(int) + 1) // 2)  # k + 0.5 rounds up
    out = compile_([aug.HorizontalFlip(p=1), aug.Brightness((1.0, 1.0))])(v)
    np.testing.assert_array_equal(out, v[:, :, ::-1])
    out = compile_([aug.Brightness((3.0, 3.0))])(v)
    np.testing.assert_array_equal(out, np.minimum(v.astype(int) * 3, 255))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_are_kept(dtype):
    x = rand_images(2, 4, 4, 3).astype(dtype)
    out = compile_([aug.Affine(rotate=10), aug.Brightness(0.2)])(x)
    assert out.dtype == dtype


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_single_image_round_trip(layout):
    img = rand_images(1, 6, 7, 3)[0]
    if layout == "NCHW":
        img = img.transpose(2, 0, 1)
    run = compile_([aug.HorizontalFlip(p=1), aug.LabelSmoothing(0.1)], num_classes=4, layout=layout)
    out, soft = run(img, 2)
    assert out.shape == img.shape and soft.shape == (4,)
    np.testing.assert_array_equal(out, img[:, ::-1] if layout == "NHWC" else img[..., ::-1])
    np.testing.assert_allclose(soft, [0.025, 0.025, 0.925, 0.025], atol=1e-7)
    out = run(img)
    assert out.shape == img.shape


def test_empty_batch_returns_empty():
    for dtype, ops, exp, yshape in ((np.uint8, [aug.Affine(rotate=10), aug.MixUp()], np.uint8, (0, 7)),
                                    (np.uint8, [aug.Normalize()], np.float32, (0,)),
                                    (np.float64, [aug.CutMix(), aug.LabelSmoothing()], np.float64, (0, 7))):
        x = np.zeros((0, 8, 8, 3), dtype)
        out, soft = compile_(ops, num_classes=7)(x, np.zeros((0,), np.int64))
        assert out.shape == (0, 8, 8, 3) and out.dtype == exp
        assert soft.shape == yshape  # labels change only with a label-changing op


def test_labels_pass_through_without_label_ops():
    x = rand_images(3, 4, 4, 3)
    y = np.array([1, 0, 2])
    out, y2 = compile_([aug.HorizontalFlip()])(x, y)
    np.testing.assert_array_equal(y2, y)


# --------------------------------------------------------------- validation

BAD_SPECS = [
    (lambda: aug.Affine(rotate=400), "Affine", "rotate", "400", "360"),
    (lambda: aug.Affine(scale=(1.2, 0.8)), "Affine", "scale", "(1.2, 0.8)", "inverted"),
    (lambda: aug.Affine(translate=2), "Affine", "translate", "2", "[-1, 1]"),
    (lambda: aug.Affine(interpolation="cubic"), "Affine", "interpolation", "'cubic'", "bilinear"),
    (lambda: aug.HorizontalFlip(p=1.5), "HorizontalFlip", "p", "1.5", "[0.0, 1.0]"),
    (lambda: aug.Brightness(factor=-0.1), "Brightness", "factor", "-0.1", ">= 0"),
    (lambda: aug.Contrast(factor=(-1, 2)), "Contrast", "factor", "(-1, 2)", "[0.0, inf]"),
    (lambda: aug.Hue(shift=0.7), "Hue", "shift", "0.7", "[-0.5, 0.5]"),
    (lambda: aug.Hue(mode="hsl"), "Hue", "mode", "'hsl'", "yiq"),
    (lambda: aug.GaussianNoise(std=-1), "GaussianNoise", "std", "-1", "[0.0, 10.0]"),
    (lambda: aug.CutOut(holes=0), "CutOut", "holes", "0", "[1, 1000]"),
    (lambda: aug.CutOut(size=1.5), "CutOut", "size", "1.5", "[0.0, 1.0]"),
    (lambda: aug.MixUp(alpha=0), "MixUp", "alpha", "0", "(0.0, 1000.0]"),
    (lambda: aug.CutMix(alpha=-1), "CutMix", "alpha", "-1", "(0.0, 1000.0]"),
    (lambda: aug.LabelSmoothing(alpha=1.5), "LabelSmoothing", "alpha", "1.5", "[0.0, 1.0]"),
    (lambda: aug.Dropout(rate=1.0), "Dropout", "rate", "1.0", "[0.0, 1.0)"),
    (lambda: aug.Normalize(std=(0.2, 0.0, 0.2)), "Normalize", "std", "0.0", "> 0"),
    (lambda: aug.ZCAWhitening(epsilon=-1), "ZCAWhitening", "epsilon", "-1", "[0.0, 1000.0]"),
    (lambda: aug.OneOf([aug.MixUp()], weights=(1, 2)), "OneOf", "weights", "2 weights", "1 ops"),
    (lambda: aug.RandomApply(aug.HorizontalFlip(), p=2), "RandomApply", "p", "2", "[0.0, 1.0]"),
    (lambda: aug.Pipeline([aug.HorizontalFlip()], num_classes=0), "Pipeline", "num_classes", "0", "[1, 1048576]"),
]


@pytest.mark.parametrize("make,op,field,value,allowed", BAD_SPECS, ids=[f"{b[1]}.{b[2]}" for b in BAD_SPECS])
def test_bad_spec_values_name_op_field_value_and_range(make, op, field, value, allowed):
    with pytest.raises(ValueError) as e:
        make()
    msg = str(e.value)
    assert isinstance(e.value, aug.SpecError)
    for part in (op, field, value, allowed):
        assert part in msg, (part, msg)


@pytest.mark.parametrize("make", [lambda: aug.Affine(rotate="15"), lambda: aug.MixUp(per_sample=1),
                                  lambda: aug.HorizontalFlip(p=True), lambda: aug.CutOut(holes=1.5),
                                  lambda: aug.Pipeline([aug.HorizontalFlip, aug.VerticalFlip()]),
                                  lambda: aug.Affine(rotate=(1, 2, 3))])
def test_bad_spec_types(make):
    with pytest.raises(TypeError):
        make()


def test_spec_nan_is_refused_and_specs_are_frozen():
    with pytest.raises(aug.SpecError, match="NaN"):
        aug.Affine(rotate=float("nan"))
    op = aug.Affine(rotate=10)
    assert op.rotate == (-10.0, 10.0)
    with pytest.raises(AttributeError):
        op.rotate = 5
    assert aug.Affine(rotate=10) == op and hash(aug.Affine(rotate=10)) == hash(op)
