"""``fractal``: formula-driven images, one iterated function system (IFS) per class
(FractalDB, Kataoka et al. 2020).

Classes. Class ``c`` of seed ``s`` is a set of 2 to ``max_maps`` contractive affine maps
``f_m(p) = A_m p + b_m``, drawn on the host from SplitMix64 words of ``(s, c, try)``:
``A_m = R(theta) diag(s1, s2) R(phi)`` with singular values ``s1, s2`` in [0.25, 0.8] and
random reflections, ``b_m`` in [-1, 1]^2; a map's probability is proportional to
``max(|det A_m|, 0.02)``. The attractor is centred and scaled into [-0.8, 0.8]^2 (the
maps conjugated by that similarity: ``A`` unchanged, ``b' = s b + t - A t``), and a
system whose attractor fills under 5 % of a 32 x 32 grid (a line, a few points) is
drawn again (the next try). The tables are built once per ``(seed, classes, max_maps)``.

Samples. Each image runs the chaos game from its own key (``core/synthetic.py``; chain
``c`` picks its map at step ``s`` with byte ``s mod 4`` of word ``(s div 4) chains + c`` of
``fast_words``):
``chains`` points start at the fixed point of the class's first map; each step sends
every point through one map, chosen with the class's probabilities; the first
``BURN_IN`` steps are not drawn, then each point is splatted at every step. Each
coefficient of ``A`` is jittered per image by a multiple of 2**-10 in
``[-jitter, jitter]``, so no two images of a class are alike. A pixel's intensity is
``min(hits, cap) / cap`` (``cap`` about half the mean hits per pixel, at least 1), times
the class's colour (one value per channel in [0.5, 1]), on black.

Exactness. Every number is on a grid that float32 holds exactly: the coefficients are
multiples of 2**-10 below 1 in magnitude, the points multiples of 2**-11 in [-2, 2)
(each step is floored back onto that grid), so every product and sum is exact, with or
without fused multiply-adds, and the images are the same on every backend, bit for bit.
No loop runs over the samples: each step is a handful of whole-batch operations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError, SpecError
from ..random import _splitmix64
from ..synthetic import Generator, fast_words, keyed_uniforms
from ..tables import host_table

#: steps of each chain that are not drawn (the points reach the attractor first)
BURN_IN = 6
#: the grids: coefficients in multiples of 2**-COEF_BITS, points of 2**-POINT_BITS
COEF_BITS = 10
POINT_BITS = 11
#: the least share of a 32 x 32 grid an accepted attractor covers
MIN_FILL = 0.05
_M64 = (1 << 64) - 1


def _words(seed: int, c: int, t: int, count: int) -> np.ndarray:
    """``count`` uniforms in [0, 1) (float64) from SplitMix64 of (seed, class, try)."""
    h = _splitmix64(_splitmix64(_splitmix64(int(seed) & _M64) ^ c) ^ t)
    out = np.empty(count, np.float64)
    for i in range(count):
        h = _splitmix64(h)
        out[i] = (h >> 11) * 2.0**-53
    return out  # the same numbers on every machine (integer arithmetic)


def _attractor(a: np.ndarray, b: np.ndarray, points: int = 4096) -> np.ndarray:
    """Points of the attractor (float64, on the host): the first map's fixed point sent
    through every map, level after level, until there are ``points`` of them."""
    q = np.linalg.solve(np.eye(2) - a[0], b[0])[None, :]
    while len(q) < points:
        q = (np.einsum("mij,pj->mpi", a, q) + b[:, None, :]).reshape(-1, 2)
    return q


def _fill(pts: np.ndarray) -> float:
    g = np.floor((pts + 1.0) * 16.0).astype(np.int64)
    ok = ((g >= 0) & (g < 32)).all(axis=1)
    return len({(int(i), int(j)) for i, j in g[ok]}) / 1024.0


def _system(seed: int, c: int, max_maps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ``c``'s maps (A (M, 2, 2), b (M, 2), probabilities (M,)), normalised, on the grids."""
    q = 2.0**COEF_BITS
    for t in range(1000):
        u = _words(seed, c, t, 1 + 8 * max_maps)
        m = 2 + int(u[0] * (max_maps - 1))
        a = np.empty((m, 2, 2))
        b = np.empty((m, 2))
        for j in range(m):
            th, ph, s1, s2, r1, r2, b1, b2 = u[1 + 8 * j: 9 + 8 * j]
            rot = lambda g: np.array([[math.cos(g), -math.sin(g)], [math.sin(g), math.cos(g)]])  # noqa: E731
            sv = np.diag([(0.25 + 0.55 * s1) * (1 if r1 < 0.5 else -1), (0.25 + 0.55 * s2) * (1 if r2 < 0.7 else -1)])
            a[j] = np.round((rot(2 * math.pi * th) @ sv @ rot(2 * math.pi * ph)) * q) / q
            b[j] = (2.0 * b1 - 1.0, 2.0 * b2 - 1.0)
        w = np.maximum(np.abs(np.linalg.det(a)), 0.02)
        p = w / w.sum()
        pts = _attractor(a, b)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        ext = float((hi - lo).max())
        if not np.isfinite(ext) or ext <= 1e-6:
            continue
        s = 1.6 / ext
        tr = -s * (lo + hi) / 2.0
        b2_ = np.stack([s * b[j] + tr - a[j] @ tr for j in range(m)])
        b2_ = np.round(b2_ * 2.0**POINT_BITS) / 2.0**POINT_BITS
        if np.abs(b2_).max() > 1.0:
            continue
        if _fill(_attractor(a, b2_)) < MIN_FILL:
            continue
        return a, b2_, p
    raise SpecError(f"fractal: no system for class {c} of seed {seed} fills {MIN_FILL:.0%} of the grid")


@host_table
def fractal_tables(seed: int, classes: int, max_maps: int) -> dict[str, np.ndarray]:
    """Per class: ``coef`` (K, M, 6) float32 ``(a, b, c, d, e, f)`` of ``x' = a x + b y + e``,
    ``y' = c x + d y + f`` (unused maps 0), ``lut`` (K, 256) float32 the map a byte ``v``
    picks (``sum_m [v >= cut_m]``, ``cut`` the cumulative probabilities in 256ths, at least
    one 256th each), ``start`` (K, 2) the first map's fixed point on the point grid."""
    m = max_maps
    coef = np.zeros((classes, m, 6), np.float32)
    lut = np.zeros((classes, 256), np.float32)
    start = np.zeros((classes, 2), np.float32)
    for c in range(classes):
        a, b, p = _system(seed, c, m)
        k = len(p)
        coef[c, :k, 0], coef[c, :k, 1] = a[:, 0, 0], a[:, 0, 1]
        coef[c, :k, 2], coef[c, :k, 3] = a[:, 1, 0], a[:, 1, 1]
        coef[c, :k, 4], coef[c, :k, 5] = b[:, 0], b[:, 1]
        share = np.maximum(np.round(p * 256.0), 1.0)
        share[np.argmax(share)] += 256.0 - share.sum()
        lut[c] = np.searchsorted(np.cumsum(share)[:-1], np.arange(256), side="right")
        fix = np.linalg.solve(np.eye(2) - a[0], b[0])
        start[c] = np.clip(np.round(fix * 2.0**POINT_BITS) / 2.0**POINT_BITS, -2.0, 2.0 - 2.0**-POINT_BITS)
    return {"coef": coef, "lut": lut, "start": start}


@host_table
def colour_table(seed: int, classes: int, channels: int) -> np.ndarray:
    """(K, C) float32 class colours: multiples of 1/256 in [0.5, 1) (all 1 for one channel)."""
    if channels == 1:
        return np.ones((classes, 1), np.float32)
    out = np.empty((classes, channels), np.float32)
    for c in range(classes):
        out[c] = 0.5 + np.floor(_words(seed ^ 0x5EED, c, 0, channels) * 128.0) / 256.0
    return out


class Fractal(Generator):
    """IFS fractal images, one system per class (see the module notes). ``seed`` picks the
    systems; ``max_maps`` (2 to 8) bounds their maps; ``points`` is the number of points
    splatted per image (default: half the pixel count, within [1024, 65536]); ``chains``
    the chaos-game chains per image; ``jitter`` the per-image change of each coefficient."""

    name = "fractal"
    version = "1"

    def __init__(self, seed: int = 0, max_maps: int = 4, points: int | None = None, chains: int = 64,
                 jitter: float = 0.04):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SpecError(f"fractal: seed must be an integer >= 0, got {seed!r}")
        if isinstance(max_maps, bool) or not isinstance(max_maps, int) or not 2 <= max_maps <= 8:
            raise SpecError(f"fractal: max_maps={max_maps!r} is outside [2, 8]")
        if points is not None and (isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= 1 << 20):
            raise SpecError(f"fractal: points={points!r} is outside [1, 2**20]")
        if isinstance(chains, bool) or not isinstance(chains, int) or not 1 <= chains <= 4096:
            raise SpecError(f"fractal: chains={chains!r} is outside [1, 4096]")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= jitter <= 0.25:
            raise SpecError(f"fractal: jitter={jitter!r} is outside [0, 0.25]")
        self.seed, self.max_maps, self.points, self.chains, self.jitter = seed, max_maps, points, chains, float(jitter)

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "max_maps": self.max_maps, "points": self.points, "chains": self.chains,
                "jitter": self.jitter}

    def check_classes(self, num_classes: int) -> None:
        if num_classes > 100_000:
            raise InputError(f"fractal: {num_classes} classes is more than the 100000 it makes")

    def prepare(self, shape: tuple[int, int, int], num_classes: int) -> None:
        fractal_tables(self.seed, num_classes, self.max_maps)
        colour_table(self.seed, num_classes, shape[2])

    def steps(self, h: int, w: int) -> int:
        """Drawn steps per chain: ``points / chains``, rounded up."""
        pts = self.points if self.points is not None else min(max(h * w // 2, 1024), 65536)
        return -(-pts // self.chains)

    def __call__(self, B: Any, labels: Any, key: Any, shape: tuple[int, int, int], num_classes: int,
                 real: Any = None) -> Any:
        h, w, c = shape
        k = int(num_classes)
        tabs = fractal_tables(self.seed, k, self.max_maps)
        m, p, t = self.max_maps, self.chains, self.steps(h, w)
        n = B.shape(labels)[0]
        coef = B.take(B.asarray(tabs["coef"], "float32"), labels)  # (n, M, 6)
        start = B.take(B.asarray(tabs["start"], "float32"), labels)  # (n, 2)
        # per-image jitter of the linear part: a multiple of 2**-10, |a| kept below 1
        jmax = math.floor(self.jitter * 2.0**COEF_BITS)
        q = 2.0**-COEF_BITS
        if jmax > 0:
            u = B.reshape(keyed_uniforms(B, key, m * 4, stream=1), (-1, m, 4))
            d = (B.floor(u * float(2 * jmax + 1)) - float(jmax)) * q
            lin = B.clip(coef[..., :4] + d, -1.0 + q, 1.0 - q)
            coef = B.concat([lin, coef[..., 4:]], axis=2)
        steps = BURN_IN + t
        # the row of the (n * M)-row coefficient planes each (step, image, chain) reads: the map
        # from the class's byte table (K * 256,), small enough to stay in the cache, at
        # class * 256 + byte, plus image * M
        base = B.reshape(B.cast(B.arange(n), "float32"), (-1, 1)) * float(m)
        table = B.reshape(B.asarray(tabs["lut"], "float32"), (-1,))
        off = B.reshape(B.cast(labels, "float32"), (-1, 1)) * 256.0
        # coefficient planes (n * M,): a point's map is a gather; points in units of 2**-11
        g = float(2**POINT_BITS)
        planes = [B.reshape(coef[..., i] * (g if i >= 4 else 1.0), (-1,)) for i in range(6)]
        lo, top = 1.0 - 2.0 * g, 2.0 * g - 1.0
        px = B.broadcast_to(B.reshape(start[:, 0] * g, (-1, 1)), (n, p))
        py = B.broadcast_to(B.reshape(start[:, 1] * g, (-1, 1)), (n, p))
        # a point's pixel, one pixel of margin for the points outside [-1, 1]^2:
        # col = floor((x + g) w / 2g) + 1, row = floor((g - y) h / 2g) + 1, clipped to the margin
        sx, sy = w / (2.0 * g), h / (2.0 * g)
        bins = []
        for s in range(steps):  # each step on (n, p) arrays, which stay in the cache
            # the map of each chain: byte s % 4 (from the top) of word (s // 4) * p + chain
            q, r = divmod(s, 4)
            if r == 0:
                words = fast_words(B, key, p, stream=2, start=q * p)
            byte = B.cast(B.shr(words if r == 0 else B.mul32(words, 1 << (8 * r)), 24), "float32")
            choice = B.take(table, B.reshape(B.cast(byte + off, "int64"), (-1,)))
            rows = B.cast(B.reshape(choice, (n, p)) + base, "int64")
            rows = B.reshape(rows, (-1,))
            ca, cb, cc, cd, ce, cf = (B.reshape(B.take(pl, rows), (n, p)) for pl in planes)
            nx = ca * px + cb * py + ce  # exact: see the module notes
            ny = cc * px + cd * py + cf
            px = B.clip(B.floor(nx), lo, top)
            py = B.clip(B.floor(ny), lo, top)
            if s >= BURN_IN:
                col = B.clip(B.floor(px * sx + (w / 2.0 + 1.0)), 0.0, float(w + 1))
                row = B.clip(B.floor(py * (-sy) + (h / 2.0 + 1.0)), 0.0, float(h + 1))
                bins.append(row * float(w + 2) + col)
        idx = B.cast(B.concat(bins, axis=1), "int64")
        hits = B.reshape(B.bincount(idx, (h + 2) * (w + 2)), (-1, h + 2, w + 2))[:, 1 : h + 1, 1 : w + 1]
        cap = float(max(1, round(0.5 * p * t / (h * w))))
        img = B.minimum(hits, cap) * (1.0 / cap)
        colour = B.take(B.asarray(colour_table(self.seed, k, c), "float32"), labels)  # (n, C)
        return B.reshape(img, (-1, h, w, 1)) * B.reshape(colour, (-1, 1, 1, c))

