"""Elementwise pixel specs: noise, rescaling, normalisation, standardisation, ZCA.

Normalize, Rescale, Standardize and ZCAWhitening leave the [0, 1] range: after
one of them the pipeline no longer clamps, and uint8 inputs come out float32.
Statistics (Standardize, ZCAWhitening) are fitted on values in the pipeline's
domain (uint8 divided by 255), as they arrive at the op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

import numpy as np

from ..errors import InputError, SpecError, SpecTypeError
from ..random import C, Distribution, H, Normal, Uniform, W
from ..spec import Context, FitOp, PixelOp, check_channels, check_number, check_range, spec


@spec
class GaussianNoise(PixelOp):
    """Add ``mean + sigma * z``, z ~ N(0, 1) per pixel (and channel, unless
    ``per_channel=False``); sigma is ``std`` or drawn per sample from a ``(low, high)`` range."""

    name = "gaussian_noise"
    samplewise = True
    std: Any = 0.05
    mean: float = 0.0
    per_channel: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", check_range("GaussianNoise", "std", self.std, lo=0.0, hi=10.0, symmetric=False))
        object.__setattr__(self, "mean", check_number("GaussianNoise", "mean", self.mean, -1.0, 1.0))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {
            "sigma": Uniform(low=self.std[0], high=self.std[1]),
            "noise": Normal(shape=(H, W, C if self.per_channel else 1)),
        }

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        z = B.from_nhwc(params["noise"])
        return x + self.mean + B.per_sample(params["sigma"]) * z


@spec
class Rescale(PixelOp):
    """``x -> scale * x + offset`` on the [0, 1] values (e.g. scale 2, offset -1 for [-1, 1])."""

    name = "rescale"
    samplewise = True
    bounded = False
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number("Rescale", "scale", self.scale, -1e6, 1e6))
        object.__setattr__(self, "offset", check_number("Rescale", "offset", self.offset, -1e6, 1e6))

    @property
    def p(self) -> float:  # deterministic
        return 1.0

    def channel_map(self, ctx: Context) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (self.scale,), (self.offset,)

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        return x * self.scale + self.offset


@spec
class Normalize(PixelOp):
    """``(x - mean) / std`` per channel, on values in [0, 1] (torchvision's convention)."""

    name = "normalize"
    samplewise = True
    channel_fields = ("mean", "std")
    bounded = False
    mean: Any = (0.485, 0.456, 0.406)
    std: Any = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", check_channels("Normalize", "mean", self.mean, -1e6, 1e6))
        std = check_channels("Normalize", "std", self.std, -1e6, 1e6)
        if any(s <= 0 for s in std):
            raise SpecError(f"Normalize: std={self.std!r} must be > 0 in every channel")
        object.__setattr__(self, "std", std)
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise SpecError(f"Normalize: mean has {len(self.mean)} channels but std has {len(self.std)}")

    @property
    def p(self) -> float:
        return 1.0

    def channel_map(self, ctx: Context) -> tuple[tuple[float, ...], tuple[float, ...]]:
        c = ctx.channels
        mean = self.mean * c if len(self.mean) == 1 else self.mean
        std = self.std * c if len(self.std) == 1 else self.std
        return tuple(1.0 / s for s in std), tuple(-m / s for m, s in zip(mean, std))

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        mean = B.per_channel(B.asarray(self.mean, "float32"))
        inv = B.per_channel(B.asarray(tuple(1.0 / s for s in self.std), "float32"))
        return (x - mean) * inv


@spec
class Standardize(FitOp):
    """Centre and/or scale to unit std, per image (samplewise, over all of its pixels
    and channels) and/or per channel with statistics fitted on a data set
    (featurewise), in that order, with ``epsilon`` added to every std (Keras'
    ImageDataGenerator semantics; ``fit`` computes mean and std of its input as given).
    """

    name = "standardize"
    samplewise = True
    channel_fields = ("mean", "std")
    featurewise_center: bool = False
    featurewise_std: bool = False
    samplewise_center: bool = False
    samplewise_std: bool = False
    epsilon: float = 1e-6
    mean: Any = None
    std: Any = None

    def __post_init__(self) -> None:
        n = "Standardize"
        flags = (self.featurewise_center, self.featurewise_std, self.samplewise_center, self.samplewise_std)
        for fname, v in zip(("featurewise_center", "featurewise_std", "samplewise_center", "samplewise_std"), flags):
            if not isinstance(v, bool):
                from ..errors import SpecTypeError

                raise SpecTypeError(f"{n}: {fname} must be True or False, got {v!r}")
        if not any(flags):
            raise SpecError(f"{n}: set at least one of featurewise_center, featurewise_std, samplewise_center, samplewise_std")
        object.__setattr__(self, "epsilon", check_number(n, "epsilon", self.epsilon, 0.0, 1.0))
        if self.mean is not None:
            object.__setattr__(self, "mean", check_channels(n, "mean", self.mean, -1e6, 1e6))
        if self.std is not None:
            object.__setattr__(self, "std", check_channels(n, "std", self.std, 0.0, 1e6))

    @property
    def p(self) -> float:
        return 1.0

    @property
    def fitted(self) -> bool:
        return (not self.featurewise_center or self.mean is not None) and (not self.featurewise_std or self.std is not None)

    def fit(self, x: Any) -> Standardize:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=(0, 1, 2))
        std = x.std(axis=(0, 1, 2))
        return type(self)(self.featurewise_center, self.featurewise_std, self.samplewise_center,
                          self.samplewise_std, self.epsilon,
                          tuple(float(v) for v in mean) if self.featurewise_center else None,
                          tuple(float(v) for v in std) if self.featurewise_std else None)

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        if self.samplewise_center:
            x = x - B.image_mean(x)
        if self.samplewise_std:  # a constant image (std + epsilon == 0) is left as it is: 0 after centring
            d = B.image_std(x) + self.epsilon
            x = x / B.where(d > 0, d, 1.0)
        if self.featurewise_center:
            x = x - B.per_channel(B.asarray(self.mean, "float32"))
        if self.featurewise_std:
            x = x * B.per_channel(B.asarray(tuple(1.0 / (s + self.epsilon) if s + self.epsilon > 0 else 1.0
                                                  for s in self.std), "float32"))
        return x


@spec
class ZCAWhitening(FitOp):
    """Multiply the flattened (H, W, C)-ordered image by the ZCA matrix
    ``U diag(1 / sqrt(s + epsilon)) U^T`` of ``X^T X / n`` fitted on a data set
    (Keras' convention: no centring here; put ``Standardize(featurewise_center=True)`` first)."""

    name = "zca_whitening"
    samplewise = True
    epsilon: float = 1e-6
    matrix: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_number("ZCAWhitening", "epsilon", self.epsilon, 0.0, 1e3))
        if self.matrix is not None:
            try:
                m = np.asarray(self.matrix, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise SpecTypeError(f"ZCAWhitening: matrix must be a square array of numbers ({e})") from None
            if m.ndim != 2 or m.shape[0] != m.shape[1]:
                raise SpecError(f"ZCAWhitening: matrix must be square, got shape {m.shape}")
            if not np.isfinite(m).all():
                raise SpecError(f"ZCAWhitening: matrix holds {int((~np.isfinite(m)).sum())} NaN or infinite values")
            object.__setattr__(self, "matrix", m)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        a, b = self.matrix, other.matrix  # type: ignore[attr-defined]
        same = a is b or (a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))
        return self.epsilon == other.epsilon and same  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.epsilon, None if self.matrix is None else self.matrix.shape))

    @property
    def p(self) -> float:
        return 1.0

    @property
    def fitted(self) -> bool:
        return self.matrix is not None

    def check_image(self, ctx: Context) -> None:
        d = ctx.height * ctx.width * ctx.channels
        if self.matrix is not None and self.matrix.shape[0] != d:
            raise InputError(
                f"ZCAWhitening: fitted on images of {self.matrix.shape[0]} values, got {ctx.height}x{ctx.width}x{ctx.channels} = {d}"
            )

    def fit(self, x: Any) -> ZCAWhitening:
        x = np.asarray(x, dtype=np.float64)
        flat = x.reshape(x.shape[0], -1)
        sigma = flat.T @ flat / flat.shape[0]
        u, s, _ = np.linalg.svd(sigma)
        pcs = (u * (1.0 / np.sqrt(s[np.newaxis] + self.epsilon))) @ u.T
        return type(self)(self.epsilon, pcs.astype(np.float32))

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        self.check_image(ctx)
        flat = B.reshape(B.to_nhwc(x), (ctx.n, -1))
        out = B.matmul(flat, B.asarray(self.matrix, "float32"))
        return B.from_nhwc(B.reshape(out, (ctx.n, ctx.height, ctx.width, ctx.channels)))
