"""Generators: keyed, batched sources of synthetic images (the ``Synthetic`` op's kernels).

A generator is an object made by a registered *factory* from its options
(``registry.add_generator(name, factory)``; ``factory(**options) -> Generator``) and
called on a whole batch, written once against the backend namespace ``B``::

    generator(B, labels, key, shape, num_classes, real=None) -> images  or  (images, soft labels)

- ``labels``: (N,) int64 class ids, the class of each image to make;
- ``key``: (N, 2) ``"uint32"`` words, each image's own key. A generator draws only from
  it (``keyed_uniforms``, ``keyed_words``): an image depends on its key and class alone,
  never on the batch size, its place in the batch or the backend;
- ``shape``: ``(H, W, C)`` Python ints; ``num_classes``: ``K``, the classes of the call;
- ``real``: for a generator that ``reads_batch`` (it makes variants of real samples), the
  batch's ``RealBatch``; None otherwise.

It returns (N, H, W, C) float32 images in [0, 1] (NHWC, whatever the backend's layout),
optionally with (N, K) float32 soft labels that replace the class ids' one-hot rows (a
variant of a real sample takes that sample's label). ``check_output`` stops a wrong shape,
dtype or value with an error naming the generator.

The keyed hash is the sampler's (``core/random.py``): the word ``j`` of stream ``s`` of an
image keyed ``(k0, k1)`` is ``m(m(m(j ^ k0) ^ s ^ k1) ^ k0)``, ``m`` lowbias32, so the
words are the same on every backend, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import InputError, SpecTypeError
from .random import _mix32


@dataclass(frozen=True)
class RealBatch:
    """The real samples a ``reads_batch`` generator may vary: ``x`` (N, H, W, C) float32
    (NHWC), ``y`` (N, K) float32 labels or None, ``available`` (N,) bool (False for the
    samples being replaced)."""

    x: Any
    y: Any
    available: Any


class Generator:
    """Base of a generator (see the module notes). Subclasses set ``name`` and ``version``
    (written to a bank's manifest: a new version means other images for the same keys)
    and implement ``__call__``; ``options()`` returns what rebuilds it from its factory."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: True for a generator that makes variants of the batch's real samples (``real``)
    reads_batch: ClassVar[bool] = False

    def __call__(self, B: Any, labels: Any, key: Any, shape: tuple[int, int, int], num_classes: int,
                 real: RealBatch | None = None) -> Any:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {}

    def prepare(self, shape: tuple[int, int, int], num_classes: int) -> None:
        """Build the host tables a call for images of ``shape`` reads (before any trace)."""

    def check_classes(self, num_classes: int) -> None:
        """Refuse (``InputError``) a class count this generator cannot make."""


# ------------------------------------------------------------------ keyed draws


def key_words(B: Any, u: Any) -> Any:
    """(N, 2) uniform draws in [0, 1) (24 bits each) as (N, 2) ``"uint32"`` key words."""
    return B.cast(B.floor(u * float(1 << 24)), "uint32")


def keyed_words(B: Any, key: Any, count: int, stream: int = 0) -> Any:
    """(N, count) ``"uint32"`` words of each image's key (N, 2), stream ``stream``."""
    k0 = key[:, 0:1]
    k1 = key[:, 1:2]
    j = B.reshape(B.asarray(np.arange(count, dtype=np.uint32), "uint32"), (1, -1))
    x = _mix32(B, B.bitxor(j, k0))
    x = _mix32(B, B.bitxor(B.bitxor(x, int(stream) & 0xFFFFFFFF), k1))
    return _mix32(B, B.bitxor(x, k0))


def fast_words(B: Any, key: Any, count: int, stream: int = 0, start: int = 0) -> Any:
    """(N, count) ``"uint32"`` words ``start .. start + count - 1`` for bulk draws (a chaos
    game's map choices): one lowbias32 round of ``j ^ h``, ``h = m(m(k0 ^ stream) ^ k1)``
    each image's mixed key, a third of ``keyed_words``' work; the same on every backend.
    Asked for in blocks, the words stay in the cache."""
    h = _mix32(B, B.bitxor(_mix32(B, B.bitxor(key[:, 0:1], int(stream) & 0xFFFFFFFF)), key[:, 1:2]))
    j = B.reshape(B.asarray(np.arange(start, start + count, dtype=np.uint32), "uint32"), (1, -1))
    return _mix32(B, B.bitxor(j, h))


def keyed_uniforms(B: Any, key: Any, count: int, stream: int = 0) -> Any:
    """(N, count) float32 uniforms in [0, 1) (24 bits, exact) of each image's key."""
    return B.cast(B.shr(keyed_words(B, key, count, stream), 8), "float32") * (1.0 / (1 << 24))


def row_argmax(B: Any, s: Any) -> Any:
    """The column of each row's largest value of ``s`` (R, L) float32 (the first on ties),
    as (R,) int64: a tree of ``maximum`` over halves, no sort, no host read."""
    r, n = B.shape(s)
    idx = B.broadcast_to(B.reshape(B.cast(B.arange(n), "float32"), (1, -1)), (r, n))
    while n > 1:
        half = (n + 1) // 2
        if n % 2:  # pad with a column that never wins
            s = B.concat([s, 0.0 * s[:, :1] - 3.0e38], axis=1)
            idx = B.concat([idx, idx[:, :1]], axis=1)
        a, b = s[:, :half], s[:, half:]
        take_b = b > a
        s = B.where(take_b, b, a)
        idx = B.where(take_b, idx[:, half:], idx[:, :half])
        n = half
    return B.cast(B.reshape(idx, (-1,)), "int64")


# ------------------------------------------------------------------ checks


def check_output(B: Any, name: str, out: Any, n: Any, shape: tuple[int, int, int], num_classes: int | None,
                 check_values: bool) -> tuple[Any, Any]:
    """``(images, labels or None)`` of a generator's output, or an error naming it: images
    (n, H, W, C) float32; labels (n, K) floating point; where ``check_values`` (a backend
    that reads values at no cost), no NaN or inf and nothing outside [0, 1]."""
    labels = None
    if isinstance(out, tuple):
        if len(out) != 2:
            raise InputError(f"generator {name!r} returned a tuple of {len(out)}; it returns images, or "
                             "(images, soft labels)")
        out, labels = out
    if not B.is_array(out):
        raise InputError(f"generator {name!r} returned a {type(out).__name__}, not an array of this backend")
    s = tuple(B.shape(out))
    want = (n, *shape)
    if len(s) != 4 or any(a is not None and b is not None and _known(a) and _known(b) and a != b
                          for a, b in zip(s, want)):
        raise InputError(f"generator {name!r} returned images of shape {s}; expected {want} (N, H, W, C)")
    dt = B.dtype_name(out)
    if dt != "float32":
        raise InputError(f"generator {name!r} returned images of dtype {dt}; it must return float32 in [0, 1]")
    if labels is not None:
        ls = tuple(B.shape(labels))
        if len(ls) != 2 or (num_classes is not None and _known(ls[1]) and ls[1] != num_classes):
            raise InputError(f"generator {name!r} returned labels of shape {ls}; expected ({n}, {num_classes})")
        labels = B.cast(labels, "float32")
    if check_values:  # a host array (an eager CPU backend): reading it costs nothing
        a = np.asarray(B.to_numpy(out))
        lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
        if not (lo >= 0.0 and hi <= 1.0) and not np.isfinite(a).all():  # NaN fails both comparisons
            raise InputError(f"generator {name!r} returned NaN or inf; a generator returns float32 images in [0, 1]")
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"generator {name!r} returned values in [{a.min():g}, {a.max():g}]; a generator returns "
                             "float32 images in [0, 1]")
    return out, labels


def _known(v: Any) -> bool:
    return isinstance(v, (int, np.integer))


def enter(B: Any, imgs: Any, dtype: str | None, raw: bool) -> Any:
    """Generated float32 images in [0, 1] as they enter a batch of ``dtype``: in that dtype
    (``raw``: uint8 rounded half up, ``floor(255 v + 1/2)``; floats cast), else as float32
    values on that dtype's grid (uint8: the rounded value / 255; floats cast there and back).
    The two agree: a run may add synthetic samples before or after converting its input."""
    if dtype is None or dtype == "float32":
        return imgs
    if dtype == "uint8":  # floor(255 v + 1/2): the cast truncates, which is the floor of v >= 0
        q = B.clip(imgs * 255.0 + 0.5, 0.0, 255.0)
        return B.cast(q, "uint8") if raw else B.floor(q) * (1.0 / 255.0)
    v = B.cast(imgs, dtype)
    return v if raw else B.cast(v, "float32")


def check_generator(name: str, gen: Any) -> Any:
    """A factory's product, or an error naming the generator."""
    if not callable(gen):
        raise SpecTypeError(f"generator {name!r}: its factory returned {type(gen).__name__}, not a callable generator")
    return gen
