"""Loading a config never imports or executes anything (issue 7, part 3).

``from_yaml`` goes through ``yaml.safe_load`` (Python tags refused), op names
resolve only through the registry (never as import paths), nothing is unpickled,
trees are bounded (deep nesting, YAML alias bombs), and plugins load only from
installed entry points, with ``AUGSPEC_DISABLE_PLUGINS`` blocking them by name.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import augspec as aug
from augspec.core import registry as core_registry
from augspec.core import serialize
from augspec.plugins import manager

SRC = pathlib.Path(aug.__file__).resolve().parent


# ------------------------------------------------------------------ helpers


@pytest.fixture
def tripwire(monkeypatch, tmp_path):
    """Make os.system / subprocess / eval-like entry points record any call, and
    give a marker path that a payload would create."""
    calls: list[tuple] = []

    def record(name):
        def f(*a, **k):
            calls.append((name, a))
            return 0
        return f

    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(os, "popen", record("os.popen"))
    monkeypatch.setattr(subprocess, "Popen", record("subprocess.Popen"))
    monkeypatch.setattr(subprocess, "run", record("subprocess.run"))
    monkeypatch.setattr(subprocess, "check_output", record("subprocess.check_output"))
    marker = tmp_path / "PWNED"
    yield calls, marker
    assert calls == [], f"a payload reached {calls}"
    assert not marker.exists(), "a payload ran"


def _marker_cmd(marker: pathlib.Path) -> str:
    return f"touch {marker}"


# ----------------------------------------------------------- YAML python tags


YAML_PAYLOADS = {
    "object_apply_os_system": "!!python/object/apply:os.system ['{cmd}']",
    "object_apply_subprocess": "!!python/object/apply:subprocess.check_output [['sh', '-c', '{cmd}']]",
    "object_new_os_system": "!!python/object/new:os.system ['{cmd}']",
    "name_os_system": "!!python/name:os.system",
    "module_os": "!!python/module:os",
    "object_augspec_class": "!!python/object:augspec.Affine {{rotate: 5}}",
    "tag_inside_valid_config": "version: 1\ntype: affine\nrotate: !!python/object/apply:os.system ['{cmd}']\n",
    "tag_as_op_type": "version: 1\ntype: !!python/name:os.system\n",
    "tag_in_pipeline_ops": ("version: 1\ntype: pipeline\nops:\n  - !!python/object/apply:eval "
                            "[\"__import__('os').system('{cmd}')\"]\n"),
    "tag_as_key": "version: 1\ntype: affine\n? !!python/object/apply:os.system ['{cmd}']\n: 1\n",
}


@pytest.mark.parametrize("name", sorted(YAML_PAYLOADS))
@pytest.mark.parametrize("loader", ["from_yaml", "Pipeline.from_yaml"])
def test_yaml_python_tags_are_refused(name, loader, tripwire):
    calls, marker = tripwire
    doc = YAML_PAYLOADS[name].format(cmd=_marker_cmd(marker))
    load = aug.from_yaml if loader == "from_yaml" else aug.Pipeline.from_yaml
    with pytest.raises(aug.ConfigError, match=r"YAML refused .*python/"):
        load(doc)


def test_yaml_tags_of_other_types_are_refused_as_values(tripwire):
    for tag, kind in [("!!binary aGVsbG8=", "bytes"), ("!!set {a: null}", "set"), ("2001-12-14", "date"),
                      ("!!timestamp 2001-12-14t21:59:43.10-05:00", "datetime")]:
        with pytest.raises(aug.ConfigTypeError, match=rf"config\.rotate: a value of type {kind}"):
            aug.from_yaml(f"version: 1\ntype: affine\nrotate: {tag}\n")


def test_from_yaml_uses_safe_load_only():
    src = (SRC / "core" / "serialize.py").read_text()
    assert "yaml.safe_load(" in src
    for bad in ("yaml.load(", "unsafe_load", "full_load", "FullLoader", "UnsafeLoader", "yaml.Loader"):
        assert bad not in src, bad


# ------------------------------------------------- op names are registry names


OP_NAME_PAYLOADS = [
    "os.system",
    "os:system",
    "__import__('os').system('echo x')",
    "eval",
    "builtins.eval",
    "builtins:__import__",
    "subprocess.Popen",
    "augspec.core.ops.geometric.Affine",   # a dotted path to a real op class
    "augspec.core.ops.geometric:Affine",
    "Affine",                              # the class name, not the registry name
    "tabnanny",                            # a stdlib module nobody imports
    "../../etc/passwd",
    "",
]


@pytest.mark.parametrize("op_name", OP_NAME_PAYLOADS)
def test_op_names_resolve_only_through_the_registry(op_name, tripwire):
    aug.from_dict({"version": 1, "type": "affine"})  # warm up: registry loaded
    before = set(sys.modules)
    configs = [
        {"version": 1, "type": op_name},
        {"version": 1, "type": "pipeline", "ops": [{"type": op_name}]},
        {"version": 1, "type": "one_of", "ops": [{"type": "mixup"}, {"type": op_name}]},
    ]
    for cfg in configs:
        with pytest.raises(aug.ConfigError, match="unknown op"):
            aug.from_dict(cfg)
        with pytest.raises(aug.ConfigError, match="unknown op"):
            aug.from_json(json.dumps(cfg))
        with pytest.raises(aug.ConfigError, match="unknown op"):
            aug.from_yaml(json.dumps(cfg))  # JSON is YAML
    assert set(sys.modules) - before == set(), "loading a config imported a module"


def test_op_type_must_be_a_string(tripwire):
    for t in (os.system, 5, ["os", "system"], None):
        with pytest.raises(aug.ConfigTypeError, match="'type' must be an op name"):
            aug.from_dict({"version": 1, "type": t})


@pytest.mark.parametrize("field", ["__class__", "__init__", "__reduce__", "__dict__", "name", "family",
                                   "_validate_p", "draws"])
def test_attribute_names_are_not_fields(field, tripwire):
    with pytest.raises(aug.ConfigError, match=f"has no field '{field}'"):
        aug.from_dict({"version": 1, "type": "affine", field: "os.system"})


def test_strings_in_values_are_never_evaluated(tripwire):
    calls, marker = tripwire
    code = f"__import__('os').system('{_marker_cmd(marker)}')"
    with pytest.raises(aug.ConfigTypeError, match="rotate must be a number"):
        aug.from_dict({"version": 1, "type": "affine", "rotate": code})
    with pytest.raises(aug.ConfigError, match="interpolation="):
        aug.from_dict({"version": 1, "type": "affine", "interpolation": code})
    with pytest.raises(aug.ConfigError, match="is not one augspec reads|not one this augspec reads"):
        aug.from_dict({"version": code, "type": "affine"})


class _Evil:
    """An object whose every hook records that it was touched."""

    touched: list[str] = []

    def __reduce__(self):
        _Evil.touched.append("__reduce__")
        return (os.system, ("echo x",))

    def __call__(self, *a):
        _Evil.touched.append("__call__")

    def __float__(self):
        _Evil.touched.append("__float__")
        return 1.0

    def __index__(self):
        _Evil.touched.append("__index__")
        return 1


def test_python_objects_in_a_dict_are_refused_not_called(tripwire):
    _Evil.touched.clear()
    for v in (_Evil(), lambda: os.system("echo x"), os.system, {1, 2}, b"bytes", 1j):
        with pytest.raises(aug.ConfigTypeError, match="is not allowed"):
            aug.from_dict({"version": 1, "type": "affine", "rotate": v})
    assert _Evil.touched == []


@pytest.mark.parametrize("dtype", ["O", "object", "V8", "U4", "S4", "M8[s]", "c8", "b1",
                                   "os.system", "<class 'object'>"])
def test_ndarray_payloads_only_decode_plain_numbers(dtype, tripwire):
    cfg = {"version": 1, "type": "zca_whitening",
           "matrix": {"ndarray": {"dtype": dtype, "shape": [2, 2], "base64": "AAAAAAAAAAAAAAAAAAAAAA=="}}}
    with pytest.raises(aug.ConfigError, match="malformed ndarray"):
        aug.from_dict(cfg)


def test_ndarray_round_trip_still_works():
    m = np.eye(9, dtype=np.float32)  # 81 values: stored as base64, not as a list
    op = aug.ZCAWhitening(matrix=m)
    d = aug.to_dict(op)
    assert "ndarray" in d["matrix"]
    back = aug.from_dict(json.loads(json.dumps(d)))
    np.testing.assert_array_equal(back.matrix, m)


# ------------------------------------------------------------- huge and deep


def _nested_lists(depth: int) -> list:
    root: list = []
    cur = root
    for _ in range(depth):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    return root


def _nested_ops(depth: int) -> dict:
    root = {"version": 1, "type": "pipeline", "ops": []}
    cur = root
    key = "ops"
    for _ in range(depth):
        nxt = {"type": "random_apply", "op": []}
        cur[key] = [nxt]
        cur, key = nxt, "op"
    cur[key] = [{"type": "horizontal_flip"}]
    return root


def test_deep_nesting_is_refused_cleanly():
    with pytest.raises(aug.ConfigError, match="nested deeper"):
        aug.from_dict({"version": 1, "type": "affine", "fill": _nested_lists(5000)})
    with pytest.raises(aug.ConfigError, match="nested deeper"):
        aug.from_dict(_nested_ops(3000))
    with pytest.raises(aug.ConfigError, match="nested too deeply|nested deeper"):
        aug.from_json('{"version": 1, "type": "affine", "fill": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(aug.ConfigError, match="nested too deeply|nested deeper"):
        aug.from_yaml("version: 1\ntype: affine\nfill: " + "[" * 20_000 + "]" * 20_000 + "\n")


def test_reasonable_nesting_still_loads():
    pipe = aug.from_dict(_nested_ops(20))
    assert isinstance(pipe, aug.Pipeline)
    assert aug.from_dict(aug.to_dict(pipe)) == pipe


def test_yaml_alias_bomb_is_refused_fast(monkeypatch):
    doc = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for i in range(1, 9):  # 10**9 leaves once expanded
        doc += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    # the walk stops at the node cap, not after expanding the tree: with a small cap the
    # refusal names that cap (no clock: an exponential walk would not finish at all)
    monkeypatch.setattr(serialize, "MAX_NODES", 5_000)
    for doc_ in (f"version: 1\ntype: cutout\n{doc}fill: *a8\n",
                 f"version: 1\ntype: pipeline\nops: []\n{doc}"):
        with pytest.raises(aug.ConfigError) as ei:
            aug.from_yaml(doc_)
        assert "more than 5000 values" in str(ei.value)
        assert len(str(ei.value)) < 2000, "the error message must not expand the tree"


def test_huge_numbers_are_refused():
    with pytest.raises(aug.ConfigError):
        aug.from_json('{"version": 1, "type": "cutout", "holes": ' + "9" * 5000 + "}")
    with pytest.raises(aug.ConfigError, match="seed"):
        aug.from_dict({"version": 1, "type": "pipeline", "ops": [], "seed": 2**200})
    with pytest.raises(aug.ConfigError, match="holes"):
        aug.from_dict({"version": 1, "type": "cutout", "holes": 10**12})
    with pytest.raises(aug.ConfigError, match="outside the allowed"):
        aug.from_json('{"version": 1, "type": "affine", "rotate": 1e400}')


def test_many_values_are_bounded():
    wide = {"version": 1, "type": "affine", "fill": list(range(serialize.MAX_NODES + 10))}
    with pytest.raises(aug.ConfigError, match="more than"):
        aug.from_dict(wide)


def test_non_text_inputs_are_refused():
    for v in (None, 5, object()):
        with pytest.raises(aug.ConfigTypeError):
            aug.from_yaml(v)
        with pytest.raises(aug.ConfigError):
            aug.from_json(v)
        with pytest.raises(aug.ConfigTypeError):
            aug.from_dict(v)


# ------------------------------------------------- no pickle, eval or exec


def _py_files():
    return sorted(SRC.rglob("*.py"))


#: dynamic imports allowed, and why: none of them takes a name from a config
DYNAMIC_IMPORT_ALLOWED = {
    ("core/registry.py", "import_module"),  # a *registered* backend factory's or kernel's "module:attr"
    ("bench.py", "__import__"),  # a fixed tuple of peer libraries, imported before TensorFlow
}


def test_no_pickle_eval_or_exec_in_the_package():
    banned_modules = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
    banned_calls = {"eval", "exec", "__import__", "compile"}
    problems = []
    for path in _py_files():
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{rel}: import {a.name}" for a in node.names if a.name.split(".")[0] in banned_modules]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in banned_modules:
                problems.append(f"{rel}: from {node.module} import")
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in banned_calls and (rel, f.id) not in DYNAMIC_IMPORT_ALLOWED:
                    problems.append(f"{rel}:{node.lineno}: {f.id}()")
                if isinstance(f, ast.Attribute) and f.attr in ("import_module", "load") and \
                        isinstance(f.value, ast.Name) and f.value.id in ("importlib", "yaml", "pickle"):
                    if (rel, f.attr) not in DYNAMIC_IMPORT_ALLOWED:
                        problems.append(f"{rel}:{node.lineno}: {f.value.id}.{f.attr}()")
    assert problems == []


def test_serialize_imports_nothing_dynamically():
    tree = ast.parse((SRC / "core" / "serialize.py").read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"import_module", "__import__", "eval", "exec", "entry_points", "find_spec"}


def test_loading_a_config_imports_no_framework():
    """In a fresh interpreter: loading and building a pipeline imports neither torch nor TF."""
    code = textwrap.dedent("""
        import json, sys, augspec
        from augspec.recipes import r2
        y = augspec.to_yaml(r2(num_classes=10))
        p = augspec.from_yaml(y)
        p2 = augspec.from_json(augspec.to_json(p))
        assert p2 == p
        bad = [m for m in ("torch", "tensorflow", "albumentations", "jax", "pickle") if m in sys.modules]
        print("IMPORTED" + json.dumps(bad))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # pickle may be imported by the standard library itself; the frameworks must not be
    imported = json.loads(out.stdout.split("IMPORTED", 1)[1].strip())
    assert [m for m in imported if m != "pickle"] == []


# ---------------------------------------------------------------- plugins


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry built from scratch in this test, the real one restored afterwards."""
    monkeypatch.setattr(core_registry, "_registry", None)
    monkeypatch.setattr(manager, "_pm", None)
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    return manager


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """Install fake plugin distributions (a module and a dist-info with entry points)
    into a fresh folder on sys.path; returns a function ``add(ep_name, body) -> module``."""
    created: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def add(ep_name: str, body: str, *, entry_point: bool = True) -> str:
        mod = f"augspec_test_plugin_{ep_name}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent(body))
        if entry_point:
            dist = tmp_path / f"{mod}-0.1.dist-info"
            dist.mkdir()
            (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {mod}\nVersion: 0.1\n")
            (dist / "entry_points.txt").write_text(f"[augspec]\n{ep_name} = {mod}\n")
        created.append(mod)
        return mod

    yield add
    for m in created:
        sys.modules.pop(m, None)


def _op_plugin(op_name: str) -> str:
    cls = "".join(p.title() for p in op_name.split("_"))
    return f"""
        import augspec
        from augspec.core.spec import GeometricOp, spec

        @spec
        class {cls}(GeometricOp):
            name = "{op_name}"
            p: float = 1.0

            def matrix(self, B, params, ctx):
                return B.broadcast_to(B.eye(3, "float32"), (ctx.n, 3, 3))

        @augspec.hookimpl
        def augspec_register(registry):
            registry.add_op({cls})
    """


def test_plugins_load_from_entry_points(fresh_registry, plugin_dir):
    mod = plugin_dir("goodplug", _op_plugin("plug_identity"))
    ops = {o.name: o for o in aug.list_ops()}
    assert "plug_identity" in ops and ops["plug_identity"].registrant == "goodplug"
    assert mod in sys.modules
    op = aug.from_dict({"version": 1, "type": "plug_identity"})
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(aug.Pipeline([op], seed=0).compile("numpy")(x), x)


def test_a_module_on_the_path_without_an_entry_point_is_never_imported(fresh_registry, plugin_dir):
    mod = plugin_dir("stray", _op_plugin("plug_stray"), entry_point=False)
    assert "plug_stray" not in {o.name for o in aug.list_ops()}
    assert mod not in sys.modules
    with pytest.raises(aug.ConfigError, match="unknown op 'plug_stray'"):
        aug.from_dict({"version": 1, "type": "plug_stray"})
    with pytest.raises(aug.ConfigError, match="unknown op"):
        aug.from_dict({"version": 1, "type": f"{mod}.PlugStray"})
    assert mod not in sys.modules


def test_disable_plugins_blocks_by_name(fresh_registry, plugin_dir, monkeypatch):
    side_effect = "import os\nos.environ['AUGSPEC_TEST_BLOCKED_RAN'] = '1'\n"
    a = plugin_dir("blocked_a", side_effect + textwrap.dedent(_op_plugin("plug_a")))
    b = plugin_dir("blocked_b", _op_plugin("plug_b"))
    c = plugin_dir("allowed_c", _op_plugin("plug_c"))
    monkeypatch.delenv("AUGSPEC_TEST_BLOCKED_RAN", raising=False)
    monkeypatch.setenv(manager.DISABLE_ENV, " blocked_a , blocked_b,")
    names = {o.name for o in aug.list_ops()}
    assert "plug_c" in names
    assert "plug_a" not in names and "plug_b" not in names
    assert a not in sys.modules and b not in sys.modules and c in sys.modules
    assert "AUGSPEC_TEST_BLOCKED_RAN" not in os.environ, "a blocked plugin's module was imported"
    with pytest.raises(aug.ConfigError, match="unknown op 'plug_a'"):
        aug.from_dict({"version": 1, "type": "plug_a"})
    assert aug.plugin_errors() == []


def test_disable_plugins_can_block_nothing_but_plugins(fresh_registry, plugin_dir, monkeypatch):
    """Blocking an unknown name is harmless; the built-ins still load."""
    monkeypatch.setenv(manager.DISABLE_ENV, "no_such_plugin")
    names = {o.name for o in aug.list_ops()}
    assert {"affine", "mixup", "cutmix"} <= names
