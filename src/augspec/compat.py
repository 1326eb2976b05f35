"""Migration from Keras' legacy ``ImageDataGenerator``.

``from_image_data_generator(**kwargs)`` takes ImageDataGenerator's keyword
arguments and returns an augspec ``Pipeline`` with the same meaning; its
``fit(x_train)`` learns the featurewise mean, std and ZCA matrix as Keras'
``ImageDataGenerator.fit`` does, and the compiled pipeline runs batched on
NumPy, PyTorch or TensorFlow (on a GPU too) instead of image by image.

Conventions (see docs/migration.md for the details and the measured agreement):

- Feed uint8 images (or floats in [0, 1] standing for uint8 / 255). Keras works on
  the raw values (0..255) times ``rescale``; the pipeline ends in that same value
  domain: a ``Rescale(255 * rescale)`` (``rescale`` None or 0 counts as 1) runs
  before the standardisation, so fitted statistics, standardised outputs and ZCA
  are Keras' own numbers. With ``rescale=1/255`` that step is the identity.
- Geometry is Keras' exact matrix (``KerasAffine``: rotation, shifts, shear with
  its sin/cos matrix, independent x/y zoom as an inverse scale, composed and
  centred as ``apply_affine_transform`` does), resampled bilinearly ONCE.
  ``fill_mode`` "nearest" (Keras' default), "reflect" and "constant" are
  augspec's own (``Affine.fill_mode``, SciPy's meanings); "wrap" raises (SciPy's
  "wrap" overlaps the first and last pixels, which augspec does not copy).
  ``cval`` is in raw units (divided by 255).
- ``brightness_range`` multiplies (clamped to the value range, as Keras' PIL
  round trip does); ``channel_shift_range`` adds one offset, in raw units, to every
  channel (``ChannelShift``; clamped to [0, 255] where Keras clips to the
  image's own min and max).
- ``preprocessing_function`` raises: a pipeline is a serialisable spec that runs
  on every backend, not a Python callback; apply the function to the data first,
  or write it as an op (``@augspec.register``).
- ``data_format="channels_first"`` is accepted: compile with ``layout="NCHW"``
  and fit with ``pipe.fit(x, layout="NCHW")``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

from .core.errors import SpecError, SpecTypeError
from .core.ops.geometric import HorizontalFlip, VerticalFlip
from .core.ops.keras import ChannelShift, KerasAffine, KerasZCAWhitening
from .core.ops.pixel import Rescale, Standardize
from .core.pipeline import Pipeline
from .core.spec import Op, check_choice

__all__ = ["from_image_data_generator", "KerasAffine", "ChannelShift", "KerasZCAWhitening", "IMAGE_DATA_GENERATOR_ARGS"]

#: the keyword arguments of ``ImageDataGenerator`` this module accepts
IMAGE_DATA_GENERATOR_ARGS = (
    "featurewise_center", "samplewise_center", "featurewise_std_normalization", "samplewise_std_normalization",
    "zca_whitening", "zca_epsilon", "rotation_range", "width_shift_range", "height_shift_range",
    "brightness_range", "shear_range", "zoom_range", "channel_shift_range", "fill_mode", "cval",
    "horizontal_flip", "vertical_flip", "rescale", "preprocessing_function", "data_format",
    "validation_split", "interpolation_order", "dtype",
)


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, (bool, int)) or isinstance(v, float):
        raise SpecTypeError(f"from_image_data_generator: {name} must be True or False, got {v!r}")
    return bool(v)


def _shift(name: str, v: Any) -> tuple[tuple[float, float], bool]:
    """Keras' shift range -> ((low, high), in_pixels)."""
    if isinstance(v, bool) or isinstance(v, (numbers.Integral, list, tuple)) or (
            hasattr(v, "shape") and getattr(v, "ndim", 0) > 0):
        if isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) == 0:
            return (0.0, 0.0), False
        raise SpecError(
            f"from_image_data_generator: {name}={v!r} asks for whole-pixel shifts drawn from a set (Keras' int / list "
            "form); augspec draws continuous shifts and cannot honour that. Use a float: a fraction of the image "
            "(< 1) or a number of pixels (>= 1)")
    if not isinstance(v, numbers.Real):
        raise SpecTypeError(f"from_image_data_generator: {name} must be a float, got {v!r}")
    r = float(v)
    if r < 0:
        raise SpecError(f"from_image_data_generator: {name}={v!r} must be >= 0")
    return (-r, r), r >= 1.0


def from_image_data_generator(
    featurewise_center: bool = False,
    samplewise_center: bool = False,
    featurewise_std_normalization: bool = False,
    samplewise_std_normalization: bool = False,
    zca_whitening: bool = False,
    zca_epsilon: float = 1e-6,
    rotation_range: float = 0,
    width_shift_range: float = 0.0,
    height_shift_range: float = 0.0,
    brightness_range: Any = None,
    shear_range: float = 0.0,
    zoom_range: Any = 0.0,
    channel_shift_range: float = 0.0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    horizontal_flip: bool = False,
    vertical_flip: bool = False,
    rescale: float | None = None,
    preprocessing_function: Callable[..., Any] | None = None,
    data_format: str | None = None,
    validation_split: float = 0.0,
    interpolation_order: int = 1,
    dtype: Any = None,
    *,
    num_classes: int | None = None,
    seed: int | None = None,
) -> Pipeline:
    """The augspec pipeline of ``ImageDataGenerator(**kwargs)`` (same keyword arguments,
    same defaults), in Keras' order: affine, flips, channel shift, brightness, then
    rescale, samplewise centre / std, featurewise centre / std, ZCA. Fit it with
    ``pipe.fit(x_train)`` when a featurewise option is on. ``num_classes`` and ``seed``
    are augspec's. Arguments augspec cannot honour raise ``SpecError`` saying so."""
    fw_c = _bool("featurewise_center", featurewise_center)
    sw_c = _bool("samplewise_center", samplewise_center)
    fw_s = _bool("featurewise_std_normalization", featurewise_std_normalization)
    sw_s = _bool("samplewise_std_normalization", samplewise_std_normalization)
    zca = _bool("zca_whitening", zca_whitening)
    # Keras' implications (with its warnings)
    if fw_s and not fw_c:
        warnings.warn("featurewise_std_normalization implies featurewise_center (as in Keras)", UserWarning,
                      stacklevel=2)
        fw_c = True
    if zca:
        if not fw_c:
            warnings.warn("zca_whitening implies featurewise_center (as in Keras)", UserWarning, stacklevel=2)
            fw_c = True
        if fw_s:
            warnings.warn("zca_whitening overrides featurewise_std_normalization (as in Keras)", UserWarning,
                          stacklevel=2)
            fw_s = False
    if sw_s and not sw_c:
        warnings.warn("samplewise_std_normalization implies samplewise_center (as in Keras)", UserWarning,
                      stacklevel=2)
        sw_c = True
    if preprocessing_function is not None:
        raise SpecError(
            "from_image_data_generator: augspec cannot honour preprocessing_function: a pipeline is a serialisable "
            "spec compiled for NumPy, torch or TensorFlow, not a Python callback. Apply the function to the data "
            "before the pipeline, or write it as an op (@augspec.register)")
    if data_format not in (None, "channels_last", "channels_first"):
        raise SpecError(f"from_image_data_generator: data_format={data_format!r} is not 'channels_last' or "
                        "'channels_first'")
    if validation_split:
        raise SpecError("from_image_data_generator: augspec cannot honour validation_split: it transforms batches "
                        "and does not split data sets; split x_train before fitting")
    if interpolation_order not in (0, 1):
        raise SpecError(f"from_image_data_generator: interpolation_order={interpolation_order!r}: augspec resamples "
                        "bilinearly (1) or with the nearest pixel (0) only")
    if dtype not in (None, "float32") and str(dtype) not in ("float32", "<class 'numpy.float32'>"):
        raise SpecError(f"from_image_data_generator: dtype={dtype!r}: augspec computes in float32")

    # geometry
    rot = float(rotation_range)
    if rot < 0:
        raise SpecError(f"from_image_data_generator: rotation_range={rotation_range!r} must be >= 0")
    ws, ws_px = _shift("width_shift_range", width_shift_range)
    hs, hs_px = _shift("height_shift_range", height_shift_range)
    shear = float(shear_range)
    if isinstance(zoom_range, numbers.Real) and not isinstance(zoom_range, bool):
        zr = (1.0 - float(zoom_range), 1.0 + float(zoom_range))
    elif isinstance(zoom_range, (list, tuple)) and len(zoom_range) == 2:
        zr = (float(zoom_range[0]), float(zoom_range[1]))
    else:
        raise SpecError(f"from_image_data_generator: zoom_range={zoom_range!r} must be a float or a [low, high] pair")
    geometric = rot != 0 or ws != (0.0, 0.0) or hs != (0.0, 0.0) or shear != 0 or zr != (1.0, 1.0)
    check_choice("from_image_data_generator", "fill_mode", fill_mode, ("constant", "nearest", "reflect", "wrap"))
    if geometric and fill_mode == "wrap":
        raise SpecError(
            "from_image_data_generator: augspec cannot honour fill_mode='wrap' (SciPy's 'wrap' makes the first and "
            "last pixels overlap); use 'nearest' (Keras' default), 'reflect' or 'constant'")
    ops: list[Op] = []
    if geometric:
        ops.append(KerasAffine(rotation=rot, height_shift=hs, width_shift=ws, height_shift_pixels=hs_px,
                               width_shift_pixels=ws_px, shear=shear, zoom_x=zr, zoom_y=zr,
                               interpolation="bilinear" if interpolation_order == 1 else "nearest",
                               fill=float(cval) / 255.0, fill_mode=fill_mode))
    if _bool("horizontal_flip", horizontal_flip):
        ops.append(HorizontalFlip(p=0.5))
    if _bool("vertical_flip", vertical_flip):
        ops.append(VerticalFlip(p=0.5))
    if channel_shift_range:
        r = float(channel_shift_range) / 255.0
        ops.append(ChannelShift(shift=(-r, r)))
    if brightness_range is not None:
        if not isinstance(brightness_range, (list, tuple)) or len(brightness_range) != 2:
            raise SpecError(f"from_image_data_generator: brightness_range={brightness_range!r} must be a "
                            "[lower, upper] pair")
        from .core.ops.color import Brightness

        ops.append(Brightness(factor=(float(brightness_range[0]), float(brightness_range[1]))))

    # standardisation, in Keras' value domain (raw * rescale)
    factor = 255.0 * (float(rescale) if rescale else 1.0)
    if factor != 1.0:
        ops.append(Rescale(scale=factor))
    if fw_c or fw_s or sw_c or sw_s:
        ops.append(Standardize(featurewise_center=fw_c, featurewise_std=fw_s, samplewise_center=sw_c,
                               samplewise_std=sw_s, epsilon=1e-6))
    if zca:
        ops.append(KerasZCAWhitening(epsilon=float(zca_epsilon)))
    return Pipeline(ops, num_classes=num_classes, seed=seed)
