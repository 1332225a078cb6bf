"""Face-identity network architectures for the feature loss ``L_feat`` of paper Eq. 4.

Each network takes ``[B, 3, S, S]`` RGB in ``[0, 1]`` aligned to its own 5-point template and
exposes ``template`` (a name in :data:`occrecon.alignment.TEMPLATES`), ``input_size`` and
``embedding_dim``: :class:`~occrecon.nets.identity.dlib_resnet.DlibResNet` (128-D) and the
insightface IResNets of :mod:`occrecon.nets.identity.arcface` (512-D).

Pretrained weights are loaded by :func:`occrecon.assets.identity.build_identity_network` (assets
import nets, never the reverse; README "Layout").
"""

from __future__ import annotations

from torch import nn


def freeze(network: nn.Module) -> nn.Module:
    """Put ``network`` in eval mode and stop gradients to its parameters (inputs still get them)."""
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network
