"""Fusion M_fa + M_edge -> M_fin on a hand-drawn face with a glasses band over the eyes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from occrecon.fusion import fuse_nearest, fuse_parsing, fuse_skin, occluded_miou, occluder_mask
from occrecon.labels import CELEBAMASK as L
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.landmarks import edge_line_heatmaps

SIZE = 256


def _arc(x0: float, x1: float, y: float, bulge: float, n: int) -> np.ndarray:
    """``n`` points from ``(x0, y)`` to ``(x1, y)`` on a parabola bulging by ``bulge`` (negative = up)."""
    t = np.linspace(0.0, 1.0, n)
    return np.stack([x0 + (x1 - x0) * t, y + bulge * 4 * t * (1 - t)], 1)


def hand_made_face() -> np.ndarray:
    """68 landmarks ``[68, 2]`` of a frontal cartoon face in a 256x256 image (iBUG order)."""
    p = np.zeros((68, 2))
    angles = np.linspace(np.pi, 0.0, 17)
    p[0:17] = np.stack([128 - 80 * np.cos(angles), 120 + 100 * np.sin(angles)], 1)  # jaw, image-left first
    p[17:22] = _arc(70, 114, 84, -10, 5)
    p[22:27] = _arc(142, 186, 84, -10, 5)
    p[27:31] = np.stack([np.full(4, 128.0), np.linspace(100, 142, 4)], 1)
    p[31:36] = _arc(112, 144, 150, 4, 5)
    for first, x0 in ((36, 76), (42, 148)):
        upper, lower = _arc(x0, x0 + 32, 110, -9, 4), _arc(x0, x0 + 32, 110, 7, 4)
        p[first : first + 4] = upper  # corner, 2 upper-lid points, corner
        p[first + 4], p[first + 5] = lower[2], lower[1]  # lower lid from the far corner back
    p[48:55] = _arc(96, 160, 182, -8, 7)
    p[55:60] = _arc(96, 160, 182, 14, 7)[1:6][::-1]
    p[60:65] = _arc(102, 154, 184, -3, 5)
    p[65:68] = _arc(102, 154, 184, 5, 5)[1:4][::-1]
    return p


def _poly(canvas: np.ndarray, points: np.ndarray, label: int) -> None:
    cv2.fillPoly(canvas, [np.round(points - 0.5).astype(np.int32)], label)


def draw_parsing(p: np.ndarray, brow_thickness: float = 8.0) -> np.ndarray:
    """Ground-truth label map drawn from the landmarks as polygons (independent of the fusion code).

    CelebAMask-HQ sides are the subject's: the image-left brow/eye (points 17-21, 36-41) is r_."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(m, (128, 124), (84, 110), 0, 0, 360, L["skin"], -1)
    for brow, label in ((p[17:22], L["r_brow"]), (p[22:27], L["l_brow"])):
        _poly(m, np.concatenate([brow, brow[::-1] + [0, brow_thickness]]), label)
    _poly(m, np.concatenate([p[27:28], p[31:36]]), L["nose"])
    _poly(m, p[36:42], L["r_eye"])
    _poly(m, p[42:48], L["l_eye"])
    _poly(m, np.concatenate([p[48:55], p[60:65][::-1]]), L["u_lip"])
    _poly(m, np.concatenate([p[54:60], p[48:49], p[60:61], p[67:63:-1]]), L["l_lip"])
    _poly(m, p[60:68], L["mouth"])
    return m.astype(np.int64)


@pytest.fixture(scope="module")
def scene() -> dict[str, torch.Tensor]:
    landmarks = torch.from_numpy(hand_made_face()).float()[None]
    gt = torch.from_numpy(draw_parsing(landmarks[0].numpy()))[None]
    observed = gt.clone()
    observed[:, 70:126, 62:194] = L["eye_g"]  # a glasses band hiding both eyes and the lower brows
    heatmaps = edge_line_heatmaps(landmarks / 4.0, (SIZE // 4, SIZE // 4), sigma=1.0)  # M_edge at 1/4
    return {"gt": gt, "observed": observed, "heatmaps": heatmaps, "landmarks": landmarks}


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


def test_occluder_mask_is_the_glasses_band(scene: dict[str, torch.Tensor]) -> None:
    mask = occluder_mask(scene["observed"], scene["heatmaps"])
    assert mask.shape == (1, 1, SIZE, SIZE)
    assert torch.equal(mask[0, 0].bool(), scene["observed"][0] == L["eye_g"])


def test_occluder_mask_includes_hand_inside_face_hull(scene: dict[str, torch.Tensor]) -> None:
    observed = scene["gt"].clone()
    observed[:, 150:200, 100:160] = L["background"]  # a "hand" over the mouth: unlabelled, as CelebAMask-HQ
    mask = occluder_mask(observed, scene["heatmaps"])[0, 0].bool()
    assert mask[150:200, 100:160].all()
    assert not mask[:, :20].any()  # background beside the face is not an occluder


def test_fusion_restores_eyes_and_beats_baselines(scene: dict[str, torch.Tensor]) -> None:
    gt, observed = scene["gt"], scene["observed"]
    occ = occluder_mask(observed, scene["heatmaps"])
    fused = fuse_parsing(observed, scene["heatmaps"], occluders=occ)
    for name in ("l_eye", "r_eye"):
        assert _iou(fused[0] == L[name], gt[0] == L[name]) > 0.75, name
    for name in ("l_brow", "r_brow"):
        assert _iou(fused[0] == L[name], gt[0] == L[name]) > 0.6, name
    assert torch.equal(fused[occ[:, 0] == 0], observed[occ[:, 0] == 0])  # visible pixels untouched
    n = len(CELEBAMASK_CLASSES)
    ours = occluded_miou(fused, gt, occ, n).item()
    skin = occluded_miou(fuse_skin(observed, occ), gt, occ, n).item()
    nearest = occluded_miou(fuse_nearest(observed, occ), gt, occ, n).item()
    assert ours > 0.7
    assert ours > skin + 0.2 and ours > nearest + 0.2


def test_fusion_from_landmarks_matches_heatmap_path(scene: dict[str, torch.Tensor]) -> None:
    occ = occluder_mask(scene["observed"], scene["heatmaps"])
    fused = fuse_parsing(scene["observed"], landmarks=scene["landmarks"], occluders=occ)
    for name in ("l_eye", "r_eye"):
        assert _iou(fused[0] == L[name], scene["gt"][0] == L[name]) > 0.75, name


def test_baselines_on_a_tiny_map() -> None:
    # row: skin skin [occ occ] nose ; the mask covers columns 2-3
    parsing = torch.tensor([[[1, 1, 3, 3, 2]]])
    occ = torch.tensor([[[[0.0, 0.0, 1.0, 1.0, 0.0]]]])
    assert fuse_skin(parsing, occ).tolist() == [[[1, 1, 1, 1, 2]]]
    assert fuse_nearest(parsing, occ).tolist() == [[[1, 1, 1, 2, 2]]]


def test_occluded_miou_hand_computed() -> None:
    gt = torch.tensor([[[1, 1, 2, 2, 0]]])
    pred = torch.tensor([[[1, 2, 2, 2, 5]]])
    mask = torch.tensor([[[1, 1, 1, 1, 0]]])
    # inside the mask: class 1 IoU 1/2 (1 hit, union 2), class 2 IoU 2/3; the unmasked pixel is ignored
    assert occluded_miou(pred, gt, mask, 6).item() == pytest.approx((0.5 + 2 / 3) / 2)


def test_fusion_restores_lips_under_a_hand(scene: dict[str, torch.Tensor]) -> None:
    gt = scene["gt"]
    observed = gt.clone()
    observed[:, 160:205, 85:172] = L["background"]  # a hand over the mouth, unlabelled as in CelebAMask-HQ
    occ = occluder_mask(observed, scene["heatmaps"])
    fused = fuse_parsing(observed, scene["heatmaps"], occluders=occ)
    for name in ("u_lip", "l_lip", "mouth"):
        assert _iou(fused[0] == L[name], gt[0] == L[name]) > 0.6, name
    n = len(CELEBAMASK_CLASSES)
    ours = occluded_miou(fused, gt, occ, n).item()
    assert ours > occluded_miou(fuse_nearest(observed, occ), gt, occ, n).item() + 0.2
