"""Who is drawing: the distributed rank and data-loader worker of this process, found at
call time wherever a run lives.

Every call draws from the key ``(seed, epoch, step, rank, worker)``. A run that
was not given ``rank`` / ``worker`` explicitly (``compile(..., rank=)``,
``run.set_state``) reads them here at each draw, so no wrapper (``Subset``,
``ConcatDataset``, a run held in a dict), no forgotten ``worker_init_fn`` and no
process started before the process group can make two workers or ranks repeat
each other's draws. The rule is the same on every backend:

- rank: ``torch.distributed``'s rank when its default process group is
  initialised, else the ``RANK`` environment variable (``torchrun``,
  ``accelerate`` and most launchers set it), else 0;
- worker: ``id + 1`` inside a ``torch.utils.data`` DataLoader worker, 0 in the
  main process (so no worker repeats the main process either).

No framework is imported: torch is consulted only if the program already imported it.
"""

from __future__ import annotations

import os
import sys

#: the environment variables read, in order, when no process group is initialised
RANK_ENV = ("RANK",)


def _torch_rank() -> int | None:
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return None
    try:
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # a torch build without distributed support, or a group being torn down
        return None
    return None


def process_rank() -> int:
    """This process' rank: torch.distributed's when initialised, else ``$RANK``, else 0."""
    r = _torch_rank()
    if r is not None:
        return r
    for name in RANK_ENV:
        v = os.environ.get(name, "").strip()
        if v:
            try:
                r = int(v)
            except ValueError:
                continue
            if r >= 0:
                return r
    return 0


def process_worker() -> int:
    """``id + 1`` inside a torch DataLoader worker, else 0."""
    data = sys.modules.get("torch.utils.data")
    if data is None:
        return 0
    try:
        info = data.get_worker_info()
    except Exception:  # pragma: no cover - an unusual torch
        return 0
    return 0 if info is None else int(info.id) + 1
