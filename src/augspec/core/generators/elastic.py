"""``elastic``: Simard-style synthetic variants of the batch's real samples.

For each image to make, of class ``c``, a real sample of the batch (one that is not being
replaced) is picked: uniformly among those whose label gives ``c`` a weight above 1/2,
else, where the batch has none of class ``c``, uniformly among all of them; the image is
that sample deformed by a random smooth displacement field (``ElasticTransform``'s field:
uniform noise in [-1, 1), smoothed by a Gaussian of ``sigma`` pixels, times ``alpha / 2``
pixels; Simard et al. 2003), bilinear, reading ``fill`` outside the image. Its label is
the picked sample's label, so labels stay right whichever sample was picked. A batch with
no real sample left (every one replaced) gives the fill image and the class's one-hot
label.

The pick is a keyed uniform score per (image, real sample), the largest winning
(``row_argmax``); the field's uniforms are keyed too, so the variants are the same on
every backend (the warp to float32 rounding, as ``ElasticTransform``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SpecError
from ..ops.elastic import ElasticTransform, blur_matrix
from ..resample import warp
from ..synthetic import Generator, RealBatch, keyed_uniforms, row_argmax


class Elastic(Generator):
    """Elastic variants of real samples of the target class (see the module notes):
    ``alpha`` the displacement's strength and ``sigma`` its smoothness (pixels), as
    ``ElasticTransform``; ``fill`` what points outside the image read."""

    name = "elastic"
    version = "1"
    reads_batch = True

    def __init__(self, alpha: float = 34.0, sigma: float = 4.0, fill: float = 0.0):
        try:
            self.op = ElasticTransform(alpha=alpha, sigma=sigma, fill=fill)
        except (SpecError, TypeError) as e:
            raise SpecError(f"elastic: {e}") from None
        self.alpha, self.sigma, self.fill = self.op.alpha, self.op.sigma, self.op.fill

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "sigma": self.sigma, "fill": self.fill[0] if len(self.fill) == 1 else self.fill}

    def prepare(self, shape: tuple[int, int, int], num_classes: int) -> None:
        if self.sigma > 0.0:
            blur_matrix(shape[0], self.sigma)
            blur_matrix(shape[1], self.sigma)

    def __call__(self, B: Any, labels: Any, key: Any, shape: tuple[int, int, int], num_classes: int,
                 real: RealBatch | None = None) -> Any:
        if real is None:
            raise SpecError("elastic: makes variants of real samples; it runs inside Synthetic (it reads the batch)")
        h, w, c = shape
        n = B.shape(labels)[0]
        nb = B.shape(real.x)[0]
        # the pick: a keyed score per real sample, matches of the class first
        u = keyed_uniforms(B, key, nb, stream=3)  # (n, nb)
        avail = B.reshape(B.cast(real.available, "float32"), (1, -1))
        one = B.one_hot(labels, num_classes)  # (n, K)
        if real.y is not None:
            match = B.cast(B.matmul(one, B.transpose(real.y, (1, 0))) > 0.5, "float32")  # (n, nb)
        else:
            match = 0.0 * u
        score = avail * (2.0 * match + 1.0 + u)  # 0 where not a real sample left
        pick = row_argmax(B, score)  # (n,)
        found = B.reshape(B.sum(avail, axis=1), (1,)) > 0.0
        src = B.take(real.x, pick)  # (n, H, W, C)
        field = B.reshape(keyed_uniforms(B, key, h * w * 2, stream=4), (-1, h, w, 2)) * 2.0 - 1.0
        from ..spec import Context

        disp = self.op.displacement(B, {"field": field}, Context(n, h, w, c))
        eye = B.broadcast_to(B.reshape(B.eye(3, "float32"), (1, 3, 3)), (n, 3, 3))
        out = B.to_nhwc(warp(B, B.from_nhwc(src), eye, (h, w), (h, w), "bilinear", self.fill, "constant",
                             displacement=disp))
        fill = B.reshape(B.asarray(np.asarray(self.fill, np.float32), "float32"), (1, 1, 1, -1))
        out = B.where(B.reshape(found, (1, 1, 1, 1)), B.clip(out, 0.0, 1.0), 0.0 * out + fill)
        if real.y is None:
            return out
        lab = B.take(real.y, pick)
        return out, B.where(B.reshape(found, (1, 1)), lab, one)
