"""Policy ops (RandAugment, TrivialAugmentWide, AutoAugment, AugMix): the distribution of
the chosen ops and magnitudes against each policy's definition (chi-square over 10,000
samples), the planner's fusion of a policy step, per-sample independence, from_timm, errors.
Fidelity against torchvision with injected choices: tests/test_policy_torchvision.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import augspec as aug
from augspec.core.containers import Choice, Given
from augspec.core.ops import policy as P

N = 10_000


def _chi2_ok(counts: np.ndarray, probs: np.ndarray) -> None:
    """Pearson's chi-square of ``counts`` against ``probs``, at the 1e-4 level."""
    counts = np.asarray(counts, np.float64)
    probs = np.asarray(probs, np.float64) / np.sum(probs)
    exp = counts.sum() * probs
    stat = float(((counts - exp) ** 2 / exp).sum())
    df = len(counts) - 1
    try:
        from scipy.stats import chi2

        crit = float(chi2.ppf(1 - 1e-4, df))
    except ImportError:  # Wilson-Hilferty
        z = 3.719
        crit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert stat < crit, f"chi-square {stat:.1f} >= {crit:.1f} (df {df}): counts {counts.tolist()}, expected {exp.round(1).tolist()}"


def _sample(op, n=N, shape=(32, 32, 3), seed=0):
    run = aug.Pipeline([op], seed=seed).compile("numpy")
    return run, {k: np.asarray(v) for k, v in run.sample(n, shape).items()}


def _leaves(run):
    return run.plan.leaves


# ----------------------------------------------------------------- choices
def test_rand_augment_torchvision_choice_is_uniform_over_14_with_replacement():
    run, ps = _sample(aug.RandAugment(num_ops=2, magnitude=9))
    for layer in ("0.0", "0.1"):
        c = ps[f"{layer}/choice"]
        assert c.min() == 0 and c.max() == 13
        _chi2_ok(np.bincount(c, minlength=14), np.ones(14))
    # with replacement and independent: the pair (first, second) is uniform over 14 x 14
    pair = ps["0.0/choice"] * 14 + ps["0.1/choice"]
    assert np.mean(ps["0.0/choice"] == ps["0.1/choice"]) == pytest.approx(1 / 14, abs=0.01)
    assert len(np.unique(pair)) == 196


def test_rand_augment_torchvision_magnitudes_and_signs():
    run, ps = _sample(aug.RandAugment(num_ops=1, magnitude=9))
    by_op = {}
    for lf in _leaves(run):
        for key in lf.op.draws():
            by_op.setdefault(type(lf.op).__name__ + ("" if not hasattr(lf.op, "axis") else lf.op.axis),
                             []).append(ps[f"{lf.path}/{key}"])
    # torchvision's bin 9 of 31: linspace(0, max, 31)[9] = 9 max / 30, a random sign
    want = {"PolicyRotate": 9.0, "PolicyShearx": 0.09, "PolicyShearx_": None}
    rot = by_op["PolicyRotate"][0]
    assert set(np.unique(np.round(rot, 5))) == {-9.0, 9.0} == set(np.round([-want["PolicyRotate"], 9.0], 5))
    assert np.mean(rot > 0) == pytest.approx(0.5, abs=0.02)
    shear = by_op["PolicyShearx"][0]
    np.testing.assert_allclose(np.abs(shear), 0.3 * 9 / 30, rtol=1e-6)
    tx = by_op["PolicyTranslatex"][0]
    np.testing.assert_allclose(np.abs(tx), 150 / 331 * 9 / 30, rtol=1e-6)
    (bright,) = by_op["Brightness"]
    np.testing.assert_allclose(np.sort(np.unique(np.round(bright, 6))), [1 - 0.27, 1 + 0.27], rtol=1e-6)
    (bits,) = by_op["Posterize"]
    assert np.all(np.floor(bits + 0.5) == 7)  # round(8 - 9 / 7.5) = 7
    (thr,) = by_op["Solarize"]
    np.testing.assert_allclose(thr, 1 - 9 / 30, rtol=1e-6)


def test_trivial_augment_bins_uniform_and_ops_uniform():
    run, ps = _sample(aug.TrivialAugmentWide())
    c = ps["0.0/choice"]
    _chi2_ok(np.bincount(c, minlength=14), np.ones(14))
    rot = next(ps[f"{lf.path}/angle"] for lf in _leaves(run) if isinstance(lf.op, P.PolicyRotate))
    k = np.round(np.abs(rot) / (135 / 30)).astype(int)
    np.testing.assert_allclose(np.abs(rot), k * 135 / 30, atol=1e-4)
    _chi2_ok(np.bincount(k, minlength=31), np.ones(31))
    assert np.mean(rot[k > 0] > 0) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("policy", ["imagenet", "cifar10", "svhn"])
def test_auto_augment_subpolicies_and_probabilities(policy):
    op = aug.AutoAugment(policy=policy)
    run, ps = _sample(op)
    c = ps["0.0/choice"]
    _chi2_ok(np.bincount(c, minlength=25), np.ones(25))
    table = P._AUTO_POLICIES[policy]
    for lf in _leaves(run):
        k, j = (int(v) for v in lf.path.split(".")[2:4])
        name, prob, _ = table[k][j]
        mine = c == k
        key = f"{lf.path}/apply"
        if prob == 1.0:
            assert key not in ps
            continue
        applied = ps[key][mine]
        # the op's own probability, among the samples of its sub-policy
        exp = prob * mine.sum()
        assert abs(applied.sum() - exp) <= 5 * math.sqrt(max(exp * (1 - prob), 1.0)), (name, applied.sum(), exp)


def test_timm_rand_augment_op_probability_and_normal_magnitude():
    op = aug.from_timm("rand-m9-mstd0.5-inc1")
    assert op == aug.RandAugment(num_ops=2, magnitude=9, magnitude_std=0.5, increasing=True, timm_compat=True,
                                 interpolation="bilinear", fill=(124 / 255, 116 / 255, 104 / 255))
    run, ps = _sample(op)
    _chi2_ok(np.bincount(ps["0.0/choice"], minlength=15), np.ones(15))
    gates = [ps[f"{lf.path}/apply"] for lf in _leaves(run) if lf.path.startswith("0.0.")]
    assert len(gates) == 15
    assert np.mean(np.concatenate(gates)) == pytest.approx(0.5, abs=0.01)
    rot = next(ps[f"{lf.path}/angle"] for lf in _leaves(run) if isinstance(lf.op, P.PolicyRotate))
    lvl = np.abs(rot) / 3.0  # 30 degrees at level 10
    assert lvl.max() <= 10.0 + 1e-5
    assert np.mean(lvl) == pytest.approx(9.0, abs=0.03)
    assert np.std(lvl) == pytest.approx(0.5, abs=0.03)
    post = next(ps[f"{lf.path}/bits"] for lf in _leaves(run) if type(lf.op).__name__ == "Posterize")
    lv = np.clip(9 + 0.5 * np.random.default_rng(0).standard_normal(200_000), 0, 10)
    want = np.bincount(4 - (lv / 10 * 4).astype(int), minlength=5)
    got = np.bincount(post.astype(int), minlength=5)
    _chi2_ok(got[want > 0], want[want > 0])


def test_augmix_depth_and_weights():
    op = aug.AugMix(severity=3, width=3, depth=-1, alpha=1.0)
    run, ps = _sample(op, n=N)
    pre = "0/c0/"
    d2 = ps[pre + "1/apply"]
    d3 = ps[pre + "1.1/apply"] & d2
    assert np.mean(d2) == pytest.approx(2 / 3, abs=0.015)
    assert np.mean(d3) == pytest.approx(1 / 3, abs=0.015)
    m = ps["0/m"]  # Beta(1, 1): uniform
    assert np.mean(m) == pytest.approx(0.5, abs=0.01) and np.var(m) == pytest.approx(1 / 12, abs=0.005)
    b0, b1 = ps["0/b0"], ps["0/b1"]
    w = np.stack([b0, (1 - b0) * b1, (1 - b0) * (1 - b1)], axis=1)  # Dirichlet(1, 1, 1)
    np.testing.assert_allclose(w.mean(axis=0), 1 / 3, atol=0.015)
    np.testing.assert_allclose(w.var(axis=0), 2 / 36, atol=0.006)  # a(a0 - a) / (a0^2 (a0 + 1)) = 2 / 36


# ------------------------------------------------------------------ planner
def test_a_policy_step_fuses_into_one_warp_and_one_colour_map():
    run = aug.Pipeline([aug.RandomResizedCrop(24), aug.HorizontalFlip(),
                        aug.RandAugment(num_ops=2, interpolation="bilinear")]).compile("numpy")
    kinds = [st.kind for st in run.plan.stages]
    # crop + flip: the separable resize; each layer: its five warps in one resampling, one colour map
    assert kinds.count("geometric") == 3, kinds
    assert kinds.count("color") == 2, kinds
    assert [len(st.leaves) for st in run.plan.stages if st.kind == "geometric"] == [2, 5, 5]
    # an ungated warp still fuses with the crop into one resampling
    run = aug.Pipeline([aug.RandomResizedCrop(24), aug.Affine(rotate=10), aug.Perspective(p=1.0)]).compile("numpy")
    assert len(run.plan.stages) == 1


def test_nearest_policy_warps_do_not_fuse_with_a_bilinear_crop():
    run = aug.Pipeline([aug.RandomResizedCrop(24), aug.RandAugment(num_ops=1)]).compile("numpy")
    assert [st.kind for st in run.plan.stages][:2] == ["geometric", "geometric"]


def test_each_sample_equals_the_sample_alone():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (16, 20, 24, 3), dtype=np.uint8)
    for op in (aug.RandAugment(), aug.TrivialAugmentWide(), aug.AutoAugment(), aug.AugMix(),
               aug.from_timm("rand-m9-mstd0.5-inc1")):
        run = aug.Pipeline([op], seed=3).compile("numpy")
        ps = run.sample(16, (20, 24, 3))
        whole = run.apply(x, None, ps)
        for i in (0, 5, 11):
            one = run.apply(x[i:i + 1], None, {k: np.asarray(v)[i:i + 1] for k, v in ps.items()})
            np.testing.assert_array_equal(whole[i:i + 1], one, err_msg=type(op).__name__)


def test_policies_change_images_and_are_reproducible():
    x = np.random.default_rng(2).integers(0, 256, (8, 20, 24, 3), dtype=np.uint8)
    for op in (aug.RandAugment(), aug.TrivialAugmentWide(), aug.AutoAugment(), aug.AugMix()):
        a = aug.Pipeline([op], seed=5).compile("numpy")(x)
        b = aug.Pipeline([op], seed=5).compile("numpy")(x)
        np.testing.assert_array_equal(a, b)
        assert a.shape == x.shape and a.dtype == np.uint8
        assert np.mean(a != x) > 0.1, type(op).__name__


def test_policies_round_trip_through_config():
    for op in (aug.RandAugment(magnitude_std=0.5), aug.TrivialAugmentWide(num_magnitude_bins=11),
               aug.AutoAugment(policy="svhn"), aug.AugMix(severity=2, width=2, depth=2),
               aug.from_timm("rand-m7-n3-mstd0.5-mmax10-inc1-p0.7")):
        pipe = aug.Pipeline([op])
        assert aug.from_json(aug.to_json(pipe)).ops == pipe.ops


def test_policies_are_skipped_at_evaluation():
    x = np.random.default_rng(2).integers(0, 256, (4, 20, 24, 3), dtype=np.uint8)
    for op in (aug.RandAugment(), aug.AugMix()):
        run = aug.Pipeline([op]).compile("numpy")
        np.testing.assert_array_equal(run(x, training=False), x)


def test_internal_containers():
    with pytest.raises(aug.SpecError, match="Choice"):
        Choice(((aug.Brightness(),),), (1.0, 2.0))
    with pytest.raises(aug.SpecError, match="no draw 'angle'"):
        Given(aug.Brightness(), (("angle", aug.Uniform(low=0, high=1)),))


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize("make, field", [
    (lambda: aug.RandAugment(num_ops=-1), "num_ops"),
    (lambda: aug.RandAugment(magnitude=31), "magnitude"),
    (lambda: aug.RandAugment(magnitude=11, timm_compat=True), "magnitude"),
    (lambda: aug.RandAugment(magnitude_std=-1), "magnitude_std"),
    (lambda: aug.RandAugment(interpolation="bicubic"), "interpolation"),
    (lambda: aug.RandAugment(fill=2.0), "fill"),
    (lambda: aug.TrivialAugmentWide(num_magnitude_bins=1), "num_magnitude_bins"),
    (lambda: aug.AutoAugment(policy="coco"), "policy"),
    (lambda: aug.AugMix(severity=0), "severity"),
    (lambda: aug.AugMix(depth=0), "depth"),
    (lambda: aug.AugMix(alpha=0), "alpha"),
])
def test_bad_fields_name_op_and_field(make, field):
    with pytest.raises(aug.SpecError) as e:
        make()
    assert field in str(e.value)


def test_from_timm_strings():
    op = aug.from_timm("rand-m9-n3-mstd0.5")
    assert op.num_ops == 3 and op.magnitude == 9 and op.magnitude_std == 0.5 and not op.increasing
    assert aug.from_timm("rand-m9-mstd101").magnitude_std > 100  # uniform levels
    mix = aug.from_timm("augmix-m5-w4-d2")
    assert (mix.severity, mix.width, mix.depth) == (5, 4, 2)
    assert aug.from_timm("augmix-m3-w3-d-1-a0.5").depth == -1
    for bad in ("rand-x9", "original", "rand-m9-q1", 3):
        with pytest.raises((aug.SpecError, aug.SpecTypeError)):
            aug.from_timm(bad)


def test_grayscale_batch_refused_with_the_op_named():
    x = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(aug.InputError):
        aug.Pipeline([aug.RandAugment()]).compile("numpy")(x)
