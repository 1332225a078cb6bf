"""MeshRenderer: image layout (one flip), depth, normals, labels, landmarks and visibility."""

import math

import pytest
import torch

from occrecon.geometry.camera import PerspectiveCamera, ScaledOrthographicCamera
from occrecon.render.mesh_renderer import MeshRenderer

A0C0 = 0.886227


def grid(n=6, size=1.0, z=0.0):
    """Square plane mesh in the model's xy plane, CCW seen from +z: ``[V, 3]`` and ``[F, 3]``."""
    t = torch.linspace(-size / 2, size / 2, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    verts = torch.stack([xx, yy, torch.full_like(xx, z)], -1).reshape(-1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return verts, faces


def render(verts, faces, cam, pose, **kw):
    b, v = pose.shape[0], verts.shape[0]
    verts = verts.expand(b, v, 3)
    normals = torch.zeros_like(verts)
    normals[..., 2] = 1
    albedo = torch.full_like(verts, 0.5)
    renderer = MeshRenderer("torch", (cam.height, cam.width), antialias=kw.pop("antialias", False))
    return renderer.render(verts, faces, cam, pose, albedo, normals, torch.zeros(b, 9, dtype=verts.dtype), **kw)


def test_upper_half_of_model_lands_in_top_rows_and_right_half_in_right_columns():
    verts, faces = grid()
    verts = verts * 0.5 + torch.tensor([0.3, 0.3, 0.0], dtype=torch.float64)  # x, y in [0.05, 0.55]
    out = render(verts, faces, ScaledOrthographicCamera((32, 40)), torch.zeros(1, 6, dtype=torch.float64))
    rows, cols = out.mask[0, 0].nonzero().unbind(1)
    assert rows.max() < 16 and cols.min() >= 20 and out.mask.sum() > 20
    assert out.image.shape == (1, 3, 32, 40) and out.labels is None


def test_depth_of_tilted_plane_matches_ray_intersection_by_hand():
    cam = PerspectiveCamera(24)
    verts, faces = grid(n=4, size=1.2)
    slope = 0.5
    verts[:, 2] = slope * verts[:, 0]  # plane z = 0.5 x in model (= view up to the offset)
    out = render(verts, faces, cam, torch.zeros(1, 6, dtype=torch.float64))
    fx, cx = cam.focal_px[0], cam.center_px[0]
    rows, cols = out.mask[0, 0].nonzero().unbind(1)
    assert rows.numel() > 30
    # Ray through pixel centre: X = depth * ((x-cx)/f, -(y-cy)/f, -1); plane: z_v + 10 = slope * x_v.
    dx = (cols.double() + 0.5 - cx) / fx
    depth_expect = 10.0 / (1.0 + slope * dx)
    torch.testing.assert_close(out.depth[0, 0, rows, cols], depth_expect)
    assert (out.depth[0, 0][out.mask[0, 0] == 0] == 0).all()
    # The test feeds constant +z model normals and an unrotated pose: the normal map is +z.
    torch.testing.assert_close(
        out.normal[0, :, rows, cols], torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64).expand(3, rows.numel())
    )


def test_shading_vertex_and_pixel_agree_on_flat_plane_with_hand_value():
    verts, faces = grid()
    cam = ScaledOrthographicCamera(16)
    pose = torch.zeros(1, 6, dtype=torch.float64)
    vtx = render(verts, faces, cam, pose, shading="vertex")
    pix = render(verts, faces, cam, pose, shading="pixel")
    m = vtx.mask[0, 0] > 0
    torch.testing.assert_close(
        vtx.image[0, :, m], torch.full((3, int(m.sum())), 0.5 * 0.8 * A0C0, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(vtx.image, pix.image)


def test_label_map_takes_nearest_vertex_label_not_interpolated():
    verts, faces = grid(n=2, size=1.0)  # one quad, vertices (-,-), (+,-), (-,+), (+,+)
    labels = torch.tensor([3, 5, 7, 11])
    cam = ScaledOrthographicCamera(20)
    out = render(verts, faces, cam, torch.tensor([[0, 0, 0, 1.0, 0, 0]], dtype=torch.float64), vertex_labels=labels)
    lab, m = out.labels[0], out.mask[0, 0] > 0
    assert set(lab[m].unique().tolist()) <= {3, 5, 7, 11} and (lab[~m] == 0).all()
    rows, cols = m.nonzero().unbind(1)
    # Top-left image corner of the quad is the model's (-x, +y) vertex = index 2.
    assert lab[rows.min(), cols.min()] == 7 and lab[rows.max(), cols.max()] == 5
    assert lab[rows.min(), cols.max()] == 11 and lab[rows.max(), cols.min()] == 3


def test_rotated_mesh_landmarks_match_hand_projection_and_visibility():
    verts, faces = grid(n=5, size=1.0)
    back, b_faces = grid(n=2, size=0.3, z=-0.5)  # small plate behind the plane
    verts = torch.cat([verts, back])
    faces = torch.cat([faces, b_faces + 25])
    cam = PerspectiveCamera(64)
    yaw, pitch, tz = 0.3, -0.2, 1.0
    pose = torch.tensor([[pitch, yaw, 0.0, 0.05, -0.1, tz]], dtype=torch.float64)
    lm = torch.tensor([0, 6, 12, 24, 25])  # four on the plane, one on the hidden plate
    out = render(verts, faces, cam, pose, landmark_indices=lm)
    cy_, sy_, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    for k, vi in enumerate(lm.tolist()):
        x, y, z = verts[vi].tolist()
        y, z = cp * y - sp * z, sp * y + cp * z  # Rx(pitch)
        x, z = cy_ * x + sy_ * z, -sy_ * x + cy_ * z  # Ry(yaw)
        x, y, z = x + 0.05, y - 0.1, z + tz - 10.0
        u, v = 112.0 * 64 / 224 + 1015.0 * 64 / 224 * x / -z, 32.0 - 1015.0 * 64 / 224 * y / -z
        torch.testing.assert_close(out.landmarks[0, k], torch.tensor([u, v], dtype=torch.float64))
    assert out.landmark_visible[0].tolist() == [True, True, True, True, False]


def test_landmark_facing_away_is_invisible():
    verts, faces = grid(n=3)
    cam = ScaledOrthographicCamera(32)
    pose = torch.tensor([[0.0, math.pi * 0.9, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # seen from behind
    out = render(verts, faces, cam, pose, landmark_indices=torch.tensor([4]))
    assert out.mask.sum() > 0 and not out.landmark_visible[0, 0]


@pytest.mark.parametrize("antialias", [False, True])
def test_raw_buffers_are_flipped_once(antialias):
    verts, faces = grid(n=3)
    verts = verts * 0.5 + torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64)
    out = render(
        verts, faces, ScaledOrthographicCamera(16), torch.zeros(1, 6, dtype=torch.float64), antialias=antialias
    )
    assert torch.equal(out.triangle_index >= 0, out.mask[:, 0] > 0)
    assert torch.equal(out.rast[..., 3].flip(1).long() - 1, out.triangle_index)
    torch.testing.assert_close(out.barycentrics.sum(-1), out.mask[:, 0])
