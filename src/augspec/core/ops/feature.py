"""Feature specs: inverted dropout, x -> x * keep / (1 - rate), keep ~ Bernoulli(1 - rate).

``noise_shape`` follows Keras: the shape of the keep mask, batch axis first, with
``None`` for "the size of that axis" and 1 to share the mask along it. In a pipeline
it is read in NHWC order (``(None, 1, 1, None)`` drops whole channels per sample)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SpecError, SpecTypeError
from ..random import Bernoulli, C, Distribution, H, W
from ..spec import Context, FeatureOp, check_number, spec


@spec
class Dropout(FeatureOp):
    name = "dropout"
    samplewise = True
    rate: float = 0.5
    noise_shape: Any = None
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_number("Dropout", "rate", self.rate, 0.0, 1.0, hi_open=True))
        ns = self.noise_shape
        if ns is not None:
            if not isinstance(ns, (list, tuple)) or not ns:
                raise SpecTypeError(f"Dropout: noise_shape must be a tuple like (None, 1, 1, None), got {ns!r}")
            for v in ns:
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                    raise SpecError(f"Dropout: noise_shape entries must be None or positive integers, got {ns!r}")
            object.__setattr__(self, "noise_shape", tuple(ns))
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        ns = self.noise_shape or (None, None, None, None)
        if len(ns) != 4:
            raise SpecError(f"Dropout: in a pipeline noise_shape has 4 entries (N, H, W, C), got {ns!r}")
        dims = tuple(sym if v is None else v for v, sym in zip(ns[1:], (H, W, C)))
        return {"keep": Bernoulli(p=1.0 - self.rate, shape=dims, per_sample=ns[0] != 1)}

    def features(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        keep = B.from_nhwc(B.cast(params["keep"], "float32"))
        return x * keep * (1.0 / (1.0 - self.rate))
