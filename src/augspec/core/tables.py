"""Host tables: constants that kernels read (quantiles, thresholds), computed on the host
once per key with NumPy and Python numbers.

``host_table(fn)`` caches ``fn(*key)`` in a plain dict, not ``functools.lru_cache``: a
tracer (``torch.compile``) that meets a filled entry reads it as a constant, where it
would otherwise trace the NumPy code that builds it. Ops fill the entries a call needs
before any trace, in ``Op.prepare`` (``Plan.prepare``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

#: the most entries one table keeps (sizes and alphas seen; past that it starts anew)
MAX_ENTRIES = 256


def host_table(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` cached per argument tuple in a dict (``.cache``)."""
    cache: dict[tuple, Any] = {}

    @functools.wraps(fn)
    def get(*key: Any) -> Any:
        table = cache.get(key)
        if table is None:
            if len(cache) >= MAX_ENTRIES:
                cache.clear()
            table = cache[key] = fn(*key)
        return table

    get.cache = cache  # type: ignore[attr-defined]
    return get
