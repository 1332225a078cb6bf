"""Losses of the detail stage (occrecon.losses.detail) against values computed by hand, and a
gradcheck of L_geo (paper Eq. 6) in float64."""

from __future__ import annotations

import math

import pytest
import torch

from occrecon.losses.detail import (
    bump_geometry_loss,
    confidence_loss,
    shading_residual,
    smoothness_loss,
    symmetry_loss,
)


def test_eq6_on_a_column_ramp_by_hand() -> None:
    """Target ``a * col`` on 3 x 4 pixels, prediction 0. Value term: mean(0, a, 2a, 3a) = 1.5 a.
    ``d/dcol`` of the target by central differences with replicated borders: a/2, a, a, a/2 -> mean
    0.75 a; ``d/drow`` = 0. L_geo = 2.25 a."""
    a = 0.1
    target = (a * torch.arange(4.0)).expand(1, 1, 3, 4).contiguous()
    total, parts = bump_geometry_loss(torch.zeros_like(target), target)
    assert float(parts["value"]) == pytest.approx(1.5 * a)
    assert float(parts["grad_x"]) == pytest.approx(0.75 * a)
    assert float(parts["grad_y"]) == pytest.approx(0.0)
    assert float(total) == pytest.approx(2.25 * a)
    # the same ramp along rows moves the gradient term to y; prediction = target gives 0
    total_t, parts_t = bump_geometry_loss(torch.zeros(1, 1, 4, 3), target.transpose(2, 3))
    assert float(parts_t["grad_y"]) == pytest.approx(0.75 * a) and float(parts_t["grad_x"]) == pytest.approx(0.0)
    assert float(bump_geometry_loss(target, target)[0]) == 0.0


def test_eq6_mask_averages_over_the_mask_and_ignores_nan_outside() -> None:
    """Mask = column 3 only: value |3a - 0| = 3a, grad_x a/2 there (see above) -> 3.5 a; a NaN in the
    prediction outside the mask changes neither the value nor the gradient."""
    a = 0.1
    target = (a * torch.arange(4.0)).expand(1, 1, 3, 4).contiguous()
    mask = torch.zeros(1, 1, 3, 4)
    mask[..., 3] = 1
    pred = torch.zeros_like(target)
    pred[..., 0, 0] = float("nan")
    pred.requires_grad_(True)
    total, _ = bump_geometry_loss(pred, target, mask)
    # column 3's x-gradient reads column 2 only, so the NaN in column 0 stays out
    assert float(total) == pytest.approx(3.5 * a)
    total.backward()
    assert torch.isfinite(pred.grad).all()


def test_eq6_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64)
    mask = (torch.rand(2, 1, 5, 6, generator=gen) > 0.3).double()
    assert torch.autograd.gradcheck(lambda p: bump_geometry_loss(p, target, mask)[0], (pred,), eps=1e-7, atol=1e-6)


def test_shading_residual_by_hand() -> None:
    """Normal (0, 0, 1), mono gamma 0 (+0.8 ambient): irradiance = 0.8 a0 c0 = 0.8 * pi / sqrt(4 pi);
    albedo 0.5 -> 0.4 sqrt(pi) / 2 ... per channel; the photo 0.3 everywhere."""
    normals = torch.zeros(1, 3, 2, 2)
    normals[:, 2] = 1
    albedo = torch.full((1, 3, 2, 2), 0.5)
    shaded = 0.5 * 0.8 * math.pi / math.sqrt(4 * math.pi)
    residual = shading_residual(normals, albedo, torch.zeros(1, 9), torch.full((1, 3, 2, 2), 0.3))
    torch.testing.assert_close(residual, torch.full((1, 1, 2, 2), abs(shaded - 0.3)))


def test_smoothness_of_a_spike() -> None:
    """A spike v in a 5 x 5 zero map: the 3x3 Laplacian (ones, centre -8) is -8 v at the spike and v at
    its 8 neighbours: mean |.| = 16 v / 25."""
    code = torch.zeros(1, 1, 5, 5)
    code[..., 2, 2] = 0.2
    assert float(smoothness_loss(code)) == pytest.approx(16 * 0.2 / 25)
    assert float(smoothness_loss(torch.full((1, 1, 5, 5), 0.7))) == pytest.approx(0.0, abs=1e-7)


def test_symmetry_reads_the_mirror_pixel() -> None:
    """1 x 4 image, codes (0.1, 0.2, 0.3, 0.7); pixel 0 occluded, its mirror is pixel 3 (visible):
    |0.1 - 0.7| = 0.6. Pixel 1 occluded too but its mirror (pixel 2) is not visible: not counted."""
    code = torch.tensor([0.1, 0.2, 0.3, 0.7]).reshape(1, 1, 1, 4).requires_grad_(True)
    centre = lambda j: (2 * j + 1) / 4 - 1  # noqa: E731 - grid_sample x of pixel j (align_corners=False)
    grid = torch.tensor([[[[centre(3), 0.0], [centre(2), 0.0], [-2.0, -2.0], [-2.0, -2.0]]]])
    occluded = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    visible = torch.tensor([0.0, 0.0, 0.0, 1.0]).reshape(1, 1, 1, 4)
    loss = symmetry_loss(code, grid, occluded, visible)
    assert float(loss) == pytest.approx(0.6)
    loss.backward()
    assert code.grad[0, 0, 0].tolist() == pytest.approx([-1.0, 0.0, 0.0, 0.0])  # the mirrored side is detached


def test_confidence_target() -> None:
    """Error 0 -> target 1; confidence 0.5 -> BCE ln 2. Error tau -> target e^-1; confidence e^-1 is the
    minimum of the BCE, its entropy."""
    assert float(confidence_loss(torch.full((1, 1, 1, 1), 0.5), torch.zeros(1, 1, 1, 1), 4.0)) == pytest.approx(math.log(2))
    t = math.exp(-1)
    entropy = -(t * math.log(t) + (1 - t) * math.log(1 - t))
    got = confidence_loss(torch.full((1, 1, 1, 1), t), torch.full((1, 1, 1, 1), 4.0), 4.0)
    assert float(got) == pytest.approx(entropy, rel=1e-5)
