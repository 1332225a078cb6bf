"""Antialiasing against independent truths: the analytic area derivative and supersampled coverage.

A constant-colour (white on black) square of half-side ``0.4 * scale`` NDC, rotated by an angle,
rendered at 64 x 64 in float64. The sum of the antialiased image is the covered area in pixels,
so ``d(sum)/d(scale)`` must match the derivative of the true area ``(0.4 * scale * S)^2`` and the
forward image must match a 16 x 16 supersampled coverage (both computed here from the square's
corners, not by the renderer).
"""

import math

import pytest
import torch

from occrecon.render.antialias import antialias
from occrecon.render.torch_raster import rasterize

S = 64
HALF = 0.4
TRI = torch.tensor([[0, 1, 2], [0, 2, 3]])
DT = torch.float64


def square(angle_deg: float, scale: torch.Tensor, tx: torch.Tensor | float = 0.0, ty: float = 0.0) -> torch.Tensor:
    """``[1, 4, 4]`` clip positions of the rotated square (counter-clockwise corners)."""
    a = math.radians(angle_deg)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=DT)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=DT)
    xy = corners @ rot.T * HALF * scale + torch.stack([torch.as_tensor(tx, dtype=DT), torch.tensor(ty, dtype=DT)])
    return torch.cat([xy, torch.zeros(4, 1, dtype=DT), torch.ones(4, 1, dtype=DT)], 1)[None]


def render(pos: torch.Tensor) -> torch.Tensor:
    rast = rasterize(pos, TRI, (S, S))
    return antialias((rast[..., 3:4] > 0).to(DT), rast, pos, TRI)


def supersampled(pos: torch.Tensor, n: int = 16) -> torch.Tensor:
    """``[S, S]`` fraction of ``n x n`` sub-pixel samples inside the convex quad (rasterizer rows)."""
    xy = pos[0, :, :2].detach()
    u = (torch.arange(S * n, dtype=DT) + 0.5) / (S * n) * 2 - 1
    x, y = torch.meshgrid(u, u, indexing="xy")
    inside = torch.ones_like(x, dtype=torch.bool)
    for k in range(4):
        a, b = xy[k], xy[(k + 1) % 4]
        inside &= (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0
    return inside.to(DT).reshape(S, n, S, n).mean((1, 3))


@pytest.mark.parametrize("angle", [0, 10, 30, 45, 60])
def test_scale_gradient_matches_area_derivative(angle):
    scale = torch.tensor(1.0, dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(render(square(angle, scale)).sum(), scale)
    true = 2 * (HALF * S) ** 2  # d/ds (0.4 s S)^2 at s = 1, in pixels
    # ~1/26 of a row per edge is the 1D box filter's discretisation (0 degrees: 26 rows for 25.6 px)
    assert abs(grad.item() / true - 1) < 0.03, grad.item() / true


@pytest.mark.parametrize("offset_px", [(0.416, 0.25), (1.504, 0.665), (-0.151, -1.034)])
def test_sideways_gradient_of_a_45_degree_square_is_zero(offset_px):
    tx = torch.tensor(offset_px[0] * 2 / S, dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(render(square(45, torch.tensor(1.0, dtype=DT), tx, offset_px[1] * 2 / S)).sum(), tx)
    # the true derivative is 0; one misjudged row would give S / 2 = 32
    assert abs(grad.item()) < 1e-6


@pytest.mark.parametrize("angle", [0, 10, 30, 45, 60])
def test_forward_coverage_close_to_supersampling(angle):
    pos = square(angle, torch.tensor(1.0, dtype=DT))
    truth = supersampled(pos)
    err = (render(pos)[0, ..., 0] - truth).abs()
    boundary = (truth > 0) & (truth < 1)
    assert err[boundary].mean() < 0.03, err[boundary].mean()
    assert err.max() < 0.15, err.max()


def test_frames_without_silhouette_pixels_in_a_batch():
    """An empty frame (face moved out of view) and a full-screen quad next to a normal frame."""
    scale = torch.tensor(1.0, dtype=DT, requires_grad=True)
    visible = square(30, scale)
    away = square(30, scale, tx=5.0)  # entirely outside the view
    full = square(0, 3.0 * scale)  # covers every pixel: no silhouette anywhere
    pos = torch.cat([away, visible, full])
    out = render(pos)
    single = render(visible)
    torch.testing.assert_close(out[1], single[0])
    assert (out[0] == 0).all() and (out[2] == 1).all()
    (grad,) = torch.autograd.grad(out.sum(), scale, retain_graph=True)
    (grad_single,) = torch.autograd.grad(single.sum(), scale)
    torch.testing.assert_close(grad, grad_single)
    for frames in (away, full):  # a batch of only such frames
        torch.testing.assert_close(render(frames), (rasterize(frames, TRI, (S, S))[..., 3:4] > 0).to(DT))
