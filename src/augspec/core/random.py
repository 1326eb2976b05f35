"""Declarative distributions, key derivation and the counter-based generator.

Randomness is data: an op declares the draws it needs as distributions, and
the sampler turns a key into plain arrays. The generator is counter based and
written once against the backend primitive namespace ``B``: element ``i`` of
draw slot ``d`` is ``hash(d * 2**32 + i, key)``, a pure function. So the same
key gives the same uniforms, bit for bit, on every backend and device, the
values of sample ``i`` do not depend on the batch size, and drawing needs no
host-device traffic.

The hash is Chris Wellons' ``lowbias32`` applied three times with the two
32-bit key words mixed in. It needs only 32-bit unsigned arithmetic: the
backend primitives ``bitxor``, ``shr`` and ``mul32`` (a product modulo 2**32)
on ``"uint32"`` arrays (a backend may hold them in a wider integer type, as
long as the values are the residues modulo 2**32), so it runs where 64-bit
integers are missing or slow (JAX without x64, GPUs).

Keys: ``derive_key(seed, epoch, step, rank, worker)`` folds the five integers
with SplitMix64 into two 32-bit words, on the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF

# Symbolic per-sample dimensions resolved from the image shape at sampling time.
H, W, C = "H", "W", "C"


# --------------------------------------------------------------------------- keys


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def derive_key(seed: int, epoch: int = 0, step: int = 0, rank: int = 0, worker: int = 0) -> tuple[int, int]:
    """Fold (seed, epoch, step, rank, worker) into a key of two 32-bit words."""
    h = _splitmix64(int(seed) & _M64)
    for v in (epoch, step, rank, worker):
        h = _splitmix64(h ^ (int(v) & _M64))
    return h & M32, (h >> 32) & M32


# ---------------------------------------------------------------------- generator


def _mix32(B: Any, x: Any) -> Any:
    x = B.bitxor(x, B.shr(x, 16))
    x = B.mul32(x, 0x7FEB352D)
    x = B.bitxor(x, B.shr(x, 15))
    x = B.mul32(x, 0x846CA68B)
    return B.bitxor(x, B.shr(x, 16))


def counter_words(slot: int, start: int, count: int) -> Any:
    """The (2, count) uint32 counters ``(index, slot)`` of elements ``start ...`` of a draw
    slot, as a NumPy array: row 0 the element index, row 1 the slot."""
    import numpy as np

    out = np.empty((2, count), dtype=np.uint32)
    out[0] = np.arange(start, start + count, dtype=np.uint32)
    out[1] = slot
    return out


def random_bits(B: Any, counters: Any, key: tuple[Any, Any]) -> Any:
    """32 random bits (uint32) for each counter ``(index, slot)``: ``counters`` is a
    (2, n) uint32 array (``counter_words``), ``key`` two uint32 scalars."""
    lo = counters[0]
    hi = counters[1]
    x = _mix32(B, B.bitxor(lo, key[0]))
    x = _mix32(B, B.bitxor(B.bitxor(x, hi), key[1]))
    return _mix32(B, B.bitxor(x, key[0]))


def bits_to_uniform(B: Any, bits: Any) -> Any:
    """The top 24 bits as a float32 in [0, 1): exact, so equal on every backend."""
    return B.cast(B.shr(bits, 8), "float32") * (1.0 / (1 << 24))


# ------------------------------------------------------------------ distributions


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """A draw of ``shape`` values per sample (or for the whole batch).

    ``shape`` may hold the symbols ``H``, ``W`` and ``C``, resolved from the image
    at sampling time. ``per_sample=False`` draws once and repeats for every sample.
    """

    shape: tuple[int | str, ...] = ()
    per_sample: bool = True

    #: uniforms consumed per value
    uniforms: int = field(default=1, init=False, repr=False)

    @property
    def continuous(self) -> bool:
        """True where the values go through transcendental functions (``log``, ``cos``): equal
        across backends to an ulp or so, not bit for bit (``check_backend`` compares them at 1e-6)."""
        return False

    def transform(self, B: Any, u: Any) -> Any:  # u: (..., uniforms) float32
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Uniform(Distribution):
    low: float
    high: float

    def transform(self, B: Any, u: Any) -> Any:
        return self.low + (self.high - self.low) * u[..., 0]


@dataclass(frozen=True, kw_only=True)
class Bernoulli(Distribution):
    p: float

    def transform(self, B: Any, u: Any) -> Any:
        return u[..., 0] < self.p


@dataclass(frozen=True, kw_only=True)
class Normal(Distribution):
    mean: float = 0.0
    std: float = 1.0
    uniforms: int = field(default=2, init=False, repr=False)

    @property
    def continuous(self) -> bool:
        return True

    def transform(self, B: Any, u: Any) -> Any:
        return self.mean + self.std * _box_muller(B, u[..., 0], u[..., 1])


def _box_muller(B: Any, u1: Any, u2: Any) -> Any:
    return B.sqrt(-2.0 * B.log(1.0 - u1)) * B.cos((2.0 * math.pi) * u2)


_GAMMA_ROUNDS = 6


def _gamma(B: Any, alpha: float, u: Any) -> Any:
    """Gamma(alpha, 1) by Marsaglia-Tsang with a fixed number of vectorized rounds.

    ``u`` holds 3 uniforms per round (+1 for alpha < 1). A round accepts with
    probability > 0.95 for shape >= 1; after all rounds fail (odds < 1e-7) the
    mode-like value ``d`` stands in.
    """
    return B.exp(_log_gamma(B, alpha, u))


def _log_gamma(B: Any, alpha: float, u: Any) -> Any:
    """The log of a Gamma(alpha, 1) draw (see ``_gamma``). In log space the boost for
    alpha < 1, ``g * U^(1/alpha)``, cannot underflow float32 (it does for small alpha)."""
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = None
    done = None
    for r in range(_GAMMA_ROUNDS):
        z = _box_muller(B, u[..., 3 * r], u[..., 3 * r + 1])
        v = 1.0 + c * z
        v3 = v * v * v
        lu = B.log(1.0 - u[..., 3 * r + 2])
        safe_v3 = B.where(v3 > 0, v3, 1.0)
        ok = (v3 > 0) & (lu < 0.5 * z * z + d - d * safe_v3 + d * B.log(safe_v3))
        cand = d * safe_v3
        if out is None:
            out, done = B.where(ok, cand, d + 0.0 * cand), ok
        else:
            out = B.where(done, out, B.where(ok, cand, out))
            done = done | ok
    out = B.log(out)
    if boost:
        ub = 1.0 - u[..., 3 * _GAMMA_ROUNDS]
        out = out + B.log(ub) / alpha
    return out


def _gamma_uniforms(alpha: float) -> int:
    return 3 * _GAMMA_ROUNDS + (1 if alpha < 1.0 else 0)


@dataclass(frozen=True, kw_only=True)
class Beta(Distribution):
    a: float
    b: float

    @property
    def continuous(self) -> bool:
        return True

    def __post_init__(self) -> None:
        object.__setattr__(self, "uniforms", _gamma_uniforms(self.a) + _gamma_uniforms(self.b))

    def transform(self, B: Any, u: Any) -> Any:
        # X / (X + Y) = 1 / (1 + exp(log Y - log X)) with X ~ Gamma(a), Y ~ Gamma(b), in log
        # space so that small shapes (whose draws underflow float32) stay exact near 0 and 1
        na = _gamma_uniforms(self.a)
        lx = _log_gamma(B, self.a, u[..., :na])
        ly = _log_gamma(B, self.b, u[..., na:])
        return 1.0 / (1.0 + B.exp(B.clip(ly - lx, -80.0, 80.0)))


@dataclass(frozen=True, kw_only=True)
class Categorical(Distribution):
    """An index in ``range(len(weights))`` drawn with the (normalised) weights."""

    weights: tuple[float, ...]

    def transform(self, B: Any, u: Any) -> Any:
        total = float(sum(self.weights))
        idx = 0 * B.cast(u[..., 0] < 0, "int64")
        acc = 0.0
        for w in self.weights[:-1]:
            acc += w / total
            idx = idx + B.cast(u[..., 0] >= acc, "int64")
        return idx


@dataclass(frozen=True, kw_only=True)
class Magnitude(Distribution):
    """A policy op's strength, per sample (``core/ops/policy.py``). A level ``l`` is drawn by
    ``mode``:

    - ``"fixed"``: ``l = level``;
    - ``"normal"``: ``l = N(level, std)`` clipped to ``[0, level_max]`` (timm's ``mstd``);
    - ``"uniform"``: ``l ~ U(0, level)`` (timm's ``mstd`` above 100);
    - ``"bins"``: ``l`` a whole number uniform in ``[0, bins)`` (TrivialAugment, AugMix);

    and mapped to ``v = offset + s * scale * F(low + (high - low) * l / max_level)``, with ``F``
    the floor where ``floor`` (timm's ``int()``) else the identity, ``s = -1`` with probability
    1/2 where ``signed`` else 1, then ``v = max(v, minimum)``. Uniforms: two for the level
    (Box-Muller), one for the sign."""

    mode: str = "fixed"
    level: float = 0.0
    std: float = 0.0
    bins: int = 1
    max_level: float = 10.0
    level_max: float | None = None
    low: float = 0.0
    high: float = 1.0
    floor: bool = False
    scale: float = 1.0
    signed: bool = False
    offset: float = 0.0
    minimum: float | None = None
    uniforms: int = field(default=3, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "normal", "uniform", "bins"):
            raise SpecError(f"Magnitude: mode={self.mode!r} is not one of ['fixed', 'normal', 'uniform', 'bins']")

    @property
    def continuous(self) -> bool:  # type: ignore[override]
        return self.mode in ("normal", "uniform")

    def value(self, level: float, sign: float) -> float:
        """The parameter at ``level`` and ``sign`` (+1 or -1), in float64 on the host."""
        v = self.low + (self.high - self.low) * level / self.max_level
        v = math.floor(v) if self.floor else v
        v = self.offset + sign * self.scale * v
        return v if self.minimum is None else max(v, self.minimum)

    def table(self) -> Any:
        """The (levels, 2) float32 host table of ``value(k, +1)`` and ``value(k, -1)`` for the
        whole levels of ``bins`` (or the one ``level`` of ``fixed``): those modes read it, so
        their values are the same on every backend, bit for bit."""
        import numpy as np

        ks = [float(self.level)] if self.mode == "fixed" else [float(k) for k in range(self.bins)]
        neg = -1.0 if self.signed else 1.0
        return np.array([[self.value(k, 1.0), self.value(k, neg)] for k in ks], dtype=np.float32)

    def transform(self, B: Any, u: Any) -> Any:
        u0 = u[..., 0]
        if self.mode in ("fixed", "bins"):  # exact: a host table, one lookup, one select
            k = 0.0 * u0 if self.mode == "fixed" else B.floor(u0 * float(self.bins))
            rows = B.take(B.asarray(self.table(), "float32"), B.reshape(B.cast(k, "int32"), (-1,)))
            rows = B.reshape(rows, tuple(B.shape(u0)) + (2,))
            return B.where(u[..., 2] < 0.5, rows[..., 0], rows[..., 1])
        if self.mode == "normal":
            top = float(self.max_level if self.level_max is None else self.level_max)
            lv = B.clip(float(self.level) + float(self.std) * _box_muller(B, u0, u[..., 1]), 0.0, top)
        else:
            lv = float(self.level) * u0
        # product first, then one division: a level whose exact value is a whole number maps to it exactly
        v = float(self.low) + ((float(self.high) - float(self.low)) * lv) / float(self.max_level)
        if self.floor:
            v = B.floor(v)
        v = v * float(self.scale)
        if self.signed:
            v = B.where(u[..., 2] < 0.5, v, -v)
        v = v + float(self.offset)
        return v if self.minimum is None else B.maximum(v, 0.0 * v + float(self.minimum))


@dataclass(frozen=True, kw_only=True)
class Permutation(Distribution):
    """A random permutation of the batch: partner ``perm[i]`` of sample ``i``."""

    def __post_init__(self) -> None:
        if self.shape:
            raise SpecError("Permutation: shape must be () (one partner per sample)")


# ------------------------------------------------------------------------ sampler


def resolve_shape(shape: Sequence[int | str], image_hwc: tuple[int, int, int] | None, who: str) -> tuple[int, ...]:
    out = []
    for s in shape:
        if isinstance(s, str):
            if image_hwc is None:
                raise SpecError(
                    f"{who}: its draws depend on the image size; pass image_shape= to sample()"
                )
            out.append(image_hwc[{"H": 0, "W": 1, "C": 2}[s]])
        else:
            out.append(int(s))
    return tuple(out)


@dataclass(frozen=True)
class DrawSpec:
    """One declared draw of a pipeline: the params key, its distribution and its slot."""

    key: str
    dist: Distribution
    slot: int


class Sampler:
    """Turns a key into the params of every draw of a pipeline, in one hash pass."""

    def __init__(self, draws: Sequence[DrawSpec]):
        self.draws = tuple(draws)
        #: ``hwc -> {leaf path: hwc}``: the image shape each op's draws see, where ops before
        #: it change the size (set by the plan); None: every draw sees the input's
        self.image_shapes: Any = None
        self._layout_cache: dict[tuple, tuple] = {}
        self._beta_cache: dict[tuple, tuple] = {}

    def _layout(self, batch_size: int, image_hwc: tuple[int, int, int] | None):
        ck = (batch_size, image_hwc)
        if ck not in self._layout_cache:
            entries = []
            pieces = []  # (slot, count) for the counter vector
            offset = 0
            shapes = self.leaf_shapes(image_hwc)
            for d in self.draws:
                vshape = self.value_shape(d, image_hwc, shapes)
                nvals = math.prod(vshape)
                rows = batch_size if d.dist.per_sample else 1
                if isinstance(d.dist, Permutation):
                    nuni, rows, nvals = 1, batch_size, 1
                else:
                    nuni = d.dist.uniforms
                count = rows * nvals * nuni
                entries.append((d, offset, rows, vshape, nuni))
                pieces.append((d.slot, count))
                offset += count
            self._layout_cache[ck] = (tuple(entries), tuple(pieces), offset)
        return self._layout_cache[ck]

    def leaf_shapes(self, image_hwc: tuple[int, int, int] | None) -> dict[str, Any]:
        """``image_shapes(image_hwc)``, or {} where every draw sees the input's shape."""
        return self.image_shapes(image_hwc) if self.image_shapes is not None and image_hwc is not None else {}

    def value_shape(self, d: DrawSpec, image_hwc: tuple[int, int, int] | None,
                    shapes: dict[str, Any] | None = None) -> tuple[int, ...]:
        """The shape of one sample's values of draw ``d`` for an input image of ``image_hwc``
        (``shapes``: ``leaf_shapes(image_hwc)``, computed once by the caller)."""
        shapes = self.leaf_shapes(image_hwc) if shapes is None else shapes
        return resolve_shape(d.dist.shape, shapes.get(d.key.rsplit("/", 1)[0], image_hwc), d.key)

    def prepare(self, batch_size: int, image_hwc: tuple[int, int, int] | None) -> None:
        """Build the host-side layout and constants of a batch shape ahead of a call (a
        compiled call then only reads them: nothing changes between traces)."""
        entries, _, _ = self._layout(batch_size, image_hwc)
        ck = (batch_size, image_hwc)
        betas = [(d.dist, rows * math.prod(vs)) for d, _, rows, vs, _ in entries if isinstance(d.dist, Beta)]
        if betas and ck not in self._beta_cache:
            self._beta_cache[ck] = _gamma_constants(betas)

    def counters_numpy(self, batch_size: int, image_hwc: tuple[int, int, int] | None):
        """The (2, total) uint32 counters ``(index, slot)`` of every draw, built with NumPy
        (a backend may cache them on its device)."""
        import numpy as np

        _, pieces, total = self._layout(batch_size, image_hwc)
        out = np.empty((2, total), dtype=np.uint32)
        o = 0
        for slot, count in pieces:
            out[:, o : o + count] = counter_words(slot, 0, count)
            o += count
        return out

    def sample(
        self,
        B: Any,
        batch_size: int,
        key: tuple[Any, Any],
        image_hwc: tuple[int, int, int] | None = None,
        counters: Any = None,
    ) -> dict[str, Any]:
        entries, _, total = self._layout(batch_size, image_hwc)
        if counters is None:
            counters = B.asarray(self.counters_numpy(batch_size, image_hwc), "uint32")
        params: dict[str, Any] = {}
        if total == 0:  # empty draws keep their dtypes: uint32 bits, float32 uniforms
            bits = counters[0]
            uni = bits_to_uniform(B, bits)
        else:
            bits = random_bits(B, counters, key)
            uni = bits_to_uniform(B, bits)  # one conversion for every draw
        betas = []
        for d, off, rows, vshape, nuni in entries:
            n = rows * math.prod(vshape) * nuni
            if isinstance(d.dist, Permutation):
                # a stable sort of the bits: ties (equal bits) keep the sample order
                params[d.key] = B.argsort(bits[off : off + n])
                continue
            u = B.reshape(uni[off : off + n], (rows, *vshape, nuni))
            if isinstance(d.dist, Beta):
                betas.append((d, u, rows, vshape))
                continue
            params[d.key] = self._per_batch(B, d.dist.transform(B, u), d, batch_size, vshape)
        if betas:
            for (d, _, rows, vshape), v in zip(betas, self._betas(B, betas, batch_size, image_hwc)):
                params[d.key] = self._per_batch(B, B.reshape(v, (rows, *vshape)), d, batch_size, vshape)
        return params

    @staticmethod
    def _per_batch(B: Any, v: Any, d: DrawSpec, batch_size: int, vshape: tuple[int, ...]) -> Any:
        return v if d.dist.per_sample else B.broadcast_to(v, (batch_size, *vshape))

    def _betas(self, B: Any, betas: list, batch_size: int, image_hwc: Any) -> list[Any]:
        """Every Beta draw of the pipeline in ONE vectorized Gamma evaluation: the rows of
        all the Gammas side by side (per-row constants), the six Marsaglia-Tsang rounds
        of a row side by side, the first accepted round picked by a where-chain. The
        values are ``Beta.transform``'s; the kernel count does not grow with the draws."""
        self.prepare(batch_size, image_hwc)
        dd, cc, alpha, boost = (B.asarray(a, "float32") for a in self._beta_cache[(batch_size, image_hwc)])
        r3 = 3 * _GAMMA_ROUNDS
        rounds, extra = [], []
        for d, u, rows, vshape in betas:
            m = rows * math.prod(vshape)
            na = _gamma_uniforms(d.dist.a)
            flat = B.reshape(u, (m, d.dist.uniforms))
            for lo, hi in ((0, na), (na, d.dist.uniforms)):
                rounds.append(B.reshape(flat[:, lo : lo + r3], (m, _GAMMA_ROUNDS, 3)))
                extra.append(flat[:, lo + r3] if hi - lo > r3 else flat[:, lo])  # unused where no boost
        lg = _log_gamma_rows(B, B.concat(rounds, axis=0), B.concat(extra, axis=0), dd, cc, alpha, boost)
        out, o = [], 0
        for _d, _, rows, vshape in betas:
            m = rows * math.prod(vshape)
            lx, ly = lg[o : o + m], lg[o + m : o + 2 * m]
            out.append(1.0 / (1.0 + B.exp(B.clip(ly - lx, -80.0, 80.0))))
            o += 2 * m
        return out


def _gamma_constants(blocks: list[tuple[Beta, int]]) -> tuple[Any, Any, Any, Any]:
    """Per-row (d, c, alpha, boost) of the Gammas of Beta draws, rows ordered as ``_betas``
    stacks them (for each draw: its X rows, then its Y rows), as float32 NumPy arrays."""
    import numpy as np

    d_, c_, al_, bo_ = [], [], [], []
    for dist, m in blocks:
        for alpha in (dist.a, dist.b):
            boost = alpha < 1.0
            a = alpha + 1.0 if boost else alpha
            d = a - 1.0 / 3.0
            d_ += [d] * m
            c_ += [1.0 / math.sqrt(9.0 * d)] * m
            al_ += [alpha] * m
            bo_ += [1.0 if boost else 0.0] * m
    return tuple(np.asarray(v, np.float32) for v in (d_, c_, al_, bo_))


def _log_gamma_rows(B: Any, u: Any, ub: Any, d: Any, c: Any, alpha: Any, boost: Any) -> Any:
    """``_log_gamma`` for rows with their own constants: ``u`` (M, rounds, 3), ``ub`` (M,)
    the boost uniform, ``d, c, alpha, boost`` (M,); the same arithmetic, so the same values."""
    dcol, ccol = B.reshape(d, (-1, 1)), B.reshape(c, (-1, 1))
    z = _box_muller(B, u[..., 0], u[..., 1])
    v = 1.0 + ccol * z
    v3 = v * v * v
    lu = B.log(1.0 - u[..., 2])
    safe = B.where(v3 > 0, v3, 1.0)
    ok = (v3 > 0) & (lu < 0.5 * z * z + dcol - dcol * safe + dcol * B.log(safe))
    cand = dcol * safe
    out = d
    for r in reversed(range(_GAMMA_ROUNDS)):  # the first accepted round wins
        out = B.where(ok[:, r], cand[:, r], out)
    return B.log(out) + (B.log(1.0 - ub) / alpha) * boost
