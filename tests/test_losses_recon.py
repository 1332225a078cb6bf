"""Losses of paper Eq. 4 against hand-computed values, plus the YCbCr skin model."""

import pytest
import torch
from torch import nn

from occrecon.errors import ConfigError, ShapeError
from occrecon.losses.reconstruction import (
    DEFAULT_WEIGHTS,
    IdentityFeatureLoss,
    feature_loss,
    landmark_loss,
    landmark_weights,
    light_colour_loss,
    photometric_loss,
    regularization_loss,
    shape_loss,
)
from occrecon.losses.skin import skin_mask, skin_probability


def test_default_weights_are_the_papers():
    assert (DEFAULT_WEIGHTS["feat"], DEFAULT_WEIGHTS["regu"], DEFAULT_WEIGHTS["phot"], DEFAULT_WEIGHTS["land"]) == (
        0.2,
        3.6e-4,
        1.4,
        1.6e-3,
    )


def test_photometric_hand_value():
    rendered = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 3, 2, 2)
    target[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # distance 5
    target[0, :, 0, 1] = torch.tensor([1.0, 2.0, 2.0])  # distance 3
    target[0, :, 1, 0] = torch.tensor([9.0, 9.0, 9.0])  # masked out
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    assert photometric_loss(rendered, target, mask, eps=0.0).item() == pytest.approx((5 + 3 + 0) / 3)
    half = mask * 0.5  # soft weights: sum(M d) / sum(M) is unchanged by a global factor
    assert photometric_loss(rendered, target, half, eps=0.0).item() == pytest.approx((5 + 3 + 0) / 3)


def test_occluded_pixels_never_pull_the_shape():
    torch.manual_seed(0)
    shape_param = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.rand(1, 3, 8, 8)
    mask = (torch.rand(1, 1, 8, 8) > 0.4).float()

    def loss_and_grad(t):
        shape_param.grad = None
        loss = photometric_loss(torch.sigmoid(shape_param), t, mask)
        loss.backward()
        return loss.detach(), shape_param.grad.clone()

    loss_a, grad_a = loss_and_grad(target)
    occluded = torch.where(mask.bool(), target, torch.full_like(target, float("nan")))  # outside: garbage
    loss_b, grad_b = loss_and_grad(occluded)
    assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)
    outside = ~mask.bool().expand_as(grad_a)
    assert grad_a[outside].abs().max() == 0 and grad_a[~outside].abs().max() > 0


def test_photometric_shape_errors():
    with pytest.raises(ShapeError):
        photometric_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(1, 4, 4))


def test_landmark_weights_follow_deep3d():
    w = landmark_weights()
    boosted = [28, 29, 30, 60, 61, 62, 63, 64, 65, 66, 67]
    assert w[boosted].eq(20).all() and w.sum() == 68 - 11 + 11 * 20
    assert landmark_weights(5).eq(1).all()


def test_landmark_hand_value_and_visibility():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [100.0, 0.0]]])
    weights = torch.tensor([1.0, 2.0, 5.0])
    assert landmark_loss(pred, target, weights).item() == pytest.approx((25 + 2 + 5 * 1e4) / 3)
    visible = torch.tensor([[True, True, False]])
    target_nan = target.clone()
    target_nan[0, 2] = float("nan")  # an invisible point may carry anything
    assert landmark_loss(pred, target_nan, weights, visible).item() == pytest.approx((25 + 2) / 2)


def test_feature_loss_cosines():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    assert feature_loss(a, b).item() == pytest.approx((0 + 1 + 2) / 3)


def test_regularization_hand_value():
    coeffs = {"id": torch.tensor([[1.0, 2.0], [0.0, 0.0]]), "exp": torch.tensor([[1.0], [1.0]]), "tex": torch.tensor([[10.0], [0.0]]),
              "gamma": torch.ones(2, 9)}  # fmt: skip
    expected = (1.0 * 5 + 0.8 * 2 + 1.7e-2 * 100) / 2  # gamma is not regularised here
    assert regularization_loss(coeffs).item() == pytest.approx(expected)
    assert regularization_loss(coeffs, {"id": 2.0}).item() == pytest.approx(2.0 * 5 / 2)


def test_light_colour_loss():
    mono = torch.randn(2, 1, 9).repeat(1, 3, 1).reshape(2, 27)
    assert light_colour_loss(mono).item() == pytest.approx(0.0, abs=1e-12)
    gamma = torch.zeros(1, 3, 9)
    gamma[0, 0, 0] = 3.0  # red ambient only: deviations (2, -1, -1) in one of 9 bands
    assert light_colour_loss(gamma.reshape(1, 27)).item() == pytest.approx((4 + 1 + 1) / 27)


def test_shape_loss_weighting_and_skipping():
    def never():
        raise AssertionError("a term with weight 0 must not be computed")

    terms = {"phot": torch.tensor(2.0), "land": lambda: torch.tensor(100.0), "feat": never}
    total, logs = shape_loss(terms, {"phot": 1.4, "land": 1.6e-3, "feat": 0.0})
    assert total.item() == pytest.approx(2.8 + 0.16)
    assert logs["land"].item() == 100.0 and logs["land_weighted"].item() == pytest.approx(0.16)
    assert "feat" not in logs and logs["total"].item() == pytest.approx(2.96)
    with pytest.raises(ConfigError, match="no weight"):
        shape_loss({"extra": torch.tensor(1.0)}, {"phot": 1.0})
    with pytest.raises(ConfigError, match="zero"):
        shape_loss({"phot": torch.tensor(1.0)}, {"phot": 0.0})


class _TinyIdentity(nn.Module):
    """Stand-in identity net on the ArcFace template (a conv + BN, to watch train/eval)."""

    template, input_size = "arcface", 112

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 8, 8)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)).flatten(1)


def test_identity_feature_loss_is_frozen_and_differentiable():
    torch.manual_seed(0)
    module = IdentityFeatureLoss(_TinyIdentity())
    module.train()
    assert not module.network.training  # stays in eval
    images = torch.rand(2, 3, 120, 120)
    points = torch.tensor([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]]).expand(2, 5, 2) + 4.0
    same = module(images, images, points, points)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    rendered = torch.rand(2, 3, 120, 120, requires_grad=True)
    loss = module(images, rendered, points, points)
    loss.backward()
    assert loss.item() > 0 and rendered.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.network.parameters())


SKIN = [(224, 172, 145), (198, 134, 66), (141, 85, 36), (255, 219, 172), (80, 50, 30)]
NOT_SKIN = [(0, 0, 255), (0, 255, 0), (128, 128, 128), (255, 255, 255), (20, 20, 20), (40, 90, 200)]


def _pixels(colours):
    return torch.tensor(colours, dtype=torch.float32).view(-1, 3, 1, 1) / 255


def test_skin_model_separates_skin_tones_from_other_colours():
    assert skin_probability(_pixels(SKIN)).min() > 0.5
    assert skin_probability(_pixels(NOT_SKIN)).max() < 0.5
    mask = skin_mask(_pixels(SKIN + NOT_SKIN))
    assert mask.shape == (11, 1, 1, 1) and mask.flatten().tolist() == [1.0] * 5 + [0.0] * 6


def test_skin_mask_restricts_the_photometric_loss():
    # a skin-coloured face half and a blue "hand" half: only the skin half enters L_phot
    image = torch.cat([_pixels([SKIN[0]]).expand(1, 3, 4, 2), _pixels([NOT_SKIN[0]]).expand(1, 3, 4, 2)], dim=3)
    mask = skin_mask(image)
    assert mask[..., :2].eq(1).all() and mask[..., 2:].eq(0).all()
    loss = photometric_loss(torch.zeros_like(image), image, mask, eps=0.0)
    assert loss.item() == pytest.approx(torch.tensor(SKIN[0], dtype=torch.float32).div(255).norm().item(), rel=1e-5)


def test_landmark_loss_in_paper_pixels_is_resolution_free():
    # the same face at 128 px and 224 px: offsets scale with the side, the normalised loss does not
    target = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])
    offset = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # px at 128 px -> (1 + 4) / 2 = 2.5 px^2 raw
    weights = torch.ones(2)
    raw_128 = landmark_loss(target + offset, target, weights)
    assert raw_128.item() == pytest.approx(2.5)
    at_128 = landmark_loss(target + offset, target, weights, image_size=128)
    at_224 = landmark_loss((target + offset) * 1.75, target * 1.75, weights, image_size=224)
    assert at_128.item() == pytest.approx(2.5 * 1.75**2) and at_224.item() == pytest.approx(2.5 * 1.75**2)
