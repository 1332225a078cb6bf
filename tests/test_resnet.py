"""The hand-written ResNet matches torchvision's architecture (names, sizes, strides)."""

import pytest
import torch

from occrecon.errors import MissingAssetError
from occrecon.nets.resnet import ResNet, load_backbone_weights

# Parameter counts of torchvision.models.resnet18/50 with a 1000-class head (published figures).
TORCHVISION_PARAMS = {18: 11_689_512, 50: 25_557_032}


@pytest.mark.parametrize("depth", [18, 50])
def test_parameter_count_matches_torchvision(depth):
    model = ResNet(depth, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[depth]


def test_torchvision_key_names():
    keys = set(ResNet(50, num_classes=1000).state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.bias"):
        assert key in keys


def test_strides_and_dilation():
    x = torch.rand(1, 3, 64, 64)
    feats = ResNet(18, base_width=8)(x)
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    feats = ResNet(18, base_width=8, dilate_last=(True, True))(x)
    assert [f.shape[-1] for f in feats] == [16, 8, 8, 8]


def test_load_backbone_weights(tmp_path):
    source = ResNet(18, base_width=8, num_classes=10)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    target = ResNet(18, base_width=8)
    missing = load_backbone_weights(target, tmp_path / "w.pth")
    assert missing == []
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)
    with pytest.raises(MissingAssetError, match="nope.pth"):
        load_backbone_weights(target, tmp_path / "nope.pth")
