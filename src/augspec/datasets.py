"""From a folder of image files to samples: ``scan_folder``, ``decode_image`` and
``ImageFolderSamples``. Framework-free; NumPy and Pillow are imported when used.

    from augspec.datasets import ImageFolderSamples

    ds = ImageFolderSamples("train/", min_size=224)   # train/<class>/<file>
    image, label = ds[0]                              # (H, W, 3) uint8 RGB, int

Conventions:

- Layout: ``root/<class>/<file>``; the classes are the sub-folders of ``root``
  sorted by name, a class's index its position in that order. A class folder's
  images are found at any depth below it (hidden files and folders skipped) and
  ordered as torchvision's ``ImageFolder`` orders them (by folder, then file name).
- Images: HWC uint8 RGB, each at its own size, in display orientation (the EXIF
  orientation applied). Grayscale, palette, 1-bit, CMYK and alpha images become
  RGB (alpha dropped, as Pillow's ``convert("RGB")``); 16-bit grayscale is scaled
  to 8 bits (``value >> 8``), not clipped.
- ``min_size``: ``(h, w)``, or an int ``s`` for ``(s, s)``: a JPEG may be decoded
  at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's ``Image.draft``), the
  largest reduction that keeps its height ``>= h`` and its width ``>= w``; so an
  int bounds the shorter side, and nothing comes out smaller than requested
  unless the file itself is. Other formats decode at full size.
- Errors: a file that cannot be decoded (corrupt, truncated, not an image) raises
  :class:`~augspec.core.errors.InputError` naming its path, the original error
  chained; nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .core.errors import InputError, SpecError, SpecTypeError

__all__ = ["IMAGE_EXTENSIONS", "scan_folder", "decode_image", "ImageFolderSamples"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # the orientations that transpose: the stored image is (w, h) of the displayed one


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _class_files(folder: str) -> list[str]:
    """The image files below ``folder`` (following links, each real folder once), in
    torchvision's order: by the folder's path, then by file name."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend((dirpath, f) for f in filenames if _is_image_name(f))
    found.sort()
    return [os.path.join(d, f) for d, f in found]


def scan_folder(root: str | os.PathLike[str]) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, classes)`` of a ``root/<class>/<file>`` folder: ``classes`` the
    sub-folder names sorted, ``samples`` the ``(path, class index)`` of every image
    file (extensions :data:`IMAGE_EXTENSIONS`, any case; hidden names skipped), class
    by class, each class's files in order. Raises ``InputError`` when ``root`` is not
    a folder, holds no class folder, or a class folder holds no image."""
    root = os.fspath(root)
    if not os.path.exists(root):
        raise InputError(f"image folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise InputError(f"image folder {root!r} is not a folder")
    with os.scandir(root) as it:
        classes = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    if not classes:
        raise InputError(f"image folder {root!r} has no class folder: expected the layout {root}/<class>/<image file>")
    samples: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = _class_files(folder)
        if not files:
            raise InputError(f"class folder {folder!r} has no image file ({' '.join(IMAGE_EXTENSIONS)})")
        samples.extend((f, index) for f in files)
    return samples, classes


def _min_size(min_size: Any) -> tuple[int, int] | None:
    if min_size is None:
        return None
    if isinstance(min_size, bool):
        raise SpecTypeError(f"min_size: expected an int or (h, w), got {min_size!r}")
    if isinstance(min_size, int):
        min_size = (min_size, min_size)
    if (not isinstance(min_size, Sequence) or len(min_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in min_size)):
        raise SpecTypeError(f"min_size: expected an int or (h, w) of ints, got {min_size!r}")
    h, w = int(min_size[0]), int(min_size[1])
    if h < 1 or w < 1:
        raise SpecError(f"min_size: sides must be >= 1, got {(h, w)}")
    return h, w


def _to_rgb_array(im: Any) -> Any:
    import numpy as np

    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grayscale: scale to 8 bits, as OpenCV and torchvision do
        a = np.asarray(im)
        a = (np.clip(a.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    if im.mode == "F":
        raise InputError("floating-point (mode 'F') images are not supported")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8)  # a writable copy (np.asarray of an Image is read-only)


def decode_image(path: str | os.PathLike[str], min_size: int | Sequence[int] | None = None) -> Any:
    """The image file at ``path`` as an ``(H, W, 3)`` uint8 RGB array, in display
    orientation (EXIF orientation applied). ``min_size`` (``(h, w)`` or an int for
    both): let a JPEG decode reduced by 2, 4 or 8 while staying at least ``h`` tall
    and ``w`` wide (``Image.draft``); other formats decode at full size. A file that
    cannot be decoded raises ``InputError`` naming it (the original error chained)."""
    from PIL import Image, ImageOps

    path = os.fspath(path)
    size = _min_size(min_size)
    try:
        with Image.open(path) as im:
            if size is not None and im.format in ("JPEG", "MPO"):
                h, w = size
                if im.getexif().get(_EXIF_ORIENTATION) in _SWAPS_AXES:
                    h, w = w, h  # the request is in display orientation; the file stores the transpose
                im.draft("RGB", (w, h))  # Pillow's size is (width, height); never below it per axis
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            return _to_rgb_array(im)
    except InputError as e:
        raise InputError(f"cannot decode image file {path!r}: {e}") from e
    except Exception as e:  # corrupt, truncated, not an image, decompression bomb, unreadable
        raise InputError(f"cannot decode image file {path!r}: {type(e).__name__}: {e}") from e


class ImageFolderSamples:
    """The images of a ``root/<class>/<file>`` folder as a sequence: ``ds[i]`` is
    ``(image, label)``, the image ``(H, W, 3)`` uint8 RGB at its own size (decoded
    with ``min_size``, see :func:`decode_image`), the label the class index (int).
    ``classes`` the class names, ``samples`` the ``(path, class index)`` list (scanned
    once, here; see :func:`scan_folder`). Holds only paths, so it pickles small and
    works in DataLoader workers started by fork or spawn."""

    def __init__(self, root: str | os.PathLike[str], min_size: int | Sequence[int] | None = None):
        self.root = os.fspath(root)
        self.min_size = _min_size(min_size)
        self.samples, self.classes = scan_folder(self.root)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        return decode_image(path, self.min_size), label

    def __repr__(self) -> str:
        return (f"ImageFolderSamples({self.root!r}, min_size={self.min_size}): "
                f"{len(self.samples)} images, {len(self.classes)} classes")
