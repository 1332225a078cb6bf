"""Differentiable 5-point similarity alignment (occrecon.alignment)."""

import math

import pytest
import torch

from occrecon.alignment import (
    ARCFACE_TEMPLATE_112,
    TEMPLATES,
    align_faces,
    alignment_matrix,
    dlib_template,
    estimate_similarity,
)
from occrecon.errors import ShapeError


def _similarity(scale: float, angle: float, tx: float, ty: float) -> torch.Tensor:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[c, -s, tx], [s, c, ty]])


def test_recovers_known_similarity_exactly():
    gen = torch.Generator().manual_seed(0)
    src = torch.rand(3, 5, 2, generator=gen) * 100
    matrices = torch.stack(
        [_similarity(1.7, 0.4, 5.0, -3.0), _similarity(0.5, -1.2, 0.0, 8.0), _similarity(1.0, 0.0, 0.0, 0.0)]
    )
    dst = src @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]
    torch.testing.assert_close(estimate_similarity(src, dst), matrices, atol=1e-4, rtol=1e-4)


def test_weights_ignore_an_outlier():
    src = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]]])
    truth = _similarity(2.0, 0.3, 1.0, 2.0)
    dst = src @ truth[:, :2].T + truth[:, 2]
    dst[0, 4] += 50.0  # corrupt one point
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    torch.testing.assert_close(estimate_similarity(src, dst, weights)[0], truth, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(estimate_similarity(src, dst)[0], truth, atol=1e-2)


def test_landmarks_at_the_template_give_the_identity_crop():
    # CONVENTIONS pixel centres are at +0.5; the template is in integer-centre coordinates
    image = torch.rand(1, 3, 112, 112)
    points = torch.tensor(ARCFACE_TEMPLATE_112)[None] + 0.5
    torch.testing.assert_close(alignment_matrix(points), torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(align_faces(image, points, "arcface"), image, atol=1e-4, rtol=0)


def _blob_image(points: torch.Tensor, size: int, sigma: float = 1.5) -> torch.Tensor:
    """One channel per point with a Gaussian at the point (CONVENTIONS coordinates)."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    d2 = (xs[None] - points[:, 0, None, None]) ** 2 + (ys[None] - points[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2))[None]


@pytest.mark.parametrize("name", ["arcface", "dlib"])
def test_points_land_on_the_template(name):
    size, template = TEMPLATES[name]
    # a face at another scale, rotation and position in a 200 px image
    forward = _similarity(1.3, 0.25, 30.0, 12.0)
    points = (template + 0.5) @ forward[:, :2].T + forward[:, 2]
    crop = align_faces(_blob_image(points, 200), points[None], name)
    assert crop.shape == (1, 5, size, size)
    peaks = crop[0].flatten(1).argmax(1)
    found = torch.stack([peaks % size, peaks // size], 1).float()  # integer-centre pixel coordinates
    assert (found - template).abs().max() <= 1.0


def test_gradients_reach_image_and_landmarks():
    image = torch.rand(2, 3, 80, 80, requires_grad=True)
    points = (torch.tensor(ARCFACE_TEMPLATE_112)[None].repeat(2, 1, 1) * 0.6 + 5).requires_grad_(True)
    crop = align_faces(image, points, "arcface")
    (crop * torch.linspace(0, 1, 112)).sum().backward()
    assert image.grad.abs().sum() > 0 and points.grad.abs().sum() > 0
    assert torch.isfinite(points.grad).all()


def test_dlib_template_is_symmetric_and_inside_the_chip():
    template = dlib_template()
    # dlib's mean face is mirror-symmetric about x = 0.490127 (normalised): eyes and mouth corners
    axis = (0.25 + 0.490127) / 1.5 * 150
    torch.testing.assert_close(template[0, 0] + template[1, 0], torch.tensor(2 * axis), atol=1e-3, rtol=0)
    torch.testing.assert_close(template[3, 0] + template[4, 0], torch.tensor(2 * axis), atol=1e-3, rtol=0)
    assert template[0, 1] == pytest.approx(template[1, 1].item(), abs=1e-4)
    assert template[2, 0] == pytest.approx(axis, abs=1e-3)
    assert bool((template > 0).all() and (template < 150).all())
    assert template[0, 1] < template[2, 1] < template[3, 1]  # eyes above nose above mouth


def test_shape_errors():
    with pytest.raises(ShapeError):
        align_faces(torch.rand(1, 3, 20, 20), torch.rand(1, 4, 2))
    with pytest.raises(ValueError):
        align_faces(torch.rand(1, 3, 20, 20), torch.rand(1, 5, 2), template=torch.rand(5, 2))
