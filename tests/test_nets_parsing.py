"""EAGR face parsing network: shapes, graph-reasoning invariances, trainability."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from occrecon.losses.parsing import parsing_loss
from occrecon.nets.parsing import EAGRModule, FaceParsingNet, edge_weighted_anchors, graph_projection, graph_reason


def tiny_net(**kwargs) -> FaceParsingNet:
    args = dict(num_classes=5, depth=18, base_width=8, psp_channels=16, edge_mid_channels=8, decoder_channels=16)
    args.update(kwargs)
    return FaceParsingNet(**args)


@pytest.mark.parametrize("depth,output_stride,edge_channels", [(18, 8, 2), (50, 16, 1)])
@pytest.mark.parametrize("size", [(64, 64), (72, 40)])
def test_output_shapes(depth: int, output_stride: int, edge_channels: int, size: tuple[int, int]) -> None:
    net = tiny_net(depth=depth, output_stride=output_stride, edge_channels=edge_channels)
    out = net(torch.rand(2, 3, *size))
    assert out["parsing"].shape == (2, 5, *size)
    assert out["edge"].shape == (2, edge_channels, *size)


def test_backbone_has_no_average_pooling_and_bn_converts_to_sync() -> None:
    net = tiny_net()
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.backbone.modules())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())


def test_projection_rows_sum_to_one() -> None:
    module = EAGRModule(in_ch=6, state_ch=4, mids=3)
    proj = module.projection(torch.randn(2, 6, 10, 12), torch.rand(2, 1, 10, 12))
    assert proj.shape == (2, 120, 9)
    torch.testing.assert_close(proj.sum(-1), torch.ones(2, 120))


def test_anchors_are_edge_weighted() -> None:
    proj = torch.ones(1, 2, 8, 8)
    edge = torch.ones(1, 1, 8, 8)
    edge[..., :4] = 0.0  # no edges in the left half
    anchors = edge_weighted_anchors(proj, edge, mids=2).reshape(1, 2, 2, 2)  # 4x4 pool, inner 2x2
    # pooled cells cover 2x2 pixels: inner-left cells (cols 2-3) see no edges, inner-right (cols 4-5) all edges
    torch.testing.assert_close(anchors[0, :, :, 0], torch.zeros(2, 2))
    torch.testing.assert_close(anchors[0, :, :, 1], torch.ones(2, 2))


def _reasoning_inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(2, 4, 30, generator=g)
    proj_flat = torch.randn(2, 4, 30, generator=g)
    anchors = torch.randn(2, 4, 6, generator=g)
    weight, bias = torch.randn(6, 6, generator=g), torch.randn(6, generator=g)
    return state, proj_flat, anchors, weight, bias


def test_graph_reasoning_is_pixel_permutation_equivariant() -> None:
    state, proj_flat, anchors, weight, bias = _reasoning_inputs()
    channel = nn.Conv1d(4, 4, 1, bias=False)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    out = graph_reason(state, graph_projection(anchors, proj_flat), weight, bias, channel)
    out_perm = graph_reason(state[..., perm], graph_projection(anchors, proj_flat[..., perm]), weight, bias, channel)
    torch.testing.assert_close(out_perm, out[..., perm])


def test_graph_reasoning_is_invariant_to_vertex_relabelling() -> None:
    state, proj_flat, anchors, weight, bias = _reasoning_inputs()
    channel = nn.Conv1d(4, 4, 1, bias=False)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out = graph_reason(state, graph_projection(anchors, proj_flat), weight, bias, channel)
    relabelled = graph_reason(
        state, graph_projection(anchors[..., perm], proj_flat), weight[perm][:, perm], bias[perm], channel
    )
    torch.testing.assert_close(relabelled, out)


@pytest.mark.slow
def test_overfits_two_samples() -> None:
    torch.manual_seed(0)
    net = tiny_net(num_classes=3)
    images = torch.rand(2, 3, 32, 32)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[0, 8:24, 8:20] = 1
    labels[1, 4:16, 10:30] = 2
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(60):
        loss = parsing_loss(net(images), labels)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # train-mode BN: 60 steps are too few for the running statistics
        accuracy = (net(images)["parsing"].argmax(1) == labels).float().mean().item()
    assert accuracy > 0.95
