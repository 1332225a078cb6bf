"""CONVENTIONS.md "3D frames": model space right-handed, +x to the image right of a frontal face,
+y up, +z out of the face towards the camera, unit decimetre (``mm_per_unit = 100``); view space
looks down -z; depth = -z_view (smaller = closer); positive yaw turns the face towards the image
right; ``X_view = R X_model + t`` with ``R = Rz(roll) Ry(yaw) Rx(pitch)``.

Pinned on the mean faces (procedural; SFM where available) and on hand-rotated points."""

from __future__ import annotations

import math

import pytest
import torch

from occrecon.facemodel import load_face_model
from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.render.face import render_face
from occrecon.render.mesh_renderer import MeshRenderer
from tests.fixtures_facemodel import face_model_params

SIZE = 64
MODELS = face_model_params()


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest):  # noqa: ANN201 - MorphableModel
    return load_face_model(*request.param)


def mean_landmarks(model) -> torch.Tensor:  # noqa: ANN001
    """``[68, 3]`` model-space landmarks of the mean face."""
    verts = model.shape(torch.zeros(1, model.n_id), torch.zeros(1, model.n_exp))[0]
    return verts[model.landmark_indices]


def test_model_axes_and_units(model) -> None:  # noqa: ANN001
    p = mean_landmarks(model)
    assert p[42:48, 0].mean() > 0 > p[36:42, 0].mean()  # +x: the image-right eye (42-47)
    assert p[17:27, 1].mean() > p[36:48, 1].mean() > p[48:68, 1].mean() > p[8, 1]  # +y up
    assert p[30, 2] > p[36:48, 2].mean() and p[30, 2] > p[[0, 16], 2].max()  # +z: the nose tip is closest
    # decimetres: outer eye corners 0.7-1.2 dm apart (7-12 cm on real heads), 100 mm per unit
    assert model.mm_per_unit == 100.0
    assert 0.7 < float((p[36] - p[45]).norm()) < 1.2


def test_depth_is_minus_z_view_and_smaller_is_closer(model) -> None:  # noqa: ANN001
    y = model.layout("paper").zeros(1)
    out = render_face(model, y, MeshRenderer("torch", SIZE))
    camera = ScaledOrthographicCamera(SIZE)
    view = camera.view_from_model(mean_landmarks(model)[None], torch.zeros(1, 6))[0]
    assert (view[:, 2] < 0).all()  # in front of a camera that looks down -z
    nose = out.landmarks[0, 30].long()  # (x, y) pixel of the nose tip
    depth_nose = out.depth[0, 0, nose[1], nose[0]]
    torch.testing.assert_close(depth_nose, -view[30, 2], atol=0.02, rtol=0)  # within a pixel's slope
    cheek = ((out.landmarks[0, 3] + out.landmarks[0, 48]) / 2).long()  # between jaw and mouth corner
    assert out.mask[0, 0, cheek[1], cheek[0]] == 1
    assert out.depth[0, 0, cheek[1], cheek[0]] > depth_nose  # the cheek is farther


def test_positive_yaw_turns_the_face_towards_the_image_right(model) -> None:  # noqa: ANN001
    layout = model.layout("paper")
    y = layout.zeros(1)
    turned = layout.split(y)
    yaw = torch.zeros(1, 3)
    yaw[0, 1] = 0.4
    y_turned = layout.join(type(turned)(**{**turned.as_dict(), "angles": yaw}))
    renderer = MeshRenderer("torch", SIZE)
    frontal = render_face(model, y, renderer).landmarks[0]
    rotated = render_face(model, y_turned, renderer).landmarks[0]
    # the nose tip, in front of the rotation axis (near the head centre), moves right
    assert rotated[30, 0] > frontal[30, 0] + 1.0


def test_rotation_order_is_roll_yaw_pitch_applied_to_column_vectors() -> None:
    camera = ScaledOrthographicCamera(SIZE)
    point = torch.tensor([[[0.0, 0.0, 1.0]]])  # a point on +z (towards the camera)
    pose = torch.zeros(1, 6)
    pose[0, 0] = math.pi / 2  # pitch 90° about x: +z -> -y (R_x(90) [0, 0, 1] = [0, -1, 0])
    pose[0, 2] = math.pi / 2  # then roll 90° about z: -y -> +x (R_z(90) [0, -1, 0] = [1, 0, 0])
    rotated = camera.rotation(pose) @ point[0, 0]
    torch.testing.assert_close(rotated[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    yaw = torch.zeros(1, 6)
    yaw[0, 1] = math.pi / 2  # yaw 90° about y: +z -> +x (R_y(90) [0, 0, 1] = [1, 0, 0])
    torch.testing.assert_close((camera.rotation(yaw) @ point[0, 0])[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
