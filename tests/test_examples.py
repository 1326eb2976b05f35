"""Smoke tests of the examples on a tiny setting: they run end to end and write their tables and charts."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")
PIL = pytest.importorskip("PIL.Image")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def examples():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("scarce_data"), importlib.import_module("transfer_learning")
    finally:
        sys.path.remove(str(EXAMPLES))


def _table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
            if ln.startswith("| ") and not ln.startswith("| setting") and not ln.startswith("| method")]


def test_metrics(examples):
    sd, _ = examples
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins: 0.9 (right), 0.8 (wrong), 0.6 (right), 0.7 (right) -> each its own bin
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.6) + abs(1 - 0.7)) / 4
    assert sd.ece(probs, y) == pytest.approx(expected)
    assert sd.ece(np.eye(3), np.arange(3)) == pytest.approx(0.0)
    idx = sd.stratified_subset(np.repeat(np.arange(4), 20), fraction=0.1, seed=0)
    assert np.bincount(np.repeat(np.arange(4), 20)[idx]).tolist() == [2, 2, 2, 2]
    x, labels = sd.load_digits_images()
    assert x.shape == (1797, 16, 16, 1) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert labels.shape == (1797,)


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_scarce_data_tiny(examples, tmp_path, framework, capsys):
    pytest.importorskip(framework)
    sd, _ = examples
    only = "none,geo+pixel+cutmix,all" if framework == "torch" else "all"  # TensorFlow: tracing is slow
    assert sd.main(["--tiny", "--framework", framework, "--only", only, "--out", str(tmp_path)]) == 0
    text = (tmp_path / f"scarce_data_{framework}.md").read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == only.split(",")
    for r in rows:
        acc, ece = (float(v.split("±")[0]) for v in r[1:3])
        assert 0.0 <= acc <= 1.0 and 0.0 <= ece <= 1.0
    assert rows[-1][3] in (framework, "numpy")
    with PIL.open(tmp_path / f"scarce_data_{framework}.png") as im:
        assert im.size == (1100, 420)
    with PIL.open(tmp_path / f"scarce_data_{framework}_reliability.png") as im:
        assert im.size == (330 * len(set(only.split(",")) & {"none", "all"}) + 10, 380)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_synthetic_data_tiny(examples, tmp_path, framework, capsys):
    pytest.importorskip(framework)
    syn = importlib.import_module("synthetic_data")  # on the path the fixture set
    assert syn.main(["--tiny", "--framework", framework, "--out", str(tmp_path)]) == 0
    text = (tmp_path / f"synthetic_data_{framework}.md").read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["none", "augment", "augment+elastic 0.25", "augment+elastic 0.5",
                                    "fractal pre-train"]
    for r in rows:
        acc, ece = (float(v.split("±")[0]) for v in r[1:3])
        assert 0.0 <= acc <= 1.0 and 0.0 <= ece <= 1.0
    assert all(r[3] in (framework, "numpy") for r in rows[1:])
    with PIL.open(tmp_path / f"synthetic_data_{framework}.png") as im:
        assert im.size == (1100, 420)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_segmentation_tiny(examples, tmp_path, framework, capsys):
    pytest.importorskip(framework)
    pytest.importorskip("skimage")
    seg = importlib.import_module("segmentation")  # on the path the fixture set
    only = "none,augment,augment+cutmix" if framework == "torch" else "augment+cutmix"  # TensorFlow: tracing is slow
    assert seg.main(["--tiny", "--framework", framework, "--only", only, "--out", str(tmp_path)]) == 0
    text = (tmp_path / f"segmentation_{framework}.md").read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == only.split(",")
    for r in rows:
        miou, acc = (float(v.split("±")[0]) for v in r[1:3])
        assert 0.0 <= miou <= 1.0 and 0.0 <= acc <= 1.0
        assert all(0.0 <= float(v) <= 1.0 for v in r[3:3 + seg.CLASSES])  # each class's IoU
    assert all(r[3 + seg.CLASSES] in (framework, "numpy") for r in rows if r[0] != "none")
    assert "wrote" in capsys.readouterr().out


def test_segmentation_data_and_metrics(examples):
    pytest.importorskip("skimage")
    seg = importlib.import_module("segmentation")
    x, m = seg.make_dataset(6, 0, seg.load_photos()[:2])
    assert x.shape == (6, seg.SIDE, seg.SIDE, 3) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert m.shape == (6, seg.SIDE, seg.SIDE) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1, 2, 3}
    assert (m > 0).any(axis=(1, 2)).all()  # every image has a shape
    gt = np.array([[0, 1, 1, seg.IGNORE]])
    pred = np.array([[0, 1, 2, 3]])  # the ignored pixel does not count
    cm = seg.confusion(pred, gt)
    assert cm.sum() == 3
    s = seg.scores(cm)
    # IoU: background 1/1, disc 1/2, square 0/1, triangle absent from truth and prediction (left out)
    assert s["miou"] == pytest.approx((1.0 + 0.5 + 0.0) / 3) and s["pixel_acc"] == pytest.approx(2 / 3)
    assert np.isnan(s["iou"][3])


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_transfer_learning_tiny(examples, tmp_path, framework):
    pytest.importorskip(framework)
    _, tl = examples
    assert tl.main(["--tiny", "--framework", framework, "--out", str(tmp_path), "--pre-steps", "5",
                    "--steps", "5"]) == 0
    text = (tmp_path / f"transfer_learning_{framework}.md").read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["scratch", "linear head", "fine-tune"]
    for r in rows:
        for cell in r[1:]:
            assert 0.0 <= float(cell.split("±")[0]) <= 1.0


def test_frozen_head_training_leaves_features_unchanged(examples):
    pytest.importorskip("torch")
    sd, _ = examples
    m = sd.TorchModel(5, 0.0, seed=0)
    before = [p.detach().clone() for p in m.features.parameters()]
    head_before = [p.detach().clone() for p in m.head.parameters()]
    x = np.random.default_rng(0).random((20, 16, 16, 1), dtype=np.float32)
    y = np.arange(20) % 5
    fn, _ = sd.augmenter("torch", m, [], 5, 0)
    m.fit(m.to_input(x), fn, y, steps=3, batch=8, lr=1e-2, seed=0, part="head")
    assert all((a == b).all() for a, b in zip(before, m.features.parameters()))
    assert not all((a == b).all() for a, b in zip(head_before, m.head.parameters()))
