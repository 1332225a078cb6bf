"""Attribute interpolation over a rasterized image (nvdiffrast ``interpolate`` semantics)."""

from __future__ import annotations

import torch

from occrecon.errors import ShapeError
from occrecon.render.torch_raster import take_rows
from occrecon.utils.checks import check_shape


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes with the rasterizer's barycentrics.

    Args:
        attr: ``[B, V, C]``, ``[1, V, C]`` (broadcast) or ``[V, C]`` per-vertex attributes.
        rast: ``[B, H, W, 4]`` rasterizer output ``(u, v, z/w, triangle_id + 1)``.
        tri: ``[F, 3]`` vertex indices (the ones given to ``rasterize``).

    Returns:
        ``[B, H, W, C]``: ``u a0 + v a1 + (1 - u - v) a2`` of the pixel's triangle, zero where empty.
        Differentiable w.r.t. ``attr`` and the ``(u, v)`` channels of ``rast``.
    """
    check_shape(rast, ["B", "H", "W", 4], "rast")
    check_shape(tri, ["F", 3], "tri")
    if attr.dim() == 2:
        attr = attr[None]
    if attr.dim() != 3 or attr.shape[0] not in (1, rast.shape[0]):
        raise ShapeError("attr", f"[{rast.shape[0]}, V, C], [1, V, C] or [V, C]", tuple(attr.shape))
    n_batch = rast.shape[0]
    covered = rast[..., 3] > 0
    tid = (rast[..., 3].detach() - 1).clamp(min=0).to(torch.int32)  # [B, H, W]; empty -> triangle 0
    vid = [take_rows(c, tid) for c in tri.to(torch.int32).T.contiguous()]  # [B, H, W] per corner
    if attr.shape[0] > 1:
        offset = (torch.arange(n_batch, device=rast.device, dtype=torch.int32) * attr.shape[1]).view(-1, 1, 1)
        vid = [v + offset for v in vid]
    # Dense, channel-major gathers (contiguous rows; cheaper than compacting covered pixels).
    comp = attr.reshape(-1, attr.shape[-1]).T.contiguous()  # [C, B * V] or [C, V]
    u, v = rast[..., 0], rast[..., 1]
    w = covered.to(u.dtype) - u - v  # 0 on empty pixels, where u = v = 0 too
    vals = [u * take_rows(c, vid[0]) + v * take_rows(c, vid[1]) + w * take_rows(c, vid[2]) for c in comp]
    return torch.stack(vals, -1)
