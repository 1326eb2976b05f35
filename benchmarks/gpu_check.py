"""One script for a CUDA machine: torch-vs-NumPy agreement on the device, the
no-sync check, and recipe R2 timed at batch 256 (uint8 in, float32 out):
augspec eager, jit="cudagraph" and jit=True (torch.compile, in a child process
with a time limit) against torchvision v2 (per image, and batch-shared) and
timm Mixup, plus the memory-bandwidth floor (read uint8, write float32 once);
then recipes R3 and R4 (policies) at batch 256 from a list of uint8 images of mixed sizes on the
device (agreement with NumPy, and augspec against torchvision v2 per image and
kornia (per-image crops) + timm Mixup); then synthetic data (``bench_synthetic.py``):
the fractal render rate at 64 x 64 (target 1,000,000 images / s on an H100), its agreement
with NumPy, and what ``Synthetic`` adds to a pipeline; then masks and boxes on the device
(``bench_targets.py``'s pipelines: agreement with the CPU, time with and without targets).

    PYTHONPATH=src python benchmarks/gpu_check.py                      # on the GPU machine
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --quick # smoke test anywhere

Needs torch, numpy, pluggy, pyyaml; torchvision and timm rows are skipped when
missing. Prints markdown tables and writes them to $OUT/gpu_check.md when $OUT is set.
Designed to finish in under 6 minutes (``--budget`` seconds, compile included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import augspec as aug  # noqa: E402
from augspec.recipes import IMAGENET_MEAN, IMAGENET_STD, R3_SIZES, r2, r3, r4  # noqa: E402

K = 1000
T0 = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - T0


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timeit(fn: Callable[[int], Any], dev: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median ms of ``repeats`` calls after ``warmup``, synchronising before each clock read."""
    for i in range(warmup):
        fn(i)
    sync(dev)
    ts = []
    for i in range(repeats):
        sync(dev)
        t = time.perf_counter()
        fn(i)
        sync(dev)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def inputs(n: int, size: int, dev: torch.device, buffers: int = 3):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g).to(dev) for _ in range(buffers)]
    ys = [torch.randint(0, K, (n,), generator=g).to(dev) for _ in range(buffers)]
    return xs, ys


# ------------------------------------------------------------------ agreement

def agreement(dev: torch.device) -> list[str]:
    rng = np.random.default_rng(0)
    x8 = rng.integers(0, 256, (8, 3, 24, 20), dtype=np.uint8)
    xf = x8.astype(np.float32) / 255
    y = rng.integers(0, 10, (8,))
    fit = rng.random((16, 24, 20, 3))
    cases = [
        ("affine", [aug.Affine(rotate=30, translate=0.1, scale=0.2, shear=10)], "warp"),
        ("affine_fill_p", [aug.Affine(rotate=25, fill=(0.2, 0.5, 0.8), p=0.7), aug.HorizontalFlip()], "warp"),
        ("affine_edge", [aug.Affine(rotate=40, translate=0.4, scale=(0.4, 1.6), fill_mode="nearest")], "edge"),
        ("nearest_ties", [aug.Affine(scale=(0.5, 0.5), interpolation="nearest", fill_mode="reflect")], "pixel"),
        ("affine_reflect", [aug.Affine(rotate=40, translate=0.6, scale=(0.3, 1.6), fill_mode="reflect")], "edge"),
        ("flips", [aug.HorizontalFlip(), aug.VerticalFlip()], "pixel"),
        ("color_jitter", [aug.ColorJitter(0.4, 0.4, 0.4, 0.1)], "pixel"),
        ("hue_hsv", [aug.Hue(0.2, mode="hsv")], "pixel"),
        ("noise", [aug.GaussianNoise(std=(0.0, 0.1), p=0.5)], "pixel"),
        ("normalize", [aug.Normalize()], "pixel"),
        ("standardize", aug.Pipeline([aug.Standardize(featurewise_center=True, featurewise_std=True,
                                                      samplewise_center=True)]).fit(fit).ops, "pixel"),
        ("zca", aug.Pipeline([aug.Standardize(featurewise_center=True), aug.ZCAWhitening(epsilon=0.1)]).fit(fit).ops,
         "pixel"),
        ("cutout", [aug.CutOut(holes=2, fill=(0.1, 0.2, 0.3))], "pixel"),
        ("mix_smooth", [aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], "pixel"),
        ("dropout", [aug.Dropout(0.3, noise_shape=(None, 1, 1, None))], "pixel"),
        ("random_apply", [aug.RandomApply([aug.Brightness(0.3), aug.Affine(rotate=15)], p=0.5)], "warp"),
        ("r2", list(r2(num_classes=10).ops), "warp"),
    ]
    lines = [f"### Agreement with the NumPy reference on {dev}", "",
             "| case | dtype | max diff (interior for constant-fill warps) | labels max diff | tolerance | ok |",
             "|---|---|---:|---:|---:|---|"]
    failures = 0
    for name, ops, kind in cases:
        pipe = aug.Pipeline(list(ops), num_classes=10, seed=1)
        rn = pipe.compile("numpy", layout="NCHW")
        rt = pipe.compile("torch")
        for dtype, x in (("float32", xf), ("uint8", x8)):
            p = rn.sample(len(x), x.shape[1:])
            xn, yn = rn.apply(x, y, p)
            xt, yt = rt.apply(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev), p)
            assert xt.device.type == dev.type
            a, b = xt.cpu().numpy().astype(np.float64), np.asarray(xn, np.float64)
            if kind == "warp":
                a, b = a[:, :, 1:-1, 1:-1], b[:, :, 1:-1, 1:-1]
            d = float(np.max(np.abs(a - b)))
            dl = float(np.max(np.abs(yt.cpu().numpy() - yn)))
            if xn.dtype == np.uint8:
                tol = 1.0
            else:
                tol = 1e-4 if kind in ("warp", "edge") else 1e-5
                d = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
            ok = d <= tol and dl <= 1e-6
            failures += not ok
            lines.append(f"| {name} | {dtype} | {d:.2e} | {dl:.2e} | {tol:g} | {'yes' if ok else 'NO'} |")
    lines.append("")
    lines.append(f"agreement: {'PASS' if failures == 0 else f'FAIL ({failures} rows)'}")
    return lines


# ------------------------------------------------------------------- no sync

def no_sync(dev: torch.device) -> list[str]:
    from torch.utils._python_dispatch import TorchDispatchMode

    class NoHostRead(TorchDispatchMode):
        banned = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select", "unique", "_unique2",
                  "equal", "allclose", "repeat_interleave"}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            if name in self.banned:
                raise AssertionError(f"host read: aten.{name}")
            if name == "_to_copy" and isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu" \
                    and kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "cpu":
                raise AssertionError("device-to-host copy")
            if name == "copy_" and args[0].device.type == "cpu" and args[1].device.type != "cpu":
                raise AssertionError("device-to-host copy")
            return func(*args, **kwargs)

    xs, ys = inputs(16, 64, dev, 1)
    x, y = xs[0], ys[0]
    lines = [f"### No host-device sync in a call ({dev})", ""]
    variants = [("eager", False)] + ([("jit='cudagraph'", "cudagraph")] if dev.type == "cuda" else [])
    for label, jit in variants:
        run = r2(num_classes=K, seed=0).compile("torch", jit=jit)
        for _ in range(3):  # warm the caches (constants, counters, buffers, graph capture)
            run(x, y)
        sync(dev)
        msg = "ok"
        try:
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            with NoHostRead():
                run(x, y)
                if not jit:
                    run.apply(x, y, run.sample(16, (3, 64, 64)))
        except Exception as e:  # report, do not stop
            msg = f"FAILED: {type(e).__name__}: {str(e)[:200]}"
        finally:
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
        lines.append(f"- {label}: {msg}")
    return lines


# ------------------------------------------------------------------- timings

def tv_fns(n: int, size: int, dev: torch.device):
    from torchvision.transforms import v2

    tf = v2.Compose([
        v2.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5), v2.RandomHorizontalFlip(),
        v2.ColorJitter(0.4, 0.4, 0.4, 0.1), v2.ToDtype(torch.float32, scale=True), v2.RandomErasing(p=1.0),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=K), v2.CutMix(alpha=1.0, num_classes=K)])
    xs, ys = inputs(n, size, dev)

    def per_image(i):
        x = torch.stack([tf(img) for img in xs[i % 3]])
        x, y = mix(x, ys[i % 3])
        return x, y * 0.9 + 0.1 / K

    def shared(i):
        x, y = mix(tf(xs[i % 3]), ys[i % 3])
        return x, y * 0.9 + 0.1 / K

    return per_image, shared


def timm_fn(n: int, size: int, dev: torch.device):
    from timm.data import Mixup

    m = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=K, mode="elem")
    xs, ys = inputs(n, size, dev)
    xf = [x.float() / 255 for x in xs]
    return lambda i: m(xf[i % 3].clone(), ys[i % 3])


def kornia_fn(n: int, size: int, dev: torch.device):
    """kornia.augmentation on the batch (per-sample params), then timm Mixup, as RECIPES.md R2."""
    import kornia.augmentation as K_aug
    from timm.data import Mixup

    aug = K_aug.AugmentationSequential(
        K_aug.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), 5), K_aug.RandomHorizontalFlip(),
        K_aug.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0), K_aug.RandomErasing(p=1.0),
        K_aug.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD))).to(dev)
    m = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=K, mode="elem")
    xs, ys = inputs(n, size, dev)
    return lambda i: m(aug(xs[i % 3].float() / 255), ys[i % 3])


def floor_fn(n: int, size: int, dev: torch.device):
    xs, _ = inputs(n, size, dev)
    out = torch.empty(xs[0].shape, dtype=torch.float32, device=dev)
    return lambda i: out.copy_(xs[i % 3])


def augspec_fn(n: int, size: int, dev: torch.device, jit: Any = False):
    run = r2(num_classes=K, seed=0).compile("torch", jit=jit)
    xs, ys = inputs(n, size, dev)
    return lambda i: run(xs[i % 3], ys[i % 3])


def inductor_child(args: argparse.Namespace) -> None:
    """Runs in a child process: compile + time jit=True (and mode="reduce-overhead")."""
    dev = torch.device(args.device)
    for label, jit in (("jit=True (torch.compile, default mode)", True),
                       ("jit='reduce-overhead' (torch.compile + CUDA graphs)", "reduce-overhead")):
        if jit == "reduce-overhead" and dev.type != "cuda":
            continue
        t = time.perf_counter()
        f = augspec_fn(args.batch, args.size, dev, jit=jit)
        f(0)
        sync(dev)
        first = time.perf_counter() - t
        ms = timeit(f, dev, args.repeats)
        print(json.dumps({"label": label, "ms": ms, "first_s": first}), flush=True)


def timings(args: argparse.Namespace, dev: torch.device) -> list[str]:
    n, size = args.batch, args.size
    rows: list[tuple[str, str, float | None, str]] = []

    def add(label: str, params: str, make: Callable[[], Callable[[int], Any]], repeats: int | None = None):
        try:
            t = time.perf_counter()
            f = make()
            f(0)
            sync(dev)
            first = time.perf_counter() - t
            ms = timeit(f, dev, repeats or args.repeats)
            rows.append((label, params, ms, f"first call {first:.1f} s"))
        except Exception as e:
            rows.append((label, params, None, f"{type(e).__name__}: {str(e)[:100]}"))
        print(f"  [{elapsed():.0f}s] {label}: {rows[-1][2]}", file=sys.stderr, flush=True)

    add("memory-bandwidth floor (read uint8, write float32)", "-", lambda: floor_fn(n, size, dev))
    add("augspec torch eager", "per sample", lambda: augspec_fn(n, size, dev))
    if dev.type == "cuda":
        add("augspec torch jit='cudagraph'", "per sample", lambda: augspec_fn(n, size, dev, jit="cudagraph"))
    try:
        import timm  # noqa: F401

        add("timm Mixup (mix + smoothing only, mode='elem')", "per sample", lambda: timm_fn(n, size, dev))
    except ImportError:
        rows.append(("timm Mixup", "-", None, "timm not installed"))
    try:
        import kornia  # noqa: F401

        add("kornia.augmentation + timm Mixup", "per sample", lambda: kornia_fn(n, size, dev))
    except ImportError:
        rows.append(("kornia + timm", "-", None, "kornia not installed"))
    if dev.type == "cuda":
        for b in (32, 64, 128):
            add(f"augspec torch jit='cudagraph', batch {b} (scaling)", "per sample",
                lambda b=b: augspec_fn(b, size, dev, jit="cudagraph"))
    try:
        import torchvision  # noqa: F401

        add("torchvision v2 batch-shared + MixUp/CutMix", "SHARED by the batch", lambda: tv_fns(n, size, dev)[1])
        add("torchvision v2 per image + MixUp/CutMix", "per sample (mix: per batch)", lambda: tv_fns(n, size, dev)[0],
            repeats=max(3, args.repeats // 3))
    except ImportError:
        rows.append(("torchvision v2", "-", None, "torchvision not installed"))
    if not args.no_compile:
        left = args.budget - elapsed() - 15
        if left < 30:
            rows.append(("augspec torch jit=True", "per sample", None, "skipped: out of time budget"))
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--inductor-child", "--device", str(dev),
                   "--batch", str(n), "--size", str(size), "--repeats", str(args.repeats)]
            env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
            got = []
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=left, env=env)
                out = p.stdout
                if p.returncode != 0:
                    why = p.stderr.strip().splitlines()[-1][:100] if p.stderr.strip() else p.returncode
                    rows.append(("augspec torch jit=True", "per sample", None, f"child failed: {why}"))
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                rows.append(("augspec torch.compile (remaining modes)", "per sample", None,
                             f"compile did not finish in {left:.0f} s"))
            for line in out.splitlines():
                if line.startswith("{"):
                    d = json.loads(line)
                    got.append((f"augspec torch {d['label']}", "per sample", d["ms"],
                                f"first call (compile) {d['first_s']:.0f} s"))
            rows[2:2] = got
    base = next((r[2] for r in rows if r[0] == "augspec torch eager"), None)
    lines = [f"### R2, batch {n}, {size}x{size}, uint8 in, float32 out ({dev})", "",
             "| pipeline | params | ms / batch | x augspec eager | note |", "|---|---|---:|---:|---|"]
    for label, params, ms, note in rows:
        if ms is None:
            lines.append(f"| {label} | {params} | - | - | {note} |")
        else:
            ratio = f"{ms / base:.2f}" if base else "-"
            lines.append(f"| {label} | {params} | {ms:.3f} | {ratio} | {note} |")
    return lines


# ---------------------------------------------------------------- R3 (ragged)
def ragged_inputs(n: int, dev: torch.device, buffers: int = 3):
    """``buffers`` lists of ``n`` CHW uint8 images of R3's mixed sizes on ``dev``, and class ids."""
    g = torch.Generator().manual_seed(1)
    xs = [[torch.randint(0, 256, (3, *R3_SIZES[(i + b) % len(R3_SIZES)]), dtype=torch.uint8, generator=g).to(dev)
           for i in range(n)] for b in range(buffers)]
    ys = [torch.randint(0, K, (n,), generator=g).to(dev) for _ in range(buffers)]
    return xs, ys


def r3_agreement(dev: torch.device) -> list[str]:
    """R3 on a list of images of mixed sizes: the device's torch run against NumPy, on injected params."""
    pipe = r3(num_classes=K, seed=0, size=96)
    ref, run = pipe.compile("numpy", layout="NCHW"), pipe.compile("torch", device=str(dev))
    xs, ys = ragged_inputs(16, dev, buffers=1)
    params = ref.sample(16, (3, 500, 640))
    want, wy = ref.apply([x.cpu().numpy() for x in xs[0]], ys[0].cpu().numpy(), params)
    got, gy = run.apply(xs[0], ys[0], {k: torch.as_tensor(np.asarray(v)).to(dev) for k, v in params.items()})
    d = np.abs(got.cpu().numpy() - want)[..., 1:-1, 1:-1]
    dy = np.abs(gy.cpu().numpy() - wy).max()
    return ["### R3 agreement (torch on the device vs NumPy, 16 images of mixed sizes, 96 x 96 out)", "",
            f"max |diff| images (interior) {d.max():.2e}, labels {dy:.2e}: {'OK' if d.max() < 1e-3 else 'MISMATCH'}"]


def r3_timings(args: argparse.Namespace, dev: torch.device) -> list[str]:
    n = args.batch
    rows: list[tuple[str, str, float | None, str]] = []
    xs, ys = ragged_inputs(n, dev)

    def add(label: str, params: str, make: Callable[[], Callable[[int], Any]], repeats: int | None = None):
        try:
            f = make()
            t = time.perf_counter()
            f(0)
            sync(dev)
            first = time.perf_counter() - t
            rows.append((label, params, timeit(f, dev, repeats or args.repeats), f"first call {first:.1f} s"))
        except Exception as e:
            rows.append((label, params, None, f"{type(e).__name__}: {str(e)[:100]}"))
        print(f"  [{elapsed():.0f}s] R3 {label}: {rows[-1][2]}", file=sys.stderr, flush=True)

    def augspec_r3():
        run = r3(num_classes=K, seed=0).compile("torch", device=str(dev))
        return lambda i: run(xs[i % 3], ys[i % 3])

    def tv_r3():
        from torchvision.transforms import v2

        t = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                        v2.ColorJitter(0.4, 0.4, 0.4), v2.ToDtype(torch.float32, scale=True),
                        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.RandomErasing(p=0.25)])
        mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=K), v2.CutMix(alpha=1.0, num_classes=K)])

        def f(i):
            x, y = mix(torch.stack([t(im) for im in xs[i % 3]]), ys[i % 3])
            return x, y * 0.9 + 0.1 / K
        return f

    def kornia_r3():
        import kornia.augmentation as K_aug
        from timm.data import Mixup

        crop = K_aug.RandomResizedCrop((224, 224))
        batch = K_aug.AugmentationSequential(
            K_aug.RandomHorizontalFlip(), K_aug.ColorJitter(0.4, 0.4, 0.4, 0.0, p=1.0),
            K_aug.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)), K_aug.RandomErasing(p=0.25)).to(dev)
        m = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=K, mode="elem")
        return lambda i: m(batch(torch.cat([crop(im[None].float() / 255) for im in xs[i % 3]])), ys[i % 3])

    add("augspec torch eager (list in)", "per sample", augspec_r3)
    for label, make in (("torchvision v2 per image + MixUp/CutMix", tv_r3),
                        ("kornia (per-image crop) + timm Mixup", kornia_r3)):
        try:
            add(label, "per sample", make, repeats=max(3, args.repeats // 4))
        except ImportError as e:
            rows.append((label, "-", None, f"not installed: {e}"))
    base = rows[0][2]
    lines = [f"### R3, batch {n}, mixed sizes {list(R3_SIZES)} -> 224x224, uint8 list in ({dev})", "",
             "| pipeline | params | ms / batch | x augspec | note |", "|---|---|---:|---:|---|"]
    for label, params, ms, note in rows:
        if ms is None:
            lines.append(f"| {label} | {params} | - | - | {note} |")
        else:
            lines.append(f"| {label} | {params} | {ms:.3f} | {ms / base:.2f} | {note} |" if base else
                         f"| {label} | {params} | {ms:.3f} | - | {note} |")
    return lines


# ------------------------------------------------------------- R4 (policies)
def r4_timings(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """R4 (R3 with timm's RandAugment and pixel random erasing) at the batch size, against
    kornia's RandAugment + timm Mixup; then RandAugment alone against each op it can draw
    (on a device every gated op runs on the whole batch and selects: no host sync)."""
    n = args.batch
    xs, ys = ragged_inputs(n, dev)
    rows: list[tuple[str, float | None, str]] = []

    def add(label: str, make: Callable[[], Callable[[int], Any]], repeats: int | None = None) -> None:
        try:
            f = make()
            f(0)
            sync(dev)
            rows.append((label, timeit(f, dev, repeats or args.repeats), ""))
        except Exception as e:
            rows.append((label, None, f"{type(e).__name__}: {str(e)[:100]}"))
        print(f"  [{elapsed():.0f}s] R4 {label}: {rows[-1][1]}", file=sys.stderr, flush=True)

    def augspec_r4():
        run = r4(num_classes=K, seed=0).compile("torch", device=str(dev))
        return lambda i: run(xs[i % 3], ys[i % 3])

    def kornia_r4():
        import kornia.augmentation as K_aug
        from kornia.augmentation.auto import RandAugment as KRandAugment
        from timm.data import Mixup

        crop = K_aug.RandomResizedCrop((224, 224))
        flip, ra = K_aug.RandomHorizontalFlip().to(dev), KRandAugment(n=2, m=9).to(dev)
        post = K_aug.AugmentationSequential(
            K_aug.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)), K_aug.RandomErasing(p=0.25)).to(dev)
        m = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=K, mode="elem")
        return lambda i: m(post(ra(flip(torch.cat([crop(im[None].float() / 255) for im in xs[i % 3]])))), ys[i % 3])

    add("augspec torch eager (list in)", augspec_r4)
    add("kornia RandAugment (per-image crop) + timm Mixup", kornia_r4, repeats=max(3, args.repeats // 4))
    x = torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8, device=dev)
    singles = {}
    from augspec.core.containers import Choice
    from augspec.core.ops import policy as P

    (layer,) = aug.RandAugment(num_ops=1).children
    for name, (op,) in zip([k for k in P._TV_RAND if k != "Identity"], layer.branches):
        singles[name] = Choice(((op,),), (1.0,))
    for label, op in [("RandAugment(2, 9)", aug.RandAugment()),
                      ("RandAugment timm rand-m9-mstd0.5-inc1", aug.from_timm("rand-m9-mstd0.5-inc1")),
                      *[(f"  {k} alone", v) for k, v in singles.items()]]:
        def make(op=op):
            run = aug.Pipeline([op], seed=0).compile("torch", device=str(dev))
            return lambda i: run(x)
        add(label, make, repeats=max(3, args.repeats // 2))
    base = rows[0][1]
    lines = [f"### R4, batch {n}, mixed sizes -> 224x224, uint8 list in ({dev})", "",
             "| pipeline | ms / batch | x augspec R4 | note |", "|---|---:|---:|---|"]
    for label, ms, note in rows[:2]:
        lines.append(f"| {label} | - | - | {note} |" if ms is None else
                     f"| {label} | {ms:.3f} | {ms / base:.2f} | {note} |" if base else f"| {label} | {ms:.3f} | - | {note} |")
    single_ms = [ms for label, ms, _ in rows[4:] if ms is not None]
    worst = max(single_ms) if single_ms else None
    lines += ["", f"RandAugment alone on {n} x 224 x 224 uint8 ({dev}): cost over its most expensive single op", "",
              "| pipeline | ms / batch | x most expensive op |", "|---|---:|---:|"]
    for label, ms, note in rows[2:]:
        lines.append(f"| {label} | - | {note} |" if ms is None or not worst else f"| {label} | {ms:.3f} | {ms / worst:.2f} |")
    return lines


# ------------------------------------------------------------- synthetic data
def synthetic_section(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """Fractal images on the device equal NumPy's, bit for bit; then bench_synthetic's tables
    (the render rate eager and compiled, the op's own cost and peak memory)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_synthetic import synthetic_tables

    from augspec.backends.numpy import NumpyBackend
    from augspec.backends.torch import TorchBackend
    from augspec.core.generators.fractal import Fractal
    from augspec.core.synthetic import key_words

    g, n = Fractal(), 64
    u = np.random.default_rng(0).random((n, 2)).astype(np.float32)
    lab = np.arange(n) % 100
    want = g(NumpyBackend(), lab, key_words(NumpyBackend(), u), (64, 64, 3), 100)
    Bt = TorchBackend(device=str(dev))
    Bt.current = dev
    got = g(Bt, torch.from_numpy(lab).to(dev), key_words(Bt, torch.from_numpy(u).to(dev)), (64, 64, 3), 100)
    same = np.array_equal(got.cpu().numpy(), want)
    batch = 256 if args.quick else 65536
    lines = [f"fractal on {dev} equals NumPy's bit for bit (64 images, 64x64x3): {same}", ""]
    lines += synthetic_tables(str(dev), batch=batch, size=64, pipe_batch=args.batch, pipe_size=64 if args.quick else 224,
                              repeats=max(3, args.repeats // 4), compile_=False)  # compiling it takes minutes
    return lines


# ------------------------------------------------------------------ targets
def targets_section(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """Masks, boxes and keypoints on the device equal the CPU's (the segmentation and
    detection pipelines of ``bench_targets.py``); then their time per batch on the device,
    images alone and with targets (boxes padded: no host read)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_targets import det_pipeline, seg_pipeline

    n, size = (4, 64) if args.quick else (32, 512)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))
    m = torch.from_numpy(rng.integers(0, 21, (n, size, size)).astype(np.uint8))
    lo = rng.uniform(0, 0.8, (n, 50, 2)) * size
    b = torch.from_numpy(np.concatenate([lo, lo + rng.uniform(4, 0.2 * size, (n, 50, 2))], -1).astype(np.float32))
    valid = torch.from_numpy(rng.random((n, 50)) < 0.6)
    lines = []
    for name, pipe, kw in (("segmentation", seg_pipeline(size), {"masks": m}),
                           ("detection", det_pipeline(size), {"boxes": b, "box_valid": valid})):
        cpu = pipe.compile("torch", targets={"min_size": 1.0})
        gpu = pipe.compile("torch", targets={"min_size": 1.0})
        want = cpu(x, **kw)
        got = gpu(x.to(dev), **{k: v.to(dev) for k, v in kw.items()})
        same = {k: (torch.equal(got[k].cpu(), want[k]) if not want[k].dtype.is_floating_point
                    else bool(torch.allclose(got[k].cpu().float(), want[k].float(), atol=1e-3)))
                for k in want if k != "images"}
        lines.append(f"{name} targets on {dev} equal the CPU's: {same}")
        xs = [x.to(dev) for _ in range(3)]
        kws = [{k: v.to(dev) for k, v in kw.items()} for _ in range(3)]
        t_img = timeit(lambda i, r=gpu, xs=xs: r(xs[i % 3]), dev, args.repeats)
        t_all = timeit(lambda i, r=gpu, xs=xs, kws=kws: r(xs[i % 3], **kws[i % 3]), dev, args.repeats)
        lines.append(f"{name}, batch {n} at {size} px on {dev}: images {t_img:.2f} ms, "
                     f"with targets {t_all:.2f} ms per batch")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--budget", type=float, default=330.0, help="seconds for the whole script")
    ap.add_argument("--quick", action="store_true", help="batch 8, 64 px, 3 repeats (a smoke test)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile child")
    ap.add_argument("--inductor-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.batch, args.size, args.repeats = 8, 64, 3
    if args.inductor_child:
        inductor_child(args)
        return
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: run with --device cpu --quick for a smoke test")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    head = [f"Device: {name}; torch {torch.__version__}; augspec {aug.__version__}  ", f"Date: {date}", ""]
    print("\n".join(head), flush=True)
    parts = []
    for section in (agreement, no_sync):
        lines = section(dev)
        print("\n".join(lines) + "\n", flush=True)
        parts += lines + [""]
    lines = timings(args, dev)
    print("\n".join(lines), flush=True)
    parts += lines + [""]
    for tag, section in (("R3", lambda: r3_agreement(dev)), ("R3", lambda: r3_timings(args, dev)),
                         ("R4", lambda: r4_timings(args, dev)), ("synthetic", lambda: synthetic_section(args, dev)),
                         ("targets", lambda: targets_section(args, dev))):
        try:
            lines = section()
        except Exception as e:
            lines = [f"{tag} section failed: {type(e).__name__}: {e}"]
        print("\n".join(lines) + "\n", flush=True)
        parts += lines + [""]
    print(f"\n(total {elapsed():.0f} s)")
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gpu_check.md"), "w") as fh:
            fh.write("\n".join(head + parts) + f"\n\n(total {elapsed():.0f} s)\n")


if __name__ == "__main__":
    main()
