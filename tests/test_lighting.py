"""SH lighting against hand-computed values (Deep3D's constants, CONVENTIONS.md)."""

import math

import pytest
import torch

from occrecon.errors import ShapeError
from occrecon.geometry.lighting import sh_basis, sh_irradiance, shade, shade_pixels

# Values from the reference cheat-sheet (independent of the code): a_l c_l products.
A0C0, A1C1, A2C2 = 0.886227, 1.772454, 2.427032


def test_basis_constants_for_axis_normals():
    n = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = sh_basis(n)
    expect_z = [A0C0, 0, A1C1, 0, 0, 0, A2C2 / (2 * math.sqrt(3)) * 2, 0, 0]
    expect_x = [A0C0, 0, 0, -A1C1, 0, 0, -A2C2 / (2 * math.sqrt(3)), 0, A2C2 / 2]
    expect_y = [A0C0, -A1C1, 0, 0, 0, 0, -A2C2 / (2 * math.sqrt(3)), 0, -A2C2 / 2]
    torch.testing.assert_close(y, torch.tensor([expect_z, expect_x, expect_y], dtype=torch.float64), atol=2e-6, rtol=0)


def test_mixed_terms_for_diagonal_normal():
    n = torch.tensor([1.0, -2.0, 2.0], dtype=torch.float64) / 3.0  # nx, ny, nz = 1/3, -2/3, 2/3
    y = sh_basis(n)
    nx, ny, nz = 1 / 3, -2 / 3, 2 / 3
    assert y[4].item() == pytest.approx(A2C2 * nx * ny, abs=1e-6)
    assert y[5].item() == pytest.approx(-A2C2 * ny * nz, abs=1e-6)
    assert y[7].item() == pytest.approx(-A2C2 * nx * nz, abs=1e-6)


def test_zero_gamma_is_ambient_point_eight():
    albedo = torch.tensor([[[0.5, 0.25, 1.0]]], dtype=torch.float64)
    n = torch.tensor([[[0.0, 0.6, 0.8]]], dtype=torch.float64)
    out = shade(albedo, n, torch.zeros(1, 9, dtype=torch.float64))
    torch.testing.assert_close(out, albedo * 0.8 * A0C0, atol=1e-6, rtol=0)


def test_mono_equals_rgb_with_repeated_channels_and_rgb_is_channel_major():
    g = torch.linspace(-0.3, 0.4, 9, dtype=torch.float64)[None]
    n = torch.nn.functional.normalize(torch.tensor([[[0.2, -0.5, 0.7], [0.9, 0.1, 0.3]]], dtype=torch.float64), dim=-1)
    torch.testing.assert_close(sh_irradiance(n, g), sh_irradiance(n, g.repeat(1, 3)))
    # Only the green block's ambient term set -> only green changes.
    rgb = torch.zeros(1, 27, dtype=torch.float64)
    rgb[0, 9] = 0.2
    irr = sh_irradiance(n, rgb)
    torch.testing.assert_close(
        irr[..., 1] - irr[..., 0], torch.full((1, 2), 0.2 * A0C0, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(irr[..., 0], irr[..., 2])


def test_linear_band_direction_for_frontal_light():
    # gamma_2 multiplies a1c1 * nz: a camera-facing normal gets brighter than a side-facing one.
    g = torch.zeros(1, 9, dtype=torch.float64)
    g[0, 2] = 0.5
    n = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    irr = sh_irradiance(n, g)[0, :, 0]
    torch.testing.assert_close(
        irr, torch.tensor([0.8 * A0C0 + 0.5 * A1C1, 0.8 * A0C0], dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_per_pixel_shading_renormalises_normals():
    albedo = torch.full((1, 2, 2, 3), 0.5, dtype=torch.float64)
    n = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    n[..., 2] = 0.3  # interpolated normals are short
    g = torch.zeros(1, 9, dtype=torch.float64)
    g[0, 2] = 1.0
    out = shade_pixels(albedo, n, g)
    torch.testing.assert_close(out, torch.full_like(out, 0.5 * (0.8 * A0C0 + A1C1)), atol=1e-6, rtol=0)


def test_bad_gamma_shape():
    with pytest.raises(ShapeError):
        sh_irradiance(torch.zeros(1, 2, 3), torch.zeros(1, 10))
