"""Keras 3 integration (TensorFlow backend): the ``Augment`` and ``Dropout`` layers.

``Augment(pipeline)`` runs a pipeline compiled for TensorFlow inside a model:
with ``training=True`` every op applies (params drawn from the pipeline's seed
and the layer's step counter); otherwise only the deterministic ops (Normalize,
Rescale, Standardize, ZCAWhitening) do, so a model trained with it predicts on
un-augmented, but identically normalised, images. A pipeline that changes labels
(MixUp, CutMix, LabelSmoothing) takes and returns ``(images, labels)``: use it
in ``tf.data`` (``ds.map(lambda x, y: layer((x, y), training=True))``), where
labels exist. ``get_config`` stores the pipeline's own ``to_dict()``.

``Dropout(rate, noise_shape=None, seed=None)`` (or ``Dropout.from_spec(spec)``
for an ``augspec.Dropout``) is inverted dropout, ``x * keep / (1 - rate)`` in
training and the identity otherwise, with Keras' ``noise_shape`` (``None`` for
"this axis' size", 1 to share the mask along an axis) and augspec's
counter-based generator, so its mask equals the pipeline op's for the same key.

``Augment`` needs static image sizes (height, width, channels), the batch size
may be unknown; or, when the pipeline starts with ops that fix the size
(RandomResizedCrop, Resize + CenterCrop), images of different sizes: a
``tf.RaggedTensor`` (N, None, None, C) from ``dataset.ragged_batch(n)`` of decoded
files, or a list of images; the output then has the fixed size. ``Dropout`` takes
any shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from .backends.tensorflow import counter_words_tf, derive_key_tf
from .core.errors import SpecError, SpecTypeError
from .core.ops.feature import Dropout as DropoutSpec
from .core.pipeline import Pipeline
from .core.random import bits_to_uniform, random_bits

__all__ = ["Augment", "Dropout"]


def _fresh_seed() -> int:
    import os

    return int.from_bytes(os.urandom(8), "little") >> 1


@keras.saving.register_keras_serializable(package="augspec")
class Augment(keras.layers.Layer):
    """An augspec pipeline as a Keras layer (active when ``training=True``).

    ``pipeline`` is a :class:`augspec.Pipeline` or its ``to_dict()``; ``layout``,
    ``jit``, ``kernels`` and ``max_image_side`` (the largest image side of a ragged
    batch traced in a graph, which sets the reach of the resize filter) are the
    TensorFlow backend's options.
    """

    def __init__(self, pipeline: Pipeline | dict, layout: str = "NHWC", jit: bool = False, kernels: str = "xla",
                 max_image_side: int = 1024, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(pipeline, dict):
            pipeline = Pipeline.from_dict(pipeline)
        if not isinstance(pipeline, Pipeline):
            raise SpecTypeError(f"Augment: pipeline must be an augspec.Pipeline or its to_dict(), got {pipeline!r}")
        self._pipeline = pipeline
        self.layout, self.jit, self.kernels, self.max_image_side = layout, jit, kernels, max_image_side
        self._run = pipeline.compile("tensorflow", layout=layout, jit=jit, kernels=kernels,
                                     max_image_side=max_image_side)
        self.supports_jit = True  # pure TF ops; the warp is gather based under XLA

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def run(self) -> Any:
        """The compiled run (its ``set_epoch`` / ``set_state`` move the key)."""
        return self._run

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: Any, training: Any = None) -> Any:
        if isinstance(inputs, Mapping):  # images and their targets (masks, boxes, keypoints): a dict back
            return self._run(dict(inputs), training=bool(training))
        if isinstance(inputs, (tuple, list)):
            if len(inputs) != 2:
                raise SpecError(f"Augment: inputs must be images or (images, labels), got {len(inputs)} tensors")
            return tuple(self._run(inputs[0], inputs[1], training=bool(training)))
        if self._run.plan.changes_labels and training:
            raise SpecError("Augment: this pipeline changes labels (MixUp, CutMix, LabelSmoothing, Synthetic): "
                            "call the layer on (images, labels), e.g. in tf.data")
        return self._run(inputs, training=bool(training))

    def _out_dtype(self, dtype: Any) -> str:
        name = keras.backend.standardize_dtype(dtype)
        return name if self._run.plan.bounded or name != "uint8" else "float32"

    def _out_shape(self, shape: Any) -> tuple:
        """The images' output shape: the size the pipeline's crops and resizes set."""
        shape = tuple(shape)
        if len(shape) != 4 or self.layout != "NHWC":
            if len(shape) == 4:  # NCHW
                h, w = self._run.output_size(shape[2], shape[3])
                return (shape[0], shape[1], h, w)
            return shape
        h, w = self._run.output_size(shape[1], shape[2])
        return (shape[0], h, w, shape[3])

    def compute_output_spec(self, inputs: Any, training: Any = None) -> Any:
        if isinstance(inputs, Mapping):
            return self._dict_spec(inputs)
        if isinstance(inputs, (tuple, list)):
            x, y = inputs
            k = self._pipeline.num_classes if len(y.shape) == 1 else y.shape[-1]
            ys = (keras.KerasTensor((y.shape[0], k), dtype="float32") if self._run.plan.changes_labels
                  else keras.KerasTensor(y.shape, dtype=y.dtype))
            return keras.KerasTensor(self._out_shape(x.shape), dtype=self._out_dtype(x.dtype)), ys
        return keras.KerasTensor(self._out_shape(inputs.shape), dtype=self._out_dtype(inputs.dtype))

    def _dict_spec(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The output of a dict call: images and masks at the output size, padded boxes with
        twice the slots per mix stage, ``box_valid`` and ``keypoint_visible`` added."""
        from .core.targets import DICT_KEYS, box_slots

        names = {DICT_KEYS.get(k): k for k in inputs}
        x = inputs[names["images"]]
        shape = self._out_shape(x.shape)
        oh, ow = (shape[1], shape[2]) if self.layout == "NHWC" else (shape[2], shape[3])
        grow = box_slots(self._run.plan)
        out: dict[str, Any] = {}
        for k, v in inputs.items():
            name = DICT_KEYS.get(k)
            if name == "images":
                out[k] = keras.KerasTensor(shape, dtype=self._out_dtype(v.dtype))
            elif name == "labels":
                lab = self.compute_output_spec((x, v))[1]
                out[k] = lab
            elif name == "masks":
                out[k] = keras.KerasTensor((v.shape[0], oh, ow, *v.shape[3:]), dtype=v.dtype)
            elif name in ("boxes", "box_labels", "box_valid"):
                m = None if v.shape[1] is None else v.shape[1] * grow
                out[k] = keras.KerasTensor((v.shape[0], m, *v.shape[2:]), dtype=v.dtype)
            else:
                out[k] = keras.KerasTensor(v.shape, dtype=v.dtype)
        if "boxes" in names:
            b = out[names["boxes"]]
            out.setdefault("box_valid", keras.KerasTensor(b.shape[:2], dtype="bool"))
            if grow > 1:
                out["box_weights"] = keras.KerasTensor(b.shape[:2], dtype="float32")
        if "keypoints" in names:
            out.setdefault("keypoint_visible", keras.KerasTensor(inputs[names["keypoints"]].shape[:2], dtype="bool"))
        return out

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._out_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(pipeline=self._pipeline.to_dict(), layout=self.layout, jit=self.jit, kernels=self.kernels,
                      max_image_side=self.max_image_side)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Augment:
        return cls(**config)


@keras.saving.register_keras_serializable(package="augspec")
class Dropout(keras.layers.Layer):
    """Inverted dropout honouring Keras' ``noise_shape``, drawn with augspec's generator.

    The keep mask of call ``step`` is ``u < 1 - rate`` with ``u`` the uniforms of
    draw slot 0 under ``derive_key(seed, 0, step)``, laid out as the mask
    ``(rows, *noise_shape[1:])``: the same bits as ``Pipeline([augspec.Dropout(rate,
    noise_shape)], seed=seed)`` draws for an NHWC batch.
    """

    def __init__(self, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        spec = DropoutSpec(rate=rate, noise_shape=noise_shape)  # validates
        self.rate = spec.rate
        self.noise_shape = spec.noise_shape
        self.seed = int(seed) if seed is not None else _fresh_seed()
        self.supports_jit = True
        with tf.init_scope():
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="augspec_dropout_step")

    @classmethod
    def from_spec(cls, spec: DropoutSpec, seed: int | None = None, **kwargs: Any) -> Dropout:
        """The layer of an ``augspec.Dropout`` spec."""
        if not isinstance(spec, DropoutSpec):
            raise SpecTypeError(f"Dropout.from_spec: expected an augspec.Dropout, got {spec!r}")
        return cls(rate=spec.rate, noise_shape=spec.noise_shape, seed=seed, **kwargs)

    def mask(self, x: Any, step: Any) -> Any:
        """The float32 keep mask (broadcastable against ``x``) of call ``step``."""
        from .backends.tensorflow import TensorflowBackend

        B = TensorflowBackend()
        rank = x.shape.rank
        ns = self.noise_shape or (None,) * rank
        if len(ns) != rank:
            raise SpecError(f"Dropout: noise_shape {ns} has {len(ns)} entries for inputs of rank {rank}")
        dyn = tf.shape(x, out_type=tf.int64)
        dims = [dyn[i] if v is None else tf.constant(v, tf.int64) for i, v in enumerate(ns)]
        shape = tf.stack(dims)
        key = derive_key_tf(self.seed, 0, step, 0, 0)  # two uint32 words
        counters = counter_words_tf(0, tf.reduce_prod(shape))  # (index, slot 0) uint32 words
        u = bits_to_uniform(B, random_bits(B, counters, key))
        return tf.cast(tf.reshape(u, shape) < (1.0 - self.rate), tf.float32)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: Any, training: Any = None) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        step = tf.convert_to_tensor(self._step.assign_add(1, read_value=True)) - 1
        keep = self.mask(inputs, step)
        scale = 1.0 / (1.0 - self.rate)
        return inputs * tf.cast(keep * scale, inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return config
