"""The backend contract: the primitive namespace ``B`` the core and the kernels are written against.

A backend implements the primitives below for one framework and one layout
(``"NHWC"`` or ``"NCHW"``); the core (run, planner, executor, generator) and every
built-in kernel, and every plugin kernel written against ``B``, then run on it.
Arrays are the framework's own; shapes are Python tuples of ints (static). Images
inside a pipeline are float32. ``PRIMITIVES`` names the whole surface, the
``Primitives`` protocol types it, and the ``Backend`` base class documents each
one: a primitive with a default here is written against the other primitives (a
backend may override it for speed); one without raises ``NotImplementedError``
until the backend provides it (``unimplemented(backend)`` lists those).
``augspec.testing.check_backend`` is the conformance suite of the contract.

Conversion:     as_images as_labels check_class_ids has_nan asarray cast dtype_name
                shape is_array to_numpy
Array basics:   arange ones zeros eye reshape broadcast_to transpose stack concat
                where clip floor sqrt log exp cos sin tan minimum maximum sum mean
                any matmul argsort take logical_not logical_xor bincount
32-bit words:   bitxor shr mul32 (bitand: optional, the core does not call it)
Image helpers:  image_dims per_sample per_channel spatial to_nhwc from_nhwc
                channel_mean channel_min channel_max image_mean image_std
                split_channels merge_channels flip color_affine warp_affine take_along
                gather_sum rgb_to_hsv hsv_to_rgb one_hot pack_images

The generator's contract (``core/random.py``): its words are ``"uint32"`` arrays
(``asarray(v, "uint32")``; a backend may hold them in a wider integer type as long
as the values are the residues modulo 2**32), ``bitxor(a, b)`` their exclusive or,
``shr(a, n)`` the logical right shift by a Python int, ``mul32(a, c)`` the product
by a Python int modulo 2**32; ``cast(w, "float32")`` of a word below 2**24 is exact.

Beyond the primitives, the arrays themselves must support ``+ - * /`` and unary
``-`` (with each other and with Python floats, broadcasting), the comparisons
``< <= > >= == !=`` (giving bool arrays), ``& | ~`` on bool arrays, and basic
indexing (integers, slices, ``...``), as NumPy arrays do.

Besides the primitives a backend has: ``name``; ``layout`` and ``channel_axis``;
``array_module`` (for ``compile("auto")``); ``make_run`` (the compiled callable);
``chunk_bytes`` and ``memory()`` (the executor's chunking policy and the memory
chunks write, see ``core/executor.py``).

This module imports no framework. The backends may import the core; the core
never imports a backend (it receives one as ``B``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

LAYOUTS = ("NHWC", "NCHW")
IMAGE_DTYPES = ("uint8", "float16", "bfloat16", "float32", "float64")

#: every primitive of ``B``, by group (the order of the module docstring)
PRIMITIVES: tuple[str, ...] = (
    # conversion
    "as_images", "as_labels", "check_class_ids", "has_nan", "asarray", "cast", "dtype_name", "shape",
    "is_array", "to_numpy", "copy", "all_finite",
    # array basics
    "arange", "ones", "zeros", "eye", "reshape", "broadcast_to", "transpose", "stack", "concat",
    "where", "clip", "floor", "sqrt", "log", "exp", "cos", "sin", "tan", "minimum", "maximum",
    "sum", "mean", "any", "matmul", "argsort", "take", "logical_not", "logical_xor", "bincount",
    "compact", "put_rows",
    # 32-bit words (the generator)
    "bitxor", "shr", "mul32", "bitand",
    # image helpers
    "image_dims", "per_sample", "per_channel", "spatial", "to_nhwc", "from_nhwc", "channel_mean",
    "channel_min", "channel_max",
    "image_mean", "image_std", "split_channels", "merge_channels", "flip", "color_affine",
    "warp_affine", "take_along", "gather_sum", "rgb_to_hsv", "hsv_to_rgb", "one_hot", "pack_images",
)

#: primitives a backend may leave out: nothing in the core calls them, or their
#: default answers "unknown" (``has_nan`` -> None)
OPTIONAL_PRIMITIVES: tuple[str, ...] = ("bitand", "has_nan", "compact", "put_rows")

_F = TypeVar("_F", bound=Callable[..., Any])


def _required(fn: _F) -> _F:
    """Marks a primitive that has no default: the backend must provide it."""
    fn.__augspec_required__ = True  # type: ignore[attr-defined]
    return fn


def unimplemented(backend: Any) -> list[str]:
    """The names of the primitives ``backend`` lacks: absent, or still the base class's
    stub that raises ``NotImplementedError`` (optional primitives excepted)."""
    out = []
    for name in PRIMITIVES:
        if name in OPTIONAL_PRIMITIVES:
            continue
        fn = getattr(type(backend), name, None)
        if fn is None and not callable(getattr(backend, name, None)):
            out.append(name)
        elif getattr(fn, "__augspec_required__", False):
            out.append(name)
    return out


@runtime_checkable
class Primitives(Protocol):
    """The primitive namespace ``B`` as a type: the names of ``PRIMITIVES`` (``Backend``
    documents the meaning of each). ``isinstance(b, Primitives)`` checks that every
    name is there, not that it works (``unimplemented`` and
    ``augspec.testing.check_backend`` do more)."""

    # conversion
    def as_images(self, images: Any) -> Any: ...
    def as_labels(self, labels: Any) -> Any: ...
    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None: ...
    def has_nan(self, x: Any) -> bool | None: ...
    def asarray(self, v: Any, dtype: str | None = None) -> Any: ...
    def cast(self, x: Any, dtype: str) -> Any: ...
    def dtype_name(self, x: Any) -> str: ...
    def shape(self, x: Any) -> tuple[int, ...]: ...
    def is_array(self, x: Any) -> bool: ...
    def to_numpy(self, x: Any) -> Any: ...
    def copy(self, x: Any) -> Any: ...
    def all_finite(self, x: Any) -> bool | None: ...
    # array basics
    def arange(self, n: int, dtype: str = "int64") -> Any: ...
    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any: ...
    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any: ...
    def eye(self, n: int, dtype: str = "float32") -> Any: ...
    def reshape(self, x: Any, shape: Sequence[int]) -> Any: ...
    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any: ...
    def transpose(self, x: Any, axes: Sequence[int]) -> Any: ...
    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any: ...
    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any: ...
    def where(self, cond: Any, a: Any, b: Any) -> Any: ...
    def clip(self, x: Any, lo: float, hi: float) -> Any: ...
    def floor(self, x: Any) -> Any: ...
    def sqrt(self, x: Any) -> Any: ...
    def log(self, x: Any) -> Any: ...
    def exp(self, x: Any) -> Any: ...
    def cos(self, x: Any) -> Any: ...
    def sin(self, x: Any) -> Any: ...
    def tan(self, x: Any) -> Any: ...
    def minimum(self, a: Any, b: Any) -> Any: ...
    def maximum(self, a: Any, b: Any) -> Any: ...
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any: ...
    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any: ...
    def any(self, x: Any, axis: Any = None) -> Any: ...
    def matmul(self, a: Any, b: Any) -> Any: ...
    def argsort(self, x: Any) -> Any: ...
    def take(self, x: Any, idx: Any) -> Any: ...
    def logical_not(self, a: Any) -> Any: ...
    def logical_xor(self, a: Any, b: Any) -> Any: ...
    def bincount(self, idx: Any, bins: int) -> Any: ...
    def compact(self, gate: Any) -> Any: ...
    def put_rows(self, x: Any, idx: Any, rows: Any, inplace: bool = False) -> Any: ...
    # 32-bit words
    def bitxor(self, a: Any, b: Any) -> Any: ...
    def shr(self, a: Any, n: int) -> Any: ...
    def mul32(self, a: Any, c: int) -> Any: ...
    def bitand(self, a: Any, b: Any) -> Any: ...
    # image helpers
    def image_dims(self, x: Any) -> tuple[int, int, int, int]: ...
    def per_sample(self, v: Any) -> Any: ...
    def per_channel(self, v: Any) -> Any: ...
    def spatial(self, m: Any) -> Any: ...
    def to_nhwc(self, x: Any) -> Any: ...
    def from_nhwc(self, x: Any) -> Any: ...
    def channel_mean(self, x: Any) -> Any: ...
    def channel_min(self, x: Any) -> Any: ...
    def channel_max(self, x: Any) -> Any: ...
    def image_mean(self, x: Any) -> Any: ...
    def image_std(self, x: Any) -> Any: ...
    def split_channels(self, x: Any) -> list[Any]: ...
    def merge_channels(self, parts: Sequence[Any]) -> Any: ...
    def flip(self, x: Any, axis: str) -> Any: ...
    def color_affine(self, x: Any, a: Any, t: Any) -> Any: ...
    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any: ...
    def take_along(self, x: Any, idx: Any, axis: str) -> Any: ...
    def gather_sum(self, x: Any, idx: Any, w: Any, axis: str) -> Any: ...
    def rgb_to_hsv(self, x: Any) -> Any: ...
    def hsv_to_rgb(self, x: Any) -> Any: ...
    def one_hot(self, ids: Any, k: int) -> Any: ...
    def pack_images(self, images: Sequence[Any]) -> tuple[Any, Any]: ...


class Backend:
    """Base of every backend; subclasses fill in the primitives for their framework.

    A primitive without a default raises ``NotImplementedError`` here; the others are
    written against the rest. Dtypes are named by strings: ``"float32"``,
    ``"float64"``, ``"float16"``, ``"bfloat16"``, ``"uint8"``, ``"int32"``,
    ``"int64"``, ``"uint32"``, ``"bool"``.
    """

    name: str = ""
    #: the module whose arrays this backend takes, for ``compile("auto")``
    array_module: str = ""
    #: the executor's chunking policy (see ``core/executor.py``): a batch of more than
    #: this many float32 bytes runs its leading samplewise stages chunk by chunk, each
    #: chunk's params sliced from the whole batch's, so the values do not change;
    #: None: never chunk
    chunk_bytes: int | None = None
    #: the largest image side a traced function assumes where a batch of images of
    #: different sizes has sizes unknown when tracing (it sets the antialias filter's reach)
    max_image_side: int = 1024
    #: ``pack_images`` rounds the padded batch's height and width up to a multiple of this
    #: (traced backends: fewer distinct shapes, fewer traces)
    pack_multiple: int = 1
    #: the axis (``"h"`` or ``"w"``) whose ``gather_sum`` pass this backend runs fastest
    #: first in a separable resampling; None: the pass that shrinks the work most
    first_pass: str | None = None

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

    def memory(self) -> Any:
        """Where the executor's stages write (``core.executor.Memory``); a chunking
        backend returns a subclass that owns its buffers. The default keeps nothing."""
        from ..core.executor import Memory

        return Memory()

    # ------------------------------------------------------------ conversion
    @_required
    def as_images(self, images: Any) -> Any:
        """The images as this backend's array (TypeError where that cannot be)."""
        raise NotImplementedError(f"{self.name} backend: as_images is not implemented")

    def as_labels(self, labels: Any) -> Any:
        """The labels (class ids or soft labels) as this backend's array."""
        return self.as_images(labels)

    def check_class_ids(self, ids: Any, num_classes: int) -> bool | None:
        """True if every id is in [0, num_classes); None where checking would sync a device."""
        a = self.to_numpy(ids)
        return bool(a.size == 0 or (a.min() >= 0 and a.max() < num_classes))

    def has_nan(self, x: Any) -> bool | None:
        """Whether ``x`` holds a NaN; None where the backend does not look (optional)."""
        return None

    @_required
    def asarray(self, v: Any, dtype: str | None = None) -> Any:
        """``v`` (a number, sequence, NumPy or own array) as an array of ``dtype`` (None: as is)."""
        raise NotImplementedError(f"{self.name} backend: asarray is not implemented")

    @_required
    def cast(self, x: Any, dtype: str) -> Any:
        """``x`` converted to ``dtype`` (float to int truncates; bool to number is 0 / 1)."""
        raise NotImplementedError(f"{self.name} backend: cast is not implemented")

    @_required
    def dtype_name(self, x: Any) -> str:
        """The dtype of ``x`` by name (``"float32"``, ``"uint8"``, ...)."""
        raise NotImplementedError(f"{self.name} backend: dtype_name is not implemented")

    @_required
    def shape(self, x: Any) -> tuple[int, ...]:
        """The static shape of ``x``, a tuple of Python ints."""
        raise NotImplementedError(f"{self.name} backend: shape is not implemented")

    @_required
    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is already an array of this backend."""
        raise NotImplementedError(f"{self.name} backend: is_array is not implemented")

    @_required
    def to_numpy(self, x: Any) -> Any:
        """``x`` as a NumPy array (copied to the host where it lives on a device)."""
        raise NotImplementedError(f"{self.name} backend: to_numpy is not implemented")

    def copy(self, x: Any) -> Any:
        """A new array with ``x``'s values, sharing no memory with it (a run's output never
        aliases its input). This default suits frameworks whose arrays are immutable
        (TensorFlow, JAX): it returns ``x``; a backend of mutable arrays overrides it."""
        return x

    def all_finite(self, x: Any) -> bool | None:
        """Whether ``x`` holds no NaN or inf, where asking is cheap (host memory, no device
        sync); None where it is not (the run then keeps the select that stops a NaN)."""
        return None

    # ---------------------------------------------------------------- basics
    @_required
    def arange(self, n: int, dtype: str = "int64") -> Any:
        """``0, 1, ..., n - 1``."""
        raise NotImplementedError(f"{self.name} backend: arange is not implemented")

    @_required
    def ones(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        """An array of ones."""
        raise NotImplementedError(f"{self.name} backend: ones is not implemented")

    @_required
    def zeros(self, shape: Sequence[int], dtype: str = "float32") -> Any:
        """An array of zeros."""
        raise NotImplementedError(f"{self.name} backend: zeros is not implemented")

    @_required
    def eye(self, n: int, dtype: str = "float32") -> Any:
        """The ``n`` by ``n`` identity matrix."""
        raise NotImplementedError(f"{self.name} backend: eye is not implemented")

    @_required
    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        """``x`` in a new shape (one entry may be -1), row-major order."""
        raise NotImplementedError(f"{self.name} backend: reshape is not implemented")

    @_required
    def broadcast_to(self, x: Any, shape: Sequence[int]) -> Any:
        """``x`` broadcast to ``shape`` by NumPy's rules (may be a read-only view)."""
        raise NotImplementedError(f"{self.name} backend: broadcast_to is not implemented")

    @_required
    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        """``x`` with its axes permuted: output axis ``i`` is input axis ``axes[i]``."""
        raise NotImplementedError(f"{self.name} backend: transpose is not implemented")

    @_required
    def stack(self, xs: Sequence[Any], axis: int = 0) -> Any:
        """The arrays ``xs`` (of one shape) stacked along a new axis ``axis``."""
        raise NotImplementedError(f"{self.name} backend: stack is not implemented")

    @_required
    def concat(self, xs: Sequence[Any], axis: int = 0) -> Any:
        """The arrays ``xs`` joined along their existing axis ``axis``."""
        raise NotImplementedError(f"{self.name} backend: concat is not implemented")

    @_required
    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """``a`` where the bool ``cond`` holds, else ``b``, broadcasting (either may be a number)."""
        raise NotImplementedError(f"{self.name} backend: where is not implemented")

    @_required
    def clip(self, x: Any, lo: float, hi: float) -> Any:
        """``x`` clamped to [lo, hi] elementwise (NaN stays NaN)."""
        raise NotImplementedError(f"{self.name} backend: clip is not implemented")

    @_required
    def floor(self, x: Any) -> Any:
        """Elementwise floor of a float array (float out)."""
        raise NotImplementedError(f"{self.name} backend: floor is not implemented")

    @_required
    def sqrt(self, x: Any) -> Any:
        """Elementwise square root."""
        raise NotImplementedError(f"{self.name} backend: sqrt is not implemented")

    @_required
    def log(self, x: Any) -> Any:
        """Elementwise natural logarithm."""
        raise NotImplementedError(f"{self.name} backend: log is not implemented")

    @_required
    def exp(self, x: Any) -> Any:
        """Elementwise exponential."""
        raise NotImplementedError(f"{self.name} backend: exp is not implemented")

    @_required
    def cos(self, x: Any) -> Any:
        """Elementwise cosine (radians)."""
        raise NotImplementedError(f"{self.name} backend: cos is not implemented")

    @_required
    def sin(self, x: Any) -> Any:
        """Elementwise sine (radians)."""
        raise NotImplementedError(f"{self.name} backend: sin is not implemented")

    @_required
    def tan(self, x: Any) -> Any:
        """Elementwise tangent (radians)."""
        raise NotImplementedError(f"{self.name} backend: tan is not implemented")

    @_required
    def minimum(self, a: Any, b: Any) -> Any:
        """Elementwise minimum, broadcasting."""
        raise NotImplementedError(f"{self.name} backend: minimum is not implemented")

    @_required
    def maximum(self, a: Any, b: Any) -> Any:
        """Elementwise maximum, broadcasting."""
        raise NotImplementedError(f"{self.name} backend: maximum is not implemented")

    @_required
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """The sum over ``axis`` (an int, a tuple of ints, or None: all)."""
        raise NotImplementedError(f"{self.name} backend: sum is not implemented")

    @_required
    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """The float32 mean over ``axis`` (accumulated at least as precisely as float32)."""
        raise NotImplementedError(f"{self.name} backend: mean is not implemented")

    @_required
    def any(self, x: Any, axis: Any = None) -> Any:
        """The logical or of a bool array over ``axis``."""
        raise NotImplementedError(f"{self.name} backend: any is not implemented")

    @_required
    def matmul(self, a: Any, b: Any) -> Any:
        """The matrix product over the last two axes, batched over the others (NumPy rules)."""
        raise NotImplementedError(f"{self.name} backend: matmul is not implemented")

    @_required
    def argsort(self, x: Any) -> Any:
        """The int64 indices that sort the 1-D ``x`` ascending, stably (ties keep their order)."""
        raise NotImplementedError(f"{self.name} backend: argsort is not implemented")

    @_required
    def take(self, x: Any, idx: Any) -> Any:
        """``x[idx]`` along axis 0: a gather of whole samples by an integer array."""
        raise NotImplementedError(f"{self.name} backend: take is not implemented")

    def logical_not(self, a: Any) -> Any:
        """Elementwise not of a bool array."""
        return ~a

    def logical_xor(self, a: Any, b: Any) -> Any:
        """Elementwise exclusive or of bool arrays."""
        return a != b

    @_required
    def bincount(self, idx: Any, bins: int) -> Any:
        """Per row, how often each value occurs: ``idx`` (R, L) integers (int32 or int64) in
        ``[0, bins)``, ``bins`` a Python int; returns (R, bins) float32 counts (exact while
        a count is below 2**24). ``R`` may be 0 (and unknown when tracing, where the backend
        allows that). Without a host sync (histograms of images: ``bins`` is small, ``L``
        large)."""
        raise NotImplementedError(f"{self.name} backend: bincount is not implemented")

    def compact(self, gate: Any) -> Any:
        """The indices (int64, ascending) of the samples whose (N,) bool ``gate`` is on, where
        this backend may read values on the host at no cost (an eager CPU array); None where
        it may not (a device, a trace): this default. The planner then runs a gated op on
        those samples only (``put_rows``) instead of on the whole batch and a select."""
        return None

    def put_rows(self, x: Any, idx: Any, rows: Any, inplace: bool = False) -> Any:
        """``x`` with the samples ``idx`` (from ``compact``) replaced by ``rows`` (cast to
        ``x``'s dtype): a new array, or ``x`` itself written in place where ``inplace`` (the
        planner says so only for scratch of the call). Needed where ``compact`` returns indices."""
        raise NotImplementedError(f"{self.name} backend: put_rows is not implemented")

    # ---------------------------------------------------------- 32-bit words
    @_required
    def bitxor(self, a: Any, b: Any) -> Any:
        """Bitwise exclusive or of "uint32" words (``b`` words or a Python int < 2**32)."""
        raise NotImplementedError(f"{self.name} backend: bitxor is not implemented")

    @_required
    def shr(self, a: Any, n: int) -> Any:
        """Logical right shift of "uint32" words by the Python int ``n`` (zeros come in)."""
        raise NotImplementedError(f"{self.name} backend: shr is not implemented")

    @_required
    def mul32(self, a: Any, c: int) -> Any:
        """The product of "uint32" words and the Python int ``c`` (< 2**32), modulo 2**32."""
        raise NotImplementedError(f"{self.name} backend: mul32 is not implemented")

    def bitand(self, a: Any, b: Any) -> Any:
        """Bitwise and of integer words (optional: the core no longer calls it)."""
        raise NotImplementedError(f"{self.name} backend: bitand is not implemented")

    # ---------------------------------------------------------------- images
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
        """A batch in this layout as NHWC."""
        return x if self.layout == "NHWC" else self.transpose(x, (0, 2, 3, 1))

    def from_nhwc(self, x: Any) -> Any:
        """An NHWC batch in this layout."""
        return x if self.layout == "NHWC" else self.transpose(x, (0, 3, 1, 2))

    def _spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.layout == "NHWC" else (2, 3)

    def channel_mean(self, x: Any) -> Any:
        """(N, C) mean of each channel over the image."""
        return self.mean(x, axis=self._spatial_axes())

    def channel_min(self, x: Any) -> Any:
        """(N, C) minimum of each channel over the image (NaN: where the backend's reduction puts
        it). This default: pairwise ``minimum`` of halves, log2(H) + log2(W) passes."""
        return self._channel_reduce(x, self.minimum)

    def channel_max(self, x: Any) -> Any:
        """(N, C) maximum of each channel over the image (see ``channel_min``)."""
        return self._channel_reduce(x, self.maximum)

    def _channel_reduce(self, x: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Reduce the two spatial axes by halving: each pass combines the first and second
        halves of the axis with ``op`` (an odd length keeps its last line as it is)."""
        def part(x: Any, axis: int, lo: int, hi: int) -> Any:
            ix = [slice(None)] * 4
            ix[axis] = slice(lo, hi)
            return x[tuple(ix)]

        for axis in self._spatial_axes()[::-1]:
            length = self.shape(x)[axis]
            while length > 1:
                k = length // 2
                y = op(part(x, axis, 0, k), part(x, axis, k, 2 * k))
                x = y if length == 2 * k else self.concat([y, part(x, axis, 2 * k, length)], axis=axis)
                length = k + length % 2
        return self.reshape(x, (-1, self.shape(x)[self.channel_axis]))

    def image_mean(self, x: Any) -> Any:
        """Mean over each image (all pixels and channels), broadcastable against x."""
        return self.mean(x, axis=(1, 2, 3), keepdims=True)

    def image_std(self, x: Any) -> Any:
        """Std over each image (all pixels and channels), broadcastable against x."""
        d = x - self.image_mean(x)
        return self.sqrt(self.mean(d * d, axis=(1, 2, 3), keepdims=True))

    def split_channels(self, x: Any) -> list[Any]:
        """The channels of a batch, each kept as a batch of one channel."""
        c = self.shape(x)[self.channel_axis]
        if self.layout == "NHWC":
            return [x[..., i : i + 1] for i in range(c)]
        return [x[:, i : i + 1] for i in range(c)]

    def merge_channels(self, parts: Sequence[Any]) -> Any:
        """Batches of one channel joined into one batch (the inverse of ``split_channels``)."""
        return self.concat(list(parts), axis=self.channel_axis)

    @_required
    def flip(self, x: Any, axis: str) -> Any:
        """Reverse along the width (``"w"``) or height (``"h"``) axis."""
        raise NotImplementedError(f"{self.name} backend: flip is not implemented")

    @_required
    def color_affine(self, x: Any, a: Any, t: Any) -> Any:
        """Per pixel ``A x + t`` with ``A`` (N, C, C) and ``t`` (N, C)."""
        raise NotImplementedError(f"{self.name} backend: color_affine is not implemented")

    @_required
    def warp_affine(self, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...],
                    fill_mode: str = "constant") -> Any:
        """Resample at ``inverse @ (j + 0.5, i + 0.5, 1)`` per output pixel (pixel-centre
        frame, see DESIGN.md); bilinear or nearest. Taps outside the image read ``fill``
        (``fill_mode="constant"``), the nearest edge pixel (``"nearest"``: the tap index
        clamped) or the mirrored image (``"reflect"``: index -1 reads 0, -2 reads 1)."""
        raise NotImplementedError(f"{self.name} backend: warp_affine is not implemented")

    def take_along(self, x: Any, idx: Any, axis: str) -> Any:
        """Per sample, the rows (``axis="h"``) or columns (``"w"``) ``idx[n]`` of ``x``:
        ``idx`` (N, L) int64 in range; a batch whose axis has length L. This default
        gathers whole rows (or pixels) of the flattened batch with ``take``."""
        n, h, w, c = self.image_dims(x)
        length = self.shape(idx)[1]
        ar = self.arange(n)
        if self.layout == "NHWC":
            if axis == "h":
                rows = self.reshape(idx + self.reshape(ar * h, (-1, 1)), (-1,))
                return self.reshape(self.take(self.reshape(x, (n * h, w * c)), rows), (n, length, w, c))
            pos = self.reshape(ar * h, (-1, 1, 1)) + self.reshape(self.arange(h), (1, -1, 1))
            pos = self.reshape(pos * w + self.reshape(idx, (n, 1, length)), (-1,))
            return self.reshape(self.take(self.reshape(x, (n * h * w, c)), pos), (n, h, length, c))
        plane = self.reshape(ar * c, (-1, 1, 1)) + self.reshape(self.arange(c), (1, -1, 1))  # (n, c, 1)
        if axis == "h":
            rows = self.reshape(plane * h + self.reshape(idx, (n, 1, length)), (-1,))
            return self.reshape(self.take(self.reshape(x, (n * c * h, w)), rows), (n, c, length, w))
        pos = self.reshape(plane * h, (n, c, 1, 1)) + self.reshape(self.arange(h), (1, 1, -1, 1))
        pos = self.reshape(pos * w + self.reshape(idx, (n, 1, 1, length)), (-1,))
        return self.reshape(self.take(self.reshape(x, (n * c * h * w, 1)), pos), (n, c, h, length))

    def gather_sum(self, x: Any, idx: Any, w: Any, axis: str) -> Any:
        """Per sample, line ``l`` along ``axis`` (``"h"``: rows, ``"w"``: columns) of the
        float32 result is ``sum_k w[n, l, k] * x[n, line idx[n, l, k]]``: ``idx`` (N, L, K)
        int64 in range, ``w`` (N, L, K) float32; ``x`` of any image dtype. This default:
        K ``take_along`` gathers, each cast and multiplied in."""
        k = self.shape(idx)[2]
        out = None
        for j in range(k):
            g = self.take_along(x, idx[:, :, j], axis)
            if self.dtype_name(g) != "float32":
                g = self.cast(g, "float32")
            n, length = self.shape(w)[:2]
            if self.layout == "NHWC":
                wj = self.reshape(w[:, :, j], (n, length, 1, 1) if axis == "h" else (n, 1, length, 1))
            else:
                wj = self.reshape(w[:, :, j], (n, 1, length, 1) if axis == "h" else (n, 1, 1, length))
            t = g * wj
            out = t if out is None else out + t
        return out

    def pack_shape(self, xs: Sequence[Any], what: str = "of one dtype") -> tuple[Any, tuple[int, ...]]:
        """The checks and sizes of a packing: ``(sizes, padded batch shape)`` for images ``xs``
        (each 3-D in this layout; the caller checks that they share a dtype / device), the
        padded height and width rounded up to ``pack_multiple``."""
        import numpy as np

        from ..core.errors import InputError

        shapes = [tuple(self.shape(v)) for v in xs]
        ha, wa, ca = (0, 1, 2) if self.layout == "NHWC" else (1, 2, 0)
        if any(len(s) != 3 for s in shapes):
            raise InputError(f"images of different sizes must each be 3-D and {what}; got shapes {shapes[:4]}...")
        if len({s[ca] for s in shapes}) > 1:
            raise InputError(f"images of different sizes must have one channel count; got {sorted({s[ca] for s in shapes})}")
        sizes = np.asarray([(s[ha], s[wa]) for s in shapes], dtype=np.int64).reshape(-1, 2)
        q = self.pack_multiple
        hm, wm = -(-int(sizes[:, 0].max()) // q) * q, -(-int(sizes[:, 1].max()) // q) * q
        c = shapes[0][ca]
        return sizes, ((len(xs), hm, wm, c) if self.layout == "NHWC" else (len(xs), c, hm, wm))

    def copy_into_corners(self, out: Any, xs: Sequence[Any]) -> Any:
        """Write each image of ``xs`` into the top left of its slot of the mutable batch ``out``."""
        for i, v in enumerate(xs):
            if self.layout == "NHWC":
                out[i, : v.shape[0], : v.shape[1]] = v
            else:
                out[i, :, : v.shape[1], : v.shape[2]] = v
        return out

    def pack_images(self, images: Sequence[Any]) -> tuple[Any, Any]:
        """Images of different sizes (each 3-D in this layout, one dtype and channel count)
        as one zero-padded batch of the largest height and width (rounded up to a multiple
        of ``pack_multiple``), each image at the top left, and their sizes: ``(batch,
        sizes)`` with ``sizes`` an (N, 2) NumPy int64 array of (height, width). Each image
        is copied once (this default: twice)."""
        xs = [self.as_images(im) for im in images]
        if len({self.dtype_name(v) for v in xs}) > 1:
            from ..core.errors import InputError

            raise InputError(f"images of different sizes must be of one dtype; got {sorted({self.dtype_name(v) for v in xs})}")
        sizes, shape = self.pack_shape(xs)
        hm, wm = shape[1:3] if self.layout == "NHWC" else shape[2:4]
        dims = [self.image_dims(self.reshape(v, (1, *self.shape(v)))) for v in xs]
        ha, wa = (0, 1) if self.layout == "NHWC" else (1, 2)
        out = []
        for v, (_, h, w, c) in zip(xs, dims):
            if w < wm:
                pad = [h, wm - w, c] if self.layout == "NHWC" else [c, h, wm - w]
                v = self.concat([v, self.cast(self.zeros(pad), self.dtype_name(v))], axis=wa)
            if h < hm:
                pad = [hm - h, wm, c] if self.layout == "NHWC" else [c, hm - h, wm]
                v = self.concat([v, self.cast(self.zeros(pad), self.dtype_name(v))], axis=ha)
            out.append(v)
        return self.stack(out, axis=0), sizes

    def one_hot(self, ids: Any, k: int) -> Any:
        """(N,) int64 class ids -> (N, k) float32 one-hot rows."""
        return self.cast(self.reshape(ids, (-1, 1)) == self.reshape(self.arange(k), (1, -1)), "float32")

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
        """HSV with H in [0, 1) -> RGB (the inverse of ``rgb_to_hsv``)."""
        h, s, v = self.split_channels(x)
        h6 = (h - self.floor(h)) * 6.0

        def channel(k: float) -> Any:
            kk = k + h6
            kk = kk - 6.0 * self.floor(kk / 6.0)
            return v - v * s * self.clip(self.minimum(kk, 4.0 - kk), 0.0, 1.0)

        return self.merge_channels([channel(5.0), channel(3.0), channel(1.0)])
