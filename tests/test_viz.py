"""Visualisation helpers produce images of the right size and colours."""

import numpy as np
import torch

from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.viz import (
    LABEL_PALETTE,
    colorize_labels,
    colorize_scalar,
    draw_landmarks,
    grid,
    image_to_uint8,
    save_titled_grid,
)


def test_palette_has_one_distinct_colour_per_class():
    assert len(LABEL_PALETTE) == len(CELEBAMASK_CLASSES)
    assert len({tuple(c) for c in LABEL_PALETTE}) == len(LABEL_PALETTE)


def test_colorize_and_convert():
    labels = np.array([[0, 3], [18, 1]])
    rgb = colorize_labels(labels)
    assert (rgb[0, 1] == LABEL_PALETTE[3]).all() and (rgb[0, 0] == 0).all()
    chw = torch.zeros(3, 4, 5)
    chw[0] = 1.0
    img = image_to_uint8(chw)
    assert img.shape == (4, 5, 3) and (img[..., 0] == 255).all() and (img[..., 1] == 0).all()
    depth = colorize_scalar(np.array([[1.0, 2.0], [3.0, 4.0]]), mask=np.array([[1, 1], [1, 0]]))
    assert (depth[1, 1] == 0).all() and not (depth[0, 0] == depth[1, 0]).all()


def test_landmarks_drawn_where_they_are():
    image = np.zeros((20, 20, 3), np.uint8)
    out = draw_landmarks(image, np.array([[5.5, 14.5]]), np.array([True]))
    assert out[14, 5, 1] > 200 and out[3, 3].sum() == 0


def test_grid_and_titled_png(tmp_path):
    tile = np.zeros((8, 8, 3), np.uint8)
    tiled = grid([[tile, tile, tile], [tile]], pad=2)
    assert tiled.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    path = save_titled_grid(tmp_path / "g.png", [[tile, tile]], ["a", "b"])
    assert path.stat().st_size > 0
