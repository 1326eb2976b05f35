"""Every backend through the one conformance suite (``augspec.testing.check_backend``),
and the layering rules: the core imports neither the plugin layer nor a backend, and
no backend names a built-in op class."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import augspec as aug
from augspec.testing import check_backend

SRC = Path(aug.__file__).resolve().parent
CORE = SRC / "core"
BACKENDS = SRC / "backends"


def _loader(name, **options):
    """make_backend for a built-in backend, through the registry (skipped where absent)."""
    from augspec.core.registry import get_registry, load_backend

    if name not in get_registry().backends:
        pytest.skip(f"no {name!r} backend is registered")
    return lambda layout: load_backend(name, layout=layout, **options)


#: the tracing backends (TensorFlow, JAX) trace or compile once per input signature, so their
#: suite is minutes long: their native layout only, unless AUGSPEC_CONFORMANCE_FULL=1
#: backends that trace (and XLA-compile) every new input shape and dtype run a smaller matrix
#: in CI: one layout, one dtype (the agreement of every op, sizes, batching, draws unchanged);
#: AUGSPEC_CONFORMANCE_FULL=1 runs them on the whole matrix
_FULL = bool(os.environ.get("AUGSPEC_CONFORMANCE_FULL"))
TRACED_LAYOUTS = ("NHWC", "NCHW") if _FULL else ("NHWC",)
TRACED_DTYPES = ("uint8", "float32") if _FULL else ("float32",)
#: and leave out the odd sizes (every size of every case is one more XLA compile): the NumPy,
#: torch and albumentations runs cover them in CI, the full run covers every backend
TRACED_SKIP = () if _FULL else ("sizes",)
#: of the crop and resize cases, CI traces a representative few (each case is several more
#: compiles): a resize, a padded random crop, a crop fused with a rotation (the general warp),
#: and the R3-like case with mixing (images of different sizes through every stage kind)
TRACED_SKIP += () if _FULL else ("resize_short_side", "resize_plain", "resize_nearest", "center_crop",
                                 "random_crop_fill", "random_crop_edge", "pad", "random_resized_crop")
#: of the policies CI traces RandAugment (its layers, Given and Magnitude draws, every op it draws)
TRACED_SKIP += () if _FULL else ("trivial_augment_wide", "auto_augment", "augmix")
#: of the synthetic cases CI traces three (a sized one has its own TF and JAX test: tests/test_synthetic.py)
TRACED_SKIP += () if _FULL else ("synthetic_sized",)


def _batch_ops():
    """The ops a per-image backend leaves to the batch part (mix, tile and label ops)."""
    return tuple(o.name for o in aug.list_ops() if o.family in ("mix", "tile", "label"))


def test_numpy_conforms():
    counts = check_backend(_loader("numpy"))
    assert all(counts[c] > 0 for c in counts if c != "chunked")


def test_torch_conforms():
    pytest.importorskip("torch")
    check_backend(_loader("torch"))


def test_tensorflow_conforms():
    pytest.importorskip("tensorflow")
    check_backend(_loader("tensorflow"), layouts=TRACED_LAYOUTS, dtypes=TRACED_DTYPES, skip=TRACED_SKIP)


def test_jax_conforms():
    pytest.importorskip("jax")
    check_backend(_loader("jax"), layouts=TRACED_LAYOUTS, dtypes=TRACED_DTYPES, skip=TRACED_SKIP)


def test_albumentations_conforms():
    pytest.importorskip("albumentations")
    # a per-image backend, NHWC only, that leaves the batch ops to run.batch / run.collate;
    # exact_draws: its per-pixel draws from augspec's generator too (bit-identical)
    check_backend(_loader("albumentations", exact_draws=True), layouts=("NHWC",), skip=_batch_ops())


# ---------------------------------------------------------------- layering


def _core_modules():
    out = []
    for p in sorted(CORE.rglob("*.py")):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def test_core_imports_without_plugins_or_backends():
    mods = _core_modules()
    assert "augspec.core.run" in mods and "augspec.core.ops.color" in mods
    code = textwrap.dedent(f"""
        import importlib, sys
        sys.modules["augspec.plugins"] = None
        sys.modules["augspec.backends"] = None
        for name in {mods!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.startswith(("augspec.plugins.", "augspec.backends.")))
        assert not leaked, leaked
        print("ok", len({mods!r}))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("ok")


_LAYERS = ("plugins", "backends")


def _imports_a_layer(path: Path) -> list[str]:
    """The lines of ``path`` that import the plugin layer or a backend (any form)."""
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"\baugspec\.(plugins|backends)\b", node.value):
                bad.append(f"{path.name}:{node.lineno}: names {node.value!r}")
            continue
        if any(part in _LAYERS for n in names for part in n.split(".")):
            bad.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return bad


def test_no_core_file_imports_plugins_or_backends():
    bad = [hit for p in sorted(CORE.rglob("*.py")) for hit in _imports_a_layer(p)]
    # and a plain text pass, for what the syntax tree would not show (an exec'd string)
    pattern = re.compile(r"^\s*(from|import)\s+[\w.]*\b(plugins|backends)\b|"
                         r"\b(from\s+\.+\s+import\s+[\w, ]*\b(plugins|backends)\b)", re.M)
    for p in sorted(CORE.rglob("*.py")):
        for m in pattern.finditer(p.read_text()):
            line = p.read_text().count("\n", 0, m.start()) + 1
            bad.append(f"{p.relative_to(SRC)}:{line}: {m.group(0).strip()}")
    assert not bad, "the core imports the plugin layer or a backend:\n" + "\n".join(sorted(set(bad)))


def _builtin_op_class():
    from augspec.plugins.builtin import BUILTIN_OPS

    return re.compile(r"\b(" + "|".join(sorted(c.__name__ for c in BUILTIN_OPS)) + r")\b")


#: every built-in op's class name as a word
BUILTIN_OP_CLASS = _builtin_op_class()


def test_backends_name_no_builtin_op_class():
    files = sorted(BACKENDS.rglob("*.py"))
    assert any(p.name == "numpy.py" for p in files)
    hits = []
    for p in files:
        for i, line in enumerate(p.read_text().splitlines(), 1):
            for m in BUILTIN_OP_CLASS.finditer(line):
                hits.append(f"{p.relative_to(SRC)}:{i}: {m.group(0)}: {line.strip()}")
    assert not hits, "backends must not know the built-in ops (code, comments or docstrings):\n" + "\n".join(hits)


def test_primitives_list_what_the_core_calls():
    from augspec.backends.base import OPTIONAL_PRIMITIVES, PRIMITIVES, Backend, Primitives, unimplemented
    from augspec.backends.numpy import NumpyBackend

    called = {m for p in CORE.rglob("*.py") for m in re.findall(r"\bB\.([a-z_0-9]+)\(", p.read_text())}
    assert called and called <= set(PRIMITIVES), sorted(called - set(PRIMITIVES))
    assert len(set(PRIMITIVES)) == len(PRIMITIVES) and set(OPTIONAL_PRIMITIVES) <= set(PRIMITIVES)
    assert {n for n in vars(Primitives) if not n.startswith("_")} == set(PRIMITIVES)
    assert all(callable(getattr(Backend, n, None)) for n in PRIMITIVES)
    assert isinstance(NumpyBackend(), Primitives) and unimplemented(NumpyBackend()) == []
    bare = Backend()
    assert "mul32" in unimplemented(bare) and "bitand" not in unimplemented(bare)
    with pytest.raises(NotImplementedError, match=r"backend: mul32 is not implemented"):
        bare.mul32(None, 3)
    assert Backend.chunk_bytes is None and bare.memory() is not None
