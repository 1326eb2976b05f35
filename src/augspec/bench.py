"""``augspec bench``: recipes R2, R1, R3 and R4 (``augspec.recipes``), timed side by side on
every available augspec backend and every installed peer library, in one process.

Method (RECIPES.md): random uint8 images, rotated among several input buffers;
parameter sampling is timed too; the median of ``--repeats`` runs after the
warm-up runs, synchronising the device before reading the clock. Each row says
whether its parameters are drawn per sample or shared by the whole batch. The
ratio is the row's time over the fastest augspec backend's time for the same
recipe (above 1: augspec is faster).

Peers, each import-guarded (a missing library is a skipped row, never an error):
kornia + timm, torchvision.transforms.v2 (per image, and batch-shared),
albumentations + timm, Keras 3 layers on TensorFlow in a ``tf.function``, and for
R1 Keras' ``ImageDataGenerator`` (the ``tf-keras`` package).

R3 (``--recipe R3``) starts from images of mixed sizes (``recipes.R3_SIZES`` in turn,
a list per batch, as a data loader hands them over): augspec packs each list and
crops it to 224 x 224 in the same call; torchvision v2, albumentations and kornia
crop image by image in a Python loop (kornia needs one size per batch), then
stack, then MixUp / CutMix on the batch. R4 (``--recipe R4``) is R3 with timm's
RandAugment (``rand-m9-mstd0.5-inc1``) and pixel-mode random erasing; its peers are timm's
own ``create_transform`` (PIL, per image), torchvision v2 ``RandAugment`` per image,
albumentations' nearest equivalent (``SomeOf`` two of its policy ops) and kornia's
``RandAugment``, each followed by MixUp / CutMix.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000
N_BUFFERS = 3


class Skip(Exception):
    """A peer that cannot run here (not installed, or no such device)."""


@dataclass
class Case:
    recipe: str
    name: str
    params: str  # "per sample", "batch-shared", ...
    device: str
    step: Callable[[int], Any]  # runs one batch on buffer i % N_BUFFERS
    sync: Callable[[Any], None]  # waits for the device to finish the result
    augspec: bool = False


@dataclass
class Result:
    case: Case | None
    recipe: str
    name: str
    params: str
    device: str
    batch: int
    size: int
    ms: float | None = None
    error: str | None = None
    augspec: bool = False


# ---------------------------------------------------------------- helpers


def _preimport() -> None:
    """Import the torch-side libraries before TensorFlow: importing torchvision or timm
    after TensorFlow crashes the process with some builds."""
    for mod in ("torch", "torchvision", "timm", "kornia", "albumentations"):
        try:
            __import__(mod)
        except Exception:
            pass


def _torch_device(device: str) -> Any:
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise Skip("CUDA is not available")
    return torch


def _torch_sync(device: str) -> Callable[[Any], None]:
    def sync(out: Any) -> None:
        if device == "cuda":
            import torch

            torch.cuda.synchronize()

    return sync


def _jax_sync(out: Any) -> None:
    import jax

    jax.block_until_ready(out)  # JAX dispatches asynchronously: wait for the result


def _tf_sync(out: Any) -> None:
    x = out[0] if isinstance(out, (tuple, list)) else out["images"] if isinstance(out, dict) else out
    _ = x[(0,) * len(x.shape)].numpy()  # one value back: the whole result is computed


def _no_sync(out: Any) -> None:
    return None


def images(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """N_BUFFERS random uint8 NHWC batches."""
    return [rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for _ in range(N_BUFFERS)]


def class_ids(n: int, rng: np.random.Generator, k: int = NUM_CLASSES) -> list[np.ndarray]:
    return [rng.integers(0, k, (n,), dtype=np.int64) for _ in range(N_BUFFERS)]


# ------------------------------------------------------------------- R2


def r2_augspec(backend: str, device: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> Case:
    from .demo import to_backend
    from .recipes import r2

    run, sync = _compile_for(r2(NUM_CLASSES, seed=0), backend, device)
    bx = [to_backend(run, x) for x in xs]
    by = [to_backend(run, y) for y in ys]
    return Case("R2", f"augspec[{backend}]", "per sample", device,
                lambda i: _call(run, bx[i % N_BUFFERS], by[i % N_BUFFERS]), sync, augspec=True)


def _compile_for(pipe: Any, backend: str, device: str) -> tuple[Any, Callable[[Any], None]]:
    """The pipeline compiled for ``backend`` on ``device``, and the sync that ends a timed call."""
    opts: dict[str, Any] = {}
    if device == "cuda":
        if backend != "torch":
            raise Skip(f"the {backend} backend runs on the CPU (use --device cpu)")
        _torch_device(device)
        opts["device"] = "cuda"
    if backend == "albumentations":
        opts["defer_batch_ops"] = True  # MixUp / CutMix / smoothing run on the batch (``_call``): no warning
    run = pipe.compile(backend, **opts)
    mod = getattr(run.backend, "array_module", "numpy")
    sync = (_torch_sync(device) if mod == "torch" else _tf_sync if mod == "tensorflow"
            else _jax_sync if mod == "jax" else _no_sync)
    return run, sync


def _call(run: Any, x: Any, y: Any = None) -> Any:
    """One training call; a per-image run (albumentations) also runs its batch-level part
    (MixUp, CutMix, smoothing) on the collated batch, as a training loop would."""
    out = run(x, y) if y is not None else run(x)
    if getattr(run, "batch_ops", None) and callable(getattr(run, "batch", None)):
        out = run.batch(*out) if isinstance(out, tuple) else run.batch(out)
    return out


def _timm_mixup(device: str) -> Any:
    try:
        from timm.data import Mixup
    except ImportError:
        raise Skip("timm is not installed") from None
    return Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1,
                 num_classes=NUM_CLASSES, mode="elem")


def _torch_inputs(torch: Any, xs: list[np.ndarray], ys: list[np.ndarray], device: str) -> tuple[list, list]:
    tx = [torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device) for x in xs]
    ty = [torch.from_numpy(y).to(device) for y in ys]
    return tx, ty


def r2_kornia(device: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> Case:
    torch = _torch_device(device)
    try:
        import kornia.augmentation as K
    except ImportError:
        raise Skip("kornia is not installed") from None
    mix = _timm_mixup(device)
    aug = K.AugmentationSequential(
        K.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), 5), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0), K.RandomErasing(p=1.0),
        K.Normalize(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD))).to(device)
    if xs[0].shape[0] % 2:
        raise Skip("timm's Mixup needs an even batch")
    tx, ty = _torch_inputs(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = aug(tx[i % N_BUFFERS].float() / 255.0)
        return mix(x, ty[i % N_BUFFERS])

    return Case("R2", "kornia + timm", "per sample", device, step, _torch_sync(device))


def _tv_transform(torch: Any) -> Any:
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise Skip("torchvision is not installed") from None
    t = v2.Compose([
        v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
        v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4, 0.1), v2.RandomErasing(p=1.0),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=NUM_CLASSES), v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)])
    return t, mix


def r2_torchvision(device: str, xs: list[np.ndarray], ys: list[np.ndarray], per_image: bool) -> Case:
    torch = _torch_device(device)
    t, mix = _tv_transform(torch)
    tx, ty = _torch_inputs(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = tx[i % N_BUFFERS]
        x = torch.stack([t(im) for im in x]) if per_image else t(x)
        x, y = mix(x, ty[i % N_BUFFERS])
        return x, y * (1.0 - 0.1) + 0.1 / NUM_CLASSES

    name = "torchvision v2 per image" if per_image else "torchvision v2 batch"
    return Case("R2", name, "per sample (Python loop)" if per_image else "batch-shared", device, step,
                _torch_sync(device))


def r2_albumentations(device: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> Case:
    if device != "cpu":
        raise Skip("albumentations runs on the CPU")
    try:
        import albumentations as A
    except ImportError:
        raise Skip("albumentations is not installed") from None
    torch = _torch_device("cpu")
    mix = _timm_mixup("cpu")
    if xs[0].shape[0] % 2:
        raise Skip("timm's Mixup needs an even batch")
    t = A.Compose([
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), shear=(-5, 5), fill=0, p=1.0),
        A.HorizontalFlip(p=0.5), A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=1.0),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.1, 0.5), hole_width_range=(0.1, 0.5),
                        fill=0, p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])
    ty = [torch.from_numpy(y) for y in ys]

    def step(i: int) -> Any:
        x = np.stack([t(image=im)["image"] for im in xs[i % N_BUFFERS]])
        return mix(torch.from_numpy(x).permute(0, 3, 1, 2), ty[i % N_BUFFERS])

    return Case("R2", "albumentations + timm", "per sample (Python loop)", "cpu", step, _no_sync)


def _keras() -> tuple[Any, Any]:
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise Skip("tensorflow / keras are not installed") from None
    if not keras.__version__.startswith("3") or keras.backend.backend() != "tensorflow":
        raise Skip("needs Keras 3 on the TensorFlow backend")
    return tf, keras


def _tf_device(tf: Any, device: str) -> str:
    if device == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise Skip("TensorFlow sees no GPU")
        return "/GPU:0"
    return "/CPU:0"


def r2_keras(device: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> Case:
    tf, keras = _keras()
    L = keras.layers
    dev = _tf_device(tf, device)
    with tf.device(dev):
        layers = [L.RandomRotation(15 / 360, fill_mode="constant"),
                  L.RandomTranslation(0.1, 0.1, fill_mode="constant"),
                  L.RandomZoom((-0.1, 0.1), fill_mode="constant"),
                  L.RandomShear(5 / 180, 5 / 180, fill_mode="constant"),
                  L.RandomFlip("horizontal"),
                  L.RandomColorJitter(value_range=(0, 255), brightness_factor=0.4, contrast_factor=0.4,
                                      saturation_factor=0.4, hue_factor=0.1),
                  L.RandomErasing(value_range=(0, 255)), L.Rescaling(1 / 255.0),
                  L.Normalization(mean=IMAGENET_MEAN, variance=tuple(s * s for s in IMAGENET_STD))]
        mixup = L.MixUp(alpha=0.8)
        tx = [tf.constant(x) for x in xs]
        ty = [tf.constant(y) for y in ys]

        @tf.function
        def fn(x: Any, y: Any) -> Any:
            x = tf.cast(x, tf.float32)
            for layer in layers:
                x = layer(x, training=True)
            out = mixup({"images": x, "labels": tf.one_hot(y, NUM_CLASSES)}, training=True)
            return out["images"], out["labels"] * 0.9 + 0.1 / NUM_CLASSES

    def step(i: int) -> Any:
        with tf.device(dev):
            return fn(tx[i % N_BUFFERS], ty[i % N_BUFFERS])

    return Case("R2", "Keras 3 layers (tf.function)", "per sample", device, step, _tf_sync)


# ------------------------------------------------------------------- R3


def mixed_images(n: int, rng: np.random.Generator, sizes: Sequence[tuple[int, int]] | None = None) -> list[list[np.ndarray]]:
    """N_BUFFERS lists of ``n`` random uint8 HWC images, their (height, width) ``sizes``
    (default ``recipes.R3_SIZES``) in turn, each buffer starting one size further."""
    from .recipes import R3_SIZES

    sz = tuple(sizes or R3_SIZES)
    return [[rng.integers(0, 256, (*sz[(j + k) % len(sz)], 3), dtype=np.uint8) for j in range(n)]
            for k in range(N_BUFFERS)]


def _image_list(run: Any, images: list[np.ndarray]) -> list[Any]:
    """HWC NumPy images as the compiled run's arrays (CHW tensors for an NCHW torch run;
    NumPy arrays for the NumPy, JAX and albumentations backends)."""
    B = run.backend
    mod = getattr(B, "array_module", "numpy")
    out = []
    for im in images:
        if mod == "torch":
            import torch

            a = np.ascontiguousarray(im.transpose(2, 0, 1) if getattr(B, "layout", "NHWC") == "NCHW" else im)
            t = torch.from_numpy(a)
            device = getattr(B, "device", None)
            out.append(t.to(device) if device is not None else t)
        elif mod == "tensorflow":
            import tensorflow as tf

            out.append(tf.convert_to_tensor(im))
        else:
            out.append(im)
    return out


def r3_augspec(backend: str, device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    """augspec on a list of images of mixed sizes: one call packs, crops and augments the
    batch (the albumentations backend: image by image, then MixUp / CutMix / smoothing on
    the stacked batch, as ``_call`` does)."""
    from .demo import to_backend
    from .recipes import r3

    run, sync = _compile_for(r3(NUM_CLASSES, seed=0, size=size), backend, device)
    bx = [_image_list(run, x) for x in xs]
    by = [to_backend(run, y) for y in ys]
    return Case("R3", f"augspec[{backend}]", "per sample", device,
                lambda i: _call(run, bx[i % N_BUFFERS], by[i % N_BUFFERS]), sync, augspec=True)


def _torch_image_lists(torch: Any, xs: list[list[np.ndarray]], ys: list[np.ndarray], device: str) -> tuple[list, list]:
    tx = [[torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(device) for im in x] for x in xs]
    ty = [torch.from_numpy(y).to(device) for y in ys]
    return tx, ty


def r3_torchvision(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    torch = _torch_device(device)
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise Skip("torchvision is not installed") from None
    t = v2.Compose([
        v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.RandomErasing(p=0.25)])
    mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=NUM_CLASSES), v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)])
    tx, ty = _torch_image_lists(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = torch.stack([t(im) for im in tx[i % N_BUFFERS]])
        x, y = mix(x, ty[i % N_BUFFERS])
        return x, y * (1.0 - 0.1) + 0.1 / NUM_CLASSES

    return Case("R3", "torchvision v2 per image", "per sample (Python loop)", device, step, _torch_sync(device))


def r3_albumentations(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    if device != "cpu":
        raise Skip("albumentations runs on the CPU")
    try:
        import albumentations as A
    except ImportError:
        raise Skip("albumentations is not installed") from None
    mix = _timm_mixup("cpu")
    if len(xs[0]) % 2:
        raise Skip("timm's Mixup needs an even batch")
    t = A.Compose([
        A.RandomResizedCrop(size=(size, size)), A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.14, 0.57), hole_width_range=(0.14, 0.57),
                        fill=0, p=0.25)])
    return _albumentations_case("R3", "albumentations + timm", t, mix, xs, ys)


def _albumentations_case(recipe: str, name: str, t: Any, mix: Any, xs: list[list[np.ndarray]],
                         ys: list[np.ndarray]) -> Case:
    """An albumentations pipeline ``t`` image by image, stacked, then timm's ``mix`` on the batch."""
    torch = _torch_device("cpu")
    ty = [torch.from_numpy(y) for y in ys]

    def step(i: int) -> Any:
        x = np.stack([t(image=im)["image"] for im in xs[i % N_BUFFERS]])
        return mix(torch.from_numpy(x).permute(0, 3, 1, 2), ty[i % N_BUFFERS])

    return Case(recipe, name, "per sample (Python loop)", "cpu", step, _no_sync)


def r3_kornia(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    torch = _torch_device(device)
    try:
        import kornia.augmentation as K
    except ImportError:
        raise Skip("kornia is not installed") from None
    mix = _timm_mixup(device)
    if len(xs[0]) % 2:
        raise Skip("timm's Mixup needs an even batch")
    crop = K.RandomResizedCrop((size, size)).to(device)  # one size per call: image by image
    aug = K.AugmentationSequential(
        K.RandomHorizontalFlip(), K.ColorJitter(0.4, 0.4, 0.4, 0.0, p=1.0),
        K.Normalize(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD)),
        K.RandomErasing(p=0.25)).to(device)
    tx, ty = _torch_image_lists(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = torch.cat([crop(im[None].float() / 255.0) for im in tx[i % N_BUFFERS]])
        return mix(aug(x), ty[i % N_BUFFERS])

    return Case("R3", "kornia + timm", "per sample (crop: Python loop)", device, step, _torch_sync(device))


# ------------------------------------------------------------------- R4


def r4_augspec(backend: str, device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    """R4 (``recipes.r4``: timm's recipe with RandAugment and pixel random erasing) as R3's row."""
    from .demo import to_backend
    from .recipes import r4

    run, sync = _compile_for(r4(NUM_CLASSES, seed=0, size=size), backend, device)
    bx = [_image_list(run, x) for x in xs]
    by = [to_backend(run, y) for y in ys]
    return Case("R4", f"augspec[{backend}]", "per sample", device,
                lambda i: _call(run, bx[i % N_BUFFERS], by[i % N_BUFFERS]), sync, augspec=True)


def r4_timm(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    """timm's own training transform (``create_transform``: RRC, flip, rand-m9-mstd0.5-inc1,
    normalize, random erasing 0.25 pixel mode) on PIL images, then timm's Mixup."""
    if device != "cpu":
        raise Skip("timm's transform runs on the CPU (PIL)")
    try:
        from PIL import Image
        from timm.data import create_transform
    except ImportError:
        raise Skip("timm is not installed") from None
    torch = _torch_device("cpu")
    mix = _timm_mixup("cpu")
    import timm.data.auto_augment as taa

    from .recipes import R4_AUTO_AUGMENT

    if not getattr(taa.posterize, "_bits_clamped", False):  # timm's inc1 can ask for 0 bits, which Pillow >= 9 refuses
        original = taa.posterize

        def posterize(img: Any, bits_to_keep: int, **kw: Any) -> Any:
            return original(img, max(1, bits_to_keep), **kw)

        posterize._bits_clamped = True  # type: ignore[attr-defined]
        taa.posterize = posterize
        taa.NAME_TO_OP = {k: (posterize if v is original else v) for k, v in taa.NAME_TO_OP.items()}
    t = create_transform(size, is_training=True, auto_augment=R4_AUTO_AUGMENT, re_prob=0.25, re_mode="pixel",
                         interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    pil = [[Image.fromarray(im) for im in x] for x in xs]
    ty = [torch.from_numpy(y) for y in ys]

    def step(i: int) -> Any:
        return mix(torch.stack([t(im) for im in pil[i % N_BUFFERS]]), ty[i % N_BUFFERS])

    return Case("R4", "timm transform + timm Mixup", "per sample (Python loop)", "cpu", step, _no_sync)


def r4_torchvision(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    torch = _torch_device(device)
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise Skip("torchvision is not installed") from None
    fill = [round(255 * v) for v in IMAGENET_MEAN]
    t = v2.Compose([
        v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
        v2.RandAugment(num_ops=2, magnitude=9, interpolation=v2.InterpolationMode.BILINEAR, fill=fill),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomErasing(p=0.25, value="random")])
    mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=NUM_CLASSES), v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)])
    tx, ty = _torch_image_lists(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = torch.stack([t(im) for im in tx[i % N_BUFFERS]])
        x, y = mix(x, ty[i % N_BUFFERS])
        return x, y * (1.0 - 0.1) + 0.1 / NUM_CLASSES

    return Case("R4", "torchvision v2 RandAugment per image", "per sample (Python loop)", device, step,
                _torch_sync(device))


def r4_albumentations(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    """albumentations' nearest equivalent: two of its ops per image (SomeOf) from the RandAugment
    set it has (affine parts, posterize, solarize, equalize, autocontrast, sharpen, colour), then
    timm's Mixup."""
    if device != "cpu":
        raise Skip("albumentations runs on the CPU")
    try:
        import albumentations as A
    except ImportError:
        raise Skip("albumentations is not installed") from None
    mix = _timm_mixup("cpu")
    if len(xs[0]) % 2:
        raise Skip("timm's Mixup needs an even batch")
    ops = [
        A.Affine(rotate=(-30, 30), p=1.0), A.Affine(shear={"x": (-17, 17), "y": (0, 0)}, p=1.0),
        A.Affine(shear={"x": (0, 0), "y": (-17, 17)}, p=1.0),
        A.Affine(translate_percent={"x": (-0.45, 0.45), "y": (0, 0)}, p=1.0),
        A.Affine(translate_percent={"x": (0, 0), "y": (-0.45, 0.45)}, p=1.0),
        A.Posterize(num_bits=(4, 8), p=1.0), A.Solarize(threshold_range=(0.0, 1.0), p=1.0),
        A.Equalize(p=1.0), A.AutoContrast(p=1.0), A.InvertImg(p=1.0), A.Sharpen(p=1.0),
        A.ColorJitter(brightness=0.9, contrast=0.0, saturation=0.0, hue=0.0, p=1.0),
        A.ColorJitter(brightness=0.0, contrast=0.9, saturation=0.0, hue=0.0, p=1.0),
        A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.9, hue=0.0, p=1.0),
    ]
    t = A.Compose([
        A.RandomResizedCrop(size=(size, size)), A.HorizontalFlip(p=0.5), A.SomeOf(ops, n=2, p=1.0),
        A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        A.Erasing(p=0.25, fill="random")])
    return _albumentations_case("R4", "albumentations SomeOf(2) + timm", t, mix, xs, ys)


def r4_kornia(device: str, xs: list[list[np.ndarray]], ys: list[np.ndarray], size: int) -> Case:
    torch = _torch_device(device)
    try:
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment as KRandAugment
    except ImportError:
        raise Skip("kornia (with kornia.augmentation.auto) is not installed") from None
    mix = _timm_mixup(device)
    if len(xs[0]) % 2:
        raise Skip("timm's Mixup needs an even batch")
    crop = K.RandomResizedCrop((size, size)).to(device)  # one size per call: image by image
    flip = K.RandomHorizontalFlip().to(device)
    ra = KRandAugment(n=2, m=9).to(device)
    post = K.AugmentationSequential(
        K.Normalize(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD)),
        K.RandomErasing(p=0.25)).to(device)
    tx, ty = _torch_image_lists(torch, xs, ys, device)

    def step(i: int) -> Any:
        x = torch.cat([crop(im[None].float() / 255.0) for im in tx[i % N_BUFFERS]])
        return mix(post(ra(flip(x))), ty[i % N_BUFFERS])

    return Case("R4", "kornia RandAugment + timm", "per sample (crop: Python loop)", device, step,
                _torch_sync(device))


# ------------------------------------------------------------------- R1


def _r1_train(size: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (256, size, size, 3), dtype=np.uint8)


def r1_augspec(backend: str, device: str, xs: list[np.ndarray], train: np.ndarray) -> Case:
    from .demo import to_backend
    from .recipes import r1

    run, sync = _compile_for(r1(train, seed=0), backend, device)
    bx = [to_backend(run, x) for x in xs]
    return Case("R1", f"augspec[{backend}]", "per sample", device, lambda i: _call(run, bx[i % N_BUFFERS]), sync,
                augspec=True)


def r1_image_data_generator(device: str, xs: list[np.ndarray], train: np.ndarray) -> Case:
    if device != "cpu":
        raise Skip("ImageDataGenerator runs on the CPU")
    try:
        from tf_keras.preprocessing.image import ImageDataGenerator
    except ImportError:
        raise Skip("tf-keras is not installed") from None
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, rotation_range=20,
                             width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True)
    gen.fit(train.astype(np.float32))
    n = xs[0].shape[0]
    flows = [gen.flow(x.astype(np.float32), batch_size=n, shuffle=False) for x in xs]
    return Case("R1", "ImageDataGenerator.flow (tf-keras)", "per sample (Python loop)", "cpu",
                lambda i: next(flows[i % N_BUFFERS]), _no_sync)


def r1_keras(device: str, xs: list[np.ndarray], train: np.ndarray) -> Case:
    tf, keras = _keras()
    L = keras.layers
    dev = _tf_device(tf, device)
    f = train.astype(np.float64)
    mean, var = f.mean(axis=(0, 1, 2)), f.var(axis=(0, 1, 2))
    with tf.device(dev):
        layers = [L.RandomRotation(20 / 360, fill_mode="nearest"), L.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
                  L.RandomFlip("horizontal"), L.Normalization(mean=tuple(mean), variance=tuple(var))]
        tx = [tf.constant(x) for x in xs]

        @tf.function
        def fn(x: Any) -> Any:
            x = tf.cast(x, tf.float32)
            for layer in layers:
                x = layer(x, training=True)
            return x

    def step(i: int) -> Any:
        with tf.device(dev):
            return fn(tx[i % N_BUFFERS])

    return Case("R1", "Keras 3 layers (tf.function)", "per sample", device, step, _tf_sync)


# ---------------------------------------------------------------- running


class Progress:
    """A one-line progress bar on a terminal's stderr; a line per case otherwise."""

    def __init__(self, total: int, stream: Any = None, width: int = 28):
        self.total, self.done, self.width = max(1, total), 0, width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = ""

    def start(self, label: str) -> None:
        self.label = label
        if not self.tty:
            print(f"  timing {label} ...", file=self.stream, flush=True)
        self.draw()

    def advance(self, k: int = 1) -> None:
        self.done = min(self.total, self.done + k)
        self.draw()

    def draw(self) -> None:
        if not self.tty:
            return
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {self.label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (self.width + 60) + "\r")
            self.stream.flush()


def time_case(case: Case, warmup: int, repeats: int, progress: Progress | None = None) -> float:
    """Median milliseconds per batch over ``repeats`` runs after ``warmup`` runs."""
    i = 0
    for _ in range(warmup):
        case.sync(case.step(i))
        i += 1
        if progress:
            progress.advance()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        case.sync(case.step(i))
        times.append(time.perf_counter() - t0)
        i += 1
        if progress:
            progress.advance()
    return 1e3 * statistics.median(times)


def _available_backends() -> list[str]:
    from .demo import available_backends

    return available_backends()


def build_cases(recipe: str, device: str, batch: int, size: int, backends: Sequence[str],
                peers: bool = True) -> list[tuple[str, str, str, Callable[[], Case]]]:
    """(recipe, name, params, builder) for every row; builders raise Skip where a row cannot run."""
    rng = np.random.default_rng(0)
    xs = images(batch, size, rng) if recipe not in ("R3", "R4") else []
    out: list[tuple[str, str, str, Callable[[], Case]]] = []
    if recipe == "R2":
        ys = class_ids(batch, rng)
        for b in backends:
            out.append(("R2", f"augspec[{b}]", "per sample", lambda b=b: r2_augspec(b, device, xs, ys)))
        if peers:
            out += [
                ("R2", "kornia + timm", "per sample", lambda: r2_kornia(device, xs, ys)),
                ("R2", "torchvision v2 per image", "per sample (Python loop)",
                 lambda: r2_torchvision(device, xs, ys, True)),
                ("R2", "torchvision v2 batch", "batch-shared", lambda: r2_torchvision(device, xs, ys, False)),
                ("R2", "albumentations + timm", "per sample (Python loop)", lambda: r2_albumentations(device, xs, ys)),
                ("R2", "Keras 3 layers (tf.function)", "per sample", lambda: r2_keras(device, xs, ys)),
            ]
    elif recipe == "R3":
        xl = mixed_images(batch, rng)
        ys = class_ids(batch, rng)
        for b in backends:
            out.append(("R3", f"augspec[{b}]", "per sample", lambda b=b: r3_augspec(b, device, xl, ys, size)))
        if peers:
            out += [
                ("R3", "torchvision v2 per image", "per sample (Python loop)",
                 lambda: r3_torchvision(device, xl, ys, size)),
                ("R3", "albumentations + timm", "per sample (Python loop)", lambda: r3_albumentations(device, xl, ys, size)),
                ("R3", "kornia + timm", "per sample (crop: Python loop)", lambda: r3_kornia(device, xl, ys, size)),
            ]
    elif recipe == "R4":
        xl = mixed_images(batch, rng)
        ys = class_ids(batch, rng)
        for b in backends:
            out.append(("R4", f"augspec[{b}]", "per sample", lambda b=b: r4_augspec(b, device, xl, ys, size)))
        if peers:
            out += [
                ("R4", "timm transform + timm Mixup", "per sample (Python loop)", lambda: r4_timm(device, xl, ys, size)),
                ("R4", "torchvision v2 RandAugment per image", "per sample (Python loop)",
                 lambda: r4_torchvision(device, xl, ys, size)),
                ("R4", "albumentations SomeOf(2) + timm", "per sample (Python loop)",
                 lambda: r4_albumentations(device, xl, ys, size)),
                ("R4", "kornia RandAugment + timm", "per sample (crop: Python loop)",
                 lambda: r4_kornia(device, xl, ys, size)),
            ]
    else:
        train = _r1_train(size)
        for b in backends:
            out.append(("R1", f"augspec[{b}]", "per sample", lambda b=b: r1_augspec(b, device, xs, train)))
        if peers:
            out += [
                ("R1", "ImageDataGenerator.flow (tf-keras)", "per sample (Python loop)",
                 lambda: r1_image_data_generator(device, xs, train)),
                ("R1", "Keras 3 layers (tf.function)", "per sample", lambda: r1_keras(device, xs, train)),
            ]
    return out


def run_bench(recipes: Sequence[str] = ("R2", "R1"), device: str = "cpu", batch: int | None = None,
              size: int | None = None, repeats: int = 5, warmup: int = 2, backends: Sequence[str] | None = None,
              only: Sequence[str] | None = None, peers: bool = True, progress: bool = True,
              interleave: bool = False) -> list[Result]:
    """Time every row; a row that cannot run is kept with its reason in ``error``.
    ``interleave``: build every row first, then time them round-robin (one run of each
    row per round, ``repeats`` rounds after the warm-up), so a change in the machine's
    load during the benchmark falls on every row alike."""
    _preimport()
    bks = list(backends) if backends else _available_backends()
    plan = []
    for rec in recipes:
        b = batch or (32 if rec == "R1" else 256 if device == "cuda" else 64)
        s = size or (32 if rec == "R1" else 224)
        for row in build_cases(rec, device, b, s, bks, peers):
            if only and not any(o.lower() in row[1].lower() for o in only):
                continue
            plan.append((row, b, s))
    bar = Progress(len(plan) * (warmup + repeats)) if progress else None
    if interleave:
        results = _run_interleaved(plan, device, repeats, warmup, bar)
        if bar:
            bar.close()
        return results
    results = []
    for (rec, name, params, builder), b, s in plan:
        res = Result(None, rec, name, params, device, b, s, augspec=name.startswith("augspec["))
        if bar:
            bar.start(f"{rec} {name}")
        try:
            case = builder()
            res.case = case
            res.params = case.params
            res.ms = time_case(case, warmup, repeats, bar)
        except Skip as e:
            res.error = f"skipped: {e}"
        except Exception as e:  # a broken row is reported, the others still run
            res.error = _failed(e)
        if bar and res.ms is None:
            bar.advance(warmup + repeats)
        res.case = None  # release buffers and compiled functions
        results.append(res)
    if bar:
        bar.close()
    return results


def _failed(e: Exception) -> str:
    from .demo import error_text

    return "failed: " + error_text(e, 200)


def _run_interleaved(plan: list, device: str, repeats: int, warmup: int, bar: Progress | None) -> list[Result]:
    """``run_bench(interleave=True)``: build every row, warm each up, then ``repeats``
    rounds of one timed run per row; the median per row."""
    results, live = [], []
    for (rec, name, params, builder), b, s in plan:
        res = Result(None, rec, name, params, device, b, s, augspec=name.startswith("augspec["))
        results.append(res)
        if bar:
            bar.start(f"{rec} {name} (warm-up)")
        try:
            res.case = builder()
            res.params = res.case.params
            for i in range(warmup):
                res.case.sync(res.case.step(i))
                if bar:
                    bar.advance()
            live.append((res, []))
        except Skip as e:
            res.error = f"skipped: {e}"
        except Exception as e:  # a broken row is reported, the others still run
            res.error = _failed(e)
        if res.error is not None:
            res.case = None
            if bar:
                bar.advance(warmup + repeats)
    for r in range(repeats):
        if bar:
            bar.start(f"round {r + 1}/{repeats}")
        for res, times in live:
            if res.case is None:
                continue
            try:
                t0 = time.perf_counter()
                res.case.sync(res.case.step(warmup + r))
                times.append(time.perf_counter() - t0)
            except Exception as e:
                res.error, res.case = _failed(e), None
                if bar:
                    bar.advance(repeats - r - 1)
            if bar:
                bar.advance()
    for res, times in live:
        if res.error is None and times:
            res.ms = 1e3 * statistics.median(times)
        res.case = None  # release buffers and compiled functions
    return results


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def machine() -> str:
    cpu = cpu_name()
    gpu = ""
    try:
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:
        pass
    return f"{cpu}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}, {platform.system()}"


def table(results: Sequence[Result], interleaved: bool = False) -> str:
    """Markdown tables, one per recipe, with the ratio to the fastest augspec row."""
    lines = [f"Machine: {machine()}  ", f"Date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}", ""]
    for rec in dict.fromkeys(r.recipe for r in results):
        rows = [r for r in results if r.recipe == rec]
        best = min((r.ms for r in rows if r.augspec and r.ms is not None), default=None)
        first = rows[0]
        if rec in ("R3", "R4"):
            from .recipes import R3_SIZES

            inputs = (f"RGB uint8 of mixed sizes ({', '.join(f'{h}x{w}' for h, w in R3_SIZES)}) "
                      f"cropped to {first.size} x {first.size}")
        else:
            inputs = f"{first.size} x {first.size} RGB uint8"
        lines += [f"### {rec}: batch {first.batch}, {inputs}, device {first.device}", "",
                  "| library | params | ms / batch | ms / image | × fastest augspec |",
                  "|---|---|---:|---:|---:|"]
        for r in rows:
            if r.ms is None:
                lines.append(f"| {r.name} | {r.params} | {r.error} | | |")
                continue
            ratio = f"{r.ms / best:.2f}" if best else "n/a"
            lines.append(f"| {r.name} | {r.params} | {r.ms:.2f} | {r.ms / r.batch:.3f} | {ratio} |")
        lines.append("")
    lines.append("Median of the timed runs after warm-up; parameter sampling included; the ratio is the row's time "
                 "over the fastest augspec backend (above 1: augspec is faster)."
                 + (" Rows timed round-robin (one run of each per round)." if interleaved else ""))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="R2,R1", help="recipes to run, comma separated: R1, R2, R3, R4 (default R2,R1)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where torch / TensorFlow rows run")
    p.add_argument("--batch", type=int, help="batch size (default: R2 and R3 64 on the CPU, 256 on cuda; R1 32)")
    p.add_argument("--size", type=int, help="image side (default: R2 224, R1 32; R3: the crop's side, 224)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5; median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--quick", action="store_true", help="a fast check: batch 8, side 64 (R2), 3 repeats, 1 warm-up")
    p.add_argument("--backend", metavar="NAME[,NAME]", help="augspec backends (default: every available one)")
    p.add_argument("--only", metavar="TEXT[,TEXT]", help="only rows whose name contains one of these")
    p.add_argument("--no-peers", action="store_true", help="time augspec's backends only")
    p.add_argument("--interleave", action="store_true",
                   help="time the rows round-robin, one run of each per round (fairer on a loaded machine)")
    p.add_argument("--out", metavar="MD", help="also write the table to this markdown file")


def main(args: argparse.Namespace) -> int:
    recipes = [r.strip().upper() for r in args.recipe.split(",") if r.strip()]
    bad = [r for r in recipes if r not in ("R1", "R2", "R3", "R4")]
    if bad or not recipes:
        print(f"augspec: error: --recipe {args.recipe!r}: choose from R1, R2, R3, R4", file=sys.stderr)
        return 2
    for name in ("batch", "size", "repeats"):
        v = getattr(args, name)
        if v is not None and v < 1:
            print(f"augspec: error: --{name} must be >= 1", file=sys.stderr)
            return 2
    if args.warmup < 0:
        print("augspec: error: --warmup must be >= 0", file=sys.stderr)
        return 2
    batch, size, repeats, warmup = args.batch, args.size, args.repeats, args.warmup
    if args.quick:
        batch = batch or 8
        repeats, warmup = min(repeats, 3), min(warmup, 1)
    backends = [b.strip() for b in args.backend.split(",")] if args.backend else None
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    results = []
    for rec in recipes:  # R2 at 64 px in quick mode, R1 at its own 32 px
        s = size or (64 if args.quick and rec == "R2" else None)
        results += run_bench([rec], args.device, batch, s, repeats, warmup, backends, only, not args.no_peers,
                             interleave=getattr(args, "interleave", False))
    text = table(results, interleaved=getattr(args, "interleave", False))
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"\nwrote {os.path.abspath(args.out)}")
    return 0 if any(r.ms is not None for r in results) else 1
