"""A tiny augspec plugin: the ops ``negate`` (x -> 1 - x on [0, 1] values) and
``tilt`` (a per-sample rotation, a geometric op), and the generator ``stripes``
(for ``Synthetic``), found through the entry-point group ``augspec`` and written
against the primitive namespace ``B``, so they run on every backend; ``tilt`` fuses
into the one warp of its neighbours."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import augspec


@augspec.spec
class Negate(augspec.PixelOp):
    """Negate the image (``1 - x``) with probability ``p`` per sample."""

    name = "negate"
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: augspec.Context) -> Any:
        return 1.0 - x


@augspec.spec
class Tilt(augspec.GeometricOp):
    """Rotate by an angle uniform in [-degrees, degrees] per sample, about the image centre
    (a positive angle turns the content counter-clockwise on screen, as ``Affine``)."""

    name = "tilt"
    samplewise = True
    degrees: float = 10.0
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def draws(self) -> dict[str, Any]:
        return {"angle": augspec.Uniform(low=-self.degrees, high=self.degrees)}

    def matrix(self, B: Any, params: Mapping[str, Any], ctx: augspec.Context) -> Any:
        t = params["angle"] * (math.pi / 180.0)
        c, s = B.cos(t), B.sin(t)
        cx, cy = ctx.width / 2.0, ctx.height / 2.0
        zero, one = 0.0 * c, 0.0 * c + 1.0
        rows = [[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy], [zero, zero, one]]
        return B.stack([B.stack(r, axis=-1) for r in rows], axis=-2)


class Stripes(augspec.Generator):
    """Horizontal stripes: class ``c`` has a period of ``c + 2`` rows, each image a phase
    drawn from its key (``augspec.keyed_uniforms``)."""

    name = "stripes"

    def __call__(self, B: Any, labels: Any, key: Any, shape: Any, num_classes: int, real: Any = None) -> Any:
        h, w, c = shape
        period = B.reshape(B.cast(labels, "float32") + 2.0, (-1, 1))
        phase = B.floor(augspec.keyed_uniforms(B, key, 1) * period)  # (N, 1)
        rows = B.reshape(B.cast(B.arange(h), "float32"), (1, -1)) + phase
        on = B.cast(rows - B.floor(rows / period) * period < 1.0, "float32")  # (N, H)
        return B.broadcast_to(B.reshape(on, (-1, h, 1, 1)), (B.shape(labels)[0], h, w, c)) * 1.0


@augspec.hookimpl
def augspec_register(registry: Any) -> None:
    registry.add_op(Negate)
    registry.add_op(Tilt)
    registry.add_generator("stripes", Stripes)
