"""The ``augspec`` command: list, demo, preview, bench (files written, exit codes, messages)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

import augspec as aug
from augspec import bench, demo
from augspec.cli import main

PIL = pytest.importorskip("PIL.Image")


def _png_size(path) -> tuple[int, int]:
    with PIL.open(path) as im:
        im.load()
        assert im.mode == "RGB"
        return im.size


def _expected(n_images: int, n_rows: int, cell: int) -> tuple[int, int]:
    lay = demo.grid_layout(n_images, n_rows, cell)
    return lay["width"], lay["height"]


def _write_images(folder, sizes=((40, 60), (50, 50), (70, 30))):
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = PIL.fromarray(a if i != 1 else a[..., 0])  # one greyscale image
        img.save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")


# ------------------------------------------------------------------ list


def test_list_prints_every_op_and_backend(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for o in aug.list_ops():
        line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == o.name)
        assert o.family in line and o.registrant in line
    for b in aug.list_backends():
        line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == b.name and "avail" in ln)
        assert ("unavailable" in line) != b.available
        if not b.available:
            assert b.install in line


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "augspec.cli", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "affine" in r.stdout and "numpy" in r.stdout


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


# ------------------------------------------------------------------ demo


def test_caption_names_the_heaviest_classes():
    names = ["cat", "coffee", "astronaut", "rocket"]
    assert demo.caption(np.array([0.62, 0.38, 0.0, 0.0]), names) == "cat 0.62 · coffee 0.38"
    assert demo.caption(np.array([0.025, 0.925, 0.025, 0.025]), names) == "coffee 0.93"
    assert demo.caption(np.array([0.0, 0.1, 0.0, 0.0, 0.9]), names) == "class 4 0.90 · coffee 0.10"


def test_demo_numpy_writes_the_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc = main(["demo", "--out", str(out), "--backend", "numpy", "--size", "32", "--copies", "1"])
    assert rc == 0
    assert _png_size(out) == _expected(4, 1, 32)
    text = capsys.readouterr().out
    assert str(out.resolve()) in text
    assert "numpy" in text and "ms/image" in text and "reference" in text


def test_demo_grid_shows_the_augmented_images(tmp_path):
    res = demo.demo(tmp_path / "g.png", backends=["numpy"], size=24, copies=2, seed=3)
    row = res.rows[0]
    assert row.error is None and row.images.shape == (8, 24, 24, 3) and row.images.dtype == np.uint8
    np.testing.assert_allclose(row.labels.sum(axis=1), 1.0, atol=1e-5)
    assert row.labels.min() >= 0.1 / 4 - 1e-6  # label smoothing 0.1 over 4 classes
    # the cells of the grid are the run's output, pasted below the input row
    with PIL.open(res.path) as im:
        grid = np.asarray(im.convert("RGB"))
    y = demo.TITLE_H + 24 + demo.CAPTION_H + demo.PAD
    x = demo.LABEL_W + 24 + demo.PAD
    np.testing.assert_array_equal(grid[y:y + 24, x:x + 24], row.images[1])
    # the same seed gives the same grid; another seed does not
    again = demo.demo(tmp_path / "h.png", backends=["numpy"], size=24, copies=2, seed=3).rows[0]
    other = demo.demo(tmp_path / "i.png", backends=["numpy"], size=24, copies=2, seed=4).rows[0]
    np.testing.assert_array_equal(again.images, row.images)
    assert not np.array_equal(other.images, row.images)


def test_demo_on_every_available_backend(tmp_path):
    res = demo.demo(tmp_path / "all.png", size=24, copies=1)
    names = [r.backend for r in res.rows]
    assert names[0] == "numpy" and set(names) == set(demo.available_backends())
    assert _png_size(res.path) == _expected(4, len(res.rows), 24)
    for r in res.rows:
        line = demo.summary_line(r)
        assert line.startswith(r.backend)
        if r.error is None and r.backend != "numpy":
            assert r.agrees is not None, line
            assert ("agrees" in line) == r.agrees


def test_demo_survives_a_broken_backend(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "available_backends", lambda: ["numpy", "no_such_backend"])
    out = tmp_path / "b.png"
    assert main(["demo", "--out", str(out), "--size", "24", "--copies", "1"]) == 0
    text = capsys.readouterr().out
    assert "no_such_backend" in text and "failed" in text
    assert _png_size(out) == _expected(4, 2, 24)


def test_demo_with_own_images(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _write_images(folder)
    out = tmp_path / "own.png"
    assert main(["demo", "--images", str(folder), "--out", str(out), "--backend", "numpy", "--size", "20",
                 "--seed", "5"]) == 0
    assert _png_size(out) == _expected(6, 1, 20)  # 3 images, twice each


def test_demo_bad_images_folder_is_a_clean_error(tmp_path, capsys):
    assert main(["demo", "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["demo", "--images", str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "no readable image" in capsys.readouterr().err


# --------------------------------------------------------------- preview


def _r2_like() -> aug.Pipeline:
    return aug.Pipeline([
        aug.Affine(rotate=10), aug.ColorJitter(brightness=0.3), aug.CutOut(size=0.3),
        aug.Normalize(), aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1),
    ], num_classes=10, seed=7)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_preview_renders_a_config(tmp_path, capsys, suffix):
    cfg = tmp_path / f"recipe{suffix}"
    pipe = _r2_like()
    cfg.write_text(pipe.to_yaml() if suffix == ".yaml" else pipe.to_json())
    out = tmp_path / "p.png"
    assert main(["preview", str(cfg), "--out", str(out), "--backend", "numpy", "--size", "24", "--copies", "1"]) == 0
    assert _png_size(out) == _expected(4, 1, 24)
    assert str(out.resolve()) in capsys.readouterr().out


def test_preview_default_output_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yml").write_text(aug.Pipeline([aug.HorizontalFlip()], seed=1).to_yaml())
    assert main(["preview", "mine.yml", "--backend", "numpy", "--size", "16", "--copies", "1"]) == 0
    assert _png_size(tmp_path / "mine-preview.png") == _expected(4, 1, 16)


def test_preview_float_output_is_shown_unnormalised(tmp_path):
    pipe = aug.Pipeline([aug.Normalize()], seed=0)
    res = demo.demo(tmp_path / "n.png", backends=["numpy"], size=16, copies=1, pipeline=pipe)
    originals, _ = demo.load_images(size=16)
    assert np.abs(res.rows[0].images.astype(int) - originals.astype(int)).max() <= 1


@pytest.mark.parametrize("edit, points_at", [
    (lambda d: d["ops"][0].update(rotat=10), ["config.ops[0]", "'rotat'"]),
    (lambda d: d["ops"][0].update(rotate=1000), ["config.ops[0]", "rotate"]),
    (lambda d: d["ops"][1].update(type="colour_jitter"), ["config.ops[1]", "'colour_jitter'"]),
    (lambda d: d.update(version=7), ["version"]),
])
def test_preview_bad_config_points_at_the_key(tmp_path, capsys, edit, points_at):
    d = _r2_like().to_dict()
    edit(d)
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(d))
    assert main(["preview", str(cfg), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(cfg) in err
    for s in points_at:
        assert s in err
    assert not (tmp_path / "p.png").exists()


def test_preview_unreadable_configs(tmp_path, capsys):
    assert main(["preview", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("ops: [unclosed")
    assert main(["preview", str(bad)]) == 2
    assert "YAML" in capsys.readouterr().err


# ----------------------------------------------------------------- bench


def test_bench_numpy_quick(tmp_path, capsys):
    md = tmp_path / "bench.md"
    rc = main(["bench", "--quick", "--backend", "numpy", "--no-peers", "--batch", "4", "--size", "16",
               "--repeats", "1", "--warmup", "0", "--out", str(md)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "### R2: batch 4, 16 x 16" in out and "### R1: batch 4, 16 x 16" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("| augspec[numpy]")]
    assert len(rows) == 2 and all(r.rstrip().endswith("| 1.00 |") for r in rows)
    assert md.read_text().strip() == out.split("\nwrote ")[0].strip()


def test_bench_reports_rows_that_cannot_run():
    res = bench.run_bench(["R2"], "cpu", batch=3, size=8, repeats=1, warmup=0, backends=["numpy"],
                          only=["numpy", "kornia", "albumentations"], progress=False)
    by = {r.name: r for r in res}
    assert by["augspec[numpy]"].ms is not None
    for name in ("kornia + timm", "albumentations + timm"):  # an odd batch, or the library is missing
        assert by[name].ms is None and by[name].error.startswith("skipped")
    text = bench.table(res)
    assert "skipped" in text and "| augspec[numpy] | per sample |" in text


def test_bench_bad_arguments(capsys):
    assert main(["bench", "--recipe", "R9"]) == 2
    assert main(["bench", "--batch", "0"]) == 2


def test_time_case_and_progress_bar():
    calls = []
    case = bench.Case("R2", "fake", "per sample", "cpu", lambda i: calls.append(i) or i, lambda out: None)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = bench.Progress(5, stream=stream)
    bar.start("fake")
    ms = bench.time_case(case, warmup=2, repeats=3, progress=bar)
    bar.close()
    assert calls == [0, 1, 2, 3, 4] and ms >= 0.0
    assert "[" + "#" * 28 + "] 5/5" in stream.getvalue()
