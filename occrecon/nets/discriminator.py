"""Edge-lines effectiveness discriminator ``D`` (paper §3.2, Eq. 2-3; LAB's boundary discriminator).

``D`` sees an edge-lines map (optionally with the image resized to the map) and outputs one logit
per sample: ``sigmoid(logit)`` is the probability that the map is an *effective* edge-lines map
(a ground-truth map, or a prediction whose lines pass near the ground-truth landmarks, Eq. 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.errors import ShapeError
from occrecon.landmarks import NUM_EDGE_LINES
from occrecon.nets.norm import InstanceNorm2d
from occrecon.utils.checks import check_shape


class EdgeLinesDiscriminator(nn.Module):
    """Strided 3x3 conv stack with InstanceNorm + LeakyReLU(0.2), global average, linear logit.

    Args:
        num_lines: heatmap channels (13).
        image_channels: channels of the conditioning image (3), or 0 for a map-only critic.
        width: channels of the first conv (doubled per level, capped at ``8 * width``).
        num_levels: stride-2 convolutions (4: a 64x64 map becomes 4x4).

    ``forward(heatmaps [B, L, h, w], images [B, 3, H, W] | None)`` returns logits ``[B]``.
    """

    def __init__(
        self, num_lines: int = NUM_EDGE_LINES, image_channels: int = 3, width: int = 64, num_levels: int = 4
    ) -> None:
        super().__init__()
        self.num_lines, self.image_channels = num_lines, image_channels
        layers: list[nn.Module] = []
        in_ch = num_lines + image_channels
        for level in range(num_levels):
            out_ch = width * min(2**level, 8)
            # no normalisation on the first layer (pix2pix/DCGAN practice: keeps the input statistics)
            norm = InstanceNorm2d(out_ch, affine=True) if level else nn.Identity()
            layers += [nn.Conv2d(in_ch, out_ch, 3, 2, 1), norm, nn.LeakyReLU(0.2, inplace=True)]
            in_ch = out_ch
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(in_ch, 1)

    def forward(self, heatmaps: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(heatmaps, ["B", self.num_lines, "h", "w"], "heatmaps")
        x = heatmaps
        if self.image_channels:
            if images is None:
                raise ShapeError("images (this discriminator is conditioned on the image)", "[B, 3, H, W]", ())
            check_shape(images, [heatmaps.shape[0], self.image_channels, "H", "W"], "images")
            small = F.interpolate(
                images, size=heatmaps.shape[-2:], mode="bilinear", align_corners=False, antialias=True
            )
            x = torch.cat([heatmaps, small], dim=1)
        return self.logit(self.body(x).mean(dim=(2, 3))).squeeze(1)
