"""Parsing and landmark metrics against hand-computed confusion matrices and error lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occrecon.labels import HELEN_CLASSES, HELEN_OVERALL_F1_CLASSES
from occrecon.metrics.landmarks import LandmarkMetrics, ced_auc
from occrecon.metrics.parsing import FaceParsingMetrics

CLASSES = ("background", "a", "b")


def test_parsing_metrics_hand_computed_over_two_batches() -> None:
    metric = FaceParsingMetrics(CLASSES, overall_f1_classes=("a", "b"))
    # batch 1: truth 0 0 1 1 / pred 0 1 1 2 ; batch 2 (logits): truth 2 2 1 255 / pred 2 2 2 0
    metric.update(torch.tensor([[[0, 1], [1, 2]]]), torch.tensor([[[0, 0], [1, 1]]]))
    logits = torch.nn.functional.one_hot(torch.tensor([[[2, 2], [2, 0]]]), 3).permute(0, 3, 1, 2).float()
    metric.update(logits, torch.tensor([[[2, 2], [1, 255]]]))
    # confusion (rows truth): bg: [1,1,0]; a: [0,1,2]; b: [0,0,2]
    out = metric.compute()
    f1 = {"background": 2 * 1 / (2 + 1), "a": 2 * 1 / (3 + 2), "b": 2 * 2 / (2 + 4)}
    iou = {"background": 1 / 2, "a": 1 / 4, "b": 2 / 4}
    for name in CLASSES:
        assert out[f"f1/{name}"].item() == pytest.approx(f1[name])
        assert out[f"iou/{name}"].item() == pytest.approx(iou[name])
    assert out["f1/mean"].item() == pytest.approx((f1["a"] + f1["b"]) / 2)
    assert out["miou"].item() == pytest.approx(sum(iou.values()) / 3)
    assert out["pixel_accuracy"].item() == pytest.approx(4 / 7)
    # a and b merged: truth {a,b} = 5 pixels, predicted {a,b} = 6, both = 5 -> 2*5/11
    assert out["f1/overall"].item() == pytest.approx(10 / 11)


def test_helen_overall_uses_the_literature_classes() -> None:
    metric = FaceParsingMetrics(HELEN_CLASSES, HELEN_OVERALL_F1_CLASSES)
    target = torch.tensor([[[1, 1, 10, 4]]])  # skin, skin, hair, l_eye
    preds = torch.tensor([[[4, 1, 4, 4]]])  # two skin/hair pixels taken for an eye
    metric.update(preds, target)
    out = metric.compute()
    # group excludes skin and hair: |G| = 1, |P| = 3, |G & P| = 1
    assert out["f1/overall"].item() == pytest.approx(2 / 4)


def _landmarks_with_offsets(offsets: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.zeros(len(offsets), 68, 2)
    gt[:, :, 0] = torch.arange(68.0) / 6.8  # x from 0 to ~9.85
    gt[:, 36] = torch.tensor([0.0, 0.0])
    gt[:, 45] = torch.tensor([10.0, 0.0])  # inter-ocular distance 10
    pred = gt + torch.tensor(offsets).reshape(-1, 1, 1) * torch.tensor([0.6, 0.8])  # |offset| per image
    return pred, gt


def test_landmark_metrics_inter_ocular() -> None:
    metric = LandmarkMetrics("inter_ocular", threshold=0.08)
    pred, gt = _landmarks_with_offsets([0.5, 1.0])
    metric.update(pred[:1], gt[:1])
    metric.update(pred[1:], gt[1:])
    out = metric.compute()  # NMEs 0.05 and 0.10
    assert out["nme"].item() == pytest.approx(0.075)
    assert out["fr@0.08"].item() == pytest.approx(0.5)
    assert out["auc@0.08"].item() == pytest.approx(((0.08 - 0.05) / 0.08 + 0.0) / 2)


def test_landmark_metrics_box_normalised() -> None:
    metric = LandmarkMetrics("box")
    pred, gt = _landmarks_with_offsets([2.0])
    metric.update(pred, gt, boxes=torch.tensor([[0.0, 0.0, 20.0, 5.0]]))  # sqrt(20 * 5) = 10
    assert metric.compute()["nme"].item() == pytest.approx(0.2)


def test_auc_equals_integral_of_the_ced_curve() -> None:
    errors = torch.tensor([0.01, 0.03, 0.03, 0.07, 0.2])
    grid = np.linspace(0.0, 0.08, 80001)
    ced = (errors.numpy()[None, :] <= grid[:, None]).mean(1)
    numeric = np.trapezoid(ced, grid) / 0.08
    assert ced_auc(errors, 0.08).item() == pytest.approx(numeric, abs=1e-4)
