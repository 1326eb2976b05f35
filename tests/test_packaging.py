"""Packaging: importing augspec imports no framework, the ``augspec list`` command,
the public API, and pyproject / README / CI agreeing with each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import augspec as aug

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "albumentations", "keras", "tf_keras", "jax", "cv2", "torchvision", "kornia")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "AUGSPEC_DISABLE_PLUGINS"}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=300)


def test_import_augspec_imports_no_framework():
    code = f"""
import json, sys
import numpy as np
import augspec as aug
loaded = lambda: sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r}))
out = {{"import": loaded()}}
aug.list_ops(); aug.list_backends()
out["registry"] = loaded()
pipe = aug.Pipeline([aug.Affine(rotate=10), aug.ColorJitter(0.2, 0.2, 0.2, 0.05), aug.MixUp(0.4),
                     aug.LabelSmoothing(0.1)], num_classes=3, seed=0)
pipe.compile("numpy")(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 2]))
aug.from_yaml(pipe.to_yaml())
out["numpy run"] = loaded()
print(json.dumps(out))
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"import": [], "registry": [], "numpy run": []}


def test_core_imports_no_framework():
    """Nothing under augspec.core (nor the numpy backend, nor the plugin manager) names a framework."""
    bad = []
    files = [*(ROOT / "src/augspec/core").rglob("*.py"), ROOT / "src/augspec/backends/base.py",
             ROOT / "src/augspec/backends/numpy.py", *(ROOT / "src/augspec/plugins").glob("*.py")]
    for f in files:
        for ln, line in enumerate(f.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")):
                mod = s.split()[1].split(".")[0]
                if mod in FRAMEWORKS:
                    bad.append(f"{f.relative_to(ROOT)}:{ln}: {s}")
    assert not bad


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "augspec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "augspec.cli"]


def test_augspec_list_prints_ops_and_backends_with_availability():
    r = subprocess.run([*_cli(), "list"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    words = [ln.split() for ln in r.stdout.splitlines() if ln.split()]
    first = {w[0] for w in words}
    for op in aug.list_ops():
        assert op.name in first, op.name
    for b in aug.list_backends():
        line = next((w for w in words if w[0] == b.name and any("avail" in t for t in w)), None)
        assert line is not None, f"no line for backend {b.name} with its availability"
        assert ("unavailable" in line) != b.available


def test_python_dash_m_augspec_cli_list():
    r = subprocess.run([sys.executable, "-m", "augspec.cli", "list"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("affine", "cutmix", "mixup", "label_smoothing", "numpy", "torch"):
        assert name in r.stdout


def test_public_api():
    for name in aug.__all__:
        assert hasattr(aug, name), name
    for name in ("Affine", "HorizontalFlip", "VerticalFlip", "Brightness", "Contrast", "Saturation", "Hue",
                 "ColorJitter", "GaussianNoise", "Rescale", "Normalize", "Standardize", "ZCAWhitening", "CutOut",
                 "MixUp", "CutMix", "LabelSmoothing", "Dropout", "Pipeline", "OneOf", "RandomApply", "register",
                 "hookimpl", "list_ops", "list_backends", "to_dict", "from_dict", "to_json", "from_json",
                 "to_yaml", "from_yaml"):
        assert name in aug.__all__, name
    for err in (aug.SpecError, aug.InputError, aug.RegistryError, aug.ConfigError):
        assert issubclass(err, ValueError) and issubclass(err, aug.AugspecError)
    for err in (aug.SpecTypeError, aug.InputTypeError, aug.ConfigTypeError):
        assert issubclass(err, TypeError) and issubclass(err, aug.AugspecError)


def test_pyproject_extras_scripts_and_version():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    proj = meta["project"]
    assert proj["name"] == "augspec" and proj["version"] == aug.__version__
    extras = proj["optional-dependencies"]
    assert {"torch", "tensorflow", "albumentations", "demo", "dev"} <= set(extras)
    assert "torch==2.13.0" in extras["dev"] and "torch==2.13.0" in extras["torch"]
    assert any(d.startswith("setuptools") for d in extras["dev"])
    assert any(d.startswith("hypothesis") for d in extras["dev"])
    assert proj["scripts"]["augspec"] == "augspec.cli:main"
    deps = " ".join(proj["dependencies"])
    for fw in FRAMEWORKS:
        assert fw not in deps  # frameworks are extras only


def test_readme_and_ci_run_the_same_test_command():
    ci = (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    cmd = next(ln.strip() for ln in ci.splitlines() if "pip install" in ln)
    assert 'pip install -e ".[dev]"' in cmd and "python -m pytest" in cmd
    assert cmd in readme
