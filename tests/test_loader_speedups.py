"""The data loader's fast paths give the values of the independent definitions they replace (issue 18)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datamodules.common import edge_lines_for
from datamodules.edge_heatmaps import edge_line_heatmaps_np
from occrecon.landmarks import EDGE_LINES_68, EDGE_LINES_AFLW19, edge_line_heatmaps


def test_edge_heatmap_hand_values() -> None:
    """A horizontal segment (2, 5) -> (10, 5) and a single-point line (disc) at (20.5, 20.5)."""
    points = np.array([[2.0, 5.0], [10.0, 5.0], [20.5, 20.5]], np.float32)
    heat = edge_line_heatmaps_np(points, (32, 32), sigma=1.0, lines=((0, 1), (2,)))
    # pixel (row 6, col 4): centre (4.5, 6.5), 1.5 px below the segment
    assert heat[0, 6, 4] == pytest.approx(math.exp(-(1.5**2) / 2.0), rel=1e-6)
    # pixel (row 4, col 11): centre (11.5, 4.5), nearest point the end (10, 5): d^2 = 2.25 + 0.25
    assert heat[0, 4, 11] == pytest.approx(math.exp(-2.5 / 2.0), rel=1e-6)
    assert heat[0, 8, 5] == 0.0  # centre (5.5, 8.5): d = 3.5 >= 3 sigma
    assert heat[0, 7, 5] == pytest.approx(math.exp(-(2.5**2) / 2.0), rel=1e-6)  # d = 2.5 < 3 sigma
    assert heat[1, 20, 20] == pytest.approx(1.0)  # the disc's centre pixel
    assert heat[1, 20, 22] == pytest.approx(math.exp(-4.0 / 2.0), rel=1e-6)  # 2 px right of it
    assert heat[1, :, :17].max() == 0.0 and heat[0, 12:].max() == 0.0


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
@pytest.mark.parametrize("layout", ["68", "aflw19"])
def test_edge_heatmaps_match_the_batched_definition(sigma: float, layout: str) -> None:
    """Random landmarks, partly outside the frame, some repeated (zero-length segments)."""
    rng = np.random.default_rng(int(sigma * 10) + len(layout))
    lines, count = (EDGE_LINES_68, 68) if layout == "68" else (EDGE_LINES_AFLW19, 19)
    for trial in range(10):
        points = rng.uniform(-8.0, 56.0, size=(count, 2)).astype(np.float32)
        points[5] = points[6]
        if trial == 0:
            points += 200.0  # every line outside the frame
        size = (48, 40)
        reference = edge_line_heatmaps(torch.from_numpy(points)[None], size, sigma, lines)[0].numpy()
        fast = edge_line_heatmaps_np(points, size, sigma, lines)
        assert fast.dtype == np.float32 and fast.shape == reference.shape
        np.testing.assert_allclose(fast, reference, atol=2e-6)
        assert ((fast == 0) == (reference == 0)).mean() > 0.999  # the 3 sigma cut-off: same support


def test_edge_lines_for_scales_to_the_heatmap() -> None:
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.uniform(20.0, 200.0, size=(68, 2)).astype(np.float32))
    reference = edge_line_heatmaps(points[None] * (64 / 224), (64, 64), 1.0)[0]
    torch.testing.assert_close(edge_lines_for(points, 224, 64, 1.0), reference, atol=2e-6, rtol=0)
