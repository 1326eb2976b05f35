"""Synthetic data: generate images from a registered generator, and banks of them.

    import augspec as aug
    x, y = aug.synthetic.generate("fractal", 10_000, (16, 16, 1), num_classes=100, seed=0)
    aug.synthetic.bank("fractal", 50_000, "fractals/", seed=0, shape=(64, 64, 3), num_classes=1000)
    pipe = aug.Pipeline([aug.Synthetic("bank", ratio=0.25, options={"path": "fractals/"}), ...])

**Keys.** Image ``i`` of ``generate`` / ``bank`` with seed ``s`` has the key
``derive_key(s, step=i)`` (two 32-bit words) and the class ``i mod K`` (balanced), so it
depends on ``(generator, options, s, i)`` alone: a bank of 100 images is the first 100 of
a bank of 1000.

**A bank** is a folder: ``manifest.json`` and shards ``images-00000.npy`` (uint8, NHWC,
at most ``SHARD`` images each). The manifest records the format, the generator's name,
version and options, the seed, the image shape, the classes, each shard's file name,
count and SHA-256, and each image's key and label. ``Bank(path)`` (the ``bank``
generator) reads it back: it refuses a manifest of another format, a missing, truncated
or changed shard (by its name and digest), and serves, for a class and a key, one of the
bank's images of that class (``floor(u K_c)``-th, ``u`` the key's first uniform, ``K_c``
the class's image count), so a slow generator runs once and every run after is
reproducible.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import InputError, SpecError
from .core.random import derive_key
from .core.synthetic import Generator, keyed_uniforms

__all__ = ["generate", "bank", "Bank", "BANK_FORMAT", "SHARD"]

#: the manifest's format tag and version
BANK_FORMAT = "augspec-bank"
BANK_VERSION = 1
#: the most images per shard
SHARD = 4096


def _generator(generator: Any, options: dict[str, Any] | None) -> tuple[str, Any]:
    """(name, generator object) of a registered name (built with ``options``) or an object."""
    if isinstance(generator, str):
        from .core.registry import get_registry

        return generator, get_registry().get_generator(generator).make(dict(options or {}))
    if options:
        raise SpecError("options are for a generator given by name; this one is already built")
    if not callable(generator):
        raise SpecError(f"generator must be a registered name or a generator, got {generator!r}")
    return getattr(generator, "name", "") or type(generator).__name__, generator


def _keys(seed: int, start: int, count: int) -> np.ndarray:
    return np.array([derive_key(seed, 0, i) for i in range(start, start + count)], dtype=np.uint32).reshape(-1, 2)


def _check_shape(shape: Any) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be (height, width, channels), got {shape!r}") from None
    if h < 1 or w < 1 or not 1 <= c <= 16:
        raise InputError(f"shape must be positive (height, width, channels <= 16), got {shape!r}")
    return h, w, c


def generate(generator: Any, n: int, shape: Any, *, num_classes: int, seed: int = 0, options: dict | None = None,
             backend: str = "numpy", batch_size: int = 1024, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + n - 1`` of ``generator`` (see the module notes) as
    ``(images (n, H, W, C) float32 in [0, 1], labels (n,) int64)`` NumPy arrays, made on
    ``backend`` ``batch_size`` at a time. A generator that reads the batch (``elastic``)
    cannot run alone."""
    from .core.registry import load_backend
    from .core.synthetic import check_output

    name, gen = _generator(generator, options)
    if getattr(gen, "reads_batch", False):
        raise SpecError(f"generator {name!r} makes variants of a batch's real samples: use it in Synthetic")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    h, w, c = _check_shape(shape)
    B = load_backend(backend)
    if hasattr(gen, "check_classes"):
        gen.check_classes(num_classes)
    if hasattr(gen, "prepare"):
        gen.prepare((h, w, c), num_classes)
    xs = np.empty((n, h, w, c), np.float32)
    ys = (np.arange(start, start + n) % num_classes).astype(np.int64)
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        key = B.asarray(_keys(seed, start + lo, hi - lo), "uint32")
        labels = B.asarray(ys[lo:hi], "int64")
        try:
            out = gen(B, labels, key, (h, w, c), num_classes)
        except (InputError, SpecError):
            raise
        except Exception as e:
            raise InputError(f"generator {name!r} raised {type(e).__name__}: {e}") from e
        imgs, _ = check_output(B, name, out, hi - lo, (h, w, c), num_classes, True)
        xs[lo:hi] = np.asarray(B.to_numpy(imgs))
    return xs, ys


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bank(generator: Any, n: int, out_dir: Any, seed: int = 0, *, shape: Any = (64, 64, 3), num_classes: int = 10,
         options: dict | None = None, backend: str = "numpy", batch_size: int = 1024) -> Path:
    """Write ``n`` images of ``generator`` (uint8, rounded half up) and a manifest to
    ``out_dir`` (created; a folder holding a bank already is refused): see the module
    notes. Returns the manifest's path."""
    name, gen = _generator(generator, options)
    out = Path(out_dir)
    man = out / "manifest.json"
    if man.exists():
        raise InputError(f"{out} holds a bank already (manifest.json); write the new one elsewhere")
    out.mkdir(parents=True, exist_ok=True)
    h, w, c = _check_shape(shape)
    shards = []
    for j, lo in enumerate(range(0, n, SHARD)):
        hi = min(n, lo + SHARD)
        x, _ = generate(gen, hi - lo, (h, w, c), num_classes=num_classes, seed=seed, backend=backend,
                        batch_size=batch_size, start=lo)
        fname = f"images-{j:05d}.npy"
        np.save(out / fname, np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), allow_pickle=False)
        shards.append({"file": fname, "count": hi - lo, "sha256": _sha256(out / fname)})
    manifest = {
        "format": BANK_FORMAT, "version": BANK_VERSION,
        "generator": name, "generator_version": str(getattr(gen, "version", "")),
        "options": gen.options() if hasattr(gen, "options") else {},
        "seed": int(seed), "shape": [h, w, c], "num_classes": int(num_classes), "dtype": "uint8",
        "shards": shards,
        "keys": _keys(seed, 0, n).tolist(),
        "labels": (np.arange(n) % num_classes).tolist(),
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, man)
    return man


def _field(man: dict, key: str, kind: Any, path: Path) -> Any:
    v = man.get(key)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise InputError(f"bank {path}: manifest field {key!r} is missing or malformed")
    return v


class Bank(Generator):
    """A bank written by ``bank`` read back as a generator (see the module notes)."""

    name = "bank"
    version = "1"

    def __init__(self, path: Any):
        self.path = Path(path)
        man_path = self.path / "manifest.json"
        try:
            man = json.loads(man_path.read_text())
        except FileNotFoundError:
            raise InputError(f"bank {self.path}: no manifest.json") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"bank {self.path}: manifest.json is not valid JSON ({e})") from None
        if not isinstance(man, dict) or man.get("format") != BANK_FORMAT:
            raise InputError(f"bank {self.path}: manifest.json is not an augspec bank (format {BANK_FORMAT!r})")
        if man.get("version") != BANK_VERSION:
            raise InputError(f"bank {self.path}: format version {man.get('version')!r}; this augspec reads "
                             f"{BANK_VERSION}")
        shape = _field(man, "shape", list, self.path)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise InputError(f"bank {self.path}: manifest field 'shape' is malformed: {shape!r}")
        self.shape = tuple(shape)
        self.num_classes = _field(man, "num_classes", int, self.path)
        labels = np.asarray(_field(man, "labels", list, self.path), dtype=np.int64)
        keys = np.asarray(_field(man, "keys", list, self.path), dtype=np.int64)
        parts = []
        for sh in _field(man, "shards", list, self.path):
            if not isinstance(sh, dict) or not isinstance(sh.get("file"), str) or "/" in sh["file"] \
                    or "\\" in sh["file"] or sh["file"].startswith("."):
                raise InputError(f"bank {self.path}: a malformed shard entry {sh!r}")
            f = self.path / sh["file"]
            if not f.is_file():
                raise InputError(f"bank {self.path}: shard {sh['file']} is missing")
            if _sha256(f) != sh.get("sha256"):
                raise InputError(f"bank {self.path}: shard {sh['file']} does not match its SHA-256 in the manifest "
                                 "(changed or truncated)")
            a = np.load(f, allow_pickle=False)
            if a.dtype != np.uint8 or a.shape != (sh.get("count"), *self.shape):
                raise InputError(f"bank {self.path}: shard {sh['file']} holds {a.dtype} {a.shape}, not uint8 "
                                 f"{(sh.get('count'), *self.shape)}")
            parts.append(a)
        images = np.concatenate(parts) if parts else np.zeros((0, *self.shape), np.uint8)
        if not (len(images) == len(labels) == len(keys)):
            raise InputError(f"bank {self.path}: {len(images)} images but {len(labels)} labels and {len(keys)} keys")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise InputError(f"bank {self.path}: labels outside [0, {self.num_classes})")
        self.manifest = man
        self.keys, self.labels = keys, labels
        order = np.argsort(labels, kind="stable")
        self.images = np.ascontiguousarray(images[order])  # grouped by class
        self.count = np.bincount(labels, minlength=self.num_classes).astype(np.float32)
        self.start = np.concatenate([[0], np.cumsum(self.count)[:-1]]).astype(np.float32)

    def options(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __len__(self) -> int:
        return len(self.labels)

    def check_classes(self, num_classes: int) -> None:
        if num_classes > self.num_classes or (self.count[:num_classes] == 0).any():
            raise InputError(f"bank {self.path}: a call with {num_classes} classes needs images of each; the bank has "
                             f"{self.num_classes} classes, with counts {self.count[:num_classes].astype(int).tolist()}")

    def __call__(self, B: Any, labels: Any, key: Any, shape: tuple[int, int, int], num_classes: int,
                 real: Any = None) -> Any:
        if tuple(shape) != self.shape:
            raise InputError(f"bank {self.path}: holds images of {self.shape} (H, W, C); the batch's are {tuple(shape)}")
        self.check_classes(num_classes)
        u = keyed_uniforms(B, key, 1)[:, 0]
        cnt = B.take(B.asarray(self.count, "float32"), labels)
        first = B.take(B.asarray(self.start, "float32"), labels)
        idx = B.cast(first + B.minimum(B.floor(u * cnt), cnt - 1.0), "int64")
        imgs = B.take(B.asarray(self.images, "uint8"), idx)
        return B.cast(imgs, "float32") * (1.0 / 255.0)
