"""From a folder of image files to augmented batches: PyTorch (ImageFolder + Collate, in
workers or on a device in the main process) and TensorFlow (tf.data + ragged batches + the
run or the Keras layer). The folders are written by the tests (JPEG and PNG of different
sizes, a grayscale and an RGBA file)."""

from __future__ import annotations

import numpy as np
import pytest

import augspec as aug
from augspec.recipes import r3
from augspec.testing_images import write_image_folder

SIZE = 48


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return root, write_image_folder(root, per_class=5, classes=("cat", "dog", "fish"))


def pipeline(k=3, seed=0):
    return r3(num_classes=k, seed=seed, size=SIZE)


# ------------------------------------------------------------------- torch
torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from augspec.torch import Collate, ImageFolder, Packed  # noqa: E402


def epochs(loader, collate=None, n=2):
    """Every batch of ``n`` epochs (images as NumPy), set_epoch between them."""
    out = []
    for e in range(n):
        (collate or loader.collate_fn).set_epoch(e)
        it = collate.iterate(loader) if collate is not None else loader
        out.append([(x.numpy(), y.numpy()) for x, y, *_ in it])
    return out


def test_collate_on_a_device_packs_in_workers_and_augments_in_the_main_process(folder):
    root, _ = folder
    ds = ImageFolder(root)
    collate = Collate(pipeline(), device="cpu")
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate, persistent_workers=True)
    packed = next(iter(loader))
    assert isinstance(packed, Packed) and packed.images.dtype == torch.uint8 and packed.sizes.shape == (4, 2)
    got = epochs(loader, collate)
    for batches in got:
        assert sum(len(y) for _, y in batches) == len(ds)
        for x, y in batches:
            assert x.shape[1:] == (3, SIZE, SIZE) and x.dtype == np.float32 and y.shape[1] == 3
            np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    # epochs draw differently; a second loader with the same seed repeats the first exactly
    assert not np.array_equal(got[0][0][0], got[1][0][0])
    other = Collate(pipeline(), device="cpu")
    again = epochs(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=other), other)
    for a, b in zip(got, again):
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_collate_in_persistent_workers_draws_a_stream_per_worker(folder):
    root, _ = folder
    ds = ImageFolder(root)
    collate = Collate(pipeline(), batch_only=False)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate, persistent_workers=True)
    got = epochs(loader)
    for batches in got:
        assert sum(len(y) for _, y in batches) == len(ds)
        assert all(x.shape[1:] == (3, SIZE, SIZE) for x, _ in batches)
    # the two workers' first batches (same step, different worker) differ; so do the epochs
    (x0, _), (x1, _) = got[0][0], got[0][1]
    assert not np.array_equal(x0, x1)
    assert not np.array_equal(got[0][0][0], got[1][0][0])
    # reproducible: a fresh loader with the same seed gives the same batches
    again = epochs(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=Collate(pipeline(), batch_only=False)))
    for a, b in zip(got, again):
        for (xa, _), (xb, _) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)


def test_images_of_different_sizes_reach_the_run_as_a_list(folder):
    root, written = folder
    ds = ImageFolder(root)
    shapes = {tuple(ds[i][0].shape) for i in range(len(ds))}
    assert len(shapes) > 2  # the folder really holds several sizes
    run = pipeline().compile("torch")
    x, y = run([ds[i][0] for i in range(6)], torch.stack([ds[i][1] for i in range(6)]))
    assert tuple(x.shape) == (6, 3, SIZE, SIZE) and tuple(y.shape) == (6, 3)
    ev = run([ds[i][0] for i in range(6)], training=False)
    assert tuple(ev.shape) == (6, 3, SIZE, SIZE)


def test_a_corrupt_file_stops_the_loader_with_its_name(tmp_path):
    written = write_image_folder(tmp_path, per_class=2, corrupt=True)
    bad = written["corrupt"][0]
    loader = DataLoader(ImageFolder(tmp_path), batch_size=4, num_workers=0, collate_fn=Collate(pipeline(2),
                                                                                                batch_only=False))
    with pytest.raises(aug.InputError, match=bad.split("/")[-1]):
        for _ in loader:
            pass


def test_a_batch_of_one_size_passes_through_collate_as_before():
    imgs = [(torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8), torch.tensor(i % 3)) for i in range(4)]
    x, y = Collate(pipeline(), batch_only=False)(imgs)
    assert tuple(x.shape) == (4, 3, SIZE, SIZE) and tuple(y.shape) == (4, 3)


# -------------------------------------------------------------- TensorFlow
def test_tf_data_from_files_with_ragged_batches(folder):
    tf = pytest.importorskip("tensorflow")
    root, written = folder
    files = written["images"]
    labels = [written["label"][f] for f in files]
    run = pipeline().compile("tensorflow", max_image_side=256)  # the resize filter's reach in the graph

    def decode(path, label):
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), label

    ds = (tf.data.Dataset.from_tensor_slices((files, labels)).map(decode).ragged_batch(4)
          .map(lambda x, y: run(x, y)))
    n = 0
    for x, y in ds:
        assert x.shape[1:] == (SIZE, SIZE, 3) and x.dtype == tf.float32 and y.shape[1] == 3
        n += int(x.shape[0])
    assert n == len(files)
    # eagerly, a RaggedTensor and a list of the same images give the same batch
    imgs = [decode(f, 0)[0] for f in files[:4]]
    ragged = tf.ragged.stack(imgs)
    params = run.sample(4, (10, 10, 3))
    a = run.apply([im.numpy() for im in imgs], params=params)
    run2 = pipeline().compile("tensorflow", max_image_side=256)
    b = run2(ragged, training=False)
    c = run2([im.numpy() for im in imgs], training=False)
    np.testing.assert_allclose(b.numpy(), c.numpy(), atol=1e-5)
    assert a.shape == (4, SIZE, SIZE, 3)


def test_keras_layer_takes_a_ragged_batch(folder):
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    from augspec.keras import Augment

    root, written = folder
    files = written["images"][:6]
    imgs = [tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False) for f in files]
    layer = Augment(pipeline(), max_image_side=256)
    ragged = tf.ragged.stack(imgs)
    x, y = layer((ragged, tf.constant([0, 1, 2, 0, 1, 2])), training=True)
    assert x.shape == (6, SIZE, SIZE, 3) and y.shape == (6, 3)
    ev = layer(ragged, training=False)
    assert ev.shape == (6, SIZE, SIZE, 3)
    assert tuple(layer.compute_output_shape((None, None, None, 3))) == (None, SIZE, SIZE, 3)
