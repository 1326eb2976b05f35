"""The torch backend against the NumPy reference: RNG bits, sampling, every built-in
op with injected params, dtypes and layouts, invariants, no host sync, torch.compile."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from op_cases import FIT, OPS, K  # noqa: E402,F401
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import augspec as aug  # noqa: E402
from augspec.backends.numpy import NumpyBackend  # noqa: E402
from augspec.backends.torch import TorchBackend  # noqa: E402
from augspec.core.random import Beta, Normal, random_bits  # noqa: E402
from augspec.recipes import r2  # noqa: E402

RNG = np.random.default_rng(1234)
X_U8 = RNG.integers(0, 256, (6, 3, 12, 14), dtype=np.uint8)  # NCHW
X_F32 = (X_U8.astype(np.float32) / 255.0)
Y = RNG.integers(0, K, (6,))




def _compare(name, kind, xt, xn, dtype):
    xt = xt.detach().cpu().float().numpy() if xt.dtype == torch.bfloat16 else xt.detach().cpu().numpy()
    assert xt.shape == xn.shape, name
    if dtype == "uint8" and xn.dtype == np.uint8:
        assert xt.dtype == np.uint8
        diff = np.abs(xt.astype(np.int32) - xn.astype(np.int32))
        if kind in ("warp", "nearest"):
            diff = diff[:, :, 1:-1, 1:-1]
        assert diff.max() <= 1, (name, diff.max())
        return
    a, b = xt.astype(np.float64), xn.astype(np.float64)
    if kind == "edge":  # fill_mode nearest / reflect: the borders agree too
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)
    elif kind in ("warp",):
        a, b = a[:, :, 1:-1, 1:-1], b[:, :, 1:-1, 1:-1]
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=name)
    elif kind == "nearest":  # the same taps (float64 index, ties up), so the same pixels
        np.testing.assert_array_equal(a, b, err_msg=name)
    elif kind == "exact":
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("name,ops,kind", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_agrees_with_numpy_on_injected_params(name, ops, kind, dtype):
    pipe = aug.Pipeline(ops, num_classes=K, seed=7)
    rn = pipe.compile("numpy", layout="NCHW")
    rt = pipe.compile("torch")
    x = X_U8 if dtype == "uint8" else X_F32
    params = rn.sample(len(x), x.shape[1:])
    xn, yn = rn.apply(x, Y, params)
    xin = torch.from_numpy(x.copy())
    xt, yt = rt.apply(xin, torch.from_numpy(Y), params)
    assert torch.equal(xin, torch.from_numpy(x)), "input mutated"
    _compare(name, kind, xt, xn, dtype)
    yt = yt.numpy()
    assert yt.shape == np.shape(yn)
    np.testing.assert_allclose(yt, yn, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["affine_flip", "color_jitter", "cutout", "one_of", "r2", "dropout", "zca"])
def test_nhwc_layout_and_torch_params(name):
    ops, kind = next((o[1], o[2]) for o in OPS if o[0] == name)
    pipe = aug.Pipeline(ops, num_classes=K, seed=3)
    x = np.ascontiguousarray(X_F32.transpose(0, 2, 3, 1))
    rn = pipe.compile("numpy", layout="NHWC")
    rt = pipe.compile("torch", layout="NHWC")
    params = rn.sample(len(x), x.shape[1:])
    xn, yn = rn.apply(x, Y, params)
    tparams = {k: torch.from_numpy(np.asarray(v).copy()) for k, v in params.items()}
    xt, yt = rt.apply(torch.from_numpy(x), torch.from_numpy(Y), tparams)
    _compare(name, kind, xt.permute(0, 3, 1, 2), xn.transpose(0, 3, 1, 2), "float32")
    np.testing.assert_allclose(yt.numpy(), yn, atol=1e-6)


def test_random_bits_bit_exact():
    rng = np.random.default_rng(0)
    counters = np.stack([rng.integers(0, 2**32, 5000).astype(np.uint32), rng.integers(0, 256, 5000).astype(np.uint32)])
    key = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    bn = random_bits(NumpyBackend(), counters, (np.uint32(key[0]), np.uint32(key[1])))
    tb = TorchBackend()
    bt = random_bits(tb, tb.asarray(counters, "uint32"), (tb.asarray(key[0], "uint32"), tb.asarray(key[1], "uint32")))
    np.testing.assert_array_equal(bt.numpy(), bn)
    assert bn.min() >= 0 and bn.max() < 2**32


def _all_draw_pipeline():
    return aug.Pipeline([
        aug.Affine(rotate=15, translate=0.1, scale=0.1, shear=5, scale_y=0.1, p=0.9),
        aug.HorizontalFlip(), aug.ColorJitter(0.4, 0.4, 0.4, 0.1),
        aug.GaussianNoise(std=(0.0, 0.1)), aug.CutOut(holes=3),
        aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)], weights=(1, 2)),
        aug.RandomApply(aug.Dropout(0.2), p=0.5),
    ], num_classes=K, seed=11)


def test_sample_with_torch_equals_sample_with_numpy():
    pipe = _all_draw_pipeline()
    pn = pipe.compile("numpy", layout="NCHW").sample(9, (3, 8, 10))
    pt = pipe.compile("torch").sample(9, (3, 8, 10))
    assert set(pn) == set(pt)
    continuous = {k for k, d in ((d.key, d.dist) for d in pipe.compile("numpy").plan.sampler.draws)
                  if isinstance(d, (Beta, Normal))}
    for k in pn:
        a, b = pt[k].numpy(), np.asarray(pn[k])
        assert a.shape == b.shape and a.dtype == b.dtype, k
        if k in continuous:  # transcendental functions differ by an ulp between libraries
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=k)
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)


@pytest.mark.parametrize("dtype", ["uint8", "float16", "bfloat16", "float32", "float64"])
def test_dtypes_and_channels_last(dtype):
    pipe = r2(num_classes=K, seed=5)
    rt = pipe.compile("torch")
    x = torch.from_numpy(X_U8) if dtype == "uint8" else torch.from_numpy(X_F32).to(getattr(torch, dtype))
    xo, yo = rt(x, torch.from_numpy(Y))
    assert xo.dtype == (torch.float32 if dtype == "uint8" else x.dtype)
    assert xo.shape == x.shape and yo.shape == (6, K)
    # channels_last memory gives the same result as contiguous memory
    rt2 = pipe.compile("torch")
    xo2, yo2 = rt2(x.contiguous(memory_format=torch.channels_last), torch.from_numpy(Y))
    tol = 1e-5 if dtype in ("uint8", "float32", "float64") else 1e-2
    torch.testing.assert_close(xo2.float(), xo.float(), atol=tol, rtol=tol)
    torch.testing.assert_close(yo2, yo)


def test_bounded_uint8_output_and_exact_flips():
    pipe = aug.Pipeline([aug.HorizontalFlip(p=1.0)], seed=0)
    x = torch.from_numpy(X_U8)
    out = pipe.compile("torch")(x)
    assert out.dtype == torch.uint8 and torch.equal(out, torch.flip(x, dims=(3,)))
    # identity affine and whole-pixel shifts reproduce the pixels
    shift = aug.Pipeline([aug.Affine(translate=(0.5, 0.5), translate_y=(0.0, 0.0))], seed=0)  # 7 px on W=14
    o2 = shift.compile("torch")(x)
    assert torch.equal(o2[..., 7:], x[..., :7])
    assert (o2[..., :7] == 0).all()


def test_single_image_numpy_input_and_errors():
    pipe = r2(num_classes=K, seed=1)
    rt = pipe.compile("torch")
    xo, yo = rt(X_U8[0], 3)
    assert isinstance(xo, torch.Tensor) and xo.shape == (3, 12, 14) and yo.shape == (K,)
    with pytest.raises(aug.InputError):
        rt(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, K]))  # class id out of range
    with pytest.raises(aug.InputError):
        rt(torch.zeros(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(aug.InputTypeError):
        rt(torch.zeros(2, 3, 4, 4, dtype=torch.int32), torch.tensor([0, 1]))
    with pytest.raises(aug.SpecError):
        pipe.compile("torch", layout="HWC")
    out, _ = rt(torch.zeros(0, 3, 4, 4, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    assert out.shape == (0, 3, 4, 4)


def test_eval_runs_deterministic_ops_only():
    pipe = r2(num_classes=K, seed=1)
    rt = pipe.compile("torch")
    x = torch.from_numpy(X_U8)
    out = rt(x, training=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ops", [
    [aug.Affine(rotate=10), aug.ColorJitter(0.3, 0.3)],
    [aug.Affine(rotate=10), aug.CutOut(), aug.GaussianNoise(0.05)],
    [aug.ColorJitter(0.3), aug.MixUp(0.5), aug.Normalize()],
    [aug.HorizontalFlip(), aug.Normalize(), aug.CutMix(1.0)],
    [aug.Affine(rotate=10), aug.HorizontalFlip(), aug.Brightness(0.2), aug.VerticalFlip()],
], ids=["warp_color", "warp_cutout_noise", "color_mix_norm", "flip_norm_cutmix", "warp_color_flip"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_outputs_survive_later_calls(ops, dtype):
    rt = aug.Pipeline(ops, num_classes=K, seed=0).compile("torch")
    x = torch.from_numpy(X_U8 if dtype == "uint8" else X_F32)
    y = torch.from_numpy(Y)
    outs = [rt(x, y)[0] for _ in range(3)]
    kept = [o.clone() for o in outs]
    for _ in range(2):
        rt(x, y)
    for o, k in zip(outs, kept):
        assert torch.equal(o, k)


def test_private_buffers_never_leak_into_outputs():
    rt = r2(num_classes=K, seed=2).compile("torch")
    x = torch.from_numpy(X_U8)
    y = torch.from_numpy(Y)
    a, _ = rt(x, y)
    a_copy = a.clone()
    b, _ = rt(x, y)
    c, _ = rt(x, y)
    assert torch.equal(a, a_copy), "a later call overwrote an earlier output"
    assert a.data_ptr() != b.data_ptr() != c.data_ptr()
    rt.set_state(step=0)
    a2, _ = rt(x, y)
    torch.testing.assert_close(a2, a)


# ------------------------------------------------------------ invariants

_OP_POOL = [
    lambda: aug.Affine(rotate=20, translate=0.1, scale=0.1),
    lambda: aug.HorizontalFlip(),
    lambda: aug.VerticalFlip(),
    lambda: aug.ColorJitter(0.3, 0.3, 0.3, 0.05),
    lambda: aug.Hue(0.1, mode="hsv"),
    lambda: aug.GaussianNoise(std=0.05),
    lambda: aug.CutOut(holes=2),
    lambda: aug.OneOf([aug.MixUp(0.5), aug.CutMix(1.0)]),
    lambda: aug.MixUp(0.4),
    lambda: aug.LabelSmoothing(0.2),
]


@given(idx=st.lists(st.integers(0, len(_OP_POOL) - 1), min_size=1, max_size=5),
       n=st.integers(1, 5), h=st.integers(3, 9), w=st.integers(3, 9),
       dtype=st.sampled_from(["uint8", "float32"]), seed=st.integers(0, 2**31))
def test_invariants(idx, n, h, w, dtype, seed):
    ops = [_OP_POOL[i]() for i in idx]
    pipe = aug.Pipeline(ops, num_classes=K, seed=seed)
    rng = np.random.default_rng(seed)
    xn = rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8)
    x = torch.from_numpy(xn if dtype == "uint8" else xn.astype(np.float32) / 255)
    y = torch.from_numpy(rng.integers(0, K, (n,)))
    x0 = x.clone()
    xo, yo = pipe.compile("torch")(x, y)
    assert torch.equal(x, x0)
    assert xo.shape == x.shape and xo.dtype == x.dtype
    if dtype == "float32":
        assert float(xo.min()) >= 0.0 and float(xo.max()) <= 1.0
    if pipe.compile("numpy").plan.changes_labels:
        assert yo.shape == (n, K) and float(yo.min()) >= 0.0
        torch.testing.assert_close(yo.sum(1), torch.ones(n), atol=1e-5, rtol=0)
    xo2, yo2 = pipe.compile("torch")(x, y)  # same seed, same output
    assert torch.equal(xo, xo2) and torch.equal(yo, yo2)
    # p=0 is the identity
    zero = aug.Pipeline([aug.RandomApply(ops, p=0.0)], num_classes=K, seed=seed)
    xz = zero.compile("torch")(x)
    assert torch.equal(xz, x)


# ------------------------------------------------------------ no host sync

class _NoSync(TorchDispatchMode):
    """Fails on every op that reads a tensor's values on the host or has a
    data-dependent output shape, and on copies from a device to the CPU."""

    BANNED = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "nonzero_static", "masked_select",
              "unique", "_unique", "_unique2", "unique_consecutive", "unique_dim", "equal", "allclose",
              "tolist", "repeat_interleave", "bincount", "histc", "argwhere"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in self.BANNED:
            raise AssertionError(f"host sync: aten.{name}")
        if name in ("_to_copy", "copy_", "to"):
            src = args[0] if name != "copy_" else args[1]
            dev = kwargs.get("device") if name != "copy_" else args[0].device
            if isinstance(src, torch.Tensor) and src.device.type != "cpu" and dev is not None \
                    and torch.device(dev).type == "cpu":
                raise AssertionError(f"device-to-host copy: aten.{name}")
        return func(*args, **kwargs)


def test_no_host_sync_in_a_call():
    # compact_gates=False: the path a device takes (on an eager CPU batch a gated op reads its
    # gate on the host to run on its samples only: ``TorchBackend.compact``)
    rt = r2(num_classes=K, seed=0).compile("torch", compact_gates=False)
    x = torch.from_numpy(X_U8)
    y = torch.from_numpy(Y)
    rt(x, y)  # warm the caches
    with _NoSync():
        xo, yo = rt(x, y)
        params = rt.sample(6, (3, 12, 14))
        rt.apply(x, y, params)
        _all_draw_pipeline().compile("torch", compact_gates=False)(x, y)
        aug.Pipeline([aug.RandAugment(), aug.AugMix()], seed=0).compile("torch", compact_gates=False)(x)
    assert xo.shape == x.shape
    # the mode does catch a sync
    with pytest.raises(AssertionError, match="host sync"):
        with _NoSync():
            float(xo.sum())


# ------------------------------------------------------------ torch.compile

def test_jit_compiles_once_and_matches_eager():
    import torch._dynamo

    torch._dynamo.reset()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    pipe = r2(num_classes=K, seed=4)
    rj = pipe.compile("torch", jit={"backend": counting_backend})
    re = pipe.compile("torch")
    x = torch.from_numpy(X_U8)
    y = torch.from_numpy(Y)
    outs = [rj(x, y) for _ in range(3)]
    assert len(graphs) == 1, f"{len(graphs)} compilations for 3 calls at one shape"
    for xo, yo in outs:
        xe, ye = re(x, y)
        torch.testing.assert_close(xo, xe, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(yo, ye, atol=1e-6, rtol=1e-6)
    assert not torch.equal(outs[0][0], outs[1][0]), "the key was baked into the graph"


@pytest.mark.parametrize("jit", [False, "counting"])
def test_inference_mode_calls_then_training_calls(jit):
    """Caches filled under torch.inference_mode (a validation or TTA pass) must not
    leak inference tensors into later training calls (in-place writes, autograd)."""
    import torch._dynamo

    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    if jit:
        torch._dynamo.reset()
    pipe = r2(num_classes=K, seed=2)
    rt = pipe.compile("torch", jit={"backend": counting_backend} if jit else False)
    x, y = torch.from_numpy(X_U8), torch.from_numpy(Y)
    with torch.inference_mode():
        first = rt(x, y)
    rt.set_state(step=0)
    again = rt(x, y)  # in-place writes into the private buffers and caches
    torch.testing.assert_close(again[0], first[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(again[1], first[1], atol=1e-7, rtol=0)
    with torch.inference_mode():
        rt(x, y)
    xg = torch.from_numpy(X_F32.copy()).requires_grad_(True)
    out, _ = pipe.compile("torch")(xg, y) if jit else rt(xg, y)
    out.sum().backward()  # nothing saved for backward is an inference tensor
    assert xg.grad is not None
    if jit:
        assert len(graphs) >= 1


def test_device_option_grad_inputs_and_cudagraph_needs_cuda():
    pipe = r2(num_classes=K, seed=6)
    rt = pipe.compile("torch", device="cpu")
    xo, yo = rt(X_U8, Y)  # NumPy in, torch out on the device
    assert isinstance(xo, torch.Tensor) and xo.device.type == "cpu"
    # inputs that require grad take the generic (autograd-friendly) path, same values
    x = torch.from_numpy(X_F32.copy()).requires_grad_(True)
    ref = pipe.compile("torch")(x.detach(), torch.from_numpy(Y))[0]
    out = pipe.compile("torch")(x, torch.from_numpy(Y))[0]
    torch.testing.assert_close(out.detach(), ref, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    with pytest.raises(aug.InputError, match="cudagraph"):
        pipe.compile("torch", jit="cudagraph")(torch.from_numpy(X_U8), torch.from_numpy(Y))
    with pytest.raises(aug.SpecError):
        pipe.compile("torch", jit=3)


# ------------------------------------------------------ colour map, constants

@pytest.mark.parametrize("c", [1, 3, 4])
def test_unrolled_color_affine_equals_the_matmul(c):
    """The GPU / compiled colour map (C broadcast multiply-adds) equals the batched matmul
    of the CPU eager path, in both layouts, into a buffer, with autograd and traced."""
    import torch._dynamo

    from augspec.backends.torch import _color_affine_unrolled

    g = torch.Generator().manual_seed(c)
    x = torch.rand(3, c, 5, 6, generator=g)
    a, t = torch.randn(3, c, c, generator=g), torch.randn(3, c, generator=g)
    ref = TorchBackend("NCHW").color_affine(x, a, t)
    np.testing.assert_allclose(ref.numpy(), NumpyBackend("NCHW").color_affine(x.numpy(), a.numpy(), t.numpy()),
                               atol=1e-5)
    buf = torch.empty_like(x)
    assert _color_affine_unrolled(x, a, t, False, buf) is buf
    torch.testing.assert_close(buf, ref)
    xh = x.permute(0, 2, 3, 1).contiguous()
    torch.testing.assert_close(_color_affine_unrolled(xh, a, t, True), ref.permute(0, 2, 3, 1))
    xg = x.clone().requires_grad_(True)
    out = _color_affine_unrolled(xg, a, t, False)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), ref)
    torch.testing.assert_close(xg.grad, a.sum(dim=1)[:, :, None, None].expand_as(x))  # d/dx_j = sum_c a_cj
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    f = torch.compile(lambda x, a, t: TorchBackend("NCHW").color_affine(x, a, t), backend=counting_backend,
                      fullgraph=True)
    torch.testing.assert_close(f(x, a, t), ref)
    assert len(graphs) == 1
    assert not any(n.target in (torch.baddbmm, torch.bmm) for n in graphs[0].graph.nodes)


def test_constant_cache_is_bounded_and_lives_with_its_arrays():
    """``asarray``'s cache: small arrays by value (a rebuilt one hits), at most
    _CONST_ENTRIES entries, and a big array's entry dies with the array, so a kernel
    that builds a fresh array per call keeps nothing (meta device: no copies made)."""
    import gc

    from augspec.backends.torch import _CONST_ENTRIES

    B = TorchBackend()
    B.current = torch.device("meta")
    small = B.asarray(np.array([1.0, 2.0], np.float32), "float32")
    assert B.asarray(np.array([1.0, 2.0], np.float32), "float32") is small
    for i in range(_CONST_ENTRIES + 50):
        B.asarray(np.full(3, i, np.float32), "float32")
    assert len(B._consts) == _CONST_ENTRIES
    B._consts.clear()
    keep = np.zeros(10_000, np.float32)
    t = B.asarray(keep, "float32")
    assert B.asarray(keep, "float32") is t
    for i in range(300):
        B.asarray(np.full(10_000, i, np.float32), "float32")
    gc.collect()
    assert len(B._consts) == 1
    del keep
    gc.collect()
    assert len(B._consts) == 0
    # on the CPU a big array is not cached at all (its tensor may share its memory)
    Bc = TorchBackend()
    a = np.arange(10_000, dtype=np.float32)
    assert np.shares_memory(Bc.asarray(a, "float32").numpy(), a) and len(Bc._consts) == 0
