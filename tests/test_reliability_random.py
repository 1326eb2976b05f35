"""Randomness that scales out and never repeats (issue 7, part 1).

- Every (seed, epoch, step, rank, worker) has its own key, and the draws of
  different keys do not repeat.
- Resuming from a checkpoint at (epoch, step) with ``run.set_state`` reproduces
  exactly the draws (and outputs) an uninterrupted run would have made, on every
  available backend; ``run.state`` is the checkpoint.
- torch ``DataLoader`` workers (persistent or not, over epochs) and ``tf.data``
  parallel maps are covered below where those integrations are available; the
  ``torch.distributed`` and ``tf.distribute`` parts live in ``test_distributed.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import augspec as aug
from augspec.core.random import derive_key
from augspec.recipes import r2

K = 10
EPOCHS, STEPS = 3, 4


def _available(name: str) -> bool:
    return any(b.name == name and b.available for b in aug.list_backends())


# ------------------------------------------------------------------------ keys


def test_keys_never_repeat_over_a_large_grid():
    """3 epochs x 200 steps x 8 ranks x 8 workers x 2 seeds: 76,800 distinct keys."""
    keys = {derive_key(seed, e, s, r, w) for seed in (0, 1) for e in range(3) for s in range(200)
            for r in range(8) for w in range(8)}
    assert len(keys) == 2 * 3 * 200 * 8 * 8


def test_draws_never_repeat_across_epoch_step_rank_worker():
    """The R2 draws of every (epoch, step, rank, worker) cell differ from every other cell's."""
    run = r2(num_classes=K).compile("numpy")
    seen: dict[bytes, tuple] = {}
    for e in range(2):
        for r in range(2):
            for w in range(4):
                run.set_state(epoch=e, step=0, rank=r, worker=w)
                for s in range(6):
                    p = run.sample(8, (16, 16, 3))
                    sig = np.concatenate([p["0/rotate"], p["3/size"].ravel(), p["5/choice"].astype(np.float32)])
                    cell = (e, s, r, w)
                    assert sig.tobytes() not in seen, f"{cell} repeats {seen.get(sig.tobytes())}"
                    seen[sig.tobytes()] = cell
                    assert len(np.unique(p["0/rotate"])) == 8  # and within a batch
    assert len(seen) == 2 * 2 * 4 * 6


def test_same_seed_same_run_other_seed_other_run():
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    y = np.arange(4) % K

    def whole_run(seed):
        run = r2(num_classes=K, seed=seed).compile("numpy")
        outs = []
        for e in range(2):
            run.set_epoch(e)
            outs += [run(x, y)[0] for _ in range(3)]
        return outs

    a, b, c = whole_run(5), whole_run(5), whole_run(6)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert all(not np.array_equal(u, v) for u, v in zip(a, c))
    assert not any(np.array_equal(a[i], a[j]) for i in range(len(a)) for j in range(i))


# ---------------------------------------------------------------------- resume


def _batch(backend: str, n: int = 4, size: int = 16):
    rng = np.random.default_rng(1)
    nhwc = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = (np.arange(n) % K).astype(np.int64)
    if backend == "torch":
        import torch

        return torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(nhwc), tf.constant(y)
    return nhwc, y


def _np(v):
    return v.numpy() if hasattr(v, "numpy") else np.asarray(v)


@functools.cache
def _compiled(backend: str, seed):
    return r2(num_classes=K, seed=seed).compile(backend)


def _call(run, backend, x, y):
    if backend == "albumentations":
        xo, yo = run(x, y)  # the per-sample part, image by image; MixUp & co on the batch:
        return run.batch(xo, yo)
    return run(x, y)


def _backend_param(b: str):
    return pytest.param(b, marks=[pytest.mark.skipif(not _available(b), reason=f"{b} not available")])


BACKENDS = [_backend_param(b) for b in ("numpy", "torch", "tensorflow", "albumentations")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_reproduces_the_uninterrupted_run(backend):
    """Train 3 epochs of 4 steps; crash at (epoch 1, step 2); a new process restores
    ``run.state`` with ``set_state`` and continues: every later batch is identical."""
    x, y = _batch(backend)
    run = _compiled(backend, 11)

    run.set_epoch(0)
    reference = {}
    for e in range(EPOCHS):
        run.set_epoch(e)
        for s in range(STEPS):
            reference[(e, s)] = [_np(v) for v in _call(run, backend, x, y)]

    # the interrupted run, up to the checkpoint
    run.set_epoch(0)
    for e in range(EPOCHS):
        run.set_epoch(e)
        for s in range(STEPS):
            if (e, s) == (1, 2):
                break
            _call(run, backend, x, y)
        else:
            continue
        break
    checkpoint = dict(run.state)
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 2)

    # training went on past the checkpoint (and the run was moved around) before the crash
    for _ in range(3):
        _call(run, backend, x, y)
    run.set_state(epoch=0, step=123, rank=0, worker=0)
    _call(run, backend, x, y)
    # restore the checkpoint
    run.set_state(epoch=checkpoint["epoch"], step=checkpoint["step"])
    assert run.state == checkpoint
    resumed = {}
    for e in range(checkpoint["epoch"], EPOCHS):
        if e != checkpoint["epoch"]:
            run.set_epoch(e)
        for s in range(checkpoint["step"] if e == checkpoint["epoch"] else 0, STEPS):
            resumed[(e, s)] = [_np(v) for v in _call(run, backend, x, y)]
    assert sorted(resumed) == [k for k in sorted(reference) if k >= (1, 2)]
    for k, outs in resumed.items():
        for a, b in zip(outs, reference[k]):
            np.testing.assert_array_equal(a, b, err_msg=f"{backend}: (epoch, step) = {k}")
    # and the draws of distinct steps really differ
    assert not np.array_equal(reference[(1, 2)][0], reference[(1, 3)][0])
    assert not np.array_equal(reference[(1, 2)][0], reference[(2, 2)][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_in_a_fresh_run(backend):
    """A run compiled afresh (same seed) and moved to (epoch, step) draws what the
    original drew there: the state is all there is."""
    x, y = _batch(backend)
    a = r2(num_classes=K, seed=3).compile(backend)
    a.set_epoch(2)
    for _ in range(3):
        _call(a, backend, x, y)
    state = dict(a.state)
    want = [_np(v) for v in _call(a, backend, x, y)]
    b = r2(num_classes=K, seed=3).compile(backend)
    b.set_state(epoch=state["epoch"], step=state["step"])
    got = [_np(v) for v in _call(b, backend, x, y)]
    for u, v in zip(got, want):
        np.testing.assert_array_equal(u, v)


def test_resume_with_a_fresh_entropy_seed():
    """seed=None draws fresh entropy at compile: the checkpoint must carry ``state['seed']``."""
    x, y = _batch("numpy")
    a = r2(num_classes=K, seed=None).compile("numpy")
    a.set_state(epoch=1, step=5)
    state = dict(a.state)
    want = a(x, y)[0]
    b = r2(num_classes=K, seed=None).compile("numpy")
    assert b.seed != state["seed"]
    b.seed = state["seed"]
    b.set_state(epoch=state["epoch"], step=state["step"])
    np.testing.assert_array_equal(b(x, y)[0], want)


def test_sample_then_apply_advances_like_a_call():
    """``sample`` + ``apply`` is one step, exactly like ``run(x, y)``: mixing them keeps the stream."""
    x, y = _batch("numpy")
    a, b = r2(num_classes=K, seed=9).compile("numpy"), r2(num_classes=K, seed=9).compile("numpy")
    for i in range(4):
        ua = a(x, y)[0]
        ub = b.apply(x, y, b.sample(4, x.shape[1:]))[0] if i % 2 else b(x, y)[0]
        np.testing.assert_array_equal(ua, ub)
    assert a.state == b.state


def test_rank_and_worker_from_compile_options():
    a = r2(num_classes=K, seed=1).compile("numpy", rank=3, worker=2, epoch=4)
    assert a.state == {"seed": 1, "epoch": 4, "step": 0, "rank": 3, "worker": 2}
    assert a.key() == derive_key(1, 4, 0, 3, 2)


# ------------------------------------------------------------ torch DataLoader

LOADER_N, LOADER_BATCH, LOADER_EPOCHS, LOADER_WORKERS = 24, 4, 3, 4


def _torch_loader_parts(seed: int):
    torch = pytest.importorskip("torch")
    tmod = pytest.importorskip("augspec.torch")
    from torch.utils.data import Dataset, get_worker_info

    base = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 12, 12), dtype=np.uint8))

    class SameImage(Dataset):
        """Every index holds the SAME image, so two equal draws would give two equal outputs."""

        def __init__(self):
            self.run = aug.Pipeline([aug.Affine(rotate=30, translate=0.1), aug.HorizontalFlip(),
                                     aug.ColorJitter(0.3, 0.3, 0.3, 0.05), aug.CutOut(size=(0.2, 0.4))],
                                    seed=seed).compile("torch")

        def __len__(self):
            return LOADER_N

        def __getitem__(self, i):
            st = self.run.state
            x = self.run(base)
            info = get_worker_info()
            meta = torch.tensor([st["epoch"], st["step"], st["rank"], st["worker"],
                                 -1 if info is None else info.id, i])
            return x, i % K, meta

    mix = aug.Pipeline([aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)],
                       num_classes=K, seed=seed)
    return torch, tmod, base, SameImage, mix


def _run_loader(seed: int, num_workers: int, persistent: bool):
    torch, tmod, base, SameImage, mix = _torch_loader_parts(seed)
    from torch.utils.data import DataLoader

    ds = SameImage()
    coll = tmod.Collate(mix)
    loader = DataLoader(ds, batch_size=LOADER_BATCH, shuffle=True, num_workers=num_workers,
                        persistent_workers=persistent and num_workers > 0, worker_init_fn=tmod.worker_init_fn,
                        collate_fn=coll, generator=torch.Generator().manual_seed(seed),
                        multiprocessing_context="fork" if num_workers else None)
    batches = []
    for e in range(LOADER_EPOCHS):
        ds.run.set_epoch(e)  # what a training loop does; reaches non-persistent workers
        coll.set_epoch(e)
        for xb, yb, meta in loader:
            batches.append((e, xb.clone(), yb.clone(), meta.clone()))
    return batches


def _assert_never_repeats(batches, expect_workers):
    metas = np.concatenate([m.numpy() for _, _, _, m in batches])
    assert len(metas) == LOADER_N * LOADER_EPOCHS
    keys = {tuple(r) for r in metas[:, :4]}  # (epoch, step, rank, worker) of each draw
    assert len(keys) == len(metas), "two samples drew from the same key"
    assert set(metas[:, 3]) == expect_workers
    imgs = np.concatenate([x.numpy() for _, x, _, _ in batches])
    flat = {im.tobytes() for im in imgs}
    assert len(flat) == len(imgs), "two augmented samples are identical"
    # every epoch saw every index once
    for e in range(LOADER_EPOCHS):
        idx = np.concatenate([m.numpy()[:, 5] for ee, _, _, m in batches if ee == e])
        assert sorted(idx) == list(range(LOADER_N))


def _assert_same(a, b):
    assert len(a) == len(b)
    for (ea, xa, ya, ma), (eb, xb, yb, mb) in zip(a, b):
        assert ea == eb
        np.testing.assert_array_equal(ma.numpy(), mb.numpy())
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def _replay(batches, seed: int, worker_of_batch, threads: int | None = None):
    """Rebuild every batch from fresh runs and the documented stream: the j-th sample a
    worker processes in epoch e draws at (epoch e, step j, worker); the collate run of that
    worker draws its b-th batch at (epoch e, step b, worker)."""
    torch, tmod, base, SameImage, mix = _torch_loader_parts(seed)
    before = torch.get_num_threads()
    # as where the batches were made (DataLoader workers use 1): float reductions depend on it
    torch.set_num_threads(threads or before)
    try:
        _replay_batches(torch, tmod, base, SameImage, mix, batches, worker_of_batch)
    finally:
        torch.set_num_threads(before)


def _replay_batches(torch, tmod, base, SameImage, mix, batches, worker_of_batch):
    ds, coll = SameImage(), tmod.Collate(mix)
    count: dict = {}
    for e, xb, yb, meta in batches:
        w = worker_of_batch(meta)
        sk, bk = count.get((e, w, "s"), 0), count.get((e, w, "b"), 0)
        ds.run.set_state(epoch=e, step=sk, worker=w)
        xs = torch.stack([ds.run(base) for _ in range(len(meta))])
        coll.run.set_state(epoch=e, step=bk, worker=w)
        xo, yo = coll.run(xs, torch.as_tensor(meta[:, 5] % K))
        count[(e, w, "s")], count[(e, w, "b")] = sk + len(meta), bk + 1
        np.testing.assert_array_equal(xo.numpy(), xb.numpy())
        np.testing.assert_array_equal(yo.numpy(), yb.numpy())


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.skipif(not _available("torch"), reason="torch not available")
def test_dataloader_without_workers_gives_the_documented_stream():
    a = _run_loader(7, 0, False)
    _assert_never_repeats(a, {0})
    metas = np.concatenate([m.numpy() for _, _, _, m in a])
    assert (metas[:, 4] == -1).all()  # the main process
    for e in range(LOADER_EPOCHS):  # step = position of the sample in the epoch
        steps = np.concatenate([m.numpy()[:, 1] for ee, _, _, m in a if ee == e])
        assert list(steps) == list(range(LOADER_N))
    _replay(a, 7, lambda meta: 0)
    _assert_same(a, _run_loader(7, 0, False))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.skipif(not _available("torch"), reason="torch not available")
@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-workers", "persistent-workers"])
def test_dataloader_workers_never_repeat_and_reproduce(persistent):
    a = _run_loader(7, LOADER_WORKERS, persistent)
    _assert_never_repeats(a, set(range(1, LOADER_WORKERS + 1)))
    metas = np.concatenate([m.numpy() for _, _, _, m in a])
    assert (metas[:, 3] == metas[:, 4] + 1).all()  # worker_init_fn: worker = id + 1
    _assert_same(a, _run_loader(7, LOADER_WORKERS, persistent))  # the whole run, again
    other = _run_loader(8, LOADER_WORKERS, persistent)
    assert not np.array_equal(a[0][1].numpy(), other[0][1].numpy())
    # workers start each epoch at the main process' epoch, step 0 (persistent ones through the
    # shared epoch cell): the documented stream
    _replay(a, 7, lambda meta: int(meta[0, 3]), threads=1)
    # (workers see epoch e, never each other's keys, and the main process' key is never used)
    assert set(metas[:, 0]) == set(range(LOADER_EPOCHS))


# ---------------------------------------------------------------------- tf.data


@pytest.mark.skipif(not _available("tensorflow"), reason="tensorflow not available")
def test_tf_data_parallel_map_is_reproducible():
    """``Dataset.map(num_parallel_calls=4, deterministic=True)`` with the step taken from
    ``enumerate()``: the same batches on every pass, in a fresh run too, equal to the
    eager stream (step = batch index), and never a repeated draw."""
    tf = pytest.importorskip("tensorflow")
    pipe = aug.Pipeline([aug.Affine(rotate=30, translate=0.1), aug.HorizontalFlip(),
                         aug.ColorJitter(0.3, 0.3, 0.3, 0.05), aug.CutOut(size=(0.2, 0.4)),
                         aug.OneOf([aug.MixUp(0.8), aug.CutMix(1.0)]), aug.LabelSmoothing(0.1)],
                        num_classes=K, seed=13)
    one = np.random.default_rng(0).integers(0, 256, (1, 12, 12, 3), dtype=np.uint8)
    x = np.repeat(one, 32, axis=0)  # the same image everywhere: equal draws would show
    y = (np.arange(32) % K).astype(np.int64)

    def dataset(run):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True).enumerate()
        # do_not_convert: augspec has no tensor-dependent Python control flow, and autograph's
        # conversion of it costs ~15 s of tracing on a small CPU
        fn = tf.autograph.experimental.do_not_convert(lambda i, b: run(b[0], b[1], step=i))
        return ds.map(fn, num_parallel_calls=4, deterministic=True)

    def batches(ds):
        return [(a.numpy(), b.numpy()) for a, b in ds]

    run = pipe.compile("tensorflow", kernels="graph")
    ds = dataset(run)  # traced once; the epoch is a variable the traced function reads
    a, b = batches(ds), batches(ds)
    fresh = batches(dataset(pipe.compile("tensorflow", kernels="graph")))
    for (xa, ya), (xb, yb), (xf, _) in zip(a, b, fresh):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xf)
    run.set_epoch(1)
    other_epoch = batches(ds)
    run.set_epoch(0)
    imgs = [im.tobytes() for xa, _ in a + other_epoch for im in xa]
    assert len(set(imgs)) == len(imgs), "a draw repeated across batches or epochs"
    # the documented stream: batch i draws at (epoch 0, step i), the same draws as any
    # backend's at that key (NumPy here; uint8 results agree within one level)
    ref = pipe.compile("numpy")
    for i in (0, 5):
        ref.set_state(epoch=0, step=i)
        xr, yr = ref(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])
        assert np.abs(xr.astype(int) - a[i][0].astype(int)).max() <= 1
        np.testing.assert_allclose(yr, a[i][1], atol=1e-5)


def test_a_pickled_or_copied_run_keeps_its_own_epoch():
    import copy
    import pickle

    run = aug.Pipeline([aug.Brightness(0.3)], seed=1).compile("numpy")
    run.set_epoch(2)
    for other in (pickle.loads(pickle.dumps(run)), copy.deepcopy(run)):
        assert other.state == run.state
        run.set_epoch(5)
        assert other.state["epoch"] == 2  # not the original's cell
        other.set_epoch(7)
        assert run.state["epoch"] == 5
        run.set_epoch(2)


def test_a_forked_copy_follows_the_epoch_but_its_own_set_epoch_stays_local():
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork here")
    run = aug.Pipeline([aug.Brightness(0.3)], seed=1).compile("numpy")
    ctx = mp.get_context("fork")
    go, back = ctx.Queue(), ctx.Queue()

    def child():
        for _ in range(3):
            msg = go.get()
            if msg == "local":
                run.set_epoch(9)  # the child's own: not written to the shared cell
            run.sample(1)
            back.put((run.state["epoch"], run.state["step"]))

    p = ctx.Process(target=child)
    p.start()
    go.put("draw")          # epoch 0, one draw
    seen = [back.get(timeout=60)]
    run.set_epoch(4)        # the parent moves on: the child takes it at its next draw, step restarting
    go.put("draw")
    seen.append(back.get(timeout=60))
    go.put("local")         # a child's own set_epoch stays its own
    seen.append(back.get(timeout=60))
    p.join(60)
    assert seen == [(0, 1), (4, 1), (9, 1)]
    assert run.state["epoch"] == 4
