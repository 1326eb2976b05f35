"""A plugin geometric op (``tilt`` of tests/plugin_pkg) fuses into the one warp of the
torch and TensorFlow backends exactly as the built-in geometric ops do: a pipeline of
Affine, tilt and a gated flip resamples the batch once, and agrees with NumPy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import augspec as aug

sys.path.insert(0, str(Path(__file__).parent / "plugin_pkg"))
from augspec_demo_plugin import Tilt  # noqa: E402

X = np.random.default_rng(0).integers(0, 256, (5, 12, 14, 3), dtype=np.uint8)  # NHWC
OPS = [aug.Affine(rotate=10, scale=0.1), Tilt(degrees=20), aug.HorizontalFlip(p=0.5)]


def _reference(params):
    run = aug.Pipeline(OPS, seed=1).compile("numpy")
    return run.apply(X, None, params)


def _counting(target, name, calls):
    real = getattr(target, name)

    def wrapper(*a, **kw):
        calls.append(name)
        return real(*a, **kw)

    return wrapper


def test_the_plan_has_one_geometric_stage():
    run = aug.Pipeline(OPS, seed=1).compile("numpy")
    assert [st.kind for st in run.plan.stages] == ["geometric"]
    assert len(run.plan.stages[0].leaves) == 3


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_torch_resamples_once(monkeypatch, layout):
    torch = pytest.importorskip("torch")
    import augspec.backends.torch.stages as stages

    run = aug.Pipeline(OPS, seed=1).compile("torch", layout=layout)
    params = run.sample(len(X), X.shape[1:] if layout == "NHWC" else (3, 12, 14))
    calls: list[str] = []
    monkeypatch.setattr(stages, "_resample", _counting(stages, "_resample", calls))  # the eager stage kernel
    monkeypatch.setattr(run.backend, "warp_affine", _counting(run.backend, "warp_affine", calls))  # generic path
    x = torch.from_numpy(X if layout == "NHWC" else X.transpose(0, 3, 1, 2).copy())
    out = run.apply(x, None, params).numpy()
    assert len(calls) == 1, calls
    if layout == "NCHW":
        out = out.transpose(0, 2, 3, 1)
    ref = _reference({k: v.numpy() for k, v in params.items()})
    np.testing.assert_allclose(out[:, 1:-1, 1:-1].astype(np.float32), ref[:, 1:-1, 1:-1].astype(np.float32), atol=1.0)


def test_tensorflow_resamples_once(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    run = aug.Pipeline(OPS, seed=1).compile("tensorflow")
    params = run.sample(len(X), X.shape[1:])
    calls: list[str] = []
    monkeypatch.setattr(run.backend, "warp_affine", _counting(run.backend, "warp_affine", calls))
    out = run.apply(tf.constant(X), None, params).numpy()
    assert len(calls) == 1, calls  # one warp in the traced graph
    ref = _reference({k: np.asarray(v) for k, v in params.items()})
    np.testing.assert_allclose(out[:, 1:-1, 1:-1].astype(np.float32), ref[:, 1:-1, 1:-1].astype(np.float32), atol=1.0)


def test_targets_follow_a_plugin_warp_with_no_code_of_its_own():
    """Masks, boxes and keypoints move with ``tilt`` through its matrix alone."""
    x = np.zeros((2, 16, 16, 1), np.float32)
    x[:, 5, 9, 0] = 1.0
    m = (x[..., 0] * 3).astype(np.uint8)
    run = aug.Pipeline([Tilt(degrees=90)], seed=2).compile("numpy")
    params = run.sample(2, (16, 16, 1))
    params = {k: np.array([90.0, -90.0], np.float32) for k in params}  # quarter turns: whole pixels
    t = aug.Pipeline([Tilt(degrees=90)], seed=2).compile("numpy")
    t.sample = lambda n, shape=None: params  # the same pinned draws for the call with targets
    out = t(x, masks=m, boxes=np.array([[[9, 5, 10, 6]]] * 2, np.float32),
            keypoints=np.array([[[9.5, 5.5]]] * 2, np.float32))
    for i in range(2):
        (r, c), = np.argwhere(out["images"][i, ..., 0] > 0.5)
        assert out["masks"][i, r, c] == 3 and (out["masks"][i] == 3).sum() == 1
        assert np.allclose(out["keypoints"][i, 0], [c + 0.5, r + 0.5], atol=1e-4)
        assert np.allclose(out["boxes"][i, 0], [c, r, c + 1, r + 1], atol=1e-4)
