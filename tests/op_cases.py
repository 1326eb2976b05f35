"""The op cases every backend's tests compare against the NumPy reference (one list, no framework)."""

from __future__ import annotations

import numpy as np

import augspec as aug
from augspec.recipes import r2

K = 10
FIT = np.random.default_rng(4321).random((20, 12, 14, 3))  # NHWC, for Standardize / ZCA


def _fitted(op):
    return aug.Pipeline([op]).fit(FIT).ops[0]


# (name, pipeline ops, kind): kind "warp" compares interior pixels at 1e-4,
# "pixel" everything at 1e-5 (relative for unbounded ops), "label" also labels.
OPS = [
    ("affine", [aug.Affine(rotate=30, translate=0.1, scale=0.2, shear=10, shear_y=(-5, 5))], "warp"),
    ("affine_nearest", [aug.Affine(rotate=20, scale=0.1, interpolation="nearest")], "nearest"),
    ("nearest_ties", [aug.Affine(scale=(0.5, 0.5), translate=(0.25, 0.25), interpolation="nearest",
                                 fill=(0.1, 0.2, 0.3))], "nearest"),  # every tap a tie
    ("affine_fill", [aug.Affine(rotate=25, translate=0.2, fill=(0.2, 0.5, 0.8), p=0.7)], "warp"),
    ("affine_edge", [aug.Affine(rotate=40, translate=0.4, scale=(0.4, 1.6), shear=10, fill_mode="nearest")], "edge"),
    ("affine_reflect", [aug.Affine(rotate=40, translate=0.6, scale=(0.3, 1.6), fill_mode="reflect", p=0.8),
                        aug.HorizontalFlip(p=0.5)], "edge"),
    ("affine_reflect_nearest", [aug.Affine(rotate=30, translate=0.5, scale=(0.4, 1.2), fill_mode="reflect",
                                           interpolation="nearest")], "nearest"),
    ("affine_flip", [aug.Affine(rotate=10), aug.HorizontalFlip(), aug.VerticalFlip(p=0.3)], "warp"),
    ("hflip", [aug.HorizontalFlip(p=0.5)], "exact"),
    ("vflip", [aug.VerticalFlip(p=0.5), aug.HorizontalFlip(p=1.0)], "exact"),
    ("brightness", [aug.Brightness(0.4)], "pixel"),
    ("contrast", [aug.Contrast(0.4, p=0.6)], "pixel"),
    ("saturation", [aug.Saturation(0.4)], "pixel"),
    ("hue_yiq", [aug.Hue(0.2)], "pixel"),
    ("hue_hsv", [aug.Hue(0.2, mode="hsv")], "pixel"),
    ("color_jitter", [aug.ColorJitter(0.4, 0.4, 0.4, 0.1)], "pixel"),
    ("color_jitter_hsv", [aug.ColorJitter(0.4, 0.4, 0.4, 0.1, hue_mode="hsv", p=0.8)], "pixel"),
    ("gaussian_noise", [aug.GaussianNoise(std=(0.0, 0.1), p=0.5)], "pixel"),
    ("rescale", [aug.Rescale(scale=2.0, offset=-1.0)], "pixel"),
    ("normalize", [aug.Normalize()], "pixel"),
    ("standardize", [_fitted(aug.Standardize(featurewise_center=True, featurewise_std=True,
                                             samplewise_center=True, samplewise_std=True))], "pixel"),
    ("zca", [_fitted(aug.Standardize(featurewise_center=True)), _fitted(aug.ZCAWhitening(epsilon=0.1))], "pixel"),
    ("cutout", [aug.CutOut(holes=2, size=(0.2, 0.5), fill=(0.1, 0.2, 0.3))], "pixel"),
    ("cutout_p", [aug.CutOut(holes=1, size=0.4, p=0.5)], "pixel"),
    ("mixup", [aug.MixUp(alpha=0.8)], "label"),
    ("cutmix", [aug.CutMix(alpha=1.0)], "label"),
    ("cutmix_batch", [aug.CutMix(alpha=1.0, per_sample=False, correct_lambda=False)], "label"),
    ("label_smoothing", [aug.LabelSmoothing(0.1)], "label"),
    ("dropout", [aug.Dropout(rate=0.3, noise_shape=(None, 1, 1, None))], "pixel"),
    ("one_of", [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], "label"),
    ("random_apply", [aug.RandomApply([aug.Brightness(0.3), aug.Affine(rotate=15)], p=0.5)], "warp"),
    ("r2", list(r2(num_classes=K).ops), "warp"),
]
