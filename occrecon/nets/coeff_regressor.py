"""Coefficient regressor of the coarse 3D stage (paper §3.3): ResNet-50 -> ``y``.

A torchvision-layout ResNet (:class:`occrecon.nets.resnet.ResNet`, optionally initialised from a
user checkpoint) followed by global average pooling and one linear head per coefficient group.
All heads start at zero (weights and biases), so the first prediction is ``y = 0``: the mean face,
frontal, centred, ambient light -- Deep3D found training breaks without this (microsoft#116).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from occrecon.errors import ConfigError
from occrecon.nets.resnet import ResNet, load_backbone_weights
from occrecon.utils.checks import check_shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_groups(groups: Mapping[str, int] | Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    pairs = list(groups.items()) if isinstance(groups, Mapping) else [(str(n), int(s)) for n, s in groups]
    if not pairs or any(size <= 0 for _, size in pairs) or len({n for n, _ in pairs}) != len(pairs):
        raise ConfigError(f"coefficient groups must be unique names with positive sizes, got {pairs}")
    return pairs


class CoefficientRegressor(nn.Module):
    """ResNet + zero-initialised per-group linear heads.

    Args:
        groups: ordered ``name -> size`` (e.g. ``CoefficientLayout.groups`` or ``.sizes``); the
            output concatenates the groups in this order.
        depth: ResNet depth (50 in the paper).
        base_width: ResNet stem width (64 = torchvision ResNet-50; smaller for CPU runs).
        backbone_weights: optional path of a torchvision-layout checkpoint for the backbone.
        imagenet_normalize: normalise ``[0, 1]`` input with the ImageNet mean/std inside the
            network (what a torchvision checkpoint expects).

    ``forward(images [B, 3, H, W] in [0, 1]) -> [B, total]``; :meth:`forward_groups` returns the
    same values as a dict.
    """

    def __init__(
        self,
        groups: Mapping[str, int] | Iterable[tuple[str, int]],
        depth: int = 50,
        base_width: int = 64,
        backbone_weights: str | Path | None = None,
        imagenet_normalize: bool = True,
    ) -> None:
        super().__init__()
        self.groups = _as_groups(groups)
        self.backbone = ResNet(depth=depth, base_width=base_width, num_classes=0)
        self.uninitialised_backbone_keys = load_backbone_weights(self.backbone, backbone_weights)
        features = self.backbone.out_channels[-1]
        self.heads = nn.ModuleDict({name: nn.Linear(features, size) for name, size in self.groups})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.imagenet_normalize = imagenet_normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def num_coefficients(self) -> int:
        return sum(size for _, size in self.groups)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``[B, C]`` of ``images`` ``[B, 3, H, W]`` in ``[0, 1]``."""
        check_shape(images, ["B", 3, "H", "W"], "images")
        if self.imagenet_normalize:
            images = (images - self.mean) / self.std
        return self.backbone(images)[-1].mean(dim=(2, 3))

    def forward_groups(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``name -> [B, size]`` in layout order."""
        pooled = self.features(images)
        return {name: head(pooled) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, total]`` coefficients, groups concatenated in layout order."""
        return torch.cat(list(self.forward_groups(images).values()), dim=1)
