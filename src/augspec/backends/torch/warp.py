"""The torch warp: the pixel-frame inverse matrix as ``grid_sample``'s grid, or a
gather for nearest-pixel warps.

With ``align_corners=False`` a normalized coordinate g is the pixel-frame
coordinate ``(g + 1) W / 2``; zeros padding, and a fill ``f`` as
``warp(x - f) + f``; fill modes map to ``grid_sample``'s padding (``PADDING``).
On the CPU, a compiled pipeline keeps ``grid_sample`` as one extern kernel
(``augspec::grid_sample``): aten's vectorized kernel beats inductor's decomposition.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - old torch
        return False


def _is_identity(m: Any) -> Any:
    """(N,) bool: which (N, 3, 3) matrices are exactly the identity."""
    return (m == torch.eye(3, dtype=m.dtype, device=m.device)).flatten(1).all(dim=1)



@torch.library.custom_op("augspec::grid_sample", mutates_args=())
def _grid_sample_op(x: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """``grid_sample`` (align_corners=False) as an op the compiler keeps whole: on the
    CPU, aten's vectorized kernel beats inductor's decomposition."""
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


@_grid_sample_op.register_fake
def _(x: torch.Tensor, grid: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    return x.new_empty((x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]))


#: devices where a compiled pipeline keeps the warp as one extern kernel (``augspec::grid_sample``)
EXTERN_WARP_DEVICES = {"cpu"}

#: the warp's ``fill_mode`` as ``grid_sample``'s padding: with align_corners=False "border"
#: clamps the coordinate to the edge pixels' centres, the same as clamping the taps, and
#: "reflection" mirrors it about the image edge (-0.5, W - 0.5), the same as mirroring the
#: taps (index -1 reads 0) of a linear interpolation
PADDING = {"constant": "zeros", "nearest": "border", "reflect": "reflection"}


def _warp_nearest(x: Any, inverse: Any, fill: Any, fill_mode: str) -> Any:
    """Nearest-pixel warp of NCHW ``x`` by gathering, with the reference's rule exactly:
    the source index is ``floor(u + 1/2)`` of the float64 continuous index ``u``
    (ties round up; ``grid_sample`` rounds them to even), mapped by ``fill_mode``;
    ``fill`` (C,) is read outside the image in "constant" mode."""
    n, c, h, w = x.shape
    inv = inverse.to(torch.float64)
    jj = torch.arange(w, device=x.device, dtype=torch.float64) + 0.5
    ii = torch.arange(h, device=x.device, dtype=torch.float64) + 0.5

    def index(r: int, size: int) -> tuple[Any, Any]:
        s = inv[:, r, 0, None, None] * jj[None, None, :] + inv[:, r, 1, None, None] * ii[None, :, None] + inv[:, r, 2, None, None]
        i = torch.floor((s - 0.5) + 0.5)
        if fill_mode == "nearest":
            i = i.clamp(0, size - 1)
        elif fill_mode == "reflect":  # half-sample symmetric: period 2 size
            i = torch.remainder(i.clamp(-(2.0 ** 40), 2.0 ** 40), 2 * size)
            i = torch.where(i >= size, 2 * size - 1 - i, i)
        valid = (i >= 0) & (i <= size - 1)
        return i.clamp(0, size - 1).to(torch.int64), valid

    ui, uvalid = index(0, w)
    vi, vvalid = index(1, h)
    idx = (vi * w + ui).reshape(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, idx).view(n, c, h, w)
    if fill_mode == "constant":
        out = torch.where((uvalid & vvalid)[:, None], out, fill.to(out.dtype).reshape(1, -1, 1, 1))
    return out


def _grid_sample(x: Any, grid: Any, mode: str, padding: str = "zeros") -> Any:
    if x.device.type in EXTERN_WARP_DEVICES and not x.requires_grad and _compiling():
        return _grid_sample_op(x, grid, mode, padding)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)



def sample_grid(inverse: Any, n: int, h: int, w: int, dtype: Any, out: Any = None,
                size: tuple[int, int] | None = None) -> Any:
    """The ``grid_sample`` grid (N, H, W, 2) of a pixel-frame inverse matrix.

    With ``align_corners=False`` a normalized coordinate g is the pixel-frame
    coordinate ``(g + 1) W / 2``, and output pixel j has its centre at
    ``j + 0.5``, so the source coordinate of output pixel (i, j) is
    ``g_x = (2 / W) (a (j + 0.5) + b (i + 0.5) + c) - 1`` (likewise g_y): two
    broadcast multiply-adds over (N, H, W), no (N, H*W, 3) matmul. ``size``: the output's
    (height, width) when it is not the input's ``(h, w)`` (a crop fused with the warp)."""
    inv = inverse.to(torch.float64) if inverse.device.type == "cpu" else inverse
    dev = inverse.device
    oh, ow = size if size is not None else (h, w)
    xs = (torch.arange(ow, device=dev, dtype=inv.dtype) + 0.5).reshape(1, 1, ow)
    ys = (torch.arange(oh, device=dev, dtype=inv.dtype) + 0.5).reshape(1, oh, 1)
    r = torch.stack([inv[:, 0, :] * (2.0 / w), inv[:, 1, :] * (2.0 / h)], dim=1)  # rows scaled
    r = torch.cat([r[:, :, :2], r[:, :, 2:] - 1.0], dim=-1).to(dtype)
    xs, ys = xs.to(dtype), ys.to(dtype)
    a, b, c = r[:, 0, 0, None, None], r[:, 0, 1, None, None], r[:, 0, 2, None, None]
    d, e, f = r[:, 1, 0, None, None], r[:, 1, 1, None, None], r[:, 1, 2, None, None]
    if _compiling() or out is None:
        gx = a * xs + (b * ys + c)
        gy = d * xs + (e * ys + f)
        return torch.stack([gx, gy], dim=-1)
    torch.addcmul(b * ys + c, xs, a, out=out[..., 0])
    torch.addcmul(d * xs + f, ys, e, out=out[..., 1])
    return out


def _resample(B: Any, x: Any, inverse: Any, interpolation: str, fill: tuple[float, ...], fill_mode: str,
              grid_out: Any = None, size: tuple[int, int] | None = None) -> Any:
    """NCHW ``x`` sampled at the pixel-frame ``inverse`` (the warp of both the generic
    and the eager path): nearest by gathering (``_warp_nearest``), bilinear with
    ``grid_sample`` (its padding for "nearest" / "reflect", a fill ``f`` as
    ``warp(x - f) + f``). ``grid_out`` is a buffer for the grid; ``size`` the output's
    (height, width) where it differs (bilinear only)."""
    n, c, h, w = x.shape
    if interpolation == "nearest":
        if size is not None:
            raise ValueError("_resample: a nearest warp keeps the size")
        fv = B.asarray(tuple(float(v) for v in fill), "float32")
        return _warp_nearest(x, inverse, fv.expand(c) if fv.numel() == 1 else fv, fill_mode)
    grid = sample_grid(inverse, n, h, w, x.dtype, out=grid_out, size=size)
    if fill_mode != "constant":
        return _grid_sample(x, grid, "bilinear", PADDING[fill_mode])
    if any(v != 0.0 for v in fill):
        f = B.asarray(tuple(float(v) for v in fill), "float32").to(x.dtype).reshape(1, -1, 1, 1)
        return _grid_sample(x - f, grid, "bilinear").add_(f)
    return _grid_sample(x, grid, "bilinear")

