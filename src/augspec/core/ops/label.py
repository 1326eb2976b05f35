"""Label specs: label smoothing, y -> (1 - alpha) y + alpha / K."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec import Context, LabelOp, check_number, spec


@spec
class LabelSmoothing(LabelOp):
    name = "label_smoothing"
    alpha: float = 0.1
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_number("LabelSmoothing", "alpha", self.alpha, 0.0, 1.0))
        self._validate_p()

    def labels(self, B: Any, y: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        k = B.shape(y)[-1]
        return y * (1.0 - self.alpha) + self.alpha / k
