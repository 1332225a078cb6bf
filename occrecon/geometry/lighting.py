"""Spherical-harmonics lighting (9 bands, Ramamoorthi-Hanrahan constants, as Deep3DFaceRecon).

``colour = albedo * (Y(n) . gamma)`` with normals ``n`` in **view** space and
``Y = [a0c0, -a1c1 ny, a1c1 nz, -a1c1 nx, a2c2 nx ny, -a2c2 ny nz, a2c2/(2 sqrt3) (3nz^2-1),
-a2c2 nx nz, a2c2/2 (nx^2-ny^2)]`` (``CONVENTIONS.md``). ``gamma`` is monochrome ``[B, 9]`` (the
paper's 239-layout) or RGB ``[B, 27]`` laid out ``[3, 9]`` channel-major (Deep3D's 257-layout);
the ambient coefficient gets ``+0.8`` so zero coefficients give a lit face.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from occrecon.errors import ShapeError
from occrecon.utils.checks import check_shape

NUM_SH = 9
AMBIENT_INIT = 0.8

SH_A = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
"""Ramamoorthi-Hanrahan irradiance factors ``a_l`` for bands 0, 1, 2."""
SH_C = (
    1.0 / math.sqrt(4.0 * math.pi),
    math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
    3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi),
)
"""Real SH normalisation constants ``c_l`` for bands 0, 1, 2."""


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 SH basis values ``Y(n)`` (constants included), ``[*, 3] -> [*, 9]``.

    ``normals`` should be unit length; they are not renormalised here.
    """
    check_shape(normals, ["*", 3], "normals")
    nx, ny, nz = normals.unbind(-1)
    a0c0, a1c1, a2c2 = (a * c for a, c in zip(SH_A, SH_C, strict=True))
    return torch.stack(
        [
            torch.full_like(nx, a0c0),
            -a1c1 * ny,
            a1c1 * nz,
            -a1c1 * nx,
            a2c2 * nx * ny,
            -a2c2 * ny * nz,
            a2c2 / (2.0 * math.sqrt(3.0)) * (3.0 * nz * nz - 1.0),
            -a2c2 * nx * nz,
            0.5 * a2c2 * (nx * nx - ny * ny),
        ],
        dim=-1,
    )


def sh_coefficients(gamma: torch.Tensor) -> torch.Tensor:
    """Per-channel SH coefficients ``[B, 3, 9]`` from mono ``[B, 9]`` or RGB ``[B, 27]`` gamma,
    with the ``+0.8`` ambient offset added."""
    if gamma.dim() != 2 or gamma.shape[1] not in (NUM_SH, 3 * NUM_SH):
        raise ShapeError("gamma", "[B, 9] or [B, 27]", tuple(gamma.shape))
    coeffs = gamma.reshape(gamma.shape[0], -1, NUM_SH).expand(-1, 3, -1)
    offset = torch.zeros(NUM_SH, dtype=gamma.dtype, device=gamma.device)
    offset[0] = AMBIENT_INIT
    return coeffs + offset


def sh_irradiance(normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-channel shading ``Y(n) . gamma_c``.

    Args:
        normals: ``[B, *, 3]`` unit normals in view space (per vertex ``[B, V, 3]`` or per pixel
            ``[B, H, W, 3]``).
        gamma: ``[B, 9]`` or ``[B, 27]``.

    Returns:
        ``[B, *, 3]`` RGB irradiance.
    """
    coeffs = sh_coefficients(gamma)  # [B, 3, 9]
    basis = sh_basis(normals)  # [B, *, 9]
    flat = basis.reshape(basis.shape[0], -1, NUM_SH) @ coeffs.transpose(1, 2)  # [B, N, 3]
    return flat.reshape(*normals.shape[:-1], 3)


def shade(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Lambertian SH shading ``albedo * (Y(n) . gamma)``.

    Per-vertex (Gouraud, Deep3D's choice) with ``[B, V, 3]`` inputs whose result is then
    interpolated; per-pixel with interpolated ``[B, H, W, 3]`` inputs (see :func:`shade_pixels`).
    """
    check_shape(albedo, list(normals.shape), "albedo")
    return albedo * sh_irradiance(normals, gamma)


def shade_pixels(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-pixel shading from interpolated ``[B, H, W, 3]`` albedo and (unnormalised) normals.

    Interpolated normals are shorter than unit length inside triangles, so they are renormalised
    first (zero normals of empty pixels stay zero).
    """
    return shade(albedo, F.normalize(normals, dim=-1, eps=1e-12), gamma)
