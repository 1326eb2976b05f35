"""to_dict / from_dict, JSON and YAML: every spec round-trips, fitted statistics
included; bad configs give errors that point at the problem; nothing executes."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import augspec as aug
from augspec.plugins.builtin import BUILTIN_OPS

SPECS = [
    aug.Affine(rotate=(-10, 25), translate=0.1, scale=(0.9, 1.2), shear=5, translate_y=(0, 0.2), scale_y=0.1,
               shear_y=(-3, 4), interpolation="nearest", fill=(0.1, 0.2, 0.3), p=0.7),
    aug.HorizontalFlip(p=0.25), aug.VerticalFlip(p=1.0),
    aug.Brightness(0.3, p=0.9), aug.Contrast((0.5, 1.5)), aug.Saturation(0.4), aug.Hue(0.1, mode="hsv", p=0.5),
    aug.ColorJitter(0.4, (0.6, 1.4), 0.4, (-0.1, 0.05), hue_mode="hsv", p=0.8),
    aug.GaussianNoise((0.01, 0.1), mean=0.02, per_channel=False, p=0.3), aug.Rescale(2.0, -1.0),
    aug.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), aug.Normalize(0.5, 0.25),
    aug.Standardize(samplewise_center=True, samplewise_std=True, epsilon=1e-5),
    aug.Standardize(featurewise_center=True, featurewise_std=True, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0)),
    aug.ZCAWhitening(epsilon=0.1),
    aug.CutOut(holes=3, size=(0.05, 0.3), fill=(0.5, 0.5, 0.5), p=0.6), aug.CutOut(size=0.25, fill=0.0),
    aug.MixUp(0.8, per_sample=False, p=0.5), aug.CutMix(1.0, correct_lambda=False, per_sample=True),
    aug.LabelSmoothing(0.1, p=0.9), aug.Dropout(0.3, noise_shape=(None, 1, 1, None), p=0.5), aug.Dropout(0.1),
    aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)], weights=(0.3, 0.7), p=0.9),
    aug.RandomApply([aug.HorizontalFlip(p=1), aug.OneOf([aug.Brightness(0.2), aug.Hue(0.1)])], p=0.4),
    aug.RandomApply(aug.VerticalFlip(), p=0.2),
]


def r2(seed=0):
    return aug.Pipeline([
        aug.Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5), aug.HorizontalFlip(p=0.5),
        aug.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), aug.CutOut(holes=1, size=(0.1, 0.5)),
        aug.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        aug.OneOf([aug.MixUp(alpha=0.8), aug.CutMix(alpha=1.0)]), aug.LabelSmoothing(0.1),
    ], num_classes=1000, seed=seed)


ISSUE_OPS = {aug.Affine, aug.HorizontalFlip, aug.VerticalFlip, aug.Brightness, aug.Contrast, aug.Saturation, aug.Hue,
             aug.ColorJitter, aug.GaussianNoise, aug.Rescale, aug.Normalize, aug.Standardize, aug.ZCAWhitening,
             aug.CutOut, aug.MixUp, aug.CutMix, aug.LabelSmoothing, aug.Dropout, aug.OneOf, aug.RandomApply}


def test_every_builtin_op_is_covered():
    assert {type(s) for s in SPECS} == ISSUE_OPS
    assert ISSUE_OPS <= set(BUILTIN_OPS)


@pytest.mark.parametrize("cls", sorted(set(BUILTIN_OPS) - ISSUE_OPS, key=lambda c: c.name), ids=lambda c: c.name)
def test_other_builtin_ops_round_trip_with_defaults(cls):
    try:
        op = cls()
    except (TypeError, ValueError):
        pytest.skip(f"{cls.__name__} has no default instance")
    assert aug.from_dict(aug.to_dict(op)) == op
    assert aug.from_yaml(aug.to_yaml(op)) == op


@pytest.mark.parametrize("op", SPECS, ids=lambda o: type(o).__name__)
def test_every_spec_round_trips(op):
    d = aug.to_dict(op)
    assert d["version"] == 1 and d["type"] == op.name
    assert json.loads(json.dumps(d)) == d  # plain JSON data
    back = aug.from_dict(d)
    assert type(back) is type(op) and back == op
    assert aug.to_dict(back) == d
    assert aug.from_json(aug.to_json(op)) == op
    assert aug.from_yaml(aug.to_yaml(op)) == op
    assert op.to_dict() == d


def test_pipeline_round_trips_and_runs_the_same():
    pipe = aug.Pipeline(SPECS[:9] + SPECS[15:], num_classes=7, seed=123)
    for text, load in ((pipe.to_json(), aug.Pipeline.from_json), (pipe.to_yaml(), aug.Pipeline.from_yaml),
                       (aug.to_json(pipe, indent=2), aug.from_json)):
        back = load(text)
        assert isinstance(back, aug.Pipeline) and back == pipe
        assert back.num_classes == 7 and back.seed == 123 and back.ops == pipe.ops
    d = pipe.to_dict()
    assert d["type"] == "pipeline" and [o["type"] for o in d["ops"]][:3] == ["affine", "horizontal_flip",
                                                                             "vertical_flip"]
    assert "version" not in d["ops"][0]  # only the top level carries the version
    x = np.random.default_rng(0).integers(0, 256, (6, 12, 10, 3), dtype=np.uint8)
    y = np.arange(6)
    a = pipe.compile("numpy")(x, y)
    b = aug.Pipeline.from_yaml(pipe.to_yaml()).compile("numpy")(x, y)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # the R2 recipe, and a pipeline without seed or classes
    assert aug.from_yaml(r2().to_yaml()) == r2()
    bare = aug.Pipeline([aug.HorizontalFlip()])
    assert aug.from_json(bare.to_json()) == bare and aug.from_json(bare.to_json()).seed is None
    assert aug.Pipeline.from_dict(aug.Pipeline([]).to_dict()) == aug.Pipeline([])
    assert r2(0) != r2(1)


@pytest.mark.parametrize("hw", [(2, 1), (6, 5)])  # a small ZCA matrix is a list, a large one base64
def test_fitted_standardize_and_zca_round_trip(hw):
    h, w = hw
    x = np.random.default_rng(1).random((50, h, w, 3)).astype(np.float32)
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True, featurewise_std=True),
                         aug.ZCAWhitening(epsilon=1e-3)], seed=0).fit(x)
    d = pipe.to_dict()
    st, zca = d["ops"]
    assert st["mean"] == pytest.approx(list(x.astype(np.float64).mean(axis=(0, 1, 2))))
    m = zca["matrix"]
    assert isinstance(m, list) if h * w * 3 <= 8 else (set(m) == {"ndarray"} and m["ndarray"]["dtype"] == "float32")
    for back in (aug.from_dict(d), aug.from_json(pipe.to_json()), aug.from_yaml(pipe.to_yaml())):
        assert back == pipe
        assert back.ops[0].mean == pipe.ops[0].mean and back.ops[0].std == pipe.ops[0].std
        assert back.ops[1].matrix.dtype == np.float32
        np.testing.assert_array_equal(back.ops[1].matrix, pipe.ops[1].matrix)
        np.testing.assert_array_equal(back.compile("numpy")(x), pipe.compile("numpy")(x))
    # a different matrix is a different pipeline
    other = aug.Pipeline.from_dict(d)
    other.ops = (other.ops[0], aug.ZCAWhitening(1e-3, other.ops[1].matrix * 2))
    assert other != pipe


def test_unknown_op_names_it_and_lists_the_known_ones():
    with pytest.raises(aug.ConfigError) as e:
        aug.from_dict({"version": 1, "type": "pipeline", "ops": [{"type": "affine"}, {"type": "random_rotate"}]})
    msg = str(e.value)
    assert "'random_rotate'" in msg and "config.ops[1]" in msg
    for name in ("affine", "cutmix", "mixup", "label_smoothing", "zca_whitening"):
        assert name in msg
    with pytest.raises(aug.ConfigError, match="unknown op 'os.system'"):
        aug.from_dict({"version": 1, "type": "os.system"})


def test_unknown_field_names_it_and_lists_the_fields():
    with pytest.raises(aug.ConfigError) as e:
        aug.from_dict({"version": 1, "type": "affine", "rotation": 10})
    msg = str(e.value)
    assert "'rotation'" in msg and "rotate" in msg and "translate" in msg
    with pytest.raises(aug.ConfigError, match="'name'"):  # a class attribute is not a field
        aug.from_dict({"version": 1, "type": "affine", "name": "x"})
    with pytest.raises(aug.ConfigError, match="'extra'"):
        aug.from_dict({"version": 1, "type": "pipeline", "ops": [], "extra": 1})


def test_version_is_required_and_checked():
    with pytest.raises(aug.ConfigError, match="missing 'version'"):
        aug.from_dict({"type": "affine"})
    for v in (2, "1", True, None):
        with pytest.raises(aug.ConfigError, match="version"):
            aug.from_dict({"version": v, "type": "affine"})
    with pytest.raises(aug.ConfigError, match="version"):
        aug.from_json('{"type": "pipeline", "ops": []}')


def test_bad_values_point_at_the_field():
    with pytest.raises(aug.ConfigError, match=r"config\.ops\[0\].*Affine.*rotate") as e:
        aug.from_dict({"version": 1, "type": "pipeline", "ops": [{"type": "affine", "rotate": 1000}]})
    assert isinstance(e.value, ValueError)
    with pytest.raises(aug.ConfigTypeError, match="p must be a number"):
        aug.from_dict({"version": 1, "type": "horizontal_flip", "p": "often"})
    with pytest.raises((aug.ConfigError, aug.ConfigTypeError)):
        aug.from_dict({"version": 1, "type": "pipeline", "ops": {"type": "affine"}})
    with pytest.raises(aug.ConfigTypeError):
        aug.from_dict([{"version": 1, "type": "affine"}])
    with pytest.raises(aug.ConfigError, match="JSON"):
        aug.from_json("{not json")
    with pytest.raises(aug.SpecTypeError, match="not a pipeline"):
        aug.Pipeline.from_dict(aug.to_dict(aug.HorizontalFlip()))


def test_yaml_python_tags_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = [
        f"!!python/object/apply:os.system ['touch {marker}']",
        f"version: 1\ntype: affine\nrotate: !!python/object/apply:os.system ['touch {marker}']\n",
        "version: 1\ntype: !!python/name:os.system\n",
        "!!python/object:augspec.Affine {rotate: 3}\n",
    ]
    for text in evil:
        with pytest.raises(aug.ConfigError):
            aug.from_yaml(text)
    assert not marker.exists()
    # plain YAML (as a person writes it) is fine
    text = "version: 1\ntype: pipeline\nseed: 3\nops:\n  - {type: affine, rotate: 10}\n  - type: horizontal_flip\n"
    assert aug.from_yaml(text) == aug.Pipeline([aug.Affine(rotate=10), aug.HorizontalFlip()], seed=3)


def test_no_pickle(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "dump", "dumps", "Unpickler", "Pickler"):
        monkeypatch.setattr(pickle, name, refuse)
    x = np.random.default_rng(2).random((20, 5, 5, 3)).astype(np.float32)
    pipe = aug.Pipeline([aug.Standardize(featurewise_center=True), aug.ZCAWhitening(0.01)]).fit(x)
    text = pipe.to_json()
    assert aug.from_json(text) == pipe and aug.from_yaml(pipe.to_yaml()) == pipe
    # the array payload is raw numbers: an object dtype is refused
    d = json.loads(text)
    d["ops"][1]["matrix"]["ndarray"]["dtype"] = "object"
    with pytest.raises(aug.ConfigError, match="ndarray"):
        aug.from_dict(d)
