"""Inputs that get a defined output rather than an error (docs/reliability.md): NaN and inf
stay where they are and never leak to a blend partner, constant images standardise to 0,
outputs never alias inputs, float images outside [0, 1] warn once, rejected calls spend no
step, a compiled run keeps its statistics when the pipeline is refitted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import augspec as aug

BACKENDS = [b.name for b in aug.list_backends() if b.available and b.name in ("numpy", "torch")]
MIXES = [[aug.MixUp(0.8, p=0.5)], [aug.CutMix(1.0)], [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)], p=0.7)]]


def _to(backend, x):
    if backend == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return x


def _back(backend, x):
    return x.numpy().transpose(0, 2, 3, 1) if backend == "torch" else np.asarray(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ops", MIXES, ids=["mixup", "cutmix", "one_of"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_bad_value_reaches_only_the_pixels_that_take_it(backend, ops, bad):
    x = np.random.default_rng(0).random((6, 8, 8, 3)).astype(np.float32)
    x[2, :, :, 0] = bad  # one channel of one image
    y = np.arange(6) % 3
    run = aug.Pipeline(ops, num_classes=3, seed=0).compile(backend)
    ref = aug.Pipeline(ops, num_classes=3, seed=0).compile("numpy")
    params = ref.sample(6, (8, 8, 3))
    pr = params if backend == "numpy" else {k: __import__("torch").from_numpy(np.asarray(v)) for k, v in params.items()}
    out = _back(backend, run.apply(_to(backend, x), y, pr)[0])
    # the partner's weight per pixel, from the params: where it is 0 nothing of the partner is read
    flat = aug.Pipeline(ops, num_classes=3, seed=0).compile("numpy")
    probe = np.zeros_like(x)
    probe[2] = 1.0  # marks image 2 (the bad one)
    took = flat.apply(probe, y, params)[0][..., :1]  # > 0 where image 2's pixels were read
    bad_out = ~np.isfinite(out)
    assert not bad_out[:, :, :, 1:].any(), "a bad value crossed into another channel"
    assert (bad_out[..., :1] <= (took > 0)).all(), "a bad value reached a pixel that takes nothing from it"


ALL = [b.name for b in aug.list_backends() if b.available]
# colour maps whose channels read only themselves (brightness; a gated-off op; grayscale reads
# all three, saturation too: an inf there legitimately spreads to the channels that read it)
OWN_CHANNEL = [[aug.Brightness(0.4)], [aug.Saturation(0.4, p=0.0001), aug.Brightness(0.3)],
               [aug.Invert(), aug.Brightness(0.2, p=0.5)]]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("ops", OWN_CHANNEL, ids=["brightness", "gated_off_saturation", "invert"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_channel_stays_in_its_channel_through_a_colour_map(backend, ops, bad):
    """A colour map's coefficient of exactly 0 takes nothing: 0 * inf is not NaN there."""
    x = np.random.default_rng(0).random((4, 6, 7, 3)).astype(np.float32)
    x[1, :, :, 0] = bad
    run = aug.Pipeline(ops, seed=0).compile(backend)
    got = run(_to(backend, x))
    out = got.numpy().transpose(0, 2, 3, 1) if backend == "torch" else np.asarray(got)
    assert np.isfinite(out[:, :, :, 1:]).all(), "a bad value crossed into another channel"
    assert np.isfinite(out[[0, 2, 3]]).all()


def test_a_mixing_colour_map_spreads_to_the_channels_that_read_it():
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    x[0, :, :, 0] = np.inf
    out = aug.Pipeline([aug.Grayscale()]).compile("numpy")(x)
    assert (out[0] == 1.0).all() and (out[1] < 1.0).any()  # every channel read the inf (clamped to 1)


@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_a_constant_image_standardises_to_zero(eps):
    x = np.full((2, 4, 4, 3), 0.5, np.float32)
    out = aug.Pipeline([aug.Standardize(samplewise_center=True, samplewise_std=True, epsilon=eps)]).compile("numpy")(x)
    assert np.isfinite(out).all() and np.abs(out).max() == 0.0
    out = aug.Pipeline([aug.Standardize(featurewise_std=True, std=0.0, epsilon=0.0)]).compile("numpy")(x)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ops", [[], [aug.LabelSmoothing(0.1)], [aug.Normalize()]], ids=["empty", "labels", "normalize"])
def test_outputs_never_alias_inputs(backend, ops):
    x = _to(backend, np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32))
    y = np.eye(3, dtype=np.float32)[:2]
    y = __import__("torch").from_numpy(y) if backend == "torch" else y
    run = aug.Pipeline(ops, num_classes=3, seed=0).compile(backend)
    x0, y0 = _back(backend, x).copy(), np.asarray(y).copy()
    for xo, yo in (run(x, y), (run(x, training=False), None)):
        xo[...] = 7.0  # the caller writes into its outputs
        if yo is not None:
            yo[...] = 7.0
    np.testing.assert_array_equal(_back(backend, x), x0)
    np.testing.assert_array_equal(np.asarray(y), y0)


def test_torch_augment_eval_does_not_alias():
    torch = pytest.importorskip("torch")
    from augspec.torch import Augment

    m = Augment(aug.Pipeline([aug.HorizontalFlip()], seed=0)).eval()
    x = torch.rand(2, 3, 4, 4)
    out = m(x)
    out.zero_()
    assert x.abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_images_outside_0_1_warn_once(backend):
    run = aug.Pipeline([aug.Brightness(0.2)], seed=0).compile(backend)
    x = _to(backend, np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32) * 255)
    with pytest.warns(aug.InputRangeWarning, match=r"x / 255"):
        run(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", aug.InputRangeWarning)
        run(x)  # once per run
        aug.Pipeline([aug.Brightness(0.2)], seed=0).compile(backend)(_to(backend, np.full((2, 4, 4, 3), 0.5, np.float32)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rejected_call_spends_no_step(backend):
    run = aug.Pipeline([aug.MixUp(0.5)], num_classes=3, seed=0).compile(backend)
    x = _to(backend, np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(aug.InputError):
        run(x, np.array([0, 9]) if backend == "numpy" else __import__("torch").tensor([0, 9]))
    assert run.state["step"] == 0


def test_sample_takes_numpy_integers():
    run = aug.Pipeline([aug.MixUp(0.5)], seed=0).compile("numpy")
    assert run.sample(np.int64(4))["0/lam"].shape == (4,)


def test_a_refit_pipeline_does_not_change_a_compiled_run():
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 4, 4, 3)), rng.random((8, 4, 4, 3)) * 0.5
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True)], seed=0).fit(a)
    run = pipe.compile("numpy")
    x = rng.random((2, 4, 4, 3)).astype(np.float32)
    train, evaluate = run(x), run(x, training=False)
    pipe.fit(b)  # refit in place after compiling
    np.testing.assert_array_equal(run(x), train)
    np.testing.assert_array_equal(run(x, training=False), evaluate)
    assert not np.array_equal(pipe.compile("numpy")(x), train)  # a new compile takes the new statistics


def test_zca_compares_its_matrix():
    assert aug.ZCAWhitening(matrix=np.eye(3)) != aug.ZCAWhitening(matrix=2 * np.eye(3))
    assert aug.ZCAWhitening(matrix=np.eye(3)) == aug.ZCAWhitening(matrix=np.eye(3))


@pytest.mark.parametrize("backend", ALL)
def test_whole_pixel_shifts_are_exact_as_the_readme_says(backend):
    """README: flips are exact, and whole-pixel shifts too except torch's bilinear warp
    (grid_sample on a normalised grid), which is within 1e-5."""
    x = np.random.default_rng(0).random((3, 40, 50, 3)).astype(np.float32)
    run = aug.Pipeline([aug.Affine(translate=(0.1, 0.1)), aug.HorizontalFlip(p=1.0)], seed=0).compile(backend)
    got = run(_to(backend, x))
    out = got.numpy().transpose(0, 2, 3, 1) if backend == "torch" else np.asarray(got)
    want = np.zeros_like(x)
    want[:, 4:, 5:] = x[:, :-4, :-5]  # 0.1 of 40 rows and of 50 columns
    want = want[:, :, ::-1]
    d = np.abs(out - want)[:, 4:, :-5].max()
    assert d <= (1e-5 if backend == "torch" else 0.0), d
