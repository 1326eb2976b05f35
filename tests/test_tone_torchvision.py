"""Fidelity of the tone ops against torchvision.transforms.v2.functional: solarize,
posterize, equalize, autocontrast, invert and rgb_to_grayscale on uint8 tensors (and
float ones where torchvision takes the same parameter), with augspec's per-sample params
injected, on the NumPy and torch backends, within one level of 255.

Skipped where torchvision is not installed (the main development venv); run it where it is::

    /work/tvenv/bin/python -m pytest tests/test_tone_torchvision.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (the fidelity reference)")

from torchvision.transforms.v2 import functional as F  # noqa: E402

import augspec as aug  # noqa: E402

BACKENDS = ("numpy", "torch")
TOL = 1  # uint8 levels


def _images(n: int = 8, h: int = 28, w: int = 36, seed: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8: noise, dull bands of levels, a constant channel, two levels, and a
    real photograph (scikit-image's) where it is installed."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    x[1] = 90 + x[1] // 5
    x[2] = 200 + x[2] // 16
    x[3, :, :, 1] = 77
    x[4] = np.where(rng.random((h, w, 3)) < 0.3, 10, 250).astype(np.uint8)
    x[5] = np.linspace(0, 255, w, dtype=np.float32).astype(np.uint8)[None, :, None] // 2 + 40
    try:
        from skimage import data

        p = data.chelsea()
        x[6] = p[100:100 + h, 200:200 + w]
        x[7] = p[:h * 4:4, :w * 4:4] // 3 + 70
    except ImportError:
        pass
    return x


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _augspec(op: aug.Op, backend: str, x: np.ndarray, values: dict | None = None) -> np.ndarray:
    """``op`` on the uint8 (or float) NHWC batch ``x`` with its draws injected per sample
    (``values``: draw name -> (N,) values): an NCHW torch tensor out."""
    run = aug.Pipeline([op], seed=0).compile(backend, layout="NCHW")
    xin = _nchw(x) if backend == "torch" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    params = run.sample(len(x), tuple(xin.shape[1:]))
    for name, v in (values or {}).items():
        key = f"0/{name}"
        assert key in params, (key, list(params))
        arr = np.asarray(v, np.float32).reshape(tuple(params[key].shape))
        params[key] = torch.from_numpy(arr) if backend == "torch" else arr
    out = run.apply(xin, params=params)
    return out if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out))


def _tv(fn, x: np.ndarray, args: list | None = None) -> torch.Tensor:
    """torchvision's functional ``fn`` per image (``args[i]`` its argument), NCHW."""
    t = _nchw(x)
    return torch.stack([fn(t[i], *([] if args is None else [args[i]])) for i in range(len(t))])


def _apart(a: torch.Tensor, b: torch.Tensor) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return int((a.to(torch.int32) - b.to(torch.int32)).abs().max())


THRESHOLDS = [0, 1, 64, 128, 129, 200, 254, 255]
BITS = [0, 1, 2, 3, 4, 5, 6, 8]


@pytest.mark.parametrize("backend", BACKENDS)
def test_solarize(backend):
    x = _images()
    got = _augspec(aug.Solarize((0.0, 1.0)), backend, x, {"threshold": np.array(THRESHOLDS) / 255.0})
    assert _apart(got, _tv(F.solarize, x, THRESHOLDS)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_solarize_float_thresholds(backend):
    """Float images with torchvision's float thresholds (RandAugment's on float input)."""
    x = _images()
    xf = x.astype(np.float32) / np.float32(255.0)
    ts = list(np.linspace(1.0, 0.0, len(x)).astype(np.float32))
    got = _augspec(aug.Solarize((0.0, 1.0)), backend, xf, {"threshold": ts})
    want = _tv(F.solarize, xf, [float(t) for t in ts])
    assert float((got - want).abs().max()) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_posterize(backend):
    x = _images()
    got = _augspec(aug.Posterize((0, 8)), backend, x, {"bits": BITS})
    assert _apart(got, _tv(F.posterize, x, BITS)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_equalize(backend):
    x = _images()
    assert _apart(_augspec(aug.Equalize(), backend, x), _tv(F.equalize, x)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocontrast(backend):
    """torchvision truncates the stretched uint8 level, augspec rounds it: one level."""
    x = _images()
    assert _apart(_augspec(aug.AutoContrast(), backend, x), _tv(F.autocontrast, x)) <= TOL
    xf = x.astype(np.float32) / np.float32(255.0)
    got, want = _augspec(aug.AutoContrast(), backend, xf), _tv(F.autocontrast, xf)
    assert float((got - want).abs().max()) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_invert(backend):
    x = _images()
    assert _apart(_augspec(aug.Invert(), backend, x), _tv(F.invert, x)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_grayscale(backend):
    x = _images()
    want = _tv(lambda t: F.rgb_to_grayscale(t, num_output_channels=3), x)
    assert _apart(_augspec(aug.Grayscale(), backend, x), want) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_gated_per_sample(backend):
    """p = 0.5: the samples whose gate is off are the input, the others torchvision's."""
    x = _images()
    run = aug.Pipeline([aug.Equalize(p=0.5)], seed=3).compile(backend, layout="NCHW")
    xin = _nchw(x) if backend == "torch" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    params = run.sample(len(x), tuple(xin.shape[1:]))
    on = np.asarray(params["0/apply"].numpy() if hasattr(params["0/apply"], "numpy") else params["0/apply"])
    assert on.any() and not on.all()
    out = run.apply(xin, params=params)
    out = out if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out))
    want = torch.where(torch.from_numpy(on).reshape(-1, 1, 1, 1), _tv(F.equalize, x), _nchw(x))
    assert _apart(out, want) == 0
