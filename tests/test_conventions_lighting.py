"""CONVENTIONS.md "Lighting": 9 real SH bands with the Ramamoorthi-Hanrahan constants,
``colour = albedo * (Y(n) . gamma)`` with normals in **view** space, ``+0.8`` on the ambient
coefficient, monochrome gamma (9) for all channels, RGB gamma (27) channel-major ``[3, 9]``.

The constants are written out here from their definitions (a_0 = π, a_1 = 2π/√3, a_2 = 2π/√8;
c_0 = 1/√(4π), c_1 = √3/√(4π), c_2 = 3√5/√(12π)), not imported."""

from __future__ import annotations

import math

import torch

from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.geometry.lighting import sh_basis, shade

A0C0 = math.pi / math.sqrt(4 * math.pi)  # = √π / 2
A1C1 = 2 * math.pi / math.sqrt(3) * math.sqrt(3) / math.sqrt(4 * math.pi)  # = √π
A2C2 = 2 * math.pi / math.sqrt(8) * 3 * math.sqrt(5) / math.sqrt(12 * math.pi)


def test_basis_on_the_axes_by_hand() -> None:
    n = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    r3 = 2 * math.sqrt(3)
    expected = torch.tensor([
        [A0C0, 0.0, A1C1, 0.0, 0.0, 0.0, A2C2 / r3 * 2, 0.0, 0.0],  # +z: towards the camera
        [A0C0, 0.0, 0.0, -A1C1, 0.0, 0.0, -A2C2 / r3, 0.0, A2C2 / 2],  # +x: image right
        [A0C0, -A1C1, 0.0, 0.0, 0.0, 0.0, -A2C2 / r3, 0.0, -A2C2 / 2],  # +y: up
    ])  # fmt: skip
    torch.testing.assert_close(sh_basis(n), expected, atol=1e-6, rtol=0)
    diagonal = torch.tensor([[1.0, 1.0, 1.0]]) / math.sqrt(3)  # the mixed terms: nx ny, ny nz, nx nz
    y = sh_basis(diagonal)[0]
    torch.testing.assert_close(y[[4, 5, 7]], torch.tensor([A2C2, -A2C2, -A2C2]) / 3, atol=1e-6, rtol=0)


def test_zero_gamma_is_ambient_and_mono_gamma_lights_all_channels_alike() -> None:
    albedo = torch.tensor([[[0.2, 0.5, 0.9]]])
    n = torch.tensor([[[0.0, 0.0, 1.0]]])
    torch.testing.assert_close(shade(albedo, n, torch.zeros(1, 9)), albedo * 0.8 * A0C0)
    gamma = torch.zeros(1, 9)
    gamma[0, 2] = 0.5  # the nz band
    torch.testing.assert_close(shade(albedo, n, gamma), albedo * (0.8 * A0C0 + 0.5 * A1C1))


def test_rgb_gamma_is_channel_major() -> None:
    albedo = torch.ones(1, 1, 3)
    n = torch.tensor([[[0.0, 0.0, 1.0]]])
    gamma = torch.zeros(1, 27)
    gamma[0, 9 + 2] = 1.0  # green block, nz band
    torch.testing.assert_close(shade(albedo, n, gamma)[0, 0], torch.tensor([0.8 * A0C0, 0.8 * A0C0 + A1C1, 0.8 * A0C0]))


def test_normals_are_lit_in_view_space() -> None:
    """A light on +x (gamma_3 < 0, since Y_3 = -a1c1 nx) brightens the normal that points to the image
    right *after* the pose rotates it: a model-space +z normal turned by yaw 90° faces +x."""
    camera = ScaledOrthographicCamera(32)
    pose = torch.zeros(1, 6)
    pose[0, 1] = math.pi / 2
    normal_view = camera.normals_to_view(torch.tensor([[[0.0, 0.0, 1.0]]]), pose)
    torch.testing.assert_close(normal_view, torch.tensor([[[1.0, 0.0, 0.0]]]), atol=1e-6, rtol=0)
    gamma = torch.zeros(1, 9)
    gamma[0, 3] = -1.0
    lit = shade(torch.ones(1, 1, 3), normal_view, gamma)
    torch.testing.assert_close(lit[0, 0], torch.full((3,), 0.8 * A0C0 + A1C1), atol=1e-5, rtol=0)
