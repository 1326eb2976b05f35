"""The albumentations backend against the NumPy reference (same key, or ranges pinned
to one value), its dtype rules, its batch-level part and its data-loader behaviour."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("albumentations")
cv2 = pytest.importorskip("cv2")

import augspec as aug  # noqa: E402
import augspec.backends.albumentations as alb  # noqa: E402
from augspec.backends.albumentations import AlbumentationsRun, opencv_matrix, split_pipeline  # noqa: E402
from augspec.core.registry import list_ops  # noqa: E402
from augspec.plugins import manager  # noqa: E402
from augspec.recipes import IMAGENET_STD, r2  # noqa: E402

DEFER = {"defer_batch_ops": True}  # pipelines with batch ops whose batch part the test runs itself


def smooth_image(h: int = 48, w: int = 64, c: int = 3, seed: int = 0) -> np.ndarray:
    """A natural-looking uint8 image (blurred noise stretched to the full range)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (h, w, c)).astype(np.float32)
    x = cv2.GaussianBlur(x, (0, 0), 2.0).reshape(h, w, c)
    x = (x - x.min()) / (x.max() - x.min()) * 255.0
    return np.floor(x + 0.5).astype(np.uint8)


def both(ops, seed=0, **kw):
    pipe = aug.Pipeline(ops, seed=seed, **kw)
    return pipe.compile("albumentations"), pipe.compile("numpy")


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference in uint8 levels."""
    if a.dtype == np.uint8:
        return np.abs(a.astype(np.int32) - b.astype(np.int32)).astype(np.float64)
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) * 255.0


PINNED = {
    "rotate 10": [aug.Affine(rotate=(10, 10))],
    "rotate -10": [aug.Affine(rotate=(-10, -10))],
    "translate 0.1": [aug.Affine(translate=(0.1, 0.1))],
    "scale 1.2": [aug.Affine(scale=(1.2, 1.2))],
    "scale 0.8 x 1.1": [aug.Affine(scale=(0.8, 0.8), scale_y=(1.1, 1.1))],
    "shear 5": [aug.Affine(shear=(5, 5))],
    "shear_y 5": [aug.Affine(shear_y=(5, 5))],
    "all affine": [aug.Affine(rotate=(10, 10), translate=(0.1, 0.1), scale=(1.2, 1.2), shear=(5, 5))],
    "rotate 30, edge": [aug.Affine(rotate=(30, 30), scale=(0.7, 0.7), fill_mode="nearest")],
    "translate 0.4, reflect": [aug.Affine(rotate=(20, 20), translate=(0.4, 0.4), scale=(0.6, 0.6), fill_mode="reflect")],
    "affine + flip": [aug.Affine(rotate=(10, 10)), aug.HorizontalFlip(p=1.0)],
    "brightness 1.2": [aug.Brightness((1.2, 1.2))],
    "contrast 0.7": [aug.Contrast((0.7, 0.7))],
    "saturation 1.3": [aug.Saturation((1.3, 1.3))],
    "hue 0.1 yiq": [aug.Hue((0.1, 0.1))],
    "hue 0.1 hsv": [aug.Hue((0.1, 0.1), mode="hsv")],
    "color jitter": [aug.ColorJitter(brightness=(1.2, 1.2), contrast=(0.8, 0.8), saturation=(1.3, 1.3),
                                      hue=(0.05, 0.05))],
    "cutout 0.3": [aug.CutOut(size=(0.3, 0.3), fill=0.5)],
}


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_ranges_agree_with_numpy(name):
    img = smooth_image()
    ra, rn = both(PINNED[name])
    a, b = ra(img), rn(img)
    assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape
    d = levels(a, b)
    # OpenCV quantises sample positions to 1/32 pixel and rounds in fixed point: a level or two
    assert d.max() <= 2.0, (name, d.max())
    assert d.mean() <= 0.3, (name, d.mean())


@pytest.mark.parametrize("name", ["rotate 10", "all affine", "color jitter", "shear 5"])
def test_pinned_ranges_float_input(name):
    img = smooth_image().astype(np.float32) / 255.0
    ra, rn = both(PINNED[name])
    a, b = ra(img), rn(img)
    assert a.dtype == np.float32
    d = levels(a, b)
    assert d.max() <= 1.5 and d.mean() <= 0.1, (name, d.max(), d.mean())


def test_flips_and_whole_pixel_shifts_are_exact():
    img = smooth_image(seed=3)
    for ops in ([aug.HorizontalFlip(p=1.0)], [aug.VerticalFlip(p=1.0)],
                [aug.Affine(translate=(5 / 64, 5 / 64), translate_y=(-3 / 48, -3 / 48))],
                [aug.HorizontalFlip(p=1.0), aug.VerticalFlip(p=1.0)]):
        ra, rn = both(ops)
        np.testing.assert_array_equal(ra(img), rn(img))


def test_same_key_same_draws_as_numpy_r2_prefix():
    """Unpinned R2 (per-sample part): the same seed gives the same draws, so the
    outputs agree image by image up to OpenCV's rounding."""
    pipe = r2(num_classes=10)
    prefix, suffix = split_pipeline(pipe.ops)
    assert len(prefix) == 5 and len(suffix) == 2
    ra = pipe.compile("albumentations", **DEFER)
    rn = aug.Pipeline(list(prefix), seed=0).compile("numpy")
    std = np.asarray(IMAGENET_STD, np.float32)
    for step in range(6):
        img = smooth_image(seed=step)
        a, b = ra(img), rn(img[None])[0]
        assert a.dtype == np.float32
        d = np.abs(a - b) * std * 255.0  # back to uint8 levels
        assert d.max() <= 3.0 and d.mean() <= 0.5, (step, d.max(), d.mean())


def test_batch_call_equals_numpy_batch():
    pipe = aug.Pipeline([aug.Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5), aug.HorizontalFlip(),
                         aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.CutOut(size=(0.1, 0.5))], seed=7)
    x = np.stack([smooth_image(seed=s) for s in range(5)])
    ra, rn = pipe.compile("albumentations"), pipe.compile("numpy")
    params = rn.sample(5, x.shape[1:])
    a, b = ra.apply(x, None, params), rn.apply(x, None, params)
    d = levels(a, b)
    assert a.shape == x.shape and d.max() <= 3.0 and d.mean() <= 0.3
    # the keyed call draws what NumPy draws at the same step
    ra2 = pipe.compile("albumentations")
    np.testing.assert_array_equal(ra2(x), a)


def test_keyed_batch_call_matches_numpy_params():
    pipe = aug.Pipeline([aug.Affine(rotate=30), aug.CutOut(size=0.3)], seed=11)
    x = np.stack([smooth_image(seed=s) for s in range(3)])
    ra, rn = pipe.compile("albumentations"), pipe.compile("numpy")
    a, b = ra(x), rn(x)
    assert levels(a, b).max() <= 3.0


def test_fit_ops_and_noise_run_numpy_kernels():
    x = np.stack([smooth_image(seed=s) for s in range(8)])
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True, featurewise_std=True)], seed=0).fit(x)
    ra, rn = pipe.compile("albumentations"), pipe.compile("numpy")
    np.testing.assert_allclose(ra(x[0]), rn(x[0]), rtol=1e-5, atol=1e-5)
    zca = aug.Pipeline([aug.Standardize(featurewise_center=True), aug.ZCAWhitening(epsilon=0.1)], seed=0)
    small = x[:, :8, :8]
    zca.fit(small)
    np.testing.assert_allclose(zca.compile("albumentations")(small[1]), zca.compile("numpy")(small[1]), atol=1e-4)
    # exact_draws: per-pixel noise bit-identical to NumPy's generator
    noise = aug.Pipeline([aug.GaussianNoise(std=(0.05, 0.1))], seed=3)
    a = noise.compile("albumentations", exact_draws=True)(x[0])
    b = noise.compile("numpy")(x[0])
    np.testing.assert_array_equal(a, b)
    fast = noise.compile("albumentations")(x[0])  # PCG64 noise: same law, other values
    resid = fast.astype(np.float64) - x[0]
    interior = (x[0] > 40) & (x[0] < 215)
    assert 0.04 * 255 < resid[interior].std() < 0.11 * 255


def test_dtypes_shapes_and_no_aliasing():
    img = smooth_image()
    ra, _ = both([aug.HorizontalFlip(p=0.0)])
    out = ra(img)
    assert out.dtype == np.uint8 and not np.shares_memory(out, img)
    np.testing.assert_array_equal(out, img)
    before = img.copy()
    ra2, rn2 = both([aug.Affine(rotate=20), aug.ColorJitter(0.3, 0.3), aug.Normalize()])
    assert ra2(img).dtype == np.float32
    np.testing.assert_array_equal(img, before)
    f64 = img.astype(np.float64) / 255
    ra3, rn3 = both([aug.Affine(rotate=20), aug.Brightness(0.3)])
    o = ra3(f64)
    assert o.dtype == np.float64 and o.shape == f64.shape
    grey = smooth_image(c=1)
    o1, o2 = both([aug.Affine(rotate=(12, 12)), aug.Contrast((0.5, 0.5)), aug.CutOut(size=(0.2, 0.2))])
    a, b = o1(grey), o2(grey)
    assert a.shape == grey.shape and levels(a, b).max() <= 2.0
    empty = ra(np.zeros((0, 8, 8, 3), np.uint8))
    assert empty.shape == (0, 8, 8, 3)


def test_reproducible_steps_and_workers():
    img = smooth_image()
    pipe = aug.Pipeline([aug.Affine(rotate=30, translate=0.1)], seed=5)
    r1, r2_ = pipe.compile("albumentations"), pipe.compile("albumentations")
    a0, a1 = r1(img), r1(img)
    np.testing.assert_array_equal(a0, r2_(img))
    assert not np.array_equal(a0, a1)
    r3 = pipe.compile("albumentations")
    r3.set_state(worker=1)
    assert not np.array_equal(r3(img), a0)
    r1.set_epoch(0)
    np.testing.assert_array_equal(r1(img), a0)


def test_torch_worker_id_is_picked_up(monkeypatch):
    torch = pytest.importorskip("torch")
    img = smooth_image()
    pipe = aug.Pipeline([aug.Affine(rotate=30)], seed=5)
    plain = pipe.compile("albumentations")(img)

    class Info:
        id = 3

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info())
    run = pipe.compile("albumentations")
    out = run(img)
    # worker id + 1 (was the raw id, so worker 0 repeated the main process's draws)
    assert run.worker == 4 and run.state["worker"] == 4 and not np.array_equal(out, plain)
    ref = pipe.compile("numpy", worker=4)(img)
    assert levels(out, ref).max() <= 2


def test_main_process_and_every_worker_draw_apart(monkeypatch):
    """Worker 0 draws apart from the main process (worker = id + 1 in a DataLoader worker,
    0 outside); a worker given by ``set_state`` or at compile time is kept exactly."""
    torch = pytest.importorskip("torch")
    img = smooth_image()
    pipe = aug.Pipeline([aug.Affine(rotate=30, translate=0.1)], seed=5)
    main = pipe.compile("albumentations")
    plain = main(img)
    assert main.worker == 0

    class Info:
        id = 0

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info())
    outs = {}
    for wid in range(3):
        Info.id = wid
        run = pipe.compile("albumentations")
        outs[wid] = run(img)
        assert run.worker == wid + 1
        assert not np.array_equal(outs[wid], plain)
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])
    Info.id = 0
    # set_state(worker=) is exact, and is not overridden by the automatic id afterwards
    exact = pipe.compile("albumentations")
    exact.set_state(worker=0)
    np.testing.assert_array_equal(exact(img), plain)
    assert exact.worker == 0 and exact.state["worker"] == 0
    # torch's worker_init_fn convention (set_state(worker=id + 1)) gives the automatic stream
    init = pipe.compile("albumentations")
    init.set_state(worker=1)
    np.testing.assert_array_equal(init(img), outs[0])
    # a worker given at compile time is exact too
    fixed = pipe.compile("albumentations", worker=2)
    np.testing.assert_array_equal(fixed(img), outs[1])
    assert fixed.worker == 2
    # run.sample (no image call) takes the worker's stream as well
    sampled = pipe.compile("albumentations")
    assert sampled.state["worker"] == 1
    ref = pipe.compile("numpy", worker=1).sample(1, img.shape)
    got = sampled.sample(1, img.shape)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])


def test_collate_and_batch_part():
    pipe = r2(num_classes=10, seed=1)
    run = pipe.compile("albumentations", **DEFER)
    samples = [run(smooth_image(seed=s), s % 10) for s in range(6)]
    assert all(isinstance(lbl, (int, np.integer)) or np.ndim(lbl) == 0 for _, lbl in samples)
    x, y = run.collate(samples)
    assert x.shape == (6, 48, 64, 3) and x.dtype == np.float32
    assert y.shape == (6, 10) and np.allclose(y.sum(1), 1.0) and y.min() >= 0.1 / 10 - 1e-6
    # the batch part is the NumPy run of the suffix
    raw_x, raw_y = run.collate(samples, apply=False)
    ref = run.batch_run("numpy")
    assert ref is run.batch_run("numpy")
    np.testing.assert_array_equal(raw_y, [s % 10 for s in range(6)])
    assert isinstance(run, AlbumentationsRun) and len(run.batch_ops) == 2
    # no batch-level spec: collate only stacks
    plain = aug.Pipeline([aug.HorizontalFlip()], seed=0).compile("albumentations")
    xs = plain.collate([smooth_image(seed=s) for s in range(3)])
    assert xs.shape == (3, 48, 64, 3) and xs.dtype == np.uint8


def test_batch_step_counts_batches_and_is_restored():
    """The batch part draws at ``batch_step`` = batches mixed since set_epoch (not the
    per-image step): it is in ``run.state``, and restoring the state in a fresh run
    reproduces the next batch; ``set_state(step=s)`` alone moves it to ``s``."""
    pipe = aug.Pipeline([aug.HorizontalFlip(), aug.MixUp(1.0)], num_classes=4, seed=2)
    imgs = [smooth_image(seed=s) for s in range(3)]

    def one_batch(run):
        return run.collate([run(im, i) for i, im in enumerate(imgs)])

    a = pipe.compile("albumentations", **DEFER)
    a.set_epoch(1)
    one_batch(a)
    one_batch(a)
    st = dict(a.state)
    assert (st["epoch"], st["step"], st["batch_step"]) == (1, 6, 2)  # 3 images a batch, 2 batches
    want = one_batch(a)
    b = pipe.compile("albumentations", **DEFER)
    b.set_state(epoch=st["epoch"], step=st["step"], batch_step=st["batch_step"])
    assert b.state == st
    got = one_batch(b)
    for u, v in zip(got, want):
        np.testing.assert_array_equal(u, v)
    assert b.state["batch_step"] == 3
    # the mix is the NumPy run of the batch part at (epoch 1, step 2), on the per-image outputs
    ref = b.batch_run("numpy")
    ref.set_state(epoch=1, step=2)
    xs, ys = _redo(pipe, imgs, epoch=1, step=6)
    xr, yr = ref(np.stack(xs), np.asarray(ys))
    np.testing.assert_array_equal(xr, want[0])
    np.testing.assert_array_equal(yr, want[1])
    ref.set_state(step=3)  # another batch step mixes differently
    assert not np.array_equal(ref(np.stack(xs), np.asarray(ys))[0], want[0])
    # set_state(step=) without batch_step moves both; set_epoch resets both
    b.set_state(step=5)
    assert (b.state["step"], b.state["batch_step"]) == (5, 5)
    b.set_epoch(3)
    assert (b.state["step"], b.state["batch_step"]) == (0, 0)
    with pytest.raises(ValueError):
        b.set_state(batch_step=-1)


def _redo(pipe, imgs, epoch, step):
    """The per-image outputs of one batch at (epoch, step..step+n-1), from a fresh run."""
    r = pipe.compile("albumentations", **DEFER)
    r.set_state(epoch=epoch, step=step)
    outs = [r(im, i) for i, im in enumerate(imgs)]
    return [o[0] for o in outs], [o[1] for o in outs]


def test_per_sample_ops_after_a_mix_run_in_the_batch_part():
    pipe = aug.Pipeline([aug.HorizontalFlip(), aug.MixUp(0.5), aug.Normalize()], num_classes=4, seed=0)
    run = pipe.compile("albumentations", **DEFER)
    assert [op.name for op in run.batch_ops] == ["mixup", "normalize"]
    out = run(smooth_image())
    assert out.dtype == np.uint8  # Normalize runs after the mix, on the batch
    x, y = run.collate([(out, 1), (out, 2)])
    assert x.dtype == np.float32 and y.shape == (2, 4)


def test_inference_applies_deterministic_ops_only():
    img = smooth_image()
    pipe = aug.Pipeline([aug.Affine(rotate=30), aug.Normalize(), aug.MixUp(0.5)], num_classes=3, seed=0)
    a = pipe.compile("albumentations", **DEFER)(img, training=False)
    b = pipe.compile("numpy")(img, training=False)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_errors():
    with pytest.raises(aug.SpecError, match="NHWC"):
        aug.Pipeline([aug.HorizontalFlip()]).compile("albumentations", layout="NCHW")
    run = aug.Pipeline([aug.HorizontalFlip()]).compile("albumentations")
    with pytest.raises(aug.InputError):
        run(np.zeros((4, 4), np.uint8))
    with pytest.raises(aug.InputTypeError):
        run(np.zeros((4, 4, 3), np.int16))
    with pytest.raises(aug.SpecError, match="fitted"):
        aug.Pipeline([aug.ZCAWhitening()]).compile("albumentations")


def test_opencv_matrix_moves_the_frame():
    m = np.array([[0.0, -1.0, 10.0], [1.0, 0.0, 0.0], [0, 0, 1]])
    cv = opencv_matrix(m)
    p = np.array([2.0, 3.0, 1.0])  # OpenCV point (pixel centre 2, 3) is augspec (2.5, 3.5)
    q = m @ (p + [0.5, 0.5, 0])
    np.testing.assert_allclose(cv @ p, q - [0.5, 0.5, 0])


def test_batch_part_on_torch_tensors():
    torch = pytest.importorskip("torch")
    pytest.importorskip("augspec.backends.torch")
    run = r2(num_classes=10).compile("albumentations", **DEFER)
    x = np.stack([run(smooth_image(seed=s)) for s in range(4)])
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    xo, yo = run.batch(xt, torch.arange(4))
    assert tuple(xo.shape) == (4, 3, 48, 64) and tuple(yo.shape) == (4, 10)
    assert torch.allclose(yo.sum(1), torch.ones(4))


# ------------------------------------------------------------ batch ops at compile time


def test_batch_ops_are_deferred_with_a_warning_by_default():
    pipe = aug.Pipeline([aug.HorizontalFlip(), aug.MixUp(0.5), aug.Normalize(), aug.LabelSmoothing(0.1)],
                        num_classes=4, seed=0)
    with pytest.warns(UserWarning, match=r"run\.batch\(images, labels\)") as rec:
        run = pipe.compile("albumentations")
    (w,) = [r for r in rec if "albumentations backend" in str(r.message)]
    msg = str(w.message)
    for name in ("MixUp", "LabelSmoothing", "Normalize", "run.collate", "defer_batch_ops=True"):
        assert name in msg, (name, msg)
    assert w.filename == __file__  # attributed to the compile call, not to augspec's internals
    assert [op.name for op in run.batch_ops] == ["mixup", "normalize", "label_smoothing"]
    # a container holding a batch op is one too
    with pytest.warns(UserWarning, match=r"OneOf\(MixUp, CutMix\)"):
        aug.Pipeline([aug.OneOf([aug.MixUp(0.2), aug.CutMix(1.0)])], num_classes=3).compile("albumentations")


def test_defer_batch_ops_true_is_silent_and_false_refuses():
    pipe = aug.Pipeline([aug.HorizontalFlip(), aug.CutMix(1.0)], num_classes=4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = pipe.compile("albumentations", defer_batch_ops=True)
        assert [op.name for op in run.batch_ops] == ["cutmix"]
        # no batch op: nothing to say, whatever the option
        aug.Pipeline([aug.HorizontalFlip()]).compile("albumentations")
        aug.Pipeline([aug.HorizontalFlip()]).compile("albumentations", defer_batch_ops=False)
    with pytest.raises(aug.SpecError, match="CutMix.*defer_batch_ops=False"):
        pipe.compile("albumentations", defer_batch_ops=False)
    with pytest.raises(aug.SpecError, match="defer_batch_ops"):
        pipe.compile("albumentations", defer_batch_ops="yes")
    # a backend object carries the option too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.compile(alb.AlbumentationsBackend(defer_batch_ops=True))


# ------------------------------------------------------------- capability fast paths


@aug.spec
class _Boxes(aug.RegionOp):
    """A plugin region op: one fixed box (rows 4..10, columns 6..20) declared as ``boxes``."""

    name = "test_alb_boxes"
    fill: tuple = (0.25,)
    p: float = 1.0

    def boxes(self, B, params, ctx):
        one = np.ones((ctx.n, 1), np.float32)
        return one * 4, one * 10, one * 6, one * 20

    def mask(self, B, params, ctx):
        m = np.zeros((ctx.n, ctx.height, ctx.width), bool)
        m[:, 4:10, 6:20] = True
        return m


@aug.spec
class _Invert(aug.PixelOp):
    """A plugin pixel op with a static channel map (x -> 1 - x)."""

    name = "test_alb_invert"
    p: float = 1.0

    def channel_map(self, ctx):
        return (-1.0,), (1.0,)

    def pixels(self, B, x, params, ctx):
        return 1.0 - x


def test_plugin_ops_with_capabilities_take_the_fast_paths(monkeypatch):
    img = smooth_image()
    calls = []
    real = alb._fdropout.cutout
    monkeypatch.setattr(alb._fdropout, "cutout", lambda *a: calls.append(a[1]) or real(*a))
    for ops in ([_Boxes()], [aug.CutOut(size=(0.3, 0.3), holes=2)]):
        ra, rn = both(ops)
        calls.clear()
        np.testing.assert_array_equal(ra(img), rn(img))  # exact: the same boxes
        assert len(calls) == 1 and calls[0].shape[1] == 4
    assert calls[0].shape[0] == 2  # both holes of the one image, (k, 4)
    ra, rn = both([_Invert(p=0.5), aug.Rescale(scale=0.5, offset=0.25)])
    assert [type(t).__name__ for t in ra.transforms] == ["_ChannelMap", "_ChannelMap"]
    for _step in range(4):  # gated per image like the reference (p=0.5)
        for x in (img, img.astype(np.float32) / 255):
            a, b = ra(x), rn(x)
            assert a.dtype == b.dtype and np.abs(a.astype(np.float64) - b).max() <= 1e-6


def test_a_registered_kernel_replaces_the_fast_path():
    manager.reset_registry()
    try:
        seen = []

        @aug.register_kernel("test_alb_boxes", "albumentations")
        def mask_kernel(op, B, params, ctx):
            seen.append(op)
            m = np.zeros((ctx.n, ctx.height, ctx.width), bool)
            m[:, :2] = True
            return m

        img = smooth_image()
        out = aug.Pipeline([_Boxes()], seed=0).compile("albumentations")(img)
        assert seen
        np.testing.assert_array_equal(out[:2], 64)
        np.testing.assert_array_equal(out[2:], img[2:])
    finally:
        manager.reset_registry()


def test_the_module_names_no_built_in_op():
    """Fast paths follow capabilities (RegionOp.boxes, PixelOp.channel_map, flip_axis, ...),
    never an op's class: no built-in op class is named in the module, even in prose."""
    src = Path(alb.__file__).read_text()
    names = {o.cls.__name__ for o in list_ops() if o.registrant == "augspec.builtin"}
    assert {"CutMix", "MixUp", "CutOut", "Normalize", "Rescale", "ColorJitter", "Affine"} <= names
    found = sorted({m for m in re.findall(r"\b\w+\b", src) if m in names})
    assert not found, found


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_scalar_fill_fills_every_channel(interpolation, channels):
    """``fill=0.5`` means 0.5 in every channel (OpenCV reads a 1-tuple as (v, 0, 0, 0))."""
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, channels), dtype=np.uint8)
    ops = [aug.Affine(rotate=40, translate=0.3, fill=0.5, interpolation=interpolation)]
    rn = aug.Pipeline(ops, seed=0).compile("numpy")
    ra = aug.Pipeline(ops, seed=0).compile("albumentations", exact_draws=True)
    p = rn.sample(3, x.shape[1:])
    d = np.abs(ra.apply(x, None, p).astype(int) - rn.apply(x, None, p).astype(int))
    assert d.max() <= 1, f"{int((d > 1).sum())} values differ by more than one level"
