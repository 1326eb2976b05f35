"""The pluggy registry: built-ins, in-process registration, kernels, plugins and errors.

Every test that adds to the registry runs on a fresh one (``reset_registry``) and
leaves a fresh one behind, so the rest of the suite sees only the built-ins and
the installed plugins.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import pluggy
import pytest

import augspec as aug
from augspec.core.random import Distribution, Uniform
from augspec.core.spec import Context
from augspec.plugins import hookspecs, manager

BUILTIN = {
    "affine": aug.Affine, "horizontal_flip": aug.HorizontalFlip, "vertical_flip": aug.VerticalFlip,
    "brightness": aug.Brightness, "contrast": aug.Contrast, "saturation": aug.Saturation, "hue": aug.Hue,
    "color_jitter": aug.ColorJitter, "gaussian_noise": aug.GaussianNoise, "rescale": aug.Rescale,
    "normalize": aug.Normalize, "standardize": aug.Standardize, "zca_whitening": aug.ZCAWhitening,
    "cutout": aug.CutOut, "mixup": aug.MixUp, "cutmix": aug.CutMix, "label_smoothing": aug.LabelSmoothing,
    "dropout": aug.Dropout, "one_of": aug.OneOf, "random_apply": aug.RandomApply,
}
FAMILIES = {"affine": "geometric", "horizontal_flip": "geometric", "brightness": "color", "hue": "color",
            "gaussian_noise": "pixel", "normalize": "pixel", "zca_whitening": "pixel", "cutout": "region",
            "mixup": "mix", "cutmix": "mix", "label_smoothing": "label", "dropout": "feature",
            "one_of": "container", "random_apply": "container"}


@pytest.fixture
def fresh(monkeypatch):
    """A fresh registry for the test, and a fresh one after it."""
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    manager.reset_registry()
    yield manager
    manager.reset_registry()


def fake_plugins(monkeypatch, plugins: dict[str, Any]) -> None:
    """Entry points of the group ``augspec``: name -> a module object (or None: import fails)."""
    eps = []
    for name, mod in plugins.items():
        modname = f"_augspec_test_plugin_{name}"
        if mod is not None:
            monkeypatch.setitem(sys.modules, modname, mod)
        eps.append(importlib.metadata.EntryPoint(name, modname, manager.ENTRY_POINT_GROUP))
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        if kw.get("group") == manager.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def plugin_module(register) -> types.ModuleType:
    mod = types.ModuleType("plugin")
    mod.augspec_register = aug.hookimpl(register)
    return mod


# ------------------------------------------------------------- custom ops


@aug.spec
class ShiftRight(aug.GeometricOp):
    """Move the content ``pixels`` to the right (a custom geometric op)."""

    name = "test_shift_right"
    pixels: int = 1
    p: float = 1.0

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        one = B.ones((ctx.n,), "float32")
        zero = 0.0 * one
        from augspec.core.ops.geometric import affine_matrix

        return affine_matrix(B, one, zero, self.pixels + zero, zero, one, zero)


@aug.spec
class Solarize(aug.PixelOp):
    """Invert the values above a per-sample threshold (a custom pixel op written against B)."""

    name = "test_solarize"
    low: float = 0.5
    high: float = 0.5
    p: float = 1.0

    def draws(self) -> dict[str, Distribution]:
        return {"threshold": Uniform(low=self.low, high=self.high)}

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        t = B.per_sample(params["threshold"])
        return B.where(x >= t, 1.0 - x, x)


@aug.spec
class NoKernel(aug.PixelOp):
    """A pixel op with no generic kernel (``pixels`` not written)."""

    name = "test_no_kernel"
    p: float = 1.0


# -------------------------------------------------------------------- tests


def test_list_ops_has_every_builtin_under_its_snake_case_name():
    ops = {o.name: o for o in aug.list_ops()}
    for name, cls in BUILTIN.items():
        assert name in ops, name
        assert ops[name].cls is cls and cls.name == name
        assert ops[name].registrant == "augspec.builtin"
        assert getattr(aug, cls.__name__) is cls
    for name, fam in FAMILIES.items():
        assert ops[name].family == fam
    assert [o.name for o in aug.list_ops()] == sorted(ops)


def test_list_backends_with_availability():
    bks = {b.name: b for b in aug.list_backends()}
    assert {"numpy", "torch", "tensorflow", "albumentations"} <= set(bks)
    assert bks["numpy"].available is True
    for name, mod in (("torch", "torch"), ("tensorflow", "tensorflow"), ("albumentations", "albumentations")):
        import importlib.util

        assert bks[name].available == (importlib.util.find_spec(mod) is not None)
        assert bks[name].install and name in bks[name].install


def test_register_in_process_ops_run(fresh):
    aug.register(ShiftRight)
    aug.register(Solarize)
    names = {o.name: o for o in aug.list_ops()}
    assert names["test_shift_right"].family == "geometric"
    assert names["test_solarize"].registrant.endswith("Solarize")
    x = np.random.default_rng(0).random((3, 5, 6, 2)).astype(np.float32)
    out = aug.Pipeline([ShiftRight(pixels=2)], seed=0).compile("numpy")(x)
    np.testing.assert_array_equal(out[:, :, 2:], x[:, :, :-2])
    np.testing.assert_array_equal(out[:, :, :2], 0)
    # it composes with the built-in geometry into one warp, on either layout
    run = aug.Pipeline([ShiftRight(pixels=2), aug.HorizontalFlip(p=1)], seed=0).compile("numpy", layout="NCHW")
    assert len(run.plan.stages) == 1
    out = run(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(out[:, :, :-2], x[:, :, :-2][:, :, ::-1])
    out = aug.Pipeline([Solarize(0.5, 0.5)], seed=0).compile("numpy")(x)
    np.testing.assert_array_equal(out, np.where(x >= 0.5, 1 - x, x))
    # p gates it per sample, and the pipeline serializes by the registered name
    pipe = aug.Pipeline([Solarize(0.2, 0.7, p=0.5), ShiftRight(3)], seed=1)
    assert aug.from_json(pipe.to_json()) == pipe
    assert pipe.to_dict()["ops"][0]["type"] == "test_solarize"


def test_register_as_decorator_with_a_name(fresh):
    @aug.register(name="test_named_invert")
    @aug.spec
    class Inv(aug.PixelOp):
        p: float = 1.0

        def pixels(self, B, x, params, ctx):
            return 1.0 - x

    assert Inv.name == "test_named_invert"
    assert "test_named_invert" in {o.name for o in aug.list_ops()}
    x = np.zeros((1, 2, 2, 1), np.uint8)
    np.testing.assert_array_equal(aug.Pipeline([Inv()]).compile("numpy")(x), 255)


def test_register_kernel_override_is_used(fresh):
    calls = []

    @aug.register_kernel("brightness", "numpy")
    def brightness_numpy(op, B, params, mean, ctx):
        calls.append(op)
        f = params["factor"] * 0.5  # a recognisably different kernel
        return B.reshape(f, (-1, 1, 1)) * B.eye(ctx.channels, "float32"), B.zeros((ctx.n, ctx.channels), "float32")

    @aug.register_kernel("contrast", "torch")
    def contrast_torch(op, B, params, mean, ctx):  # another backend's kernel is not used by numpy
        raise AssertionError("the torch kernel ran on numpy")

    x = np.full((2, 3, 3, 3), 0.8, np.float32)
    out = aug.Pipeline([aug.Brightness((1.0, 1.0)), aug.Contrast((1.0, 1.0))], seed=0).compile("numpy")(x)
    np.testing.assert_allclose(out, 0.4, atol=1e-6)
    assert calls and isinstance(calls[0], aug.Brightness)
    with pytest.raises(aug.DuplicateNameError, match="brightness_numpy"):
        aug.register_kernel("brightness", "numpy")(lambda *a: None)


def test_duplicate_names_raise_naming_both_registrants(fresh):
    @aug.spec
    class Affine2(aug.GeometricOp):
        name = "affine"
        p: float = 1.0

    with pytest.raises(aug.DuplicateNameError) as e:
        aug.register(Affine2)
    msg = str(e.value)
    assert "'affine'" in msg and "augspec.builtin" in msg and "Affine2" in msg
    assert isinstance(e.value, aug.RegistryError) and isinstance(e.value, ValueError)
    aug.register(Solarize)
    with pytest.raises(aug.DuplicateNameError, match="test_solarize.*Solarize"):
        aug.register(Solarize)
    # the built-in is untouched
    assert {o.name: o for o in aug.list_ops()}["affine"].cls is aug.Affine


def test_plugins_failing_are_reported_by_name_and_the_others_load(fresh, monkeypatch):
    def good(registry):
        registry.add_op(Solarize)
        registry.add_backend("test_fake_backend", "augspec.backends.numpy:NumpyBackend", requires=("numpy",))

    def bad(registry):
        registry.add_op(ShiftRight)  # staged, then dropped
        raise RuntimeError("boom while registering")

    def clash(registry):
        registry.add_op(aug.Affine, name="cutout")

    def clash_plugins(registry):
        @aug.spec
        class Other(aug.PixelOp):
            name = "test_solarize"
            p: float = 1.0

        registry.add_op(Other)

    fake_plugins(monkeypatch, {"good_plugin": plugin_module(good), "bad_plugin": plugin_module(bad),
                               "clash_plugin": plugin_module(clash), "clash2_plugin": plugin_module(clash_plugins),
                               "broken_plugin": None})
    with pytest.warns(aug.PluginWarning) as rec:
        ops = {o.name: o for o in aug.list_ops()}
    assert ops["test_solarize"].registrant == "good_plugin"
    assert "test_shift_right" not in ops
    assert ops["cutout"].cls is aug.CutOut and ops["affine"].cls is aug.Affine
    assert {b.name for b in aug.list_backends()} >= {"numpy", "test_fake_backend"}
    errors = dict(aug.plugin_errors())
    assert set(errors) == {"bad_plugin", "clash_plugin", "clash2_plugin", "broken_plugin"}
    assert "boom while registering" in errors["bad_plugin"] and "RuntimeError" in errors["bad_plugin"]
    assert "augspec.builtin" in errors["clash_plugin"] and "'cutout'" in errors["clash_plugin"]
    assert "good_plugin" in errors["clash2_plugin"] and "clash2_plugin" in errors["clash2_plugin"]
    assert "could not load" in errors["broken_plugin"]
    warned = " ".join(str(w.message) for w in rec)
    for name in errors:
        assert name in warned
    # the good plugin's op runs
    x = np.full((1, 2, 2, 1), 0.75, np.float32)
    np.testing.assert_allclose(aug.Pipeline([Solarize()]).compile("numpy")(x), 0.25)
    # and the manager is a pluggy PluginManager for the project "augspec"
    pm = manager.plugin_manager()
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == "augspec"
    assert pm.has_plugin("augspec.builtin") and pm.has_plugin("good_plugin")


def test_disable_env_blocks_a_plugin(fresh, monkeypatch):
    def good(registry):
        registry.add_op(Solarize)

    def other(registry):
        registry.add_op(ShiftRight)

    fake_plugins(monkeypatch, {"good_plugin": plugin_module(good), "other_plugin": plugin_module(other)})
    monkeypatch.setenv(manager.DISABLE_ENV, " good_plugin , nothing_by_that_name")
    names = {o.name for o in aug.list_ops()}
    assert "test_solarize" not in names and "test_shift_right" in names
    assert aug.plugin_errors() == []
    assert manager.plugin_manager().is_blocked("good_plugin")
    with pytest.raises(aug.ConfigError, match="unknown op 'test_solarize'"):
        aug.from_dict({"version": 1, "type": "test_solarize"})


def test_a_plugin_written_for_pluggy_directly():
    """The hook specification works with a bare pluggy manager (what a plugin author tests against)."""
    pm = pluggy.PluginManager("augspec")
    pm.add_hookspecs(hookspecs)

    class Plugin:
        @aug.hookimpl
        def augspec_register(self, registry):
            registry.add_op(Solarize)

    pm.register(Plugin(), name="direct")
    reg = manager.Registry()
    r = manager.Registrar(reg, "direct")
    pm.hook.augspec_register(registry=r)
    assert reg.ops == {}  # staged until commit
    r.commit()
    assert reg.ops["test_solarize"].registrant == "direct"
    with pytest.raises(TypeError):  # hooks take keyword arguments only: a typo is caught
        pm.hook.augspec_register(r)


def test_unknown_and_unavailable_backends(fresh, monkeypatch):
    pipe = aug.Pipeline([aug.HorizontalFlip()])
    with pytest.raises(aug.RegistryError, match="unknown backend 'nope'.*numpy") as e:
        pipe.compile("nope")
    assert isinstance(e.value, ValueError)

    def needs_missing(registry):
        registry.add_backend("test_jax", "augspec_no_such_pkg.backend:JaxBackend",
                             requires=("augspec_no_such_framework",), install="pip install augspec-jax")

    fake_plugins(monkeypatch, {"jax_plugin": plugin_module(needs_missing)})
    manager.reset_registry()  # loaded above, before the plugin was there
    info = {b.name: b for b in aug.list_backends()}["test_jax"]
    assert info.available is False and info.registrant == "jax_plugin"
    with pytest.raises(aug.BackendUnavailableError, match="augspec_no_such_framework.*pip install augspec-jax"):
        pipe.compile("test_jax")
    with pytest.raises(aug.SpecTypeError):
        pipe.compile(3)


def test_backend_options_are_checked():
    with pytest.raises(aug.SpecError, match="layout"):
        aug.Pipeline([aug.HorizontalFlip()]).compile("numpy", layout="HWC")
    with pytest.raises(aug.SpecError, match="unknown options"):
        aug.Pipeline([aug.HorizontalFlip()]).compile("numpy", device="cuda")


def test_an_op_without_a_kernel_errors_at_compile(fresh):
    aug.register(NoKernel)
    with pytest.raises(aug.RegistryError, match="'test_no_kernel'.*'numpy'"):
        aug.Pipeline([aug.Affine(), NoKernel()]).compile("numpy")
    # nested in a container too
    with pytest.raises(aug.RegistryError, match="test_no_kernel"):
        aug.Pipeline([aug.OneOf([aug.HorizontalFlip(), NoKernel()])]).compile("numpy")

    # a kernel registered for one backend only
    @aug.register_kernel("test_no_kernel", "numpy")
    def no_kernel_numpy(op, B, x, params, ctx):
        return x * 0.0

    out = aug.Pipeline([NoKernel()]).compile("numpy")(np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(out, 0)


def test_registry_state_does_not_leak():
    # runs after the tests above: none of their ops, backends or plugin errors is left
    assert not {o.name for o in aug.list_ops()} & {"test_solarize", "test_shift_right", "test_no_kernel",
                                                  "test_named_invert"}
    assert not {b.name for b in aug.list_backends()} & {"test_jax", "test_fake_backend"}
    assert not {n for n, _ in aug.plugin_errors()} & {"bad_plugin", "clash_plugin", "broken_plugin"}
