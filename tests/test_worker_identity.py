"""Workers and ranks never repeat each other's draws, by construction (issue: repeated draws
in wrapped datasets). A run held in a dict attribute of a dataset, wrapped in ``Subset`` and
``ConcatDataset`` (what ``random_split`` and dataset unions give), with no ``worker_init_fn``:
each DataLoader worker finds its own worker id at the draw (``core/identity.py``), with fork
and spawn, 2 and 4 workers, on every backend that runs in workers; every sample of an epoch
(all made from the same image) comes out differently augmented."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import augspec as aug

torch = pytest.importorskip("torch")
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset  # noqa: E402

N = 16
IMAGE = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)  # HWC
OPS = [aug.Affine(rotate=30, translate=0.1), aug.ColorJitter(0.3, 0.3, 0.3), aug.CutOut(size=0.3)]


class HeldInADict(Dataset):
    """Every item is the same image through the run, which lives in a dict attribute."""

    def __init__(self, backend: str):
        self.parts = {"run": aug.Pipeline(OPS, seed=5).compile(backend, **({"layout": "NHWC"} if backend == "torch"
                                                                          else {}))}
        self.backend = backend

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int):
        x = torch.from_numpy(IMAGE.copy()) if self.backend == "torch" else IMAGE.copy()
        out = self.parts["run"](x)
        return np.asarray(out.numpy() if self.backend == "torch" else out)


def _wrapped(backend: str) -> Dataset:
    """One dataset (one run), split as ``random_split`` does and joined again."""
    ds, half = HeldInADict(backend), N // 2
    return ConcatDataset([Subset(ds, range(half)), Subset(ds, range(half, N))])


def _backends() -> list[str]:
    names = {b.name for b in aug.list_backends() if b.available}
    return [b for b in ("numpy", "torch", "albumentations") if b in names]


def _distinct(batches) -> int:
    flat = np.concatenate([b.numpy().reshape(b.shape[0], -1) for b in batches])
    return len({row.tobytes() for row in flat}), len(flat)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_wrapped_datasets_never_repeat_a_draw(backend, workers, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    if method == "spawn" and backend != "torch":
        pytest.skip("spawn is slow: run once, on the torch backend")
    ds = _wrapped(backend)
    loader = DataLoader(ds, batch_size=2, num_workers=workers, multiprocessing_context=method)
    distinct, total = _distinct(list(loader))
    assert total == N
    assert distinct == N, f"{backend}, {workers} {method} workers: {N - distinct} repeated augmentations"
    # and the main process draws apart from every worker
    main = _distinct(list(DataLoader(_wrapped(backend), batch_size=2, num_workers=0)))[0]
    both = _distinct(list(DataLoader(_wrapped(backend), batch_size=2, num_workers=0)) + list(loader))[0]
    assert main == N and both == 2 * N
