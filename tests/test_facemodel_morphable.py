"""MorphableModel and vertex_normals on hand-built meshes with known answers."""

import numpy as np
import pytest
import torch

from occrecon.errors import ShapeError
from occrecon.facemodel.morphable import FaceModelData, MorphableModel, vertex_normals

# An octahedron: 6 vertices on the axes, 8 faces, counter-clockwise seen from outside.
OCTA_V = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
OCTA_F = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])


def test_single_triangle_normal_is_plus_z():
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    n = vertex_normals(v, torch.tensor([[0, 1, 2]]))
    assert torch.allclose(n, torch.tensor([0.0, 0, 1]).expand(1, 3, 3))
    flipped = vertex_normals(v, torch.tensor([[0, 2, 1]]))
    assert torch.allclose(flipped, -n)


def test_octahedron_normals_are_radial_and_unit():
    n = vertex_normals(OCTA_V[None], OCTA_F)
    # by symmetry each vertex normal is its own position direction
    assert torch.allclose(n[0], OCTA_V, atol=1e-6)
    assert torch.allclose(n.norm(dim=-1), torch.ones(1, 6))


def test_normals_are_area_weighted_and_batched():
    # a fan around vertex 0: a big triangle in the xy plane and a small one in the xz plane
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 0.5]])
    f = torch.tensor([[0, 1, 2], [0, 3, 1]])
    n = vertex_normals(torch.stack([v, 2 * v]), f)
    # face normals (v1 - v0) x (v2 - v0): (0, 0, 4) for the big one, (0, 1, 0) for the small one
    expected = torch.tensor([0.0, 0, 4.0]) + torch.tensor([0.0, 1.0, 0])
    assert torch.allclose(n[0, 0], expected / expected.norm(), atol=1e-6)
    assert torch.allclose(n[1], n[0], atol=1e-6)  # uniform scaling keeps normals


def test_isolated_vertex_gets_zero_normal_not_nan():
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]]])
    n = vertex_normals(v, torch.tensor([[0, 1, 2]]))
    assert torch.isfinite(n).all() and n[0, 3].abs().sum() == 0


def _tiny_data() -> FaceModelData:
    rng = np.random.default_rng(0)
    v = OCTA_V.numpy().astype(np.float64)
    return FaceModelData(
        name="octa", mean_shape=v, id_basis=rng.normal(size=(6, 3, 4)), exp_basis=rng.normal(size=(6, 3, 2)),
        albedo_mean=np.full((6, 3), 0.5), albedo_basis=rng.normal(size=(6, 3, 3)) * 0.1, triangles=OCTA_F.numpy(),
        landmark_indices=np.zeros(68, dtype=np.int64), region_labels=np.ones(6, dtype=np.int64),
        skin_mask=np.ones(6, bool), face_mask=np.ones(6, bool), uv=np.zeros((6, 2)), mirror_index=np.array([1, 0, 2, 3, 4, 5]),
    )  # fmt: skip


def test_zero_coefficients_give_the_mean_and_modes_are_linear():
    data = _tiny_data()
    model = MorphableModel(data)
    layout = model.layout("paper")
    assert layout.size == 4 + 2 + 3 + 9 + 6
    geom = model(layout.zeros(2))
    assert torch.allclose(geom.vertices, OCTA_V.expand(2, 6, 3))
    assert torch.allclose(geom.albedo, torch.full((2, 6, 3), 0.5))
    c = layout.split(layout.zeros(1))
    c.id[0, 2] = 1.5
    c.exp[0, 1] = -2.0
    c.tex[0, 0] = 1.0
    geom = model(c)
    expected = data.mean_shape + 1.5 * data.id_basis[:, :, 2] - 2.0 * data.exp_basis[:, :, 1]
    assert np.allclose(geom.vertices[0].numpy(), expected, atol=1e-5)
    assert np.allclose(geom.albedo[0].numpy(), 0.5 + data.albedo_basis[:, :, 0], atol=1e-6)


def test_forward_accepts_both_layouts_and_gradients_flow():
    model = MorphableModel(_tiny_data())
    for kind in ("paper", "deep3d"):
        y = torch.randn(3, model.layout(kind).size, requires_grad=True)
        geom = model(y)
        geom.vertices.sum().backward()
        assert y.grad[:, model.layout(kind).slices["id"]].abs().sum() > 0
        assert torch.allclose(geom.normals.norm(dim=-1), torch.ones(3, 6), atol=1e-5)
    with pytest.raises(ShapeError):
        model(torch.zeros(1, 7))


def test_buffers_follow_dtype_and_shapes_are_checked():
    model = MorphableModel(_tiny_data()).double()
    assert model.mean_shape.dtype == torch.float64 and model.triangles.dtype == torch.int64
    assert model(model.layout().zeros(1, dtype=torch.float64)).vertices.dtype == torch.float64
    bad = _tiny_data()
    bad.uv = np.zeros((5, 2))
    with pytest.raises(ShapeError):
        MorphableModel(bad)
    assert MorphableModel(_tiny_data()).landmarks_3d(OCTA_V[None]).shape == (1, 68, 3)
