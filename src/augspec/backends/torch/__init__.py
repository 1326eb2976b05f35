"""The PyTorch backend: the whole pipeline as a few batched tensor operations.

``Pipeline.compile("torch", layout="NCHW", device=None, jit=False)``.

One concept per module:

- ``primitives``: ``TorchBackend``, the namespace ``B`` on torch tensors (devices,
  constants cached on the device, "uint32" words held in int64);
- ``warp``: the pixel-frame warp as ``grid_sample`` or a nearest-pixel gather;
- ``stages``: the stage kernels of the eager path, registered in the kernel table
  and called by the core executor (the fused warp, the colour map, the mask fill,
  the channel map, the partner blend); a plugin op of a family gets its family's;
- ``memory``: private buffers and an output pool whose blocks return only when
  the caller frees the output;
- ``run``: ``TorchRun``: eager, ``jit=True`` (``torch.compile(fullgraph=True)``)
  or ``jit="cudagraph"``.
"""

from __future__ import annotations

from .primitives import _CONST_ENTRIES, TorchBackend, _color_affine_unrolled, to_device
from .run import TorchRun
from .warp import EXTERN_WARP_DEVICES, PADDING

__all__ = ["TorchBackend", "TorchRun", "to_device", "EXTERN_WARP_DEVICES", "PADDING",
           "_CONST_ENTRIES", "_color_affine_unrolled"]
