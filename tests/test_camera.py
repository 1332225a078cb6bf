"""Convention tests for occrecon.geometry.camera / rotation (CONVENTIONS.md), asymmetric inputs."""

import math

import pytest
import torch

from occrecon.errors import ConfigError, ShapeError
from occrecon.geometry.camera import PerspectiveCamera, ScaledOrthographicCamera
from occrecon.geometry.rotation import rotation_from_euler

NOSE = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)  # +z, out of the face


def pose6(*vals):
    return torch.tensor([vals], dtype=torch.float64)


def test_rotation_order_is_rz_ry_rx():
    p, y, r = 0.3, -0.7, 1.1
    cx, sx, cy, sy, cz, sz = math.cos(p), math.sin(p), math.cos(y), math.sin(y), math.cos(r), math.sin(r)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    got = rotation_from_euler(torch.tensor([p, y, r], dtype=torch.float64))
    torch.testing.assert_close(got, rz @ ry @ rx)
    torch.testing.assert_close(got @ got.T, torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("cam", [ScaledOrthographicCamera(64), PerspectiveCamera(64)])
def test_positive_yaw_moves_nose_right_and_pitch_moves_it_down(cam):
    centre = cam.pixels_from_view(cam.view_from_model(NOSE, pose6(0, 0, 0, 0, 0, 0)), pose6(0, 0, 0, 0, 0, 0))
    yaw = pose6(0, 0.4, 0, 0, 0, 0)
    right = cam.pixels_from_view(cam.view_from_model(NOSE, yaw), yaw)
    assert right[0, 0, 0] > centre[0, 0, 0] + 1  # image right
    # Positive pitch about +x turns +z towards -y (down in the image: larger pixel y).
    pitch = pose6(0.4, 0, 0, 0, 0, 0)
    down = cam.pixels_from_view(cam.view_from_model(NOSE, pitch), pitch)
    assert down[0, 0, 1] > centre[0, 0, 1] + 1


@pytest.mark.parametrize("cam", [ScaledOrthographicCamera((48, 64)), PerspectiveCamera((48, 64))])
def test_y_up_model_point_is_above_centre_and_ndc_matches_pixels(cam):
    pose = (
        pose6(0.1, -0.2, 0.3, 0.05, 0.02, -0.1)
        if isinstance(cam, PerspectiveCamera)
        else pose6(0.1, -0.2, 0.3, 0.2, 3.0, -2.0)
    )
    pts = torch.tensor([[[0.3, 0.8, 0.1], [-0.5, -0.2, 0.4]]], dtype=torch.float64)
    view = cam.view_from_model(pts, pose)
    clip = cam.clip_from_view(view, pose)
    ndc = clip[..., :3] / clip[..., 3:]
    px = cam.pixels_from_view(view, pose)
    # x_px = (x_ndc + 1) / 2 * W ; y_px = (1 - y_ndc) / 2 * H  (the one y flip).
    torch.testing.assert_close(px[..., 0], (ndc[..., 0] + 1) / 2 * cam.width)
    torch.testing.assert_close(px[..., 1], (1 - ndc[..., 1]) / 2 * cam.height)
    up = cam.pixels_from_view(
        cam.view_from_model(torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64), pose6(*[0] * 6)), pose6(*[0] * 6)
    )
    assert up[0, 0, 1] < cam.height / 2  # +y model is up in the image


def test_perspective_matches_deep3d_formula_by_hand():
    cam = PerspectiveCamera(224)
    pose = pose6(0.0, 0.0, 0.0, 0.1, -0.2, 0.5)
    p = torch.tensor([[[0.4, 0.3, 0.2]]], dtype=torch.float64)
    view = cam.view_from_model(p, pose)
    x, y, z = 0.4 + 0.1, 0.3 - 0.2, 0.2 + 0.5  # translated model point
    depth = 10 - z  # Deep3D: z_cam = camera_d - z
    u = 1015 * x / depth + 112
    v_up = 1015 * y / depth + 112
    px = cam.pixels_from_view(view, pose)
    torch.testing.assert_close(px[0, 0], torch.tensor([u, 224 - v_up], dtype=torch.float64))
    # Near plane -> z_ndc = -1, far plane -> +1.
    planes = torch.tensor([[[0.0, 0.0, -5.0], [0.0, 0.0, -15.0]]], dtype=torch.float64)
    clip = cam.clip_from_view(planes)
    torch.testing.assert_close(clip[..., 2] / clip[..., 3], torch.tensor([[-1.0, 1.0]], dtype=torch.float64))


def test_perspective_intrinsics_scale_with_image_size():
    cam = PerspectiveCamera(112)
    assert cam.focal_px == (507.5, 507.5) and cam.center_px == (56.0, 56.0)


def test_orthographic_eq7_by_hand():
    cam = ScaledOrthographicCamera(100)
    yaw, f, tx, ty = math.pi / 2, 0.5, 3.0, -4.0
    pose = pose6(0, yaw, 0, f, tx, ty)
    p = torch.tensor([[[0.2, 0.1, 0.3]]], dtype=torch.float64)
    s = 1015 * 100 / 224 / 10 * (1 + f)
    # Ry(90deg): (x, y, z) -> (z, y, -x); then V2d = s * (x', y') with y flipped down, + t.
    expect = torch.tensor([50 + s * 0.3 + tx, 50 - s * 0.1 + ty], dtype=torch.float64)
    view = cam.view_from_model(p, pose)
    torch.testing.assert_close(cam.pixels_from_view(view, pose)[0, 0], expect)
    torch.testing.assert_close(-view[0, 0, 2], torch.tensor(10 + 0.2, dtype=torch.float64))  # depth in model units


def test_orthographic_needs_pose_and_checks_shapes():
    cam = ScaledOrthographicCamera(32)
    with pytest.raises(ConfigError):
        cam.pixels_from_view(torch.zeros(1, 2, 3))
    with pytest.raises(ShapeError):
        cam.view_from_model(torch.zeros(2, 3), torch.zeros(1, 6))
    with pytest.raises(ConfigError):
        PerspectiveCamera(32, near=5.0, far=1.0)
