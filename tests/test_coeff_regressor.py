"""Coefficient regressor: zero-initialised heads give the mean face; layout order; checkpoints."""

import pytest
import torch

from occrecon.errors import ConfigError
from occrecon.facemodel.layout import CoefficientLayout
from occrecon.nets.coeff_regressor import CoefficientRegressor
from occrecon.nets.resnet import ResNet


@pytest.fixture(scope="module")
def layout():
    return CoefficientLayout.paper(80, 64, 80)


def test_first_prediction_is_the_mean_face(layout):
    torch.manual_seed(0)
    net = CoefficientRegressor(layout.groups, base_width=8)
    y = net(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 239) and torch.equal(y, layout.zeros(2))
    groups = net.forward_groups(torch.rand(1, 3, 64, 64))
    assert [(k, v.shape[1]) for k, v in groups.items()] == list(layout.groups)


def test_output_follows_layout_order(layout):
    net = CoefficientRegressor(layout.sizes, base_width=8)
    with torch.no_grad():  # give each head a distinct constant so the order is visible
        for i, head in enumerate(net.heads.values()):
            head.bias.fill_(float(i + 1))
    y = net(torch.rand(1, 3, 64, 64))
    parts = layout.split(y)
    assert parts.id.eq(1).all() and parts.exp.eq(2).all() and parts.tex.eq(3).all() and parts.gamma.eq(4).all()
    assert torch.cat([parts.angles, parts.scale, parts.translation], 1).eq(5).all()


def test_training_moves_heads_then_backbone():
    torch.manual_seed(0)
    net = CoefficientRegressor({"a": 3, "b": 2}, depth=18, base_width=8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    images, target = torch.rand(4, 3, 64, 64), torch.ones(4, 5)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = (net(images) - target).pow(2).mean()
        loss.backward()
        losses.append(loss.item())
        if len(losses) == 1:  # zero heads block the gradient to the backbone at the very first step
            assert net.backbone.conv1.weight.grad.abs().max() == 0
        opt.step()
    assert net.backbone.conv1.weight.grad.abs().max() > 0
    assert losses[-1] < losses[0]


def test_backbone_checkpoint_and_normalisation(tmp_path):
    source = ResNet(18, base_width=8, num_classes=10)
    torch.save(source.state_dict(), tmp_path / "resnet.pth")
    net = CoefficientRegressor({"a": 4}, depth=18, base_width=8, backbone_weights=tmp_path / "resnet.pth")
    assert net.uninitialised_backbone_keys == []
    torch.testing.assert_close(net.backbone.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    # the ImageNet normalisation happens inside: features of x equal the raw backbone on (x-mean)/std
    x = torch.rand(1, 3, 64, 64)
    net.eval()
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    torch.testing.assert_close(net.features(x), net.backbone((x - mean) / std)[-1].mean(dim=(2, 3)))


def test_invalid_groups():
    with pytest.raises(ConfigError):
        CoefficientRegressor({"a": 0}, base_width=8)
    with pytest.raises(ConfigError):
        CoefficientRegressor([("a", 2), ("a", 3)], base_width=8)
