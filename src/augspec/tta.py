"""Test-time augmentation: a model run on a fixed, deterministic set of transforms
of each input, its responses averaged.

    tta = augspec.TTA(model, transforms=["identity", "hflip", TTA.shift(0, 2)], reduce="mean")
    y = tta(x)

- ``model``: a PyTorch ``nn.Module`` (inputs NCHW tensors by default) or a Keras model
  (inputs NHWC tensors or NumPy arrays); ``layout=`` overrides.
- ``transforms``: ``"identity"``, ``"hflip"``, ``"vflip"``, ``TTA.shift(dy, dx)``
  (a whole-pixel circular shift, ``roll``: rows down by dy, columns right by dx) and
  ``TTA.scale(s)`` (bilinear resize of H and W by ``s``, half-pixel centres).
- All transforms of a batch go through the model in ONE forward pass (the
  transformed copies concatenated along the batch axis; inputs of another size,
  from ``scale``, in one pass per size), split into chunks of at most ``max_batch``
  samples when given.
- Dense outputs (4-D, same spatial size as the model's input) are mapped back to
  the input's geometry before averaging: flips and shifts exactly (flip again,
  roll back), scales approximately (resized back, bilinear). Other outputs
  (logits, probabilities, embeddings) are averaged as they are.
- ``reduce="mean"``: the arithmetic mean; ``"gmean"``: the geometric mean
  ``exp(mean(log(max(y, 1e-12))))`` of probabilities (not renormalised).

Detection (``tta.detect(x)``): ``model(batch)`` returns one dict per image with
``"boxes"`` (M, 4) ``xyxy`` pixels, ``"scores"`` (M,) and ``"labels"`` (M,) (torchvision's
detection models do). Each transform's boxes are mapped back (flips mirrored, shifts
undone and clipped, scales divided by the resize's factors), then merged per image and
label: ``merge="wbf"`` (weighted box fusion: boxes of IoU > ``iou`` with a cluster's
fused box join it; the fused box is the score-weighted mean of its members, its score
the sum of their scores over the number of transforms, so a box seen by one view of
four scores a quarter) or ``merge="nms"`` (all views pooled, greedy non-maximum
suppression at ``iou``). The result is NumPy arrays, one dict per image.

The per-framework image ops are torch.flip / torch.roll / F.interpolate and
tf.reverse / tf.roll / tf.image.resize; nothing is drawn, so TTA is deterministic.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .core.errors import InputError, SpecError, SpecTypeError

__all__ = ["TTA", "TTATransform"]

_EPS = 1e-12


@dataclass(frozen=True)
class TTATransform:
    """One deterministic test-time transform: kind "identity", "hflip", "vflip", "shift" (dy, dx) or "scale" (s)."""

    kind: str
    dy: int = 0
    dx: int = 0
    s: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("identity", "hflip", "vflip", "shift", "scale"):
            raise SpecError(f"TTA: unknown transform {self.kind!r}; use identity, hflip, vflip, TTA.shift, TTA.scale")
        if self.kind == "shift" and (not isinstance(self.dy, int) or not isinstance(self.dx, int)
                                     or isinstance(self.dy, bool) or isinstance(self.dx, bool)):
            raise SpecTypeError(f"TTA.shift: dy and dx are whole pixels (int), got {self.dy!r}, {self.dx!r}")
        if self.kind == "scale" and not (0.05 <= float(self.s) <= 20.0):
            raise SpecError(f"TTA.scale: s={self.s!r} is outside [0.05, 20]")


def _as_transform(t: Any) -> TTATransform:
    if isinstance(t, TTATransform):
        return t
    if isinstance(t, str):
        if t in ("identity", "hflip", "vflip"):
            return TTATransform(t)
        raise SpecError(f"TTA: unknown transform {t!r}; use 'identity', 'hflip', 'vflip', TTA.shift(dy, dx), "
                        "TTA.scale(s)")
    raise SpecTypeError(f"TTA: a transform is a name or TTA.shift / TTA.scale, got {t!r}")


# ---------------------------------------------------------- framework ops


class _TorchOps:
    def __init__(self, layout: str):
        import torch
        import torch.nn.functional as F

        self.torch, self.F, self.layout = torch, F, layout
        self.h_axis, self.w_axis = (2, 3) if layout == "NCHW" else (1, 2)

    def asarray(self, x: Any) -> Any:
        return x if isinstance(x, self.torch.Tensor) else self.torch.as_tensor(x)

    def size(self, x: Any) -> tuple[int, int]:
        return int(x.shape[self.h_axis]), int(x.shape[self.w_axis])

    def flip(self, x: Any, axis: str) -> Any:
        return self.torch.flip(x, dims=(self.w_axis if axis == "w" else self.h_axis,))

    def roll(self, x: Any, dy: int, dx: int) -> Any:
        return self.torch.roll(x, shifts=(dy, dx), dims=(self.h_axis, self.w_axis))

    def resize(self, x: Any, hw: tuple[int, int]) -> Any:
        nchw = x if self.layout == "NCHW" else x.permute(0, 3, 1, 2)
        dt = nchw.dtype
        out = self.F.interpolate(nchw.float() if not dt.is_floating_point else nchw, size=hw, mode="bilinear",
                                 align_corners=False)
        out = out.to(dt) if dt.is_floating_point else out
        return out if self.layout == "NCHW" else out.permute(0, 2, 3, 1)

    def concat(self, xs: Sequence[Any]) -> Any:
        return self.torch.cat(list(xs), dim=0)

    def split(self, x: Any, n: int) -> list[Any]:
        return list(self.torch.split(x, n, dim=0))

    def reduce(self, ys: Sequence[Any], how: str) -> Any:
        st = self.torch.stack(list(ys), dim=0)
        if how == "mean":
            return st.mean(dim=0)
        return self.torch.exp(self.torch.log(st.clamp_min(_EPS)).mean(dim=0))

    def call(self, model: Callable, x: Any) -> Any:
        with self.torch.no_grad():
            return model(x)


class _TFOps:
    def __init__(self, layout: str):
        import tensorflow as tf

        self.tf, self.layout = tf, layout
        self.h_axis, self.w_axis = (2, 3) if layout == "NCHW" else (1, 2)

    def asarray(self, x: Any) -> Any:
        return self.tf.convert_to_tensor(x)

    def size(self, x: Any) -> tuple[int, int]:
        return int(x.shape[self.h_axis]), int(x.shape[self.w_axis])

    def flip(self, x: Any, axis: str) -> Any:
        return self.tf.reverse(x, axis=[self.w_axis if axis == "w" else self.h_axis])

    def roll(self, x: Any, dy: int, dx: int) -> Any:
        return self.tf.roll(x, shift=[dy, dx], axis=[self.h_axis, self.w_axis])

    def resize(self, x: Any, hw: tuple[int, int]) -> Any:
        tf = self.tf
        nhwc = x if self.layout == "NHWC" else tf.transpose(x, (0, 2, 3, 1))
        out = tf.cast(tf.image.resize(nhwc, hw, method="bilinear"), x.dtype if x.dtype.is_floating else tf.float32)
        return out if self.layout == "NHWC" else tf.transpose(out, (0, 3, 1, 2))

    def concat(self, xs: Sequence[Any]) -> Any:
        return self.tf.concat(list(xs), axis=0)

    def split(self, x: Any, n: int) -> list[Any]:
        total = int(x.shape[0])
        return [x[i:i + n] for i in range(0, total, n)]

    def reduce(self, ys: Sequence[Any], how: str) -> Any:
        st = self.tf.stack(list(ys), axis=0)
        if how == "mean":
            return self.tf.reduce_mean(st, axis=0)
        return self.tf.exp(self.tf.reduce_mean(self.tf.math.log(self.tf.maximum(st, _EPS)), axis=0))

    def call(self, model: Callable, x: Any) -> Any:
        try:
            return model(x, training=False)
        except TypeError:
            return model(x)


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


# ---------------------------------------------------------------- TTA


class TTA:
    """``TTA(model, transforms, reduce="mean", max_batch=None, dense="auto", layout=None)``:
    ``tta(x)`` is the reduced response of ``model`` over the transforms of ``x`` (see the
    module docstring). ``dense``: True, False, or "auto" (a 4-D output with the input's
    spatial size is dense)."""

    def __init__(self, model: Callable[..., Any], transforms: Sequence[Any] = ("identity", "hflip"),
                 reduce: str = "mean", *, max_batch: int | None = None, dense: bool | str = "auto",
                 layout: str | None = None):
        if not callable(model):
            raise SpecTypeError(f"TTA: model must be callable (a torch nn.Module or a Keras model), got {model!r}")
        if reduce not in ("mean", "gmean"):
            raise SpecError(f"TTA: reduce={reduce!r} is not 'mean' or 'gmean'")
        if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
            raise SpecError(f"TTA: max_batch must be a positive integer or None, got {max_batch!r}")
        if dense not in (True, False, "auto"):
            raise SpecError(f"TTA: dense must be True, False or 'auto', got {dense!r}")
        ts = [_as_transform(t) for t in transforms]
        if not ts:
            raise SpecError("TTA: transforms must not be empty")
        self.model = model
        self.transforms = tuple(ts)
        self.reduce = reduce
        self.max_batch = max_batch
        self.dense = dense
        self.framework = "torch" if _is_torch_module(model) else "tensorflow"
        self.layout = layout or ("NCHW" if self.framework == "torch" else "NHWC")
        if self.layout not in ("NCHW", "NHWC"):
            raise SpecError(f"TTA: layout={layout!r} is not 'NCHW' or 'NHWC'")
        self._ops: Any = None

    @staticmethod
    def shift(dy: int, dx: int) -> TTATransform:
        """A whole-pixel circular shift: rows down by ``dy``, columns right by ``dx``."""
        return TTATransform("shift", dy=dy, dx=dx)

    @staticmethod
    def scale(s: float) -> TTATransform:
        """A bilinear resize of H and W by ``s`` (rounded to whole pixels)."""
        return TTATransform("scale", s=float(s))

    def _backend(self) -> Any:
        if self._ops is None:
            self._ops = _TorchOps(self.layout) if self.framework == "torch" else _TFOps(self.layout)
        return self._ops

    def forward_transform(self, x: Any, t: TTATransform) -> Any:
        """``t`` applied to a batch ``x``."""
        ops = self._backend()
        if t.kind == "hflip":
            return ops.flip(x, "w")
        if t.kind == "vflip":
            return ops.flip(x, "h")
        if t.kind == "shift":
            return ops.roll(x, t.dy, t.dx)
        if t.kind == "scale":
            h, w = ops.size(x)
            return ops.resize(x, (max(1, round(h * t.s)), max(1, round(w * t.s))))
        return x

    def inverse_transform(self, y: Any, t: TTATransform, hw: tuple[int, int]) -> Any:
        """A dense output of ``t(x)`` mapped back to ``x``'s geometry (size ``hw``)."""
        ops = self._backend()
        if t.kind in ("hflip", "vflip"):
            return self.forward_transform(y, t)
        if t.kind == "shift":
            return ops.roll(y, -t.dy, -t.dx)
        if t.kind == "scale":
            return ops.resize(y, hw)
        return y

    def _forward(self, x: Any) -> Any:
        ops = self._backend()
        n = int(x.shape[0])
        if self.max_batch is None or n <= self.max_batch:
            return ops.call(self.model, x)
        outs = [ops.call(self.model, part) for part in ops.split(x, self.max_batch)]
        return ops.concat(outs)

    def __call__(self, x: Any) -> Any:
        ops = self._backend()
        x = ops.asarray(x)
        if len(x.shape) != 4:
            raise InputError(f"TTA: inputs must be a batch of images (4-D, {self.layout}), got shape {tuple(x.shape)}")
        n = int(x.shape[0])
        hw = ops.size(x)
        inputs = [self.forward_transform(x, t) for t in self.transforms]
        # one forward pass per input size: all same-size transforms of the batch together
        groups: dict[tuple[int, int], list[int]] = {}
        for i, xi in enumerate(inputs):
            groups.setdefault(ops.size(xi), []).append(i)
        outs: list[Any] = [None] * len(inputs)
        for idx in groups.values():
            y = self._forward(ops.concat([inputs[i] for i in idx]) if len(idx) > 1 else inputs[idx[0]])
            if not hasattr(y, "shape") or int(y.shape[0]) != n * len(idx):
                raise InputError("TTA: the model must return one array with the batch on its first axis, got "
                                 f"{type(y).__name__}")
            parts = ops.split(y, n) if len(idx) > 1 else [y]
            for i, part in zip(idx, parts):
                outs[i] = part
        results = []
        for t, y, xi in zip(self.transforms, outs, inputs):
            if self._is_dense(y, ops.size(xi)):
                y = self.inverse_transform(y, t, hw)
            elif t.kind != "identity" and self.dense is True:
                raise InputError(f"TTA: dense=True but the output of {t.kind} has shape {tuple(y.shape)}, "
                                 f"not the input's spatial size")
            results.append(y)
        return results[0] if len(results) == 1 else ops.reduce(results, self.reduce)

    def detect(self, x: Any, *, merge: str = "wbf", iou: float = 0.55) -> list[dict[str, Any]]:
        """Boxes of a detection model over the transforms, mapped back and merged (see the module
        notes): one dict of NumPy ``boxes``, ``scores``, ``labels`` per image."""
        import numpy as np

        if merge not in ("wbf", "nms"):
            raise SpecError(f"TTA.detect: merge={merge!r} is not 'wbf' or 'nms'")
        if not 0.0 < float(iou) < 1.0:
            raise SpecError(f"TTA.detect: iou={iou!r} is outside (0, 1)")
        ops = self._backend()
        x = ops.asarray(x)
        if len(x.shape) != 4:
            raise InputError(f"TTA: inputs must be a batch of images (4-D, {self.layout}), got shape {tuple(x.shape)}")
        n = int(x.shape[0])
        h, w = ops.size(x)
        views: list[list[tuple[Any, Any, Any]]] = [[] for _ in range(n)]
        for t in self.transforms:
            xi = self.forward_transform(x, t)
            hi, wi = ops.size(xi)
            out = self.model(xi)
            if not isinstance(out, (list, tuple)) or len(out) != n:
                raise InputError("TTA.detect: the model must return one dict (boxes, scores, labels) per image, "
                                 f"got {type(out).__name__}")
            for k, d in enumerate(out):
                try:
                    b, sc, lb = (np.asarray(_host(d[key]), np.float64) for key in ("boxes", "scores", "labels"))
                except (KeyError, TypeError):
                    raise InputError("TTA.detect: each image's output must be a dict with boxes, scores, labels") \
                        from None
                views[k].append((_boxes_back(b.reshape(-1, 4), t, (h, w), (hi, wi)), sc.reshape(-1),
                                 lb.reshape(-1).astype(np.int64)))
        merged = _wbf if merge == "wbf" else _nms
        return [merged(v, float(iou), len(self.transforms)) for v in views]

    def _is_dense(self, y: Any, in_hw: tuple[int, int]) -> bool:
        if self.dense is False or len(y.shape) != 4:
            return False
        return self._backend().size(y) == in_hw

    def __repr__(self) -> str:
        names = [t.kind if t.kind in ("identity", "hflip", "vflip") else
                 (f"shift({t.dy}, {t.dx})" if t.kind == "shift" else f"scale({t.s})") for t in self.transforms]
        return f"TTA({type(self.model).__name__}, transforms={names}, reduce={self.reduce!r})"


# ------------------------------------------------------------------ detection
def _host(v: Any) -> Any:
    """An array on the host (a torch tensor detached and moved, a TF tensor as NumPy)."""
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return v.numpy() if hasattr(v, "numpy") else v


def _boxes_back(b: Any, t: TTATransform, hw: tuple[int, int], thw: tuple[int, int]) -> Any:
    """Boxes found in ``t(x)`` (size ``thw``) in ``x``'s frame (size ``hw``)."""
    import numpy as np

    h, w = hw
    b = b.copy()
    if t.kind == "hflip":
        b[:, [0, 2]] = w - b[:, [2, 0]]
    elif t.kind == "vflip":
        b[:, [1, 3]] = h - b[:, [3, 1]]
    elif t.kind == "shift":
        b[:, [0, 2]] -= t.dx
        b[:, [1, 3]] -= t.dy
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    elif t.kind == "scale":
        b[:, [0, 2]] *= w / thw[1]
        b[:, [1, 3]] *= h / thw[0]
    return b


def _iou(a: Any, b: Any) -> Any:
    """IoU of one box ``a`` (4,) with boxes ``b`` (M, 4)."""
    import numpy as np

    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def _pooled(views: list[tuple[Any, Any, Any]]) -> tuple[Any, Any, Any]:
    import numpy as np

    return (np.concatenate([v[0] for v in views]) if views else np.zeros((0, 4)),
            np.concatenate([v[1] for v in views]) if views else np.zeros(0),
            np.concatenate([v[2] for v in views]) if views else np.zeros(0, np.int64))


def _result(boxes: list, scores: list, labels: list) -> dict[str, Any]:
    import numpy as np

    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4)[order],
            "scores": np.asarray(scores, np.float32)[order], "labels": np.asarray(labels, np.int64)[order]}


def _wbf(views: list[tuple[Any, Any, Any]], thr: float, n_views: int) -> dict[str, Any]:
    """Weighted box fusion per label (see the module notes)."""
    import numpy as np

    b, s, lab = _pooled(views)
    out_b, out_s, out_l = [], [], []
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        idx = idx[np.argsort(-s[idx], kind="stable")]
        fused: list[Any] = []
        members: list[list[int]] = []
        for i in idx:
            j = -1
            if fused:
                ious = _iou(b[i], np.asarray(fused))
                j = int(np.argmax(ious)) if ious.max() > thr else -1
            if j < 0:
                fused.append(b[i].copy())
                members.append([i])
            else:
                members[j].append(i)
                m = members[j]
                fused[j] = (s[m, None] * b[m]).sum(0) / s[m].sum()
        for f, m in zip(fused, members):
            out_b.append(f)
            out_s.append(s[m].sum() / max(n_views, len(m)))
            out_l.append(c)
    return _result(out_b, out_s, out_l)


def _nms(views: list[tuple[Any, Any, Any]], thr: float, n_views: int) -> dict[str, Any]:
    """Greedy non-maximum suppression per label over the pooled views."""
    import numpy as np

    b, s, lab = _pooled(views)
    keep = []
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        idx = idx[np.argsort(-s[idx], kind="stable")]
        while idx.size:
            i, idx = idx[0], idx[1:]
            keep.append(i)
            idx = idx[_iou(b[i], b[idx]) <= thr] if idx.size else idx
    return _result([b[i] for i in keep], [s[i] for i in keep], [lab[i] for i in keep])
