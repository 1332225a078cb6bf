"""Bump maps of paper Eq. 5 as tensors: decoding ``d' = d + phi^{-1}(Phi)``, detailed normals, grid meshes.

Units and frames (``CONVENTIONS.md``, "Bump maps"): depths ``d``, ``d'`` and offsets are decimetres
along the line of sight (``depth = -z_view``); a bump code ``Phi`` is a real number in ``[0, 255]``.
The storage encoding of the data sets, ``phi(x) = clip(floor(127.5 + x / r * 127.5 + 0.5), 0, 255)``
(``occrecon.synth.details.encode_bump``), is :func:`bump_code` rounded half up; the detail network
predicts real codes, so this module works with the unrounded encoding:

* ``phi(x) = clip(127.5 + 127.5 x / r, 0, 255)`` (:func:`bump_code`) with ``r = bump_range``;
* ``phi^{-1}(c) = (c - 127.5) / 127.5 * r`` (:func:`bump_offset`), the inverse of ``phi`` on
  ``[-r, r]`` and of the rounded storage code within half a quantisation step (``r / 255``);
* ``PHI_ZERO = phi(0) = 127.5``: a bump map equal to it everywhere gives ``d' = d`` exactly
  (the "coarse only" baseline). The rounded storage code of 0 is 128 (``+r / 255``).

Normals: for the scaled orthographic camera of Eq. 7 every line of sight is ``-z_view``, so a depth
offset ``delta = d' - d`` moves a surface point along ``z``; :func:`detailed_normals` tilts the
coarse normal by the offset's image gradient (exact for a depth-map surface, see there).
"""

from __future__ import annotations

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from occrecon.utils.checks import check_shape

PHI_ZERO = 127.5
"""Real bump code of a zero offset (``phi(0)`` before the storage rounding)."""
PHI_SCALE = 127.5
"""Codes per ``bump_range`` of offset."""


def bump_code(offset: torch.Tensor, bump_range: float) -> torch.Tensor:
    """``phi``: offsets ``d' - d`` ``[*]`` (decimetres) -> real codes ``[*]`` in ``[0, 255]`` (clipped)."""
    return (PHI_ZERO + offset / bump_range * PHI_SCALE).clamp(0.0, 255.0)


def bump_offset(code: torch.Tensor, bump_range: float) -> torch.Tensor:
    """``phi^{-1}``: codes ``[*]`` (real or integer, ``[0, 255]``) -> offsets ``d' - d`` ``[*]`` in decimetres.

    Differentiable; ``bump_offset(PHI_ZERO) == 0`` exactly.
    """
    return (code.to(torch.get_default_dtype() if not code.is_floating_point() else code.dtype) - PHI_ZERO) * (
        bump_range / PHI_SCALE
    )


def detailed_depth(
    depth: torch.Tensor, code: torch.Tensor, bump_range: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Paper Eq. 5: ``d'(b) = d(b) + phi^{-1}(Phi(b))`` on the face, ``d'`` = ``d`` elsewhere.

    Args:
        depth: ``[B, 1, H, W]`` coarse depth ``d`` (decimetres, ``-z_view``; 0 off the face).
        code: ``[B, 1, H, W]`` bump map ``Phi`` (codes in ``[0, 255]``).
        bump_range: offset of code 255 (decimetres; the data set's manifest).
        mask: optional ``[B, 1, H, W]`` face mask; outside it ``d'`` is ``d``.

    Returns:
        ``[B, 1, H, W]`` detailed depth ``d'`` (decimetres).
    """
    check_shape(depth, ["B", 1, "H", "W"], "depth")
    check_shape(code, list(depth.shape), "code")
    offset = bump_offset(code, bump_range)
    if mask is not None:
        offset = offset * mask
    return depth + offset


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of ``[B, C, H, W]`` along columns and rows (kornia ``spatial_gradient``,
    ``diff`` mode: ``(x[j+1] - x[j-1]) / 2``, replicated borders). Returns ``(d/dcol, d/drow)``."""
    grad = kornia.filters.spatial_gradient(x, mode="diff", order=1, normalized=True)
    return grad[:, :, 0], grad[:, :, 1]


def detailed_normals(
    coarse_normals: torch.Tensor, offset: torch.Tensor, px_per_unit: torch.Tensor | float, min_nz: float = 0.2
) -> torch.Tensor:
    """Unit view-space normals of the detailed surface ``d' = d + offset`` (orthographic lines of sight).

    The surface ``z(x, y) = -d'`` has the (unnormalised) normal ``(-z_x, -z_y, 1)``; with
    ``z = z_c - offset`` this is ``n_c / n_c.z + (offset_x, offset_y, 0)`` where ``n_c`` is the
    coarse normal and ``offset_x = s * d offset / d col``, ``offset_y = -s * d offset / d row``
    (``s`` pixels per model unit, image rows go down while ``y`` goes up). ``n_c.z`` is clamped
    to ``min_nz`` at grazing angles. A zero offset returns ``n_c`` (renormalised).

    Args:
        coarse_normals: ``[B, 3, H, W]`` unit view-space normals of the coarse surface (``+z`` to the camera).
        offset: ``[B, 1, H, W]`` ``d' - d`` in decimetres (0 off the face).
        px_per_unit: pixels per decimetre, a float or ``[B]``.
        min_nz: lower bound of ``n_c.z``.

    Returns:
        ``[B, 3, H, W]`` unit normals (zero where ``coarse_normals`` is zero).
    """
    check_shape(coarse_normals, ["B", 3, "H", "W"], "coarse_normals")
    check_shape(offset, ["B", 1, *coarse_normals.shape[2:]], "offset")
    scale = torch.as_tensor(px_per_unit, dtype=offset.dtype, device=offset.device).reshape(-1, 1, 1, 1)
    d_col, d_row = image_gradients(offset)
    nz = coarse_normals[:, 2:3].clamp_min(min_nz)
    tilt = torch.cat([scale * d_col, -scale * d_row, torch.zeros_like(d_col)], 1)
    valid = (coarse_normals.abs().sum(1, keepdim=True) > 0).to(offset.dtype)
    return F.normalize(coarse_normals / nz + tilt * valid, dim=1, eps=1e-12) * valid


def angular_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between unit vector fields ``[B, 3, H, W]`` -> ``[B, 1, H, W]``."""
    cos = (F.normalize(a, dim=1, eps=1e-12) * F.normalize(b, dim=1, eps=1e-12)).sum(1, keepdim=True)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def grid_mesh(
    depth: torch.Tensor,
    mask: torch.Tensor,
    px_per_unit: float,
    colors: torch.Tensor | None = None,
    max_step: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A triangle mesh over the face region of one depth map: one vertex per covered pixel.

    Vertex of pixel ``(row i, col j)``: ``x = (j + 0.5 - W / 2) / s``, ``y = -(i + 0.5 - H / 2) / s``,
    ``z = -depth`` (view space of the orthographic camera, decimetres, ``+z`` to the camera, the
    image centre on the ``z`` axis). Each 2x2 block of covered pixels gives two triangles
    (counter-clockwise seen from the camera) unless its depths differ by more than ``max_step``
    (a self-occlusion edge).

    Args:
        depth: ``[H, W]`` depth (``d`` or ``d'``), decimetres.
        mask: ``[H, W]`` face mask.
        px_per_unit: pixels per decimetre ``s`` of the camera.
        colors: optional ``[3, H, W]`` RGB in ``[0, 1]`` (per-vertex colours).
        max_step: largest depth difference inside a triangle, decimetres.

    Returns:
        ``vertices [V, 3]`` float64, ``triangles [F, 3]`` int64, ``colors [V, 3]`` or None.
    """
    check_shape(depth, ["H", "W"], "depth")
    check_shape(mask, list(depth.shape), "mask")
    d = depth.detach().double().cpu().numpy()
    m = mask.detach().cpu().numpy() > 0.5
    h, w = d.shape
    index = np.full((h, w), -1, dtype=np.int64)
    rows, cols = np.nonzero(m)
    index[rows, cols] = np.arange(len(rows))
    verts = np.stack([(cols + 0.5 - w / 2) / px_per_unit, -(rows + 0.5 - h / 2) / px_per_unit, -d[rows, cols]], 1)
    a, b, c, e = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]  # top-left, top-right, bottom-left, bottom-right
    quad = np.stack([d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]])
    smooth = (quad.max(0) - quad.min(0)) <= max_step
    tris = []
    # rows go down and y up, so (top-left, bottom-left, top-right) is counter-clockwise seen from +z
    for corners in ((a, c, b), (b, c, e)):
        ok = smooth & np.all([k >= 0 for k in corners], axis=0)
        tris.append(np.stack([k[ok] for k in corners], 1))
    triangles = np.concatenate(tris, 0) if tris else np.zeros((0, 3), np.int64)
    rgb = None
    if colors is not None:
        check_shape(colors, [3, h, w], "colors")
        rgb = colors.detach().double().cpu().numpy()[:, rows, cols].T.clip(0.0, 1.0)
    return verts, triangles, rgb
