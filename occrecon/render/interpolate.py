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
    n_batch, height, width, _ = rast.shape
    flat = rast.reshape(-1, 4)
    pix = (flat[:, 3] > 0).nonzero().squeeze(1)
    hit = take_rows(flat, pix)  # [N, 4]
    vidx = take_rows(tri.long(), hit[:, 3].long() - 1)  # [N, 3]
    if attr.shape[0] > 1:
        vidx = vidx + (pix // (height * width) * attr.shape[1])[:, None]
    a = take_rows(attr.reshape(-1, attr.shape[-1]), vidx)  # [N, 3, C]
    u, v = hit[:, 0:1], hit[:, 1:2]
    vals = u * a[:, 0] + v * a[:, 1] + (1.0 - u - v) * a[:, 2]
    out = vals.new_zeros(n_batch * height * width, attr.shape[-1]).index_copy(0, pix, vals)
    return out.view(n_batch, height, width, -1)
