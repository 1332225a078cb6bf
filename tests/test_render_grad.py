"""Gradients of the torch backend: gradcheck on interpolate, positions (interior) and silhouettes."""

import torch
from torch.autograd import gradcheck

from occrecon.render.antialias import antialias, edge_topology
from occrecon.render.interpolate import interpolate
from occrecon.render.torch_raster import rasterize

TRI = torch.tensor([[0, 1, 2], [0, 2, 3]])  # a quad, both triangles wound alike


def quad_pos():
    p = [[-0.62, -0.55, 0.1, 1.0], [0.31, -0.52, 0.2, 1.1], [0.28, 0.47, 0.3, 1.3], [-0.58, 0.43, 0.0, 0.9]]
    return torch.tensor([p], dtype=torch.float64)


def test_gradcheck_interpolate_attributes_and_barycentrics():
    pos = quad_pos()
    rast = rasterize(pos, TRI, (6, 5))
    attr = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].clone().requires_grad_(True)
    rest = rast[..., 2:]
    assert gradcheck(lambda a, b: interpolate(a, torch.cat([b, rest], -1), TRI), (attr, uv))
    flat = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)  # [V, C] form broadcasts
    assert gradcheck(lambda a: interpolate(a, rast, TRI), (flat,))


def test_gradcheck_vertex_positions_interior():
    attr = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [0.5, -1.0]]], dtype=torch.float64)
    pos = quad_pos().requires_grad_(True)

    def render(p):
        rast = rasterize(p, TRI, (6, 5))
        return torch.cat([interpolate(attr, rast, TRI), rast[..., 2:3]], -1)

    assert gradcheck(render, (pos,), eps=1e-7, atol=1e-6)
    g = torch.autograd.grad(render(pos).sum(), pos)[0]
    assert g.abs().sum() > 0


def test_gradcheck_silhouette_through_antialias():
    color = torch.tensor([[[0.9, 0.2], [0.4, 0.8], [0.1, 0.5], [0.7, 0.3]]], dtype=torch.float64)
    topo = edge_topology(TRI)

    def render(p):
        rast = rasterize(p, TRI, (6, 5))
        return antialias(interpolate(color, rast, TRI), rast, p, TRI, topo)

    assert gradcheck(render, (quad_pos().requires_grad_(True),), eps=1e-7, atol=1e-6)


def test_antialiased_coverage_derivative_equals_edge_length_in_pixels():
    # Axis-aligned quad, white on black: moving the vertical right edge by dx pixels changes the
    # box-filtered coverage by (rows crossed) * dx, so d(sum)/d(x_ndc) = rows * W / 2.
    h = w = 8
    x0, x1, y0, y1 = -0.6, 0.3, -0.55, 0.45  # rows 2..5 covered (4 rows); right edge at 5.2 px
    pos = torch.tensor(
        [[[x0, y0, 0, 1], [x1, y0, 0, 1], [x1, y1, 0, 1], [x0, y1, 0, 1]]], dtype=torch.float64, requires_grad=True
    )
    rast = rasterize(pos, TRI, (h, w))
    mask = (rast[..., 3:4] > 0).double()
    out = antialias(mask, rast, pos, TRI)
    # Right edge at 5.2 px: column 5 (centre 5.5) gets coverage 0.2 on the 4 rows.
    torch.testing.assert_close(out[0, 2:6, 5, 0], torch.full((4,), 0.2, dtype=torch.float64))
    (g,) = torch.autograd.grad(out.sum(), pos)
    right_x = g[0, 1, 0] + g[0, 2, 0]
    torch.testing.assert_close(right_x, torch.tensor(4 * w / 2, dtype=torch.float64))
    # Interior diagonal edge (shared, same winding) is not a silhouette: no blending there.
    assert ((out[0, ..., 0] > 0) & (out[0, ..., 0] < 1)).sum() == (out[0, ..., 0] != mask[0, ..., 0]).sum()


def test_edge_topology_links_shared_edges_only():
    nbr = edge_topology(TRI)
    # Triangle 0 = (0,1,2): edge opposite vertex 1 is (2,0) -> shared with triangle 1.
    assert nbr.tolist() == [[-1, 1, -1], [-1, -1, 0]]


def test_silhouette_found_through_sub_pixel_triangles():
    # The same quad as above tessellated into 24 x 24 cells (~0.15 px triangles): the segment
    # between two pixel centres crosses several interior edges before the silhouette.
    h = w = 8
    n = 25
    xs = torch.linspace(-0.6, 0.3, n, dtype=torch.float64)
    ys = torch.linspace(-0.55, 0.45, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pos = torch.stack([xx, yy, torch.zeros_like(xx), torch.ones_like(xx)], -1).reshape(1, -1, 4).requires_grad_(True)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    tri = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    rast = rasterize(pos, tri, (h, w))
    out = antialias((rast[..., 3:4] > 0).double(), rast, pos, tri)
    torch.testing.assert_close(out[0, 2:6, 5, 0], torch.full((4,), 0.2, dtype=torch.float64))
    (g,) = torch.autograd.grad(out.sum(), pos)
    right_x = g[0].view(n, n, 4)[:, -1, 0].sum()
    torch.testing.assert_close(right_x, torch.tensor(4 * w / 2, dtype=torch.float64))
