"""A plugin package installed from tests/plugin_pkg is found through its entry point.

The package is built and installed with pip into a temporary folder (no network:
``--no-deps --no-build-isolation``, setuptools comes with the dev extras), and a
fresh interpreter with that folder on ``PYTHONPATH`` lists and runs its op.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).parent / "plugin_pkg"

PROBE = r"""
import json, sys
import numpy as np
import augspec as aug

ops = {o.name: o for o in aug.list_ops()}
out = {"listed": "negate" in ops, "errors": aug.plugin_errors()}
if "negate" in ops:
    info = ops["negate"]
    Negate = info.cls
    x = np.array([[[[0], [64]], [[128], [255]]]], np.uint8)
    y = aug.Pipeline([Negate()], seed=0).compile("numpy")(x)
    pipe = aug.Pipeline([aug.HorizontalFlip(p=1.0), Negate(p=1.0)], seed=0)
    again = aug.from_yaml(pipe.to_yaml())
    out.update(registrant=info.registrant, family=info.family, result=y.ravel().tolist(),
               round_trip=again == pipe, module=Negate.__module__,
               p_zero=aug.Pipeline([Negate(p=0.0)]).compile("numpy")(x).ravel().tolist())
gens = {g.name: g.registrant for g in aug.list_generators()}
out["generator"] = gens.get("stripes")
if "stripes" in gens:
    pipe = aug.Pipeline([aug.Synthetic("stripes", ratio=1.0)], num_classes=3, seed=0)
    xs, ys = pipe.compile("numpy")(np.zeros((4, 6, 2, 1), np.uint8), np.zeros(4, np.int64))
    cls = ys.argmax(1)
    # class c: one row in c + 2 is lit, whatever the phase
    out["stripes_ok"] = all(int((xs[i, :, 0, 0] > 0).sum()) in (6 // (c + 2), -(-6 // (c + 2)))
                            for i, c in enumerate(cls.tolist()))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "augspec_demo_plugin.py").exists()
    return target


def probe(target: Path, **env: str) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUGSPEC_DISABLE_PLUGINS")}
    e["PYTHONPATH"] = str(target)
    e.update(env)
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=e, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_installed_plugin_is_listed_and_runs(installed):
    out = probe(installed)
    assert out["listed"], out
    assert out["errors"] == []
    assert out["registrant"] == "demo_plugin"
    assert out["family"] == "pixel"
    assert out["module"] == "augspec_demo_plugin"
    assert out["result"] == [255, 191, 127, 0]
    assert out["p_zero"] == [0, 64, 128, 255]
    assert out["round_trip"] is True
    assert out["generator"] == "demo_plugin"
    assert out["stripes_ok"] is True


def test_disable_env_blocks_the_installed_plugin(installed):
    out = probe(installed, AUGSPEC_DISABLE_PLUGINS="some_other,demo_plugin")
    assert out == {"listed": False, "errors": [], "generator": None}


def test_without_the_plugin_on_the_path_it_is_not_listed(tmp_path):
    out = probe(tmp_path)
    assert out == {"listed": False, "errors": [], "generator": None}
