"""Pure-PyTorch rasterizer with nvdiffrast's semantics (CPU and GPU).

``rasterize(pos, tri, (H, W))`` returns ``rast [B, H, W, 4] = (u, v, z/w, triangle_id + 1)``,
zero where no triangle covers the pixel, with nvdiffrast's orientation: row ``i`` samples
``y_ndc = 2 (i + 0.5) / H - 1`` (row 0 is the bottom), column ``j`` samples
``x_ndc = 2 (j + 0.5) / W - 1``. ``(u, v)`` are perspective-correct barycentrics of vertices 0 and
1 (vertex 2 gets ``1 - u - v``), so ``interpolate`` reproduces the clip-space attribute.

How it works (two passes):

1. **Visibility, no autograd.** Every triangle gets its pixel box (the pixel centres inside its
   screen bounding box, clipped to the image), its three edge planes ``E(x, y) = a x + b y + c``
   and its ``z/w`` plane, all computed for the whole ``[B, F]`` batch at once. Candidate pixels
   are tested with the edge functions and push a 64-bit key ``(orderable float32 z/w) << 32 |
   triangle_id`` into a per-pixel z-buffer with ``scatter_reduce(amin)``: the nearest ``z/w``
   wins, exact ties go to the lower triangle id, so the result is deterministic.
   The box origin is tested for every triangle without any gather (a face mesh at 224 px has
   most triangles at about one pixel, so that is most of the work); the other centres of the
   larger boxes are then enumerated exactly (each candidate a ``(triangle, dx, dy)`` triple from
   ``repeat_interleave`` over the box sizes, no padding to a common box size) and tested in
   chunks of about ``chunk_elems`` candidates, whole triangles per chunk. No Python loop runs
   over pixels or triangles. Edge functions are built from each edge's lower-index vertex, so two triangles
   sharing an edge see exactly opposite values and pixel centres on the edge are never lost
   (watertight). A pixel is kept when ``-1 <= z/w <= 1`` (nvdiffrast's depth clip). Triangles
   with a vertex at ``w <= 0`` (behind the camera) are dropped rather than clipped (nvdiffrast
   clips them; faces in front of the camera never have them). Both windings are rasterized.
2. **Barycentrics, in autograd.** For every covered pixel the winning triangle's clip vertices
   are gathered and the perspective-correct barycentrics are recomputed with homogeneous edge
   functions ``b_i ∝ (v_j x v_k) . (x_ndc, y_ndc, 1)`` on ``v = (x, y, w)``. Gradients therefore
   flow to vertex positions (interior pixels) and, through ``interpolate``, to attributes.
   Silhouette gradients need :func:`occrecon.render.antialias.antialias`.

The phases are labelled for :mod:`torch.profiler` (``raster.setup``, ``raster.binning``,
``raster.zbuffer``, ``raster.barycentrics``); ``bench/render.py`` prints where the time goes.
"""

from __future__ import annotations

import torch
from torch.profiler import record_function

from occrecon.utils.checks import check_shape

DEFAULT_CHUNK_ELEMS = 1 << 16
TRIANGLES_PER_GROUP = 1 << 18
_EMPTY = torch.iinfo(torch.int64).max


def take_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` for a flat index tensor of any shape, via ``index_select`` (on CPU about ten
    times faster than advanced indexing, and its backward is an ``index_add``)."""
    return src.index_select(0, index.reshape(-1)).view(*index.shape, *src.shape[1:])


def _depth_key(z: torch.Tensor, tid: torch.Tensor) -> torch.Tensor:
    """``(orderable int of float32 z) << 32 | tid`` as int64: ordered by ``z``, then by ``tid``.

    IEEE float bits order like integers for ``z >= 0``; negative values get their magnitude bits
    flipped (``bits ^ 0x7FFFFFFF``) so they order below, nearest first.
    """
    bits = z.float().contiguous().view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (bits.to(torch.int64) << 32) | tid


def _screen_vertices(pos: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[3, B, V]`` pixel-centre coordinates ``x = (x_ndc + 1) W / 2 - 1/2`` (pixel ``j`` is
    sampled at ``x = j``), ``y`` likewise, and ``z/w``. Vertices at ``w <= 0`` get NaN, so their
    triangles fail every bounding-box comparison (they are dropped, not clipped)."""
    w = pos[..., 3]
    inv = torch.where(w > 1e-8, 1.0 / w, torch.nan)
    scale = torch.tensor([0.5 * width, 0.5 * height, 1.0], dtype=pos.dtype, device=pos.device)[:, None, None]
    shift = torch.tensor([0.5 * width - 0.5, 0.5 * height - 0.5, 0.0], dtype=pos.dtype, device=pos.device)
    return torch.addcmul(shift[:, None, None], pos[..., :3].permute(2, 0, 1) * inv, scale)


def _edge_planes(x: list[torch.Tensor], y: list[torch.Tensor], z: list[torch.Tensor]) -> list[torch.Tensor]:
    """Three edge planes then the ``z/w`` plane, ``(a, b, c)`` each: 12 tensors shaped like ``x[0]``.

    Corners come in ascending vertex-index order. Edge ``k`` (opposite corner ``k``, walked
    ``1->2``, ``2->0``, ``0->1``) is ``E_k(p) = a x - b y + c`` (note the minus: it saves a
    negation), built from its lower-index vertex so that triangles sharing an edge get bit-exactly
    opposite values (watertight). A centre is inside when the three values share a sign (either
    winding); then ``z/w = sum_k E_k z_k / area`` with the signed ``area = sum_k E_k``.
    """
    (x0, x1, x2), (y0, y1, y2) = x, y

    def plane(xa, ya, xb, yb, flip: bool) -> list[torch.Tensor]:
        # E(p) = (yb - ya)(x - xa) - (xb - xa)(y - ya), negated when flip.
        dx, dy = xb - xa, yb - ya
        c = dx * ya - dy * xa
        return [-dy, -dx, -c] if flip else [dy, dx, c]

    # Edge 2->0 is evaluated as 0->2 and negated, so the three are consistently oriented.
    e = plane(x1, y1, x2, y2, False) + plane(x0, y0, x2, y2, True) + plane(x0, y0, x1, y1, False)
    area = (x2 - x0) * (y1 - y0) - (x1 - x0) * (y2 - y0)  # = E_0 + E_1 + E_2 at any point
    zk = [zc / area for zc in z]  # inf/NaN for zero area: such triangles are never inside
    return e + [e[c] * zk[0] + e[3 + c] * zk[1] + e[6 + c] * zk[2] for c in range(3)]


def _test_candidates(
    planes: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, tid: torch.Tensor, ok: torch.Tensor | None
) -> torch.Tensor:
    """Z-buffer keys of candidate pixel centres ``(x, y)``: empty where a centre is outside the
    triangle, outside ``-1 <= z/w <= 1`` or not ``ok``."""

    def at(k):  # a x - b y + c of plane k
        return torch.addcmul(torch.addcmul(planes[3 * k + 2], planes[3 * k], x), planes[3 * k + 1], y, value=-1)

    e0, e1, e2, z = at(0), at(1), at(2), at(3)
    lo, hi = torch.minimum(torch.minimum(e0, e1), e2), torch.maximum(torch.maximum(e0, e1), e2)
    inside = ((lo >= 0) | (hi <= 0)) & (z.abs() <= 1.0)  # False for NaN z (zero area)
    if ok is not None:
        inside &= ok
    return torch.where(inside, _depth_key(z, tid), _EMPTY)


def _scatter_group(
    zbuf: torch.Tensor, pos: torch.Tensor, corner: torch.Tensor, size: tuple[int, int], chunk_elems: int
) -> None:
    """Z-buffer the triangles ``corner [3, F]`` of every batch item of ``pos [b, V, 4]`` into the
    flat ``zbuf [b * H * W]``."""
    height, width = size
    n_batch, n_tri = pos.shape[0], corner.shape[1]
    with record_function("raster.setup"):
        screen = _screen_vertices(pos, height, width).reshape(3, -1)  # [3, b * V]
        vid = (corner[:, None, :] + (torch.arange(n_batch, device=pos.device) * pos.shape[1])[:, None]).to(torch.int32)
        cx, cy, cz = (take_rows(screen[c], vid) for c in range(3))  # [3, b, F] each
        planes = _edge_planes(list(cx), list(cy), list(cz))  # [b, F] each
    with record_function("raster.binning"):
        j0 = cx.amin(0).ceil_().clamp_(min=0)
        j1 = cx.amax(0).floor_().clamp_(max=width - 1)
        i0 = cy.amin(0).ceil_().clamp_(min=0)
        i1 = cy.amax(0).floor_().clamp_(max=height - 1)
        ext_x, ext_y = j1 - j0, i1 - i0
        keep = (ext_x >= 0) & (ext_y >= 0)  # False for NaN (a vertex behind the camera)
        first = i0.to(torch.int64) * width + j0.to(torch.int64)
        first += (torch.arange(n_batch, device=pos.device) * (height * width))[:, None]  # [b, F]
        first.clamp_(0, zbuf.shape[0] - 1)  # dropped triangles may hold anything; kept ones are in range
    with record_function("raster.zbuffer"):
        # Candidate 1: the box origin of every triangle (the whole box for most of a dense mesh).
        key = _test_candidates(planes, j0, i0, torch.arange(n_tri, device=pos.device), keep)
        zbuf.scatter_reduce_(0, first.reshape(-1), key.reshape(-1), reduce="amin")
    with record_function("raster.binning"):
        big = (keep & ((ext_x > 0) | (ext_y > 0))).reshape(-1).nonzero().squeeze(1)
        if big.numel() == 0:
            return
        # One row per larger triangle: 12 plane coefficients, its box origin and box width.
        bx, by = take_rows(ext_x.reshape(-1), big) + 1, take_rows(ext_y.reshape(-1), big) + 1
        table = torch.stack([*(take_rows(c.reshape(-1), big) for c in (*planes, j0, i0)), bx], -1)
        first, tid = take_rows(first.reshape(-1), big), big % n_tri
        count = (bx * by).long() - 1  # pixel centres in each box but its origin (tested above)
        ends = count.cumsum(0)
        # Chunks of whole triangles holding about chunk_elems candidates each.
        marks = torch.arange(chunk_elems, max(int(ends[-1]), chunk_elems), chunk_elems, device=ends.device)
        bounds = [0, *(torch.searchsorted(ends, marks) + 1).tolist(), big.numel()]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        with record_function("raster.binning"):
            # Every centre of every box, enumerated exactly: candidate -> (triangle, dx, dy).
            n_cand = count[lo:hi]
            owner = torch.repeat_interleave(torch.arange(lo, hi, device=pos.device), n_cand)
            start = take_rows(ends[lo:hi] - n_cand, owner - lo)
            local = torch.arange(owner.numel(), device=pos.device) + (ends[lo] - n_cand[0] + 1) - start  # 1.. in its box
            rows = take_rows(table, owner)
            width_t = rows[:, 14].long()
            dy = local // width_t
            dx = local - dy * width_t
            pix = take_rows(first, owner) + dy * width + dx
        with record_function("raster.zbuffer"):
            x, y = rows[:, 12] + dx, rows[:, 13] + dy
            key = _test_candidates(list(rows[:, :12].unbind(1)), x, y, take_rows(tid, owner), None)
            zbuf.scatter_reduce_(0, pix, key, reduce="amin")


@torch.no_grad()
def visible_triangles(
    pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], chunk_elems: int = DEFAULT_CHUNK_ELEMS
) -> torch.Tensor:
    """Z-buffered triangle index per pixel, ``[B, H, W]`` int64, ``-1`` where empty (pass 1).

    Batch items are processed in groups of about ``TRIANGLES_PER_GROUP`` triangles, so the
    per-triangle temporaries stay cache-sized.
    """
    height, width = int(resolution[0]), int(resolution[1])
    corner = tri.long().sort(dim=1).values.T.contiguous()  # [3, F], ascending vertex index per triangle
    zbuf = torch.full((pos.shape[0] * height * width,), _EMPTY, dtype=torch.int64, device=pos.device)
    group = max(1, TRIANGLES_PER_GROUP // max(1, tri.shape[0]))
    for p, z in zip(pos.split(group), zbuf.split(group * height * width), strict=True):
        _scatter_group(z, p, corner, (height, width), chunk_elems)
    with record_function("raster.zbuffer"):
        ids = torch.where(zbuf == _EMPTY, -1, zbuf & 0xFFFFFFFF)
    return ids.view(pos.shape[0], height, width)


def barycentrics_at(
    pos: torch.Tensor, tri: torch.Tensor, tri_id: torch.Tensor, resolution: tuple[int, int]
) -> torch.Tensor:
    """``rast`` of the given triangles: perspective-correct barycentrics and ``z/w`` (pass 2).

    Computed densely over all pixels (empty ones use triangle 0 and are zeroed at the end, with
    their denominators replaced by 1 so no NaN reaches the gradients): on a face image, where
    most pixels are covered, that is cheaper than compacting the covered ones.

    Args:
        pos: ``[B, V, 4]`` clip positions (autograd flows through them).
        tri: ``[F, 3]`` vertex indices.
        tri_id: ``[B, H, W]`` int64 triangle index, ``-1`` where empty.

    Returns:
        ``[B, H, W, 4] = (u, v, z/w, triangle_id + 1)``, zeros where empty.
    """
    height, width = resolution
    covered = tri_id >= 0
    ids = tri_id.clamp(min=0).to(torch.int32)
    offset = (torch.arange(pos.shape[0], device=pos.device, dtype=torch.int32) * pos.shape[1]).view(-1, 1, 1)
    corners = tri.to(torch.int32).T.contiguous()  # [3, F]
    vid = [take_rows(corners[k], ids) + offset for k in range(3)]  # [B, H, W] each
    # Component-major gathers: every x[k], y[k], ... below is a contiguous [B, H, W] tensor.
    comp = pos.reshape(-1, 4).T.contiguous()  # [4, B * V]
    x, y, z, w = ([take_rows(c, v) for v in vid] for c in comp)
    px = (torch.arange(width, device=pos.device, dtype=pos.dtype) * 2 + 1) / width - 1.0  # [W]
    py = ((torch.arange(height, device=pos.device, dtype=pos.dtype) * 2 + 1) / height - 1.0)[:, None]  # [H, 1]

    def lam(a: int, c: int) -> torch.Tensor:
        # (h_a x h_c) . (px, py, 1) with h = (x, y, w): a homogeneous edge function.
        return px * (y[a] * w[c] - w[a] * y[c]) + py * (w[a] * x[c] - x[a] * w[c]) + (x[a] * y[c] - y[a] * x[c])

    l0, l1, l2 = lam(1, 2), lam(2, 0), lam(0, 1)  # proportional to the clip-space barycentrics
    mask = covered.to(pos.dtype)  # 0 zeroes empty pixels; their denominators become 1 (no NaN grads)
    inv_total = mask / torch.where(covered, l0 + l1 + l2, 1.0)
    inv_w = mask / torch.where(covered, l0 * w[0] + l1 * w[1] + l2 * w[2], 1.0)
    zw = (l0 * z[0] + l1 * z[1] + l2 * z[2]) * inv_w
    return torch.stack([l0 * inv_total, l1 * inv_total, zw, (tri_id + 1).to(pos.dtype)], -1)


def rasterize(
    pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], chunk_elems: int = DEFAULT_CHUNK_ELEMS
) -> torch.Tensor:
    """Rasterize triangles (nvdiffrast ``rasterize`` semantics, instanced mode).

    Args:
        pos: ``[B, V, 4]`` float clip-space positions.
        tri: ``[F, 3]`` int32/int64 vertex indices.
        resolution: ``(H, W)``.
        chunk_elems: candidate pixels per step for triangles larger than a pixel (memory bound,
            ~40 bytes each).

    Returns:
        ``rast [B, H, W, 4]`` of ``pos.dtype``: ``(u, v, z/w, triangle_id + 1)``, zeros where empty;
        row 0 is ``y_ndc = -1``. Differentiable w.r.t. ``pos`` through ``(u, v, z/w)``.
    """
    check_shape(pos, ["B", "V", 4], "pos")
    check_shape(tri, ["F", 3], "tri")
    height, width = int(resolution[0]), int(resolution[1])
    tri_id = visible_triangles(pos.detach(), tri, (height, width), chunk_elems)
    with record_function("raster.barycentrics"):
        return barycentrics_at(pos, tri, tri_id, (height, width))
