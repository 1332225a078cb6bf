"""Edge-line heatmaps of one sample, drawn on the CPU by the data loader (windowed, numpy float32).

The values are those of :func:`occrecon.landmarks.edge_line_heatmaps` (the definition, see there:
``M_i(p) = exp(-D_i(p)^2 / (2 sigma^2))``, 0 where ``D_i >= 3 sigma``, ``D_i`` the distance of the
pixel centre ``p`` to polyline ``i``); ``tests/test_loader_speedups.py`` compares the two. That
function measures every pixel against every segment of a 13 x 16 padded segment table, which
costs ~15 ms per 64 x 64 sample on one core. A loader worker draws one sample at a time, so here
each segment only visits the pixels of its bounding box grown by ``3 sigma`` (every pixel outside
it is at least ``3 sigma`` from the segment), all segments at once in one ``[S, k, k]`` array
(``k`` the largest such box, clipped to the image; ~0.15 ms per sample). A line's value at a
pixel is the largest of its segments' values there: ``exp`` falls with the distance, so that is
the value at the nearest segment, ``exp(-min_s D_s^2 / (2 sigma^2))``.

:func:`edge_lines_for` is the ``edge_lines`` entry of a sample (``datamodules.common``): the
heatmaps of its landmarks at ``heatmap_size``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from occrecon.landmarks import EDGE_LINES_68, EDGE_LINES_AFLW19, NUM_LANDMARKS_AFLW19


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
    """``[L, H, W]`` float32 edge-line heatmaps of ``landmarks`` ``[N, 2]`` (heatmap pixels ``(x, y)``).

    Same arguments and values as :func:`occrecon.landmarks.edge_line_heatmaps` for one sample
    (a single-point line is a disc around the point). Segments with a non-finite end point
    (the readers reject those) draw nothing.
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


def edge_lines_for(landmarks: torch.Tensor, image_size: int, heatmap_size: int, sigma: float) -> torch.Tensor:
    """``[13, h, w]`` edge-line heatmaps for ``[N, 2]`` landmarks given in ``image_size`` pixels.

    68 points use the LAB lines; 19 points the AFLW-19 grouping of ``occrecon.landmarks``.
    """
    lines = EDGE_LINES_AFLW19 if landmarks.shape[0] == NUM_LANDMARKS_AFLW19 else EDGE_LINES_68
    scaled = landmarks.detach().float().cpu().numpy() * (heatmap_size / image_size)
    return torch.from_numpy(edge_line_heatmaps_np(scaled, (heatmap_size, heatmap_size), sigma=sigma, lines=lines))
