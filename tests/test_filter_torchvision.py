"""Fidelity of Sharpness and GaussianBlur against torchvision.transforms.v2.functional
(``adjust_sharpness``, ``gaussian_blur``: uint8 within one level, float within 1e-5), and
of RandomErasing's box distribution against timm's ``RandomErasing`` and torchvision's
``v2.RandomErasing`` run many times (the erased fraction and the box sides).

Skipped where torchvision or timm is not installed (the main development venv); run it
in the fidelity venv::

    /work/tvenv/bin/python -m pytest tests/test_filter_torchvision.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
pytest.importorskip("torchvision", reason="torchvision is not installed (the fidelity reference)")
timm_erasing = pytest.importorskip("timm.data.random_erasing", reason="timm is not installed")

from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

import augspec as aug  # noqa: E402

BACKENDS = ("numpy", "torch")


def _nchw(seed, n, c, h, w):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def _apply(op, key, values, x, backend):
    """``op`` on the NCHW batch ``x`` with the per-sample draw ``key`` set to ``values``."""
    run = aug.Pipeline([op], seed=0).compile(backend, layout="NCHW")
    params = run.sample(x.shape[0], x.shape[1:])
    params[key] = np.asarray(values, np.float32)
    if backend == "torch":
        params = {k: torch.as_tensor(np.asarray(v)) for k, v in params.items()}
        return run.apply(torch.from_numpy(x), None, params).numpy()
    return np.asarray(run.apply(x, None, params))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", [1, 3])
def test_sharpness_matches_torchvision(backend, c):
    x = _nchw(1, 6, c, 19, 26)
    factors = [0.0, 0.4, 1.0, 1.5, 2.0, 3.5]
    op = aug.Sharpness(factor=(0.0, 4.0))
    out = _apply(op, "0/factor", factors, x, backend)
    xf = x.astype(np.float32) / 255.0
    outf = _apply(op, "0/factor", factors, xf, backend)
    for i, f in enumerate(factors):
        want = F.adjust_sharpness(torch.from_numpy(x[i]), f).numpy()
        d = np.abs(out[i].astype(int) - want.astype(int))
        # torchvision rounds the uint8 degenerate image before the blend, an error that the
        # blend scales by |1 - f|, and truncates: one level for f in [0, 2]
        assert d.max() <= (1 if f <= 2.0 else 2), (f, d.max())
        wantf = F.adjust_sharpness(torch.from_numpy(xf[i]), f).numpy()
        np.testing.assert_allclose(outf[i], wantf, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ks", [3, 9, 23, (3, 7), (11, 5), (1, 5)])
def test_gaussian_blur_matches_torchvision(backend, ks):
    x = _nchw(2, 5, 3, 24, 31)
    sigmas = [0.1, 0.7, 1.3, 2.0, 5.0]
    op = aug.GaussianBlur(kernel_size=ks, sigma=(0.1, 5.0))
    kh, kw = op.kernel_size
    out = _apply(op, "0/sigma", sigmas, x, backend)
    xf = x.astype(np.float32) / 255.0
    outf = _apply(op, "0/sigma", sigmas, xf, backend)
    for i, s in enumerate(sigmas):
        # torchvision's kernel_size is (x, y): width first
        want = F.gaussian_blur(torch.from_numpy(x[i]), kernel_size=[kw, kh], sigma=[s, s]).numpy()
        d = np.abs(out[i].astype(int) - want.astype(int))
        assert d.max() <= 1, (s, d.max())
        wantf = F.gaussian_blur(torch.from_numpy(xf[i]), kernel_size=[kw, kh], sigma=[s, s]).numpy()
        np.testing.assert_allclose(outf[i], wantf, atol=1e-5)


def test_gaussian_blur_transform_sigma_range_matches_torchvision():
    """The same range of sigma as ``v2.GaussianBlur``: uniform in (min, max), one per image."""
    op = aug.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))
    s = aug.Pipeline([op], seed=0).compile("numpy").sample(5000, (8, 8, 3))["0/sigma"]
    t = v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))
    ref = np.array([t.make_params([torch.zeros(3, 8, 8)])["sigma"][0] for _ in range(5000)])
    assert abs(s.mean() - ref.mean()) < 0.04 and abs(s.std() - ref.std()) < 0.04
    assert s.min() >= 0.1 and s.max() <= 2.0


# ---------------------------------------------------------------- RandomErasing


def _ours(op, n, h, w):
    """(erased fraction, box heights, box widths) of ``n`` one-box images (zeros in, 1 fills)."""
    x = np.zeros((n, h, w, 1), np.float32)
    out = aug.Pipeline([op], seed=5).compile("numpy")(x)[..., 0] != 0
    return _measure(out)


def _measure(mask):
    frac = mask.mean(axis=(1, 2))
    rows, cols = mask.any(axis=2).sum(axis=1), mask.any(axis=1).sum(axis=1)
    hit = frac > 0
    return frac, rows[hit], cols[hit]


def _timm(n, h, w, **kw):
    torch.manual_seed(0)
    import random

    random.seed(0)
    t = timm_erasing.RandomErasing(device="cpu", **kw)
    x = torch.ones(n, 1, h, w)
    return _measure((t(x)[:, 0] == 0).numpy())


def _torchvision(n, h, w, **kw):
    torch.manual_seed(0)
    t = v2.RandomErasing(value=0, **kw)
    out = np.stack([(t(torch.ones(1, h, w))[0] == 0).numpy() for _ in range(n)])
    return _measure(out)


def _close(a, b, what):
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert abs(a.mean() - b.mean()) < 4.5 * se + 1e-3, (what, a.mean(), b.mean(), se)


@pytest.mark.parametrize("h, w, kw", [
    (24, 24, {}),
    (12, 40, {"min_area": 0.1, "max_area": 0.7, "min_aspect": 0.5}),
    (20, 20, {"max_count": 3}),
    (16, 32, {"min_count": 2, "max_count": 4, "probability": 0.6}),
])
def test_erasing_matches_timm(h, w, kw):
    n = 6000
    kw = {"probability": 1.0, **kw}
    ratio = (kw.get("min_aspect", 0.3), 1.0 / kw.get("min_aspect", 0.3))
    op = aug.RandomErasing(p=kw["probability"], scale=(kw.get("min_area", 0.02), kw.get("max_area", 1 / 3)),
                           ratio=ratio, count=(kw.get("min_count", 1), kw.get("max_count", kw.get("min_count", 1))),
                           value=1.0)
    frac, rows, cols = _ours(op, n, h, w)
    tfrac, trows, tcols = _timm(n, h, w, **kw)
    _close(frac, tfrac, "erased fraction")
    _close((frac > 0).astype(float), (tfrac > 0).astype(float), "images erased")
    if op.count == (1, 1):  # one box: its sides
        _close(rows.astype(float), trows.astype(float), "box height")
        _close(cols.astype(float), tcols.astype(float), "box width")


def test_erasing_matches_torchvision():
    n, h, w = 3000, 18, 27
    op = aug.RandomErasing(p=1.0, scale=(0.05, 0.5), ratio=(0.4, 2.5), value=1.0)
    frac, rows, cols = _ours(op, n, h, w)
    tfrac, trows, tcols = _torchvision(n, h, w, p=1.0, scale=(0.05, 0.5), ratio=(0.4, 2.5))
    _close(frac, tfrac, "erased fraction")
    _close(rows.astype(float), trows.astype(float), "box height")
    _close(cols.astype(float), tcols.astype(float), "box width")
