"""augspec: the regularizers of vision training as one registry of specs,
compiled for NumPy, PyTorch, TensorFlow, JAX or albumentations.

    import augspec as aug
    pipe = aug.Pipeline([aug.Affine(rotate=15), aug.HorizontalFlip(), aug.MixUp(0.8)],
                        num_classes=10, seed=0)
    run = pipe.compile("numpy")
    images, soft_labels = run(images, labels)

Importing augspec imports no framework; a backend imports its own on compile.
"""

from __future__ import annotations

from . import compat, synthetic
from .core.containers import OneOf, RandomApply
from .core.errors import (
    AugspecError,
    BackendUnavailableError,
    ConfigError,
    ConfigTypeError,
    DuplicateNameError,
    InputError,
    InputRangeWarning,
    InputTypeError,
    PluginWarning,
    RegistryError,
    SpecError,
    SpecTypeError,
)
from .core.ops.color import Brightness, ColorJitter, Contrast, Hue, Saturation
from .core.ops.crop import CenterCrop, Pad, RandomCrop, RandomResizedCrop, Resize
from .core.ops.elastic import ElasticTransform
from .core.ops.erasing import RandomErasing
from .core.ops.feature import Dropout
from .core.ops.filter import GaussianBlur, Sharpness
from .core.ops.geometric import Affine, HorizontalFlip, VerticalFlip
from .core.ops.keras import ChannelShift, KerasAffine, KerasZCAWhitening
from .core.ops.label import LabelSmoothing
from .core.ops.mix import CutMix, MixUp
from .core.ops.mosaic import Mosaic
from .core.ops.perspective import Perspective
from .core.ops.pixel import GaussianNoise, Normalize, Rescale, Standardize, ZCAWhitening
from .core.ops.policy import AugMix, AutoAugment, RandAugment, TrivialAugmentWide, from_timm
from .core.ops.region import CutOut
from .core.ops.synthetic import Synthetic
from .core.ops.tone import AutoContrast, Equalize, Grayscale, Invert, Posterize, Solarize, SolarizeAdd
from .core.pipeline import Pipeline
from .core.random import Bernoulli, Beta, Categorical, Normal, Permutation, Uniform, derive_key
from .core.registry import (
    list_backends,
    list_generators,
    list_ops,
    plugin_errors,
    register,
    register_generator,
    register_kernel,
)
from .core.run import Run
from .core.serialize import from_dict, from_json, from_yaml, to_dict, to_json, to_yaml
from .core.spec import (
    ColorOp,
    Context,
    FeatureOp,
    GeometricOp,
    LabelOp,
    MixOp,
    Op,
    PixelOp,
    RegionOp,
    SyntheticOp,
    spec,
)
from .core.synthetic import Generator, keyed_uniforms, keyed_words

try:  # the plugin layer installs the loader that fills the core's registry
    from .plugins import manager as _plugin_layer  # noqa: F401
    from .plugins.hookspecs import hookimpl
except ImportError as e:  # pragma: no cover - only a layering test imports the core without it
    if not (e.name or "").startswith("augspec.plugins"):
        raise
from .tta import TTA, TTATransform

__version__ = "0.1.0"

__all__ = [
    "Affine", "HorizontalFlip", "VerticalFlip", "Perspective", "ElasticTransform",
    "RandomResizedCrop", "Resize", "CenterCrop", "RandomCrop", "Pad",
    "Brightness", "Contrast", "Saturation", "Hue", "ColorJitter",
    "GaussianNoise", "Rescale", "Normalize", "Standardize", "ZCAWhitening",
    "CutOut", "MixUp", "CutMix", "Mosaic", "LabelSmoothing", "Dropout",
    "Invert", "Grayscale", "Solarize", "SolarizeAdd", "Posterize", "Equalize", "AutoContrast",
    "Sharpness", "GaussianBlur", "RandomErasing",
    "RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix", "from_timm",
    "Synthetic", "Generator", "register_generator", "list_generators", "keyed_uniforms", "keyed_words",
    "KerasAffine", "ChannelShift", "KerasZCAWhitening",
    "Pipeline", "OneOf", "RandomApply", "Run",
    "Op", "GeometricOp", "ColorOp", "PixelOp", "RegionOp", "MixOp", "LabelOp", "FeatureOp", "SyntheticOp", "Context",
    "spec",
    "Uniform", "Bernoulli", "Beta", "Normal", "Categorical", "Permutation", "derive_key",
    "to_dict", "from_dict", "to_json", "from_json", "to_yaml", "from_yaml",
    "register", "register_kernel", "hookimpl", "list_ops", "list_backends", "plugin_errors", "PluginWarning",
    "AugspecError", "SpecError", "SpecTypeError", "InputError", "InputRangeWarning", "InputTypeError", "RegistryError",
    "DuplicateNameError", "BackendUnavailableError", "ConfigError", "ConfigTypeError",
    "TTA", "TTATransform", "compat", "synthetic",
    "__version__",
]
