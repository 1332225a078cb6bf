"""Generator of the synthesis stage (paper §3.3, Fig. 1): ``(I_in, M_fin, M_edge, m) -> I_out``.

An EdgeConnect-style inpainting generator (encoder with two stride-2 convolutions, dilated
residual blocks, decoder with two transposed convolutions, ``(tanh + 1) / 2`` output), guided by
the fused parsing map ``M_fin`` and the edge-lines map ``M_edge``. Two ways to bring the guidance
in (``conditioning``):

* ``"concat"`` — the one-hot ``M_fin`` and ``M_edge`` are extra input channels (the paper's
  conclusion: "concatenating the original face parsing map with the face edge lines map");
  normalisation is InstanceNorm with learned affine parameters;
* ``"spade"`` — spatially adaptive normalisation (SPADE, Park et al. 2019; MaskGAN also modulates
  its residual blocks by the label map): every normalisation of the residual blocks and the
  decoder is an affine-free InstanceNorm whose per-pixel scale and shift are predicted from the
  guidance maps resized to that layer. The input then carries only the blanked image and the mask.

The guidance maps are ``[one-hot M_fin | M_edge | m]`` (``use_parsing`` / ``use_edges`` drop the
first two for the ablations). Only the occluder region is replaced:
``I_out = m * G + (1 - m) * I_in``, computed as ``torch.where(m > 0.5, G, I_in)`` so that every
pixel outside the mask is bit-identical to the input (masks are binary, CONVENTIONS.md).

Shapes: images ``[B, 3, H, W]`` in ``[0, 1]``; ``M_fin`` ``[B, H, W]`` int64 labels or ``[B, C, H, W]``
one-hot/probabilities; ``M_edge`` ``[B, 13, h, w]`` in ``[0, 1]`` at any resolution (resized
bilinearly to ``H, W``); the mask ``[B, 1, H, W]`` float in ``{0, 1}``. ``H`` and ``W`` must be
multiples of 4.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.errors import ConfigError, ShapeError
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.landmarks import NUM_EDGE_LINES
from occrecon.nets.norm import InstanceNorm2d

CONDITIONINGS = ("concat", "spade")


def one_hot_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, H, W]`` int64 labels -> ``[B, C, H, W]`` float one-hot; labels outside ``[0, C)`` (255) -> all zeros."""
    valid = (labels >= 0) & (labels < num_classes)
    hot = F.one_hot(torch.where(valid, labels, 0).long(), num_classes).permute(0, 3, 1, 2).float()
    return hot * valid.unsqueeze(1).float()


def composite(generated: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``I_out = m * G + (1 - m) * I_in`` for a binary mask, pixels outside ``m`` bit-identical to ``image``."""
    return torch.where(mask > 0.5, generated, image)


def resize_guide(guide: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``guide [B, C, h, w]`` resized (nearest) to the size of ``like [B, *, H, W]`` and in its
    memory format (channels-last convolutions then need no copy); ``guide`` itself when it
    already matches."""
    fmt = torch.channels_last if like.dim() == 4 and not like.is_contiguous() else torch.contiguous_format
    if guide.shape[-2:] != like.shape[-2:]:
        guide = F.interpolate(guide, size=like.shape[-2:], mode="nearest")
    return guide.contiguous(memory_format=fmt)


class SPADE(nn.Module):
    """Affine-free InstanceNorm modulated per pixel: ``IN(x) * (1 + gamma(s)) + beta(s)`` with ``s``
    the guidance maps resized (nearest) to ``x``'s size (a guide already at that size is used as
    is: the generator resizes it once per resolution, not once per block)."""

    def __init__(self, channels: int, guide_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(guide_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        features = self.shared(resize_guide(guide, x))
        return self.norm(x) * (1.0 + self.gamma(features)) + self.beta(features)


class Norm(nn.Module):
    """InstanceNorm with affine parameters (``concat``) or :class:`SPADE` (``spade``), one call signature."""

    def __init__(self, channels: int, guide_channels: int, spade: bool, hidden: int) -> None:
        super().__init__()
        self.spade = SPADE(channels, guide_channels, hidden) if spade else None
        self.norm = None if spade else InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.spade(x, guide) if self.spade is not None else self.norm(x)


class ResidualBlock(nn.Module):
    """``x + N(conv3x3_dilated(ReLU(N(conv3x3_dilated(x)))))`` (EdgeConnect: dilation 2, no final ReLU)."""

    def __init__(self, channels: int, guide_channels: int, spade: bool, hidden: int, dilation: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, padding_mode="reflect")
        self.norm1 = Norm(channels, guide_channels, spade, hidden)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm2 = Norm(channels, guide_channels, spade, hidden)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), guide))
        return x + self.norm2(self.conv2(y), guide)


class SynthesisGenerator(nn.Module):
    """The generator ``G`` (see the module docstring).

    Args:
        width: channels of the first layer (64 = EdgeConnect); the bottleneck has ``4 * width``.
        num_classes: classes of ``M_fin`` (19, CelebAMask-HQ order).
        edge_channels: channels of ``M_edge`` (13 face edge lines).
        num_blocks: residual blocks at 1/4 resolution (EdgeConnect: 8).
        conditioning: ``"concat"`` or ``"spade"``.
        use_parsing, use_edges: feed ``M_fin`` / ``M_edge`` (False for the ablations; the
            occluder mask is always fed).
        spade_hidden: hidden channels of each SPADE branch (0 = ``width``).
    """

    def __init__(
        self,
        width: int = 64,
        num_classes: int = len(CELEBAMASK_CLASSES),
        edge_channels: int = NUM_EDGE_LINES,
        num_blocks: int = 8,
        conditioning: str = "spade",
        use_parsing: bool = True,
        use_edges: bool = True,
        spade_hidden: int = 0,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ConfigError(f"model.conditioning: expected one of {CONDITIONINGS}, got {conditioning!r}")
        self.num_classes, self.edge_channels = num_classes, edge_channels
        self.conditioning, self.use_parsing, self.use_edges = conditioning, use_parsing, use_edges
        spade = conditioning == "spade"
        guide = (num_classes if use_parsing else 0) + (edge_channels if use_edges else 0) + 1
        self.guide_channels = guide
        in_channels = 3 + 1 + (0 if spade else guide - 1)  # blanked image, mask (+ M_fin, M_edge when concatenated)
        hidden = spade_hidden or width
        w1, w2, w4 = width, 2 * width, 4 * width
        self.stem = nn.Conv2d(in_channels, w1, 7, padding=3, padding_mode="reflect")
        self.stem_norm = InstanceNorm2d(w1, affine=True)
        self.down1 = nn.Conv2d(w1, w2, 4, stride=2, padding=1)
        self.down1_norm = InstanceNorm2d(w2, affine=True)
        self.down2 = nn.Conv2d(w2, w4, 4, stride=2, padding=1)
        self.down2_norm = InstanceNorm2d(w4, affine=True)
        self.blocks = nn.ModuleList(ResidualBlock(w4, guide, spade, hidden) for _ in range(num_blocks))
        self.up1 = nn.ConvTranspose2d(w4, w2, 4, stride=2, padding=1)
        self.up1_norm = Norm(w2, guide, spade, hidden)
        self.up2 = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.up2_norm = Norm(w1, guide, spade, hidden)
        self.head = nn.Conv2d(w1, 3, 7, padding=3, padding_mode="reflect")

    def guidance(
        self, parsing: torch.Tensor | None, edges: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        """``[B, guide_channels, H, W]``: one-hot ``M_fin`` | ``M_edge`` (resized) | mask, as configured."""
        size = tuple(mask.shape[-2:])
        maps: list[torch.Tensor] = []
        if self.use_parsing:
            if parsing is None:
                raise ShapeError("M_fin (required: use_parsing=True)", "[B, H, W] or [B, C, H, W]", ())
            if parsing.dim() == 3:
                parsing = one_hot_labels(parsing, self.num_classes)
            if parsing.shape[1] != self.num_classes or tuple(parsing.shape[-2:]) != size:
                expected = f"[B, {self.num_classes}, {size[0]}, {size[1]}] (or [B, H, W] labels)"
                raise ShapeError("M_fin", expected, tuple(parsing.shape))
            maps.append(parsing.to(mask.dtype))
        if self.use_edges:
            if edges is None or edges.dim() != 4 or edges.shape[1] != self.edge_channels:
                got = () if edges is None else tuple(edges.shape)
                raise ShapeError("M_edge (use_edges=True)", f"[B, {self.edge_channels}, h, w]", got)
            if tuple(edges.shape[-2:]) != size:
                edges = F.interpolate(edges.to(mask.dtype), size=size, mode="bilinear", align_corners=False)
            maps.append(edges.to(mask.dtype))
        maps.append(mask)
        return torch.cat(maps, dim=1)

    def generate(
        self,
        image: torch.Tensor,
        parsing: torch.Tensor | None,
        edges: torch.Tensor | None,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Raw generator output ``G`` ``[B, 3, H, W]`` in ``[0, 1]`` (before compositing)."""
        if image.dim() != 4 or image.shape[1] != 3 or mask.shape != (image.shape[0], 1, *image.shape[-2:]):
            raise ShapeError("image / mask", "[B, 3, H, W] / [B, 1, H, W]", tuple(image.shape) + tuple(mask.shape))
        if image.shape[-1] % 4 or image.shape[-2] % 4:
            raise ShapeError("image", "[B, 3, H, W] with H and W multiples of 4", tuple(image.shape))
        mask = mask.to(image.dtype)
        guide = self.guidance(parsing, edges, mask)
        blanked = image * (1.0 - mask)  # the occluder's pixels never reach G
        x = torch.cat([blanked, mask] if self.conditioning == "spade" else [blanked, guide], dim=1)
        x = F.relu(self.stem_norm(self.stem(x)))
        x = F.relu(self.down1_norm(self.down1(x)))
        x = F.relu(self.down2_norm(self.down2(x)))
        inner = resize_guide(guide, x) if self.conditioning == "spade" else guide  # resized once, not per block
        for block in self.blocks:
            x = block(x, inner)
        x = F.relu(self.up1_norm(self.up1(x), guide))
        x = F.relu(self.up2_norm(self.up2(x), guide))
        return (torch.tanh(self.head(x)) + 1.0) / 2.0

    def forward(
        self,
        image: torch.Tensor,
        parsing: torch.Tensor | None,
        edges: torch.Tensor | None,
        mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``{"generated": G, "output": I_out}``, both ``[B, 3, H, W]``; ``I_out`` equals ``image`` outside ``mask``."""
        generated = self.generate(image, parsing, edges, mask)
        return {"generated": generated, "output": composite(generated, image, mask)}


class FrozenFeatures(nn.Module):
    """Activations of named sub-modules of a frozen network, for the perceptual term.

    ``network`` stays in eval mode with no parameter gradients (its input still gets them);
    ``layers`` are names of ``network.named_modules()``; ``preprocess`` maps ``[0, 1]`` RGB to what
    the network expects (e.g. ImageNet normalisation for VGG). Returns the activations in the
    order of ``layers``; the network's own output of the last call is kept in ``network_output``
    (the parsing logits come for free when the parsing network is the feature source).
    """

    def __init__(self, network: nn.Module, layers: Iterable[str], preprocess: nn.Module | None = None) -> None:
        super().__init__()
        self.network = network.eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.layers = list(layers)
        modules = dict(self.network.named_modules())
        missing = [name for name in self.layers if name not in modules]
        if missing or not self.layers:
            raise ConfigError(
                f"perceptual layers {missing or self.layers} not found in {type(network).__name__} "
                f"(some of its modules: {list(modules)[1:12]})"
            )
        self.preprocess = preprocess
        self.source = type(network).__name__
        self.network_output: object = None
        self._outputs: dict[str, torch.Tensor] = {}
        for name in self.layers:
            modules[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str):  # noqa: ANN202 - a forward hook
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self._outputs[name] = output

        return hook

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.network.eval()  # statistics of a pretrained network never move
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self._outputs = {}
        x = images if self.preprocess is None else self.preprocess(images)
        self.network_output = self.network(x)
        return [self._outputs[name] for name in self.layers]


class ImageNetNormalize(nn.Module):
    """``(x - mean) / std`` with torchvision's ImageNet statistics (VGG's input)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


VGG19_LAYERS: tuple[str, ...] = ("features.1", "features.6", "features.11", "features.20", "features.29")
"""relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of torchvision's ``vgg19`` (EdgeConnect/LaFIn's perceptual layers)."""


VGG19_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # fmt: skip
"""torchvision's ``cfgs["E"]`` (VGG-19): conv widths, ``M`` = 2x2 max-pool."""


class VGG19Features(nn.Module):
    """The convolutional part of VGG-19 with torchvision's parameter names (``features.<i>.weight``),
    so torchvision's ``vgg19-*.pth`` state dict loads (its ``classifier.*`` keys are ignored).
    torchvision itself cannot be installed beside this project's CPU torch build."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG19_CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def vgg19_features(path: str, layers: Iterable[str] = VGG19_LAYERS) -> FrozenFeatures:
    """:class:`FrozenFeatures` of VGG-19 with the user's weights file (torchvision's
    ``vgg19-dcbb9e9d.pth`` state dict). No VGG weights can be downloaded here: the user supplies them."""
    from pathlib import Path

    from occrecon.errors import MissingAssetError

    file = Path(path)
    if not file.is_file():
        raise MissingAssetError(
            file, "model.perceptual.vgg_path (VGG-19 weights)",
            "Supply torchvision's vgg19 state dict (vgg19-dcbb9e9d.pth) yourself; it cannot be downloaded here.",
        )
    network = VGG19Features()
    state = torch.load(file, map_location="cpu", weights_only=True)
    try:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"model.perceptual.vgg_path: {file} is not a torchvision vgg19 state dict: {err}") from err
    return FrozenFeatures(network, layers, ImageNetNormalize())
