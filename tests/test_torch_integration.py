"""augspec.torch: Augment (nn.Module), Collate / collate_fn, worker_init_fn, Dropout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset  # noqa: E402

import augspec as aug  # noqa: E402
from augspec.recipes import r2  # noqa: E402
from augspec.torch import Augment, Collate, Dropout, batch_ops, collate_fn, worker_init_fn  # noqa: E402

K = 10


def _batch(n=4, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g), torch.randint(0, K, (n,), generator=g)


def test_augment_train_and_eval():
    pipe = r2(num_classes=K, seed=0)
    m = Augment(pipe)
    x, y = _batch()
    xo, yo = m(x, y)
    assert xo.dtype == torch.float32 and yo.shape == (4, K)
    ref = pipe.compile("torch")(x, y)
    torch.testing.assert_close(xo, ref[0])
    m.eval()
    xe, ye = m(x, y)
    assert ye is y  # labels pass through
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(xe, (x.float() / 255 - mean) / std, atol=1e-5, rtol=1e-5)
    assert torch.equal(m(x), xe)


def test_augment_checkpoint_resumes_the_stream():
    pipe = r2(num_classes=K, seed=3)
    m = Augment(pipe)
    x, y = _batch()
    m(x, y)
    state = m.state_dict()
    nxt = m(x, y)
    m2 = Augment(r2(num_classes=K, seed=99))
    m2.load_state_dict(state)
    again = m2(x, y)
    torch.testing.assert_close(again[0], nxt[0])
    torch.testing.assert_close(again[1], nxt[1])


def test_batch_ops_and_collate():
    pipe = r2(num_classes=K, seed=0)
    bp = batch_ops(pipe)
    assert [type(o).__name__ for o in bp.ops] == ["OneOf", "LabelSmoothing"]
    samples = [(torch.rand(3, 8, 8), int(i % K)) for i in range(6)]
    c = collate_fn(pipe)
    xo, yo = c(samples)
    assert xo.shape == (6, 3, 8, 8) and yo.shape == (6, K)
    torch.testing.assert_close(yo.sum(1), torch.ones(6))
    assert float(yo.min()) >= 0.1 / K - 1e-7  # smoothing floor
    # only batch ops: every output pixel is a convex mix of two inputs' pixels (range kept, no warp)
    xs = torch.stack([s[0] for s in samples])
    assert float(xo.min()) >= float(xs.min()) - 1e-6 and float(xo.max()) <= float(xs.max()) + 1e-6
    # extra fields pass through; pickling keeps the state
    c3 = Collate(pipe)
    out = c3([(s[0], s[1], i) for i, s in enumerate(samples)])
    assert torch.equal(out[2], torch.arange(6))
    c4 = pickle.loads(pickle.dumps(c3))
    torch.testing.assert_close(c4(samples)[0], c3(samples)[0])
    with pytest.raises(aug.InputError):
        Collate(pipe)([torch.rand(3, 8, 8) for _ in range(2)])


class _DS(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, 8, 8, generator=g), i % K


def _epoch(workers, seed):
    pipe = aug.Pipeline([aug.MixUp(0.8)], num_classes=K, seed=seed)
    dl = DataLoader(_DS(), batch_size=4, num_workers=workers, collate_fn=Collate(pipe),
                    worker_init_fn=worker_init_fn if workers else None)
    return [b for b in dl]


def test_worker_init_fn_gives_workers_distinct_reproducible_keys():
    a = _epoch(2, seed=5)
    b = _epoch(2, seed=5)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # batches 0 and 1 come from workers 0 and 1 at the same step: different draws
    lam0 = a[0][1].max(1).values
    lam1 = a[1][1].max(1).values
    assert not torch.allclose(lam0, lam1)
    # the main process (worker 0 key) differs from DataLoader worker 0 (worker 1 key)
    m = _epoch(0, seed=5)
    assert not torch.equal(m[0][1], a[0][1])


def test_worker_init_fn_sets_state_on_tracked_runs():
    run = aug.Pipeline([aug.MixUp(0.8)], num_classes=K, seed=1).compile("torch")
    from augspec.torch import track

    track(run)
    worker_init_fn(3)
    assert run.worker == 4


def test_dropout_module_noise_shape_and_modes():
    d = Dropout(aug.Dropout(rate=0.5, noise_shape=(None, None, 1, 1)), seed=0)
    x = torch.ones(8, 16, 5, 5, requires_grad=True)
    out = d(x)
    vals = out.detach()
    # whole channels dropped or kept, scaled by 1 / (1 - rate)
    assert torch.all((vals == 0) | (vals == 2))
    assert torch.equal(vals, vals[:, :, :1, :1].expand_as(vals))
    frac = float((vals[:, :, 0, 0] == 0).float().mean())
    assert 0.25 < frac < 0.75
    out.sum().backward()
    torch.testing.assert_close(x.grad, vals)
    # a new step draws a new mask; the same seed and step the same one
    assert not torch.equal(d(x).detach(), vals)
    d2 = Dropout(aug.Dropout(rate=0.5, noise_shape=(None, None, 1, 1)), seed=0)
    assert torch.equal(d2(x).detach(), vals)
    d.eval()
    assert d(x) is x


def test_dropout_module_shared_batch_mask_rate_and_errors():
    d = Dropout(0.25, noise_shape=(1, None), seed=1)
    x = torch.ones(64, 1000)
    out = d(x)
    assert torch.equal(out, out[:1].expand_as(out))  # one mask for the batch
    keep = float((out[0] != 0).float().mean())
    assert abs(keep - 0.75) < 0.06
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / 0.75))
    with pytest.raises(aug.InputError):
        Dropout(0.5, noise_shape=(None, 3))(torch.ones(2, 5))
    with pytest.raises(aug.InputError):
        Dropout(0.5, noise_shape=(None,))(torch.ones(2, 5))
    with pytest.raises(aug.SpecError):
        Dropout(1.0)


def test_dropout_module_gate_p():
    d = Dropout(aug.Dropout(rate=0.9, p=0.5), seed=2)
    x = torch.ones(200, 50)
    out = d(x)
    untouched = (out == 1).all(1)
    assert 0.3 < float(untouched.float().mean()) < 0.7
    np.testing.assert_array_equal(out[~untouched].numpy() != 0, out[~untouched].numpy() == 10)


class _BigDS(Dataset):
    """Images big enough (a batch of 16 is 3 MB of float32) for the CPU output recycling."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, 128, 128, generator=g), i % K


def test_worker_batches_through_shared_memory_are_exact():
    """A worker's outputs go to the main process through shared memory while the worker
    runs on: none may be written again (recycled) after it was sent."""
    pipe = aug.Pipeline([aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)], num_classes=K, seed=3)
    dl = DataLoader(_BigDS(), batch_size=16, num_workers=1, collate_fn=Collate(pipe), worker_init_fn=worker_init_fn,
                    prefetch_factor=4)
    got = [(x.clone(), y.clone()) for x, y in dl]
    ref = Collate(pipe)
    ref.run.worker = 1  # what worker_init_fn(0) sets in DataLoader worker 0
    ds = _BigDS()
    for b, (x, y) in enumerate(got):
        ex, ey = ref([ds[i] for i in range(16 * b, 16 * b + 16)])
        assert torch.equal(x, ex) and torch.equal(y, ey), f"batch {b}"


class _PlainDS(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, 8, 8, generator=g), i % K


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_persistent_workers_follow_set_epoch(context):
    """``collate.set_epoch(e)`` in the main process reaches persistent workers (through the
    run's shared epoch cell, also when the worker was spawned and rebuilt its run): each
    epoch's batches are the ones a fresh worker would make, at (epoch e, step b, worker 1)."""
    pipe = aug.Pipeline([aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)])], num_classes=K, seed=11)
    coll = Collate(pipe)
    dl = DataLoader(_PlainDS(), batch_size=4, num_workers=1, persistent_workers=True, collate_fn=coll,
                    worker_init_fn=worker_init_fn, multiprocessing_context=context)
    got = []
    for e in (0, 3, 4):
        coll.set_epoch(e)
        got.append([(x.clone(), y.clone()) for x, y in dl])
    ref, ds = Collate(pipe), _PlainDS()
    for e, batches in zip((0, 3, 4), got):
        for b, (x, y) in enumerate(batches):
            ref.run.set_state(epoch=e, step=b, worker=1)
            ex, ey = ref([ds[i] for i in range(4 * b, 4 * b + 4)])
            assert torch.equal(x, ex) and torch.equal(y, ey), (e, b)
