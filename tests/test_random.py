"""The counter-based generator, key derivation and the distributions.

Statistical checks use many samples, fixed keys and loose bounds (several
standard errors), so they are deterministic and do not flake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import augspec as aug
from augspec.backends.numpy import NumpyBackend
from augspec.core.random import (
    M32,
    Bernoulli,
    Beta,
    Categorical,
    DrawSpec,
    Normal,
    Permutation,
    Sampler,
    Uniform,
    bits_to_uniform,
    derive_key,
    random_bits,
)

B = NumpyBackend()
M64 = (1 << 64) - 1


# ---------------------------------------------- an independent pure-Python reference


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _lowbias32(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def ref_key(seed, epoch=0, step=0, rank=0, worker=0):
    h = _splitmix64(seed & M64)
    for v in (epoch, step, rank, worker):
        h = _splitmix64(h ^ (v & M64))
    return h & M32, h >> 32


def ref_bits(counter, key):
    lo, hi = counter & M32, counter >> 32
    x = _lowbias32(lo ^ key[0])
    x = _lowbias32(x ^ hi ^ key[1])
    return _lowbias32(x ^ key[0])


def np_key(k):
    return (np.asarray(k[0], np.uint32), np.asarray(k[1], np.uint32))


def words(counters):
    """int counters ``slot * 2**32 + index`` as the (2, n) uint32 words the generator reads."""
    c = np.asarray(counters, np.uint64)
    return np.stack([(c & M32).astype(np.uint32), (c >> np.uint64(32)).astype(np.uint32)])


def draw(dist, n, key=(12345, 678), hwc=None):
    s = Sampler([DrawSpec("d", dist, 0)])
    return s.sample(B, n, np_key(key), hwc)["d"]


# ---------------------------------------------------------------------- keys


@pytest.mark.parametrize("args", [(0,), (1, 2, 3, 4, 5), (2**63 - 1, 7, 0, 0, 3), (42, 0, 10**6, 255, 15)])
def test_derive_key_matches_splitmix64_reference(args):
    k = derive_key(*args)
    assert k == ref_key(*args)
    assert all(0 <= w <= M32 for w in k)


def test_derive_key_defaults_and_distinctness():
    assert derive_key(5) == derive_key(5, 0, 0, 0, 0)
    keys = {derive_key(s, e, st, r, w) for s in range(3) for e in range(3) for st in range(3)
            for r in range(3) for w in range(3)}
    assert len(keys) == 3**5  # every (seed, epoch, step, rank, worker) its own key
    # the fields are not interchangeable
    assert derive_key(0, 1, 0) != derive_key(0, 0, 1)
    assert derive_key(0, 0, 0, 1) != derive_key(0, 0, 0, 0, 1)


# ---------------------------------------------------------------- the bits


def test_random_bits_match_the_reference_bit_for_bit():
    key = derive_key(7, 1, 2)
    counters = np.array([0, 1, 2, 3, 1000, (5 << 32) + 17, (123 << 32) + 2**31, 2**40 - 1], np.int64)
    got = random_bits(B, words(counters), np_key(key))
    assert got.dtype == np.uint32  # 32-bit unsigned arithmetic only
    assert got.tolist() == [ref_bits(int(c), key) for c in counters]


def test_uniform_bits_are_uniform():
    n = 1 << 18
    bits = random_bits(B, words(np.arange(n)), np_key(derive_key(99)))
    assert bits.min() >= 0 and bits.max() <= M32
    # every bit is set half of the time
    freq = np.array([((bits >> b) & 1).mean() for b in range(32)])
    assert np.all(np.abs(freq - 0.5) < 5 * 0.5 / math.sqrt(n))
    u = bits_to_uniform(B, bits)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    # exactly the top 24 bits
    np.testing.assert_array_equal(u * np.float32(1 << 24), (bits >> 8).astype(np.float32))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    # chi-square over 64 bins (63 dof: mean 63, sd ~11)
    counts = np.bincount((u * 64).astype(int), minlength=64)
    chi2 = ((counts - n / 64) ** 2 / (n / 64)).sum()
    assert chi2 < 63 + 6 * 11.2
    # neighbouring counters are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


def test_neighbouring_keys_give_unrelated_streams():
    c = words(np.arange(1 << 14))
    a = bits_to_uniform(B, random_bits(B, c, np_key(derive_key(0, 0, 0))))
    b = bits_to_uniform(B, random_bits(B, c, np_key(derive_key(0, 0, 1))))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
    assert np.mean(a == b) < 0.001


# ------------------------------------------------------------ distributions


def test_uniform_distribution():
    v = draw(Uniform(low=-3.0, high=5.0), 50000)
    assert v.dtype == np.float32 and v.shape == (50000,)
    assert v.min() >= -3.0 and v.max() <= 5.0
    assert abs(v.mean() - 1.0) < 0.05 and abs(v.var() - 64 / 12) < 0.1
    assert np.all(draw(Uniform(low=2.5, high=2.5), 10) == 2.5)  # a degenerate range is exact


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.93, 1.0])
def test_bernoulli_distribution(p):
    v = draw(Bernoulli(p=p), 40000)
    assert v.dtype == np.bool_
    assert abs(v.mean() - p) < 5 * math.sqrt(max(p * (1 - p), 1e-12) / 40000) + 1e-12


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (2.0, 0.5)])
def test_normal_distribution(mean, std):
    v = draw(Normal(mean=mean, std=std), 60000).astype(np.float64)
    assert np.all(np.isfinite(v))
    assert abs(v.mean() - mean) < 5 * std / math.sqrt(60000)
    assert abs(v.std() - std) < 0.02 * std
    z = (v - mean) / std
    assert abs((z**3).mean()) < 0.05  # symmetric
    assert abs((z**4).mean() - 3.0) < 0.1  # Gaussian tails
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.01


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.8, 0.8), (0.2, 0.2), (5.0, 5.0), (2.0, 0.5), (0.3, 3.0),
                                 (0.05, 0.05), (0.02, 0.02), (0.01, 2.0)])
def test_beta_distribution(a, b):
    n = 40000
    v = draw(Beta(a=a, b=b), n).astype(np.float64)
    assert np.all(np.isfinite(v)) and v.min() >= 0.0 and v.max() <= 1.0
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(v.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(v.var() - var) < 0.05 * var
    if a == b == 1.0:  # Beta(1, 1) is uniform
        counts = np.bincount(np.minimum((v * 20).astype(int), 19), minlength=20)
        chi2 = ((counts - n / 20) ** 2 / (n / 20)).sum()
        assert chi2 < 19 + 6 * math.sqrt(38)
    if a == b >= 0.2:  # (a U-shaped density is too thin at 0.5 for a stable median)
        assert abs(np.median(v) - 0.5) < 0.02
    if max(a, b) <= 0.05:  # small shapes: nearly all mass within 0.01 of 0 or 1, none stuck at 0.5
        assert np.mean((v > 0.01) & (v < 0.99)) < 0.25
        assert np.mean(v == 0.5) < 1e-3


def test_categorical_distribution():
    w = (1.0, 0.0, 3.0, 6.0)
    v = draw(Categorical(weights=w), 50000)
    assert v.dtype == np.int64 and v.min() >= 0 and v.max() <= 3
    freq = np.bincount(v, minlength=4) / 50000
    np.testing.assert_allclose(freq, np.array(w) / 10, atol=0.01)
    assert freq[1] == 0.0  # weight 0: never drawn


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 256, 1000])
def test_permutation_is_a_permutation(n):
    for k in range(3):
        p = draw(Permutation(), n, key=derive_key(k))
        assert sorted(p.tolist()) == list(range(n))


def test_permutation_is_random():
    n = 8
    firsts = [int(draw(Permutation(), n, key=derive_key(k))[0]) for k in range(800)]
    freq = np.bincount(firsts, minlength=n) / 800
    np.testing.assert_allclose(freq, 1 / n, atol=0.06)
    fixed = np.mean([np.mean(draw(Permutation(), 100, key=derive_key(k)) == np.arange(100)) for k in range(20)])
    assert fixed < 0.05  # about 1 / n fixed points, not the identity


def test_shapes_symbols_and_batch_wide_draws():
    v = draw(Uniform(low=0, high=1, shape=("H", "W", 2)), 3, hwc=(4, 5, 6))
    assert v.shape == (3, 4, 5, 2)
    with pytest.raises(aug.SpecError, match="image_shape"):
        draw(Uniform(low=0, high=1, shape=("H",)), 3)
    v = draw(Beta(a=1.0, b=1.0, per_sample=False), 9)
    assert v.shape == (9,) and np.all(v == v[0])
    v = draw(Bernoulli(p=0.5, shape=(3,), per_sample=False), 5)
    assert v.shape == (5, 3) and np.all(v == v[:1])


# ------------------------------------------------------------ reproducibility


def _sampler():
    return Sampler([DrawSpec("u", Uniform(low=0, high=1), 0), DrawSpec("b", Beta(a=0.4, b=0.4), 1),
                    DrawSpec("z", Normal(shape=("H", "W", "C")), 2), DrawSpec("c", Categorical(weights=(1, 2)), 3),
                    DrawSpec("k", Bernoulli(p=0.3, shape=(2,)), 4)])


def test_values_of_sample_i_do_not_depend_on_batch_size():
    s = _sampler()
    key = np_key(derive_key(3, 1, 4))
    small = s.sample(B, 5, key, (3, 4, 2))
    big = s.sample(B, 64, key, (3, 4, 2))
    for k in small:
        np.testing.assert_array_equal(small[k], big[k][:5])


def test_same_key_same_draws_and_counters_vector():
    s = _sampler()
    key = np_key(derive_key(11))
    a = s.sample(B, 7, key, (2, 3, 3))
    b = _sampler().sample(B, 7, key, (2, 3, 3))
    c = s.sample(B, 7, key, (2, 3, 3), counters=s.counters_numpy(7, (2, 3, 3)))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])
    cnt = s.counters_numpy(7, (2, 3, 3))
    assert cnt.dtype == np.uint32 and cnt.shape[0] == 2
    assert len({(int(i), int(slot)) for i, slot in cnt.T}) == cnt.shape[1]  # every value its own counter
    assert set(cnt[1].tolist()) == {0, 1, 2, 3, 4}  # the slot in the second word


def test_different_slots_give_different_values():
    s = Sampler([DrawSpec("a", Uniform(low=0, high=1), 0), DrawSpec("b", Uniform(low=0, high=1), 1)])
    p = s.sample(B, 100, np_key(derive_key(0)))
    assert not np.any(p["a"] == p["b"])


def test_run_state_keys():
    pipe = aug.Pipeline([aug.Affine(rotate=30), aug.MixUp()], seed=123)
    r1, r2 = pipe.compile("numpy"), pipe.compile("numpy")
    a1, a2 = r1.sample(4), r1.sample(4)
    b1 = r2.sample(4)
    np.testing.assert_array_equal(a1["0/rotate"], b1["0/rotate"])  # same seed, same first call
    assert not np.array_equal(a1["0/rotate"], a2["0/rotate"])  # the step advances
    assert r1.state == {"seed": 123, "epoch": 0, "step": 2, "rank": 0, "worker": 0}
    r1.set_epoch(0)
    np.testing.assert_array_equal(r1.sample(4)["0/rotate"], a1["0/rotate"])
    r1.set_state(step=1)
    np.testing.assert_array_equal(r1.sample(4)["0/rotate"], a2["0/rotate"])
    seen = {a1["0/rotate"].tobytes()}
    for kw in ({"epoch": 1, "step": 0}, {"epoch": 0, "step": 0, "rank": 1}, {"rank": 0, "worker": 1, "step": 0}):
        r1.set_state(**kw)
        v = r1.sample(4)["0/rotate"].tobytes()
        assert v not in seen
        seen.add(v)
    # a run compiled with a rank or worker draws differently from step 0
    r3 = pipe.compile("numpy", rank=1)
    assert not np.array_equal(r3.sample(4)["0/rotate"], a1["0/rotate"])
    assert r3.key() == derive_key(123, 0, 1, 1, 0)


def test_no_seed_gives_fresh_entropy():
    pipe = aug.Pipeline([aug.Affine(rotate=30)])
    a, b = pipe.compile("numpy"), pipe.compile("numpy")
    assert a.seed != b.seed
    assert not np.array_equal(a.sample(8)["0/rotate"], b.sample(8)["0/rotate"])
