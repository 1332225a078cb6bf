"""Picture grids of synthetic samples (docs, the demo report): one row per sample.

Columns (:data:`PREVIEW_COLUMNS`): ``I_in``, ``I_gt``, parsing with and without occluders,
occluder map, landmarks (green visible, red self-occluded) and edge lines on ``I_in``, coarse
depth ``d``, bump map ``Phi`` (contrast-stretched), normal map.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from occrecon.synth.reader import SyntheticDataset
from occrecon.viz import colorize_labels, colorize_scalar, draw_landmarks, overlay_heatmaps, save_titled_grid

PREVIEW_COLUMNS: tuple[str, ...] = (
    "I_in", "I_gt", "parsing_in", "parsing_gt", "occluders", "landmarks + edge lines", "depth d", "bump Phi", "normals",
)  # fmt: skip
_OCCLUDER_COLOURS = np.array([(0, 0, 0), (255, 60, 60), (255, 200, 60), (60, 200, 255), (160, 90, 40)], np.uint8)


def preview_row(sample: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The :data:`PREVIEW_COLUMNS` tiles (``[H, W, 3]`` uint8 each) of one stored sample."""
    face = sample["depth_coarse"] > 0
    lines = overlay_heatmaps(sample["I_in"], sample["edge_lines"].astype(np.float32) / 255.0)
    bump = sample["bump"].astype(np.float64) - 128.0
    normals = ((sample["normals"].astype(np.float32) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return [
        sample["I_in"],
        sample["I_gt"],
        colorize_labels(sample["parsing_in"]),
        colorize_labels(sample["parsing_gt"]),
        _OCCLUDER_COLOURS[np.clip(sample["occluders"], 0, len(_OCCLUDER_COLOURS) - 1)],
        draw_landmarks(
            lines, sample["landmarks"], sample["landmark_visible"], radius=max(1.0, sample["I_in"].shape[0] / 128)
        ),
        colorize_scalar(sample["depth_coarse"], face, cmap="magma_r"),
        colorize_scalar(bump, face, vmin=-16, vmax=16, cmap="coolwarm"),
        normals * face[..., None],
    ]


def save_preview(samples: Sequence[Mapping[str, np.ndarray]], path: str | os.PathLike[str], scale: int = 1) -> Path:
    """Write a titled grid PNG of ``samples`` (see :func:`preview_row`)."""
    return save_titled_grid(path, [preview_row(s) for s in samples], PREVIEW_COLUMNS, scale=scale)


def save_dataset_preview(root: str | os.PathLike[str], path: str | os.PathLike[str], count: int = 6) -> Path:
    """Preview the first ``count`` samples of the data set at ``root``."""
    dataset = SyntheticDataset(root)
    return save_preview([dataset[i] for i in range(min(count, len(dataset)))], path)
