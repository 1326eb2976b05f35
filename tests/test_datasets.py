"""augspec.datasets (scan_folder, decode_image, ImageFolderSamples) and augspec.torch.ImageFolder:
the folder layout and its order, the errors (missing root, empty class, corrupt file), every
image mode decoding to HWC uint8 RGB, EXIF orientation, JPEG draft decoding (reduced by a power
of two, never below min_size), pickling, and a DataLoader with workers reading every sample once.
The image files are written by augspec.testing_images into tmp folders."""

from __future__ import annotations

import hashlib
import multiprocessing
import operator
import os
import pickle
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("skimage")

from PIL import Image  # noqa: E402

from augspec.core.errors import InputError, SpecError, SpecTypeError  # noqa: E402
from augspec.datasets import ImageFolderSamples, decode_image, scan_folder  # noqa: E402
from augspec.testing_images import photo, write_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "train"
    written = write_image_folder(root, per_class=3, classes=("b_dog", "a_cat", "c_owl"))
    return str(root), written


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    """A 2000 x 1500 (w x h) JPEG photograph."""
    p = str(tmp_path_factory.mktemp("big") / "big.jpg")
    photo("astronaut", (1500, 2000)).save(p, quality=90)
    return p


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()


# ----------------------------------------------------------------- scanning


def test_scan_folder_classes_sorted_files_sorted_and_labels(folder):
    root, written = folder
    samples, classes = scan_folder(root)
    assert classes == ["a_cat", "b_dog", "c_owl"]
    assert [p for p, _ in samples] == sorted(written["images"], key=lambda p: (os.path.dirname(p), p))
    order = {name: i for i, name in enumerate(classes)}
    names = ("b_dog", "a_cat", "c_owl")  # the order they were written in: labels follow the sorted names
    for p, label in samples:
        assert label == order[names[written["label"][p]]]
        assert os.path.basename(os.path.dirname(p)) == classes[label]
    assert [label for _, label in samples] == sorted(label for _, label in samples)


def test_scan_folder_extensions_case_hidden_and_nested(tmp_path):
    root = tmp_path / "root"
    (root / "x" / "sub").mkdir(parents=True)
    (root / "x" / ".hidden_dir").mkdir()
    (root / ".git").mkdir()  # a hidden folder is not a class
    pic = photo("coffee", (20, 30))
    for name in ("B.JPG", "a.png", "c.Jpeg", "d.webp", "e.TIFF", "f.bmp", "g.gif"):
        pic.save(root / "x" / name)
    pic.save(root / "x" / "sub" / "z.jpg")
    pic.save(root / "x" / ".hidden_dir" / "h.jpg")
    (root / "x" / "._B.JPG").write_bytes(b"AppleDouble")  # hidden: skipped, not decoded
    (root / "x" / "notes.txt").write_text("no image")
    (root / "x" / "labels.csv").write_text("a,b")
    (root / "stray.jpg").write_bytes(b"")  # a file in root is not a class
    samples, classes = scan_folder(root)
    assert classes == ["x"]
    names = [os.path.relpath(p, root / "x") for p, _ in samples]
    assert names == ["B.JPG", "a.png", "c.Jpeg", "d.webp", "e.TIFF", "f.bmp", "g.gif", os.path.join("sub", "z.jpg")]
    ds = ImageFolderSamples(root)
    assert all(ds[i][0].shape == (20, 30, 3) for i in range(len(ds)))


def test_scan_folder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="not a folder"):
        scan_folder(tmp_path / "file.jpg")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "loose.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="no class folder"):
        scan_folder(empty)
    root = tmp_path / "root"
    (root / "good").mkdir(parents=True)
    (root / "hollow").mkdir()
    photo("coffee", (8, 8)).save(root / "good" / "a.jpg")
    (root / "hollow" / "readme.txt").write_text("no image here")
    (root / "hollow" / ".x.jpg").write_bytes(b"hidden")
    with pytest.raises(InputError, match="hollow"):
        scan_folder(root)
    with pytest.raises(InputError, match="hollow"):
        ImageFolderSamples(root)


# ----------------------------------------------------------------- decoding


def test_every_written_image_decodes_to_hwc_uint8_rgb_of_its_size(folder):
    root, written = folder
    ds = ImageFolderSamples(root)
    assert len(ds) == len(written["images"])
    for i, (p, _) in enumerate(ds.samples):
        img, label = ds[i]
        assert isinstance(label, int)
        assert img.dtype == np.uint8 and img.shape == (*written["shape"][p], 3), p
        assert img.flags.c_contiguous and img.flags.writeable
    for p in written["png"]:  # lossless: the very pixels written
        np.testing.assert_array_equal(decode_image(p), np.asarray(Image.open(p).convert("RGB")))


def test_grayscale_and_rgba_files_decode_to_rgb(folder):
    _, written = folder
    (g,), (r,) = written["gray"], written["rgba"]
    gray = decode_image(g)
    assert gray.shape == (*written["shape"][g], 3) and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 0] == gray[..., 2]).all()
    with Image.open(r) as im:
        assert im.mode == "RGBA"
        expect = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(decode_image(r), expect)  # alpha dropped, colours kept


@pytest.mark.parametrize("mode", ["L", "1", "P", "P+transparency", "LA", "CMYK", "I;16", "RGBA"])
def test_every_mode_decodes_to_rgb(tmp_path, mode):
    base = photo("chelsea", (12, 17))
    if mode == "I;16":
        a = (np.asarray(base.convert("L")).astype(np.uint16) * 257)  # the full 16-bit range
        im = Image.fromarray(a)
        assert im.mode == "I;16"
        expect = np.repeat(np.asarray(base.convert("L"))[..., None], 3, axis=-1)  # scaled, not clipped at 255
    elif mode == "P+transparency":
        im = base.convert("P")
        im.info["transparency"] = 0
        expect = np.asarray(im.convert("RGB"))
    else:
        im = base.convert(mode)
        expect = np.asarray(im.convert("RGB"))
    ext = ".jpg" if mode in ("L", "CMYK") else ".png"
    p = tmp_path / f"x{ext}"
    im.save(p, **({"quality": 100} if ext == ".jpg" else {}))
    out = decode_image(p)
    assert out.shape == (12, 17, 3) and out.dtype == np.uint8
    if ext == ".png":
        np.testing.assert_array_equal(out, expect)
    else:
        assert np.abs(out.astype(int) - expect.astype(int)).mean() < 4


def test_corrupt_files_raise_input_error_naming_the_file(tmp_path):
    written = write_image_folder(tmp_path / "root", per_class=1, classes=("a",), corrupt=True)
    (bad,) = written["corrupt"]
    for min_size in (None, 16):
        with pytest.raises(InputError, match="truncated.jpg") as info:
            decode_image(bad, min_size)
        assert isinstance(info.value.__cause__, OSError)
    text = tmp_path / "text.png"
    text.write_text("not an image at all")
    with pytest.raises(InputError, match="text.png") as info:
        decode_image(text)
    assert info.value.__cause__ is not None
    with pytest.raises(InputError, match="gone.jpg"):
        decode_image(tmp_path / "gone.jpg")
    ds = ImageFolderSamples(tmp_path / "root")
    i = [p for p, _ in ds.samples].index(bad)
    with pytest.raises(InputError, match="truncated.jpg"):
        ds[i]
    ds[0]  # the others decode


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 tall, a red block at its top-left; orientation 6 = "rotate 90 clockwise to display"
    a = np.zeros((20, 40, 3), np.uint8)
    a[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    Image.fromarray(a).save(p, exif=exif, quality=100)
    out = decode_image(p)
    assert out.shape == (40, 20, 3)  # displayed: 20 wide x 40 tall
    assert out[:8, -8:, 0].mean() > 200 and out[:8, -8:, 1:].mean() < 50  # the block went to the top-right
    assert out[:8, :8, 0].mean() < 50
    plain = tmp_path / "plain.jpg"
    Image.fromarray(a).save(plain, quality=100)
    assert decode_image(plain).shape == (20, 40, 3)


# ----------------------------------------------------------------- draft (JPEG DCT scaling)


def test_draft_reduces_a_big_jpeg_but_never_below_min_size(big_jpeg):
    full = decode_image(big_jpeg)
    assert full.shape == (1500, 2000, 3)
    small = decode_image(big_jpeg, min_size=224)
    assert small.shape == (375, 500, 3)  # 1/4: 1/8 would make the shorter side 188 < 224
    assert np.abs(small.astype(int) - np.asarray(Image.fromarray(full).resize((500, 375), Image.Resampling.BOX),
                                                  dtype=int)).mean() < 6  # the same picture, smaller
    for min_size in (1, 100, 187, 188, 189, 224, 375, 376, 749, 750, 751, 1499, 1500, 1501, 3000,
                     (700, 300), (300, 700), (1, 1999), (1500, 1), (188, 250), (187, 251)):
        h, w = (min_size, min_size) if isinstance(min_size, int) else min_size
        out = decode_image(big_jpeg, min_size=min_size)
        s = next((s for s in (1, 2, 4, 8) if out.shape == (-(-1500 // s), -(-2000 // s), 3)), None)
        assert s is not None, (min_size, out.shape)  # reduced by a power of two
        if h <= 1500 and w <= 2000:
            assert out.shape[0] >= h and out.shape[1] >= w, (min_size, out.shape)  # never below the request
        if s < 8:  # and the largest reduction that stays above it
            assert 1500 < 2 * s * h or 2000 < 2 * s * w, (min_size, out.shape)


def test_draft_only_for_jpeg_and_respects_exif_orientation(tmp_path):
    png = tmp_path / "big.png"
    photo("coffee", (600, 800)).save(png)
    assert decode_image(png, min_size=64).shape == (600, 800, 3)
    # stored 2000 x 1000 (w x h), orientation 6: displayed 1000 wide x 2000 tall
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    photo("astronaut", (1000, 2000)).save(p, exif=exif, quality=85)
    assert decode_image(p).shape == (2000, 1000, 3)
    out = decode_image(p, min_size=(250, 900))  # 900 wide: the displayed width allows no reduction
    assert out.shape == (2000, 1000, 3)
    out = decode_image(p, min_size=(900, 300))
    assert out.shape == (1000, 500, 3)


def test_min_size_validation(big_jpeg):
    for bad in (0, -3, (0, 5), (5, -1)):
        with pytest.raises(SpecError):
            decode_image(big_jpeg, min_size=bad)
    for bad in (True, 2.5, (1, 2, 3), "224", (224.0, 224)):
        with pytest.raises(SpecTypeError):
            decode_image(big_jpeg, min_size=bad)


# ----------------------------------------------------------------- pickling, torch


def test_image_folder_samples_pickles(folder):
    root, _ = folder
    ds = ImageFolderSamples(root, min_size=(64, 48))
    back = pickle.loads(pickle.dumps(ds))
    assert back.samples == ds.samples and back.classes == ds.classes and back.min_size == (64, 48)
    assert len(pickle.dumps(ds)) < 4096  # paths only, no pixels
    for i in (0, len(ds) - 1):
        np.testing.assert_array_equal(back[i][0], ds[i][0])
        assert back[i][1] == ds[i][1]


def test_torch_image_folder_layouts_and_labels(folder):
    torch = pytest.importorskip("torch")
    from augspec.torch import ImageFolder

    root, written = folder
    ref = ImageFolderSamples(root)
    nchw, nhwc = ImageFolder(root), ImageFolder(root, layout="NHWC")
    assert nchw.classes == ref.classes == ["a_cat", "b_dog", "c_owl"] and len(nchw) == len(ref)
    for i in range(len(ref)):
        img, label = ref[i]
        x, y = nchw[i]
        assert x.dtype == torch.uint8 and x.shape == (3, *img.shape[:2]) and x.is_contiguous()
        assert y.dtype == torch.int64 and y.dim() == 0 and int(y) == label
        np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), img)
        x2, y2 = nhwc[i]
        assert x2.shape == img.shape and int(y2) == label
        np.testing.assert_array_equal(x2.numpy(), img)
    assert tuple(ImageFolder(root, min_size=50).data.min_size) == (50, 50)
    with pytest.raises(SpecError, match="layout"):
        ImageFolder(root, layout="CHW")
    back = pickle.loads(pickle.dumps(nchw))
    assert back.samples == nchw.samples


def test_torch_image_folder_corrupt_file_raises_naming_it(tmp_path):
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from augspec.torch import ImageFolder

    written = write_image_folder(tmp_path / "root", per_class=1, classes=("a",), corrupt=True)
    ds = ImageFolder(tmp_path / "root")
    i = [p for p, _ in ds.samples].index(written["corrupt"][0])
    with pytest.raises(InputError, match="truncated.jpg"):
        ds[i]
    loader = DataLoader(ds, batch_size=None, num_workers=1, multiprocessing_context="fork")
    it = iter(loader)
    try:
        with pytest.raises(InputError, match="truncated.jpg"):  # re-raised from the worker, same type
            list(it)
    finally:  # stop the worker now: left to the garbage collector, its shutdown waits out a 5 s timeout
        getattr(it, "_shutdown_workers", lambda: None)()


def collate_list(samples):
    """A collate_fn for images of different sizes: (list of images, labels tensor)."""
    import torch

    return [x for x, _ in samples], torch.stack([y for _, y in samples])


def test_dataloader_workers_read_every_sample_once(folder):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from augspec.torch import ImageFolder, worker_init_fn

    root, written = folder
    ds = ImageFolder(root, min_size=64)
    expect = Counter((_key(x.numpy()), int(y)) for x, y in (ds[i] for i in range(len(ds))))
    assert len({k for k, _ in expect}) == len(ds)  # the images are distinct: a duplicate read would show
    loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=2, collate_fn=collate_list,
                        worker_init_fn=worker_init_fn, multiprocessing_context="fork",
                        generator=torch.Generator().manual_seed(0))
    got = Counter()
    sizes = set()
    for images, labels in loader:
        assert isinstance(images, list) and labels.dtype == torch.int64 and len(images) == len(labels)
        for x, y in zip(images, labels):
            assert x.dtype == torch.uint8 and x.shape[0] == 3
            sizes.add(tuple(x.shape))
            got[(_key(x.numpy()), int(y))] += 1
    assert got == expect
    assert len(sizes) > 1  # images of different sizes went through


def test_image_folder_samples_in_spawned_workers(folder):
    """Spawn pickles the dataset into a fresh interpreter (no torch there: it stays quick)."""
    root, _ = folder
    ds = ImageFolderSamples(root, min_size=64)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.starmap(operator.getitem, [(ds, i) for i in range(len(ds))])
    for i, (img, label) in enumerate(got):
        ref, ref_label = ds[i]
        assert label == ref_label
        np.testing.assert_array_equal(img, ref)
