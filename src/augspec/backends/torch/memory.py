"""Where the torch eager path writes: private buffers reused from call to call, and
outputs that belong to the caller.

- Private buffers (``scratch``) hold a call's intermediates and are never handed
  to the caller; the stage that writes the call's result writes a fresh output
  (``dest``), so the result never aliases a buffer or the input.
- Large CPU outputs (``fresh``) come from ``OutputPool``: a block goes back to the
  pool only when Python frees the last tensor on it (its storage drops the NumPy
  wrapper the tensor was made from, whose finalizer returns the block). So an
  output is never written again while anything holds it, a NumPy view, a DLPack
  capsule, a C extension holding the storage, and no private reference counter is
  read; and a training loop that lets go of each batch gets pre-faulted memory back
  (a fresh 154 MB mapping costs ~20 ms of page faults per 224² batch of 256).
  Blocks are advised as transparent huge pages.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any

import numpy as np
import torch

from ...core.executor import Memory

#: free blocks the pool keeps per output shape
POOL_BLOCKS = 2
_MADV_HUGEPAGE = 14
_HUGE = 2 << 20


def _madvise_huge() -> Any:
    """libc's ``madvise`` on Linux, else None."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # pragma: no cover
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_madvise = _madvise_huge()


def _empty_huge(shape: tuple[int, ...]) -> Any:
    """A fresh float32 CPU tensor whose pages are advised as transparent huge pages
    (a page fault per 2 MiB instead of per 4 KiB); ``torch.empty`` where the advice
    is not taken."""
    t = torch.empty(shape, dtype=torch.float32)
    nbytes = t.numel() * 4
    if _madvise is not None and nbytes >= 2 * _HUGE:
        start = -(-t.data_ptr() // _HUGE) * _HUGE
        length = (t.data_ptr() + nbytes - start) // _HUGE * _HUGE
        if length > 0:
            _madvise(start, length, _MADV_HUGEPAGE)  # advice only: a failure changes nothing
    return t


class OutputPool:
    """Large float32 CPU outputs on blocks that return only when their tensor is freed."""

    def __init__(self, keep: int = POOL_BLOCKS):
        self.keep = keep
        self._free: dict[tuple[int, ...], list[Any]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...]) -> Any:
        with self._lock:
            blocks = self._free.get(shape)
            block = blocks.pop() if blocks else None
        if block is None:
            block = _empty_huge(shape).numpy()  # the block keeps its tensor (and memory) alive
        wrapper = block.view()  # a new array object: it lives exactly as long as the output's storage
        weakref.finalize(wrapper, self._give_back, shape, block).atexit = False
        return torch.from_numpy(wrapper)

    def _give_back(self, shape: tuple[int, ...], block: Any) -> None:
        with self._lock:
            blocks = self._free.setdefault(shape, [])
            if len(blocks) < self.keep:
                blocks.append(block)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


def _ptr(t: Any) -> int:
    return -1 if t is None else t.data_ptr()


class TorchMemory(Memory, threading.local):
    """The eager path's memory (per thread). ``fresh_out``: this call's result is a
    float32 tensor that the last writing stage writes directly (otherwise a final
    conversion makes the result, and the last stage may write a private buffer)."""

    def __init__(self) -> None:
        self.slots: dict[Any, Any] = {}
        self.pool = OutputPool()
        self.fresh_out = True
        #: a fresh tensor of this call that no stage reads any more: the last stage
        #: writes the result there instead of allocating
        self.spare: Any = None

    def __reduce__(self) -> tuple:
        return (TorchMemory, ())  # a copy (a pickle, a spawned worker) starts with memory of its own

    # ------------------------------------------------------------ executor
    def begin(self) -> None:
        self.spare = None

    def end(self) -> None:
        self.spare = None

    def whole(self, shape: tuple[int, ...], device: Any) -> Any:
        return self.fresh(shape, device)

    def scratch(self, tag: str, shape: tuple[int, ...], device: Any) -> Any:
        key = (tag, shape, device, torch.is_inference_mode_enabled())
        t = self.slots.get(key)
        if t is None:
            if len(self.slots) > 16:
                self.slots.clear()
            t = torch.empty(shape, dtype=torch.float32, device=device)
            self.slots[key] = t
        return t

    def copy_into(self, dst: Any, src: Any) -> Any:
        return dst if src.data_ptr() == dst.data_ptr() else dst.copy_(src)

    # ----------------------------------------------------- stage kernels' help
    def fresh(self, shape: tuple[int, ...], device: Any) -> Any:
        """A float32 tensor for a call's output, never one the caller still holds."""
        if torch.device(device).type == "cpu" and int(np.prod(shape)) * 4 >= _HUGE:
            return self.pool.take(tuple(shape))
        return torch.empty(shape, dtype=torch.float32, device=device)

    def is_private(self, x: Any) -> bool:
        p = x.data_ptr()
        return any(t.data_ptr() == p for t in self.slots.values())

    def writes_result(self, call: Any) -> bool:
        """Does this stage write the call's result (into ``call.out`` or a fresh tensor)?"""
        return call.last and (call.out is not None or self.fresh_out)

    def in_place_ok(self, call: Any, x: Any) -> bool:
        """May the stage of ``call`` (given an owned ``x``) write its result over ``x``?"""
        if not self.writes_result(call):
            return True
        if call.out is not None:
            return x.data_ptr() == call.out.data_ptr()
        return not self.is_private(x)

    def dest(self, call: Any, x: Any, avoid: Any = None) -> Any:
        """Where the stage of ``call`` writes an NCHW float32 image like ``x``."""
        if self.writes_result(call):
            out = call.out
            if out is not None and out.shape == x.shape and out.data_ptr() not in (x.data_ptr(), _ptr(avoid)):
                return out
            sp = self.spare
            if sp is not None and sp.shape == x.shape and sp.data_ptr() not in (x.data_ptr(), _ptr(avoid)):
                self.spare = None
                return sp
            return self.fresh(tuple(x.shape), x.device)
        for tag in ("a", "b", "c"):
            buf = self.scratch(tag, tuple(x.shape), x.device)
            if buf.data_ptr() not in (x.data_ptr(), _ptr(avoid)):
                return buf
        raise AssertionError("no free buffer")  # pragma: no cover

    def as_float(self, x: Any, dtype: str) -> tuple[Any, float, bool]:
        """(xf, scale, owned): float32 images whose value is ``scale * xf``; a uint8 or
        other input is copied into a private buffer unscaled (the 1/255 is folded into
        the first linear stage), a float32 input is used as it is (not owned)."""
        if dtype == "float32":
            return x, 1.0, False
        xf = self.scratch("in", tuple(x.shape), x.device).copy_(x)
        return xf, (1.0 / 255.0 if dtype == "uint8" else 1.0), True
