"""Face parsing network ``N_fa`` (paper §3.1): EAGRNet (Te et al., ECCV 2020) in plain PyTorch.

ResNet backbone (no average pooling, dilated to output stride 8 or 16) -> pyramid pooling
(bins 1, 2, 3, 6) -> Edge-Aware Graph Reasoning on the pyramid features and on ``layer1`` ->
decoder fusing the high-level (1/8 or 1/16) and the low-level (1/4) map with 1x1 convolutions and
upsampling. An edge head on ``layer1..layer3`` predicts the label boundaries whose probability
weights the graph projection. InPlaceABN of the original is replaced by ``BatchNorm2d`` followed
by ``LeakyReLU(0.01)`` (InPlaceABN's default activation); convert with
``nn.SyncBatchNorm.convert_sync_batchnorm`` for DDP.

The graph reasoning is split into small pure functions (:func:`edge_weighted_anchors`,
:func:`graph_projection`, :func:`graph_reason`) so its invariances can be tested directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.errors import ConfigError
from occrecon.nets.resnet import ResNet, load_backbone_weights
from occrecon.utils.checks import check_shape

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_bn_act(in_ch: int, out_ch: int, kernel: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + LeakyReLU(0.01): the ``abn`` block of EAGRNet."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.01, inplace=True),
    )


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """PSP module: average-pool to each bin size, 1x1 conv, upsample, concat with the input, 3x3 conv."""

    def __init__(self, in_ch: int, out_ch: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_act(in_ch, out_ch)) for b in bins)
        self.bottleneck = conv_bn_act(in_ch + len(bins) * out_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_resize(stage(x), x.shape[-2:]) for stage in self.stages]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class EdgeHead(nn.Module):
    """Label-boundary head on three backbone levels, fused at the resolution of the first.

    Per level a 1x1 conv to ``mid_ch`` then a shared 3x3 conv to ``out_ch`` logits; the levels are
    upsampled to level 1 and fused by a 1x1 conv (EAGRNet's ``Edge_Module``).
    """

    def __init__(self, in_channels: tuple[int, int, int], mid_ch: int, out_ch: int = 2) -> None:
        super().__init__()
        self.reduce = nn.ModuleList(conv_bn_act(c, mid_ch) for c in in_channels)
        self.classify = nn.Conv2d(mid_ch, out_ch, 3, padding=1)
        self.fuse = nn.Conv2d(out_ch * len(in_channels), out_ch, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        logits = [_resize(self.classify(reduce(f)), size) for reduce, f in zip(self.reduce, features, strict=True)]
        return self.fuse(torch.cat(logits, dim=1))


def edge_probability(edge_logits: torch.Tensor) -> torch.Tensor:
    """Edge probability ``[B, 1, H, W]`` from 1-channel (sigmoid) or 2-channel (softmax) logits."""
    if edge_logits.shape[1] == 1:
        return torch.sigmoid(edge_logits)
    return torch.softmax(edge_logits, dim=1)[:, 1:2]


def edge_weighted_anchors(proj: torch.Tensor, edge_prob: torch.Tensor, mids: int) -> torch.Tensor:
    """Vertex anchors: edge-weighted projection features pooled on a ``(mids+2)^2`` grid, border dropped.

    Args:
        proj: ``[B, S, H, W]`` projection features.
        edge_prob: ``[B, 1, H, W]`` edge probability (weights pixels on boundaries, EAGRNet step 3).
        mids: vertices per side; ``V = mids^2`` vertices.

    Returns:
        ``[B, S, V]`` anchor of each vertex.
    """
    pooled = F.adaptive_avg_pool2d(proj * edge_prob, mids + 2)[:, :, 1:-1, 1:-1]
    return pooled.flatten(2)


def graph_projection(anchors: torch.Tensor, proj_flat: torch.Tensor) -> torch.Tensor:
    """Soft assignment of pixels to vertices (EAGRNet step 5).

    Args:
        anchors: ``[B, S, V]``.
        proj_flat: ``[B, S, P]`` projection features of the ``P`` pixels.

    Returns:
        ``[B, P, V]`` projection matrix; each pixel's row is a softmax over the vertices (sums to 1).
    """
    return torch.softmax(torch.einsum("bsp,bsv->bpv", proj_flat, anchors), dim=-1)


def graph_reason(
    state_flat: torch.Tensor,
    projection: torch.Tensor,
    node_weight: torch.Tensor,
    node_bias: torch.Tensor | None,
    channel_update: nn.Module,
) -> torch.Tensor:
    """Project -> graph convolution -> reproject (GloRe / EAGRNet steps 6-8, before the residual).

    ``V = S B`` (vertex features), ``H = V A^T + b - V`` (vertex mixing with a learned ``A``, the
    ``(A - I)`` propagation of GloRe), ``V' = relu(W H)`` (channel update), ``Y = V' B^T``.

    Args:
        state_flat: ``[B, S, P]`` state features of the pixels.
        projection: ``[B, P, V]`` from :func:`graph_projection`.
        node_weight: ``[V, V]`` vertex-mixing matrix ``A`` (row = target vertex).
        node_bias: ``[V]`` or ``None``.
        channel_update: maps ``[B, S, V] -> [B, S, V]`` (a 1x1 ``Conv1d`` over channels).

    Returns:
        ``[B, S, P]`` reprojected features. Relabelling the vertices (permuting the columns of
        ``projection`` and rows/columns of ``node_weight``) leaves the result unchanged; permuting
        the pixels of both inputs permutes the output the same way.
    """
    vertices = torch.bmm(state_flat, projection)  # [B, S, V]
    mixed = torch.einsum("bsv,wv->bsw", vertices, node_weight)
    if node_bias is not None:
        mixed = mixed + node_bias
    updated = torch.relu(channel_update(mixed - vertices))
    return torch.bmm(updated, projection.transpose(1, 2))


class EAGRModule(nn.Module):
    """Edge-Aware Graph Reasoning with a residual connection: ``out = x + ABN(conv(Y))``.

    Args:
        in_ch: channels of ``x``.
        state_ch: channels of the vertex state ``S``.
        mids: vertices per side (``V = mids^2``, 16 in EAGRNet).
    """

    def __init__(self, in_ch: int, state_ch: int, mids: int = 4) -> None:
        super().__init__()
        self.mids = mids
        num_vertices = mids * mids
        self.conv_state = nn.Conv2d(in_ch, state_ch, 1)
        self.conv_proj = nn.Conv2d(in_ch, state_ch, 1)
        self.node_conv = nn.Conv1d(num_vertices, num_vertices, 1)
        self.channel_conv = nn.Conv1d(state_ch, state_ch, 1, bias=False)
        self.extend = nn.Sequential(
            nn.Conv2d(state_ch, in_ch, 1, bias=False), nn.BatchNorm2d(in_ch), nn.LeakyReLU(0.01)
        )

    def projection(self, x: torch.Tensor, edge_prob: torch.Tensor) -> torch.Tensor:
        """``[B, P, V]`` projection matrix of ``x`` (``[B, C, H, W]``) given ``edge_prob`` ``[B, 1, H, W]``."""
        proj = self.conv_proj(x)
        anchors = edge_weighted_anchors(proj, edge_prob, self.mids)
        return graph_projection(anchors, proj.flatten(2))

    def forward(self, x: torch.Tensor, edge_prob: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]``; ``edge_prob``: ``[B, 1, h, w]`` (resized to ``H, W``) -> ``[B, C, H, W]``."""
        edge_prob = F.interpolate(edge_prob, size=x.shape[-2:], mode="nearest")
        projection = self.projection(x, edge_prob)
        state = self.conv_state(x).flatten(2)
        weight = self.node_conv.weight[:, :, 0]
        y = graph_reason(state, projection, weight, self.node_conv.bias, self.channel_conv)
        return x + self.extend(y.reshape(x.shape[0], -1, *x.shape[-2:]))


class Decoder(nn.Module):
    """Fuse a high-level and a low-level map: 1x1 convs, upsample high to low, concat, 1x1 convs, classify."""

    def __init__(self, high_ch: int, low_ch: int, mid_ch: int, low_reduced: int, num_classes: int) -> None:
        super().__init__()
        self.high = conv_bn_act(high_ch, mid_ch)
        self.low = conv_bn_act(low_ch, low_reduced)
        self.fuse = nn.Sequential(conv_bn_act(mid_ch + low_reduced, mid_ch), conv_bn_act(mid_ch, mid_ch))
        self.classify = nn.Conv2d(mid_ch, num_classes, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = _resize(self.high(high), low.shape[-2:])
        return self.classify(self.fuse(torch.cat([high, self.low(low)], dim=1)))


class FaceParsingNet(nn.Module):
    """EAGRNet-style face parsing network.

    Args:
        num_classes: parsing classes (19 CelebAMask-HQ, 11 Helen).
        depth: ResNet depth (18, 34, 50, 101; 101 in EAGRNet).
        base_width: ResNet stem/layer1 width (64 standard; e.g. 8 for CPU tests).
        output_stride: 8 (layer3 and layer4 dilated, EAGRNet) or 16 (layer4 dilated).
        psp_channels: pyramid-pooling output channels (512 in EAGRNet).
        edge_channels: 2 (softmax edge/non-edge, EAGRNet) or 1 (sigmoid).
        edge_mid_channels: edge-head width (256 in EAGRNet).
        graph_mids: vertices per side of the graph grid (4 -> 16 vertices).
        decoder_channels: decoder width (256 in EAGRNet); the low-level branch gets
            ``decoder_channels * 3 // 16`` channels (48 of 256, as DeepLabv3+).
        backbone_weights: optional path of a torchvision-style ResNet state dict.

    ``forward(images [B, 3, H, W] in [0, 1])`` returns ``{"parsing": [B, C, H, W] logits,
    "edge": [B, E, H, W] logits}`` at the input size. Images are ImageNet-normalised inside.
    """

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 101,
        base_width: int = 64,
        output_stride: int = 8,
        psp_channels: int = 512,
        edge_channels: int = 2,
        edge_mid_channels: int = 256,
        graph_mids: int = 4,
        decoder_channels: int = 256,
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"model.output_stride: expected 8 or 16, got {output_stride}")
        if edge_channels not in (1, 2):
            raise ConfigError(f"model.edge_channels: expected 1 or 2, got {edge_channels}")
        self.backbone = ResNet(depth, base_width, dilate_last=(output_stride == 8, True), num_classes=0)
        load_backbone_weights(self.backbone, backbone_weights)
        c1, c2, c3, c4 = self.backbone.out_channels
        self.psp = PyramidPooling(c4, psp_channels)
        self.edge_head = EdgeHead((c1, c2, c3), edge_mid_channels, edge_channels)
        self.graph_high = EAGRModule(psp_channels, max(psp_channels // 4, 1), graph_mids)
        self.graph_low = EAGRModule(c1, max(c1 // 4, 1), graph_mids)
        low_reduced = max(decoder_channels * 3 // 16, 1)
        self.decoder = Decoder(psp_channels, c1, decoder_channels, low_reduced, num_classes)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_shape(images, ["B", 3, "H", "W"], "images")
        x1, x2, x3, x4 = self.backbone((images - self.mean) / self.std)
        edge = self.edge_head([x1, x2, x3])
        # detached as in EAGRNet: the edge head learns from its own loss, not through the graph
        edge_prob = edge_probability(edge.detach())
        high = self.graph_high(self.psp(x4), edge_prob)
        low = self.graph_low(x1, edge_prob)
        parsing = self.decoder(high, low)
        size = images.shape[-2:]
        return {"parsing": _resize(parsing, size), "edge": _resize(edge, size)}
