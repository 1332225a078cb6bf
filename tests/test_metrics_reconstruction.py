"""Reconstruction metrics against hand-computed values (occrecon.metrics.reconstruction)."""

from __future__ import annotations

import math

import pytest
import torch

from occrecon.geometry.rotation import rotation_from_euler
from occrecon.metrics.reconstruction import (
    ReconstructionMetrics,
    align_to,
    coefficient_cosine,
    landmark_nme,
    mode_displacement,
    photometric_error,
    shape_errors,
    umeyama,
    vertex_error,
    visible_modes,
)  # fmt: skip


def _cloud(n: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)


def _rot(pitch: float, yaw: float, roll: float) -> torch.Tensor:
    return rotation_from_euler(torch.tensor([[pitch, yaw, roll]], dtype=torch.float64))


def test_umeyama_recovers_a_known_similarity() -> None:
    x = _cloud()
    rot, s, t = _rot(0.3, -0.5, 0.2), 1.7, torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    y = s * x @ rot.transpose(1, 2) + t
    s_hat, r_hat, t_hat = umeyama(x, y, scale=True)
    assert torch.allclose(s_hat, torch.tensor([s], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(r_hat, rot, atol=1e-9)
    assert torch.allclose(t_hat, t[None], atol=1e-9)
    assert torch.linalg.det(r_hat).item() == pytest.approx(1.0)


def test_umeyama_never_returns_a_reflection() -> None:
    x = _cloud()
    mirrored = x * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    _, r_hat, _ = umeyama(x, mirrored, scale=False)
    assert torch.linalg.det(r_hat).item() == pytest.approx(1.0)


def test_rotated_scaled_copy_similarity_error_zero_rigid_error_known() -> None:
    gt = _cloud(80, seed=3)
    gt = gt - gt.mean(1, keepdim=True)
    s = 1.25
    pred = s * gt @ _rot(0.1, 0.9, -0.3).transpose(1, 2) + torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    assert vertex_error(pred, gt, "similarity").item() == pytest.approx(0.0, abs=1e-9)
    # rigid: the best rotation undoes R (cross-covariance s R^T C is SPD-aligned), the centroid
    # matches, and each vertex keeps a residual (s - 1) |x_i| about the centroid
    expected = (s - 1.0) * gt.norm(dim=-1).mean().item()
    assert vertex_error(pred, gt, "rigid").item() == pytest.approx(expected, rel=1e-9)
    # without alignment the error includes the whole transform
    assert vertex_error(pred, gt, "none").item() > expected


def test_vertex_error_mask_and_translation_only() -> None:
    gt = _cloud(10)
    pred = gt.clone()
    pred[:, 5:] += torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)  # only the second half moves
    mask = torch.zeros(10, dtype=torch.bool)
    mask[5:] = True
    assert vertex_error(pred, gt, "rigid", mask).item() == pytest.approx(0.0, abs=1e-9)
    assert vertex_error(pred, gt, "none", mask).item() == pytest.approx(0.3)


def test_align_to_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="alignment"):
        align_to(_cloud(), _cloud(), "affine")


def test_landmark_nme_hand_computed() -> None:
    gt = torch.zeros(1, 68, 2)
    gt[0, 36], gt[0, 45] = torch.tensor([10.0, 20.0]), torch.tensor([50.0, 20.0])  # inter-ocular 40
    pred = gt.clone()
    pred[0, :, 0] += 2.0  # every point 2 px off
    assert landmark_nme(pred, gt).item() == pytest.approx(2.0 / 40.0)
    visible = torch.zeros(1, 68, dtype=torch.bool)
    visible[0, 0] = True
    pred[0, 1:, 0] += 100.0  # invisible points do not count
    assert landmark_nme(pred, gt, visible).item() == pytest.approx(2.0 / 40.0)


def test_photometric_error_hand_computed() -> None:
    render = torch.zeros(2, 3, 2, 2)
    target = torch.zeros(2, 3, 2, 2)
    target[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # distance 0.5 at one pixel
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, :] = 1.0  # two pixels: 0.5 and 0
    err = photometric_error(render, target, mask)
    assert err[0].item() == pytest.approx(0.25)
    assert math.isnan(err[1].item())  # empty mask


def test_coefficient_cosine() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert torch.allclose(coefficient_cosine(a, b), torch.tensor([0.0, 1.0]))


def test_metric_splits_by_glasses() -> None:
    metric = ReconstructionMetrics(("error_mm", "nme"))
    metric.update({"error_mm": torch.tensor([1.0, 8.0])}, torch.tensor([True, False]))
    metric.update({"error_mm": torch.tensor([5.0]), "nme": torch.tensor([0.1])}, torch.tensor([True]))
    out = metric.compute()
    # three different means: swapping the subsets or averaging batch means would show
    assert out["error_mm"].item() == pytest.approx(14.0 / 3.0)  # (1 + 8 + 5) / 3
    assert out["error_mm_glasses"].item() == pytest.approx(3.0)  # (1 + 5) / 2
    assert out["error_mm_no_glasses"].item() == pytest.approx(8.0)
    assert out["nme"].item() == pytest.approx(0.1)  # NaN (absent) samples are skipped
    assert math.isnan(out["nme_no_glasses"].item())
    assert (out["count"].item(), out["count_glasses"].item(), out["count_no_glasses"].item()) == (3, 2, 1)


def test_mode_displacement_and_visible_modes_by_hand() -> None:
    basis = torch.zeros(2, 3, 2)
    basis[0, :, 0] = torch.tensor([3.0, 4.0, 0.0])  # mode 0 moves vertex 0 by 5, vertex 1 not at all
    basis[:, 0, 1] = 1.0  # mode 1 moves both vertices by 1
    assert mode_displacement(basis).tolist() == pytest.approx([math.sqrt(25 / 2), 1.0])
    assert mode_displacement(basis, torch.tensor([True, False])).tolist() == pytest.approx([5.0, 1.0])
    # x 0.003 units x 100 mm/unit: 1.06 mm and 0.3 mm per sigma -> only mode 0 is visible at 0.4 mm
    assert visible_modes(basis * 0.003, None, 100.0).tolist() == [True, False]
    cos = coefficient_cosine(torch.tensor([[1.0, 5.0]]), torch.tensor([[2.0, -5.0]]), torch.tensor([True, False]))
    assert cos.item() == pytest.approx(1.0)


def test_shape_errors_mean_face_and_size_floor_by_hand() -> None:
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(50, 3, generator=gen)
    mean = mean - mean.mean(0)
    gt = (mean * 1.1)[None]  # the same shape, 10 % larger
    out = shape_errors(gt.clone(), gt, mean, None, mm_per_unit=100.0)
    expected = 0.1 * mean.norm(dim=1).mean().item() * 100.0  # rigid: centroids match, no rotation helps
    assert out["error_mm"].item() == pytest.approx(0.0, abs=1e-3)
    assert out["mean_face_error_sim_mm"].item() == pytest.approx(0.0, abs=1e-3)
    assert out["mean_face_error_mm"].item() == pytest.approx(expected, rel=1e-4)
    assert out["size_floor_mm"].item() == pytest.approx(expected, rel=1e-4)  # the resized truth is the mean face
