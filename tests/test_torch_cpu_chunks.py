"""The torch backend's CPU memory paths: per-sample stages run chunk by chunk
(``TorchBackend.chunk_bytes``, the core executor's chunking policy) with exactly the values of the whole-batch run, and
large outputs of earlier calls are reused only once nothing references them."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from test_torch_backend import OPS, X_F32, X_U8, K, Y  # noqa: E402

import augspec as aug  # noqa: E402
import augspec.backends.torch as bt  # noqa: E402
from augspec.backends.torch.memory import POOL_BLOCKS  # noqa: E402
from augspec.core.executor import Executor  # noqa: E402
from augspec.core.spec import Context  # noqa: E402
from augspec.recipes import r2  # noqa: E402

PER_IMAGE = X_U8[0].size * 4  # float32 bytes of one test image


@aug.spec
class BatchCentre(aug.PixelOp):
    """Subtracts the batch mean: a plugin op that looks across the batch."""

    name = "test_batch_centre"
    p: float = 1.0

    def pixels(self, B: Any, x: Any, params: Mapping[str, Any], ctx: Context) -> Any:
        return x - B.mean(x, axis=0, keepdims=True) + 0.5


@pytest.fixture
def chunks(monkeypatch):
    """Runs ``fn`` with chunks of ``size`` samples, and records whether it chunked."""

    def run(fn, size):
        used = []
        real = Executor.run_chunked

        def spy(self, *a, **kw):
            res = real(self, *a, **kw)
            used.append(res is not None)
            return res

        monkeypatch.setattr(Executor, "run_chunked", spy)
        monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", size * PER_IMAGE)
        try:
            return fn(), any(used)
        finally:
            monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", 1 << 40)

    return run


@pytest.mark.parametrize("name,ops,kind", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("size", [1, 4])
def test_chunked_run_equals_the_whole_batch(chunks, monkeypatch, name, ops, kind, dtype, size):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", 1 << 40)
    rt = aug.Pipeline(ops, num_classes=K, seed=3).compile("torch")
    x = torch.from_numpy((X_U8 if dtype == "uint8" else X_F32).copy())
    x0 = x.clone()
    y = torch.from_numpy(Y)
    params = rt.sample(len(x), tuple(x.shape[1:]))
    whole = rt.apply(x, y, params)
    (part, chunked) = chunks(lambda: rt.apply(x, y, params), size)
    assert chunked == (rt.plan.executor.samplewise_prefix > 0)  # 6 samples, chunks of 1 or 4 (balanced: 3 + 3)
    assert part[0].dtype == whole[0].dtype
    if name == "zca":  # one (N, D) x (D, D) product: BLAS may round differently for another row count
        torch.testing.assert_close(part[0], whole[0], atol=1e-6, rtol=1e-6)
    else:
        assert torch.equal(part[0], whole[0]), name
    assert torch.equal(part[1], whole[1]), name
    assert torch.equal(x, x0), "input mutated"


BOUNDED = [aug.Affine(rotate=15), aug.ColorJitter(0.4, 0.4, 0.4, 0.1), aug.CutOut(), aug.MixUp(0.8)]


@pytest.mark.parametrize("x,ops", [(torch.from_numpy(X_U8), BOUNDED), (torch.from_numpy(X_F32).to(torch.float16), list(r2(K).ops))],
                         ids=["uint8", "float16"])
def test_uint8_and_float16_outputs_chunked(chunks, x, ops):
    rt = aug.Pipeline(ops, num_classes=K, seed=1).compile("torch")
    params = rt.sample(len(x), tuple(x.shape[1:]))
    whole = rt.apply(x, torch.from_numpy(Y), params)
    part, chunked = chunks(lambda: rt.apply(x, torch.from_numpy(Y), params), 2)
    assert chunked
    assert part[0].dtype == whole[0].dtype == x.dtype
    assert torch.equal(part[0], whole[0]) and torch.equal(part[1], whole[1])


def test_a_plugin_op_ends_the_chunked_prefix(chunks):
    ops = [aug.Affine(rotate=20), aug.Brightness(0.3), BatchCentre(), aug.CutOut(), aug.MixUp(0.5)]
    rt = aug.Pipeline(ops, num_classes=K, seed=5).compile("torch")
    assert [st.kind for st in rt.plan.stages][:3] == ["geometric", "color", "pixel"]
    assert rt.plan.executor.samplewise_prefix == 2
    x = torch.from_numpy(X_U8)
    params = rt.sample(len(x), tuple(x.shape[1:]))
    whole = rt.apply(x, torch.from_numpy(Y), params)
    part, chunked = chunks(lambda: rt.apply(x, torch.from_numpy(Y), params), 1)
    assert chunked
    assert torch.equal(part[0], whole[0]) and torch.equal(part[1], whole[1])
    # and the batch statistic saw the whole batch: the reference agrees
    rn = aug.Pipeline(ops, num_classes=K, seed=5).compile("numpy", layout="NCHW")
    xn, _ = rn.apply(X_U8, Y, {k: v.numpy() for k, v in params.items()})
    np.testing.assert_allclose(part[0].numpy()[:, :, 1:-1, 1:-1], xn[:, :, 1:-1, 1:-1], atol=1e-4)


def test_no_chunks_off_the_cpu_path_or_for_nhwc(chunks):
    rt = r2(num_classes=K, seed=0).compile("torch", layout="NHWC")
    x = torch.from_numpy(X_U8.transpose(0, 2, 3, 1).copy())
    _, chunked = chunks(lambda: rt(x, torch.from_numpy(Y)), 1)
    assert not chunked
    rt = r2(num_classes=K, seed=0).compile("torch")
    _, chunked = chunks(lambda: rt(torch.from_numpy(X_U8), torch.from_numpy(Y)), 100)  # the batch fits one chunk
    assert not chunked


# ------------------------------------------------------------ recycled outputs

BIG = np.random.default_rng(0).integers(0, 256, (4, 3, 256, 256), dtype=np.uint8)  # 3 MB of float32 out


def _storage_of(t):
    return t.untyped_storage().data_ptr()


@pytest.mark.parametrize("keep", ["tensor", "view", "numpy", "storage", "dlpack", "list", "weakref"])
@pytest.mark.parametrize("chunked", [False, True])
def test_an_output_still_referenced_is_never_reused(monkeypatch, keep, chunked):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", BIG[0].size * 4 if chunked else 1 << 40)
    rt = aug.Pipeline([aug.ColorJitter(0.4, 0.4), aug.CutOut()], seed=0).compile("torch")  # no warp: the output is fresh()
    x = torch.from_numpy(BIG).float() / 255  # float32 out (uint8 in would give uint8 out)
    out = rt(x)
    assert out.dtype == torch.float32
    ptr, copy = _storage_of(out), out.clone()
    held = {"tensor": lambda t: t, "view": lambda t: t[1:, 0], "numpy": lambda t: t.numpy(),
            "storage": lambda t: t.untyped_storage(), "dlpack": lambda t: torch.utils.dlpack.to_dlpack(t),
            "list": lambda t: [t], "weakref": lambda t: weakref.ref(t)}[keep](out)
    del out
    later = [rt(x) for _ in range(3)]
    # what the caller still reaches of the first output
    seen = {"tensor": lambda: held, "view": lambda: held, "numpy": lambda: torch.from_numpy(held),
            "storage": lambda: torch.tensor([], dtype=torch.float32).set_(held).reshape(copy.shape),
            "dlpack": lambda: torch.utils.dlpack.from_dlpack(held), "list": lambda: held[0],
            "weakref": lambda: held()}[keep]()
    if seen is None:  # the weak reference died with the list entry: the memory went back to the system
        assert keep == "weakref"
        return
    assert all(_storage_of(t) != ptr for t in later), f"an output held through a {keep} was reused"
    assert torch.equal(seen, copy[1:, 0] if keep == "view" else copy)


def test_a_released_output_is_reused_and_a_shared_one_is_not(monkeypatch):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", BIG[0].size * 4)
    rt = r2(num_classes=K, seed=0).compile("torch")
    x, y = torch.from_numpy(BIG), torch.from_numpy(np.arange(4) % K)
    ptrs = set()
    for _ in range(4):  # the training loop's pattern: the previous batch is gone at the next call
        out, _ = rt(x, y)
        ptrs.add(_storage_of(out))
        del out
    assert len(ptrs) <= POOL_BLOCKS, "released outputs were not reused"
    out, _ = rt(x, y)
    out.share_memory_()  # what a DataLoader worker does with a batch it returns: the main process maps it
    shared = _storage_of(out)
    del out  # the worker lets go; the recycling list still holds it, so its address stays taken
    for _ in range(3):
        assert _storage_of(rt(x, y)[0]) != shared, "an output in shared memory was written again"


def test_outputs_are_writable_tensors_of_their_own(monkeypatch):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", BIG[0].size * 4)
    rt = r2(num_classes=K, seed=0).compile("torch")
    x, y = torch.from_numpy(BIG), torch.from_numpy(np.arange(4) % K)
    a, _ = rt(x, y)
    b, _ = rt(x, y)
    assert a.is_contiguous() and a.dtype == torch.float32 and a.shape == (4, 3, 256, 256)
    assert _storage_of(a) != _storage_of(b)
    b_copy = b.clone()
    a.zero_()  # the caller may write to its outputs
    assert torch.equal(b, b_copy)
    a.resize_(2, 3)  # and resize them: that one is not reused as an output any more
    assert a.shape == (2, 3)
    del b, b_copy
    c, _ = rt(x, y)
    d, _ = rt(x, y)
    assert a.shape == (2, 3) and _storage_of(a) not in (_storage_of(c), _storage_of(d))


def test_recycling_respects_autograd_and_inference_mode(monkeypatch):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", BIG[0].size * 4)
    rt = r2(num_classes=K, seed=0).compile("torch")
    x, y = torch.from_numpy(BIG), torch.from_numpy(np.arange(4) % K)
    with torch.inference_mode():
        out, _ = rt(x, y)
        assert out.is_inference()
        del out
    out, _ = rt(x, y)  # outside inference mode: a normal tensor, written in place later
    assert not out.is_inference()
    out.requires_grad_()
    (out * 2).sum().backward()
    del out
    a, _ = rt(x, y)
    b, _ = rt(x, y)
    assert not a.requires_grad and not b.requires_grad


def test_released_outputs_are_reused_without_chunks_too(monkeypatch):
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", 1 << 40)
    rt = aug.Pipeline([aug.ColorJitter(0.4, 0.4), aug.CutOut()], seed=0).compile("torch")
    x = torch.from_numpy(BIG).float() / 255
    ptrs = set()
    for _ in range(4):
        out = rt(x)
        ptrs.add(_storage_of(out))
        del out
    assert len(ptrs) <= POOL_BLOCKS


_POOL = [
    lambda: aug.Affine(rotate=20, translate=0.1, scale=0.1, p=0.7),
    lambda: aug.HorizontalFlip(),
    lambda: aug.ColorJitter(0.3, 0.3, 0.3, 0.05),
    lambda: aug.Hue(0.1, mode="hsv"),
    lambda: aug.GaussianNoise(std=0.05, p=0.5),
    lambda: aug.CutOut(holes=2, fill=0.5),
    lambda: aug.Normalize(mean=0.5, std=0.25),
    lambda: aug.OneOf([aug.MixUp(0.5), aug.CutMix(1.0)]),
    lambda: aug.CutMix(1.0, p=0.5),
    lambda: aug.LabelSmoothing(0.2),
    lambda: aug.Dropout(rate=0.2),
]


@given(idx=st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=5),
       n=st.integers(2, 7), c=st.sampled_from([1, 3, 4]), h=st.integers(3, 11), w=st.integers(3, 11),
       dtype=st.sampled_from(["uint8", "float32", "bfloat16", "float64"]), channels_last=st.booleans(),
       size=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_chunked_equals_whole_for_random_pipelines(idx, n, c, h, w, dtype, channels_last, size, seed):
    ops = [_POOL[i]() for i in idx]
    if c != 3:
        ops = [o for o in ops if not isinstance(o, (aug.ColorJitter, aug.Hue))]
        if not ops:
            return
    rng = np.random.default_rng(seed)
    xn = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    x = torch.from_numpy(xn) if dtype == "uint8" else (torch.from_numpy(xn).double() / 255).to(getattr(torch, dtype))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(rng.integers(0, K, (n,)))
    rt = aug.Pipeline(ops, num_classes=K, seed=seed).compile("torch")
    params = rt.sample(n, (c, h, w))
    old = bt.TorchBackend.chunk_bytes
    try:
        bt.TorchBackend.chunk_bytes = 1 << 40
        whole = rt.apply(x, y, params)
        bt.TorchBackend.chunk_bytes = size * c * h * w * 4
        part = rt.apply(x, y, params)
    finally:
        bt.TorchBackend.chunk_bytes = old
    assert part[0].dtype == whole[0].dtype and part[0].shape == whole[0].shape
    assert torch.equal(part[0], whole[0])
    assert torch.equal(part[1], whole[1])


class _ArrayInterface:
    """A holder that exposes the output only through ``__array_interface__`` (what a C
    extension or another array library keeps), referencing the tensor's NumPy view."""

    def __init__(self, t):
        self._keep = t.numpy()
        self.__array_interface__ = self._keep.__array_interface__


@pytest.mark.parametrize("keep", ["array_interface", "numpy_view", "dlpack", "pinned_copy"])
@pytest.mark.parametrize("chunked", [False, True])
def test_outputs_belong_to_the_caller_over_100_calls(monkeypatch, keep, chunked):
    """No output a call returned is written again while the caller holds it in any form."""
    monkeypatch.setattr(bt.TorchBackend, "chunk_bytes", BIG[0].size * 4 if chunked else 1 << 40)
    rt = r2(num_classes=K, seed=0).compile("torch")
    x, y = torch.from_numpy(BIG), torch.from_numpy(np.arange(4) % K)
    out, _ = rt(x, y)
    expect = out.clone()
    held = {"array_interface": lambda t: _ArrayInterface(t), "numpy_view": lambda t: t.numpy()[:, 1:],
            "dlpack": lambda t: torch.utils.dlpack.to_dlpack(t), "pinned_copy": lambda t: t.pin_memory()
            if torch.cuda.is_available() else t.clone()}[keep](out)
    del out
    for _ in range(100):
        rt(x, y)
    seen = {"array_interface": lambda: torch.from_numpy(np.asarray(held)),
            "numpy_view": lambda: torch.from_numpy(held), "dlpack": lambda: torch.utils.dlpack.from_dlpack(held),
            "pinned_copy": lambda: held}[keep]()
    assert torch.equal(seen, expect[:, 1:] if keep == "numpy_view" else expect), f"an output held as {keep} changed"
