"""Perspective and ElasticTransform against torchvision v2 itself: with the same corner
moves (read back from torchvision's own generator) and the same uniform noise, the
images agree within 1/255 on interior pixels (bilinear, float images)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

import augspec as aug  # noqa: E402

TOL = 1.0 / 255.0


def images(n, h, w, seed=0):
    return np.random.default_rng(seed).random((n, h, w, 3)).astype(np.float32)


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def hwc(t):
    return t.numpy().transpose(1, 2, 0)


def corner_moves(seed, h, w, distortion):
    """The inward moves RandomPerspective(p=1) draws under ``torch.manual_seed(seed)``:
    its gate's rand(1), then randint per corner, x then y (its ``make_params`` order)."""
    torch.manual_seed(seed)
    torch.rand(1)
    bh, bw = int(distortion * (h // 2)) + 1, int(distortion * (w // 2)) + 1
    tl = [int(torch.randint(0, bw, (1,))), int(torch.randint(0, bh, (1,)))]
    tr = [int(torch.randint(w - bw, w, (1,))), int(torch.randint(0, bh, (1,)))]
    br = [int(torch.randint(w - bw, w, (1,))), int(torch.randint(h - bh, h, (1,)))]
    bl = [int(torch.randint(0, bw, (1,))), int(torch.randint(h - bh, h, (1,)))]
    return np.array([[tl[0], tl[1]], [w - 1 - tr[0], tr[1]], [w - 1 - br[0], h - 1 - br[1]],
                     [bl[0], h - 1 - bl[1]]])


def source_inside(h, w, off, margin=1.0):
    """Output pixels whose source (torchvision's homography, float64) lies ``margin`` inside."""
    start = [(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)]
    end = [(off[0, 0], off[0, 1]), (w - 1 - off[1, 0], off[1, 1]), (w - 1 - off[2, 0], h - 1 - off[2, 1]),
           (off[3, 0], h - 1 - off[3, 1])]
    a, rhs = [], []
    for (x, y), (u, v) in zip(end, start):  # output -> input
        a += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    c = np.append(np.linalg.solve(np.asarray(a, float), np.asarray(rhs, float)), 1.0).reshape(3, 3)
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    p = np.stack([j, i, np.ones_like(i)], -1) @ c.T
    sx, sy = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    return (sx > margin) & (sx < w - margin) & (sy > margin) & (sy < h - margin)


@pytest.mark.parametrize("h, w, distortion", [(40, 52, 0.5), (64, 48, 0.8), (31, 31, 0.3)])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_perspective_matches_torchvision(h, w, distortion, backend):
    n = 4
    x = images(n, h, w, seed=h)
    op = aug.Perspective(distortion, p=1.0)
    run = aug.Pipeline([op], seed=0).compile(backend)
    tv = v2.RandomPerspective(distortion_scale=distortion, p=1.0)
    off = np.stack([corner_moves(100 + k, h, w, distortion) for k in range(n)])
    corners = op.params_for(off, h, w)["corners"]
    if backend == "torch":
        out = run.apply(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), None,
                        {"0/corners": torch.from_numpy(corners)}).numpy().transpose(0, 2, 3, 1)
    else:
        out = run.apply(x, None, {"0/corners": corners})
    for k in range(n):
        torch.manual_seed(100 + k)
        ref = hwc(tv(nchw(x[k])))
        inside = source_inside(h, w, off[k])
        assert inside.mean() > 0.2
        assert np.abs(out[k] - ref)[inside].max() < TOL


def test_perspective_functional_with_given_corners():
    h, w = 36, 44
    x = images(1, h, w, seed=5)[0]
    off = np.array([[3, 2], [5, 0], [1, 4], [6, 7]])
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    end = [[3, 2], [w - 1 - 5, 0], [w - 1 - 1, h - 1 - 4], [6, h - 1 - 7]]
    ref = hwc(F.perspective(nchw(x), start, end, interpolation=v2.InterpolationMode.BILINEAR))
    op = aug.Perspective(0.5, p=1.0)
    corners = op.params_for(off[None], h, w)["corners"]
    out = aug.Pipeline([op]).compile("numpy").apply(x[None], None, {"0/corners": corners})[0]
    inside = source_inside(h, w, off)
    assert np.abs(out - ref)[inside].max() < TOL


def torchvision_field(seed, h, w):
    """The uniform noise ElasticTransform draws under ``torch.manual_seed(seed)``: dx, then dy
    (the blur between them draws nothing)."""
    torch.manual_seed(seed)
    dx = torch.rand(1, 1, h, w) * 2 - 1
    dy = torch.rand(1, 1, h, w) * 2 - 1
    return torch.cat([dx, dy], 1)[0].permute(1, 2, 0).numpy()  # (H, W, 2)


@pytest.mark.parametrize("h, w, alpha, sigma", [(48, 56, 50.0, 5.0), (40, 33, 20.0, 3.0), (64, 64, 80.0, 7.5),
                                                 (30, 36, 10.0, 0.0)])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_elastic_matches_torchvision(h, w, alpha, sigma, backend):
    n = 3
    x = images(n, h, w, seed=w)
    tv = v2.ElasticTransform(alpha=alpha, sigma=sigma)
    field = np.stack([torchvision_field(200 + k, h, w) for k in range(n)]).astype(np.float32)
    op = aug.ElasticTransform(alpha=alpha, sigma=sigma)
    run = aug.Pipeline([op], seed=0).compile(backend)
    if backend == "torch":
        out = run.apply(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), None,
                        {"0/field": torch.from_numpy(field)}).numpy().transpose(0, 2, 3, 1)
    else:
        out = run.apply(x, None, {"0/field": field})
    d = np.asarray(op.displacement(_np_backend(), {"field": field}, aug.Context(n, h, w, 3)))
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    for k in range(n):
        torch.manual_seed(200 + k)
        ref = hwc(tv(nchw(x[k])))
        sx, sy = j + d[k, ..., 0], i + d[k, ..., 1]
        inside = (sx > 1) & (sx < w - 1) & (sy > 1) & (sy < h - 1)
        assert inside.mean() > 0.5
        assert np.abs(out[k] - ref)[inside].max() < TOL


def test_elastic_functional_with_given_displacement():
    """v2.functional.elastic with the displacement augspec computes: the same image."""
    h, w = 32, 40
    x = images(2, h, w, seed=9)
    op = aug.ElasticTransform(alpha=30.0, sigma=4.0)
    run = aug.Pipeline([op], seed=4).compile("numpy")
    params = run.sample(2, (h, w, 3))
    out = run.apply(x, None, params)
    d = np.asarray(op.displacement(_np_backend(), {"field": params["0/field"]}, aug.Context(2, h, w, 3)))
    i, j = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    for k in range(2):
        norm = d[k] / np.array([w / 2.0, h / 2.0], np.float32)  # pixels -> torchvision's grid units
        ref = hwc(F.elastic(nchw(x[k]), torch.from_numpy(norm[None].copy()),
                            interpolation=v2.InterpolationMode.BILINEAR))
        sx, sy = j + d[k, ..., 0], i + d[k, ..., 1]
        inside = (sx > 1) & (sx < w - 1) & (sy > 1) & (sy < h - 1)
        assert np.abs(out[k] - ref)[inside].max() < TOL


def _np_backend():
    from augspec.backends.numpy import NumpyBackend

    return NumpyBackend()
