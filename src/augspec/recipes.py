"""The benchmark recipes of RECIPES.md as pipelines, shared by the benchmarks, the CLI and the demo."""

from __future__ import annotations

from typing import Any

from .core.containers import OneOf
from .core.ops.color import ColorJitter
from .core.ops.crop import RandomResizedCrop
from .core.ops.erasing import RandomErasing
from .core.ops.geometric import Affine, HorizontalFlip
from .core.ops.label import LabelSmoothing
from .core.ops.mix import CutMix, MixUp
from .core.ops.pixel import Normalize, Standardize
from .core.ops.policy import from_timm
from .core.ops.region import CutOut
from .core.pipeline import Pipeline

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def r2(num_classes: int = 1000, seed: int | None = 0) -> Pipeline:
    """R2, the modern recipe: affine, flip, colour jitter, CutOut, Normalize,
    MixUp (alpha 0.8) or CutMix (alpha 1.0) per sample, label smoothing 0.1."""
    return Pipeline([
        Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5),
        HorizontalFlip(p=0.5),
        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        CutOut(holes=1, size=(0.1, 0.5)),
        Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        OneOf([MixUp(alpha=0.8), CutMix(alpha=1.0)]),
        LabelSmoothing(0.1),
    ], num_classes=num_classes, seed=seed)


#: R3's input sizes (height, width): the shapes of a real photo data set's JPEGs
R3_SIZES = ((375, 500), (500, 375), (480, 640), (500, 333))


def r3(num_classes: int = 1000, seed: int | None = 0, size: int = 224) -> Pipeline:
    """R3, ImageNet training from images of mixed sizes: RandomResizedCrop(224), flip,
    colour jitter 0.4, Normalize, random erasing (one CutOut of 2-33 % of the area, as
    side fractions 0.14-0.57, with p = 0.25, after Normalize as timm's), MixUp (0.8) or
    CutMix (1.0) per sample, label smoothing 0.1."""
    return Pipeline([
        RandomResizedCrop(size),
        HorizontalFlip(p=0.5),
        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        CutOut(holes=1, size=(0.14, 0.57), p=0.25),
        OneOf([MixUp(alpha=0.8), CutMix(alpha=1.0)]),
        LabelSmoothing(0.1),
    ], num_classes=num_classes, seed=seed)


#: R4's RandAugment: timm's default ImageNet policy string
R4_AUTO_AUGMENT = "rand-m9-mstd0.5-inc1"


def r4(num_classes: int = 1000, seed: int | None = 0, size: int = 224) -> Pipeline:
    """R4, timm's full ImageNet training recipe from images of mixed sizes: R3 with
    ``RandAugment`` (timm's ``rand-m9-mstd0.5-inc1``: two ops per image, magnitude 9 with std
    0.5, the increasing variants, each op with p = 0.5, fill the ImageNet mean) after the flip,
    and ``RandomErasing(p=0.25, mode="pixel")`` after Normalize in place of CutOut. As in timm's
    ``create_transform``, the colour jitter is off when a RandAugment policy is set."""
    return Pipeline([
        RandomResizedCrop(size),
        HorizontalFlip(p=0.5),
        from_timm(R4_AUTO_AUGMENT),
        Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        RandomErasing(p=0.25, mode="pixel"),
        OneOf([MixUp(alpha=0.8), CutMix(alpha=1.0)]),
        LabelSmoothing(0.1),
    ], num_classes=num_classes, seed=seed)


def r1(x_train: Any = None, seed: int | None = 0) -> Pipeline:
    """R1, the seed recipe (Keras' classic ImageDataGenerator): rotation 20 degrees,
    shifts of 0.2, horizontal flip, then featurewise centring and std scaling,
    fitted on ``x_train`` (NHWC) when given. The outside of the warped image reads
    the nearest edge pixel, as ImageDataGenerator's default ``fill_mode`` does."""
    pipe = Pipeline([
        Affine(rotate=20, translate=0.2, fill_mode="nearest"),
        HorizontalFlip(p=0.5),
        Standardize(featurewise_center=True, featurewise_std=True),
    ], seed=seed)
    return pipe.fit(x_train) if x_train is not None else pipe
