"""Mix specs: MixUp and CutMix. Each sample i is paired with ``partner[i]``, a
random permutation of the batch (a batch of one mixes with itself).

    MixUp:  lambda ~ Beta(alpha, alpha); x = lambda x_i + (1 - lambda) x_j; y likewise.
    CutMix: lambda ~ Beta(alpha, alpha); centre uniform over the image; a box of
            W sqrt(1 - lambda) by H sqrt(1 - lambda) pixels, clipped and rounded
            (``region.box_edges``), is pasted from the partner; the partner's label
            weight is the pasted fraction of pixels (``correct_lambda=True``) or
            1 - lambda as drawn.

``per_sample=False`` draws one lambda (and one box) for the whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..random import Beta, Distribution, Permutation, Uniform
from ..spec import Context, MixOp, check_number, spec
from .region import box_edges, box_mask


def _check_bool(op: str, name: str, v: Any) -> None:
    if not isinstance(v, bool):
        from ..errors import SpecTypeError

        raise SpecTypeError(f"{op}: {name} must be True or False, got {v!r}")


@spec
class MixUp(MixOp):
    name = "mixup"
    alpha: float = 1.0
    per_sample: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_number("MixUp", "alpha", self.alpha, 0.0, 1e3, lo_open=True))
        _check_bool("MixUp", "per_sample", self.per_sample)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        return {"lam": Beta(a=self.alpha, b=self.alpha, per_sample=self.per_sample), "partner": Permutation()}

    def mix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
        w = 1.0 - params["lam"]
        return B.reshape(w, (-1, 1, 1)), w


@spec
class CutMix(MixOp):
    name = "cutmix"
    alpha: float = 1.0
    correct_lambda: bool = True
    per_sample: bool = True
    p: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_number("CutMix", "alpha", self.alpha, 0.0, 1e3, lo_open=True))
        _check_bool("CutMix", "correct_lambda", self.correct_lambda)
        _check_bool("CutMix", "per_sample", self.per_sample)
        self._validate_p()

    def draws(self) -> dict[str, Distribution]:
        ps = self.per_sample
        return {
            "lam": Beta(a=self.alpha, b=self.alpha, per_sample=ps),
            "centre_y": Uniform(low=0.0, high=1.0, per_sample=ps),
            "centre_x": Uniform(low=0.0, high=1.0, per_sample=ps),
            "partner": Permutation(),
        }

    def box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any, Any, Any]:
        cut = B.sqrt(1.0 - params["lam"])
        y0, y1 = box_edges(B, params["centre_y"], cut * ctx.height, ctx.height)
        x0, x1 = box_edges(B, params["centre_x"], cut * ctx.width, ctx.width)
        return y0, y1, x0, x1

    def paste_box(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, ...]:
        y0, y1, x0, x1 = self.box(B, params, ctx)
        if self.correct_lambda:
            lw = (y1 - y0) * (x1 - x0) * (1.0 / (ctx.height * ctx.width))
        else:
            lw = 1.0 - params["lam"]
        return y0, y1, x0, x1, lw

    def mix(self, B: Any, params: Mapping[str, Any], ctx: Context) -> tuple[Any, Any]:
        y0, y1, x0, x1, lw = self.paste_box(B, params, ctx)
        return B.cast(box_mask(B, y0, y1, x0, x1, ctx), "float32"), lw
