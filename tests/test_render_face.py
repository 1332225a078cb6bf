"""render_face: coefficient pose groups drive the right camera parameters (paper and Deep3D layouts)."""

import pytest
import torch

from occrecon.facemodel import factory
from occrecon.geometry.camera import PerspectiveCamera, ScaledOrthographicCamera
from occrecon.render.face import camera_for_layout, render_face
from occrecon.render.mesh_renderer import MeshRenderer


@pytest.fixture(scope="module")
def model():
    return factory.load_face_model("procedural")


def test_paper_layout_translation_and_scale_in_pixels(model):
    layout = model.layout("paper")
    renderer = MeshRenderer("torch", 48, antialias=False)
    y = layout.zeros(3)
    pose = layout.slices["pose"]
    y[1, pose] = torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0, -2.0])  # t_2d = (3, -2) px
    y[2, pose] = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.0, 0.0])  # f = 0.5 -> 1.5x larger
    out = render_face(model, y, renderer)
    lm0, lm1, lm2 = out.landmarks
    torch.testing.assert_close(lm1 - lm0, torch.tensor([3.0, -2.0]).expand_as(lm0))
    centre = torch.tensor([24.0, 24.0])
    torch.testing.assert_close(lm2 - centre, 1.5 * (lm0 - centre), atol=1e-4, rtol=1e-4)
    assert out.labels.shape == (3, 48, 48) and out.landmark_visible[0].sum() > 40


def test_deep3d_layout_uses_perspective_camera_and_translation(model):
    layout = model.layout("deep3d")
    renderer = MeshRenderer("torch", 48, antialias=False)
    y = layout.zeros(2)
    y[1, layout.slices["trans"]] = torch.tensor([0.0, 0.0, 2.0])  # 2 units closer to the camera
    out = render_face(model, y, renderer)
    spread = [(lm - lm.mean(0)).norm(dim=-1).mean() for lm in out.landmarks]
    # Landmarks lie near z ~ 0.3..1 in model units: the magnification ratio is about 9.x / 7.x.
    assert 1.2 < (spread[1] / spread[0]).item() < 1.35
    assert isinstance(camera_for_layout("deep3d", 48), PerspectiveCamera)
    assert isinstance(camera_for_layout("paper", 48), ScaledOrthographicCamera)
