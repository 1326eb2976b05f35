"""Synthetic data (#15): the generator registry, the Synthetic op, the built-in generators
(fractal, elastic) and banks. Every backend's agreement is ``check_backend``'s (the
``synthetic_*`` cases); here: the rules, the errors, the reproducibility, the laws."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import augspec as aug
from augspec.core.errors import DuplicateNameError, InputError, RegistryError, SpecError, SpecTypeError
from augspec.core.registry import Registrar, get_registry
from augspec.core.synthetic import key_words, keyed_uniforms, row_argmax

K = 10


def batch(n=16, h=12, w=10, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8), (np.arange(n) % K).astype(np.int64)


def run_np(ops, num_classes=K, seed=0):
    return aug.Pipeline(ops, num_classes=num_classes, seed=seed).compile("numpy")


# ------------------------------------------------------------------ registry


def test_builtin_generators_are_listed():
    names = {g.name: g.registrant for g in aug.list_generators()}
    assert {"fractal", "elastic", "bank"} <= set(names)
    assert names["fractal"] == "augspec.builtin"


def test_a_generator_name_taken_twice_is_refused_naming_both():
    reg = get_registry()
    r = Registrar(reg, "first_plugin")
    r.add_generator("twice_gen", lambda: None)
    r.commit()
    try:
        r2 = Registrar(reg, "second_plugin")
        with pytest.raises(DuplicateNameError, match="second_plugin.*first_plugin"):
            r2.add_generator("twice_gen", lambda: None)
        with pytest.raises(DuplicateNameError):
            aug.register_generator(lambda: None, name="fractal")
    finally:
        reg.generators.pop("twice_gen", None)


def test_register_generator_in_process_and_bad_registrations():
    reg = get_registry()

    @aug.register_generator
    class Flat(aug.Generator):
        name = "flat_test_gen"

        def __call__(self, B, labels, key, shape, num_classes, real=None):
            u = keyed_uniforms(B, key, 1)
            return B.broadcast_to(B.reshape(u, (-1, 1, 1, 1)), (B.shape(labels)[0], *shape)) * 1.0

    try:
        assert reg.generators["flat_test_gen"].registrant.endswith("Flat")
        xo, yo = run_np([aug.Synthetic("flat_test_gen", ratio=1.0)])(*batch())
        assert np.all(xo == xo[:, :1, :1, :])  # one value per image
        assert len(np.unique(xo[:, 0, 0, 0])) > 1  # from each image's own key
    finally:
        reg.generators.pop("flat_test_gen", None)
    r = Registrar(reg, "bad")
    with pytest.raises(RegistryError, match="snake_case"):
        r.add_generator("not a name", lambda: None)
    with pytest.raises(SpecTypeError, match="neither callable"):
        r.add_generator("fine_name", 42)


def test_an_unknown_generator_is_refused_at_compile_naming_the_known_ones():
    with pytest.raises(RegistryError, match="unknown generator 'nope'.*fractal"):
        run_np([aug.Synthetic("nope")])
    with pytest.raises(SpecError, match="generator 'fractal': options .*rejected"):
        run_np([aug.Synthetic("fractal", options={"colour": 3})])


# ------------------------------------------------------------------ the op


@pytest.mark.parametrize("kwargs, err, match", [
    ({"ratio": 1.5}, SpecError, "ratio=1.5 is outside"),
    ({"ratio": float("nan")}, SpecError, "ratio must not be NaN"),
    ({"generator": 3}, SpecTypeError, "generator must be"),
    ({"generator": ""}, SpecTypeError, "generator must be"),
    ({"exact": 1}, SpecTypeError, "exact must be True or False"),
    ({"class_weights": []}, SpecTypeError, "class_weights"),
    ({"class_weights": (1, -1)}, SpecError, "class_weights=-1"),
    ({"class_weights": (0, 0)}, SpecError, "sum to 0"),
    ({"options": 5}, SpecTypeError, "options must be a mapping"),
    ({"options": {1: 2}}, SpecTypeError, "option names must be strings"),
])
def test_bad_specs_are_refused_naming_the_field(kwargs, err, match):
    with pytest.raises(err, match=match):
        aug.Synthetic(**kwargs)


def test_serialises_by_name_with_its_options():
    pipe = aug.Pipeline([aug.Affine(rotate=5), aug.Synthetic("fractal", ratio=0.3, exact=True, class_weights=[1, 2],
                                                             options={"seed": 4, "jitter": 0.02})],
                        num_classes=2, seed=1)
    for again in (aug.from_json(pipe.to_json()), aug.from_yaml(pipe.to_yaml())):
        assert again == pipe
        assert again.ops[1].options == (("jitter", 0.02), ("seed", 4))
    d = aug.to_dict(pipe)
    assert d["ops"][1]["type"] == "synthetic" and d["ops"][1]["generator"] == "fractal"


def test_refused_inside_containers():
    for ops in ([aug.OneOf([aug.Synthetic(), aug.Brightness(0.2)])], [aug.RandomApply(aug.Synthetic(), p=0.5)]):
        with pytest.raises(SpecError, match="cannot be inside OneOf or RandomApply"):
            run_np(ops)


def test_planned_first_so_every_op_augments_synthetic_samples_too():
    x, y = batch()
    after = run_np([aug.HorizontalFlip(p=1.0), aug.Synthetic("fractal", ratio=1.0)])
    alone = run_np([aug.Synthetic("fractal", ratio=1.0)])
    assert [st.kind for st in after.plan.stages] == ["synthetic", "geometric"]
    p = after.sample(len(x), x.shape[1:])
    xa, ya = after.apply(x, y, p)
    xb, yb = alone.apply(x, y, {k.replace("1/", "0/"): v for k, v in p.items()})
    assert np.array_equal(xa, xb[:, :, ::-1])
    assert np.array_equal(ya, yb)


def test_replaces_only_the_gated_samples_and_leaves_the_rest_bit_for_bit():
    x, y = batch(n=64)
    x0 = x.copy()
    run = run_np([aug.Synthetic("fractal", ratio=0.5)])
    p = run.sample(64, x.shape[1:])
    xo, yo = run.apply(x, y, p)
    g = np.asarray(p["0/replace"])
    assert 10 < g.sum() < 54
    assert np.array_equal(xo[~g], x[~g])
    assert np.array_equal(yo[~g], np.eye(K)[y[~g]])
    cls = np.asarray(aug.Synthetic().classes(run.backend, {"class": p["0/class"]}, _ctx(64)))
    assert np.array_equal(yo[g], np.eye(K)[cls[g]])
    assert np.array_equal(x, x0)  # the input is not written


def _ctx(n):
    return aug.Context(n, 12, 10, 1, K)


@pytest.mark.parametrize("n, ratio", [(1, 0.5), (7, 0.25), (16, 0.25), (10, 0.55), (33, 1.0), (5, 0.0)])
def test_exact_replaces_exactly_round_ratio_n(n, ratio):
    x, y = batch(n=n)
    run = run_np([aug.Synthetic("fractal", ratio=ratio, exact=True)])
    for _ in range(3):
        p = run.sample(n, x.shape[1:])
        g = np.asarray(run.plan.leaves[0].op.replace(run.backend, {"order": p["0/order"]}, _ctx(n)))
        assert g.sum() == math.floor(ratio * n + 0.5)
        xo, yo = run.apply(x, y, p)
        assert np.array_equal(xo[~g], x[~g])


def test_the_bernoulli_ratio_and_the_class_weights_follow_their_laws():
    from scipy.stats import binomtest, chisquare

    w = (1.0, 0.0, 2.0, 3.0, 4.0)
    run = run_np([aug.Synthetic("fractal", ratio=0.3, class_weights=w)], num_classes=5)
    p = run.sample(20000, (8, 8, 1))
    g = np.asarray(p["0/replace"])
    assert binomtest(int(g.sum()), g.size, 0.3).pvalue > 1e-4
    cls = np.asarray(run.plan.leaves[0].op.classes(run.backend, {"class": p["0/class"]},
                                                   aug.Context(20000, 8, 8, 1, 5)))
    counts = np.bincount(cls, minlength=5)
    assert counts[1] == 0
    keep = np.array(w) > 0
    exp = np.array(w)[keep] / sum(w) * cls.size
    assert chisquare(counts[keep], exp).pvalue > 1e-4


def test_classes_need_a_count_and_weights_must_match_it():
    x, y = batch()
    with pytest.raises(InputError, match="need num_classes"):
        aug.Pipeline([aug.Synthetic()], seed=0).compile("numpy")(x)
    xo = aug.Pipeline([aug.Synthetic(class_weights=(1, 1, 1))], seed=0).compile("numpy")(x)  # K from the weights
    assert xo.shape == x.shape
    with pytest.raises(InputError, match="class_weights has 3 weights but there are 10"):
        run_np([aug.Synthetic(class_weights=(1, 1, 1))])(x, y)


def test_images_of_different_sizes_need_the_synthetic_size():
    run = run_np([aug.Synthetic(), aug.RandomResizedCrop(8)])
    with pytest.raises(InputError, match=r"Synthetic \(at 0\): the images have different sizes; give the size"):
        run([np.zeros((10, 12, 3), np.uint8), np.zeros((9, 11, 3), np.uint8)], np.array([0, 1]))


def test_is_a_batch_op_and_takes_the_whole_pipeline_into_the_batch_part():
    from augspec.core.plan import is_batch_op, split_pipeline

    ops = (aug.Affine(rotate=5), aug.Synthetic(), aug.MixUp())
    assert is_batch_op(ops[1])
    assert split_pipeline(ops) == ((), ops)


def test_training_false_drops_it():
    x, y = batch()
    run = run_np([aug.Synthetic(ratio=1.0)])
    xo, yo = run(x, y, training=False)
    assert np.array_equal(xo, x) and np.array_equal(yo, y)


# ------------------------------------------------------------------ generators


def _fractal(B, labels, key, shape=(16, 16, 3), **opts):
    from augspec.core.generators.fractal import Fractal

    return np.asarray(B.to_numpy(Fractal(**opts)(B, labels, key, shape, K)))


def _keys(n, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << 24, (n, 2)).astype(np.uint32)


def test_an_image_depends_on_its_key_and_class_only():
    from augspec.backends.numpy import NumpyBackend

    B = NumpyBackend()
    keys, labels = _keys(12), np.arange(12) % K
    whole = _fractal(B, labels, keys)
    for i in (0, 5, 11):
        alone = _fractal(B, labels[i:i + 1], keys[i:i + 1])
        assert np.array_equal(alone[0], whole[i])
    rev = _fractal(B, labels[::-1].copy(), keys[::-1].copy())
    assert np.array_equal(rev[::-1], whole)
    assert not np.array_equal(whole[0], whole[10])  # same class, other key: another image
    assert whole.dtype == np.float32 and whole.min() >= 0 and whole.max() <= 1


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_fractal_images_are_bit_identical_on_every_backend(backend):
    from augspec.backends.numpy import NumpyBackend
    from augspec.core.registry import load_backend

    pytest.importorskip({"tensorflow": "tensorflow"}.get(backend, backend))
    B = load_backend(backend)
    keys, labels = _keys(9, 3), np.arange(9) % K
    want = _fractal(NumpyBackend(), labels, keys, (20, 18, 3))
    got = _fractal(B, B.asarray(labels, "int64"), B.asarray(keys, "uint32"), (20, 18, 3))
    assert np.array_equal(got, want)


def test_fractal_classes_are_distinct_and_stable():
    from augspec.core.generators.fractal import fractal_tables

    t = fractal_tables(0, 20, 4)
    assert np.array_equal(fractal_tables(0, 5, 4)["coef"], t["coef"][:5])  # class c does not depend on K
    assert len({t["coef"][c].tobytes() for c in range(20)}) == 20
    q = t["coef"] * 1024.0
    assert np.array_equal(q[..., :4], np.round(q[..., :4]))  # the coefficient grid
    assert np.all(np.abs(t["coef"][..., :4]) < 1.0)


def test_fractal_options_are_checked():
    from augspec.core.generators.fractal import Fractal

    for bad in ({"max_maps": 1}, {"seed": -1}, {"points": 0}, {"chains": 0}, {"jitter": 0.5}, {"seed": 1.5}):
        with pytest.raises(SpecError, match="fractal"):
            Fractal(**bad)


def test_row_argmax():
    from augspec.backends.numpy import NumpyBackend

    s = np.random.default_rng(0).random((7, 13)).astype(np.float32)
    s[2, 4] = s[2, 9] = 5.0  # a tie: the first wins
    assert np.array_equal(row_argmax(NumpyBackend(), s), np.argmax(s, axis=1))


def test_keyed_draws_are_uniform():
    from scipy.stats import kstest

    from augspec.backends.numpy import NumpyBackend

    B = NumpyBackend()
    u = keyed_uniforms(B, key_words(B, np.random.default_rng(0).random((64, 2)).astype(np.float32)), 500)
    assert kstest(u.ravel(), "uniform").pvalue > 1e-4


# ------------------------------------------------------------------ elastic


def test_elastic_variants_take_the_label_of_a_real_sample_of_their_class():
    x, y = batch(n=40, h=16, w=16)
    run = run_np([aug.Synthetic("elastic", ratio=0.5, options={"alpha": 6.0, "sigma": 2.0})])
    p = run.sample(40, x.shape[1:])
    xo, yo = run.apply(x, y, p)
    g = np.asarray(p["0/replace"])
    cls = np.asarray(run.plan.leaves[0].op.classes(run.backend, {"class": p["0/class"]}, aug.Context(40, 16, 16, 1, K)))
    real = set(y[~g].tolist())
    for i in np.flatnonzero(g):
        want = cls[i] if cls[i] in real else None
        got = int(np.argmax(yo[i]))
        assert yo[i].max() == 1.0
        if want is not None:
            assert got == want
        # the image is a deformation of a real sample of the label's class: closest to one of them
        cands = np.flatnonzero(~g & (y == got))
        d = [np.abs(xo[i].astype(float) - x[j]).mean() for j in np.flatnonzero(~g)]
        assert np.flatnonzero(~g)[int(np.argmin(d))] in cands
    assert np.array_equal(xo[~g], x[~g])


def test_elastic_with_every_sample_replaced_gives_the_fill_and_the_class():
    x, y = batch(n=4)
    xo, yo = run_np([aug.Synthetic("elastic", ratio=1.0, options={"fill": 0.5})])(x, y)
    assert np.all(xo == 128)
    assert np.all(yo.sum(1) == 1.0)


def test_elastic_cannot_run_outside_a_batch():
    with pytest.raises(SpecError, match="variants of a batch's real samples"):
        aug.synthetic.generate("elastic", 4, (8, 8, 1), num_classes=2)


# ------------------------------------------------------------------ errors


class _Bad(aug.Generator):
    name = "bad_test_gen"

    def __init__(self, mode="raise"):
        self.mode = mode

    def __call__(self, B, labels, key, shape, num_classes, real=None):
        n = B.shape(labels)[0]
        ok = B.zeros((n, *shape), "float32")
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "shape":
            return B.zeros((n, shape[0] + 1, shape[1], shape[2]), "float32")
        if self.mode == "dtype":
            return B.cast(ok, "uint8")
        if self.mode == "nan":
            return ok * float("nan")
        if self.mode == "range":
            return ok + 255.0
        if self.mode == "labels":
            return ok, B.zeros((n, num_classes + 1), "float32")
        return ok


@pytest.fixture
def bad_gen():
    reg = get_registry()
    r = Registrar(reg, "test")
    r.add_generator("bad_test_gen", _Bad)
    r.commit()
    yield
    reg.generators.pop("bad_test_gen", None)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("mode, match", [
    ("raise", "boom"), ("shape", "returned images of shape"), ("dtype", "dtype uint8"),
    ("nan", "NaN or inf"), ("range", r"values in \[255, 255\]"), ("labels", "returned labels of shape"),
])
def test_a_faulty_generator_is_stopped_naming_it(bad_gen, backend, mode, match):
    pytest.importorskip(backend)
    x, y = batch()
    pipe = aug.Pipeline([aug.Synthetic("bad_test_gen", ratio=1.0, options={"mode": mode})], num_classes=K, seed=0)
    run = pipe.compile(backend)
    if backend == "torch":
        import torch

        x, y = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
    with pytest.raises((InputError, RuntimeError), match=match) as e:
        run(x, y)
    if mode != "raise":
        assert "bad_test_gen" in str(e.value)


def test_generate_names_a_raising_generator(bad_gen):
    with pytest.raises(InputError, match="generator 'bad_test_gen' raised RuntimeError: boom"):
        aug.synthetic.generate("bad_test_gen", 3, (4, 4, 1), num_classes=2)


# ------------------------------------------------------------------ banks


@pytest.fixture
def small_bank(tmp_path):
    path = tmp_path / "bank"
    aug.synthetic.bank("fractal", 40, path, seed=5, shape=(12, 10, 1), num_classes=4, options={"seed": 2})
    return path


def test_bank_round_trips_its_manifest_and_images(small_bank):
    man = json.loads((small_bank / "manifest.json").read_text())
    assert man["format"] == "augspec-bank" and man["generator"] == "fractal" and man["generator_version"] == "1"
    assert man["options"]["seed"] == 2 and man["seed"] == 5 and man["shape"] == [12, 10, 1]
    assert man["labels"] == [i % 4 for i in range(40)]
    assert [tuple(k) for k in man["keys"]] == [aug.derive_key(5, 0, i) for i in range(40)]
    x, y = aug.synthetic.generate("fractal", 40, (12, 10, 1), num_classes=4, seed=5, options={"seed": 2})
    b = aug.synthetic.Bank(small_bank)
    assert len(b) == 40 and np.array_equal(b.labels, y)
    order = np.argsort(y, kind="stable")
    assert np.array_equal(b.images, np.floor(x[order] * 255 + 0.5).astype(np.uint8))
    head, _ = aug.synthetic.generate("fractal", 10, (12, 10, 1), num_classes=4, seed=5, options={"seed": 2})
    assert np.array_equal(head, x[:10])  # image i depends on (generator, options, seed, i) alone


def test_a_bank_serves_images_of_the_class_asked_for(small_bank):
    b = aug.synthetic.Bank(small_bank)
    pipe = aug.Pipeline([aug.Synthetic("bank", ratio=1.0, options={"path": str(small_bank)})], num_classes=4, seed=0)
    x = np.zeros((32, 12, 10, 1), np.uint8)
    xo, yo = pipe.compile("numpy")(x, np.zeros(32, np.int64))
    for i in range(32):
        c = int(np.argmax(yo[i]))
        assert any(np.array_equal(xo[i], b.images[j]) for j in np.flatnonzero(b.labels[np.argsort(b.labels,
                                                                                                  kind="stable")] == c))
    again = aug.from_json(pipe.to_json()).compile("numpy")(x, np.zeros(32, np.int64))
    assert np.array_equal(again[0], xo)  # reproducible from the config and the seed


def test_a_bank_refuses_a_batch_of_another_shape_or_more_classes(small_bank):
    opts = {"path": str(small_bank)}
    with pytest.raises(InputError, match=r"holds images of \(12, 10, 1\)"):
        run_np([aug.Synthetic("bank", ratio=1.0, options=opts)], num_classes=4)(np.zeros((2, 8, 8, 1), np.uint8),
                                                                                 np.zeros(2, np.int64))
    with pytest.raises(InputError, match="needs images of each"):
        run_np([aug.Synthetic("bank", ratio=1.0, options=opts)], num_classes=6)(np.zeros((2, 12, 10, 1), np.uint8),
                                                                                 np.zeros(2, np.int64))


def test_a_tampered_or_truncated_bank_is_refused_by_name(small_bank):
    shard = small_bank / "images-00000.npy"
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-7])
    with pytest.raises(InputError, match="shard images-00000.npy does not match its SHA-256"):
        aug.synthetic.Bank(small_bank)
    shard.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(InputError, match="images-00000.npy"):
        aug.synthetic.Bank(small_bank)
    shard.unlink()
    with pytest.raises(InputError, match="images-00000.npy is missing"):
        aug.synthetic.Bank(small_bank)
    shard.write_bytes(raw)
    aug.synthetic.Bank(small_bank)  # restored
    man = small_bank / "manifest.json"
    text = man.read_text()
    man.write_text(text[: len(text) // 2])
    with pytest.raises(InputError, match="not valid JSON"):
        aug.synthetic.Bank(small_bank)
    d = json.loads(text)
    for key, value, match in (("format", "other", "not an augspec bank"), ("version", 9, "format version 9"),
                              ("labels", [0] * 39, "40 images but 39 labels"),
                              ("shards", [{"file": "../x.npy"}], "malformed shard"),
                              ("shape", [12, 10], "'shape' is malformed")):
        man.write_text(json.dumps({**d, key: value}))
        with pytest.raises(InputError, match=match):
            aug.synthetic.Bank(small_bank)


def test_bank_refuses_to_overwrite_a_bank(small_bank):
    with pytest.raises(InputError, match="holds a bank already"):
        aug.synthetic.bank("fractal", 4, small_bank, shape=(12, 10, 1), num_classes=4)


# ------------------------------------------------------------------ integrations


def test_torch_collate_runs_synthetic_with_the_whole_pipeline():
    torch = pytest.importorskip("torch")
    from augspec.torch import Collate, batch_ops

    pipe = aug.Pipeline([aug.HorizontalFlip(), aug.Synthetic(ratio=0.5)], num_classes=K, seed=0)
    assert batch_ops(pipe).ops == pipe.ops
    col = Collate(pipe)
    samples = [(torch.zeros(1, 8, 8, dtype=torch.uint8), i % K) for i in range(8)]
    xo, yo = col(samples)
    assert xo.shape == (8, 1, 8, 8) and yo.shape == (8, K)


def test_keras_layer_and_tf_data_run_synthetic():
    tf = pytest.importorskip("tensorflow")
    from augspec.keras import Augment

    pipe = aug.Pipeline([aug.Synthetic(ratio=0.5)], num_classes=K, seed=0)
    x, y = batch(n=8)
    ref = pipe.compile("numpy")
    want = ref(x, y)
    layer = Augment(pipe)
    got = layer((tf.constant(x), tf.constant(y)), training=True)
    assert np.array_equal(np.asarray(got[0]), want[0]) and np.allclose(np.asarray(got[1]), want[1])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(pipe.compile("tensorflow"))
    xs, ys = next(iter(ds))
    assert xs.shape == x.shape and ys.shape == (8, K)


def test_fractal_version_1_images_are_pinned():
    """A bank records the generator's version: the same version must make the same images.
    Changing what ``fractal`` draws needs a new ``Fractal.version`` (and this digest)."""
    import hashlib

    from augspec.backends.numpy import NumpyBackend
    from augspec.core.generators.fractal import Fractal

    keys = (np.arange(24, dtype=np.uint64).reshape(12, 2) * 2654435761 % (1 << 24)).astype(np.uint32)
    img = Fractal()(NumpyBackend(), np.arange(12) % 10, keys, (16, 16, 3), 10)
    assert Fractal.version == "1"
    assert hashlib.sha256(img.tobytes()).hexdigest() == \
        "b0c12c1aaf110613fe31fea315b96ad942b640773364b2dc00ddbd7bddf89387"


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32"])
def test_a_synthetic_sample_enters_in_the_batch_dtype_on_every_path(dtype):
    """numpy (float path: the value on the dtype's grid) and torch eager (the samples written
    into the input in its dtype first, then converted) agree; a uint8 sample is the generated
    image rounded half up, as a bank stores it."""
    torch = pytest.importorskip("torch")
    from augspec.backends.numpy import NumpyBackend
    from augspec.core.generators.fractal import Fractal

    x, y = batch(n=12, h=9, w=11, c=3)
    x = x if dtype == "uint8" else (x / 255.0).astype(dtype)
    pipe = aug.Pipeline([aug.Synthetic("fractal", ratio=0.5), aug.Normalize()], num_classes=K, seed=3)
    ref = pipe.compile("numpy")
    p = ref.sample(12, x.shape[1:])
    want, wy = ref.apply(x, y, p)
    run = pipe.compile("torch")
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    got, gy = run.apply(xt, torch.from_numpy(y), {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()})
    tol = 2e-3 if dtype == "float16" else 2e-5  # a float16 output: one ulp of its rounding
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1).astype(np.float32), want.astype(np.float32),
                               atol=tol, rtol=1e-5)
    np.testing.assert_array_equal(gy.numpy(), wy)
    g = np.asarray(p["0/replace"])
    B = NumpyBackend()
    op = pipe.ops[0]
    cls = np.asarray(op.classes(B, {"class": p["0/class"]}, aug.Context(12, 9, 11, 3, K)))
    from augspec.core.synthetic import key_words

    imgs = Fractal()(B, cls, key_words(B, np.asarray(p["0/key"])), (9, 11, 3), K)
    mean, std = np.array(aug.Normalize().mean, np.float32), np.array(aug.Normalize().std, np.float32)
    entered = want[g] * std + mean  # undo Normalize
    grid = np.floor(imgs[g] * 255 + 0.5) / 255 if dtype == "uint8" else imgs[g].astype(dtype).astype(np.float32)
    np.testing.assert_allclose(entered, grid, atol=1e-5 if dtype != "float16" else 2e-3)


def test_torch_compile_runs_synthetic_like_eager(bad_gen):
    """``jit=True`` traces the op (no host read: every sample generated, then selected) and
    gives what the eager run gives."""
    torch = pytest.importorskip("torch")
    pipe = aug.Pipeline([aug.Synthetic("bad_test_gen", ratio=0.5, options={"mode": "ok"}), aug.HorizontalFlip()],
                        num_classes=K, seed=0)
    x, y = batch(n=8, h=6, w=5, c=3)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    eager = pipe.compile("torch")
    jit = pipe.compile("torch", jit=True)
    a, ya = eager(xt, torch.from_numpy(y))
    b, yb = jit(xt, torch.from_numpy(y))
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert (ya.argmax(1) != torch.from_numpy(y)).any() or (a == 0).all(dim=(1, 2, 3)).any()


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "albumentations"])
def test_a_bank_serves_the_same_images_on_every_backend(small_bank, backend):
    pytest.importorskip({"albumentations": "albumentations"}.get(backend, backend))
    pipe = aug.Pipeline([aug.Synthetic("bank", ratio=0.5, options={"path": str(small_bank)}), aug.HorizontalFlip()],
                        num_classes=4, seed=0)
    x, y = batch(n=6, h=12, w=10, c=1)
    y = y % 4
    ref = pipe.compile("numpy")
    p = ref.sample(6, x.shape[1:])
    want = ref.apply(x, y, p)
    run = pipe.compile(backend, **({"exact_draws": True} if backend == "albumentations" else {}))
    if backend == "torch":
        import torch

        got = run.apply(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y),
                        {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()})
        gx, gy = got[0].numpy().transpose(0, 2, 3, 1), got[1].numpy()
    else:
        got = run.apply(x, y, p)
        gx, gy = np.asarray(got[0]), np.asarray(got[1])
    np.testing.assert_array_equal(gx, want[0])
    np.testing.assert_array_equal(gy, want[1])


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax", "albumentations"])
def test_sized_synthetic_samples_in_batches_of_different_sizes(backend):
    """A folder of JPEGs of every size: with ``size``, a synthetic sample is made at that size
    (top left of its padded image), takes it, and the crop after it treats it as any image;
    a batch of one size whose size differs from ``size`` becomes one of different sizes."""
    pytest.importorskip({"albumentations": "albumentations"}.get(backend, backend))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((20, 30), (25, 18), (16, 16), (30, 22))]
    y = np.arange(4)
    pipe = aug.Pipeline([aug.Synthetic("fractal", ratio=0.6, size=(16, 16)), aug.RandomResizedCrop(12),
                         aug.HorizontalFlip()], num_classes=4, seed=5)
    ref = pipe.compile("numpy")
    run = pipe.compile(backend, **({"exact_draws": True} if backend == "albumentations" else {}))
    for inputs in (imgs, np.stack([im[:16, :16] for im in imgs])):
        p = ref.sample(4, (30, 30, 3))
        want = ref.apply(inputs, y, p)
        if backend == "torch":
            import torch

            xt = [torch.from_numpy(im.transpose(2, 0, 1).copy()) for im in inputs] if isinstance(inputs, list) else \
                torch.from_numpy(inputs.transpose(0, 3, 1, 2).copy())
            got = run.apply(xt, torch.from_numpy(y), {k: torch.from_numpy(np.asarray(v)) for k, v in p.items()})
            gx, gy = got[0].numpy().transpose(0, 2, 3, 1), got[1].numpy()
        else:
            got = run.apply(inputs, y, p)
            gx, gy = np.asarray(got[0]), np.asarray(got[1])
        assert gx.shape == (4, 12, 12, 3)
        assert np.abs(gx.astype(int) - want[0]).max() <= 1
        np.testing.assert_array_equal(gy, want[1])
    g = np.asarray(p["0/replace"])
    assert g.any() and not g.all()
    for i in range(4):  # each image alone (its own size) gives the same image: the sample's size is the op's
        xi, _ = ref.apply(inputs[i:i + 1], y[i:i + 1], {k: np.asarray(v)[i:i + 1] for k, v in p.items()})
        np.testing.assert_array_equal(xi, want[0][i:i + 1])


def test_synthetic_size_rules():
    x, y = batch(n=4, h=12, w=10)
    with pytest.raises(InputError, match=r"Synthetic makes samples of size \(8, 8\).*must follow it"):
        run_np([aug.Synthetic(size=(8, 8)), aug.HorizontalFlip()])(x, y)
    with pytest.raises(InputError, match="give the size of the synthetic samples"):
        run_np([aug.Synthetic(), aug.RandomResizedCrop(6)])([x[0], x[1, :10]], y[:2])
    with pytest.raises(InputError, match=r"does not fit in the padded batch"):
        run_np([aug.Synthetic(ratio=1.0, size=(20, 8)), aug.RandomResizedCrop(6)])([x[0], x[1, :10]], y[:2])
    for bad in ((8,), (0, 4), "8x8"):
        with pytest.raises((SpecError, SpecTypeError)):
            aug.Synthetic(size=bad)
    assert run_np([aug.Synthetic(size=(12, 10)), aug.HorizontalFlip()])(x, y)[0].shape == x.shape  # the batch's size
