"""Facial landmark layouts and the face edge lines derived from them (paper §3.2).

Layouts: iBUG 68 points (300W, 0-based, image-side convention: points 36-41 are the eye on the
**image's** left) and AFLW-19 (``AFLWinfo_release.mat`` order).

Edge lines: the 13 boundaries of LAB (Wu et al., CVPR 2018) on the 68-point layout, in the order
``chin, l_brow, r_brow, nose_bridge, nose_bottom, l_eye_upper, l_eye_lower, r_eye_upper,
r_eye_lower, upper_lip_outer, upper_lip_inner, lower_lip_inner, lower_lip_outer`` (``l``/``r`` =
image side). A heatmap channel is ``M_i(p) = exp(-D_i(p)^2 / (2 sigma^2))`` where ``D_i(p)`` is
the distance of pixel centre ``p`` to the polyline through the boundary's points, and 0 where
``D_i >= 3 sigma`` (the formula of LAB). One definition serves the synthetic generator, the data
modules and the edge-lines stage.

Coordinates are continuous pixel coordinates ``(x, y)``, origin at the top-left image corner,
pixel ``(row i, col j)`` centred at ``(j + 0.5, i + 0.5)`` (see ``CONVENTIONS.md``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from occrecon.utils.checks import check_shape

NUM_LANDMARKS_68 = 68
NUM_LANDMARKS_AFLW19 = 19

FLIP_68: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nose bottom
    45, 44, 43, 42, 47, 46,  # image-left eye -> image-right eye
    39, 38, 37, 36, 41, 40,  # image-right eye -> image-left eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)  # fmt: skip
"""``FLIP_68[i]``: index of the point that lands where point ``i`` was after a horizontal flip."""

FLIP_AFLW19: tuple[int, ...] = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 14, 13, 12, 17, 16, 15, 18)
"""Horizontal-flip permutation of the AFLW-19 layout (brows 0-5, eyes 6-11, nose 12-14,
mouth 15-17, chin 18)."""

EDGE_LINE_NAMES: tuple[str, ...] = (
    "chin", "l_brow", "r_brow", "nose_bridge", "nose_bottom", "l_eye_upper", "l_eye_lower",
    "r_eye_upper", "r_eye_lower", "upper_lip_outer", "upper_lip_inner", "lower_lip_inner", "lower_lip_outer",
)  # fmt: skip
NUM_EDGE_LINES = len(EDGE_LINE_NAMES)

EDGE_LINES_68: tuple[tuple[int, ...], ...] = (
    tuple(range(0, 17)),
    tuple(range(17, 22)),
    tuple(range(22, 27)),
    tuple(range(27, 31)),
    tuple(range(31, 36)),
    (36, 37, 38, 39),
    (36, 41, 40, 39),
    (42, 43, 44, 45),
    (42, 47, 46, 45),
    tuple(range(48, 55)),
    tuple(range(60, 65)),
    (60, 67, 66, 65, 64),
    (48, 59, 58, 57, 56, 55, 54),
)
"""Point indices (68 layout) of each edge line, polylines in drawing order."""

EDGE_LINES_AFLW19: tuple[tuple[int, ...], ...] = (
    (18,),  # chin: AFLW-19 has one chin point, drawn as a disc
    (0, 1, 2),
    (3, 4, 5),
    (12, 13, 14),  # AFLW-19 has no nose bridge; its three nose points stand for both nose lines
    (12, 13, 14),
    (6, 7, 8),  # each eye has corner, centre, corner: upper and lower lid share them
    (6, 7, 8),
    (9, 10, 11),
    (9, 10, 11),
    (15, 16, 17),  # mouth corners + centre stand for all four lip lines
    (15, 16, 17),
    (15, 16, 17),
    (15, 16, 17),
)
"""AFLW-19 edge-line grouping (documented choice; no authoritative definition exists)."""

FIVE_POINTS_FROM_68: tuple[tuple[int, ...], ...] = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))
"""The 5 alignment points (image-left eye centre, image-right eye centre, nose tip, left and
right mouth corner) as means of 68-layout points."""


def five_points(landmarks68: torch.Tensor) -> torch.Tensor:
    """Reduce 68 landmarks to the 5 alignment points.

    Args:
        landmarks68: ``[*, 68, 2]`` pixel coordinates.

    Returns:
        ``[*, 5, 2]`` eye centres, nose tip, mouth corners.
    """
    check_shape(landmarks68, ["*", NUM_LANDMARKS_68, 2], "landmarks68")
    return torch.stack([landmarks68[..., list(group), :].mean(dim=-2) for group in FIVE_POINTS_FROM_68], dim=-2)


def _line_segments(points: torch.Tensor, lines: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather polyline segments: returns starts/ends ``[B, L, S, 2]`` and a validity mask ``[L, S]``."""
    max_segments = max(max(len(line) - 1, 1) for line in lines)
    start_idx = torch.zeros(len(lines), max_segments, dtype=torch.long)
    end_idx = torch.zeros(len(lines), max_segments, dtype=torch.long)
    valid = torch.zeros(len(lines), max_segments, dtype=torch.bool)
    for i, line in enumerate(lines):
        if len(line) == 1:  # a single point is a degenerate segment: a disc
            start_idx[i, 0] = end_idx[i, 0] = line[0]
            valid[i, 0] = True
            continue
        for s in range(len(line) - 1):
            start_idx[i, s], end_idx[i, s], valid[i, s] = line[s], line[s + 1], True
    return points[:, start_idx], points[:, end_idx], valid.to(points.device)


def distance_to_lines(
    landmarks: torch.Tensor,
    size: tuple[int, int],
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
) -> torch.Tensor:
    """Distance of every pixel centre to each edge-line polyline.

    Args:
        landmarks: ``[B, N, 2]`` pixel coordinates ``(x, y)``.
        size: output ``(H, W)``.
        lines: point indices of each polyline (default: the 13 LAB lines on 68 points).

    Returns:
        ``[B, L, H, W]`` Euclidean distances in pixels.
    """
    check_shape(landmarks, ["B", "N", 2], "landmarks")
    height, width = size
    start, end, valid = _line_segments(landmarks, lines)  # [B, L, S, 2] x2, [L, S]
    ys = torch.arange(height, device=landmarks.device, dtype=landmarks.dtype) + 0.5
    xs = torch.arange(width, device=landmarks.device, dtype=landmarks.dtype) + 0.5
    pixels = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(1, 1, 1, -1, 2)  # [1,1,1,P,2]
    seg = (end - start).unsqueeze(3)  # [B, L, S, 1, 2]
    rel = pixels - start.unsqueeze(3)  # [B, L, S, P, 2]
    seg_len2 = (seg * seg).sum(-1).clamp_min(1e-12)
    t = ((rel * seg).sum(-1) / seg_len2).clamp(0.0, 1.0)  # projection parameter on the segment
    dist2 = ((rel - t.unsqueeze(-1) * seg) ** 2).sum(-1)  # [B, L, S, P]
    dist2 = dist2.masked_fill(~valid[None, :, :, None], float("inf"))
    return dist2.min(dim=2).values.sqrt().reshape(landmarks.shape[0], len(lines), height, width)


def edge_line_heatmaps(
    landmarks: torch.Tensor,
    size: tuple[int, int],
    sigma: float = 1.0,
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
) -> torch.Tensor:
    """Render face edge-line heatmaps ``M_i = exp(-D_i^2 / (2 sigma^2))``, cut to 0 at ``D_i >= 3 sigma``.

    Args:
        landmarks: ``[B, N, 2]`` pixel coordinates ``(x, y)`` in the heatmap's own pixel grid
            (scale them first when the heatmap is smaller than the image).
        size: heatmap ``(H, W)``.
        sigma: Gaussian width in heatmap pixels.
        lines: point indices of each polyline.

    Returns:
        ``[B, L, H, W]`` heatmaps in ``[0, 1]``, 1 on the lines.

    Example:
        >>> lm = torch.zeros(1, 68, 2) + 8.0
        >>> edge_line_heatmaps(lm, (16, 16)).shape
        torch.Size([1, 13, 16, 16])
    """
    distance = distance_to_lines(landmarks, size, lines)
    heat = torch.exp(-(distance**2) / (2.0 * sigma**2))
    return heat.masked_fill(distance >= 3.0 * sigma, 0.0)


@lru_cache(maxsize=8)
def _segment_table(lines: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start point, end point and line of every polyline segment (a one-point line: one zero-length segment)."""
    rows = []
    for i, line in enumerate(lines):
        pairs = list(zip(line[:-1], line[1:], strict=True)) or [(line[0], line[0])]
        rows += [(a, b, i) for a, b in pairs]
    start, end, owner = np.array(rows, dtype=np.int64).T
    return start, end, owner


def edge_line_heatmaps_np(
    landmarks: np.ndarray,
    size: tuple[int, int],
    sigma: float = 1.0,
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
) -> np.ndarray:
    """``[L, H, W]`` float32 edge-line heatmaps of one sample's ``landmarks`` ``[N, 2]`` (heatmap
    pixels ``(x, y)``), on the CPU: what a data-loader worker draws per sample.

    Same arguments and values as :func:`edge_line_heatmaps` (a single-point line is a disc around
    the point), computed differently: that one measures every pixel against every segment (~15 ms
    per 64 x 64 sample on one core); here each segment only visits the pixels of its bounding box
    grown by ``3 sigma`` (every pixel outside is at least ``3 sigma`` away), all segments at once in
    one ``[S, k, k]`` array (~0.15 ms). A line's value is the largest of its segments' values: the
    nearest segment's. Segments with a non-finite end point (the readers reject those) draw nothing.
    """
    height, width = size
    out = np.zeros(len(lines) * height * width, np.float32)
    start_idx, end_idx, owner = _segment_table(tuple(tuple(line) for line in lines))
    points = np.asarray(landmarks, dtype=np.float32)
    start, end = points[start_idx], points[end_idx]  # [S, 2]
    finite = np.isfinite(start).all(axis=1) & np.isfinite(end).all(axis=1)
    start, end, owner = start[finite], end[finite], owner[finite]
    reach = 3.0 * sigma
    # pixel centres j + 0.5 within [min - reach, max + reach] of each segment, clipped to the image
    first = np.maximum(np.ceil(np.minimum(start, end) - reach - 0.5), 0).astype(np.int64)  # [S, 2] (x, y)
    last = np.minimum(np.floor(np.maximum(start, end) + reach - 0.5), [width - 1, height - 1]).astype(np.int64)
    if len(owner) == 0 or (last < first).any(axis=1).all():
        return out.reshape(len(lines), height, width)
    k = int((last - first).max()) + 1
    cols = first[:, 0, None] + np.arange(k)  # [S, k]
    rows = first[:, 1, None] + np.arange(k)
    rel_x = (cols.astype(np.float32) + np.float32(0.5))[:, None, :] - start[:, 0, None, None]  # [S, 1, k]
    rel_y = (rows.astype(np.float32) + np.float32(0.5))[:, :, None] - start[:, 1, None, None]  # [S, k, 1]
    seg_x, seg_y = (end - start)[:, 0, None, None], (end - start)[:, 1, None, None]
    seg_len2 = np.maximum(seg_x * seg_x + seg_y * seg_y, np.float32(1e-12))
    t = np.clip((rel_x * seg_x + rel_y * seg_y) / seg_len2, 0.0, 1.0)  # projection on the segment
    dx, dy = rel_x - t * seg_x, rel_y - t * seg_y
    distance = np.sqrt(dx * dx + dy * dy)  # [S, k, k]
    heat = np.exp(-(distance * distance) / np.float32(2.0 * sigma**2))
    keep = (
        (distance < reach) & (cols[:, None, :] <= last[:, 0, None, None]) & (rows[:, :, None] <= last[:, 1, None, None])
    )
    flat = (owner[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]
    np.maximum.at(out, flat[keep], heat[keep])
    return out.reshape(len(lines), height, width)
