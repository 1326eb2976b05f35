"""Distributed ranks and replicas draw their own, reproducible streams (issue 7, part 1).

- ``torch.distributed``: two processes on the gloo backend on the CPU, spawned by
  the test with ``torch.multiprocessing``; each rank draws a different stream,
  each reproducible (the parent recomputes it from the key alone), and
  ``augspec.distributed.default_rank()`` reads the rank of the process group.
- ``tf.distribute``: a ``MirroredStrategy`` over two logical CPUs (in a fresh
  interpreter, since logical devices must be set before TensorFlow starts);
  ``augspec.distributed.tf_replica_rank()`` gives each replica its own key.

Where the backends do not fold the rank / replica id in automatically yet, the
tests that require it are strict xfails (they turn into failures, to be
unmarked, the day the backends do).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import augspec as aug
from augspec.distributed import default_rank
from augspec.recipes import r2

K = 10
WORLD = 2
STEPS = 3


def _available(name: str) -> bool:
    return any(b.name == name and b.available for b in aug.list_backends())


def _batch(n=4, size=12):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), (np.arange(n) % K).astype(np.int64)


# -------------------------------------------------------------- default_rank


def test_default_rank_without_a_process_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert default_rank() == 0
    monkeypatch.setenv("RANK", "3")
    assert default_rank() == 3
    for bad in ("", "x", "-1"):
        monkeypatch.setenv("RANK", bad)
        assert default_rank() == 0


def test_default_rank_imports_no_framework():
    code = ("import sys, augspec.distributed as d; r = d.default_rank(); "
            "print(r, 'torch' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "RANK"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "False", "False"]


# ---------------------------------------------------------- torch.distributed


def _torch_rank_worker(rank: int, world: int, init_file: str, out_dir: str, seed: int) -> None:
    """One rank: init gloo, compile R2, draw STEPS batches (auto rank and explicit rank)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.pop("RANK", None)  # the process group, not the environment, must give the rank
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from augspec.distributed import default_rank as dr

        x, y = _batch()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        auto = r2(num_classes=K, seed=seed).compile("torch")  # no rank given
        explicit = r2(num_classes=K, seed=seed).compile("torch", rank=dr())
        res = {"default_rank": dr(), "auto_rank": auto.rank, "explicit_rank": explicit.rank}
        for name, run in (("auto", auto), ("explicit", explicit)):
            for s in range(STEPS):
                xo, yo = run(xt, yt)
                np.save(os.path.join(out_dir, f"{name}_r{rank}_s{s}_x.npy"), xo.numpy())
                np.save(os.path.join(out_dir, f"{name}_r{rank}_s{s}_y.npy"), yo.numpy())
        # the NumPy backend finds the rank at the draw too (one rule for every backend)
        np_auto = r2(num_classes=K, seed=seed).compile("numpy", layout="NCHW")
        xo, _ = np_auto(x, y)
        np.save(os.path.join(out_dir, f"numpy_r{rank}_x.npy"), xo)
        res["numpy_rank"] = np_auto.rank
        # the ranks really are different processes that agree on nothing but the seed
        t = torch.tensor([float(rank)])
        dist.all_reduce(t)
        res["sum_of_ranks"] = float(t)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def gloo_run(tmp_path_factory):
    if not _available("torch"):
        pytest.skip("torch not available")
    torch = pytest.importorskip("torch")
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    d = tmp_path_factory.mktemp("gloo")
    init_file = str(d / "init")
    mp.spawn(_torch_rank_worker, args=(WORLD, init_file, str(d), 21), nprocs=WORLD, join=True)
    info = {r: json.loads((d / f"rank{r}.json").read_text()) for r in range(WORLD)}
    return torch, d, info


def _load(d: pathlib.Path, name: str, rank: int, step: int):
    return np.load(d / f"{name}_r{rank}_s{step}_x.npy"), np.load(d / f"{name}_r{rank}_s{step}_y.npy")


def test_gloo_ranks_see_their_rank(gloo_run):
    _, _, info = gloo_run
    for r in range(WORLD):
        assert info[r]["default_rank"] == r
        assert info[r]["explicit_rank"] == r
        assert info[r]["sum_of_ranks"] == sum(range(WORLD))


def test_gloo_each_rank_draws_its_own_reproducible_stream(gloo_run):
    torch, d, _ = gloo_run
    x, y = _batch()
    outs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the ranks: float reductions depend on the thread count
    try:
        for r in range(WORLD):
            # reproducible: the parent recomputes rank r's stream from the key (seed, 0, step, r, 0)
            ref = r2(num_classes=K, seed=21).compile("torch", rank=r)
            for s in range(STEPS):
                got = _load(d, "explicit", r, s)
                want = ref(torch.from_numpy(x), torch.from_numpy(y))
                np.testing.assert_array_equal(got[0], want[0].numpy())
                np.testing.assert_array_equal(got[1], want[1].numpy())
                outs[(r, s)] = got[0]
    finally:
        torch.set_num_threads(threads)
    keys = list(outs)
    for i, a in enumerate(keys):  # every (rank, step) batch differs from every other
        for b in keys[:i]:
            assert not np.array_equal(outs[a], outs[b]), (a, b)


def test_gloo_rank_is_folded_in_automatically(gloo_run):
    _, d, info = gloo_run
    assert [info[r]["auto_rank"] for r in range(WORLD)] == list(range(WORLD))
    a0, a1 = _load(d, "auto", 0, 0), _load(d, "auto", 1, 0)
    assert not np.array_equal(a0[0], a1[0])
    assert [info[r]["numpy_rank"] for r in range(WORLD)] == list(range(WORLD))
    assert not np.array_equal(np.load(d / "numpy_r0_x.npy"), np.load(d / "numpy_r1_x.npy"))


# ------------------------------------------------------------- tf.distribute


TF_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import augspec as aug
    from augspec.backends.tensorflow import derive_key_tf
    from augspec.distributed import tf_replica_rank

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    pipe = aug.Pipeline([aug.Affine(rotate=30), aug.HorizontalFlip(), aug.MixUp(0.8)], num_classes=4, seed=5)
    with strategy.scope():
        run = pipe.compile("tensorflow", kernels="graph")
    x = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    y = tf.constant(np.arange(4) % 4)

    @tf.function
    def replica_fn(x, y):
        ctx = tf.distribute.get_replica_context()
        rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
        folded = tf_replica_rank(0)
        k = derive_key_tf(5, tf.constant(0, tf.int64), tf.constant(0, tf.int64), folded, tf.constant(0, tf.int64))
        xo, yo = run(x, y, step=tf.constant(0, tf.int64))
        return rid, folded, tf.stack(k), xo

    res = strategy.run(replica_fn, args=(x, y))
    out = {}
    for name, v in zip(("rid", "folded", "key", "images"), res):
        vals = strategy.experimental_local_results(v)
        out[name] = [np.asarray(t).tolist() for t in vals]
    out["outside"] = int(tf_replica_rank(3))
    print("TFDIST " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def tf_mirrored():
    if not _available("tensorflow"):
        pytest.skip("tensorflow not available")
    pytest.importorskip("tensorflow")
    out = subprocess.run([sys.executable, "-c", TF_SCRIPT], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert out.returncode == 0, out.stderr[-4000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("TFDIST ")][-1]
    return json.loads(line[7:])


def test_tf_replica_rank_gives_each_replica_its_key(tf_mirrored):
    res = tf_mirrored
    assert sorted(res["rid"]) == [0, 1]
    assert sorted(res["folded"]) == [0, 1]
    k0, k1 = res["key"]
    assert k0 != k1
    from augspec.core.random import derive_key

    assert sorted(map(tuple, res["key"])) == sorted(derive_key(5, 0, 0, r, 0) for r in (0, 1))
    assert res["outside"] == 3  # outside a replica context the rank passes through


def test_tf_replicas_draw_different_streams_automatically(tf_mirrored):
    a, b = (np.asarray(v) for v in tf_mirrored["images"])
    assert not np.array_equal(a, b)
