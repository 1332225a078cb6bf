"""Synthesis losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from occrecon.errors import ConfigError
from occrecon.losses.synthesis import (
    discriminator_adversarial,
    feature_matching,
    generator_adversarial,
    identity_loss,
    masked_l1,
    parsing_consistency,
    perceptual,
)


def test_masked_l1_averages_over_masked_pixels_and_channels() -> None:
    pred = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 3, 2, 2)
    target[0, :, 0, 0] = torch.tensor([0.3, 0.6, 0.9])  # masked pixel: mean |diff| = 0.6
    target[0, :, 1, 1] = 5.0  # outside the mask: ignored
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 1.0
    mask[0, 0, 0, 1] = 1.0  # masked, zero error
    assert masked_l1(pred, target, mask, eps=0.0).item() == pytest.approx((0.3 + 0.6 + 0.9) / 6)
    assert masked_l1(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_hinge_and_lsgan_by_hand() -> None:
    real = [torch.tensor([2.0, 0.5]), torch.tensor([-1.0])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([1.0])]
    # hinge D: scale 1: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; relu(1-2)=0, relu(1+0)=1 -> 0.5; sum 0.75
    #          scale 2: relu(1+1)=2 ; relu(1+1)=2 -> 4 ; mean over scales (0.75 + 4) / 2
    assert discriminator_adversarial(real, fake, "hinge").item() == pytest.approx((0.75 + 4.0) / 2)
    # hinge G: -mean(fake) per scale: 1.0 and -1.0 -> 0
    assert generator_adversarial(fake, "hinge").item() == pytest.approx(0.0)
    # lsgan D: scale 1: ((1)^2 + (0.5)^2)/2 = 0.625 ; fake (4 + 0)/2 = 2 -> (0.625 + 2)/2
    #          scale 2: (4 + 1)/2 = 2.5 ; mean over scales
    assert discriminator_adversarial(real, fake, "lsgan").item() == pytest.approx(((0.625 + 2) / 2 + 2.5) / 2)
    # lsgan G: scale 1: ((-3)^2 + 1)/2 = 5 ; scale 2: 0 -> 2.5
    assert generator_adversarial(fake, "lsgan").item() == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="hinge"):
        generator_adversarial(fake, "wgan")


def test_feature_matching_skips_logits_and_detaches_real() -> None:
    fake = [[torch.ones(1, 2), torch.full((1, 1), 100.0)], [torch.zeros(1, 4), torch.zeros(1, 1)]]
    real = [[torch.zeros(1, 2, requires_grad=True), torch.zeros(1, 1)], [torch.full((1, 4), 0.5), torch.ones(1, 1)]]
    value = feature_matching(fake, real)
    assert value.item() == pytest.approx((1.0 + 0.5) / 2)  # the logit layers (100, 1) do not count
    assert not value.requires_grad


def test_parsing_consistency_is_cross_entropy_inside_the_mask() -> None:
    logits = torch.zeros(1, 3, 1, 3)
    logits[0, 0, 0, 0] = 2.0  # pixel 0: p(class 0) = e^2 / (e^2 + 2)
    target = torch.tensor([[[0, 1, 255]]])
    mask = torch.tensor([[[[1.0, 1.0, 1.0]]]])
    p0 = math.exp(2) / (math.exp(2) + 2)
    expected = (-math.log(p0) - math.log(1 / 3)) / 2  # pixel 2 is ignored
    assert parsing_consistency(logits, target, mask).item() == pytest.approx(expected)
    only_first = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    assert parsing_consistency(logits, target, only_first).item() == pytest.approx(-math.log(p0))


def test_identity_loss_is_one_minus_cosine() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    expected = ((1 - 1 / math.sqrt(2)) + (1 - (-1))) / 2
    assert identity_loss(a, b).item() == pytest.approx(expected)


def test_perceptual_weights_layers() -> None:
    fake = [torch.ones(1, 1, 2, 2), torch.zeros(1, 3)]
    real = [torch.zeros(1, 1, 2, 2), torch.full((1, 3), 2.0)]
    assert perceptual(fake, real).item() == pytest.approx(1.0 + 2.0)
    assert perceptual(fake, real, [0.5, 0.25]).item() == pytest.approx(0.5 + 0.5)
    with pytest.raises(ConfigError, match="layer weights"):
        perceptual(fake, real, [1.0])
