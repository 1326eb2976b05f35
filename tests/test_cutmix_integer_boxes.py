"""CutMix and CutOut decide their box edges (integers) without transcendental arithmetic,
so the boxes drawn for a key are the same on every backend, bit for bit.

CutMix's lambda is ``TabulatedBeta``: a Beta(alpha, alpha) quantile table built on the host
and read with exact float32 operations, so lambda itself is bit-identical; each side
``round(size * sqrt(1 - lambda))`` is settled by comparing lambda with thresholds tabulated
on the host (``sqrt`` only guesses it to within one pixel); the centre's pixel by one
comparison with a tabulated ``j / (2 size)``. Here: the same boxes on NumPy, torch,
TensorFlow and JAX (Hypothesis over sizes, alphas, seeds and batch sizes, and compiled
runs), the law of the boxes (lambda ~ Beta(alpha, alpha); the box side's law is the one
that Beta induces, up to the pixel), exactness against rational arithmetic, and ties on
which a ``sqrt`` rounded either way would move a side by one pixel.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import augspec as aug
from augspec.backends.numpy import NumpyBackend
from augspec.core.ops.mix import _QCELLS, TabulatedBeta, _cut_table, beta_table, cut_side
from augspec.core.ops.region import _centre_table, box_edges, edges_of_side
from augspec.core.spec import Context

NP = NumpyBackend()
K = 5


def _available(name):
    return any(b.name == name and b.available for b in aug.list_backends())


def _numpy(v):
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    if hasattr(v, "numpy"):
        return np.asarray(v.numpy())
    return np.asarray(v)


def _pipe(alpha, per_sample, seed):
    return aug.Pipeline([aug.CutMix(alpha, per_sample=per_sample), aug.CutOut(holes=2, size=(0.05, 0.9))],
                        num_classes=K, seed=seed)


def _leaf(params, i):
    return {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(f"{i}/")}


def _draw_boxes(pipe, run, n, h, w):
    """The params a run draws for an (n, h, w, 3) batch and the boxes its own backend
    computes from them (CutMix's paste box and label weight, CutOut's holes), as NumPy."""
    params = run.sample(n, (h, w, 3))
    ctx = Context(n, h, w, 3, K)
    B = run.backend
    paste = pipe.ops[0].paste_box(B, _leaf(params, 0), ctx)
    holes = pipe.ops[1].boxes(B, _leaf(params, 1), ctx)
    return {k: _numpy(v) for k, v in params.items()}, [_numpy(v) for v in paste], [_numpy(v) for v in holes]


def _assert_same(ref, got, backend):
    (pr, br, hr), (pg, bg, hg) = ref, got
    assert set(pr) == set(pg)
    for k in pr:
        if k.endswith("partner"):
            np.testing.assert_array_equal(pg[k], pr[k], err_msg=f"{backend}: {k}")
        else:
            assert pg[k].dtype == np.float32 and np.array_equal(pg[k], pr[k]), f"{backend}: {k} differs"
    for a, b in zip(bg[:4] + hg, br[:4] + hr):  # the edges: bit for bit
        assert a.dtype == np.float32 and np.array_equal(a, b), f"{backend}: box edges differ"
    np.testing.assert_array_equal(bg[4], br[4], err_msg=f"{backend}: label weight")


sizes = st.integers(1, 512)
alphas = st.floats(0.1, 10.0)


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, alpha=alphas, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 16),
       per_sample=st.booleans())
def test_numpy_and_torch_draw_bit_identical_boxes(h, w, alpha, seed, n, per_sample):
    pytest.importorskip("torch")
    pipe = _pipe(alpha, per_sample, seed)
    ref = _draw_boxes(pipe, pipe.compile("numpy"), n, h, w)
    _assert_same(ref, _draw_boxes(pipe, pipe.compile("torch", layout="NHWC"), n, h, w), "torch")
    # the boxes are those of the rule: an unclipped box has round(size * sqrt(1 - lam)) pixels
    params, (y0, y1, x0, x1, lw), _ = ref
    lam = params["0/lam"].astype(np.float64)
    assert np.all((y1 - y0 <= h * np.sqrt(1 - lam) + 0.5 + 1e-9) & (x1 - x0 <= w * np.sqrt(1 - lam) + 0.5 + 1e-9))
    np.testing.assert_array_equal(lw, ((y1 - y0) * (x1 - x0) * np.float32(1 / (h * w))).astype(np.float32))


_TRACED_RUNS: dict = {}


def _traced_check(backend, h, w, alpha, seed, n, per_sample):
    pytest.importorskip({"tensorflow": "tensorflow", "jax": "jax"}[backend])
    if not _available(backend):
        pytest.skip(f"no {backend} backend")
    pipe = _pipe(alpha, per_sample, seed)
    ref = _draw_boxes(pipe, pipe.compile("numpy"), n, h, w)
    _assert_same(ref, _draw_boxes(pipe, pipe.compile(backend, layout="NHWC"), n, h, w), backend)


# TensorFlow and JAX compile (trace) every new shape: fewer examples, few batch sizes
@settings(max_examples=12, deadline=None)
@given(h=sizes, w=sizes, alpha=alphas, seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 6]),
       per_sample=st.booleans())
def test_tensorflow_draws_bit_identical_boxes(h, w, alpha, seed, n, per_sample):
    _traced_check("tensorflow", h, w, alpha, seed, n, per_sample)


@settings(max_examples=6, deadline=None)
@given(h=sizes, w=sizes, alpha=alphas, seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 6]),
       per_sample=st.booleans())
def test_jax_draws_bit_identical_boxes(h, w, alpha, seed, n, per_sample):
    _traced_check("jax", h, w, alpha, seed, n, per_sample)


# ----------------------------------------------------------- compiled runs, all backends


def _ties(size, count):
    """``count`` lambdas on rounding ties of ``round(size * sqrt(1 - lam))``: each ``f_j`` (the
    largest lambda with side j) and the float32 just above it (side j - 1)."""
    table = _cut_table(size)
    j = np.linspace(1, size, count // 2).astype(int)
    f = (-table[j, 0]).astype(np.float32)
    return np.stack([f, np.nextafter(f, np.float32(np.inf))], axis=1).reshape(-1)


def _source_images(n, h, w):
    """Sample i is the constant (i + 1) / (n + 1): every output pixel names its source."""
    return np.broadcast_to(((np.arange(n) + 1) / (n + 1)).astype(np.float32)[:, None, None, None], (n, h, w, 3)).copy()


@pytest.mark.parametrize("h,w", [(29, 41), (16, 16)])
def test_compiled_runs_paste_the_same_boxes_on_every_backend(h, w):
    n = 8
    backends = [b for b in ("numpy", "torch", "tensorflow", "jax") if _available(b)]
    pipe = aug.Pipeline([aug.CutMix(0.7)], num_classes=n, seed=7)
    x, y = _source_images(n, h, w), np.arange(n)
    ref = pipe.compile("numpy")
    drawn = ref.sample(n, (h, w, 3))
    tied = dict(drawn, **{"0/lam": _ties(min(h, w), n)})  # every lambda on a tie of the shorter side
    outs = {}
    for be in backends:
        run = pipe.compile(be, layout="NHWC")
        B = run.backend
        own = {k: _numpy(v) for k, v in run.sample(n, (h, w, 3)).items()}  # the same draws (one step on)
        for name, params in (("drawn", drawn), ("tied", tied)):
            p = {k: B.asarray(v) for k, v in params.items()}
            xb = B.asarray(x) if be != "torch" else __import__("torch").from_numpy(x)
            out, soft = run.apply(xb, y, p)
            outs[be, name] = (_numpy(out), _numpy(soft))
        outs[be, "own"] = own
    ref_own = outs["numpy", "own"]
    for be in backends:
        for k in ref_own:
            np.testing.assert_array_equal(outs[be, "own"][k], ref_own[k], err_msg=f"{be}: {k}")
        for name in ("drawn", "tied"):
            out, soft = outs[be, name]
            rout, rsoft = outs["numpy", name]
            np.testing.assert_array_equal(out, rout, err_msg=f"{be}: {name} images")  # the same pixels pasted
            np.testing.assert_allclose(soft, rsoft, atol=1e-7, err_msg=f"{be}: {name} labels")
    # the tied lambdas do land on both sides of each tie
    params = {k.split("/", 1)[1]: v for k, v in tied.items()}
    side = cut_side(NP, params["lam"], min(h, w))
    assert np.all(side[0::2] == side[1::2] + 1)


# ------------------------------------------------------------------- the law of the boxes


def _sides(alpha, n, h, w, seed=0):
    """The unclipped box sides (centre 0.5) of n CutMix draws, and the lambdas."""
    op = aug.CutMix(alpha)
    run = aug.Pipeline([op], num_classes=2, seed=seed).compile("numpy")
    p = _leaf(run.sample(n, (h, w, 3)), 0)
    lam = p["lam"]
    p["centre_y"] = p["centre_x"] = np.full(n, 0.5, np.float32)
    y0, y1, x0, x1 = op.box(NP, p, Context(n, h, w, 3, 2))
    assert np.all((y0 > 0) | (y1 - y0 == h)) and np.all((x0 > 0) | (x1 - x0 == w))  # not clipped
    return (y1 - y0).astype(int), (x1 - x0).astype(int), lam


@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_lambda_is_beta_distributed(alpha):
    stats = pytest.importorskip("scipy.stats")
    lam = aug.Pipeline([aug.CutMix(alpha)], num_classes=2, seed=1).compile("numpy").sample(200_000, (8, 8, 3))["0/lam"]
    assert lam.dtype == np.float32 and np.all((lam >= 0) & (lam <= 1))
    assert stats.kstest(lam.astype(np.float64), stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert abs(lam.mean() - 0.5) < 5 * math.sqrt(1 / (4 * (2 * alpha + 1)) / len(lam))


def test_mean_box_area_fraction_is_one_half():
    """E[area fraction] = E[1 - lam] = 1/2 (alpha = 1: 1 - lam is uniform; the pixel rounding
    of each side adds about 1/(12 size**2))."""
    n, h, w = 200_000, 48, 48
    sy, sx, _ = _sides(1.0, n, h, w)
    frac = sy * sx / (h * w)
    assert abs(frac.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n) + 1 / (6 * h * w)


@pytest.mark.parametrize("alpha,h,w", [(0.5, 32, 32), (3.0, 20, 50)])
def test_box_sides_follow_the_beta_law(alpha, h, w):
    """side = round(size sqrt(1 - lam)), half up, so P(side = s) = F(((s + 1/2) / size)**2) -
    F(((s - 1/2) / size)**2), F the Beta(alpha, alpha) CDF (that of 1 - lam): a chi-square test
    per axis, the two sides from one lambda (the same box shape), and a KS-style bound on the
    area fraction's CDF (the pixel adds at most the largest step of the discrete law)."""
    stats = pytest.importorskip("scipy.stats")
    n = 100_000
    sy, sx, lam = _sides(alpha, n, h, w, seed=3)
    beta = stats.beta(alpha, alpha)
    for side, size in ((sy, h), (sx, w)):
        edges = np.clip((np.arange(size + 2) - 0.5) / size, 0.0, 1.0) ** 2
        prob = np.diff(beta.cdf(edges))
        counts = np.bincount(side, minlength=size + 1)
        keep = prob * n >= 5
        merged_obs = np.append(counts[keep], counts[~keep].sum())
        merged_exp = np.append(prob[keep], prob[~keep].sum()) * n
        if merged_exp[-1] < 5:
            merged_obs, merged_exp = merged_obs[:-1], merged_exp[:-1]
        merged_exp *= merged_obs.sum() / merged_exp.sum()
        assert stats.chisquare(merged_obs, merged_exp).pvalue > 1e-4
    # both sides come from one lambda: each is within half a pixel of size * sqrt(1 - lam)
    cut = np.sqrt(1.0 - lam.astype(np.float64))
    assert np.all(np.abs(sy - h * cut) <= 0.5 + 1e-9) and np.all(np.abs(sx - w * cut) <= 0.5 + 1e-9)
    # the area fraction's CDF against 1 - lam's: each side is within half a pixel of size r
    # (r = sqrt(1 - lam) <= 1), so the area is within d = 1/(2h) + 1/(2w) + 1/(4hw) of r**2,
    # and P(area < v) lies between F(v - d) and F(v + d), at every value v the area takes
    frac = np.sort(sy * sx / (h * w))
    vals, first = np.unique(frac, return_index=True)
    below = first / n
    d = 1 / (2 * h) + 1 / (2 * w) + 1 / (4 * h * w)
    tol = 1.63 / math.sqrt(n)  # KS at the 1% level
    assert np.all(below <= beta.cdf(np.clip(vals + d, 0, 1)) + tol)
    assert np.all(below >= beta.cdf(np.clip(vals - d, 0, 1)) - tol)


def _draw_rows(k):
    """The table row each 24-bit uniform ``k`` reads, and its interpolation weight j / 2**12."""
    i, j = k >> 12, k & 4095
    row = np.where(i == 0, _QCELLS + j, np.where(i == _QCELLS - 1, 2 * _QCELLS + j, i))
    return row, j / 4096


def test_quantile_table_is_the_beta_quantile_function():
    special = pytest.importorskip("scipy.special")
    g = _QCELLS
    for alpha in (0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0, 1000.0):
        table = beta_table(alpha)
        t, d = table[:, 0], table[:, 1]
        # the cells' knots i / 2**12, and the end cells' every point j / 2**24
        p = np.concatenate([np.arange(g) / g, np.arange(g) / g**2, 1 - (g - np.arange(g)) / g**2])
        exact = special.betaincinv(alpha, alpha, p)
        big = exact > 1e-30
        np.testing.assert_allclose(t[big], exact[big], rtol=2e-7, atol=3e-8, err_msg=f"alpha={alpha}")
        assert np.all(t[~big] < 1e-29)
        # 12 significant bits per step (so d * j / 2**12 is exact); nothing subnormal
        mant, _ = np.frexp(d.astype(np.float64))
        assert np.all(mant * 2**12 == np.floor(mant * 2**12)) and np.all(d[g:] == 0)
        tiny = np.finfo(np.float32).tiny
        assert np.all((t == 0) | (t >= tiny)) and np.all((d == 0) | (d >= 2.0**-114))
        # the draws never decrease with u: across every cell boundary and through the end cells
        k = np.unique(np.concatenate([np.arange(g) * g + o for o in (-2, -1, 0, 1, 2)] +
                                     [np.arange(2 * g), 2**24 - 2 * g + np.arange(2 * g)]).clip(0, 2**24 - 1))
        lam = TabulatedBeta(alpha=alpha).transform(NP, (k / 2.0**24).astype(np.float32)[:, None])
        assert np.all(np.diff(lam) >= 0) and lam[0] == 0.0 and np.all((lam >= 0) & (lam <= 1))


def test_a_draw_is_one_rounding_of_an_exact_sum():
    """The draw for u = (i 2**12 + j) / 2**24 is T + D j / 2**12 of its row rounded once: what
    float64 arithmetic (exact here) rounded to float32 gives."""
    rng = np.random.default_rng(0)
    k = np.concatenate([rng.integers(0, 2**24, 50_000), np.arange(4096), 2**24 - 1 - np.arange(4096)])
    u = (k / 2.0**24).astype(np.float32)
    row, f = _draw_rows(k)
    for alpha in (0.3, 1.0, 7.0):
        table = beta_table(alpha).astype(np.float64)
        got = TabulatedBeta(alpha=alpha).transform(NP, u[:, None])
        want = (table[row, 0] + table[row, 1] * f).astype(np.float32)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    # alpha = 1: lambda is the uniform itself
    assert np.array_equal(TabulatedBeta(alpha=1.0).transform(NP, u[:, None]), u)


# ------------------------------------------------------------------- exactness and ties


class _Sloppy(NumpyBackend):
    """NumPy with transcendental functions off by one ulp (up or down by the value's last
    bit): another library's rounding."""

    @staticmethod
    def _nudge(v):
        v = np.asarray(v, np.float32)
        odd = (v.view(np.uint32) & 1).astype(bool)
        moved = np.where(odd, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf)))
        return np.where(np.isfinite(v) & (v != 0), moved, v)

    def sqrt(self, x):
        return self._nudge(super().sqrt(x))

    def exp(self, x):
        return self._nudge(super().exp(x))

    def log(self, x):
        return self._nudge(super().log(x))

    def cos(self, x):
        return self._nudge(super().cos(x))

    def sin(self, x):
        return self._nudge(super().sin(x))


class _SqrtUp(NumpyBackend):
    def sqrt(self, x):
        return np.nextafter(super().sqrt(x), np.float32(np.inf))


class _SqrtDown(NumpyBackend):
    def sqrt(self, x):
        return np.nextafter(super().sqrt(x), np.float32(-np.inf))


def _exact_side(lam, size):
    """round(size sqrt(1 - lam)) half up, in rational arithmetic: the largest s <= size with
    (1 - lam) (2 size)**2 >= (2s - 1)**2."""
    r = (1 - Fraction(float(lam))) * 4 * size * size
    s = 0
    while s < size and r >= (2 * s + 1) ** 2:
        s += 1
    return s


def test_a_side_on_a_rounding_tie_does_not_follow_sqrt():
    """lam = f_j has side j, the next float32 side j - 1, in exact arithmetic; a sqrt rounded
    either way gives both on each side of every tie, while the naive floor(size sqrt(1 - lam)
    + 1/2) moves with it."""
    flips = 0
    for size in (1, 2, 3, 7, 24, 100, 224, 255, 256, 500, 512, 1000, 4095):
        lam = _ties(size, 2 * min(size, 64))
        want = np.array([_exact_side(v, size) for v in lam], np.float32)
        assert np.all(want[0::2] == want[1::2] + 1)
        for B in (NP, _SqrtUp(), _SqrtDown(), _Sloppy()):
            np.testing.assert_array_equal(cut_side(B, lam, size), want)
            naive = np.floor(B.sqrt(1.0 - lam) * np.float32(size) + np.float32(0.5))
            flips += int(np.sum(naive != want))
    assert flips > 0  # the ties are real: a last-bit change of sqrt moves a naive side


def _exact_edges(c, e, size):
    """The rule in rational arithmetic: s = floor(e + 1/2), lo = floor(c size - s/2 + 1/2),
    hi = lo + s, clipped to [0, size] (e clamped to [0, 2 size], c to [-1, 2])."""
    c = min(max(Fraction(float(c)), Fraction(-1)), Fraction(2))
    e = min(max(Fraction(float(e)), Fraction(0)), Fraction(2 * size))
    s = math.floor(e + Fraction(1, 2))
    lo = math.floor(c * size - Fraction(s, 2) + Fraction(1, 2))
    return min(max(lo, 0), size), min(max(lo + s, 0), size), s


def _near(v, k=2):
    """float32 values around each of ``v``: v itself and k neighbours either way."""
    out = [np.asarray(v, np.float32)]
    up = down = out[0]
    for _ in range(k):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return np.concatenate(out)


@pytest.mark.parametrize("size", [1, 2, 5, 17, 64, 224, 333, 512, 2048])
def test_box_edges_are_the_rule_in_exact_arithmetic(size):
    """Centres on (and around) every tie ``c * 2 size = integer``, extents on (and around)
    every half-integer, plus random values: the edges are the rule's, computed with
    fractions."""
    rng = np.random.default_rng(size)
    n = 2 * size
    ties_c = _near(_centre_table(n)[rng.integers(0, 3 * n + 1, 64)])
    ties_e = _near(np.arange(0, 2 * size + 1, dtype=np.float32)[rng.integers(0, 2 * size + 1, 32)] + np.float32(0.5))
    c = np.concatenate([ties_c, rng.uniform(-1.5, 2.5, 64).astype(np.float32), (rng.integers(0, 2**24, 64) / 2**24)])
    e = np.concatenate([ties_e, rng.uniform(-1, 2.5 * size, 64).astype(np.float32)])
    # every centre with 4 of the extents, every extent with 4 of the centres
    cc = np.concatenate([np.repeat(c, 4), rng.choice(c, 4 * len(e))]).astype(np.float32)
    ee = np.concatenate([rng.choice(e, 4 * len(c)), np.repeat(e, 4)]).astype(np.float32)
    lo, hi = box_edges(NP, cc, ee, size)
    want = np.array([_exact_edges(a, b, size) for a, b in zip(cc, ee)], np.float32)
    np.testing.assert_array_equal(lo, want[:, 0])
    np.testing.assert_array_equal(hi, want[:, 1])
    # given the side in whole pixels, edges_of_side is the same rule
    lo2, hi2 = edges_of_side(NP, cc, want[:, 2], size)
    np.testing.assert_array_equal(lo2, want[:, 0])
    np.testing.assert_array_equal(hi2, want[:, 1])


def test_nan_params_give_empty_boxes():
    lo, hi = box_edges(NP, np.float32([np.nan, 0.5, np.nan]), np.float32([3, np.nan, np.nan]), 10)
    assert np.all(lo == hi)
    assert cut_side(NP, np.float32([np.nan]), 10)[0] == 0


def test_sloppy_transcendentals_change_no_cutmix_or_cutout_draw_or_pixel():
    """A backend whose sqrt / exp / log / cos / sin round differently draws the same CutMix
    and CutOut params and pastes the same pixels (MixUp's Beta draws do move: the backend is
    sloppy indeed)."""
    n, h, w = 64, 37, 23
    ops = [aug.CutMix(0.6), aug.CutOut(holes=3, size=(0.1, 0.7))]
    x, y = _source_images(n, h, w), np.arange(n) % K
    runs = [aug.Pipeline(ops, num_classes=K, seed=5).compile(B) for B in (NumpyBackend(), _Sloppy())]
    params = [r.sample(n, (h, w, 3)) for r in runs]
    for k in params[0]:
        np.testing.assert_array_equal(params[1][k], params[0][k], err_msg=k)
    outs = [r.apply(x, y, p) for r, p in zip(runs, params)]
    np.testing.assert_array_equal(outs[1][0], outs[0][0])
    np.testing.assert_array_equal(outs[1][1], outs[0][1])
    mix = [aug.Pipeline([aug.MixUp(0.6)], seed=5).compile(B).sample(n, (h, w, 3))["0/lam"]
           for B in (NumpyBackend(), _Sloppy())]
    assert not np.array_equal(mix[0], mix[1])


def test_plan_prepare_builds_every_host_table_a_call_reads():
    """``torch.compile`` reads filled host tables as constants, and would trace the NumPy
    code that builds a missing one: ``Plan.prepare`` must build all of them first."""
    from augspec.core.ops import mix, region

    tables = (mix.beta_table, mix._cut_table, region._centre_table)
    pipe = aug.Pipeline([aug.RandomResizedCrop((11, 19)), aug.CutOut(holes=2), aug.CutMix(0.7),
                         aug.OneOf([aug.CutMix(2.0), aug.MixUp(0.3)])], num_classes=5, seed=0)
    run = pipe.compile("numpy")
    for t in tables:
        t.cache.clear()
    run.plan.prepare(4, (30, 40, 3))
    filled = [dict(t.cache) for t in tables]
    assert all(filled)
    run.apply(np.zeros((4, 30, 40, 3), np.uint8), np.arange(4) % 5, run.sample(4, (30, 40, 3)))
    assert [dict(t.cache).keys() for t in tables] == [f.keys() for f in filled]
