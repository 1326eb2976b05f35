"""The built-in ops and backends, registered through the same hook as any plugin."""

from __future__ import annotations

from ..core.containers import OneOf, RandomApply
from ..core.ops.color import Brightness, ColorJitter, Contrast, Hue, Saturation
from ..core.ops.crop import CenterCrop, Pad, RandomCrop, RandomResizedCrop, Resize
from ..core.ops.elastic import ElasticTransform
from ..core.ops.erasing import RandomErasing
from ..core.ops.feature import Dropout
from ..core.ops.filter import GaussianBlur, Sharpness
from ..core.ops.geometric import Affine, HorizontalFlip, VerticalFlip
from ..core.ops.keras import ChannelShift, KerasAffine, KerasZCAWhitening
from ..core.ops.label import LabelSmoothing
from ..core.ops.mix import CutMix, MixUp
from ..core.ops.mosaic import Mosaic
from ..core.ops.perspective import Perspective
from ..core.ops.pixel import GaussianNoise, Normalize, Rescale, Standardize, ZCAWhitening
from ..core.ops.policy import AugMix, AutoAugment, RandAugment, TrivialAugmentWide
from ..core.ops.region import CutOut
from ..core.ops.synthetic import Synthetic
from ..core.ops.tone import AutoContrast, Equalize, Grayscale, Invert, Posterize, Solarize, SolarizeAdd
from ..core.registry import stage_kernel_name
from .hookspecs import hookimpl

BUILTIN_OPS = (
    Affine, HorizontalFlip, VerticalFlip, Perspective, ElasticTransform,
    RandomResizedCrop, Resize, CenterCrop, RandomCrop, Pad,
    Brightness, Contrast, Saturation, Hue, ColorJitter,
    GaussianNoise, Rescale, Normalize, Standardize, ZCAWhitening,
    CutOut, MixUp, CutMix, Mosaic, LabelSmoothing, Dropout,
    Invert, Grayscale, Solarize, SolarizeAdd, Posterize, Equalize, AutoContrast,
    Sharpness, GaussianBlur, RandomErasing,
    RandAugment, TrivialAugmentWide, AutoAugment, AugMix,
    Synthetic,
    OneOf, RandomApply,
    # the exact Keras ImageDataGenerator semantics used by augspec.compat
    KerasAffine, ChannelShift, KerasZCAWhitening,
)

#: the built-in generators of ``Synthetic`` (``core/synthetic.py``), imported on first use
BUILTIN_GENERATORS = (
    ("fractal", "augspec.core.generators.fractal:Fractal"),
    ("elastic", "augspec.core.generators.elastic:Elastic"),
    ("bank", "augspec.synthetic:Bank"),
)

BUILTIN_BACKENDS = (
    # name, factory, frameworks it needs, install hint
    ("numpy", "augspec.backends.numpy:NumpyBackend", ("numpy",), "pip install augspec"),
    ("torch", "augspec.backends.torch:TorchBackend", ("torch",), "pip install 'augspec[torch]'"),
    ("tensorflow", "augspec.backends.tensorflow:TensorflowBackend", ("tensorflow",),
     "pip install 'augspec[tensorflow]'"),
    ("albumentations", "augspec.backends.albumentations:AlbumentationsBackend", ("albumentations",),
     "pip install 'augspec[albumentations]'"),
    ("jax", "augspec.backends.jax:JaxBackend", ("jax",), "pip install 'augspec[jax]'"),
)


#: the built-in backends' stage kernels (``core/executor.py``), imported on compile
BUILTIN_STAGE_KERNELS = (
    # backend, stage kinds, module
    ("torch", ("geometric", "color", "region", "pixel", "mix"), "augspec.backends.torch.stages"),
)


@hookimpl
def augspec_register(registry) -> None:  # type: ignore[no-untyped-def]
    for cls in BUILTIN_OPS:
        registry.add_op(cls)
    for name, factory in BUILTIN_GENERATORS:
        registry.add_generator(name, factory)
    for name, factory, requires, install in BUILTIN_BACKENDS:
        registry.add_backend(name, factory, requires=requires, install=install)
    for backend, kinds, module in BUILTIN_STAGE_KERNELS:
        for kind in kinds:
            registry.add_kernel(stage_kernel_name(kind), backend, f"{module}:{kind}")
