"""A tiny augspec plugin: the op ``invert`` (x -> 1 - x on [0, 1] values), found
through the entry-point group ``augspec`` and written against the primitive
namespace ``B``, so it runs on every backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import augspec


@augspec.spec
class Invert(augspec.PixelOp):
    """Invert the image (``1 - x``) with probability ``p`` per sample."""

    name = "invert"
    p: float = 1.0

    def __post_init__(self) -> None:
        self._validate_p()

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: augspec.Context) -> Any:
        return 1.0 - x


@augspec.hookimpl
def augspec_register(registry: Any) -> None:
    registry.add_op(Invert)
