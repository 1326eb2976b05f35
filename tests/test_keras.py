"""The Keras integration: the Augment layer (training only, config round trip,
model.fit on tf.data), the Dropout layer (noise_shape, agreement with the
pipeline op) and LabelSmoothing beside Keras' own label smoothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import augspec as aug  # noqa: E402
from augspec import recipes  # noqa: E402
from augspec.core.errors import SpecError  # noqa: E402
from augspec.keras import Augment, Dropout  # noqa: E402

K = 4


def _images(n: int = 8, h: int = 10, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _pipe(seed: int = 0) -> aug.Pipeline:
    return aug.Pipeline([aug.Affine(rotate=15, translate=0.1), aug.HorizontalFlip(), aug.ColorJitter(0.3, 0.3, 0.3),
                         aug.CutOut(), aug.Normalize()], num_classes=K, seed=seed)


def test_augment_is_active_only_in_training() -> None:
    x = _images()
    layer = Augment(_pipe())
    nr = _pipe().compile("numpy")
    np.testing.assert_allclose(layer(x, training=False).numpy(), nr(x, training=False), atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), nr(x, training=False), atol=1e-5)  # default: inference
    np.testing.assert_allclose(  # normalise only
        layer(x, training=False).numpy(), (x / 255.0 - np.array(recipes.IMAGENET_MEAN)) / np.array(
            recipes.IMAGENET_STD), atol=1e-5)
    a = layer(x, training=True).numpy()
    ref = nr(x)  # same seed, same step (0)
    np.testing.assert_allclose(a[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=5e-4)
    assert a.dtype == np.float32 and a.shape == x.shape
    b = layer(x, training=True).numpy()
    assert not np.allclose(a, b)  # the step advances


def test_augment_config_round_trip() -> None:
    layer = Augment(_pipe(seed=3), kernels="graph", name="aug")
    cfg = layer.get_config()
    assert cfg["pipeline"] == _pipe(seed=3).to_dict()
    clone = Augment.from_config(cfg)
    assert clone.pipeline == layer.pipeline and clone.kernels == "graph"
    x = _images()
    np.testing.assert_array_equal(clone(x, training=True).numpy(), layer(x, training=True).numpy())
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, Augment) and again.pipeline == layer.pipeline


def test_label_changing_pipeline_needs_labels() -> None:
    pipe = aug.Pipeline([aug.MixUp(0.5), aug.LabelSmoothing(0.1)], num_classes=K, seed=1)
    layer = Augment(pipe)
    x, y = _images(), np.arange(8) % K
    with pytest.raises(SpecError, match="labels"):
        layer(x, training=True)
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True)
          .map(lambda a, b: layer((a, b), training=True)))
    for _, by in ds:
        assert by.shape == (4, K)
        np.testing.assert_allclose(by.numpy().sum(axis=1), 1.0, atol=1e-6)


def test_model_trains_an_epoch_on_tf_data() -> None:
    x = _images(30, 8, 8)
    y = np.arange(30) % K
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    h = Augment(_pipe())(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = Dropout(0.2, seed=0)(h)
    outputs = keras.layers.Dense(K, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    # no drop_remainder: the batch size is unknown when traced, and the last batch is partial
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(30, seed=0).batch(8)
    aug_layer = model.layers[1]
    before = aug_layer.run.step
    hist = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert aug_layer.run.step == before + 4  # active in every training step
    pred = model.predict(x, batch_size=8, verbose=0)  # inference: deterministic ops only
    assert pred.shape == (30, K)
    assert aug_layer.run.step == before + 4


def test_model_trains_with_jit_compile() -> None:
    """Under model.compile(jit_compile=True) the layers run inside XLA (gather warp)."""
    x = _images(16, 8, 8)
    y = np.arange(16) % K
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    h = Augment(_pipe(seed=2))(inputs)
    h = Dropout(0.1, noise_shape=(None, 1, 1, None), seed=3)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(K, activation="softmax")(h))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile
    hist = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert model.layers[1].run.step == 2


def test_dropout_layer_honours_noise_shape_and_matches_the_op() -> None:
    x = np.random.default_rng(0).random((4, 6, 5, 3)).astype(np.float32) + 0.5
    spec = aug.Dropout(0.4, noise_shape=(None, 1, 1, None))
    layer = Dropout.from_spec(spec, seed=9)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    out = layer(x, training=True).numpy()
    keep = out != 0
    assert (keep == keep[:, :1, :1, :]).all()  # one decision per sample and channel
    ref = aug.Pipeline([spec], seed=9).compile("numpy")(x)  # same key: (seed 9, step 0)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    np.testing.assert_allclose(out[keep], x[keep] / 0.6, rtol=1e-6)
    out2 = layer(x, training=True).numpy()
    assert not np.array_equal(out, out2)
    # dense activations, a dynamic batch, and a shared mask over the batch
    feats = tf.ones((64, 32))
    d = Dropout(0.5, noise_shape=(1, None), seed=1)
    fn = tf.function(lambda a: d(a, training=True), input_signature=[tf.TensorSpec([None, 32], tf.float32)])
    m = fn(feats).numpy()
    assert (m == m[:1]).all() and 0 < (m[0] != 0).sum() < 32
    assert Dropout.from_config(d.get_config()).noise_shape == (1, None)


def test_label_smoothing_equals_keras_categorical_crossentropy() -> None:
    y = np.array([0, 3, 1, 2, 2, 0])
    logits = np.random.default_rng(0).normal(size=(6, K)).astype(np.float32)
    probs = tf.nn.softmax(logits)
    run = aug.Pipeline([aug.LabelSmoothing(0.1)], num_classes=K, seed=0).compile("tensorflow")
    _, smooth = run(np.zeros((6, 2, 2, 3), np.float32), y)
    ours = keras.losses.CategoricalCrossentropy()(smooth, probs)
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(tf.one_hot(y, K), probs)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-6)
