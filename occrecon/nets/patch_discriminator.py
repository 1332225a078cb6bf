"""Multi-scale PatchGAN discriminator with spectral normalisation (synthesis stage).

One scale is the 70x70 PatchGAN of pix2pix / EdgeConnect: 4x4 convolutions ``width`` (stride 2),
``2 width``, ``4 width`` (stride 2 each, up to ``8 width``), one at stride 1, then a 1-channel
stride-1 convolution giving a patch map of logits; LeakyReLU(0.2); every convolution
spectral-normalised (Miyato et al. 2018; EdgeConnect), no other normalisation. ``num_layers``
is the number of stride-2 convolutions (3 = 70x70 receptive field).

:class:`MultiScalePatchDiscriminator` runs ``num_scales`` such networks on the image downsampled
by 2 between scales (3x3 average pooling, as pix2pixHD / MaskGAN). ``forward`` returns, per scale,
the list of every layer's activation; the last one is the ``[B, 1, h, w]`` logit map (the others
feed the feature-matching loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """One PatchGAN (see the module docstring); ``forward`` returns all layer activations, logits last."""

    def __init__(self, in_channels: int = 3, width: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, out = in_channels, width
        for index in range(num_layers):
            layers.append(self._block(channels, out, stride=2, bias=index == 0))
            channels, out = out, min(2 * out, 8 * width)
        layers.append(self._block(channels, out, stride=1, bias=False))
        layers.append(nn.Sequential(spectral_norm(nn.Conv2d(out, 1, 4, stride=1, padding=1))))
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def _block(in_ch: int, out_ch: int, stride: int, bias: bool) -> nn.Module:
        conv = spectral_norm(nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=bias))
        return nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiScalePatchDiscriminator(nn.Module):
    """``num_scales`` :class:`PatchDiscriminator` s on the image at full, 1/2, 1/4, ... resolution.

    Input ``[B, in_channels, H, W]`` (RGB in ``[0, 1]``, plus any conditioning channels); output
    ``list[scale][layer]`` activations, logits ``[B, 1, h_s, w_s]`` last in each scale.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, num_layers: int = 3, num_scales: int = 2) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, width, num_layers) for _ in range(num_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs
