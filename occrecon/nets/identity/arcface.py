"""ArcFace IResNet backbones (insightface ``arcface_torch``), key-compatible with ``backbone.pth``.

Same module names as insightface's ``backbones/iresnet.py`` so the user's checkpoint (e.g.
``ms1mv3_arcface_r50_fp16/backbone.pth``, the peers' standard for the feature loss) loads with
``load_state_dict`` unchanged. The fp16 autocast option of insightface is left out (weights are
stored in float32 either way). No weights ship with occrecon.

Block (``IBasicBlock``): ``BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN`` plus the
(optionally downsampled) identity. Network: 3x3 stem + BN + PReLU at 112 px, four stages of
stride 2 (64/128/256/512 ch), BN, flatten ``512 x 7 x 7``, dropout, ``fc`` to 512, ``BatchNorm1d``.

Input: ``[B, 3, 112, 112]`` RGB in ``[0, 1]``, aligned to the ArcFace template
(:func:`occrecon.alignment.align_faces`); the wrapper maps it to ``2x - 1`` as insightface does.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from occrecon.errors import ConfigError, DataFormatError, MissingAssetError
from occrecon.utils.checks import check_shape

ARCFACE_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block of IResNet."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=1e-5)
        self.conv1 = _conv3x3(in_ch, width)
        self.bn2 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn3 = nn.BatchNorm2d(width, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """ArcFace IResNet: ``[B, 3, 112, 112]`` in ``[0, 1]`` -> ``[B, num_features]`` embedding."""

    template = "arcface"
    input_size = 112

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding_dim = num_features
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False  # fixed scale, as in insightface

    def _make_layer(self, width: int, count: int) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.in_ch, width, 1, 2, bias=False), nn.BatchNorm2d(width, eps=1e-5))
        blocks = [IBasicBlock(self.in_ch, width, 2, downsample)]
        self.in_ch = width
        blocks += [IBasicBlock(width, width) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: ``[B, 3, 112, 112]`` RGB in ``[0, 1]``."""
        check_shape(images, ["B", 3, 112, 112], "images")
        x = self.prelu(self.bn1(self.conv1(images * 2.0 - 1.0)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet(arch: str = "iresnet50", num_features: int = 512) -> IResNet:
    """Build an IResNet by insightface's name (``iresnet18/34/50/100``)."""
    if arch not in ARCFACE_LAYERS:
        raise ConfigError(f"ArcFace architecture: expected one of {sorted(ARCFACE_LAYERS)}, got {arch!r}")
    return IResNet(ARCFACE_LAYERS[arch], num_features)


def load_arcface(path: str | Path, arch: str = "iresnet50") -> IResNet:
    """Build ``arch`` and load an insightface ``backbone.pth`` (strict: every key must match)."""
    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(
            path, "ArcFace backbone checkpoint",
            "Download an insightface arcface_torch model (e.g. ms1mv3_arcface_r50_fp16/backbone.pth, "
            "see github.com/deepinsight/insightface/tree/master/model_zoo) and pass its path.",
        )  # fmt: skip
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        raise DataFormatError(path, "a PyTorch state dict (insightface backbone.pth)", got=str(err)[:200]) from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k.removeprefix("module."): v.float() for k, v in state.items()}
    net = iresnet(arch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataFormatError(path, f"an insightface {arch} state dict", got=str(err).splitlines()[0]) from err
    return net
