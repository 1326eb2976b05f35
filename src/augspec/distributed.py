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

A run that was not given a rank (``compile(..., rank=)``, ``run.set_state(rank=)``)
reads it at every draw (``core/identity.py``); TensorFlow folds it in-graph.
"""

from __future__ import annotations

from typing import Any

from .core.identity import RANK_ENV, process_rank

__all__ = ["default_rank", "tf_replica_rank", "RANK_ENV"]

#: ``default_rank`` is the core's rule (``core/identity.py``): one home for every backend
default_rank = process_rank


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
