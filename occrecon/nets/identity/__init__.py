"""Face-identity network architectures for the feature loss ``L_feat`` of paper Eq. 4.

Each network takes ``[B, 3, S, S]`` RGB in ``[0, 1]`` aligned to its own 5-point template and
exposes ``template`` (a name in :data:`occrecon.alignment.TEMPLATES`), ``input_size`` and
``embedding_dim``: :class:`~occrecon.nets.identity.dlib_resnet.DlibResNet` (128-D) and the
insightface IResNets of :mod:`occrecon.nets.identity.arcface` (512-D).

Pretrained weights are loaded by :func:`occrecon.assets.identity.build_identity_network` (assets
import nets, never the reverse; README "Layout").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.alignment import align_faces
from occrecon.landmarks import five_points


def freeze(network: nn.Module) -> nn.Module:
    """Put ``network`` in eval mode and stop gradients to its parameters (inputs still get them)."""
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def identity_input(network: nn.Module, images: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
    """The input of an identity ``network`` (``template``, ``input_size``) for ``[B, 3, H, W]`` images:
    aligned to its 5-point template with the batch's 68 landmarks ``[B, 68, 2]``, else the whole
    image resized to ``input_size`` (both images of a compared pair share their geometry either way)."""
    if landmarks is not None and landmarks.shape[-2] == 68:
        return align_faces(images, five_points(landmarks.float()), network.template, network.input_size)
    size = int(network.input_size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
