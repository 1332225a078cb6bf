"""Stacked-hourglass edge-lines net: shapes, message-passing structure, read-out, trainability."""

from __future__ import annotations

import pytest
import torch

from occrecon.landmarks import EDGE_LINE_NAMES, edge_line_heatmaps
from occrecon.losses.edge_lines import EdgeLinesLoss
from occrecon.nets.discriminator import EdgeLinesDiscriminator
from occrecon.nets.edge_lines import EDGE_LINE_TREE, EdgeLinesNet, MessagePassing, heatmap_soft_argmax


def tiny_net(**kwargs) -> EdgeLinesNet:
    args = dict(num_stacks=2, width=16, hourglass_depth=2, line_channels=4, message_kernel=3)
    args.update(kwargs)
    return EdgeLinesNet(**args)


@pytest.mark.parametrize("size", [(64, 64), (32, 48)])
@pytest.mark.parametrize("stacks", [1, 3])
def test_output_shapes(size: tuple[int, int], stacks: int) -> None:
    out = tiny_net(num_stacks=stacks)(torch.rand(2, 3, *size))
    h, w = size[0] // 4, size[1] // 4
    assert len(out["heatmaps"]) == stacks
    assert all(hm.shape == (2, 13, h, w) for hm in out["heatmaps"])
    assert out["landmark_heatmaps"].shape == (2, 68, h, w)
    assert out["landmarks"].shape == (2, 68, 2)


def test_rejects_sizes_the_hourglass_cannot_halve() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        tiny_net()(torch.rand(1, 3, 40, 40))


def test_declared_tree_spans_the_13_lines() -> None:
    assert len(EDGE_LINE_TREE) == len(EDGE_LINE_NAMES) - 1
    assert {n for edge in EDGE_LINE_TREE for n in edge} == set(range(13))


@pytest.mark.parametrize("edges", [((0, 1), (1, 1)), ((0, 1), (2, 1)), ((0, 5),)])
def test_invalid_trees_are_rejected(edges: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(ValueError):
        MessagePassing(3, 2, edges)


def _dependencies(module: MessagePassing, num_lines: int) -> torch.Tensor:
    """``dep[i, j]``: does output line ``i`` change with input line ``j`` (gradient structure)?"""
    torch.manual_seed(0)
    features = torch.randn(1, num_lines, 2, 6, 6, requires_grad=True)
    out = module(features)
    dep = torch.zeros(num_lines, num_lines, dtype=torch.bool)
    for i in range(num_lines):
        (grad,) = torch.autograd.grad(out[:, i].sum(), features, retain_graph=True)
        dep[i] = grad.abs().flatten(2).sum(-1)[0] > 0
    return dep


def test_messages_flow_only_along_declared_edges() -> None:
    # a forest: 0-1-2 chain and 3-4 pair; line 5 isolated
    module = MessagePassing(6, 2, edges=((0, 1), (1, 2), (3, 4)), kernel=3)
    components = [{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {3, 4}, {3, 4}, {5}]
    expected = torch.tensor([[j in components[i] for j in range(6)] for i in range(6)])
    assert torch.equal(_dependencies(module, 6), expected)


def test_without_edges_lines_are_independent() -> None:
    assert torch.equal(_dependencies(MessagePassing(4, 2, edges=(), kernel=3), 4), torch.eye(4, dtype=torch.bool))


def test_each_heatmap_reads_only_its_own_line_group() -> None:
    net = tiny_net(num_stacks=1, edges=())  # no messages: heatmap i sees only group i
    groups = torch.randn(1, 13, 4, 4, 4, requires_grad=True)
    heat = net.heads[0](net.message[0](groups).flatten(1, 2))
    (grad,) = torch.autograd.grad(heat[:, 7].sum(), groups)
    assert torch.equal(grad.abs().flatten(2).sum(-1)[0] > 0, torch.arange(13) == 7)


def test_soft_argmax_is_in_image_pixels() -> None:
    logits = torch.full((1, 2, 8, 16), -1e4)
    logits[0, 0, 3, 5] = logits[0, 1, 7, 15] = 0.0
    # heatmap pixel (row 3, col 5) has centre (5.5, 3.5); image 4x larger
    torch.testing.assert_close(heatmap_soft_argmax(logits, (32, 64)), torch.tensor([[[22.0, 14.0], [62.0, 30.0]]]))


def test_discriminator_outputs_one_logit_per_sample() -> None:
    d = EdgeLinesDiscriminator(width=8, num_levels=3)
    assert d(torch.rand(3, 13, 16, 16), torch.rand(3, 3, 64, 64)).shape == (3,)
    with pytest.raises(ValueError):
        d(torch.rand(3, 13, 16, 16))
    assert EdgeLinesDiscriminator(image_channels=0, width=8, num_levels=3)(torch.rand(2, 13, 16, 16)).shape == (2,)


@pytest.mark.slow
def test_overfits_two_samples() -> None:
    torch.manual_seed(0)
    net = tiny_net()
    images = torch.rand(2, 3, 64, 64)
    landmarks = torch.rand(2, 68, 2) * 40 + 12
    target = edge_line_heatmaps(landmarks / 4, (16, 16), sigma=1.0)
    loss_fn = EdgeLinesLoss(landmark_weight=1.0, landmark_scale=64.0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(80):
        terms = loss_fn(net(images), target, landmarks)
        first = first if first is not None else {k: v.item() for k, v in terms.items()}
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert terms["mse"].item() < 0.3 * first["mse"]
    assert terms["landmarks"].item() < 0.5 * first["landmarks"]
