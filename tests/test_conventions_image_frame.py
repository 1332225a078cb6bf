"""CONVENTIONS.md "Image coordinates (2D)" and "Tensors": continuous pixel coordinates with the
origin at the top-left corner of the top-left pixel, y down, pixel (i, j) centred at
(j + 0.5, i + 0.5); landmarks (x, y) in that frame; a horizontal flip maps x -> W - x; images
[B, C, H, W].

Pinned with an asymmetric rectangle on a non-square image, whose covered pixels are counted by
hand, and a one-pixel mark followed through the augmentation's flip."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.transforms import FaceAugment
from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.landmarks import FLIP_68
from occrecon.render.mesh_renderer import MeshRenderer

H, W = 12, 16


def render_pixel_rectangle(x0: float, y0: float, x1: float, y1: float):  # noqa: ANN201 - RenderOutput
    """A flat rectangle facing the camera whose corners project to the pixel points (x0, y0), (x1, y1)."""
    camera = ScaledOrthographicCamera((H, W))
    pose = torch.zeros(1, 6)
    sx = float(camera.scale(pose)[0])
    sy = sx * H / W

    def model(x: float, y: float) -> list[float]:  # the camera's documented inverse: x = W/2 + sx X, y = H/2 - sy Y
        return [(x - W / 2) / sx, (H / 2 - y) / sy, 0.0]

    verts = torch.tensor([[model(x0, y0), model(x1, y0), model(x1, y1), model(x0, y1)]])
    faces = torch.tensor([[0, 3, 2], [0, 2, 1]])  # counter-clockwise seen from +z (the camera)
    ones = torch.ones_like(verts)
    normals = torch.tensor([[[0.0, 0.0, 1.0]] * 4])
    renderer = MeshRenderer("torch", (H, W))
    return renderer.render(verts, faces, camera, pose, ones, normals, torch.zeros(1, 9),
                           landmark_indices=torch.tensor([0, 2]))  # fmt: skip


def test_pixels_covered_are_those_whose_centres_are_inside() -> None:
    # x in [2.2, 5.8]: centres 2.5 .. 5.5 -> columns 2..5; y in [1.2, 3.8]: centres 1.5 .. 3.5 -> rows 1..3
    out = render_pixel_rectangle(2.2, 1.2, 5.8, 3.8)
    assert out.image.shape == (1, 3, H, W) and out.mask.shape == (1, 1, H, W)  # [B, C, H, W]
    expected = torch.zeros(H, W)
    expected[1:4, 2:6] = 1.0  # rows (y) first, row 0 at the top
    torch.testing.assert_close(out.mask[0, 0], expected)


def test_landmarks_are_x_y_in_the_same_frame() -> None:
    out = render_pixel_rectangle(2.2, 1.2, 5.8, 3.8)
    torch.testing.assert_close(out.landmarks[0], torch.tensor([[2.2, 1.2], [5.8, 3.8]]), atol=1e-4, rtol=0)


def test_horizontal_flip_maps_x_to_w_minus_x() -> None:
    size = 16
    image = np.zeros((size, size, 3), np.uint8)
    image[3, 2] = (255, 0, 0)  # pixel row 3, column 2: centre (2.5, 3.5)
    points = np.tile([[8.0, 8.0]], (68, 1))
    points[0] = (2.5, 3.5)
    flip = FaceAugment(flip_prob=1.0, rotate_deg=0, scale_jitter=0, translate=0, colour_jitter=0)
    out, _, moved, _ = flip(image, None, points, np.ones(68, bool), np.random.default_rng(0))
    assert tuple(out[3, size - 1 - 2]) == (255, 0, 0)  # column j -> W - 1 - j
    slot = FLIP_68[0]  # the mirrored point takes its partner's index
    np.testing.assert_allclose(moved[slot], [size - 2.5, 3.5], atol=1e-4)  # x -> W - x, y unchanged
    assert tuple(out[int(moved[slot][1]), int(moved[slot][0])]) == (255, 0, 0)  # still on the mark
