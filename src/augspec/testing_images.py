"""Test data: ``write_image_folder`` writes a small ``root/<class>/<file>`` folder of
real photographs (scikit-image's bundled ones, resized with Pillow) as JPEG and PNG
files of several sizes and aspect ratios, for tests of :mod:`augspec.datasets` and
of loaders built on it. Needs scikit-image and Pillow (``pip install 'augspec[demo]'``).

    from augspec.testing_images import write_image_folder

    written = write_image_folder(tmp_path / "train", per_class=3, classes=("a", "b"))
    written["shape"][path]    # (h, w) that path decodes to
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_SIZES", "PHOTOS", "write_image_folder", "photo"]

#: (height, width) of the files written, in turn: landscape, portrait, 4:3, 2:3, small and odd
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((375, 500), (500, 375), (480, 640), (500, 333), (131, 97))
#: the scikit-image photographs used, in turn
PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket")


@functools.cache
def _photo(name: str) -> Any:
    from skimage import data

    a = getattr(data, name)()
    a.setflags(write=False)
    return a


def photo(name: str, size: tuple[int, int]) -> Any:
    """The scikit-image photograph ``name`` (RGB, or L for a grayscale one such as
    ``camera``) resized to ``size = (h, w)`` with Pillow (bicubic): a PIL Image."""
    from PIL import Image

    h, w = size
    return Image.fromarray(_photo(name)).resize((w, h), Image.Resampling.BICUBIC)


def write_image_folder(root: str | os.PathLike[str], *, per_class: int = 3, classes: Sequence[str] = ("a", "b"),
                       sizes: Sequence[tuple[int, int]] | None = None, corrupt: bool = False,
                       seed: int = 0) -> dict[str, Any]:
    """Write ``root/<class>/<file>``: ``per_class`` RGB photographs per class, JPEG
    and PNG in turn, sized ``sizes`` in turn (``(h, w)`` pairs; default
    :data:`DEFAULT_SIZES`), the photograph of each chosen by ``seed``; plus one
    grayscale JPEG in the first class and one RGBA PNG in the last (both decode to
    RGB); with ``corrupt=True`` also one truncated JPEG in the last class.

    Returns the paths (str) written by kind: ``"jpeg"``, ``"png"`` (the RGB ones),
    ``"gray"``, ``"rgba"``, ``"corrupt"``; ``"images"`` every decodable one, sorted;
    and ``"shape"`` (path: ``(h, w)``) and ``"label"`` (path: class index) for those."""
    import numpy as np
    from PIL import Image

    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    if not classes:
        raise ValueError("classes must name at least one class")
    sizes = tuple(tuple(s) for s in (sizes or DEFAULT_SIZES))
    rng = np.random.default_rng(seed)
    root = os.fspath(root)
    out: dict[str, Any] = {k: [] for k in ("jpeg", "png", "gray", "rgba", "corrupt")}
    out["shape"], out["label"] = {}, {}

    def put(kind: str, path: str, size: tuple[int, int], label: int) -> None:
        out[kind].append(path)
        out["shape"][path], out["label"][path] = size, label

    k = 0
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            size = sizes[k % len(sizes)]
            pic = photo(PHOTOS[int(rng.integers(len(PHOTOS)))], size)
            if k % 2 == 0:
                path = os.path.join(folder, f"{i:03d}.jpg")
                pic.save(path, quality=90)
                put("jpeg", path, size, label)
            else:
                path = os.path.join(folder, f"{i:03d}.png")
                pic.save(path)
                put("png", path, size, label)
            k += 1
    size = sizes[k % len(sizes)]
    path = os.path.join(root, classes[0], "gray.jpg")
    photo("camera", size).save(path, quality=90)
    put("gray", path, size, 0)
    size = sizes[(k + 1) % len(sizes)]
    rgba = photo(PHOTOS[int(rng.integers(len(PHOTOS)))], size).convert("RGBA")
    h, w = size
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))))
    path = os.path.join(root, classes[-1], "rgba.png")
    rgba.save(path)
    put("rgba", path, size, len(classes) - 1)
    if corrupt:
        good = os.path.join(root, classes[-1], "truncated.jpg")
        photo(PHOTOS[0], sizes[0]).save(good, quality=90)
        with open(good, "rb") as f:
            data = f.read()
        with open(good, "wb") as f:
            f.write(data[: len(data) // 2])
        out["corrupt"].append(good)
    out["images"] = sorted(out["shape"])
    return out
