"""PyTorch port of dlib's ResNet face recogniser (``dlib_face_recognition_resnet_model_v1``).

Architecture as in face-api's TensorFlow.js port (``faceRecognitionNet``), whose weight manifest
:mod:`occrecon.assets.face_api` converts; module names mirror its weight names
(``conv64_1/conv2/scale/weights`` -> ``conv64_1.conv2.scale.weight``):

- every convolution has a bias and is followed by a per-channel affine "scale" layer (dlib's
  ``affine_con``: batch norm folded for inference);
- stem: 7x7 stride-2 ``valid`` convolution (32 ch) + ReLU, 3x3 stride-2 ``valid`` max-pool;
- residual blocks ``relu(x + conv2(relu(conv1(x))))`` with 3x3 ``same`` convolutions;
  3 x 32 ch, then down + 3 x 64, down + 2 x 128, down + 2 x 256, and a final down (256);
- a down block's first conv is 3x3 stride-2 ``valid``; its shortcut is a 2x2 stride-2 average
  pool, zero-padded in channels to the block width; where the conv branch comes out one pixel
  smaller than the pooled shortcut it is zero-padded at the bottom/right (dlib's ``add_prev``
  semantics, as face-api implements them);
- global average pool, then a 256 -> 128 fully connected layer without bias.

Input: ``[B, 3, 150, 150]`` RGB in ``[0, 1]`` (an aligned dlib chip, see
:func:`occrecon.alignment.align_faces` with ``template="dlib"``); the network subtracts the mean
``(122.782, 117.001, 104.298)`` from 0-255 values and divides by 256. Output: ``[B, 128]``
unnormalised descriptors (dlib's same-person threshold is Euclidean distance 0.6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.utils.checks import check_shape

INPUT_SIZE = 150
MEAN_RGB_255 = (122.782, 117.001, 104.298)

# (name, input channels, output channels, is a down block) in forward order.
BLOCKS: tuple[tuple[str, int, int, bool], ...] = (
    ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False), ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)  # fmt: skip


class ChannelAffine(nn.Module):
    """``y = x * weight[c] + bias[c]`` (dlib's inference-time batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConvScale(nn.Module):
    """Convolution with bias followed by :class:`ChannelAffine`; ``padding=0`` is TF ``valid``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=True)
        self.scale = ChannelAffine(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.conv(x))


class ResidualBlock(nn.Module):
    """Residual unit; ``down`` halves the resolution (see the module docstring)."""

    def __init__(self, in_ch: int, out_ch: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(in_ch, out_ch, 3, 2 if down else 1, 0 if down else 1)
        self.conv2 = ConvScale(out_ch, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        shortcut = F.avg_pool2d(x, 2, 2)
        # stride-2 valid 3x3 gives floor((n-3)/2)+1, the pool floor(n/2): pad the branch to match
        out = F.pad(out, (0, shortcut.shape[-1] - out.shape[-1], 0, shortcut.shape[-2] - out.shape[-2]))
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, out.shape[1] - shortcut.shape[1]))
        return F.relu(out + shortcut)


class DlibResNet(nn.Module):
    """dlib's 29-layer ResNet face recogniser: ``[B, 3, 150, 150]`` in ``[0, 1]`` -> ``[B, 128]``.

    Load converted face-api weights with
    ``net.load_state_dict(occrecon.assets.face_api.load_face_recognition_state_dict())``.
    """

    template = "dlib"
    input_size = INPUT_SIZE
    embedding_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv32_down = ConvScale(3, 32, 7, 2, 0)
        for name, in_ch, out_ch, down in BLOCKS:
            self.add_module(name, ResidualBlock(in_ch, out_ch, down))
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB_255).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: ``[B, 3, H, W]`` RGB in ``[0, 1]``; resized bilinearly to 150 px if needed."""
        check_shape(images, ["B", 3, "H", "W"], "images")
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = (images * 255.0 - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.conv32_down(x)), 3, 2)
        for name, *_ in BLOCKS:
            x = getattr(self, name)(x)
        return self.fc(x.mean(dim=(2, 3)))
