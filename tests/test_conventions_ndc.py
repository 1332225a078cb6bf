"""CONVENTIONS.md "3D frames", clip space and "NDC -> pixels": ``x_px = (x_ndc + 1) / 2 * W``,
``y_px = (1 - y_ndc) / 2 * H`` (y_ndc up, the only y flip), near -> z_ndc = -1, far -> +1, and the
rasterizer's bottom-up rows flipped once so that row 0 is the image top.

Checked for both cameras on a non-square image (a swapped H/W shows), with points in every
quadrant, and with a triangle drawn in the upper-left quadrant of NDC."""

from __future__ import annotations

import pytest
import torch

from occrecon.geometry.camera import PerspectiveCamera, ScaledOrthographicCamera
from occrecon.render.mesh_renderer import MeshRenderer

H, W = 48, 64


@pytest.mark.parametrize("camera", [ScaledOrthographicCamera((H, W)), PerspectiveCamera((H, W))], ids=["ortho", "persp"])
def test_pixels_are_the_documented_function_of_ndc(camera) -> None:  # noqa: ANN001
    pose = torch.tensor([[0.1, -0.2, 0.05, 0.1, 0.2, -0.1]])  # some rotation, scale/translation
    model = torch.tensor([[[0.3, 0.4, 0.1], [-0.5, 0.2, -0.3], [0.2, -0.6, 0.4], [-0.1, -0.1, 0.0]]])
    view = camera.view_from_model(model, pose)
    clip = camera.clip_from_view(view, pose)
    ndc = clip[..., :3] / clip[..., 3:]
    pixels = camera.pixels_from_view(view, pose)
    expected = torch.stack([(ndc[..., 0] + 1) / 2 * W, (1 - ndc[..., 1]) / 2 * H], dim=-1)
    torch.testing.assert_close(pixels, expected, atol=1e-4, rtol=1e-5)
    # view space: camera looks down -z, so the points in front have negative z, depth = -z_view
    assert (view[..., 2] < 0).all()


@pytest.mark.parametrize("camera", [ScaledOrthographicCamera((H, W)), PerspectiveCamera((H, W))], ids=["ortho", "persp"])
def test_near_and_far_planes_map_to_minus_and_plus_one(camera) -> None:  # noqa: ANN001
    view = torch.tensor([[[0.0, 0.0, -camera.near], [0.0, 0.0, -camera.far]]])
    clip = camera.clip_from_view(view, torch.zeros(1, 6))
    torch.testing.assert_close(clip[..., 2] / clip[..., 3], torch.tensor([[-1.0, 1.0]]), atol=1e-5, rtol=0)


def test_row_zero_of_the_rendered_image_is_the_top() -> None:
    """A triangle at y_ndc in [0.5, 0.9] (upper part) and x_ndc in [-0.9, -0.5] (left part)."""
    camera = ScaledOrthographicCamera((H, W))
    pose = torch.zeros(1, 6)
    sx = float(camera.scale(pose)[0])
    sy = sx * H / W

    def from_ndc(x: float, y: float) -> list[float]:  # inverse of clip_from_view for this camera
        return [x * W / (2 * sx), y * H / (2 * sy), 0.0]

    verts = torch.tensor([[from_ndc(-0.9, 0.5), from_ndc(-0.5, 0.5), from_ndc(-0.9, 0.9)]])
    out = MeshRenderer("torch", (H, W)).render(
        verts, torch.tensor([[0, 1, 2]]), camera, pose, torch.ones_like(verts),
        torch.tensor([[[0.0, 0.0, 1.0]] * 3]), torch.zeros(1, 9),
    )  # fmt: skip
    rows, cols = torch.nonzero(out.mask[0, 0], as_tuple=True)
    assert len(rows) > 0
    # y_ndc in [0.5, 0.9] -> y_px in [0.05 H, 0.25 H]; x_ndc in [-0.9, -0.5] -> x_px in [0.05 W, 0.25 W]
    assert rows.min() >= int(0.05 * H) and rows.max() < 0.25 * H
    assert cols.min() >= int(0.05 * W) and cols.max() < 0.25 * W
