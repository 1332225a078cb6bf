"""Pieces of the generator on their own: glasses geometry, backgrounds, detail field, multi-worker writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from occrecon.facemodel import load_face_model
from occrecon.synth.backgrounds import textured_background
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset
from occrecon.synth.details import DetailParams, detailed_depth, detailed_normals, displacement
from occrecon.synth.occluders import GlassesStyle, build_glasses
from occrecon.utils.seeding import numpy_generator

STYLE = GlassesStyle("tinted", 0.03, (0.1, 0.1, 0.1), (0.3, 0.5, 0.2), 0.5, 0.9, 0.7, 3.0)


@pytest.fixture(scope="module")
def model():
    return load_face_model("procedural")


def test_glasses_sit_in_front_of_the_eyes_with_temples_going_back(model) -> None:
    verts = model.mean_shape
    glasses = build_glasses(verts, model.landmark_indices, STYLE)
    g = glasses.vertices
    lens = g[glasses.faces[glasses.lens_faces].reshape(-1)]
    eyes = verts[model.landmark_indices[36:48]]
    # lenses: in front of (larger z than) every face vertex inside their x/y extent, around both eyes
    lens_z = lens[:, 2].min()
    x_lo, x_hi, y_lo, y_hi = lens[:, 0].min(), lens[:, 0].max(), lens[:, 1].min(), lens[:, 1].max()
    under = (verts[:, 0] > x_lo) & (verts[:, 0] < x_hi) & (verts[:, 1] > y_lo) & (verts[:, 1] < y_hi)
    assert under.any() and bool((verts[under, 2] < lens_z).all())
    assert bool(
        (eyes[:, 0] > x_lo).all()
        and (eyes[:, 0] < x_hi).all()
        and (eyes[:, 1] > y_lo).all()
        and (eyes[:, 1] < y_hi).all()
    )
    # temples reach behind the face (towards -z) at their height, outside the face's width
    band = (verts[:, 1] > g[:, 1].min()) & (verts[:, 1] < g[:, 1].max())
    assert g[:, 2].min() < verts[band, 2].min()
    assert g[:, 0].min() < verts[:, 0].min() and g[:, 0].max() > verts[:, 0].max()
    # mesh sanity: valid indices, unit normals, colours per vertex
    assert int(glasses.faces.max()) < len(g) and glasses.colours.shape == g.shape
    torch.testing.assert_close(glasses.normals.norm(dim=-1), torch.ones(len(g)), rtol=0, atol=1e-5)


def test_backgrounds_are_textured_and_seeded() -> None:
    a = textured_background(numpy_generator(0, "background", 1), 64)
    b = textured_background(numpy_generator(0, "background", 1), 64)
    c = textured_background(numpy_generator(0, "background", 2), 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # not flat: strong local variation, not just a global gradient
    local = np.abs(np.diff(a.astype(float), axis=1)).mean()
    assert a.std() > 10 and local > 1.0


def test_detail_normals_tilt_against_the_height_gradient() -> None:
    """On the plane z = 0 (normal +z), wrinkles off, the relief h = 0.01 sin(x) (six equal pore
    waves of frequency 1 / 2π along x) has dh/dx = 0.01 cos(x): at x = 0, n' ∝ (-0.01, 0, 1); at
    x = π/2 the slope is 0 and the normal stays +z."""
    anchors = torch.zeros(68, 3)
    anchors[36:42, 0], anchors[42:48, 0] = -0.3, 0.3
    flat = DetailParams(0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.01, torch.zeros(6, 3), torch.full((6,), torch.pi / 2))
    u = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.2, 0.0]])
    torch.testing.assert_close(displacement(u, anchors, flat), torch.full((2,), 0.01))  # sin(π/2): a constant lift
    _, n_flat = detailed_normals(u, torch.tensor([[0.0, 0.0, 1.0]] * 2), anchors, flat)
    torch.testing.assert_close(n_flat, torch.tensor([[0.0, 0.0, 1.0]] * 2))  # no slope: normals unchanged

    freq = torch.tensor([[1.0 / (2 * torch.pi), 0.0, 0.0]] * 6)
    sloped = DetailParams(0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.01, freq, torch.zeros(6))
    u = torch.tensor([[0.0, 0.3, 0.0], [torch.pi / 2, -0.2, 0.0]])
    h, n_detail = detailed_normals(u, torch.tensor([[0.0, 0.0, 1.0]] * 2), anchors, sloped)
    torch.testing.assert_close(h, torch.tensor([0.0, 0.01]))
    expected = torch.tensor([[-0.01, 0.0, 1.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(n_detail, expected / expected.norm(dim=-1, keepdim=True))
    # moving a plane facing the camera by h towards it reduces depth by exactly h
    d = detailed_depth(
        torch.tensor([10.0]), torch.tensor([0.02]), torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    )
    torch.testing.assert_close(d, torch.tensor([9.98]))
    # at 60 degrees incidence the depth change doubles (1 / cos 60)
    n60 = torch.tensor([[np.sin(np.pi / 3), 0.0, np.cos(np.pi / 3)]], dtype=torch.float32)
    d = detailed_depth(torch.tensor([10.0]), torch.tensor([0.02]), n60, torch.tensor([[0.0, 0.0, -1.0]]))
    torch.testing.assert_close(d, torch.tensor([9.96]))


@pytest.mark.slow
def test_worker_count_does_not_change_the_bytes(tmp_path: Path) -> None:
    config = SynthConfig(n=6, size=32, seed=8, shard_size=2, images_per_identity=2)
    one = generate_dataset(config, tmp_path / "one", workers=1, progress=False)
    two = generate_dataset(config, tmp_path / "two", workers=2, progress=False)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(one) == files(two)
