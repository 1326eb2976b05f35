"""The backend conformance suite: ``check_backend``, one call that checks a backend
against the NumPy reference and the backend contract (``augspec.backends.base``).

The built-in backends' tests call it, and so does a third-party backend package::

    # tests/test_conformance.py of a package that ships a backend
    from augspec.testing import check_backend
    from my_backend import MyBackend

    def test_my_backend_conforms():
        check_backend(lambda layout: MyBackend(layout=layout), name="mine",
                      layouts=("NHWC",), dtypes=("uint8", "float32"))

``make_backend(layout)`` returns a fresh backend object (``Backend`` subclass or not,
registered or not): the suite compiles with ``pipeline.compile(backend_object)``.
Every check runs; the failures are gathered and raised as one ``AssertionError``
whose lines each name the backend, the check, the case (the op), the layout and
the dtype. On success it returns how many comparisons each check made.

The checks (``CHECKS``; pass a check's name in ``skip`` to leave it out):

- ``contract``: every required primitive of ``PRIMITIVES`` is implemented (not the
  base class's stub), the backend is a ``Primitives``, has a name and the layout.
- ``ops``: every registered op (``augspec.list_ops()``; a default instance of each,
  fitted through ``Pipeline.fit`` where it needs statistics, the containers wrapping
  simple ops) agrees with the NumPy reference on injected params: the params are
  drawn by the reference (``run_np.sample``), converted with the backend's
  ``asarray`` and applied by both; interior pixels of warps agree to 1e-4, every
  other value (labels too) to 1e-5 (absolute and relative); a uint8 result to one
  level. Every layout x dtype of the matrix.
- ``immutable``: the images, labels and params given to ``apply`` are unchanged after it.
- ``matrix``: per layout x dtype, the calling conventions: ``run(x, y)`` keeps the
  shape and has the reference's dtype (bounded and unbounded pipelines), one 3-D
  image gives a 3-D result equal to the reference's, ``training=False`` agrees.
- ``sizes``: an empty batch (shape, dtype and label shape as the reference's; every
  dtype), and 1x1, 3x5 and 7x2 images agree with the reference (float32, or the
  first dtype where float32 is not in ``dtypes``), every case and layout; a size
  the reference refuses (``InputError``: a crop larger than the image) the backend
  refuses too.
- ``batched``: applying a batch equals applying its samples one by one with the
  params sliced per sample (every case without a mix op; one dtype, as above).
- ``chunked``: where the backend chunks (its ``chunk_bytes`` is not None), a fresh
  backend with a tiny ``chunk_bytes`` gives what one with ``chunk_bytes = None``
  gives, for every case, layout and dtype.
- ``ragged``: for every case whose first ops fix the output size (crops, resizes),
  a list of images of different sizes (``RAGGED_SIZES``) agrees with the reference,
  and (cases without a mix op) each of its images applied alone with its params
  gives the same image: each sample is read inside its own size. Every layout,
  one dtype, and uint8.
- ``draws``: ``run.sample(n, shape)`` equals the NumPy reference's sample for the
  same seed and state (batches of 6, 1 and 0, and after ``set_state``), key by key,
  in shape and kind of dtype (bool, integer or float: a backend without 64-bit
  integers draws int32 indices); values derived from uniforms exactly, those
  derived from Beta, normal and other ``continuous`` draws to 1e-6 (transcendental functions differ by
  an ulp between libraries). Every case's ops are sampled as one pipeline.

- ``targets``: every case moves masks (class ids), padded boxes with labels and
  keypoints as the reference does, through ``run(x, y, masks=, boxes=, box_labels=,
  box_valid=, keypoints=)`` on fresh runs of one seed: masks, box validity, box
  labels and keypoint visibility equal; box and keypoint coordinates to 1e-3 pixels.
  Every layout, uint8.

Images are small (6 x 12 x 14 x 3) so that a whole run takes seconds on NumPy or
torch; a backend that traces once per input signature (TensorFlow, JAX) takes
minutes, and may pass fewer ``layouts``.

``skip`` also takes op names (``"mixup"``): every case holding that op is left out
of every check (a per-image backend skips the batch ops so, e.g.).
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CHECKS", "check_backend", "conformance_cases"]

#: the checks of ``check_backend``, in the order they run
CHECKS = ("contract", "ops", "immutable", "matrix", "sizes", "batched", "chunked", "ragged", "draws", "targets")

K = 10  # classes
N = 6  # images per batch
HWC = (12, 14, 3)  # the default image size
SIZES = ((1, 1), (3, 5), (7, 2))  # odd sizes (H, W), with C = 3
SEED = 7

#: tolerances: interior of warps, everything else; the floor for low-precision dtypes
_TOL = {"warp": 1e-4, "pixel": 1e-5}
_DTYPE_TOL = {"float16": 2e-3, "bfloat16": 1.6e-2}
_MAX_FAILURES_SHOWN = 60


@dataclass
class Case:
    """One pipeline of the suite: ``build(hwc)`` its ops (fitted for images of that
    size), ``kind`` ``"warp"`` (interior pixels compared at 1e-4) or ``"pixel"``."""

    id: str
    build: Callable[[tuple[int, int, int]], list[Any]]
    kind: str = "pixel"

    @property
    def ops(self) -> list[Any]:
        """The ops for the default image size (built once)."""
        if "_ops" not in self.__dict__:
            self.__dict__["_ops"] = self.build(HWC)
        return self.__dict__["_ops"]

    @property
    def names(self) -> set[str]:
        """Every op name in the case, containers and what they hold."""
        return _op_names(self.ops)


def _fit_data(hwc: tuple[int, int, int]) -> np.ndarray:
    return np.random.default_rng(1234).random((20, *hwc))


def _fitted(ops: Sequence[Any], hwc: tuple[int, int, int]) -> list[Any]:
    from .core.pipeline import Pipeline

    return list(Pipeline(list(ops)).fit(_fit_data(hwc)).ops)


def _builtin_cases() -> list[Case]:
    import augspec as aug

    def c(id: str, make: Callable[[], list[Any]], kind: str = "pixel") -> Case:
        return Case(id, lambda hwc: make(), kind)

    def fit(id: str, make: Callable[[], list[Any]]) -> Case:
        return Case(id, lambda hwc: _fitted(make(), hwc), "pixel")

    return [
        c("affine", lambda: [aug.Affine(rotate=30, translate=0.1, scale=0.2, shear=10, shear_y=(-5, 5))], "warp"),
        c("affine_nearest", lambda: [aug.Affine(rotate=20, scale=0.1, interpolation="nearest")], "warp"),
        c("affine_fill", lambda: [aug.Affine(rotate=25, translate=0.2, fill=(0.2, 0.5, 0.8), p=0.7)], "warp"),
        c("affine_edge", lambda: [aug.Affine(rotate=40, translate=0.4, scale=(0.4, 1.6), fill_mode="nearest")],
          "warp"),
        c("affine_reflect", lambda: [aug.Affine(rotate=40, translate=0.6, scale=(0.3, 1.6), fill_mode="reflect",
                                                p=0.8)], "warp"),
        c("horizontal_flip", lambda: [aug.HorizontalFlip(p=0.5)]),
        c("vertical_flip", lambda: [aug.VerticalFlip(p=0.5), aug.HorizontalFlip(p=1.0)]),
        c("flips_and_affine", lambda: [aug.Affine(rotate=10), aug.HorizontalFlip(), aug.VerticalFlip(p=0.3)],
          "warp"),
        c("keras_affine", lambda: [aug.KerasAffine(rotation=20, height_shift=0.1, width_shift=0.1, shear=10,
                                                   zoom_x=(0.8, 1.2))], "warp"),
        c("brightness", lambda: [aug.Brightness(0.4)]),
        c("contrast", lambda: [aug.Contrast(0.4, p=0.6)]),
        c("saturation", lambda: [aug.Saturation(0.4)]),
        c("hue", lambda: [aug.Hue(0.2)]),
        c("hue_hsv", lambda: [aug.Hue(0.2, mode="hsv")]),
        c("color_jitter", lambda: [aug.ColorJitter(0.4, 0.4, 0.4, 0.1)]),
        c("color_jitter_hsv", lambda: [aug.ColorJitter(0.4, 0.4, 0.4, 0.1, hue_mode="hsv", p=0.8)]),
        c("channel_shift", lambda: [aug.ChannelShift(0.1, p=0.8)]),
        c("gaussian_noise", lambda: [aug.GaussianNoise(std=(0.0, 0.1), p=0.5)]),
        c("rescale", lambda: [aug.Rescale(scale=2.0, offset=-1.0)]),
        c("normalize", lambda: [aug.Normalize()]),
        fit("standardize", lambda: [aug.Standardize(featurewise_center=True, featurewise_std=True,
                                                    samplewise_center=True, samplewise_std=True)]),
        fit("zca_whitening", lambda: [aug.Standardize(featurewise_center=True), aug.ZCAWhitening(epsilon=0.1)]),
        fit("keras_zca_whitening", lambda: [aug.Standardize(featurewise_center=True),
                                            aug.KerasZCAWhitening(epsilon=0.1)]),
        c("cutout", lambda: [aug.CutOut(holes=2, size=(0.2, 0.5), fill=(0.1, 0.2, 0.3))]),
        c("cutout_p", lambda: [aug.CutOut(holes=1, size=0.4, p=0.5)]),
        c("dropout", lambda: [aug.Dropout(rate=0.3, noise_shape=(None, 1, 1, None))]),
        c("dropout_pixels", lambda: [aug.Dropout(rate=0.2, p=0.7)]),
        c("mixup", lambda: [aug.MixUp(alpha=0.8)]),
        c("cutmix", lambda: [aug.CutMix(alpha=1.0)]),
        c("cutmix_batch", lambda: [aug.CutMix(alpha=1.0, per_sample=False, correct_lambda=False)]),
        c("label_smoothing", lambda: [aug.LabelSmoothing(0.1)]),
        c("one_of", lambda: [aug.OneOf([aug.Brightness(0.3), aug.HorizontalFlip(p=1.0), aug.CutOut(holes=1)])]),
        c("one_of_weighted", lambda: [aug.OneOf([aug.Affine(rotate=20), aug.Contrast(0.3)], weights=(1, 2), p=0.8)],
          "warp"),
        c("one_of_mix", lambda: [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)]),
        c("random_apply", lambda: [aug.RandomApply([aug.Brightness(0.3), aug.Affine(rotate=15)], p=0.5)], "warp"),
        c("random_apply_one", lambda: [aug.RandomApply(aug.GaussianNoise(0.05), p=0.5)]),
        c("resize", lambda: [aug.Resize((8, 20))], "warp"),
        c("resize_short_side", lambda: [aug.Resize(6)], "warp"),
        c("resize_plain", lambda: [aug.Resize((5, 23), antialias=False)], "warp"),
        c("resize_nearest", lambda: [aug.Resize((5, 9), interpolation="nearest")], "warp"),
        c("center_crop", lambda: [aug.CenterCrop((8, 16))]),
        c("random_crop", lambda: [aug.RandomCrop((10, 10), padding=2, fill_mode="reflect")]),
        c("random_crop_fill", lambda: [aug.RandomCrop(9, padding=(1, 3), fill=(0.2, 0.5, 0.8))]),
        c("random_crop_edge", lambda: [aug.RandomCrop((13, 16), pad_if_needed=True, fill_mode="nearest")]),
        c("pad", lambda: [aug.Pad((1, 2, 3, 4), fill=0.5)]),
        c("random_resized_crop", lambda: [aug.RandomResizedCrop((9, 11), scale=(0.2, 1.0)), aug.HorizontalFlip()],
          "warp"),
        c("random_resized_crop_affine", lambda: [aug.RandomResizedCrop(10), aug.Affine(rotate=20)], "warp"),
        c("synthetic_fractal", lambda: [aug.Synthetic("fractal", ratio=0.5), aug.HorizontalFlip(p=0.5)]),
        c("synthetic_exact", lambda: [aug.Brightness(0.3), aug.Synthetic("fractal", ratio=0.5, exact=True,
                                                                          class_weights=(1, 2, 3, 4, 0, 0, 1, 1, 1, 1))]),
        c("synthetic_sized", lambda: [aug.Synthetic("fractal", ratio=0.5, size=(5, 5)),
                                      aug.RandomResizedCrop((9, 11))], "warp"),
        c("synthetic_elastic", lambda: [aug.Synthetic("elastic", ratio=0.5, options={"alpha": 8.0, "sigma": 2.0}),
                                        aug.Contrast(0.3)], "warp"),
        c("mixed", lambda: [aug.Affine(rotate=15, translate=0.1, scale=(0.9, 1.1), shear=5),
                            aug.HorizontalFlip(p=0.5), aug.ColorJitter(0.4, 0.4, 0.4, 0.1),
                            aug.CutOut(holes=1, size=(0.1, 0.5)), aug.Normalize(),
                            aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], "warp"),
        c("mixed_sizes", lambda: [aug.RandomResizedCrop(10), aug.HorizontalFlip(), aug.ColorJitter(0.4, 0.4, 0.4),
                                  aug.Normalize(), aug.CutOut(holes=1, size=(0.14, 0.57), p=0.25),
                                  aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], "warp"),
    ]


#: the images of the ``ragged`` check: (H, W) of a batch of different sizes
RAGGED_SIZES = ((12, 14), (9, 17), (15, 8), (5, 5), (12, 14))


def _op_names(ops: Iterable[Any]) -> set[str]:
    """The names of the ops in ``ops``, containers and everything inside them."""
    out: set[str] = set()
    for op in ops:
        out.add(op.name)
        if op.family == "container":
            out |= _op_names(op.children)
    return out


def _has_family(ops: Iterable[Any], family: str) -> bool:
    return any(op.family == family or (op.family == "container" and _has_family(op.children, family)) for op in ops)


def _mixes(ops: Iterable[Any]) -> bool:
    """A case whose samples read other samples of the batch (a mix or tile op)."""
    return _has_family(ops, "mix") or _has_family(ops, "tile")


def _reads_batch(ops: Iterable[Any]) -> bool:
    """A Synthetic op whose samples depend on the batch: an exact count, or a generator that
    varies the batch's real samples."""
    return any(op.family == "synthetic" and (op.exact or op.source().reads_batch) for op in ops)


def conformance_cases() -> tuple[list[Case], list[str]]:
    """The cases of the suite: the built-in ones, plus a default instance of every other
    registered op (a plugin's), fitted if it needs statistics; and the names of the
    registered ops that could not be built with default arguments (left out)."""
    from .core.registry import list_ops
    from .core.spec import FitOp

    cases = _builtin_cases()
    covered = set().union(*(c.names for c in cases))
    unbuilt = []
    for info in list_ops():
        if info.name in covered:
            continue
        try:
            info.cls()
        except Exception:
            unbuilt.append(info.name)
            continue

        def build(hwc: tuple[int, int, int], cls: type = info.cls) -> list[Any]:
            op = cls()
            return _fitted([op], hwc) if isinstance(op, FitOp) else [op]

        cases.append(Case(info.name, build, "warp" if info.family == "geometric" else "pixel"))
    return cases, unbuilt


# ---------------------------------------------------------------- helpers


def _images(n: int, hwc: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """NHWC uint8 test images (the float dtypes are these / 255)."""
    return np.random.default_rng(seed).integers(0, 256, (n, *hwc), dtype=np.uint8)


def _labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, K, (n,)).astype(np.int64)


def _in_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """An NHWC batch in ``layout``."""
    return x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHWC":
        return x
    if x.ndim == 4:
        return x.transpose(0, 2, 3, 1)
    return np.moveaxis(x, 0, -1) if x.ndim == 3 else x


def _image_shape(hwc: tuple[int, int, int], layout: str) -> tuple[int, int, int]:
    h, w, c = hwc
    return (h, w, c) if layout == "NHWC" else (c, h, w)


def _np_dtype(dtype: str) -> Any:
    return np.float32 if dtype == "bfloat16" else np.dtype(dtype)


def _kind(a: np.ndarray) -> str:
    """bool, int or float: a backend without 64-bit types (JAX without x64) draws int32."""
    return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(a.dtype.kind, str(a.dtype))


class _Suite:
    def __init__(self, make_backend: Callable[[str], Any], name: str | None, layouts: Sequence[str],
                 dtypes: Sequence[str], skip: Iterable[str]):
        from .backends.numpy import NumpyBackend

        self.make_backend = make_backend
        self.layouts = tuple(layouts)
        self.dtypes = tuple(dtypes)
        if not self.layouts or not self.dtypes:
            raise ValueError("check_backend: layouts and dtypes must not be empty")
        self.backends = {lay: make_backend(lay) for lay in self.layouts}
        first = self.backends[self.layouts[0]]
        self.label = name or getattr(first, "name", "") or type(first).__name__
        self.refs = {lay: NumpyBackend(lay) for lay in self.layouts}
        all_cases, self.unbuilt = conformance_cases()
        skip = set(skip)
        op_names = {n for c in all_cases for n in c.names}
        bad = skip - set(CHECKS) - op_names - {c.id for c in all_cases}
        if bad:
            raise ValueError(f"check_backend: skip={sorted(bad)} names no check and no op; the checks are "
                             f"{list(CHECKS)}, the ops {sorted(op_names)}")
        self.skip_checks = skip & set(CHECKS)
        self.skip_ops = skip - set(CHECKS)
        self.cases = [c for c in all_cases if c.id not in skip and not (c.names & skip)]
        self.failures: list[str] = []
        self.counts = {check: 0 for check in CHECKS}
        self._built: dict[tuple[str, tuple[int, int, int]], list[Any]] = {}
        self._runs: dict[tuple, tuple[Any, Any, Any]] = {}

    # --------------------------------------------------------------- plumbing
    def where(self, check: str, case: str, layout: str | None = None, dtype: str | None = None) -> str:
        at = ", ".join(v for v in (layout, dtype) if v)
        return f"{self.label} backend, {check} check, {case}" + (f" ({at})" if at else "")

    def attempt(self, check: str, case: str, layout: str | None, dtype: str | None, fn: Callable[[str], Any]) -> Any:
        msg = self.where(check, case, layout, dtype)
        try:
            out = fn(msg)
        except AssertionError as e:
            self.failures.append(str(e) if str(e).startswith(msg) else f"{msg}: {e}")
            return None
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)
            at = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
            self.failures.append(f"{msg}: raised {type(e).__name__}: {e}{at}")
            return None
        self.counts[check] += 1
        return out

    def pipeline(self, case: Case, hwc: tuple[int, int, int] = HWC) -> Any:
        from .core.pipeline import Pipeline

        key = (case.id, hwc)
        if key not in self._built:
            self._built[key] = case.ops if hwc == HWC else case.build(hwc)
        return Pipeline(self._built[key], num_classes=K, seed=SEED)

    def runs(self, case: Case, layout: str, hwc: tuple[int, int, int] = HWC, B: Any = None) -> tuple[Any, Any]:
        """(reference run, backend run) of a case, compiled once and reused: a backend that
        traces (TensorFlow, JAX) then traces once per input signature, not once per call.
        For ``apply``, which leaves the step alone, and calls made on both in step."""
        B = B if B is not None else self.backends[layout]
        key = (case.id, hwc, layout, id(B))
        hit = self._runs.get(key)
        if hit is None:
            pipe = self.pipeline(case, hwc)
            hit = self._runs[key] = (pipe.compile(self.refs[layout]), pipe.compile(B), B)  # B: keeps its id taken
        return hit[0], hit[1]

    def to_backend(self, B: Any, a: np.ndarray, dtype: str | None = None) -> Any:
        if dtype == "bfloat16":
            return B.cast(B.asarray(np.array(a, np.float32)), "bfloat16")
        return B.asarray(np.array(a, copy=True, order="C"))  # a copy: what the backend gets is its own

    def to_numpy(self, B: Any, v: Any) -> np.ndarray:
        if B.dtype_name(v) == "bfloat16":
            v = B.cast(v, "float32")
        return np.asarray(B.to_numpy(v))

    def inputs(self, B: Any, n: int, hwc: tuple[int, int, int], layout: str, dtype: str, seed: int = 0):
        """(backend images, backend labels, reference images, reference labels): the same
        values (bfloat16 images: the reference gets their float32 values)."""
        u8 = _in_layout(_images(n, hwc, seed), layout)
        x = u8 if dtype == "uint8" else (u8.astype(np.float32) / np.float32(255.0)).astype(_np_dtype(dtype))
        y = _labels(n, seed)
        xb = self.to_backend(B, x, dtype)
        if dtype == "bfloat16":
            x = self.to_numpy(B, xb)
        return xb, self.to_backend(B, y), x, y

    def params_to(self, B: Any, params: dict[str, Any]) -> dict[str, Any]:
        return {k: self.to_backend(B, np.asarray(v)) for k, v in params.items()}

    def compare(self, msg: str, got: np.ndarray, want: np.ndarray, kind: str, layout: str, dtype: str,
                what: str = "images") -> None:
        assert got.shape == want.shape, f"{msg}: {what} have shape {got.shape}, the reference's {want.shape}"
        if what == "images" and want.ndim >= 3:
            got, want = _to_nhwc(got, layout), _to_nhwc(want, layout)
            if kind == "warp":
                got, want = got[..., 1:-1, 1:-1, :], want[..., 1:-1, 1:-1, :]
        if want.dtype == np.uint8:
            assert got.dtype == np.uint8, f"{msg}: {what} are {got.dtype}, the reference's uint8"
            d = np.abs(got.astype(np.int32) - want.astype(np.int32))
            assert d.size == 0 or d.max() <= 1, (f"{msg}: {what}: {(d > 1).sum()} of {d.size} values differ by up "
                                                 f"to {d.max()} levels (1 allowed)")
            return
        tol = max(_TOL.get(kind, 1e-5) if what == "images" else 1e-5, _DTYPE_TOL.get(dtype, 0.0))
        a, b = got.astype(np.float64), want.astype(np.float64)
        err = np.abs(a - b)
        bad = ~(err <= tol + tol * np.abs(b)) & ~(np.isnan(a) & np.isnan(b))
        if bad.any():
            i = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), bad.shape)
            raise AssertionError(f"{msg}: {what}: {int(bad.sum())} of {bad.size} values differ (tolerance {tol:g}); "
                          f"worst at {tuple(int(v) for v in i)}: {float(a[i])!r} vs the reference's {float(b[i])!r}")

    def apply_both(self, case: Case, layout: str, dtype: str, n: int = N, hwc: tuple[int, int, int] = HWC,
                   seed: int = 0):
        """Sample on the reference, apply on both: ((x, y) backend, (x, y) reference, inputs, params)."""
        B = self.backends[layout]
        ref, run = self.runs(case, layout, hwc)
        xb, yb, x, y = self.inputs(B, n, hwc, layout, dtype, seed)
        params = ref.sample(n, _image_shape(hwc, layout))
        pb = self.params_to(B, params)
        want = ref.apply(x, y, params)
        got = run.apply(xb, yb, pb)
        return got, want, (xb, yb, x, y), (pb, params)

    # ----------------------------------------------------------------- checks
    def check_contract(self) -> None:
        from .backends.base import LAYOUTS, PRIMITIVES, Primitives, unimplemented

        for layout, B in self.backends.items():
            def run(msg: str, B: Any = B, layout: str = layout) -> None:
                missing = unimplemented(B)
                assert not missing, f"{msg}: primitives not implemented: {missing}"
                assert isinstance(B, Primitives), (
                    f"{msg}: not a Primitives: lacks {[n for n in PRIMITIVES if not hasattr(B, n)]}")
                assert isinstance(getattr(B, "name", None), str) and B.name, f"{msg}: the backend has no name"
                assert getattr(B, "layout", None) == layout and layout in LAYOUTS, (
                    f"{msg}: make_backend({layout!r}).layout is {getattr(B, 'layout', None)!r}")
                assert callable(getattr(B, "make_run", None)), f"{msg}: the backend has no make_run"

            self.attempt("contract", "primitives", layout, None, run)

    def check_ops(self) -> None:
        for case in self.cases:
            for layout in self.layouts:
                for dtype in self.dtypes:
                    given: list[Any] = []
                    self.attempt("ops", case.id, layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype, g=given: self._op(msg, c, lay, dt, g))
                    if given and "immutable" not in self.skip_checks:
                        self.attempt("immutable", case.id, layout, dtype,
                                     lambda msg, g=given, lay=layout: self._unchanged(msg, lay, *g))

    def _op(self, msg: str, case: Case, layout: str, dtype: str, given: list[Any]) -> None:
        B = self.backends[layout]
        (xo, yo), (xr, yr), inputs, params = self.apply_both(case, layout, dtype)
        given += [inputs, params]  # for the immutable check, whatever the comparison finds
        self.compare(msg, self.to_numpy(B, xo), np.asarray(xr), case.kind, layout, dtype)
        self.compare(msg, self.to_numpy(B, yo), np.asarray(yr), case.kind, layout, dtype, what="labels")

    def _unchanged(self, msg: str, layout: str, inputs: tuple, params: tuple) -> None:
        B = self.backends[layout]
        xb, yb, x, y = inputs
        assert np.array_equal(self.to_numpy(B, xb), x, equal_nan=x.dtype.kind == "f"), \
            f"{msg}: apply wrote to its input images"
        assert np.array_equal(self.to_numpy(B, yb), y), f"{msg}: apply wrote to its input labels"
        pb, pn = params
        for k, v in pn.items():
            assert np.array_equal(self.to_numpy(B, pb[k]), np.asarray(v)), f"{msg}: apply wrote to params[{k!r}]"

    def check_matrix(self) -> None:
        import augspec as aug

        bounded = Case("bounded", lambda hwc: [aug.Affine(rotate=10), aug.ColorJitter(0.3, 0.3), aug.CutOut()],
                       "warp")
        unbounded = Case("unbounded", lambda hwc: [aug.HorizontalFlip(), aug.Normalize(), aug.MixUp(0.5)])
        for case in (bounded, unbounded):
            if case.names & self.skip_ops:
                continue
            for layout in self.layouts:
                for dtype in self.dtypes:
                    self.attempt("matrix", f"{case.id} pipeline, run(x, y)", layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype: self._call(msg, c, lay, dt))
                    self.attempt("matrix", f"{case.id} pipeline, one 3-D image", layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype: self._single(msg, c, lay, dt))
                    self.attempt("matrix", f"{case.id} pipeline, training=False", layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype: self._eval(msg, c, lay, dt))

    def _call(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)  # called in step: both draw the same params
        xb, yb, x, y = self.inputs(B, N, HWC, layout, dtype)
        xo, yo = run(xb, yb)
        xr, yr = ref(x, y)
        assert B.shape(xo) == B.shape(xb), f"{msg}: images come back in shape {B.shape(xo)}, not {B.shape(xb)}"
        want = "bfloat16" if dtype == "bfloat16" else str(xr.dtype)  # float inputs keep their dtype
        assert B.dtype_name(xo) == want, f"{msg}: images come back as {B.dtype_name(xo)}, the reference's {want}"
        assert tuple(B.shape(yo)) == tuple(np.shape(yr)), f"{msg}: labels of shape {B.shape(yo)}, not {np.shape(yr)}"

    def _single(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)
        xb, yb, x, y = self.inputs(B, 1, HWC, layout, dtype, seed=3)
        params = ref.sample(1, _image_shape(HWC, layout))
        xr, yr = ref.apply(x[0], y[0], params)
        xo, yo = run.apply(xb[0], self.to_backend(B, y[0]), self.params_to(B, params))
        assert len(B.shape(xo)) == 3, f"{msg}: one 3-D image came back in shape {B.shape(xo)}"
        self.compare(msg, self.to_numpy(B, xo), np.asarray(xr), case.kind, layout, dtype)
        self.compare(msg, self.to_numpy(B, yo), np.asarray(yr), case.kind, layout, dtype, what="labels")

    def _eval(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)
        xb, yb, x, y = self.inputs(B, N, HWC, layout, dtype, seed=4)
        xo = run(xb, training=False)
        xr = ref(x, training=False)
        self.compare(msg, self.to_numpy(B, xo), np.asarray(xr), "pixel", layout, dtype)

    def one_dtype(self) -> str:
        """The dtype of the checks that run one dtype only: float32 where it is in ``dtypes``."""
        return "float32" if "float32" in self.dtypes else self.dtypes[0]

    def check_sizes(self) -> None:
        for case in self.cases:
            for layout in self.layouts:
                for dtype in self.dtypes:
                    self.attempt("sizes", f"{case.id}, empty batch", layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype: self._empty(msg, c, lay, dt))
                    if dtype != self.one_dtype():
                        continue
                    for h, w in SIZES:
                        self.attempt("sizes", f"{case.id}, {h}x{w} images", layout, dtype,
                                     lambda msg, c=case, lay=layout, dt=dtype, hw=(h, w): self._size(msg, c, lay,
                                                                                                       dt, hw))

    def _empty(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)
        xb, yb, x, y = self.inputs(B, 0, HWC, layout, dtype)
        xo, yo = run(xb, yb)
        xr, yr = ref(x, y)
        assert tuple(B.shape(xo)) == xr.shape, f"{msg}: images of shape {B.shape(xo)}, the reference's {xr.shape}"
        want = "bfloat16" if dtype == "bfloat16" else str(xr.dtype)
        assert B.dtype_name(xo) == want, f"{msg}: images come back as {B.dtype_name(xo)}, the reference's {want}"
        assert tuple(B.shape(yo)) == np.shape(yr), f"{msg}: labels of shape {B.shape(yo)}, the reference's {yr.shape}"

    def _size(self, msg: str, case: Case, layout: str, dtype: str, hw: tuple[int, int]) -> None:
        from .core.errors import InputError

        B = self.backends[layout]
        hwc = (*hw, 3)
        ref, run = self.runs(case, layout, hwc)
        xb, yb, x, y = self.inputs(B, 3, hwc, layout, dtype, 5)
        try:
            ref(x, y)
        except InputError:  # a size the case refuses (a crop larger than the image): refused alike
            try:
                run(xb, yb)
            except InputError:
                return
            raise AssertionError(f"{msg}: the reference refuses {hw} images (InputError), the backend does not") from None
        (xo, yo), (xr, yr), _, _ = self.apply_both(case, layout, dtype, n=3, hwc=hwc, seed=5)
        self.compare(msg, self.to_numpy(B, xo), np.asarray(xr), case.kind, layout, dtype)
        self.compare(msg, self.to_numpy(B, yo), np.asarray(yr), case.kind, layout, dtype, what="labels")

    def check_batched(self) -> None:
        for case in self.cases:
            if _mixes(self.pipeline(case).ops) or _reads_batch(self.pipeline(case).ops):
                continue  # a partner lies elsewhere in the batch
            for layout in self.layouts:
                dtype = self.one_dtype()
                self.attempt("batched", case.id, layout, dtype,
                             lambda msg, c=case, lay=layout, dt=dtype: self._batched(msg, c, lay, dt))

    def _batched(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)
        xb, yb, x, y = self.inputs(B, N, HWC, layout, dtype, seed=6)
        pb = self.params_to(B, ref.sample(N, _image_shape(HWC, layout)))
        xo, yo = run.apply(xb, yb, pb)
        xo, yo = self.to_numpy(B, xo), self.to_numpy(B, yo)
        for i in range(N):
            xi, yi = run.apply(xb[i:i + 1], yb[i:i + 1], {k: v[i:i + 1] for k, v in pb.items()})
            self.compare(f"{msg}, sample {i}", self.to_numpy(B, xi), xo[i:i + 1], "pixel", layout, dtype)
            self.compare(f"{msg}, sample {i}", self.to_numpy(B, yi), yo[i:i + 1], "pixel", layout, dtype,
                         what="labels")

    def check_ragged(self) -> None:
        from .core.errors import InputError
        from .core.plan import Plan
        from .core.run import Run

        sizes = np.asarray(RAGGED_SIZES, np.int64)
        for case in self.cases:
            try:  # the case takes images of these sizes (its first ops fix the size)
                Run._check_ragged(Plan(self.pipeline(case).ops), sizes)
            except InputError:
                continue
            for layout in self.layouts:
                for dtype in dict.fromkeys((self.one_dtype(), "uint8")):
                    if dtype not in self.dtypes:
                        continue
                    self.attempt("ragged", case.id, layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype: self._ragged(msg, c, lay, dt))

    def _ragged(self, msg: str, case: Case, layout: str, dtype: str) -> None:
        B = self.backends[layout]
        ref, run = self.runs(case, layout)
        imgs, refs = [], []
        for i, (h, w) in enumerate(RAGGED_SIZES):
            xb, _, x, _ = self.inputs(B, 1, (h, w, 3), layout, dtype, seed=20 + i)
            imgs.append(xb[0])
            refs.append(x[0])
        n = len(imgs)
        y = _labels(n, 8)
        params = ref.sample(n, _image_shape((15, 17, 3), layout))
        pb = self.params_to(B, params)
        xr, yr = ref.apply(refs, y, params)
        xo, yo = run.apply(imgs, self.to_backend(B, y), pb)
        xo = self.to_numpy(B, xo)
        self.compare(msg, xo, np.asarray(xr), case.kind, layout, dtype)
        self.compare(msg, self.to_numpy(B, yo), np.asarray(yr), case.kind, layout, dtype, what="labels")
        if _mixes(self.pipeline(case).ops):
            return
        for i in range(n):
            xi = run.apply(imgs[i], None, {k: v[i:i + 1] for k, v in pb.items()})
            self.compare(f"{msg}, image {i} alone", self.to_numpy(B, xi)[None], xo[i:i + 1], "pixel", layout, dtype)

    def check_chunked(self) -> None:
        for layout in self.layouts:
            if getattr(self.backends[layout], "chunk_bytes", None) is None:
                continue  # the backend does not chunk
            small, whole = self.make_backend(layout), self.make_backend(layout)
            per = 4 * math.prod(HWC)
            try:
                small.chunk_bytes = per * 3 // 2  # 6 images: chunks of 1, 2, 1 and 2
                whole.chunk_bytes = None
            except Exception as e:
                self.failures.append(f"{self.where('chunked', 'chunk_bytes', layout)}: cannot set chunk_bytes ({e})")
                continue
            for case in self.cases:
                for dtype in self.dtypes:
                    self.attempt("chunked", case.id, layout, dtype,
                                 lambda msg, c=case, lay=layout, dt=dtype, s=small, w=whole: self._chunked(
                                     msg, c, lay, dt, s, w))

    def _chunked(self, msg: str, case: Case, layout: str, dtype: str, small: Any, whole: Any) -> None:
        ref, _ = self.runs(case, layout)
        params = ref.sample(N, _image_shape(HWC, layout))
        out = []
        for B in (small, whole):
            xb, yb, _, _ = self.inputs(B, N, HWC, layout, dtype, seed=8)
            xo, yo = self.runs(case, layout, HWC, B)[1].apply(xb, yb, self.params_to(B, params))
            out.append((self.to_numpy(B, xo), self.to_numpy(B, yo)))
        (xs, ys), (xw, yw) = out
        self.compare(f"{msg}, chunk_bytes={small.chunk_bytes} vs None", xs, xw, "pixel", layout, dtype)
        self.compare(f"{msg}, chunk_bytes={small.chunk_bytes} vs None", ys, yw, "pixel", layout, dtype,
                     what="labels")

    def check_draws(self) -> None:
        import augspec as aug

        every = Case("every_draw", lambda hwc: [
            aug.Affine(rotate=15, translate=0.1, scale=0.1, shear=5, scale_y=0.1, p=0.9),
            aug.HorizontalFlip(), aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.GaussianNoise(std=(0.0, 0.1)),
            aug.CutOut(holes=3), aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)], weights=(1, 2)),
            aug.RandomApply(aug.Dropout(0.2), p=0.5)])
        cases = list(self.cases)
        if not (every.names & self.skip_ops):
            cases.append(every)
        for layout in self.layouts:
            # every case's ops in ONE pipeline (one compile, four samples), judged case by case;
            # where that pipeline cannot be sampled, each case alone says which op fails
            drawn = self.attempt("draws", "every case in one pipeline", layout, None,
                                 lambda msg, lay=layout: self._sample_all(msg, cases, lay))
            for case in cases:
                if drawn is not None:
                    self.attempt("draws", case.id, layout, None,
                                 lambda msg, c=case, d=drawn: self._compare_draws(msg, d, c.id))
                else:
                    self.attempt("draws", case.id, layout, None,
                                 lambda msg, c=case, lay=layout: self._compare_draws(
                                     msg, self._sample_all(msg, [c], lay), c.id))

    def _sample_all(self, msg: str, cases: Sequence[Case], layout: str) -> list[tuple]:
        """Sample the cases' ops (one pipeline) on the reference and the backend at a few
        batch sizes and states: ``[(where, reference params, backend params as NumPy,
        continuous keys, key -> case id)]``."""
        from .core.pipeline import Pipeline
        B = self.backends[layout]
        ops: list[Any] = []
        owner: dict[str, str] = {}
        for case in cases:
            for op in self.pipeline(case).ops:
                owner[str(len(ops))] = case.id
                ops.append(op)
        pipe = Pipeline(ops, num_classes=K, seed=SEED)
        ref, run = pipe.compile(self.refs[layout]), pipe.compile(B)
        continuous = {d.key for d in ref.plan.sampler.draws if d.dist.continuous}
        shape = _image_shape(HWC, layout)
        out = []
        for n, state in ((N, None), (1, None), (0, None), (5, {"epoch": 2, "step": 5, "rank": 1, "worker": 3})):
            if state is not None:
                ref.set_state(**state)
                run.set_state(**state)
            pn, pb = ref.sample(n, shape), run.sample(n, shape)
            at = f"sample({n}) at {'step ' + str(ref.step - 1) if state is None else state}"
            assert set(pb) == set(pn), f"{msg}, {at}: keys {sorted(pb)}, the reference's {sorted(pn)}"
            key_owner = {k: owner[k.split("/")[0].split(".")[0]] for k in pn}
            out.append((at, pn, {k: self.to_numpy(B, v) for k, v in pb.items()}, continuous, key_owner))
        return out

    def _compare_draws(self, msg: str, drawn: list[tuple], case_id: str) -> None:
        for at, pn, pb, continuous, owner in drawn:
            for k in pn:
                if owner[k] != case_id:
                    continue
                a, b = pb[k], np.asarray(pn[k])
                where = f"{msg}, {at}: params[{k!r}]"
                assert a.shape == b.shape, f"{where} of shape {a.shape}, the reference's {b.shape}"
                assert _kind(a) == _kind(b), f"{where} is {a.dtype}, the reference's {b.dtype}"
                if k in continuous:
                    err = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
                    assert np.allclose(a, b, rtol=1e-6, atol=1e-6), f"{where} differs by {err:g} (1e-6 allowed)"
                else:
                    diff = np.flatnonzero(a.reshape(-1) != b.reshape(-1)) if a.size else []
                    assert len(diff) == 0, (f"{where} is not bit-identical: {len(diff)} of {a.size} differ, first "
                                            f"{a.reshape(-1)[diff[0]].item()!r} vs {b.reshape(-1)[diff[0]].item()!r}")

    def check_targets(self) -> None:
        if "uint8" not in self.dtypes:
            return
        for case in self.cases:
            for layout in self.layouts:
                self.attempt("targets", case.id, layout, "uint8",
                             lambda msg, c=case, lay=layout: self._targets(msg, c, lay))

    def _targets(self, msg: str, case: Case, layout: str) -> None:
        B = self.backends[layout]
        rng = np.random.default_rng(11)
        h, w, _ = HWC
        masks = rng.integers(0, 5, (N, h, w)).astype(np.uint8)
        xy = rng.uniform(-2.0, 1.0, (N, 4, 2)) * np.array([w, h]) + np.array([w, h]) * 0.5
        wh = rng.uniform(1.0, 6.0, (N, 4, 2))
        boxes = np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)
        valid = rng.random((N, 4)) < 0.8
        labels = rng.integers(0, 9, (N, 4)).astype(np.int64)
        points = (rng.uniform(0.0, 1.0, (N, 5, 2)) * np.array([w, h])).astype(np.float32)
        xb, yb, x, y = self.inputs(B, N, HWC, layout, "uint8", seed=9)
        outs = []
        for b, xi, yi in ((self.refs[layout], x, y), (B, xb, yb)):
            run = self.pipeline(case).compile(b)
            out = run(xi, yi, masks=self.to_backend(b, masks), boxes=self.to_backend(b, boxes),
                      box_valid=self.to_backend(b, valid), box_labels=self.to_backend(b, labels),
                      keypoints=self.to_backend(b, points))
            outs.append({k: self.to_numpy(b, v) for k, v in out.items()})
        got, want = outs[1], outs[0]
        assert set(got) == set(want), f"{msg}: targets {sorted(got)}, the reference's {sorted(want)}"
        for k in ("masks", "box_valid", "box_labels", "keypoint_visible"):
            assert got[k].shape == want[k].shape, f"{msg}: {k} of shape {got[k].shape}, the reference's {want[k].shape}"
            bad = np.flatnonzero(got[k].reshape(-1) != want[k].reshape(-1))
            assert bad.size == 0, f"{msg}: {k}: {bad.size} of {got[k].size} values differ from the reference's"
        for k in ("boxes", "keypoints") + (("box_weights",) if "box_weights" in want else ()):
            assert got[k].shape == want[k].shape, f"{msg}: {k} of shape {got[k].shape}, the reference's {want[k].shape}"
            err = np.abs(got[k].astype(np.float64) - want[k])
            assert err.size == 0 or err.max() <= 1e-3 * (1.0 + np.abs(want[k]).max()), (
                f"{msg}: {k} differ from the reference's by {err.max():g}")

    # ------------------------------------------------------------------- run
    def run(self) -> dict[str, int]:
        for check in CHECKS:
            if check in self.skip_checks or check == "immutable":
                continue
            getattr(self, "check_" + check)()
        if self.unbuilt:
            warnings.warn(f"check_backend: ops {self.unbuilt} have no default arguments and were not checked",
                          stacklevel=3)
        if self.failures:
            by_check: dict[str, int] = {}
            for f in self.failures:
                c = f.split(" check, ", 1)[0].rsplit(", ", 1)[-1]
                by_check[c] = by_check.get(c, 0) + 1
            shown = self.failures[:_MAX_FAILURES_SHOWN]
            more = len(self.failures) - len(shown)
            raise AssertionError(
                f"{self.label} backend: {len(self.failures)} conformance failures "
                f"({', '.join(f'{c}: {k}' for c, k in by_check.items())})\n" + "\n".join(shown)
                + (f"\n... and {more} more" if more else ""))
        return dict(self.counts)


def check_backend(make_backend: Callable[[str], Any], *, name: str | None = None,
                  layouts: Sequence[str] = ("NHWC", "NCHW"), dtypes: Sequence[str] = ("uint8", "float32"),
                  skip: Iterable[str] = ()) -> dict[str, int]:
    """Check the backend ``make_backend(layout)`` makes against the NumPy reference and
    the backend contract (see the module docstring for the checks).

    ``name`` labels the messages (default: the backend's ``name``); ``layouts`` and
    ``dtypes`` span the matrix (``"uint8"``, ``"float16"``, ``"bfloat16"``,
    ``"float32"``, ``"float64"``); ``skip`` holds check names (``CHECKS``) and op or
    case names to leave out. Raises one ``AssertionError`` listing every failure;
    returns the number of passing comparisons per check.
    """
    return _Suite(make_backend, name, layouts, dtypes, skip).run()
