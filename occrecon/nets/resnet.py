"""ResNet backbones (He et al. 2016) with torchvision's exact module names.

torchvision cannot be imported beside the CPU build of torch this project installs, so the
architecture is written here; parameter names match ``torchvision.models.resnetXX`` one to one,
so a torchvision (or any ``resnet*.pth``) state dict loads with ``load_state_dict`` unchanged.
No weights are ever downloaded: pass a checkpoint path to :func:`load_backbone_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from occrecon.errors import ConfigError, DataFormatError, MissingAssetError


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck, stride on the 3x3 (torchvision's "ResNet v1.5")."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


_LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet feature extractor.

    Args:
        depth: 18, 34, 50, 101 or 152.
        base_width: channels of the stem and of ``layer1`` (64 in the paper; smaller for CPU runs).
        dilate_last: replace the strides of ``layer3``/``layer4`` by dilation (output stride 8 or
            16), as segmentation networks do. ``(False, False)`` keeps output stride 32.
        num_classes: size of the ``fc`` head; 0 drops the head and the average pooling.

    ``forward`` returns the classification logits ``[B, num_classes]`` when there is a head,
    else the list of stage outputs ``[layer1, layer2, layer3, layer4]`` (``[B, C_i, H_i, W_i]``).
    """

    def __init__(
        self,
        depth: int = 50,
        base_width: int = 64,
        dilate_last: tuple[bool, bool] = (False, False),
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if depth not in _LAYOUTS:
            raise ConfigError(f"ResNet depth: expected one of {sorted(_LAYOUTS)}, got {depth}")
        block, counts = _LAYOUTS[depth]
        self.in_ch, self.dilation = base_width, 1
        self.conv1 = nn.Conv2d(3, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, base_width, counts[0], 1, False)
        self.layer2 = self._make_layer(block, base_width * 2, counts[1], 2, False)
        self.layer3 = self._make_layer(block, base_width * 4, counts[2], 2, dilate_last[0])
        self.layer4 = self._make_layer(block, base_width * 8, counts[3], 2, dilate_last[1])
        self.out_channels = [base_width * m * block.expansion for m in (1, 2, 4, 8)]
        self.num_classes = num_classes
        if num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.out_channels[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block: type[nn.Module], width: int, count: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.in_ch != width * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_ch, width * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(width * block.expansion),
            )
        layers = [block(self.in_ch, width, stride, previous_dilation, downsample)]
        self.in_ch = width * block.expansion
        layers += [block(self.in_ch, width, 1, self.dilation) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``images``: ``[B, 3, H, W]`` normalised RGB."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        if self.num_classes:
            return self.fc(torch.flatten(self.avgpool(x), 1))
        return features


def load_backbone_weights(module: nn.Module, path: str | Path | None, strict: bool = False) -> list[str]:
    """Load a user-supplied checkpoint (torchvision ``.pth`` or a ``state_dict`` dict) into ``module``.

    Keys absent from ``module`` (e.g. a classifier ``fc``) are ignored unless ``strict``.
    Returns the list of module keys that were *not* initialised from the file. ``None`` is a no-op.
    """
    if path is None:
        return list(module.state_dict())
    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(path, "backbone checkpoint", "Pass the path of a ResNet state dict (e.g. torchvision's resnet50 .pth) or leave it unset to start from scratch.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if strict and len(usable) != len(own):
        raise DataFormatError(path, f"a state dict with the {len(own)} parameters of this ResNet",
                              got=f"{len(own) - len(usable)} missing or of another shape")  # fmt: skip
    module.load_state_dict(usable, strict=False)
    return [k for k in own if k not in usable]
