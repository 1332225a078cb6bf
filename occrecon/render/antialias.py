"""Silhouette antialiasing with analytic gradients (the torch analogue of nvdiffrast ``antialias``).

What it computes, exactly: for every pair of horizontally or vertically adjacent pixels ``P, Q``
whose triangle ids differ, the pixel with the nearer ``z/w`` (background counts as infinitely
far) names the *front* triangle ``T``. The segment from the front pixel's centre to the other
centre leaves ``T`` through one edge at parameter ``t`` in ``[0, 1]`` (found from ``T``'s
screen-space barycentrics, which are affine along the segment). If that edge is a **silhouette
edge** -- a mesh boundary edge, or one whose neighbouring triangle has the opposite screen-space
winding (front/back fold) -- the pair is blended with the 1D box-filter coverage of ``T`` along
the segment:

- ``t < 1/2`` (the edge lies in the front pixel's half): ``c_front += (1/2 - t) (c_other - c_front)``;
- ``t > 1/2`` (the edge reaches into the other pixel): ``c_other += (t - 1/2) (c_front - c_other)``.

Each silhouette edge is handled in **one** direction only, as in nvdiffrast
(``AntialiasFwdAnalysisKernel``: with ``x``/``y`` swapped for vertical pairs it keeps an edge only
when ``|dy| >= |dx|``): horizontal pairs blend edges that are at least as steep as 45 degrees in
pixel units (``|dy| >= |dx|``), vertical pairs the flatter ones (``|dx| > |dy|``, ties go to the
horizontal pairs). Blending a tilted edge in both directions would count its coverage change
twice: the silhouette gradient would be ~2x the derivative of the covered area. With one
direction, the rows (or columns) an edge crosses times the shift of each crossing per unit
normal motion equals the edge length at every angle.

Contributions of all pairs are summed (as nvdiffrast's atomic adds). Colours are blended from
the un-antialiased input, so the result is independent of pair order. ``t`` is computed in
autograd from the clip positions, so gradients reach the silhouette vertices; the colours get
gradients through the blend weights. Interior edges between adjacent, equally wound triangles
are left alone, as in nvdiffrast, because the surface is continuous there; when the segment
leaves ``T`` through such an interior edge, the search continues in the neighbouring triangle
(up to ``MAX_HOPS`` triangles), which finds silhouettes next to vertices that nvdiffrast misses.
"""

from __future__ import annotations

import torch

from occrecon.render.torch_raster import take_rows
from occrecon.utils.checks import check_shape

MAX_HOPS = 16
"""Triangles visited, at most, while looking for the silhouette edge of a pixel pair."""

PREFILTER = True
"""Skip pixel pairs farther than one pixel from every silhouette edge's bounding box before the walk
(:func:`near_silhouette`). Exact: such a pair cannot reach a silhouette edge. ``False`` walks every
pair (the tests compare the two)."""

NEAR_GROW = 1.0 + 1e-3
"""Pixels by which :func:`near_silhouette` grows each silhouette edge's box: one (a pair's centres
lie within one pixel of the crossing point) plus slack for rounding."""

STEEP_TOLERANCE = 1e-4
"""Relative slack of the ``|dy| >= |dx|`` test, so that a 45-degree edge goes to one direction
consistently whatever the rounding of its end points."""


def edge_topology(tri: torch.Tensor) -> torch.Tensor:
    """Neighbour across each triangle edge (nvdiffrast's topology hash, as a table).

    Args:
        tri: ``[F, 3]`` vertex indices.

    Returns:
        ``[F, 3]`` int64: for edge ``k`` (opposite vertex ``k``) the index of the other triangle
        sharing it, or ``-1`` when the edge is a boundary or non-manifold (shared by > 2 faces).
    """
    check_shape(tri, ["F", 3], "tri")
    tri = tri.long()
    a = tri[:, (1, 2, 0)].reshape(-1)
    b = tri[:, (2, 0, 1)].reshape(-1)
    key = torch.minimum(a, b) * (int(tri.max()) + 1) + torch.maximum(a, b)
    key_sorted, order = torch.sort(key, stable=True)
    _, inverse, counts = torch.unique_consecutive(key_sorted, return_inverse=True, return_counts=True)
    pair = (counts[inverse] == 2) & torch.cat(
        [key_sorted[1:] == key_sorted[:-1], key_sorted.new_zeros(1, dtype=torch.bool)]
    )
    first = pair.nonzero().squeeze(1)
    out = torch.full_like(key, -1)
    out[order[first]] = order[first + 1] // 3
    out[order[first + 1]] = order[first] // 3
    return out.view(-1, 3)


def _screen_bary(verts_ndc: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics ``[N, 3]`` of points ``p [N, 2]`` in triangles ``[N, 3, 2]``."""

    def cross(o, a, b):
        return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (b[..., 0] - o[..., 0])

    v0, v1, v2 = verts_ndc.unbind(1)
    area = cross(v0, v1, v2)
    return torch.stack([cross(p, v1, v2), cross(p, v2, v0), cross(p, v0, v1)], -1) / area[:, None]


def _signed_area(ndc: torch.Tensor) -> torch.Tensor:
    v0, v1, v2 = ndc.unbind(-2)
    return (v1[..., 0] - v0[..., 0]) * (v2[..., 1] - v0[..., 1]) - (v2[..., 0] - v0[..., 0]) * (v1[..., 1] - v0[..., 1])


def _centre(flat: torch.Tensor, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """NDC ``[N, 2]`` of the centres of flat pixel indices (rasterizer orientation)."""
    rem = flat % (height * width)
    r, c = rem // width, rem % width
    return torch.stack([(2 * c + 1) / width - 1.0, (2 * r + 1) / height - 1.0], -1).to(dtype)


def _corners(pos: torch.Tensor, tri: torch.Tensor, b: torch.Tensor, t_id: torch.Tensor) -> torch.Tensor:
    """NDC ``[N, 3, 2]`` of triangles ``t_id`` of batch items ``b`` (autograd flows to ``pos``)."""
    vid = take_rows(tri, t_id) + (b * pos.shape[1])[:, None]
    v = take_rows(pos.reshape(-1, 4), vid)
    return v[..., :2] / v[..., 3:4]


def _exit(ndc: torch.Tensor, p_in: torch.Tensor, p_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the segment ``p_in -> p_out`` leaves the triangles ``ndc [N, 3, 2]``: ``t [N]`` (> 1 if
    it does not) and the edge index ``[N]``."""
    l_in, l_out = _screen_bary(ndc, p_in), _screen_bary(ndc, p_out)
    leaving = l_out < 0
    t_k = torch.where(
        leaving, l_in / torch.where(leaving, l_in - l_out, torch.ones_like(l_in)), torch.full_like(l_in, 2.0)
    )
    return t_k.min(-1)


def _steep(ndc: torch.Tensor, edge_k: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[N]`` bool: edge ``edge_k`` (opposite vertex ``k``) of triangles ``ndc [N, 3, 2]`` has
    ``|dy| >= |dx|`` in pixel units (NDC scaled by ``H / 2``, ``W / 2``), up to :data:`STEEP_TOLERANCE`."""
    rows = torch.arange(ndc.shape[0], device=ndc.device)
    d = ndc[rows, (edge_k + 2) % 3] - ndc[rows, (edge_k + 1) % 3]
    # 45-degree ties go to the horizontal pairs even when rounding makes |dy| a few ulps short
    return (d[:, 1] * size[0]).abs() >= (1.0 - STEEP_TOLERANCE) * (d[:, 0] * size[1]).abs()


def near_silhouette(ndc: torch.Tensor, tri: torch.Tensor, nbr: torch.Tensor, winding: torch.Tensor,
                    size: tuple[int, int]) -> torch.Tensor:  # fmt: skip
    """``[B, H, W]`` bool: pixel centres within one pixel of the screen bounding box of a
    silhouette edge (a boundary edge, or one between triangles of opposite winding).

    A pair of adjacent pixels can only blend when the segment between their centres (one pixel
    long) crosses a silhouette edge, so both centres lie in that edge's box grown by one pixel
    (:data:`NEAR_GROW`): pairs with neither centre marked are skipped before the walk, which leaves
    the result unchanged. On a face most differing pairs are interior ones that would otherwise be
    walked.

    Args:
        ndc: ``[B, V, 2]`` vertex NDC ``(x, y)``.
        tri: ``[F, 3]`` int64 vertex indices; ``nbr`` its :func:`edge_topology`.
        winding: ``[B, F]`` sign of each triangle's screen area (NaN for a vertex behind the camera).
        size: ``(H, W)``.
    """
    n_batch = ndc.shape[0]
    height, width = size
    nb_wind = torch.where(nbr >= 0, winding[:, nbr.clamp(min=0)], torch.nan)  # [B, F, 3]
    b, t, k = ((nbr < 0) | (winding[:, :, None] != nb_wind)).nonzero(as_tuple=True)
    flat = ndc.reshape(-1, 2)
    ends = [take_rows(flat, tri[t, (k + s) % 3] + b * ndc.shape[1]) for s in (1, 2)]  # [N, 2] each
    scale = ndc.new_tensor([width / 2, height / 2])
    lo = (torch.minimum(*ends) + 1) * scale - 0.5  # pixel-centre coordinates: pixel j sits at x = j
    hi = (torch.maximum(*ends) + 1) * scale - 0.5
    finite = (lo.isfinite() & hi.isfinite()).all(-1).nonzero().squeeze(1)
    lo = (take_rows(lo, finite) - NEAR_GROW).ceil().clamp(min=0)
    hi = torch.minimum((take_rows(hi, finite) + NEAR_GROW).floor(), ndc.new_tensor([width - 1, height - 1]))
    b = take_rows(b, finite)
    keep = (lo <= hi).all(-1).nonzero().squeeze(1)  # boxes that reach into the image
    (j0, i0), (j1, i1) = take_rows(lo, keep).long().unbind(-1), take_rows(hi, keep).long().unbind(-1)
    b = take_rows(b, keep)
    # Mark every box at once: +1/-1 at its corners of a difference grid, then 2D prefix sums.
    grid = torch.zeros(n_batch, height + 1, width + 1, dtype=torch.int32, device=ndc.device)
    one = torch.ones_like(b, dtype=torch.int32)
    for rows, cols, sign in ((i0, j0, 1), (i0, j1 + 1, -1), (i1 + 1, j0, -1), (i1 + 1, j1 + 1, 1)):
        grid.index_put_((b, rows, cols), one * sign, accumulate=True)
    return grid.cumsum(1).cumsum(2)[:, :height, :width] > 0


def _walk_to_silhouette(pos, tri, flat_nbr, winding, b, t_id, front, other, size, horizontal):
    """Walk each pair's segment (front centre -> other centre) through the front surface.

    Starting in the front pixel's triangle, find the edge where the segment leaves it; stop with a
    hit at a silhouette edge, stop without one when the segment ends inside the triangle, else step
    into the neighbour (interior edge) -- on meshes finer than the pixel grid the segment crosses
    several triangles. Only still-walking pairs are processed at each step. A hit counts only if
    the silhouette edge belongs to this pair direction (``horizontal``: ``|dy| >= |dx|``, else
    ``|dx| > |dy|``; see the module docstring). The walk itself runs without autograd; the crossing
    parameters of the hits are then recomputed once, in autograd, from their triangles (the same
    arithmetic, so the same values).

    Returns:
        ``t [M]`` crossing parameters (autograd to ``pos``) and ``hit [M]``, the pairs they belong to.
    """
    n_tri = tri.shape[0]
    p_in = _centre(front, *size, pos.dtype)
    p_out = _centre(other, *size, pos.dtype)
    active = torch.arange(b.numel(), device=b.device)
    cur = t_id
    hits, hit_tri = [b.new_zeros(0)], [b.new_zeros(0)]
    with torch.no_grad():
        for _ in range(MAX_HOPS):
            if active.numel() == 0:
                break
            bb = take_rows(b, active)
            ndc = _corners(pos.detach(), tri, bb, cur)
            t_hop, edge_k = _exit(ndc, take_rows(p_in, active), take_rows(p_out, active))
            nb = take_rows(flat_nbr, cur * 3 + edge_k)
            nb_wind = take_rows(winding, bb * n_tri + nb.clamp(min=0))
            sil = (nb < 0) | (take_rows(winding, bb * n_tri + cur) != nb_wind)
            leaves = t_hop <= 1.0
            this_direction = _steep(ndc, edge_k, size) == horizontal
            hit = (sil & leaves & this_direction).nonzero().squeeze(1)
            walk = (~sil & leaves).nonzero().squeeze(1)
            hits.append(take_rows(active, hit))
            hit_tri.append(take_rows(cur, hit))
            active, cur = take_rows(active, walk), take_rows(nb, walk)
    hit, tri_hit = torch.cat(hits), torch.cat(hit_tri)
    ndc = _corners(pos, tri, take_rows(b, hit), tri_hit)
    t, _ = _exit(ndc, take_rows(p_in, hit), take_rows(p_out, hit))
    return t, hit


def _pair_deltas(color, rast, pos, tri, nbr, winding, axis, near):
    """Colour deltas of all pairs along ``axis`` (2 = horizontal, 1 = vertical) as (pixel, delta);
    ``near [B, H, W]`` (or None): pixels that may take part (:func:`near_silhouette`)."""
    n_batch, height, width, _ = rast.shape
    ids = rast[..., 3].long() - 1
    z = torch.where(ids >= 0, rast[..., 2].detach(), torch.full_like(rast[..., 2], float("inf"))).reshape(-1)
    n = ids.shape[axis]
    diff = ids.narrow(axis, 0, n - 1) != ids.narrow(axis, 1, n - 1)
    if near is not None:
        diff &= near.narrow(axis, 0, n - 1) | near.narrow(axis, 1, n - 1)
    b, i, j = diff.nonzero(as_tuple=True)
    step = width if axis == 1 else 1
    pa = (b * height + i) * width + j  # flat index of the first pixel; the second is pa + step
    a_front = take_rows(z, pa) <= take_rows(z, pa + step)
    front = torch.where(a_front, pa, pa + step)
    other = torch.where(a_front, pa + step, pa)
    t_id = take_rows(ids.reshape(-1), front)
    t_other = take_rows(ids.reshape(-1), other)
    n_tri = tri.shape[0]
    # Pairs showing two edge-adjacent triangles of equal winding lie on one continuous surface:
    # no silhouette between them (the bulk of all pairs on a dense mesh); drop them up front.
    row = take_rows(nbr, t_id.clamp(min=0))
    adjacent = (row == t_other[:, None]).any(-1) & (t_other >= 0)
    same_wind = take_rows(winding, b * n_tri + t_id) == take_rows(winding, b * n_tri + t_other.clamp(min=0))
    cand = (~(adjacent & same_wind)).nonzero().squeeze(1)
    b, front, other, t_id = (take_rows(x, cand) for x in (b, front, other, t_id))
    t, hit = _walk_to_silhouette(
        pos, tri, nbr.reshape(-1), winding, b, t_id, front, other, (height, width), horizontal=axis == 2
    )
    front, other = take_rows(front, hit), take_rows(other, hit)
    flat_color = color.reshape(-1, color.shape[-1])
    c_front, c_other = take_rows(flat_color, front), take_rows(flat_color, other)
    w_front = (0.5 - t).clamp(min=0)[:, None]
    w_other = (t - 0.5).clamp(min=0)[:, None]
    pix = torch.cat([front, other])
    delta = torch.cat([w_front * (c_other - c_front), w_other * (c_front - c_other)])
    return pix, delta


def antialias(
    color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor, topology: torch.Tensor | None = None
) -> torch.Tensor:
    """Blend colours across silhouette edges so that pixel coverage depends smoothly on geometry.

    Args:
        color: ``[B, H, W, C]`` shaded image in rasterizer orientation.
        rast: ``[B, H, W, 4]`` from ``rasterize`` with the same ``pos``/``tri``.
        pos: ``[B, V, 4]`` clip positions (gradients flow back to them).
        tri: ``[F, 3]`` vertex indices.
        topology: optional precomputed :func:`edge_topology` of ``tri`` (reuse it across calls).

    Returns:
        ``[B, H, W, C]`` antialiased colour (see the module docstring for the exact rule).
    """
    check_shape(color, [rast.shape[0], rast.shape[1], rast.shape[2], "C"], "color")
    check_shape(pos, [rast.shape[0], "V", 4], "pos")
    tri = tri.long()
    nbr = edge_topology(tri) if topology is None else topology.to(tri.device)
    with torch.no_grad():
        ndc = pos[..., :2] / pos[..., 3:4]
        winding = torch.sign(_signed_area(ndc[:, tri]))  # [B, F]
        near = near_silhouette(ndc, tri, nbr, winding, tuple(rast.shape[1:3])) if PREFILTER else None
        winding = winding.reshape(-1)  # [B * F]
    out = color.reshape(-1, color.shape[-1])
    for axis in (1, 2):
        pix, delta = _pair_deltas(color, rast, pos, tri, nbr, winding, axis, near)
        out = out.index_add(0, pix, delta)
    return out.view_as(color)
