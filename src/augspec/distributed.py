"""The distributed rank and replica id that a run folds into its key.

Every call draws from the key ``(seed, epoch, step, rank, worker)``. These
helpers find ``rank`` without the user passing it, so that each process of a
distributed job draws its own stream:

- :func:`default_rank`: the rank of ``torch.distributed`` when its default
  process group is initialised, else the ``RANK`` environment variable (set by
  ``torchrun``, ``accelerate`` and most launchers), else 0. It never imports a
  framework: torch is consulted only if the program already imported it.
- :func:`tf_replica_rank`: inside ``tf.distribute`` (``strategy.run``), the
  global replica index ``rank * num_replicas_in_sync + replica_id_in_sync_group``
  as an int64 tensor, so each replica of a ``MirroredStrategy`` draws its own
  stream; ``rank`` outside a replica context.

A backend calls these where it resolves a run's rank (when the user did not set
one with ``compile(..., rank=)`` or ``run.set_state(rank=)``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["default_rank", "tf_replica_rank", "RANK_ENV"]

#: the environment variables read, in order, when no process group is initialised
RANK_ENV = ("RANK",)


def _torch_rank() -> int | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # a torch build without distributed support, or a group being torn down
        return None
    return None


def default_rank() -> int:
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


def tf_replica_rank(rank: Any = 0) -> Any:
    """In a ``tf.distribute`` replica context, ``rank * replicas + replica_id`` as an
    int64 scalar tensor (works in graph mode and under XLA); ``rank`` otherwise."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    rank_t = tf.cast(rank, tf.int64)
    if ctx is None or not tf.distribute.has_strategy():
        return rank_t
    n = ctx.num_replicas_in_sync
    rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
    return rank_t * n + rid
