"""Parsing and edge-lines losses against hand-computed values; d_gt (Eq. 1) on hand-built cases."""

from __future__ import annotations

import math

import pytest
import torch

from occrecon.landmarks import edge_line_heatmaps
from occrecon.losses.edge_lines import (
    DiscriminatorLoss,
    EdgeLinesLoss,
    adversarial_loss,
    discriminator_loss,
    effectiveness_label,
    heatmap_mse,
    line_precision_recall,
)
from occrecon.losses.parsing import balanced_edge_ce, edge_parsing_ce, label_boundaries, parsing_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ----------------------------------------------------------------------------- parsing


def test_label_boundaries_mark_both_sides_of_a_label_change() -> None:
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]])
    expected = torch.tensor([[[0, 1, 1, 0]] * 3])
    assert torch.equal(label_boundaries(labels), expected)


def test_label_boundaries_use_4_neighbours_and_skip_ignored() -> None:
    labels = torch.zeros(1, 5, 5, dtype=torch.long)
    labels[0, 2, 2] = 3
    labels[0, 0, 4] = 255  # an ignored pixel creates no edge at its neighbours
    edges = label_boundaries(labels)
    expected = torch.zeros(1, 5, 5, dtype=torch.long)
    expected[0, 2, 2] = expected[0, 1, 2] = expected[0, 3, 2] = expected[0, 2, 1] = expected[0, 2, 3] = 1
    expected[0, 0, 4] = 255
    assert torch.equal(edges, expected)


def test_balanced_edge_ce_hand_computed() -> None:
    target = torch.tensor([[[1, 0, 0, 0]]])  # 1 edge, 3 non-edge: w_edge = 3/4, w_non_edge = 1/4
    z = [2.0, 0.0, -1.0, 1.0]
    logits = torch.tensor(z).reshape(1, 1, 1, 4)
    num = 0.75 * softplus(-z[0]) + 0.25 * (softplus(z[1]) + softplus(z[2]) + softplus(z[3]))
    expected = num / (0.75 + 3 * 0.25)
    assert balanced_edge_ce(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # two-class logits [0, z] are the same model (softmax of [0, z] = sigmoid(z))
    two = torch.cat([torch.zeros_like(logits), logits], dim=1)
    assert balanced_edge_ce(two, target).item() == pytest.approx(expected, rel=1e-6)


def test_edge_parsing_ce_averages_per_image() -> None:
    logits = torch.zeros(2, 4, 3, 3)  # uniform over 4 classes: CE = log 4 on every pixel
    labels = torch.zeros(2, 3, 3, dtype=torch.long)
    edges = torch.zeros(2, 3, 3, dtype=torch.long)
    edges[0, 1] = 1  # image 0 has 3 edge pixels, image 1 none (contributes 0)
    assert edge_parsing_ce(logits, labels, edges).item() == pytest.approx(math.log(4) / 2)


def test_parsing_loss_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    outputs = {"parsing": torch.randn(2, 3, 6, 6), "edge": torch.randn(2, 2, 6, 6)}
    labels = torch.randint(0, 3, (2, 6, 6))
    t = parsing_loss(outputs, labels, parse_weight=2.0, edge_weight=0.5, edge_parse_weight=3.0)
    torch.testing.assert_close(t["loss"], 2.0 * t["parse"] + 0.5 * t["edge"] + 3.0 * t["edge_parse"])


# ----------------------------------------------------------------------------- edge lines


def _face_landmarks() -> torch.Tensor:
    """68 random landmarks in a 64x64 heatmap grid (Eq. 1 is per line, any layout will do)."""
    g = torch.Generator().manual_seed(3)
    return (torch.rand(1, 68, 2, generator=g) * 40 + 12).double()


def test_d_gt_is_one_when_lines_pass_through_the_landmarks() -> None:
    lm = _face_landmarks()
    heat = edge_line_heatmaps(lm, (64, 64), sigma=1.0)
    # theta must exceed the band's half-width (1.18 sigma at threshold 0.5): every band pixel counts
    d_gt, share = effectiveness_label(heat, lm, theta=1.5, delta=0.95)
    assert share.item() == 1.0 and d_gt.item() == 1.0


def test_d_gt_is_zero_when_lines_are_shifted_beyond_theta() -> None:
    lm = _face_landmarks()
    heat = edge_line_heatmaps(lm + torch.tensor([8.0, 0.0], dtype=lm.dtype), (64, 64), sigma=1.0)
    d_gt, share = effectiveness_label(heat, lm, theta=2.0, delta=0.5)
    assert d_gt.item() == 0.0 and share.item() < 0.5


def test_d_gt_is_zero_for_an_empty_prediction() -> None:
    d_gt, share = effectiveness_label(torch.zeros(1, 13, 64, 64), _face_landmarks(), theta=3.0, delta=0.1)
    assert d_gt.item() == 0.0 and share.item() == 0.0


def test_line_precision_recall_on_a_single_horizontal_line() -> None:
    # line 0 = points 0..2 on row centre y = 10.5, x 5..15: the pixels it passes through are row 10,
    # columns 4..15 (centres within 0.71 px); predicted: columns 5..9 of row 10 and a stray pixel
    heat = torch.zeros(1, 1, 20, 20)
    heat[0, 0, 10, 5:10] = 1.0
    heat[0, 0, 15, 10] = 1.0  # 4.5 px below the line
    lm = torch.tensor([[[5.0, 10.5], [10.0, 10.5], [15.0, 10.5]]])
    precision, recall = line_precision_recall(heat, lm, 1.5, lines=((0, 1, 2),))
    assert precision.item() == pytest.approx(5 / 6)  # the stray pixel is off the line
    assert recall.item() == pytest.approx(7 / 12)  # columns 4..10 have a predicted centre within 1.5 px
    d_gt, share = effectiveness_label(heat, lm, theta=1.5, delta=0.5, lines=((0, 1, 2),))
    assert share.item() == pytest.approx(7 / 12) and d_gt.item() == 1.0


def test_discriminator_loss_matches_eq2_with_intended_signs() -> None:
    fake, real = torch.tensor([0.3, -1.2]), torch.tensor([2.0, -0.5])
    d_gt = torch.tensor([1.0, 0.0])
    p_fake, p_real = torch.sigmoid(fake), torch.sigmoid(real)
    # L_D = -E[log(1 - |D(G(I)) - d_gt|)] - E[log D(M_gt)]
    expected = -torch.log(1 - (p_fake - d_gt).abs()).mean() - torch.log(p_real).mean()
    torch.testing.assert_close(discriminator_loss(fake, real, d_gt), expected)


def test_adversarial_loss_forms() -> None:
    z = torch.tensor([0.5, -2.0, 1.0], requires_grad=True)
    literal = adversarial_loss(z, non_saturating=False)
    torch.testing.assert_close(literal, torch.log(1 - torch.sigmoid(z)).mean())
    torch.testing.assert_close(adversarial_loss(z), -torch.log(torch.sigmoid(z)).mean())
    # both push D(G(I)) up when minimised
    (grad,) = torch.autograd.grad(literal, z)
    assert (grad < 0).all()


def test_heatmap_mse_sums_weighted_stacks() -> None:
    target = torch.zeros(1, 2, 2, 2)
    preds = [torch.full((1, 2, 2, 2), 1.0), torch.full((1, 2, 2, 2), 0.5)]
    assert heatmap_mse(preds, target, stack_weights=[1.0, 2.0]).item() == pytest.approx(1.0 + 2.0 * 0.25)
    with pytest.raises(ValueError):
        heatmap_mse(preds, target, stack_weights=[1.0])


def test_edge_lines_loss_composition() -> None:
    outputs = {"heatmaps": [torch.full((1, 13, 4, 4), 0.5)], "landmarks": torch.zeros(1, 68, 2)}
    target_lm = torch.zeros(1, 68, 2)
    target_lm[..., 0] = 3.0
    target_lm[..., 1] = 4.0  # every landmark 5 px off
    fake = torch.tensor([0.0])
    loss = EdgeLinesLoss(landmark_weight=2.0, landmark_scale=10.0, adversarial_weight=0.1)
    t = loss(outputs, torch.zeros(1, 13, 4, 4), target_lm, fake)
    assert t["mse"].item() == pytest.approx(0.25)
    assert t["landmarks"].item() == pytest.approx(0.5)
    assert t["adv"].item() == pytest.approx(math.log(2))
    assert t["loss"].item() == pytest.approx(0.25 + 2 * 0.5 + 0.1 * math.log(2))


def test_discriminator_loss_module_uses_eq1_labels() -> None:
    lm = _face_landmarks().float()
    good = edge_line_heatmaps(lm, (64, 64))
    bad = torch.zeros_like(good)
    out = DiscriminatorLoss(theta=1.5, delta=0.9)(
        torch.zeros(2), torch.zeros(2), torch.cat([good, bad]), lm.repeat(2, 1, 1)
    )
    assert out["d_gt"].tolist() == [1.0, 0.0]
    assert out["loss"].item() == pytest.approx(2 * math.log(2))  # all logits 0: BCE = log 2 for each term
