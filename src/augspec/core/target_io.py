"""The door of the targets: what a call takes (``run(images, labels, masks=..., boxes=...,
keypoints=...)`` or a dict), checked and made into ``Targets``, and what it gives back, in
the caller's forms and formats (docs/targets.md).

- ``masks``: integer class maps (N, H, W) (one image: (H, W)), or float soft masks
  (N, C, H, W) or (N, H, W, C) (the axes matching the images' height and width say
  which); a list of (H_i, W_i) maps beside a list of images of different sizes.
- ``boxes``: a list of N (M_i, 4) arrays (read on the host), or padded (N, M, 4) with
  ``box_valid`` (N, M) bool (all valid when absent): stays on the device. ``box_format``
  ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``, ``normalized`` coordinates in [0, 1] of the
  width and height; ``box_labels`` alike ((M_i,) or (N, M) integers).
- ``keypoints``: (N, K, 2) ``(x, y)`` pixels (or a list of (K_i, 2)), ``keypoint_visible``
  (N, K) bool (all visible when absent).

Out: the same names, forms and formats. Padded boxes come back with ``box_valid`` (the
slots grow where a mix appends the partner's boxes); listed boxes as lists of the kept
ones. Keypoints keep their slots and come back with ``keypoint_visible``. Where the
pipeline mixes, ``box_weights`` say each box's share (MixUp's lambda).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError, InputTypeError
from .targets import BOX_FORMATS, DICT_KEYS, TARGET_NAMES, TargetRules, Targets

_INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-2 ** 15, 2 ** 15 - 1), "uint16": (0, 2 ** 16 - 1),
              "int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1), "uint32": (0, 2 ** 32 - 1)}


@dataclass
class Request:
    """A call with targets: the images, labels and sizes, the targets by their canonical
    names, and how to answer (``keys``: canonical name -> the caller's key in a dict call,
    None for keyword arguments)."""

    images: Any
    labels: Any
    sizes: Any
    raw: dict[str, Any]
    keys: dict[str, str] | None
    box_format: str = "xyxy"
    normalized: bool = False

    def answer(self, images: Any, labels: Any, targets: dict[str, Any]) -> dict[str, Any]:
        out = {"images": images}
        if self.labels is not None:
            out["labels"] = labels
        out.update(targets)
        if self.keys is None:
            return out
        return {self.keys.get(k, k): v for k, v in out.items()}


def parse(images: Any, labels: Any, sizes: Any, kwargs: Mapping[str, Any]) -> Request | None:
    """The call's targets, or None for a plain call (no dict, no target keywords)."""
    opts = dict(kwargs)
    fmt = opts.pop("box_format", "xyxy")
    normalized = opts.pop("normalized", False)
    if fmt not in BOX_FORMATS:
        raise InputError(f"box_format must be one of {list(BOX_FORMATS)}, got {fmt!r}")
    if not isinstance(normalized, bool):
        raise InputTypeError(f"normalized must be True or False, got {normalized!r}")
    bad = sorted(set(opts) - set(TARGET_NAMES))
    if bad:
        raise InputTypeError(f"unknown keyword arguments {bad}; targets are {list(TARGET_NAMES)} (and box_format, "
                             "normalized)")
    if isinstance(images, Mapping):
        if labels is not None or opts:
            raise InputTypeError("a dict call carries everything in the dict: give labels and targets as its keys")
        keys: dict[str, str] = {}
        raw: dict[str, Any] = {}
        for k, v in images.items():
            name = DICT_KEYS.get(k)
            if name is None:
                raise InputError(f"unknown key {k!r} in the dict; use {sorted(DICT_KEYS)}")
            if name in keys:
                raise InputError(f"the dict has both {keys[name]!r} and {k!r}")
            keys[name] = k
            raw[name] = v
        if "images" not in raw:
            raise InputError("the dict has no images: give them as 'image' (or 'images')")
        imgs, lab, sz = raw.pop("images"), raw.pop("labels", None), raw.pop("sizes", sizes)
        raw = {k: v for k, v in raw.items() if v is not None}
        return Request(imgs, lab, sz, raw, keys, fmt, normalized)
    raw = {k: v for k, v in opts.items() if v is not None}
    if not raw:
        return None
    return Request(images, labels, sizes, raw, None, fmt, normalized)


@dataclass
class Door:
    """How the targets came in, so they go out the same way."""

    single: bool = False
    mask_dtype: str | None = None
    mask_layout: str | None = None  # soft masks: "NCHW" or "NHWC"
    boxes_listed: bool = False
    labels: bool = False
    points_listed: bool = False
    counts: list[int] = field(default_factory=list)
    points_counts: list[int] = field(default_factory=list)
    mixes: bool = False


def _array(B: Any, v: Any, what: str) -> Any:
    try:
        return B.as_labels(v)
    except Exception as e:
        raise InputTypeError(f"{what}: cannot read as an array ({e})") from None


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _host(B: Any, v: Any) -> np.ndarray:
    return np.asarray(B.to_numpy(v) if B.is_array(v) else v)


def _padded(B: Any, items: Any, n: int, width: int | None, what: str, dtype: str) -> tuple[Any, Any, list[int]]:
    """A list of N per-image arrays ((M_i, width) or (M_i,)) as one padded array and its
    validity, read on the host."""
    if len(items) != n:
        raise InputError(f"{what}: {len(items)} entries for {n} images")
    arrs = []
    for i, v in enumerate(items):
        a = _host(B, v)
        if a.size == 0:
            a = a.reshape((0, width) if width else (0,))
        if (width and (a.ndim != 2 or a.shape[1] != width)) or (not width and a.ndim != 1):
            raise InputError(f"{what}[{i}] must be {f'(M, {width})' if width else '(M,)'}, got shape {a.shape}")
        arrs.append(a)
    counts = [len(a) for a in arrs]
    m = max(counts, default=0)
    out = np.zeros((n, m, width) if width else (n, m), np.float32 if dtype == "float32" else np.int64)
    valid = np.zeros((n, m), bool)
    for i, a in enumerate(arrs):
        out[i, : len(a)] = a
        valid[i, : len(a)] = True
    return B.asarray(out, dtype), B.asarray(valid), counts


def _check_shape(got: tuple, want: tuple, what: str) -> None:
    if len(got) != len(want) or any(isinstance(g, int) and isinstance(w, int) and g != w
                                    for g, w in zip(got, want) if w is not None):
        raise InputError(f"{what} must have shape {tuple('?' if w is None else w for w in want)}, got {got}")


def read(B: Any, req: Request, n: Any, h: Any, w: Any, single: bool, sizes: Any, rules: TargetRules,
         ctx_h: Any, ctx_w: Any) -> tuple[Targets, Door]:
    """``req``'s targets as ``Targets`` for a batch of ``n`` images of ``h`` x ``w`` (the
    padded size where ``sizes`` (N, 2) gives each image's; ``ctx_h``/``ctx_w``: the sizes
    the core uses, numbers or (N,) arrays, for normalised boxes)."""
    t, door = Targets(), Door(single=single)
    raw = req.raw
    if "masks" in raw:
        t.mask, t.soft, door.mask_dtype, door.mask_layout = _read_mask(B, raw["masks"], n, h, w, single, sizes, rules)
    if "boxes" in raw:
        boxes = raw["boxes"]
        if single:
            boxes = [boxes]
        if _is_list(boxes):
            t.boxes, t.valid, door.counts = _padded(B, boxes, n, 4, "boxes", "float32")
            door.boxes_listed = True
        else:
            t.boxes = B.cast(_array(B, boxes, "boxes"), "float32")
            shape = B.shape(t.boxes)
            _check_shape(shape, (n, None, 4), "boxes")
            t.valid = _flags(B, raw.get("box_valid"), "box_valid", (n, shape[1]))
        t.boxes = _to_xyxy(B, t.boxes, req.box_format, req.normalized, ctx_h, ctx_w)
        t.weights = B.ones(B.shape(t.valid), "float32")
        if "box_labels" in raw:
            lab = raw["box_labels"]
            if single:
                lab = [lab]
            if door.boxes_listed:
                if not _is_list(lab):
                    raise InputError("box_labels must be a list (one array per image) when boxes are a list")
                t.labels, _, counts = _padded(B, lab, n, None, "box_labels", "int64")
                if counts != door.counts:
                    raise InputError(f"box_labels has {counts} labels per image for {door.counts} boxes")
            else:
                t.labels = B.cast(_array(B, lab, "box_labels"), "int64")
                _check_shape(B.shape(t.labels), B.shape(t.valid), "box_labels")
            door.labels = True
    elif "box_labels" in raw or "box_valid" in raw:
        raise InputError("box_labels and box_valid need boxes")
    if "keypoints" in raw:
        pts = raw["keypoints"]
        if single:
            pts = [pts]
        if _is_list(pts):
            t.points, t.visible, door.points_counts = _padded(B, pts, n, 2, "keypoints", "float32")
            door.points_listed = True
            if "keypoint_visible" in raw:
                vis = raw["keypoint_visible"]
                vis, _, c = _padded(B, [vis] if single else vis, n, None, "keypoint_visible", "int64")
                if c != door.points_counts:
                    raise InputError(f"keypoint_visible has {c} entries per image for {door.points_counts} keypoints")
                t.visible = t.visible & (vis != 0)
        else:
            t.points = B.cast(_array(B, pts, "keypoints"), "float32")
            _check_shape(B.shape(t.points), (n, None, 2), "keypoints")
            k = B.shape(t.points)[1]
            t.visible = _flags(B, raw.get("keypoint_visible"), "keypoint_visible", (n, k))
    elif "keypoint_visible" in raw:
        raise InputError("keypoint_visible needs keypoints")
    return t, door


def _flags(B: Any, v: Any, what: str, shape: tuple[Any, Any]) -> Any:
    """The (N, M) bool array ``v`` checked against ``shape``, or all True where absent."""
    if v is None:
        return B.ones(shape, "float32") > 0.0
    v = _array(B, v, what)
    _check_shape(B.shape(v), shape, what)
    if B.dtype_name(v) != "bool":
        raise InputTypeError(f"{what} must be bool, got {B.dtype_name(v)}")
    return v


def _read_mask(B: Any, m: Any, n: Any, h: Any, w: Any, single: bool, sizes: Any, rules: TargetRules
               ) -> tuple[Any, bool, str, str | None]:
    if _is_list(m) and not single:
        if sizes is None:
            m = B.stack([_array(B, v, "masks") for v in m], axis=0) if len(m) else m
        else:
            return _read_mask_list(B, m, n, sizes, rules)
    m = _array(B, m, "masks")
    if single:
        m = B.reshape(m, (1, *B.shape(m)))
    shape = B.shape(m)
    dt = B.dtype_name(m)
    if len(shape) == 3:
        _check_ids(dt, rules)
        _check_shape(shape, (n, h, w), "masks (class ids)")
        return B.from_nhwc(B.reshape(B.cast(m, "float32"), (*shape, 1))), False, dt, None
    if len(shape) != 4:
        raise InputError(f"masks must be class ids (N, H, W) or soft masks (N, C, H, W), got shape {shape}")
    if not dt.startswith("float") and dt != "bfloat16":
        raise InputTypeError(f"soft masks (4-D) must be floats, got {dt}; class ids are (N, H, W)")
    nchw = tuple(shape[2:]) == (h, w)
    nhwc = tuple(shape[1:3]) == (h, w)
    if not (nchw or nhwc):
        raise InputError(f"soft masks must be (N, C, H, W) or (N, H, W, C) with the images' (H, W) = {(h, w)}, "
                         f"got shape {shape}")
    given = B.layout if (nchw and nhwc) else ("NCHW" if nchw else "NHWC")
    x = B.cast(m, "float32")
    if given != B.layout:
        x = B.transpose(x, (0, 2, 3, 1) if given == "NCHW" else (0, 3, 1, 2))
    return x, True, dt, given


def _read_mask_list(B: Any, items: Any, n: Any, sizes: Any, rules: TargetRules) -> tuple[Any, bool, str, None]:
    if len(items) != n:
        raise InputError(f"masks: {len(items)} masks for {n} images")
    arrs = [_array(B, v, "masks") for v in items]
    dts = {B.dtype_name(a) for a in arrs}
    if len(dts) != 1:
        raise InputTypeError(f"masks: one dtype for all, got {sorted(dts)}")
    dt = dts.pop()
    _check_ids(dt, rules)
    sz = np.asarray(sizes)
    for i, a in enumerate(arrs):
        if len(B.shape(a)) != 3 - 1 or tuple(B.shape(a)) != tuple(int(v) for v in sz[i]):
            raise InputError(f"masks[{i}] must be (H, W) = {tuple(int(v) for v in sz[i])} (its image's), "
                             f"got shape {B.shape(a)}")
    one = [B.reshape(B.cast(a, "float32"), (*B.shape(a), 1) if B.layout == "NHWC" else (1, *B.shape(a)))
           for a in arrs]
    x, _ = B.pack_images(one)
    return x, False, dt, None


def _check_ids(dt: str, rules: TargetRules) -> None:
    if dt not in _INT_RANGE:
        raise InputTypeError(f"class-id masks must be integers (uint8, int16, int32, int64...), got {dt}; "
                             "soft masks are float (N, C, H, W)")
    lo, hi = _INT_RANGE[dt]
    if not lo <= rules.ignore_index <= hi:
        raise InputError(f"ignore_index={rules.ignore_index} does not fit masks of dtype {dt} ([{lo}, {hi}]); give "
                         "another (compile(..., targets={'ignore_index': ...})) or a wider dtype")


def _col(B: Any, v: Any) -> Any:
    return v if isinstance(v, (int, float)) else B.reshape(B.cast(v, "float32"), (-1, 1))


def _to_xyxy(B: Any, b: Any, fmt: str, normalized: bool, h: Any, w: Any) -> Any:
    a0, a1, a2, a3 = (b[..., k] for k in range(4))
    if normalized:
        sw, sh = _col(B, w), _col(B, h)
        a0, a1, a2, a3 = a0 * sw, a1 * sh, a2 * sw, a3 * sh
    if fmt == "xywh":
        a2, a3 = a0 + a2, a1 + a3
    elif fmt == "cxcywh":
        a0, a1, a2, a3 = a0 - 0.5 * a2, a1 - 0.5 * a3, a0 + 0.5 * a2, a1 + 0.5 * a3
    return B.stack([a0, a1, a2, a3], axis=-1)


def _from_xyxy(B: Any, b: Any, fmt: str, normalized: bool, h: Any, w: Any) -> Any:
    x0, y0, x1, y1 = (b[..., k] for k in range(4))
    if fmt == "xywh":
        x1, y1 = x1 - x0, y1 - y0
    elif fmt == "cxcywh":
        x0, y0, x1, y1 = 0.5 * (x0 + x1), 0.5 * (y0 + y1), x1 - x0, y1 - y0
    if normalized:
        sw, sh = 1.0 / float(w), 1.0 / float(h)
        x0, y0, x1, y1 = x0 * sw, y0 * sh, x1 * sw, y1 * sh
    return B.stack([x0, y0, x1, y1], axis=-1)


def write(B: Any, t: Targets, door: Door, req: Request, oh: Any, ow: Any) -> dict[str, Any]:
    """``t`` in the caller's forms (names as ``TARGET_NAMES``; ``answer`` renames them)."""
    out: dict[str, Any] = {}
    strip = (lambda v: B.reshape(v, B.shape(v)[1:])) if door.single else (lambda v: v)
    if t.mask is not None:
        if t.soft:
            m = t.mask if door.mask_layout == B.layout else B.transpose(
                t.mask, (0, 3, 1, 2) if B.layout == "NHWC" else (0, 2, 3, 1))
            m = B.cast(m, door.mask_dtype) if door.mask_dtype not in ("float32",) else m
        else:
            nhwc = B.to_nhwc(t.mask)
            m = B.cast(nhwc[..., 0], door.mask_dtype)
        out["masks"] = strip(m)
    if t.boxes is not None:
        boxes = _from_xyxy(B, t.boxes, req.box_format, req.normalized, oh, ow)
        boxes = B.where(t.valid[..., None], boxes, 0.0 * boxes) + 0.0  # + 0.0: no -0.0
        if door.boxes_listed:
            keep = np.asarray(B.to_numpy(t.valid))
            rows = [B.asarray(np.flatnonzero(keep[i]), "int64") for i in range(keep.shape[0])]
            out["boxes"] = [B.take(boxes[i], r) for i, r in enumerate(rows)]
            if door.labels:
                out["box_labels"] = [B.take(t.labels[i], r) for i, r in enumerate(rows)]
            if door.mixes:
                out["box_weights"] = [B.take(t.weights[i], r) for i, r in enumerate(rows)]
            if door.single:
                out = {k: (v[0] if k in ("boxes", "box_labels", "box_weights") else v) for k, v in out.items()}
        else:
            out["boxes"] = strip(boxes)
            out["box_valid"] = strip(t.valid)
            if door.labels:
                out["box_labels"] = strip(B.where(t.valid, t.labels, 0 * t.labels))
            if door.mixes:
                out["box_weights"] = strip(B.where(t.valid, t.weights, 0.0 * t.weights))
    if t.points is not None:
        if door.points_listed:
            counts = door.points_counts
            pts = [t.points[i, : counts[i]] for i in range(len(counts))]
            vis = [t.visible[i, : counts[i]] for i in range(len(counts))]
            out["keypoints"] = pts[0] if door.single else pts
            out["keypoint_visible"] = vis[0] if door.single else vis
        else:
            out["keypoints"] = strip(t.points)
            out["keypoint_visible"] = strip(t.visible)
    return out
