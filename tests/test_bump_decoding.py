"""Bump-map decoding of paper Eq. 5 (occrecon.geometry.bump): phi / phi^-1, d' = d + phi^-1(Phi),
detailed normals and the grid mesh.

Independent truths: the storage encoding of the synthetic generator (occrecon.synth.details.encode_bump),
hand-derived normals of planes, and mesh counts/orientations worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from occrecon.geometry.bump import (
    PHI_ZERO,
    angular_error_deg,
    bump_code,
    bump_offset,
    detailed_depth,
    detailed_normals,
    grid_mesh,
)
from occrecon.mesh_io import read_obj, read_ply
from occrecon.synth.details import encode_bump

RANGE = 0.04
STEP = RANGE / 127.5  # one quantisation step of the uint8 code, decimetres


def test_inverse_of_the_stored_code_within_one_step() -> None:
    x = torch.linspace(-RANGE, RANGE, 20001, dtype=torch.float64)
    code = torch.from_numpy(encode_bump(x, RANGE).astype(np.float64))  # the data set's rounding (halves up)
    err = (bump_offset(code, RANGE) - x).abs()
    assert err.max() <= 0.5 * STEP + 1e-12  # rounding to the nearest code: half a step
    assert err.max() > 0.45 * STEP  # ... and not better: the code is really quantised
    # the unrounded encoding is inverted exactly
    np.testing.assert_allclose(bump_offset(bump_code(x, RANGE), RANGE), x, atol=1e-15)
    # codes 0 and 255 are -range and +range; beyond them the encoding saturates
    np.testing.assert_allclose(bump_offset(torch.tensor([0.0, 255.0]), RANGE), [-RANGE, RANGE])
    assert bump_code(torch.tensor([-1.0, 1.0]), RANGE).tolist() == [0.0, 255.0]


def test_phi_of_zero_gives_the_coarse_depth_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    depth = 9.0 + torch.rand(2, 1, 5, 6, generator=gen)
    flat = torch.full_like(depth, PHI_ZERO)
    assert PHI_ZERO == float(bump_code(torch.zeros(()), RANGE))
    assert torch.equal(detailed_depth(depth, flat, RANGE), depth)
    assert torch.equal(detailed_depth(depth, flat, RANGE, torch.ones_like(depth)), depth)
    normals = F.normalize(torch.randn(2, 3, 5, 6, generator=gen).abs() + 0.5, dim=1)
    torch.testing.assert_close(detailed_normals(normals, torch.zeros_like(depth), 50.0), normals)


def test_detailed_depth_adds_the_decoded_offset_on_the_mask_only() -> None:
    depth = torch.full((1, 1, 2, 2), 10.0)
    code = torch.tensor([[[[0.0, 255.0], [191.25, 127.5]]]])
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    expected = torch.tensor([[[[10.0 - RANGE, 10.0 + RANGE], [10.0 + RANGE / 2, 10.0]]]])
    torch.testing.assert_close(detailed_depth(depth, code, RANGE, mask), expected)


@pytest.mark.parametrize(("p", "q", "a", "b"), [(0.0, 0.0, 1e-3, 0.0), (0.3, -0.2, 5e-4, -2e-3), (-0.5, 0.4, 0.0, 0.0)])
def test_normals_of_a_tilted_plane_with_a_ramp_offset(p: float, q: float, a: float, b: float) -> None:
    """Coarse plane ``z = -p x - q y`` (normal ∝ (p, q, 1)) plus the offset ``a col + b row``: with
    ``col = s x + c0`` and ``row = -s y + r0`` the detailed surface is ``z = -(p + a s) x - (q - b s) y``,
    whose normal is ∝ ``(p + a s, q - b s, 1)``."""
    s = 40.0
    h, w = 6, 7
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    offset = (a * cols + b * rows)[None, None]
    coarse = F.normalize(torch.tensor([p, q, 1.0], dtype=torch.float64), dim=0).reshape(1, 3, 1, 1).expand(1, 3, h, w)
    got = detailed_normals(coarse, offset, s)[..., 1:-1, 1:-1]  # central differences: the border is one-sided
    expected = F.normalize(torch.tensor([p + a * s, q - b * s, 1.0], dtype=torch.float64), dim=0)
    torch.testing.assert_close(got, expected.reshape(1, 3, 1, 1).expand_as(got), atol=1e-12, rtol=0)


def test_a_bump_tilts_its_flanks_outwards() -> None:
    """A bump towards the camera (negative offset in the middle): the normal on its right flank leans
    to +x, on its upper flank to +y (rows go down, y goes up)."""
    rows, cols = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    offset = -1e-3 * torch.exp(-((rows - 4) ** 2 + (cols - 4) ** 2) / 4.0)[None, None]
    flat = torch.zeros(1, 3, 9, 9)
    flat[:, 2] = 1.0
    n = detailed_normals(flat, offset, 50.0)
    assert n[0, 0, 4, 6] > 0.01 and n[0, 0, 4, 2] < -0.01  # right / left flank
    assert n[0, 1, 2, 4] > 0.01 and n[0, 1, 6, 4] < -0.01  # upper / lower flank
    assert angular_error_deg(n, flat)[0, 0, 4, 4] < 1e-3  # the top is flat


def test_angular_error() -> None:
    a = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    b = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 3, 1, 1)
    assert float(angular_error_deg(a, b)) == pytest.approx(45.0, abs=1e-4)


def test_grid_mesh_counts_orientation_and_files(tmp_path: Path) -> None:
    from occrecon.mesh_io import write_obj, write_ply

    mask = torch.zeros(5, 6)
    mask[1:4, 1:5] = 1  # 3 x 4 pixels: 12 vertices, 2 x 3 quads = 12 triangles
    mask[0, 0] = 1  # an isolated pixel: a vertex without triangles
    depth = torch.full((5, 6), 10.0)
    depth[3, 4] = 11.0  # a jump > max_step removes the one quad that contains pixel (3, 4)
    colours = torch.rand(3, 5, 6)
    verts, tris, rgb = grid_mesh(depth, mask, px_per_unit=20.0, colors=colours)
    assert verts.shape == (13, 3) and tris.shape == (10, 3) and rgb.shape == (13, 3)
    # vertex of pixel (row 1, col 1): x = (1.5 - 3) / 20, y = -(1.5 - 2.5) / 20, z = -10
    np.testing.assert_allclose(verts[1], [-1.5 / 20, 1.0 / 20, -10.0])
    np.testing.assert_allclose(rgb[1], colours[:, 1, 1].double().numpy())
    # counter-clockwise seen from the camera (+z): every face normal has a positive z
    e1, e2 = verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]]
    assert (np.cross(e1, e2)[:, 2] > 0).all()
    for writer, reader in ((write_obj, read_obj), (write_ply, read_ply)):
        v, f, c = reader(writer(tmp_path / f"m.{writer.__name__[-3:]}", verts, tris, rgb))
        assert v.shape == (13, 3) and f.shape == (10, 3) and c.shape == (13, 3)
        np.testing.assert_array_equal(f, tris)
