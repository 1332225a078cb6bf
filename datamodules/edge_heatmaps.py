"""Edge-line heatmaps of one sample, drawn on the CPU by the data loader (windowed, numpy float32).

The values are those of :func:`occrecon.landmarks.edge_line_heatmaps` (the definition, see there:
``M_i(p) = exp(-D_i(p)^2 / (2 sigma^2))``, 0 where ``D_i >= 3 sigma``, ``D_i`` the distance of the
pixel centre ``p`` to polyline ``i``); ``tests/test_loader_speedups.py`` compares the two. That
function measures every pixel against every segment of a 13 x 16 padded segment table, which
costs ~15 ms per 64 x 64 sample on one core. A loader worker draws one sample at a time, so here
each line only visits the pixels of its bounding box grown by ``3 sigma`` (every pixel outside it
is at least ``3 sigma`` from the line, hence 0) and only its own segments.
"""

from __future__ import annotations

import math

import numpy as np

from occrecon.landmarks import EDGE_LINES_68


def edge_line_heatmaps_np(
    landmarks: np.ndarray,
    size: tuple[int, int],
    sigma: float = 1.0,
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
) -> np.ndarray:
    """``[L, H, W]`` float32 edge-line heatmaps of ``landmarks`` ``[N, 2]`` (heatmap pixels ``(x, y)``).

    Same arguments and values as :func:`occrecon.landmarks.edge_line_heatmaps` for one sample
    (a single-point line is a disc around the point).
    """
    height, width = size
    points = np.asarray(landmarks, dtype=np.float32)
    out = np.zeros((len(lines), height, width), np.float32)
    reach = 3.0 * sigma
    for channel, line in enumerate(lines):
        pts = points[list(line)]
        if not np.isfinite(pts).all():
            continue  # non-finite points (the readers reject them) draw nothing
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        # pixel centres j + 0.5 within [lo - reach, hi + reach]
        x0, x1 = max(math.ceil(lo[0] - reach - 0.5), 0), min(math.floor(hi[0] + reach - 0.5), width - 1)
        y0, y1 = max(math.ceil(lo[1] - reach - 0.5), 0), min(math.floor(hi[1] + reach - 0.5), height - 1)
        if x0 > x1 or y0 > y1:
            continue
        xs = np.arange(x0, x1 + 1, dtype=np.float32) + np.float32(0.5)
        ys = np.arange(y0, y1 + 1, dtype=np.float32) + np.float32(0.5)
        start = pts[:-1] if len(pts) > 1 else pts
        seg = (pts[1:] if len(pts) > 1 else pts) - start  # [S, 2]
        rel_x = xs[None, None, :] - start[:, 0, None, None]  # [S, 1, w]
        rel_y = ys[None, :, None] - start[:, 1, None, None]  # [S, h, 1]
        seg_x, seg_y = seg[:, 0, None, None], seg[:, 1, None, None]
        seg_len2 = np.maximum(seg_x * seg_x + seg_y * seg_y, np.float32(1e-12))
        t = np.clip((rel_x * seg_x + rel_y * seg_y) / seg_len2, 0.0, 1.0)  # projection on the segment
        dx, dy = rel_x - t * seg_x, rel_y - t * seg_y
        distance = np.sqrt((dx * dx + dy * dy).min(axis=0))  # [h, w]
        heat = np.exp(-(distance * distance) / np.float32(2.0 * sigma**2))
        heat[distance >= reach] = 0.0
        out[channel, y0 : y1 + 1, x0 : x1 + 1] = heat
    return out
