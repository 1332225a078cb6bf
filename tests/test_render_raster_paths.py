"""Fast paths of the torch rasterizer (issue 18) against the brute-force reference.

The rasterizer tests every triangle's box origin without gathers, then every other centre of the
larger boxes, enumerated exactly in chunks of whole triangles, and computes barycentrics densely
with safe denominators on empty pixels. Each path is checked here on a scene that exercises it.
"""

import torch
from test_render_raster import dense_reference
from torch.autograd import gradcheck

from occrecon.render.torch_raster import rasterize


def height_field(n: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A randomly posed ``n x n`` height field in clip space (mostly sub-pixel triangles at 24 px)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.linspace(-0.9, 0.9, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    z = 0.3 * torch.sin(3 * xx) * torch.cos(2 * yy)
    verts = torch.stack([xx, yy, z], -1).reshape(-1, 3)
    pos = []
    for _ in range(batch):
        angle = (torch.rand(1, generator=gen, dtype=torch.float64) - 0.5) * 1.2
        c, s = torch.cos(angle), torch.sin(angle)
        x = c * verts[:, 0] - s * verts[:, 2]
        zz = s * verts[:, 0] + c * verts[:, 2]
        w = 2.0 + zz
        # Off-centre, so that no pixel centre lies exactly on a grid edge (a tie either answer is right for).
        pos.append(torch.stack([1.9 * x + 0.0137 * w, 1.9 * verts[:, 1] + 0.0071 * w, 0.5 * zz, w], -1))
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c_, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c_], -1).reshape(-1, 3), torch.stack([a, c_, d], -1).reshape(-1, 3)])
    return torch.stack(pos), faces


def test_dense_tiny_triangles_match_reference():
    # 1,682 triangles on 24 x 20 pixels: the origin-only path decides almost every pixel.
    pos, tri = height_field(30, 3, seed=0)
    ref = dense_reference(pos, tri, 24, 20)
    got = rasterize(pos, tri, (24, 20))[..., 3].long() - 1
    assert (ref >= 0).float().mean() > 0.3
    assert torch.equal(got, ref)


def test_mixed_box_sizes_in_one_and_in_many_chunks():
    # Coarse and fine fields together: many box sizes; chunks of 5 candidates cut between (and
    # around) triangles whose boxes are larger than a chunk.
    fine, tri_f = height_field(12, 2, seed=1)
    coarse, tri_c = height_field(4, 2, seed=2)
    coarse = coarse * torch.tensor([0.7, 0.7, 1.0, 1.0], dtype=torch.float64)
    coarse[..., 2] += 0.45 * coarse[..., 3]  # behind the fine field: no float32 depth near-ties
    pos = torch.cat([fine, coarse], 1)
    tri = torch.cat([tri_f, tri_c + fine.shape[1]])
    ref = dense_reference(pos, tri, 37, 29)
    for chunk in (1, 5, 1 << 16):
        got = rasterize(pos, tri, (37, 29), chunk_elems=chunk)[..., 3].long() - 1
        assert torch.equal(got, ref), chunk


def test_gradients_finite_and_exact_with_mostly_empty_image():
    # A triangle on a 9 x 9 image: the dense barycentric pass also runs on the ~60 empty pixels,
    # whose zero outputs must not leak NaN or any gradient.
    pos = torch.tensor(
        [[[-0.5, -0.45, 0.1, 1.0], [0.6, -0.3, 0.2, 1.2], [0.0, 0.5, 0.3, 0.9]]], dtype=torch.float64, requires_grad=True
    )
    tri = torch.tensor([[0, 1, 2]])
    rast = rasterize(pos, tri, (9, 9))
    assert 8 < (rast[0, ..., 3] > 0).sum() < 40
    rast[..., :3].sum().backward()
    assert torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0
    assert gradcheck(lambda p: rasterize(p, tri, (9, 9))[..., :3], (pos.detach().requires_grad_(True),), eps=1e-7, atol=1e-6)
