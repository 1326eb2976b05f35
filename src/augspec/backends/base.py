"""The Backend protocol: the primitive namespace ``B`` the kernels are written against.

A backend implements the primitives below for one framework and one layout
(``"NHWC"`` or ``"NCHW"``); every built-in kernel, and every plugin kernel
written against ``B``, then runs on it. Arrays are the framework's own; shapes
are Python tuples of ints (static). Images inside a pipeline are float32.

Array basics:   asarray cast dtype_name shape is_array to_numpy arange ones zeros eye
                reshape broadcast_to stack where clip floor sqrt log exp cos sin tan
                sum mean any matmul argsort take logical_not logical_xor
                bitxor bitand shr (on int64 holding 32-bit values)
Image helpers:  image_dims per_sample per_channel spatial channel_mean image_mean
                image_std to_nhwc from_nhwc split_channels merge_channels flip
                color_affine warp_affine rgb_to_hsv hsv_to_rgb one_hot

This module imports no framework. Defaults here are written against the other
primitives, so a new backend need not provide them, and may override any for speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LAYOUTS = ("NHWC", "NCHW")
IMAGE_DTYPES = ("uint8", "float16", "bfloat16", "float32", "float64")


class Backend:
    """Base of every backend; subclasses fill in the primitives for their framework."""

    name: str = ""
    #: the module whose arrays this backend takes, for ``compile("auto")``
    array_module: str = ""

    def __init__(self, layout: str = "NHWC", **options: Any):
        from ..core.errors import SpecError

        if layout not in LAYOUTS:
            raise SpecError(f"{self.name} backend: layout={layout!r} is not one of {list(LAYOUTS)}")
        self.layout = layout
        self.channel_axis = 3 if layout == "NHWC" else 1
        if options:
            raise SpecError(f"{self.name} backend: unknown options {sorted(options)}")

    def make_run(self, pipeline: Any, **run_options: Any) -> Any:
        """The callable a compiled pipeline is (a backend may return a subclass of Run)."""
        from ..core.run import Run

        return Run(pipeline, self, **run_options)

    # ------------------------------------------------------------ conversion
    def as_images(self, images: Any) -> Any:
        """The images as this backend's array (TypeError where that cannot be)."""
        raise NotImplementedError

    def as_labels(self, labels: Any) -> Any:
        return self.as_images(labels)

    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None:
        """True if every id is in [0, num_classes); None where checking would sync a device."""
        a = self.to_numpy(ids)
        return bool(a.size == 0 or (a.min() >= 0 and a.max() < num_classes))

    def has_nan(self, x: Any) -> bool | None:
        return None

    # ---------------------------------------------------------------- layout
    def image_dims(self, x: Any) -> tuple[int, int, int, int]:
        """(N, H, W, C) of a batch in this backend's layout."""
        n, a, b, c = self.shape(x)
        return (n, a, b, c) if self.layout == "NHWC" else (n, b, c, a)

    def per_sample(self, v: Any) -> Any:
        """(N,) -> a shape that broadcasts against a batch."""
        return self.reshape(v, (-1, 1, 1, 1))

    def per_channel(self, v: Any) -> Any:
        """(C,) -> a shape that broadcasts against a batch."""
        return self.reshape(v, (1, 1, 1, -1) if self.layout == "NHWC" else (1, -1, 1, 1))

    def spatial(self, m: Any) -> Any:
        """(N, H, W) -> a shape that broadcasts against a batch."""
        return self.reshape(m, (*self.shape(m), 1) if self.layout == "NHWC" else (self.shape(m)[0], 1, *self.shape(m)[1:]))

    def to_nhwc(self, x: Any) -> Any:
        return x if self.layout == "NHWC" else self.transpose(x, (0, 2, 3, 1))

    def from_nhwc(self, x: Any) -> Any:
        return x if self.layout == "NHWC" else self.transpose(x, (0, 3, 1, 2))

    def _spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.layout == "NHWC" else (2, 3)

    def channel_mean(self, x: Any) -> Any:
        """(N, C) mean of each channel over the image."""
        return self.mean(x, axis=self._spatial_axes())

    def image_mean(self, x: Any) -> Any:
        """Mean over each image (all pixels and channels), broadcastable against x."""
        return self.mean(x, axis=(1, 2, 3), keepdims=True)

    def image_std(self, x: Any) -> Any:
        d = x - self.image_mean(x)
        return self.sqrt(self.mean(d * d, axis=(1, 2, 3), keepdims=True))

    def split_channels(self, x: Any) -> list[Any]:
        c = self.shape(x)[self.channel_axis]
        if self.layout == "NHWC":
            return [x[..., i : i + 1] for i in range(c)]
        return [x[:, i : i + 1] for i in range(c)]

    def merge_channels(self, parts: Sequence[Any]) -> Any:
        return self.concat(list(parts), axis=self.channel_axis)

    def flip(self, x: Any, axis: str) -> Any:
        """Reverse along the width (``"w"``) or height (``"h"``) axis."""
        raise NotImplementedError

    def color_affine(self, x: Any, a: Any, t: Any) -> Any:
        """Per pixel ``A x + t`` with ``A`` (N, C, C) and ``t`` (N, C)."""
        raise NotImplementedError

    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        """Resample at ``inverse @ (j + 0.5, i + 0.5, 1)`` per output pixel (pixel-centre
        frame, see DESIGN.md); bilinear or nearest. Taps outside the image read ``fill``
        (``fill_mode="constant"``), the nearest edge pixel (``"nearest"``: the tap index
        clamped) or the mirrored image (``"reflect"``: index -1 reads 0, -2 reads 1)."""
        raise NotImplementedError

    def one_hot(self, ids: Any, k: int) -> Any:
        return self.cast(self.reshape(ids, (-1, 1)) == self.reshape(self.arange(k), (1, -1)), "float32")

    def logical_xor(self, a: Any, b: Any) -> Any:
        return a != b

    def logical_not(self, a: Any) -> Any:
        return ~a

    # ----------------------------------------------------------- HSV colour
    def rgb_to_hsv(self, x: Any) -> Any:
        """RGB in [0, 1] -> HSV with H in [0, 1)."""
        r, g, b = self.split_channels(x)
        mx = self.maximum(self.maximum(r, g), b)
        mn = self.minimum(self.minimum(r, g), b)
        delta = mx - mn
        safe = self.where(delta > 0, delta, 1.0 + 0.0 * delta)
        hr = (g - b) / safe
        hg = 2.0 + (b - r) / safe
        hb = 4.0 + (r - g) / safe
        h = self.where(mx == r, hr, self.where(mx == g, hg, hb)) / 6.0
        h = self.where(delta > 0, h - self.floor(h), 0.0 * h)
        s = self.where(mx > 0, delta / self.where(mx > 0, mx, 1.0 + 0.0 * mx), 0.0 * mx)
        return self.merge_channels([h, s, mx])

    def hsv_to_rgb(self, x: Any) -> Any:
        h, s, v = self.split_channels(x)
        h6 = (h - self.floor(h)) * 6.0

        def channel(k: float) -> Any:
            kk = k + h6
            kk = kk - 6.0 * self.floor(kk / 6.0)
            return v - v * s * self.clip(self.minimum(kk, 4.0 - kk), 0.0, 1.0)

        return self.merge_channels([channel(5.0), channel(3.0), channel(1.0)])
