"""Pure-PyTorch rasterizer with nvdiffrast's semantics (CPU and GPU).

``rasterize(pos, tri, (H, W))`` returns ``rast [B, H, W, 4] = (u, v, z/w, triangle_id + 1)``,
zero where no triangle covers the pixel, with nvdiffrast's orientation: row ``i`` samples
``y_ndc = 2 (i + 0.5) / H - 1`` (row 0 is the bottom), column ``j`` samples
``x_ndc = 2 (j + 0.5) / W - 1``. ``(u, v)`` are perspective-correct barycentrics of vertices 0 and
1 (vertex 2 gets ``1 - u - v``), so ``interpolate`` reproduces the clip-space attribute.

How it works (two passes):

1. **Visibility, no autograd.** Triangles are binned by the power-of-two size of their pixel
   bounding box. Each bin enumerates, for a chunk of triangles at once, the ``kh x kw`` candidate
   pixel centres in the box, tests them with edge functions, and pushes a 64-bit key
   ``(orderable float32 z/w) << 32 | triangle_id`` into a per-pixel z-buffer with
   ``scatter_reduce(amin)``. The nearest ``z/w`` wins; exact ties go to the lower triangle id, so
   the result is deterministic. Memory is bounded by ``chunk_elems`` candidates per step; no
   Python loop runs over pixels or triangles. Edge functions are evaluated with each edge's
   vertices in a canonical (lower vertex index first) order, so two triangles sharing an edge
   see exactly opposite values and pixel centres on the edge are never lost (watertight).
   A pixel is kept when ``-1 <= z/w <= 1`` (nvdiffrast's depth clip). Triangles with a vertex at
   ``w <= 0`` (behind the camera) are dropped rather than clipped (nvdiffrast clips them; faces in
   front of the camera never have them). Both windings are rasterized (no culling).
2. **Barycentrics, in autograd.** For every covered pixel the winning triangle's clip vertices
   are gathered and the perspective-correct barycentrics are recomputed with homogeneous edge
   functions ``b_i ∝ (v_j x v_k) . (x_ndc, y_ndc, 1)`` on ``v = (x, y, w)``. Gradients therefore
   flow to vertex positions (interior pixels) and, through ``interpolate``, to attributes.
   Silhouette gradients need :func:`occrecon.render.antialias.antialias`.
"""

from __future__ import annotations

import torch

from occrecon.utils.checks import check_shape

DEFAULT_CHUNK_ELEMS = 1 << 21
_EDGES = ((1, 2), (2, 0), (0, 1))  # edge k is opposite vertex k
_EMPTY = torch.iinfo(torch.int64).max


def _orderable_int(z: torch.Tensor) -> torch.Tensor:
    """Map float32 to int64 with the same order (IEEE bits, negative range reversed)."""
    bits = z.contiguous().view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)


def _triangle_setup(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
    """Per-triangle edge/depth planes and pixel boxes for all ``B * F`` triangles that can cover
    a pixel centre. Pixel coordinates here are nvdiffrast's: ``(x_ndc + 1) W / 2``, ``(y_ndc + 1) H / 2``."""
    n_batch, n_tri = pos.shape[0], tri.shape[0]
    v = pos[:, tri]  # [B, F, 3, 4]
    w = v[..., 3]
    ok = (w > 1e-8).all(-1)
    w_safe = torch.where(ok[..., None], w, torch.ones_like(w))
    px = (v[..., 0] / w_safe + 1.0) * (0.5 * width)
    py = (v[..., 1] / w_safe + 1.0) * (0.5 * height)
    pz = v[..., 2] / w_safe
    jmin = torch.ceil(px.amin(-1) - 0.5).clamp(min=0)
    jmax = torch.floor(px.amax(-1) - 0.5).clamp(max=width - 1)
    imin = torch.ceil(py.amin(-1) - 0.5).clamp(min=0)
    imax = torch.floor(py.amax(-1) - 0.5).clamp(max=height - 1)
    area = (px[..., 1] - px[..., 0]) * (py[..., 2] - py[..., 0]) - (px[..., 2] - px[..., 0]) * (py[..., 1] - py[..., 0])
    keep = ok & (jmin <= jmax) & (imin <= imax) & (area != 0) & torch.isfinite(area)
    bi, fi = keep.nonzero(as_tuple=True)
    px, py, pz, area, tri_k = px[bi, fi], py[bi, fi], pz[bi, fi], area[bi, fi], tri[fi]
    planes = []
    for a, b in _EDGES:
        swap = tri_k[:, a] > tri_k[:, b]  # canonical order -> exactly antisymmetric shared edges
        xa, xb = torch.where(swap, px[:, b], px[:, a]), torch.where(swap, px[:, a], px[:, b])
        ya, yb = torch.where(swap, py[:, b], py[:, a]), torch.where(swap, py[:, a], py[:, b])
        sign = torch.where(swap, -1.0, 1.0).to(px.dtype) * torch.sign(area)
        # E(p) = (xb - xa)(y - ya) - (yb - ya)(x - xa), oriented so inside is >= 0.
        planes.append(torch.stack([-(yb - ya) * sign, (xb - xa) * sign, ((yb - ya) * xa - (xb - xa) * ya) * sign], -1))
    edge = torch.stack(planes, 1)  # [N, 3 edges, 3 coeffs]
    # z/w is affine in screen space: z(p) = sum_k E_k(p) / |area| * z_k.
    zplane = (edge * (pz / area.abs()[:, None])[:, :, None]).sum(1)
    return {
        "edge": edge,
        "zplane": zplane,
        "box": torch.stack([jmin[bi, fi], imin[bi, fi], jmax[bi, fi], imax[bi, fi]], -1).long(),
        "pixel_base": bi * (height * width),
        "tri_id": fi,
    }


def _size_class(extent: torch.Tensor) -> torch.Tensor:
    """``ceil(log2(extent))`` for integer extents >= 1."""
    return torch.ceil(torch.log2(extent.to(torch.float32))).long()


def _scatter_bin(zbuf, setup, rows, kw, kh, width, chunk_elems) -> None:
    """Rasterize triangles ``rows`` (all with boxes within ``kw x kh``) into ``zbuf``."""
    dy, dx = torch.meshgrid(
        torch.arange(kh, device=zbuf.device), torch.arange(kw, device=zbuf.device), indexing="ij"
    )
    dx, dy = dx.reshape(1, -1), dy.reshape(1, -1)
    per_chunk = max(1, chunk_elems // (kw * kh))
    for start in range(0, rows.numel(), per_chunk):
        r = rows[start : start + per_chunk]
        box = setup["box"][r]
        j, i = box[:, 0:1] + dx, box[:, 1:2] + dy  # [n, K]
        inside = (j <= box[:, 2:3]) & (i <= box[:, 3:4])
        edge = setup["edge"][r]
        x, y = (j + 0.5).to(edge.dtype), (i + 0.5).to(edge.dtype)
        for k in range(3):
            inside &= edge[:, k, 0:1] * x + edge[:, k, 1:2] * y + edge[:, k, 2:3] >= 0
        zp = setup["zplane"][r]
        z = zp[:, 0:1] * x + zp[:, 1:2] * y + zp[:, 2:3]
        inside &= (z >= -1.0) & (z <= 1.0)
        sel = inside.nonzero(as_tuple=True)
        key = (_orderable_int(z[sel].float()) << 32) | setup["tri_id"][r][sel[0]]
        pix = setup["pixel_base"][r][sel[0]] + i[sel] * width + j[sel]
        zbuf.scatter_reduce_(0, pix, key, reduce="amin")


@torch.no_grad()
def visible_triangles(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> torch.Tensor:
    """Z-buffered triangle index per pixel, ``[B, H, W]`` int64, ``-1`` where empty (pass 1)."""
    height, width = resolution
    setup = _triangle_setup(pos, tri.long(), height, width)
    zbuf = torch.full((pos.shape[0] * height * width,), _EMPTY, dtype=torch.int64, device=pos.device)
    if setup["tri_id"].numel():
        box = setup["box"]
        cw = _size_class(box[:, 2] - box[:, 0] + 1)
        ch = _size_class(box[:, 3] - box[:, 1] + 1)
        bins = cw * 16 + ch
        order = torch.argsort(bins)
        values, counts = torch.unique_consecutive(bins[order], return_counts=True)
        for value, rows in zip(values.tolist(), torch.split(order, counts.tolist())):
            _scatter_bin(zbuf, setup, rows, 1 << (value // 16), 1 << (value % 16), width, chunk_elems)
    ids = torch.where(zbuf == _EMPTY, -1, zbuf & 0xFFFFFFFF)
    return ids.view(pos.shape[0], height, width)


def barycentrics_at(pos: torch.Tensor, tri: torch.Tensor, tri_id: torch.Tensor, resolution: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and ``z/w`` of the given triangles at pixel centres (pass 2).

    Args:
        pos: ``[B, V, 4]`` clip positions (autograd flows through them).
        tri: ``[F, 3]`` vertex indices.
        tri_id: ``[B, H, W]`` int64 triangle index, ``-1`` where empty.

    Returns:
        ``pix`` ``[N]`` flat indices of covered pixels and ``vals`` ``[N, 3] = (u, v, z/w)``.
    """
    height, width = resolution
    pix = (tri_id.reshape(-1) >= 0).nonzero().squeeze(1)
    f = tri_id.reshape(-1)[pix]
    b, rem = pix // (height * width), pix % (height * width)
    i, j = rem // width, rem % width
    v = pos[b[:, None], tri.long()[f]]  # [N, 3, 4]
    p = torch.stack([(2 * j + 1) / width - 1.0, (2 * i + 1) / height - 1.0, torch.ones_like(i, dtype=torch.float64)], -1)
    h = v[..., (0, 1, 3)]
    lam = torch.stack([torch.linalg.cross(h[:, (k + 1) % 3], h[:, (k + 2) % 3]) for k in range(3)], 1)
    lam = (lam * p.to(v.dtype)[:, None, :]).sum(-1)  # [N, 3], proportional to clip barycentrics
    bary = lam / lam.sum(-1, keepdim=True)
    zw = (bary * v[..., 2]).sum(-1) / (bary * v[..., 3]).sum(-1)
    return pix, torch.stack([bary[:, 0], bary[:, 1], zw], -1)


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> torch.Tensor:
    """Rasterize triangles (nvdiffrast ``rasterize`` semantics, instanced mode).

    Args:
        pos: ``[B, V, 4]`` float clip-space positions.
        tri: ``[F, 3]`` int32/int64 vertex indices.
        resolution: ``(H, W)``.
        chunk_elems: candidate pixels processed per step (memory bound, ~40 bytes each).

    Returns:
        ``rast [B, H, W, 4]`` of ``pos.dtype``: ``(u, v, z/w, triangle_id + 1)``, zeros where empty;
        row 0 is ``y_ndc = -1``. Differentiable w.r.t. ``pos`` through ``(u, v, z/w)``.
    """
    check_shape(pos, ["B", "V", 4], "pos")
    check_shape(tri, ["F", 3], "tri")
    height, width = int(resolution[0]), int(resolution[1])
    tri_id = visible_triangles(pos.detach(), tri, (height, width), chunk_elems)
    pix, vals = barycentrics_at(pos, tri, tri_id, (height, width))
    ident = (tri_id.reshape(-1)[pix] + 1).to(pos.dtype)[:, None]
    flat = pos.new_zeros(pos.shape[0] * height * width, 4)
    flat = flat.index_put((pix,), torch.cat([vals, ident], -1))
    return flat.view(pos.shape[0], height, width, 4)

