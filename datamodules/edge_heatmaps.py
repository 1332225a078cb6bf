"""The ``edge_lines`` entry of a data-set sample: :func:`edge_lines_for` draws the heatmaps of its
landmarks at ``heatmap_size`` with :func:`occrecon.landmarks.edge_line_heatmaps_np` (the per-sample
CPU form of the definition in :mod:`occrecon.landmarks`)."""

from __future__ import annotations

import torch

from occrecon.landmarks import EDGE_LINES_68, EDGE_LINES_AFLW19, NUM_LANDMARKS_AFLW19, edge_line_heatmaps_np


def edge_lines_for(landmarks: torch.Tensor, image_size: int, heatmap_size: int, sigma: float) -> torch.Tensor:
    """``[13, h, w]`` edge-line heatmaps for ``[N, 2]`` landmarks given in ``image_size`` pixels.

    68 points use the LAB lines; 19 points the AFLW-19 grouping of ``occrecon.landmarks``.
    """
    lines = EDGE_LINES_AFLW19 if landmarks.shape[0] == NUM_LANDMARKS_AFLW19 else EDGE_LINES_68
    scaled = landmarks.detach().float().cpu().numpy() * (heatmap_size / image_size)
    return torch.from_numpy(edge_line_heatmaps_np(scaled, (heatmap_size, heatmap_size), sigma=sigma, lines=lines))
