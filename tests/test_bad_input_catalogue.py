"""The bad-input catalogue (issue 7, part 2).

Each named case feeds one bad input to the public API and asserts the exception
type, that the message names the problem, and that no input array was modified
(NumPy inputs are made read-only, so an in-place write would also fail loudly,
and are compared with a copy afterwards). Then Hypothesis feeds random
dictionaries to ``from_dict`` and random arrays to compiled pipelines: the only
exceptions ever raised are augspec's own (``AugspecError`` subclasses, which are
``ValueError``/``TypeError`` subclasses with a message).

The torch and TensorFlow rows run where those backends are installed and available.
"""

from __future__ import annotations

import math
import re
import textwrap
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import augspec as aug
from augspec.core import registry as core_registry
from augspec.core.spec import GeometricOp, spec
from augspec.plugins import manager

P = aug.Pipeline


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def images(shape=(4, 8, 8, 3), dtype=np.uint8, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return _ro(rng.integers(0, 256, size=shape).astype(dtype))
    return _ro(rng.random(shape).astype(dtype))


def ids(values, dtype=np.int64) -> np.ndarray:
    return _ro(np.asarray(values, dtype=dtype))


def flip() -> Any:
    return P([aug.HorizontalFlip(p=1.0)], seed=0).compile("numpy")


def mix(k: int | None = 3) -> Any:
    return P([aug.MixUp(0.8), aug.LabelSmoothing(0.1)], num_classes=k, seed=0).compile("numpy")


def r2_run(layout: str = "NHWC", k: int = 10) -> Any:
    from augspec.recipes import r2

    return r2(num_classes=k).compile("numpy", layout=layout)


@dataclass
class Case:
    name: str
    call: Callable[[dict[str, Any]], Any]
    exc: type
    match: str
    arrays: Callable[[], dict[str, Any]] = field(default=lambda: {})
    registry: bool = False  # needs an isolated registry (and the plugin folder fixture)


# --------------------------------------------------------------- registry helpers


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """A registry built from scratch, with a plugin folder on sys.path; restored afterwards."""
    import sys

    monkeypatch.setattr(core_registry, "_registry", None)
    monkeypatch.setattr(manager, "_pm", None)
    monkeypatch.delenv(manager.DISABLE_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def add_plugin(ep_name: str, body: str) -> str:
        mod = f"augspec_cat_plugin_{ep_name}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent(body))
        dist = tmp_path / f"{mod}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {mod}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[augspec]\n{ep_name} = {mod}\n")
        created.append(mod)
        return mod

    yield add_plugin
    for m in created:
        sys.modules.pop(m, None)


@spec
class _NoKernel(GeometricOp):
    """A geometric op that implements no ``matrix``: it needs a registered kernel."""

    name = "cat_no_kernel"
    p: float = 1.0


def _register_no_kernel(env) -> Any:
    aug.register(_NoKernel)
    return P([_NoKernel()], seed=0).compile("numpy")


def _unavailable_backend(env) -> Any:
    reg = manager.get_registry()
    r = manager.Registrar(reg, "catalogue")
    r.add_backend("cat_jax", "augspec_cat_missing_module:Backend", requires=("augspec_cat_missing_module",),
                  install="pip install 'augspec[cat-jax]'")
    r.commit()
    return P([aug.HorizontalFlip()], seed=0).compile("cat_jax")


def _plugin_that_raises(env) -> Any:
    env["add_plugin"]("cat_raiser", """
        import augspec
        @augspec.hookimpl
        def augspec_register(registry):
            raise RuntimeError("boom from the plugin")
    """)
    good = env["add_plugin"]("cat_fine", _op_plugin_src("cat_fine_op"))
    assert good
    with pytest.warns(aug.PluginWarning, match="cat_raiser") as rec:
        names = {o.name for o in aug.list_ops()}
    assert "cat_fine_op" in names and "affine" in names  # the others still load
    errs = dict(aug.plugin_errors())
    assert "boom from the plugin" in errs["cat_raiser"]
    raise rec[0].message  # re-raise the warning as the case's "exception"


def _plugin_that_fails_to_import(env) -> Any:
    env["add_plugin"]("cat_broken", "raise ImportError('missing dependency xyz')\n")
    with pytest.warns(aug.PluginWarning, match="cat_broken") as rec:
        aug.list_ops()
    assert "missing dependency xyz" in dict(aug.plugin_errors())["cat_broken"]
    raise rec[0].message


def _op_plugin_src(op_name: str) -> str:
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


def _two_plugins_same_op(env) -> Any:
    env["add_plugin"]("cat_dup_first", _op_plugin_src("cat_dup_op"))
    env["add_plugin"]("cat_dup_second", _op_plugin_src("cat_dup_op"))
    with pytest.warns(aug.PluginWarning) as rec:
        ops = {o.name: o for o in aug.list_ops()}
    assert "cat_dup_op" in ops  # exactly one kept, never silently overwritten
    errs = dict(aug.plugin_errors())
    assert len(errs) == 1
    (loser, msg), = errs.items()
    winner = ops["cat_dup_op"].registrant
    assert {loser, winner} == {"cat_dup_first", "cat_dup_second"}
    assert winner in msg and loser in msg and "DuplicateNameError" in msg
    raise rec[0].message


def _register_twice_in_process(env) -> Any:
    @spec
    class Twice(GeometricOp):
        name = "cat_twice"
        p: float = 1.0

    aug.register(Twice)
    aug.register(Twice)


def _builtin_name_taken(env) -> Any:
    @spec
    class MyAffine(GeometricOp):
        name = "affine"
        p: float = 1.0

    aug.register(MyAffine)


def _alb_collate_sizes() -> Any:
    pytest.importorskip("albumentations")
    run = P([aug.HorizontalFlip(), aug.MixUp()], num_classes=3, seed=0).compile("albumentations", defer_batch_ops=True)
    return run.collate([(np.zeros((8, 8, 3), np.uint8), 0), (np.zeros((6, 8, 3), np.uint8), 1)])


def _tampered(key: str, value: np.ndarray) -> Any:
    run = P([aug.Affine(rotate=10), aug.GaussianNoise(std=0.1), aug.MixUp()], num_classes=3, seed=0).compile("numpy")
    params = dict(run.sample(4, (8, 8, 3)))
    params[key] = value
    return run.apply(images((4, 8, 8, 3)), ids([0, 1, 2, 0]), params)


def _op_named(name: str) -> Any:
    @spec
    class Named(GeometricOp):
        p: float = 1.0

    Named.name = name
    aug.register(Named)


def _op_with_type_field() -> Any:
    @spec
    class Typed(GeometricOp):
        name = "cat_typed"
        type: str = "x"
        p: float = 1.0

    aug.register(Typed)


# --------------------------------------------------------------------- the cases


CASES: list[Case] = [
    # ----- images: rank, layout, size, dtype
    Case("images_rank_2", lambda a: flip()(a["x"]), aug.InputError, r"3-D.*4-D.*shape \(8, 8\)",
         lambda: {"x": images((8, 8))}),
    Case("images_rank_5", lambda a: flip()(a["x"]), aug.InputError, r"3-D.*4-D.*got shape \(2, 2, 4, 4, 3\)",
         lambda: {"x": images((2, 2, 4, 4, 3))}),
    Case("images_scalar", lambda a: flip()(a["x"]), aug.InputError, r"got shape \(\)",
         lambda: {"x": _ro(np.array(3, np.uint8))}),
    Case("nchw_batch_to_nhwc_run", lambda a: flip()(a["x"]), aug.InputError, r"32 channels.*layout.*NHWC",
         lambda: {"x": images((2, 3, 32, 32))}),
    Case("nhwc_batch_to_nchw_run", lambda a: r2_run("NCHW")(a["x"], a["y"]), aug.InputError,
         r"32 channels.*layout.*NCHW", lambda: {"x": images((2, 32, 32, 3)), "y": ids([0, 1])}),
    Case("zero_height", lambda a: flip()(a["x"]), aug.InputError, r"non-zero height.*\(0, 8, 3\)",
         lambda: {"x": images((2, 0, 8, 3))}),
    Case("zero_width_single_image", lambda a: flip()(a["x"]), aug.InputError, r"non-zero.*\(8, 0, 3\)",
         lambda: {"x": images((8, 0, 3))}),
    Case("zero_channels", lambda a: flip()(a["x"]), aug.InputError, r"non-zero.*channel",
         lambda: {"x": images((2, 8, 8, 0))}),
    Case("dtype_int32", lambda a: flip()(a["x"]), aug.InputTypeError, r"dtype int32 .*uint8",
         lambda: {"x": images(dtype=np.int32)}),
    Case("dtype_int64", lambda a: flip()(a["x"]), aug.InputTypeError, r"dtype int64",
         lambda: {"x": images(dtype=np.int64)}),
    Case("dtype_bool", lambda a: flip()(a["x"]), aug.InputTypeError, r"dtype bool",
         lambda: {"x": _ro(np.zeros((2, 8, 8, 3), bool))}),
    Case("dtype_complex", lambda a: flip()(a["x"]), aug.InputTypeError, r"complex64 are not numbers",
         lambda: {"x": _ro(np.zeros((2, 8, 8, 3), np.complex64))}),
    Case("dtype_strings", lambda a: flip()(a["x"]), aug.InputTypeError, r"<U1 are not numbers",
         lambda: {"x": _ro(np.full((2, 4, 4, 3), "a"))}),
    Case("dtype_object", lambda a: flip()(a["x"]), aug.InputTypeError, r"object are not numbers",
         lambda: {"x": _ro(np.full((2, 4, 4, 3), None, dtype=object))}),
    Case("ragged_list", lambda a: flip()([[1, 2], [3]]), aug.InputTypeError, r"cannot read the images"),
    Case("images_none", lambda a: flip()(None), aug.InputTypeError, r"object are not numbers"),
    # ----- channels
    Case("grayscale_to_color_jitter",
         lambda a: P([aug.ColorJitter(saturation=0.4)], seed=0).compile("numpy")(a["x"]), aug.InputError,
         r"ColorJitter \(at 0\) cannot take images with 1 channels", lambda: {"x": images((2, 8, 8, 1))}),
    Case("grayscale_to_hue", lambda a: P([aug.Hue(0.1)], seed=0).compile("numpy")(a["x"]), aug.InputError,
         r"Hue .*1 channels", lambda: {"x": images((2, 8, 8, 1), np.float32)}),
    Case("grayscale_to_rgb_normalize", lambda a: r2_run()(a["x"], a["y"]), aug.InputError,
         r"cannot take images with 1 channels", lambda: {"x": images((2, 8, 8, 1)), "y": ids([0, 1])}),
    Case("four_channels_to_saturation",
         lambda a: P([aug.Saturation(0.4)], seed=0).compile("numpy")(a["x"]), aug.InputError,
         r"Saturation .*4 channels", lambda: {"x": images((2, 8, 8, 4))}),
    # ----- labels
    Case("labels_batch_mismatch", lambda a: mix()(a["x"], a["y"]), aug.InputError,
         r"N = 4 images, got shape \(3,\)", lambda: {"x": images(), "y": ids([0, 1, 2])}),
    Case("soft_labels_batch_mismatch", lambda a: mix()(a["x"], a["y"]), aug.InputError,
         r"N = 4 images, got shape \(5, 3\)",
         lambda: {"x": images(), "y": _ro(np.full((5, 3), 1 / 3, np.float32))}),
    Case("labels_rank_3", lambda a: mix()(a["x"], a["y"]), aug.InputError, r"got shape \(4, 3, 1\)",
         lambda: {"x": images(), "y": _ro(np.zeros((4, 3, 1), np.float32))}),
    Case("soft_labels_wrong_num_classes", lambda a: mix(3)(a["x"], a["y"]), aug.InputError,
         r"5 classes but num_classes=3", lambda: {"x": images(), "y": _ro(np.full((4, 5), 0.2, np.float32))}),
    Case("class_ids_float", lambda a: mix()(a["x"], a["y"]), aug.InputTypeError, r"class ids must be integers",
         lambda: {"x": images(), "y": _ro(np.array([0.0, 1.0, 2.0, 0.0]))}),
    Case("soft_labels_int", lambda a: mix()(a["x"], a["y"]), aug.InputTypeError,
         r"soft labels must be floating point", lambda: {"x": images(), "y": _ro(np.eye(4, 3, dtype=np.int64))}),
    Case("class_id_too_large", lambda a: mix(3)(a["x"], a["y"]), aug.InputError,
         r"class ids must lie in \[0, 3\)", lambda: {"x": images(), "y": ids([0, 1, 2, 3])}),
    Case("num_classes_too_small_for_labels", lambda a: mix(2)(a["x"], a["y"]), aug.InputError,
         r"num_classes=2", lambda: {"x": images(), "y": ids([0, 1, 7, 1])}),
    Case("class_id_negative", lambda a: mix(3)(a["x"], a["y"]), aug.InputError, r"\[0, 3\)",
         lambda: {"x": images(), "y": ids([0, -1, 2, 1])}),
    Case("num_classes_missing", lambda a: mix(None)(a["x"], a["y"]), aug.InputError,
         r"class ids need num_classes", lambda: {"x": images(), "y": ids([0, 1, 2, 1])}),
    Case("labels_strings", lambda a: mix()(a["x"], a["y"]), aug.InputTypeError, r"not numbers",
         lambda: {"x": images(), "y": _ro(np.array(["a", "b", "c", "d"]))}),
    Case("single_image_with_batch_labels", lambda a: mix()(a["x"], a["y"]), aug.InputError,
         r"labels of one image", lambda: {"x": images((8, 8, 3)), "y": _ro(np.zeros((2, 3), np.float32))}),
    # ----- hyper-parameters
    Case("num_classes_zero", lambda a: P([aug.MixUp()], num_classes=0), aug.SpecError, r"num_classes=0"),
    Case("num_classes_float", lambda a: P([aug.MixUp()], num_classes=2.5), aug.SpecTypeError,
         r"num_classes must be an integer"),
    Case("seed_negative", lambda a: P([], seed=-1), aug.SpecError, r"seed=-1"),
    Case("negative_holes", lambda a: aug.CutOut(holes=-1), aug.SpecError, r"CutOut: holes=-1"),
    Case("negative_alpha", lambda a: aug.MixUp(alpha=-0.5), aug.SpecError, r"MixUp: alpha=-0.5"),
    Case("zero_alpha", lambda a: aug.CutMix(alpha=0.0), aug.SpecError, r"CutMix: alpha=0.0 .*\(0.0"),
    Case("negative_symmetric_bound", lambda a: aug.Affine(rotate=-15), aug.SpecError,
         r"Affine: rotate=-15 must be >= 0"),
    Case("negative_noise_std", lambda a: aug.GaussianNoise(std=-0.1), aug.SpecError, r"GaussianNoise: std=-0.1"),
    Case("nan_alpha", lambda a: aug.LabelSmoothing(alpha=math.nan), aug.SpecError,
         r"LabelSmoothing: alpha must not be NaN"),
    Case("nan_in_range", lambda a: aug.Affine(scale=(0.9, math.nan)), aug.SpecError, r"scale must not be NaN"),
    Case("inf_rotate", lambda a: aug.Affine(rotate=math.inf), aug.SpecError, r"rotate=inf"),
    Case("inverted_scale_range", lambda a: aug.Affine(scale=(1.1, 0.9)), aug.SpecError,
         r"scale=\(1.1, 0.9\) is an inverted range"),
    Case("inverted_cutout_size", lambda a: aug.CutOut(size=(0.5, 0.1)), aug.SpecError, r"size=.*inverted"),
    Case("inverted_brightness", lambda a: aug.Brightness(factor=(1.4, 0.6)), aug.SpecError, r"inverted"),
    Case("range_of_three", lambda a: aug.Affine(rotate=(1, 2, 3)), aug.SpecTypeError, r"\(low, high\) pair"),
    Case("brightness_below_zero", lambda a: aug.Brightness(factor=1.5), aug.SpecError,
         r"factor=1.5 gives the range \(-0.5, 2.5\)"),
    Case("hue_beyond_half_circle", lambda a: aug.Hue(shift=0.7), aug.SpecError, r"shift=0.7"),
    Case("cutout_size_above_one", lambda a: aug.CutOut(size=(0.5, 1.5)), aug.SpecError, r"size="),
    Case("dropout_rate_one", lambda a: aug.Dropout(rate=1.0), aug.SpecError, r"rate=1.0 .*\[0.0, 1.0\)"),
    Case("normalize_zero_std", lambda a: aug.Normalize(std=(0.2, 0.0, 0.2)), aug.SpecError, r"std=.*> 0"),
    Case("normalize_mean_std_lengths", lambda a: aug.Normalize(mean=(0.5, 0.5), std=(0.2, 0.2, 0.2)),
         aug.SpecError, r"mean has 2 channels but std has 3"),
    Case("p_above_one", lambda a: aug.HorizontalFlip(p=1.5), aug.SpecError, r"HorizontalFlip: p=1.5"),
    Case("p_negative", lambda a: aug.CutOut(p=-0.1), aug.SpecError, r"CutOut: p=-0.1"),
    Case("p_nan", lambda a: aug.MixUp(p=math.nan), aug.SpecError, r"p must not be NaN"),
    Case("random_apply_p_above_one", lambda a: aug.RandomApply(aug.HorizontalFlip(), p=2), aug.SpecError,
         r"RandomApply: p=2"),
    Case("one_of_negative_weight", lambda a: aug.OneOf([aug.MixUp(), aug.CutMix()], weights=(1, -1)),
         aug.SpecError, r"OneOf: weights=-1"),
    Case("one_of_zero_weights", lambda a: aug.OneOf([aug.MixUp(), aug.CutMix()], weights=(0, 0)),
         aug.SpecError, r"must not all be zero"),
    Case("one_of_empty", lambda a: aug.OneOf([]), aug.SpecError, r"at least one op"),
    Case("p_as_string", lambda a: aug.HorizontalFlip(p="0.5"), aug.SpecTypeError, r"p must be a number"),
    Case("rotate_as_string", lambda a: aug.Affine(rotate="15"), aug.SpecTypeError, r"rotate must be a number"),
    Case("holes_float", lambda a: aug.CutOut(holes=1.5), aug.SpecTypeError, r"holes must be an integer"),
    Case("bool_flag_as_int", lambda a: aug.CutMix(correct_lambda=1), aug.SpecTypeError,
         r"correct_lambda must be True or False"),
    Case("unknown_interpolation", lambda a: aug.Affine(interpolation="bicubic"), aug.SpecError,
         r"interpolation='bicubic' is not one of"),
    Case("not_an_op_in_pipeline", lambda a: P([aug.HorizontalFlip(), "flip"]), aug.SpecTypeError,
         r"ops\[1\] is not an op: 'flip'"),
    Case("standardize_no_flags", lambda a: aug.Standardize(), aug.SpecError, r"set at least one of"),
    Case("zca_not_fitted", lambda a: P([aug.ZCAWhitening()], seed=0).compile("numpy"), aug.SpecError,
         r"not fitted.*Pipeline.fit"),
    Case("zca_fitted_on_other_size",
         lambda a: P([aug.ZCAWhitening(matrix=np.eye(12, dtype=np.float32))], seed=0).compile("numpy")(a["x"]),
         aug.InputError, r"fitted on images of 12 values, got 8x8x3", lambda: {"x": images()}),
    Case("dropout_noise_shape_rank", lambda a: P([aug.Dropout(noise_shape=(None, 1))], seed=0).compile("numpy"),
         aug.SpecError, r"noise_shape has 4 entries"),
    Case("fit_on_empty_batch", lambda a: P([aug.Standardize(featurewise_center=True)]).fit(a["x"]),
         aug.InputError, r"non-empty batch", lambda: {"x": images((0, 8, 8, 3))}),
    # ----- backends and compile
    Case("unknown_backend", lambda a: P([aug.HorizontalFlip()]).compile("mxnet"), aug.RegistryError,
         r"unknown backend 'mxnet'; known backends: .*numpy"),
    Case("backend_not_a_string", lambda a: P([aug.HorizontalFlip()]).compile(3), aug.SpecTypeError,
         r"backend must be a name"),
    Case("unknown_layout", lambda a: P([aug.HorizontalFlip()]).compile("numpy", layout="CHW"), aug.SpecError,
         r"layout='CHW' is not one of"),
    Case("unknown_compile_option", lambda a: P([aug.HorizontalFlip()]).compile("numpy", devise="cpu"),
         aug.SpecError, r"unknown options \['devise'\]"),
    Case("unavailable_backend", _unavailable_backend, aug.BackendUnavailableError,
         r"'cat_jax' is not available: it needs augspec_cat_missing_module; install it with: "
         r"pip install 'augspec\[cat-jax\]'", registry=True),
    Case("op_without_kernel", _register_no_kernel, aug.RegistryError,
         r"'cat_no_kernel' has no kernel for the 'numpy' backend", registry=True),
    Case("auto_backend_unknown_array", lambda a: P([aug.HorizontalFlip()]).compile("auto")(object()),
         aug.SpecTypeError, r"cannot tell the framework of a object"),
    # ----- plugins and registry
    Case("plugin_that_raises", _plugin_that_raises, aug.PluginWarning, r"'cat_raiser' failed: RuntimeError: boom",
         registry=True),
    Case("plugin_that_fails_to_import", _plugin_that_fails_to_import, aug.PluginWarning,
         r"'cat_broken' failed: could not load \(ImportError: missing dependency xyz\)", registry=True),
    Case("two_plugins_same_op_name", _two_plugins_same_op, aug.PluginWarning,
         r"op 'cat_dup_op' registered by .* is already registered by", registry=True),
    Case("register_same_op_twice", _register_twice_in_process, aug.DuplicateNameError,
         r"op 'cat_twice' registered by .*Twice.* is already registered by", registry=True),
    Case("register_over_a_builtin", _builtin_name_taken, aug.DuplicateNameError,
         r"op 'affine' .* already registered by 'augspec.builtin'", registry=True),
    Case("register_not_an_op", lambda a: aug.register(dict), aug.SpecTypeError, r"add_op takes an Op subclass",
         registry=True),
    # ----- configs
    Case("config_unknown_key", lambda a: aug.from_dict({"version": 1, "type": "affine", "rotat": 5}),
         aug.ConfigError, r"affine has no field 'rotat'; its fields: rotate"),
    Case("config_unknown_op", lambda a: aug.from_dict({"version": 1, "type": "rotate"}), aug.ConfigError,
         r"unknown op 'rotate'; known ops: .*affine"),
    Case("config_wrong_value_type", lambda a: aug.from_dict({"version": 1, "type": "cutout", "holes": "two"}),
         aug.ConfigTypeError, r"holes must be an integer, got 'two'"),
    Case("config_type_not_a_string", lambda a: aug.from_dict({"version": 1, "type": ["affine"]}),
         aug.ConfigTypeError, r"'type' must be an op name"),
    Case("config_missing_version", lambda a: aug.from_dict({"type": "affine"}), aug.ConfigError,
         r"missing 'version'"),
    Case("config_future_version", lambda a: aug.from_dict({"version": 2, "type": "affine"}), aug.ConfigError,
         r"version 2 is not one this augspec reads"),
    Case("config_not_a_mapping", lambda a: aug.from_dict([{"version": 1, "type": "affine"}]),
         aug.ConfigTypeError, r"must be a mapping, got list"),
    Case("config_ops_not_a_list", lambda a: aug.from_dict({"version": 1, "type": "pipeline", "ops": "affine"}),
         aug.ConfigTypeError, r"ops: must be a list of ops"),
    Case("config_bad_hyperparameter", lambda a: aug.from_dict({"version": 1, "type": "mixup", "alpha": -1}),
         aug.ConfigError, r"config: MixUp: alpha=-1"),
    Case("config_invalid_json", lambda a: aug.from_json('{"version": 1, "type": '), aug.ConfigError,
         r"not valid JSON"),
    Case("config_invalid_yaml", lambda a: aug.from_yaml("version: 1\ntype: [affine\n"), aug.ConfigError,
         r"YAML refused"),
    Case("pipeline_from_dict_of_an_op", lambda a: P.from_dict({"version": 1, "type": "affine"}),
         aug.SpecTypeError, r"holds a Affine, not a pipeline"),
    # ----- sample / apply / state
    Case("apply_without_params", lambda a: mix().apply(a["x"], a["y"]), aug.InputError, r"params are required",
         lambda: {"x": images(), "y": ids([0, 1, 2, 0])}),
    Case("apply_params_missing_keys", lambda a: mix().apply(a["x"], a["y"], {"0/lam": np.zeros(4, np.float32)}),
         aug.InputError, r"params are missing \['0/partner'\]", lambda: {"x": images(), "y": ids([0, 1, 2, 0])}),
    Case("apply_params_other_batch_size",
         lambda a: (lambda r: r.apply(a["x"], a["y"], r.sample(3)))(mix()), aug.InputError,
         r"drawn for another batch size than 4", lambda: {"x": images(), "y": ids([0, 1, 2, 0])}),
    Case("sample_negative_batch", lambda a: flip().sample(-1), aug.InputError, r"batch_size must be an integer >= 0"),
    Case("sample_float_batch", lambda a: flip().sample(2.5), aug.InputError, r"got 2.5"),
    Case("sample_image_shape_rank", lambda a: flip().sample(2, (8, 8)), aug.InputError, r"3 numbers"),
    Case("sample_image_shape_text", lambda a: flip().sample(2, "abc"), aug.InputError, r"image_shape must be"),
    Case("sample_per_pixel_without_shape", lambda a: P([aug.GaussianNoise()], seed=0).compile("numpy").sample(2),
         aug.SpecError, r"pass image_shape= to sample"),
    Case("set_state_negative_epoch", lambda a: flip().set_state(epoch=-1), aug.InputError, r"epoch must be >= 0"),
    Case("set_state_text_step", lambda a: flip().set_state(step="3"), aug.InputTypeError,
         r"step must be an integer, got '3'"),
    Case("set_epoch_float", lambda a: flip().set_epoch(1.5), aug.InputTypeError, r"epoch must be an integer"),
    Case("compile_negative_rank", lambda a: P([aug.HorizontalFlip()]).compile("numpy", rank=-2), aug.InputError,
         r"rank must be >= 0"),
    # ----- tampered params: trailing shape and kind are checked too
    Case("params_wrong_trailing_shape", lambda a: _tampered("1/noise", np.zeros((4, 8, 8, 1), np.float32)), aug.InputError,
         r"params\['1/noise'\] has shape \(4, 8, 8, 1\); this batch needs \(4, 8, 8, 3\)"),
    Case("params_float_partner", lambda a: _tampered("2/partner", np.zeros(4, np.float32)), aug.InputTypeError,
         r"params\['2/partner'\] has dtype float32; this draw is int"),
    Case("params_extra_axis", lambda a: _tampered("0/rotate", np.zeros((4, 2), np.float32)), aug.InputError,
         r"params\['0/rotate'\] has shape \(4, 2\)"),
    Case("collate_different_sizes", lambda a: _alb_collate_sizes(), aug.InputError,
         r"collate: the samples have different shapes \[\(6, 8, 3\), \(8, 8, 3\)\]"),
    # ----- per-channel fields against the images' channels (every op with one, named with its field)
    Case("gray_batch_three_value_fill", lambda a: P([aug.Affine(rotate=10, fill=(0.1, 0.2, 0.3))]).compile("numpy")(a["x"]),
         aug.InputError, r"Affine \(at 0\): fill=\(0.1, 0.2, 0.3\) has 3 values but the images have 1 channels",
         lambda: {"x": images((2, 8, 8, 1))}),
    Case("rgba_batch_three_value_fill", lambda a: P([aug.Affine(rotate=10, fill=(0.1, 0.2, 0.3))]).compile("numpy")(a["x"]),
         aug.InputError, r"fill=.*3 values.*4 channels", lambda: {"x": images((2, 8, 8, 4))}),
    Case("rgba_batch_three_value_cutout_fill", lambda a: P([aug.CutOut(fill=(1, 0, 0))]).compile("numpy")(a["x"]),
         aug.InputError, r"CutOut .*fill=.*4 channels", lambda: {"x": images((2, 8, 8, 4))}),
    Case("gray_batch_rgb_normalize", lambda a: P([aug.Normalize()]).compile("numpy")(a["x"]), aug.InputError,
         r"Normalize .*mean=.*3 values.*1 channels", lambda: {"x": images((2, 8, 8, 1))}),
    Case("gray_batch_keras_affine_fill", lambda a: P([aug.KerasAffine(rotation=10, fill=(0.1, 0.2))]).compile("numpy")(
        a["x"]), aug.InputError, r"KerasAffine .*fill=.*2 values", lambda: {"x": images((2, 8, 8, 1))}),
    # ----- maps that cannot be inverted are refused where the ranges allow them
    Case("singular_shear", lambda a: aug.Affine(shear=(45, 45), shear_y=(45, 45)), aug.SpecError,
         r"Affine: shear=\(45.0, 45.0\) with shear_y=\(45.0, 45.0\) reaches a singular map"),
    Case("shear_ranges_crossing_singular", lambda a: aug.Affine(shear=60, shear_y=40), aug.SpecError,
         r"singular map"),
    # ----- sizes and numbers that would exhaust memory or wrap
    Case("num_classes_huge", lambda a: P([aug.MixUp()], num_classes=10**12), aug.SpecError,
         r"num_classes=1000000000000 is outside the allowed range \[1, 1048576\]"),
    Case("config_400_digit_integer", lambda a: aug.from_json('{"version": 1, "type": "pipeline", "ops": [], "seed": '
                                                              + "9" * 400 + "}"), aug.ConfigError,
         r"config.seed: the integer .*400 digits.* out of range"),
    Case("zca_nan_matrix", lambda a: aug.ZCAWhitening(matrix=np.full((3, 3), np.nan)), aug.SpecError,
         r"ZCAWhitening: matrix holds 9 NaN or infinite values"),
    Case("set_state_step_2_64", lambda a: flip().set_state(step=2**64), aug.InputError, r"step must be at most 2\*\*63 - 1"),
    Case("set_epoch_2_63", lambda a: flip().set_epoch(2**63), aug.InputError, r"epoch must be at most"),
    # ----- op names and fields a config could not load back
    Case("op_named_pipeline", lambda a: _op_named("pipeline"), aug.RegistryError, r"cannot be named 'pipeline'",
         registry=True),
    Case("op_with_a_field_named_type", lambda a: _op_with_type_field(), aug.RegistryError, r"field named 'type'",
         registry=True),
]

NAMES = [c.name for c in CASES]
assert len(set(NAMES)) == len(NAMES), "case names must be unique"


def _snapshot(arrays: dict[str, Any]) -> dict[str, Any]:
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


@pytest.mark.parametrize("case", CASES, ids=NAMES)
def test_bad_input(case: Case, request):
    env: dict[str, Any] = {}
    if case.registry:
        env["add_plugin"] = request.getfixturevalue("fresh_registry")
    arrays = case.arrays()
    env.update(arrays)
    before = _snapshot(arrays)
    with warnings.catch_warnings():
        if not issubclass(case.exc, Warning):
            warnings.simplefilter("ignore", aug.PluginWarning)
        with pytest.raises(case.exc) as ei:
            case.call(env)
    err = ei.value
    assert isinstance(err, (ValueError, TypeError)) or issubclass(case.exc, Warning)
    if not issubclass(case.exc, Warning):
        assert isinstance(err, aug.AugspecError), f"{type(err).__mro__}"
    msg = str(err)
    assert msg, "an error must carry a message"
    assert re.search(case.match, msg, re.S), f"message {msg!r} does not name the problem ({case.match!r})"
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"input {k!r} was modified")
        assert v.dtype == before[k].dtype and v.shape == before[k].shape


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40


# ---------------------------------------------------- edge inputs that must work


@pytest.mark.parametrize("shape", [(2, 1, 1, 3), (1, 1, 1, 3), (1, 2, 1, 3), (2, 1, 7, 3), (1, 1, 3)])
def test_tiny_images_work(shape):
    """One-pixel (and one-row) images are valid: R2 runs, shapes and values are sane."""
    x = images(shape)
    y = ids([0] * (shape[0] if len(shape) == 4 else 1))
    if len(shape) == 3:
        y = _ro(np.asarray(0))
    run = r2_run()
    xo, yo = run(x, y)
    assert xo.shape == x.shape and xo.dtype == np.float32 and np.isfinite(xo).all()
    assert np.allclose(yo.sum(-1), 1.0, atol=1e-5) and (yo >= 0).all()


def test_empty_batch_comes_back_empty():
    x = images((0, 8, 8, 3))
    xo, yo = r2_run()(x, ids([]))
    assert xo.shape == (0, 8, 8, 3) and yo.shape[0] == 0


# ----------------------------------------------------------- torch and TF rows


def _available(name: str) -> bool:
    return any(b.name == name and b.available for b in aug.list_backends())


def _torch_run(pipe, **kw):
    try:
        return pipe.compile("torch", **kw)
    except ImportError as e:  # the backend module is not written yet
        pytest.skip(f"torch backend not importable: {e}")


def _tf_run(pipe, **kw):
    try:
        return pipe.compile("tensorflow", **kw)
    except ImportError as e:
        pytest.skip(f"tensorflow backend not importable: {e}")


TORCH_CASES = [
    ("torch_rank_2", lambda t: t.zeros((8, 8), dtype=t.uint8), None, aug.InputError, r"3-D.*4-D"),
    ("torch_nhwc_to_nchw", lambda t: t.zeros((2, 32, 32, 3), dtype=t.uint8), None, aug.InputError,
     r"32 channels.*layout"),
    ("torch_int32", lambda t: t.zeros((2, 3, 8, 8), dtype=t.int32), None, aug.InputTypeError, r"int32"),
    ("torch_zero_height", lambda t: t.zeros((2, 3, 0, 8), dtype=t.uint8), None, aug.InputError, r"non-zero"),
    ("torch_label_mismatch", lambda t: t.zeros((4, 3, 8, 8), dtype=t.uint8), lambda t: t.tensor([0, 1, 2]),
     aug.InputError, r"N = 4"),
    ("torch_float_ids", lambda t: t.zeros((4, 3, 8, 8), dtype=t.uint8), lambda t: t.tensor([0.0, 1.0, 2.0, 0.0]),
     aug.InputTypeError, r"class ids must be integers"),
    ("torch_grayscale_colour", lambda t: t.zeros((2, 1, 8, 8), dtype=t.uint8), lambda t: t.tensor([0, 1]),
     aug.InputError, r"1 channels"),
    ("torch_complex", lambda t: t.zeros((2, 3, 8, 8), dtype=t.complex64), None, aug.InputTypeError,
     r"complex64 are not numbers"),
    ("torch_bool", lambda t: t.zeros((2, 3, 8, 8), dtype=t.bool), None, aug.InputTypeError, r"dtype bool"),
    ("torch_uint16", lambda t: t.zeros((2, 3, 8, 8), dtype=t.uint16), None, aug.InputTypeError,
     r"uint16 are not supported; use one of \['uint8', 'float16', 'bfloat16', 'float32', 'float64'\]"),
    ("torch_id_out_of_range", lambda t: t.zeros((2, 3, 8, 8), dtype=t.uint8), lambda t: t.tensor([0, 10]),
     aug.InputError, r"\[0, 10\)"),
]


@pytest.mark.parametrize("name,mk_x,mk_y,exc,match", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_bad_input_torch(name, mk_x, mk_y, exc, match):
    torch = pytest.importorskip("torch")
    if not _available("torch"):
        pytest.skip("torch backend not available")
    run = _torch_run(r2_pipe(10))
    x = mk_x(torch)
    y = mk_y(torch) if mk_y else torch.zeros(x.shape[0] if x.ndim == 4 else 1, dtype=torch.int64)
    xc = x.clone() if isinstance(x, torch.Tensor) else x.copy()
    yc = y.clone()
    with pytest.raises(exc, match=match) as ei:
        run(x, y)
    assert isinstance(ei.value, aug.AugspecError)
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, xc)
    assert torch.equal(y, yc)


def test_numpy_backend_refuses_torch_tensors():
    torch = pytest.importorskip("torch")
    x = torch.zeros((2, 8, 8, 3), dtype=torch.uint8)
    with pytest.raises(aug.InputTypeError, match=r"numpy backend: got a torch.*Tensor.*\.numpy\(\)"):
        flip()(x)
    assert int(x.sum()) == 0


TF_CASES = [
    ("tf_rank_2", lambda tf: tf.zeros((8, 8), dtype=tf.uint8), None, aug.InputError, r"3-D.*4-D"),
    ("tf_nchw_to_nhwc", lambda tf: tf.zeros((2, 3, 32, 32), dtype=tf.uint8), None, aug.InputError,
     r"32 channels.*layout"),
    ("tf_int32", lambda tf: tf.zeros((2, 8, 8, 3), dtype=tf.int32), None, aug.InputTypeError, r"int32"),
    ("tf_label_mismatch", lambda tf: tf.zeros((4, 8, 8, 3), dtype=tf.uint8), lambda tf: tf.constant([0, 1, 2]),
     aug.InputError, r"N = 4"),
    ("tf_float_ids", lambda tf: tf.zeros((4, 8, 8, 3), dtype=tf.uint8),
     lambda tf: tf.constant([0.0, 1.0, 2.0, 0.0]), aug.InputTypeError, r"class ids must be integers"),
    ("tf_grayscale_colour", lambda tf: tf.zeros((2, 8, 8, 1), dtype=tf.uint8), lambda tf: tf.constant([0, 1]),
     aug.InputError, r"1 channels"),
]


@pytest.mark.parametrize("name,mk_x,mk_y,exc,match", TF_CASES, ids=[c[0] for c in TF_CASES])
def test_bad_input_tensorflow(name, mk_x, mk_y, exc, match):
    tf = pytest.importorskip("tensorflow")
    if not _available("tensorflow"):
        pytest.skip("tensorflow backend not available")
    run = _tf_run(r2_pipe(10))
    x = mk_x(tf)
    y = mk_y(tf) if mk_y else tf.zeros((x.shape[0],), dtype=tf.int64)
    xc, yc = x.numpy().copy(), y.numpy().copy()
    with pytest.raises(exc, match=match) as ei:
        run(x, y)
    assert isinstance(ei.value, aug.AugspecError)
    np.testing.assert_array_equal(x.numpy(), xc)
    np.testing.assert_array_equal(y.numpy(), yc)


def r2_pipe(k: int) -> Any:
    from augspec.recipes import r2

    return r2(num_classes=k)


# ------------------------------------------------------------------ Hypothesis


OP_NAMES = sorted(o.name for o in aug.list_ops())
FIELD_NAMES = sorted({f for o in aug.list_ops() for f in o.cls.config_fields()} | {"ops", "num_classes", "seed"})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 5),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2), st.text(max_size=8),
    st.sampled_from(OP_NAMES),
)


def _op_dicts(children):
    return st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(OP_NAMES + ["pipeline"]), st.text(max_size=6), st.integers())},
        optional={name: children for name in FIELD_NAMES[:]},
    )


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES + ["type", "ndarray"]), st.text(max_size=4),
                                  st.integers()), children, max_size=4),
        _op_dicts(children),
        st.fixed_dictionaries({"ndarray": st.fixed_dictionaries(
            {"dtype": st.sampled_from(["float32", "int64", "O", "V4", "<f8", "x"]),
             "shape": st.lists(st.integers(-2, 5), max_size=3),
             "base64": st.sampled_from(["", "AAAA", "AAAAAAAAAAA=", "!!", "AAAAAAAAAAAAAAAAAAAAAA=="])})}),
    ),
    max_leaves=12,
)

def _valid_configs() -> list[dict]:
    from augspec.recipes import r1

    fitted = r1(np.random.default_rng(0).random((4, 4, 4, 3)))
    more = P([aug.RandomApply([aug.Brightness(0.2), aug.Hue(0.1, mode="hsv")], p=0.3), aug.GaussianNoise(),
              aug.Dropout(0.1, noise_shape=(None, 1, 1, None)),
              aug.ZCAWhitening(matrix=np.eye(9, dtype=np.float32)), aug.CutOut(holes=3, fill=(0.1, 0.2, 0.3))],
             num_classes=4, seed=5)
    return [aug.to_dict(p) for p in (r2_pipe(10), fitted, more)]


def _paths(d: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*path, i))
    return out


def _mutate(cfg: dict, path: tuple, new: Any, delete: bool) -> Any:
    import copy

    cfg = copy.deepcopy(cfg)
    if not path:
        return new
    cur = cfg
    for k in path[:-1]:
        cur = cur[k]
    if delete:
        del cur[path[-1]]
    else:
        cur[path[-1]] = new
    return cfg


@st.composite
def mutated_configs(draw):
    """A valid config (R2, a fitted R1, more ops) with one value replaced or deleted."""
    base = draw(st.sampled_from(_valid_configs()))
    path = draw(st.sampled_from(_paths(base)))
    return _mutate(base, path, draw(values), draw(st.booleans()) and bool(path))


configs = st.one_of(
    values,
    st.builds(lambda body, ver: {**body, "version": ver} if isinstance(body, dict) else body,
              _op_dicts(values), st.one_of(st.just(1), scalars)),
    mutated_configs(),
)


@settings(max_examples=300)
@given(configs)
def test_from_dict_raises_only_augspec_errors(cfg):
    try:
        op = aug.from_dict(cfg)
    except aug.AugspecError as e:
        assert isinstance(e, (ValueError, TypeError)) and str(e)
        return
    # what loads must round-trip
    assert aug.from_dict(aug.to_dict(op)).to_dict() == op.to_dict()


PIPELINES = {
    "r2": lambda: r2_pipe(5),
    "noise_dropout": lambda: P([aug.GaussianNoise(std=(0.0, 0.1)), aug.CutOut(holes=2), aug.Dropout(0.2)], seed=1),
    "geometry": lambda: P([aug.Affine(rotate=30, interpolation="nearest", fill=(0.5,)), aug.VerticalFlip(),
                           aug.RandomApply([aug.Brightness(0.3), aug.Contrast(0.3)], p=0.5)], seed=2),
    "cutmix_smooth": lambda: P([aug.OneOf([aug.CutMix(per_sample=False), aug.MixUp(p=0.5)]),
                                aug.LabelSmoothing(0.2)], num_classes=5, seed=3),
}
_RUNS: dict[str, Any] = {}


def _run(name: str) -> Any:
    if name not in _RUNS:
        _RUNS[name] = PIPELINES[name]().compile("numpy")
    return _RUNS[name]


image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.float16, np.int32, np.bool_, np.int8, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6),
    elements=None,
)
label_arrays = st.one_of(
    st.none(),
    hnp.arrays(dtype=st.sampled_from([np.int64, np.int32, np.uint8, np.float32, np.float64, np.bool_]),
               shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
)


@st.composite
def plausible_batches(draw):
    """Mostly well-formed batches (so the pipelines run), with labels that are sometimes wrong."""
    n = draw(st.integers(0, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    c = draw(st.sampled_from([1, 3, 3, 4]))
    shape = draw(st.sampled_from([(n, h, w, c), (h, w, c)]))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.float16]))
    x = draw(hnp.arrays(dtype, shape))
    m = shape[0] if len(shape) == 4 else 1
    k = draw(st.sampled_from([5, 5, 3, 7]))
    y = draw(st.one_of(
        st.none(),
        hnp.arrays(np.int64, (m,), elements=st.integers(-1, 7)),
        hnp.arrays(np.float32, (m, k), elements=st.floats(0, 1, width=32)),
        hnp.arrays(np.int64, (), elements=st.integers(0, 6)),
    ))
    if len(shape) == 3 and y is not None and y.ndim == 1:
        y = y[0]
    return x, y


@settings(max_examples=150)
@given(st.sampled_from(sorted(PIPELINES)), st.one_of(st.tuples(image_arrays, label_arrays), plausible_batches()))
def test_random_arrays_raise_only_augspec_errors(name, xy):
    x, y = xy
    run = _run(name)
    x = _ro(x)
    xs = x.copy()
    ys = None
    if y is not None:
        y = _ro(y)
        ys = y.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN / inf inputs may warn; they must not crash
        try:
            out = run(x, y)
        except aug.AugspecError as e:
            assert isinstance(e, (ValueError, TypeError)) and str(e)
            out = None
    np.testing.assert_array_equal(x, xs)
    if y is not None:
        np.testing.assert_array_equal(y, ys)
    if out is not None:
        xo = out[0] if y is not None else out
        assert xo.shape == x.shape
