"""Bump-map regressor of the detail stage (paper §3.3): an image-to-image U-Net.

Input ``[B, 11, H, W]``, built by :func:`bump_inputs`: the face image (``I_out``, or ``I_in`` when the
synthesis stage is off; RGB in ``[0, 1]``), its difference to the coarse stage's rendered image
(coarse albedo and SH light on the coarse normals: what the coarse shape does not explain, mostly the
shading of the details), the coarse depth ``d`` (centred on its mean over the face and divided by
:data:`DEPTH_SCALE`), the coarse view-space normals and the face mask.
Output: the bump map ``Phi`` as real codes in ``[0, 255]`` (``127.5 + 127.5 tanh(.)`` on the face,
exactly ``PHI_ZERO`` = 127.5 = "no detail" off it) and a confidence map in ``(0, 1)``.

The last convolution starts at zero, so an untrained network predicts ``Phi = phi(0)`` everywhere:
the detailed surface starts as the coarse one. ``H`` and ``W`` must be divisible by ``2**levels``.
"""

from __future__ import annotations

import torch
from torch import nn

from occrecon.errors import ShapeError
from occrecon.geometry.bump import PHI_SCALE, PHI_ZERO
from occrecon.utils.checks import check_shape

IN_CHANNELS = 11
DEPTH_SCALE = 0.5
"""Decimetres of depth that map to 1 in the network input (a face is about 2 dm deep)."""
RESIDUAL_SCALE = 10.0
"""Gain of the ``image - coarse render`` channels: detail shading changes a pixel by about 1-5 %."""


def bump_inputs(
    image: torch.Tensor, rendered: torch.Tensor, depth: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``[B, 11, H, W]`` network input: image ``[B, 3]``, ``RESIDUAL_SCALE`` x (image - coarse render) ``[B, 3]`` (on the face),
    centred depth ``[B, 1]``, normals ``[B, 3]``, mask ``[B, 1]`` (all ``[B, C, H, W]``)."""
    check_shape(image, ["B", 3, "H", "W"], "image")
    check_shape(rendered, list(image.shape), "rendered")
    check_shape(depth, [image.shape[0], 1, *image.shape[2:]], "depth")
    check_shape(normals, [image.shape[0], 3, *image.shape[2:]], "normals")
    check_shape(mask, [image.shape[0], 1, *image.shape[2:]], "mask")
    mean = (depth * mask).sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True).clamp_min(1.0)
    return torch.cat([image, (image - rendered) * mask * RESIDUAL_SCALE, (depth - mean) * mask / DEPTH_SCALE, normals * mask, mask], 1)


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    groups = max(1, min(8, out_ch // 4))
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_ch),
        nn.ReLU(inplace=True),
    )


class BumpUNet(nn.Module):
    """U-Net ``[B, 11, H, W] -> (Phi [B, 1, H, W] codes, confidence [B, 1, H, W])``.

    Args:
        width: channels of the first level (doubled per level, capped at ``8 * width``).
        levels: number of 2x down-samplings.
        in_channels: input channels (:data:`IN_CHANNELS` for :func:`bump_inputs`).
    """

    def __init__(self, width: int = 32, levels: int = 4, in_channels: int = IN_CHANNELS) -> None:
        super().__init__()
        self.levels = levels
        chans = [min(width * 2**i, width * 8) for i in range(levels + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])])
        self.down.extend(_block(chans[i], chans[i + 1]) for i in range(levels))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(levels))
        self.merge = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in range(levels))
        self.head = nn.Conv2d(chans[0], 2, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, H, W]``, optional face ``mask [B, 1, H, W]`` -> ``(Phi, confidence)``."""
        check_shape(x, ["B", self.down[0][0].in_channels, "H", "W"], "x")
        step = 2**self.levels
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ShapeError("x", f"[B, C, H, W] with H, W divisible by {step}", tuple(x.shape))
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(self.levels)):
            x = self.merge[i](torch.cat([self.up[i](x), skips[i]], 1))
        raw = self.head(x)
        offset = torch.tanh(raw[:, :1])
        if mask is not None:
            offset = offset * mask
        return PHI_ZERO + PHI_SCALE * offset, torch.sigmoid(raw[:, 1:])
