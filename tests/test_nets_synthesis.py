"""Synthesis networks: the composite keeps every pixel outside the mask, the guidance reaches G,
shapes and errors, spectral norm of the discriminator, frozen feature extractors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occrecon.errors import ConfigError, MissingAssetError, ShapeError
from occrecon.nets.patch_discriminator import MultiScalePatchDiscriminator, PatchDiscriminator
from occrecon.nets.synthesis import FrozenFeatures, SynthesisGenerator, one_hot_labels, vgg19_features


def inputs(size: int = 32, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    labels = torch.randint(0, 19, (batch, size, size), generator=g)
    edges = torch.rand(batch, 13, size // 2, size // 2, generator=g)
    mask = (torch.rand(batch, 1, size, size, generator=g) > 0.7).float()
    return image, labels, edges, mask


@pytest.mark.parametrize("conditioning", ["spade", "concat"])
def test_pixels_outside_the_mask_are_bit_identical_to_the_input(conditioning: str) -> None:
    image, labels, edges, mask = inputs()
    net = SynthesisGenerator(width=8, num_blocks=1, conditioning=conditioning)
    out = net(image, labels, edges, mask)
    outside = mask.expand_as(image) < 0.5
    assert outside.any() and (~outside).any()
    assert torch.equal(out["output"][outside], image[outside])  # bit for bit, not allclose
    assert torch.equal(out["output"][~outside], out["generated"][~outside])
    # and the generated pixels really differ from the input somewhere inside the mask
    assert not torch.equal(out["output"][~outside], image[~outside])


def test_occluder_pixels_never_reach_the_generator() -> None:
    """I_in is blanked inside the mask: changing the occluder's pixels leaves G's output unchanged."""
    image, labels, edges, mask = inputs()
    net = SynthesisGenerator(width=8, num_blocks=1)
    other = torch.where(mask > 0.5, torch.rand_like(image), image)
    assert torch.equal(net(image, labels, edges, mask)["generated"], net(other, labels, edges, mask)["generated"])


@pytest.mark.parametrize("conditioning", ["spade", "concat"])
def test_m_fin_and_m_edge_change_the_output_unless_ablated(conditioning: str) -> None:
    image, labels, edges, mask = inputs()
    torch.manual_seed(0)
    net = SynthesisGenerator(width=8, num_blocks=1, conditioning=conditioning)
    base = net(image, labels, edges, mask)["generated"]
    assert not torch.allclose(base, net(image, (labels + 1) % 19, edges, mask)["generated"])
    assert not torch.allclose(base, net(image, labels, edges.flip(-1), mask)["generated"])
    torch.manual_seed(0)
    blind = SynthesisGenerator(width=8, num_blocks=1, conditioning=conditioning, use_parsing=False, use_edges=False)
    assert blind.guide_channels == 1
    assert torch.equal(blind(image, None, None, mask)["generated"], blind(image, labels, edges, mask)["generated"])


def test_labels_and_one_hot_give_the_same_output() -> None:
    image, labels, edges, mask = inputs()
    net = SynthesisGenerator(width=8, num_blocks=1)
    hot = torch.zeros(2, 19, 32, 32).scatter_(1, labels[:, None], 1.0)
    assert torch.equal(net(image, labels, edges, mask)["output"], net(image, hot, edges, mask)["output"])


def test_one_hot_labels_by_hand() -> None:
    labels = torch.tensor([[[0, 2], [255, 1]]])
    hot = one_hot_labels(labels, 3)
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]]).float()
    assert torch.equal(hot[0], expected)  # 255 (ignore) is all zeros


def test_shape_errors_name_what_was_expected() -> None:
    image, labels, edges, mask = inputs()
    net = SynthesisGenerator(width=8, num_blocks=1)
    with pytest.raises(ShapeError, match="M_fin"):
        net(image, None, edges, mask)
    with pytest.raises(ShapeError, match="M_edge"):
        net(image, labels, edges[:, :5], mask)
    with pytest.raises(ShapeError, match="multiples of 4"):
        net(image[..., :30], labels[..., :30], edges, mask[..., :30])
    with pytest.raises(ConfigError, match="conditioning"):
        SynthesisGenerator(conditioning="film")


def test_patchgan_output_size_and_receptive_layers() -> None:
    """64 px, 3 stride-2 layers: 64 -> 32 -> 16 -> 8, then two 4x4 stride-1 convs (pad 1): 7 -> 6."""
    d = MultiScalePatchDiscriminator(3, width=8, num_layers=3, num_scales=2)
    out = d(torch.rand(2, 3, 64, 64))
    assert len(out) == 2 and len(out[0]) == 5
    assert out[0][-1].shape == (2, 1, 6, 6)
    assert out[1][-1].shape == (2, 1, 2, 2)  # 32 px: 16, 8, 4, 3, 2
    assert [f.shape[1] for f in out[0]] == [8, 16, 32, 64, 1]


def test_discriminator_weights_are_spectrally_normalised() -> None:
    """After enough power iterations the largest singular value of every conv weight is 1 (SVD)."""
    d = PatchDiscriminator(3, width=8, num_layers=2)
    d.train()
    for _ in range(30):
        d(torch.rand(1, 3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.reshape(conv.weight.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05


def test_frozen_features_hook_layers_and_keep_eval_mode() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    features = FrozenFeatures(net, ["0", "2"])
    features.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    first, last = features(x)
    assert torch.equal(first, net[0](x)) and torch.equal(last, net(x)) and torch.equal(features.network_output, last)
    last.sum().backward()
    assert x.grad is not None  # the input still gets gradients
    with pytest.raises(ConfigError, match="not found"):
        FrozenFeatures(net, ["features.3"])


def test_vgg_from_a_user_file(tmp_path: Path) -> None:
    """No VGG weights exist here: a random state dict under torchvision's vgg19 key names stands in
    (features.<i>.weight/bias at the conv indices of cfg "E", plus classifier keys that are ignored)."""
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    state, channels = {}, 3
    for index, width in zip(convs, widths, strict=True):
        state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(width)
        channels = width
    state["classifier.0.weight"] = torch.zeros(4096, 25088)[:1]
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    features = vgg19_features(str(path))
    outs = features(torch.rand(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512, 512]
    with pytest.raises(MissingAssetError):
        vgg19_features(str(tmp_path / "missing.pth"))
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="vgg19 state dict"):
        vgg19_features(str(tmp_path / "bad.pth"))
