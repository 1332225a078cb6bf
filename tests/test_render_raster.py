"""Torch rasterizer: analytic coverage, depth, barycentrics, z-buffering, against a dense reference."""

import pytest
import torch

from occrecon.errors import ShapeError
from occrecon.render.interpolate import interpolate
from occrecon.render.torch_raster import rasterize


def centres(h, w, dtype=torch.float64):
    """nvdiffrast sample positions: row i at y_ndc = 2(i+.5)/H - 1 (row 0 bottom)."""
    y = (2 * torch.arange(h, dtype=dtype) + 1) / h - 1
    x = (2 * torch.arange(w, dtype=dtype) + 1) / w - 1
    return y[:, None].expand(h, w), x[None, :].expand(h, w)


def dense_reference(pos, tri, h, w):
    """Brute force over all (pixel, triangle) pairs: screen barycentrics, nearest z/w, lowest id on ties."""
    yy, xx = centres(h, w)
    v = pos[:, tri]  # [B, F, 3, 4]
    ndc = v[..., :3] / v[..., 3:]
    x0, y0 = ndc[..., 0, 0, None, None], ndc[..., 0, 1, None, None]
    x1, y1 = ndc[..., 1, 0, None, None], ndc[..., 1, 1, None, None]
    x2, y2 = ndc[..., 2, 0, None, None], ndc[..., 2, 1, None, None]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    l0 = ((x1 - xx) * (y2 - yy) - (x2 - xx) * (y1 - yy)) / area
    l1 = ((x2 - xx) * (y0 - yy) - (x0 - xx) * (y2 - yy)) / area
    l2 = 1 - l0 - l1
    z = l0 * ndc[..., 0, 2, None, None] + l1 * ndc[..., 1, 2, None, None] + l2 * ndc[..., 2, 2, None, None]
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (z >= -1) & (z <= 1)
    z = torch.where(inside, z, torch.inf)  # [B, F, H, W]
    zmin, idx = z.min(1)
    return torch.where(torch.isfinite(zmin), idx, -1)


def test_single_triangle_exact_mask_barycentrics_and_depth():
    # Screen-space triangle (w = 1): barycentrics are affine in the pixel centre.
    pos = torch.tensor([[[-0.8, -0.6, 0.25, 1.0], [0.7, -0.9, 0.25, 1.0], [0.1, 0.9, 0.25, 1.0]]], dtype=torch.float64)
    rast = rasterize(pos, torch.tensor([[0, 1, 2]]), (12, 10))
    yy, xx = centres(12, 10)
    (ax, ay), (bx, by), (cx, cy) = [(-0.8, -0.6), (0.7, -0.9), (0.1, 0.9)]
    det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    u = ((bx - xx) * (cy - yy) - (cx - xx) * (by - yy)) / det
    v = ((cx - xx) * (ay - yy) - (ax - xx) * (cy - yy)) / det
    inside = (u >= 0) & (v >= 0) & (1 - u - v >= 0)
    assert inside.sum() > 20 and (~inside).sum() > 20
    torch.testing.assert_close(rast[0, ..., 3], inside.double())
    torch.testing.assert_close(rast[0, ..., 0], torch.where(inside, u, 0.0))
    torch.testing.assert_close(rast[0, ..., 1], torch.where(inside, v, 0.0))
    torch.testing.assert_close(rast[0, ..., 2], torch.where(inside, 0.25, 0.0).double())


def test_quad_rows_are_bottom_up_and_pixel_centres_are_half_integers():
    # Quad x in [-0.5, 0.75], y in [-0.75, 0.25] on 8x8: centres at (2k+1)/8 - 1.
    p = [[-0.5, -0.75], [0.75, -0.75], [0.75, 0.25], [-0.5, 0.25]]
    pos = torch.tensor([[[x, y, -0.4, 1.0] for x, y in p]], dtype=torch.float64)
    rast = rasterize(pos, torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32), (8, 8))
    expect = torch.zeros(8, 8, dtype=torch.bool)
    expect[1:5, 2:7] = True  # rows 1..4 (y_ndc -0.625..0.125), cols 2..6 (x_ndc -0.375..0.625)
    assert torch.equal(rast[0, ..., 3] > 0, expect)
    torch.testing.assert_close(rast[0, ..., 2][expect], torch.full((20,), -0.4, dtype=torch.float64))


def test_perspective_correct_barycentrics_reproject_to_pixel_centre():
    # Interpolating clip (x, y, w) with the returned (u, v) must land on the pixel centre.
    pos = torch.tensor([[[-2.0, -1.5, 0.5, 3.0], [1.2, -0.9, 0.1, 1.5], [0.3, 2.4, 1.8, 4.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]])
    rast = rasterize(pos, tri, (16, 16))
    got = interpolate(pos, rast, tri)
    mask = rast[0, ..., 3] > 0
    yy, xx = centres(16, 16)
    assert mask.sum() > 30
    torch.testing.assert_close((got[0, ..., 0] / got[0, ..., 3])[mask], xx[mask])
    torch.testing.assert_close((got[0, ..., 1] / got[0, ..., 3])[mask], yy[mask])
    torch.testing.assert_close((got[0, ..., 2] / got[0, ..., 3])[mask], rast[0, ..., 2][mask])


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_nearer_triangle_wins_regardless_of_order(order):
    near = [[-0.9, -0.9, -0.5, 1.0], [0.9, -0.9, -0.5, 1.0], [0.0, 0.9, -0.5, 1.0]]
    far = [[-0.9, 0.9, 0.5, 1.0], [0.9, 0.9, 0.5, 1.0], [0.0, -0.9, 0.5, 1.0]]
    pos = torch.tensor([near + far], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
    rast = rasterize(pos, tri, (9, 9))
    ids = rast[0, ..., 3].long() - 1
    near_id = order.index(0)
    both = (ids >= 0) & (rast[0, ..., 2] < 0)
    assert both.sum() > 10 and (ids[both] == near_id).all()
    assert (rast[0, ..., 2][ids == near_id] == -0.5).all()


def test_depth_clip_and_behind_camera():
    pos = torch.tensor(
        [
            [
                [-1.0, -1.0, 1.5, 1.0],
                [1.0, -1.0, 1.5, 1.0],
                [0.0, 1.0, 1.5, 1.0],
                [-1, -1, 0, -1.0],
                [1, -1, 0, -1.0],
                [0, 1, 0, -1.0],
            ]
        ]
    )
    rast = rasterize(pos, torch.tensor([[0, 1, 2], [3, 4, 5]]), (6, 6))
    assert (rast == 0).all()


def test_matches_dense_reference_on_random_meshes_with_batch_and_chunking():
    gen = torch.Generator().manual_seed(3)
    pos = torch.rand(2, 60, 4, generator=gen, dtype=torch.float64) * 2 - 1
    pos[..., 3] = 1 + torch.rand(2, 60, generator=gen, dtype=torch.float64)
    pos[..., :2] *= pos[..., 3:4]
    tri = torch.randint(0, 60, (40, 3), generator=gen)
    ref = dense_reference(pos, tri, 17, 23)
    for chunk in (7, 1 << 20):
        got = rasterize(pos, tri, (17, 23), chunk_elems=chunk)[..., 3].long() - 1
        assert torch.equal(got, ref)


def test_shared_edge_is_watertight():
    # A fan of triangles around a centre whose edges pass exactly through pixel centres.
    ring = torch.tensor(
        [
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0],
            [-1.0, 1.0],
            [-1.0, 0.0],
            [-1.0, -1.0],
            [0.0, -1.0],
            [1.0, -1.0],
        ]
    )
    pos = torch.cat([ring, torch.zeros(9, 1), torch.ones(9, 1)], 1)[None].double()
    tri = torch.tensor([[0, k, k % 8 + 1] for k in range(1, 9)])
    rast = rasterize(pos, tri, (9, 9))  # centre pixel (4, 4) is exactly at the fan centre
    assert (rast[0, ..., 3] > 0).all()


def test_shape_errors():
    with pytest.raises(ShapeError):
        rasterize(torch.zeros(3, 4), torch.zeros(1, 3, dtype=torch.long), (4, 4))


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_exact_depth_tie_goes_to_lower_triangle_id(order):
    tri_xy = [[-0.7, -0.7], [0.8, -0.6], [0.0, 0.9]]
    pos = torch.tensor([[[x, y, 0.3, 1.0] for x, y in tri_xy] * 2])
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
    ids = rasterize(pos, tri, (10, 10))[0, ..., 3]
    assert (ids > 0).sum() > 20 and set(ids[ids > 0].tolist()) == {1.0}


def test_batch_grouping_does_not_change_result(monkeypatch):
    import occrecon.render.torch_raster as tr

    gen = torch.Generator().manual_seed(5)
    pos = torch.rand(5, 30, 4, generator=gen) * 2 - 1
    pos[..., 3] = 1.0
    tri = torch.randint(0, 30, (25, 3), generator=gen)
    whole = rasterize(pos, tri, (12, 9))
    monkeypatch.setattr(tr, "TRIANGLES_PER_GROUP", 40)  # one batch item per group
    torch.testing.assert_close(tr.rasterize(pos, tri, (12, 9)), whole)
