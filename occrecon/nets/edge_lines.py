"""Face edge-lines estimator ``G`` (paper §3.2): stacked hourglasses with message passing.

Each stack (an hourglass, Newell et al. 2016; the paper's "U-Net" unit) ends with an
**intra-level** message-passing layer (Chu et al., CVPR 2016, as LAB): the stack features are
split into one feature group per edge line, messages travel between the groups along a declared
tree over the face structure (:data:`EDGE_LINE_TREE`) in both directions (leaves -> root and
root -> leaves), each message a learned convolution ``T_{j->i}`` per directed edge; a per-line
1x1 head turns each group into its heatmap. **Inter-level** message passing adds the
message-passing features of the previous stacks (``inter_level_span`` of them) to the next
stack's input. The 13 heatmaps follow :data:`occrecon.landmarks.EDGE_LINE_NAMES`, at 1/4 of the
input resolution. A landmark read-out (68 per-landmark heatmaps + soft-argmax) gives
``[B, 68, 2]`` coordinates in input-image pixels (``CONVENTIONS.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.geometry.subpix import spatial_soft_argmax2d
from torch import nn

from occrecon.errors import ConfigError, ShapeError
from occrecon.landmarks import EDGE_LINE_NAMES, NUM_EDGE_LINES, NUM_LANDMARKS_68
from occrecon.utils.checks import check_shape


def _tree(*pairs: tuple[str, str]) -> tuple[tuple[int, int], ...]:
    return tuple((EDGE_LINE_NAMES.index(p), EDGE_LINE_NAMES.index(c)) for p, c in pairs)


EDGE_LINE_TREE: tuple[tuple[int, int], ...] = _tree(
    ("nose_bridge", "l_brow"), ("nose_bridge", "r_brow"), ("l_brow", "l_eye_upper"), ("l_eye_upper", "l_eye_lower"),
    ("r_brow", "r_eye_upper"), ("r_eye_upper", "r_eye_lower"), ("nose_bridge", "nose_bottom"),
    ("nose_bottom", "upper_lip_outer"), ("upper_lip_outer", "upper_lip_inner"), ("upper_lip_inner", "lower_lip_inner"),
    ("lower_lip_inner", "lower_lip_outer"), ("lower_lip_outer", "chin"),
)  # fmt: skip
"""(parent, child) edges over the 13 lines, rooted at the nose bridge: brows -> eyelids,
nose -> lips -> chin. Each pair is an undirected edge of the face structure."""


def _topological_order(num_nodes: int, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """Parents before children; raises if ``edges`` is not a forest (a node with two parents or a cycle)."""
    parent: dict[int, int] = {}
    for p, c in edges:
        if c in parent or not (0 <= p < num_nodes and 0 <= c < num_nodes):
            raise ConfigError(f"message-passing edges: expected a forest over {num_nodes} nodes, got {edges}")
        parent[c] = p
    order: list[int] = [n for n in range(num_nodes) if n not in parent]
    for node in order:
        order += [c for p, c in edges if p == node]
    if len(order) != num_nodes:
        raise ConfigError(f"message-passing edges: expected a forest, got a cycle in {edges}")
    return order


class Residual(nn.Module):
    """Bottleneck residual block (BN-ReLU-conv, pre-activation as Newell's hourglass)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = max(out_ch // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, out_ch, 1),
        )  # fmt: skip
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """Recursive hourglass: ``depth`` max-pool halvings, residual blocks, nearest upsampling + skip adds."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.skip = Residual(width, width)
        self.down = Residual(width, width)
        self.inner = Hourglass(width, depth - 1) if depth > 1 else Residual(width, width)
        self.up = Residual(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class MessagePassing(nn.Module):
    """Bidirectional tree message passing between per-line feature groups (Chu et al. 2016).

    Up pass (leaves first): ``u_i = relu(f_i + sum_{children c} T^up_{c->i}(u_c))``.
    Down pass (root first): ``d_i = relu(f_i + T^down_{parent->i}(d_parent))``.
    Output ``h_i = relu(W_i [u_i, d_i])`` (per-line 1x1 conv). ``h_i`` depends on ``f_j`` only if
    ``j`` is connected to ``i`` through ``edges``; disconnected components never exchange messages.

    Args:
        num_lines: number of nodes (13).
        channels: feature channels per line.
        edges: (parent, child) pairs forming a forest.
        kernel: size of the message convolutions (LAB/Chu use 7 at 64x64).
    """

    def __init__(
        self, num_lines: int, channels: int, edges: tuple[tuple[int, int], ...] = EDGE_LINE_TREE, kernel: int = 7
    ) -> None:
        super().__init__()
        self.num_lines, self.channels, self.edges = num_lines, channels, tuple(edges)
        self.order = _topological_order(num_lines, self.edges)
        self.up = nn.ModuleDict(
            {f"{c}_{p}": nn.Conv2d(channels, channels, kernel, padding=kernel // 2) for p, c in self.edges}
        )
        self.down = nn.ModuleDict(
            {f"{p}_{c}": nn.Conv2d(channels, channels, kernel, padding=kernel // 2) for p, c in self.edges}
        )
        self.combine = nn.Conv2d(2 * channels * num_lines, channels * num_lines, 1, groups=num_lines)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``[B, L, C, H, W]`` per-line groups -> ``[B, L, C, H, W]``."""
        check_shape(features, ["B", self.num_lines, self.channels, "H", "W"], "features")
        f = list(features.unbind(1))
        up: list[torch.Tensor | None] = [None] * self.num_lines
        for node in reversed(self.order):
            messages = [self.up[f"{c}_{p}"](up[c]) for p, c in self.edges if p == node]
            up[node] = torch.relu(f[node] + sum(messages)) if messages else torch.relu(f[node])
        down: list[torch.Tensor | None] = [None] * self.num_lines
        for node in self.order:
            message = [self.down[f"{p}_{c}"](down[p]) for p, c in self.edges if c == node]
            down[node] = torch.relu(f[node] + message[0]) if message else torch.relu(f[node])
        both = torch.cat([torch.cat([u, d], dim=1) for u, d in zip(up, down, strict=True)], dim=1)  # line-major groups
        out = torch.relu(self.combine(both))
        return out.reshape(features.shape)


class EdgeLinesNet(nn.Module):
    """Stacked-hourglass face edge-lines estimator with intra/inter-level message passing.

    Args:
        num_stacks: hourglass stacks (4 in LAB).
        width: hourglass channels (256 in LAB; e.g. 16 for CPU tests).
        hourglass_depth: halvings inside each hourglass (4 at 64x64 heatmaps).
        line_channels: feature channels per line in message passing (16 in LAB).
        message_kernel: message convolution size.
        inter_level_span: how many previous stacks send their message features to the next.
        num_landmarks: landmarks of the read-out head (68).
        edges: message-passing tree (default :data:`EDGE_LINE_TREE`).

    ``forward(images [B, 3, H, W] in [0, 1])`` returns ``{"heatmaps": [num_stacks x [B, 13, H/4, W/4]]``
    (stack order, the last is the prediction), ``"landmark_heatmaps": [B, N, H/4, W/4]`` logits,
    ``"landmarks": [B, N, 2]`` in input pixels ``(x, y)``}``. ``H`` and ``W`` must be multiples of
    ``4 * 2**hourglass_depth``.
    """

    def __init__(
        self,
        num_stacks: int = 4,
        width: int = 256,
        hourglass_depth: int = 4,
        line_channels: int = 16,
        message_kernel: int = 7,
        inter_level_span: int = 2,
        num_landmarks: int = NUM_LANDMARKS_68,
        edges: tuple[tuple[int, int], ...] = EDGE_LINE_TREE,
    ) -> None:
        super().__init__()
        lines, self.line_channels, self.hourglass_depth = NUM_EDGE_LINES, line_channels, hourglass_depth
        self.inter_level_span = inter_level_span
        half = max(width // 2, 1)
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 7, 2, 3), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            Residual(half, half), nn.MaxPool2d(2), Residual(half, half), Residual(half, width),
        )  # fmt: skip
        self.hourglasses = nn.ModuleList(Hourglass(width, hourglass_depth) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                Residual(width, width), nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
            )
            for _ in range(num_stacks)
        )
        self.to_lines = nn.ModuleList(nn.Conv2d(width, lines * line_channels, 1) for _ in range(num_stacks))
        self.message = nn.ModuleList(
            MessagePassing(lines, line_channels, edges, message_kernel) for _ in range(num_stacks)
        )
        # one 1x1 head per line (grouped): heatmap i sees only line i's message-passing features
        self.heads = nn.ModuleList(nn.Conv2d(lines * line_channels, lines, 1, groups=lines) for _ in range(num_stacks))
        self.remap_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(num_stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(lines, width, 1) for _ in range(num_stacks - 1))
        self.inter_level = nn.ModuleList(nn.Conv2d(lines * line_channels, width, 1) for _ in range(num_stacks - 1))
        self.landmark_head = nn.Sequential(Residual(width + lines, width), nn.Conv2d(width, num_landmarks, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        check_shape(images, ["B", 3, "H", "W"], "images")
        multiple = 4 * 2**self.hourglass_depth
        if images.shape[-1] % multiple or images.shape[-2] % multiple:
            raise ShapeError("images", f"[B, 3, H, W] with H and W multiples of {multiple}", tuple(images.shape))
        x = self.stem((images - 0.5) * 2.0)
        heatmaps: list[torch.Tensor] = []
        messages: list[torch.Tensor] = []  # per-stack message-passing features, flattened lines
        for k, hourglass in enumerate(self.hourglasses):
            feats = self.features[k](hourglass(x))
            groups = self.to_lines[k](feats).unflatten(1, (NUM_EDGE_LINES, self.line_channels))
            passed = self.message[k](groups).flatten(1, 2)
            heat = self.heads[k](passed)
            heatmaps.append(heat)
            messages.append(passed)
            if k + 1 < len(self.hourglasses):
                # inter-level: the message features of the last `span` stacks, summed, into the next input
                recent = messages[-self.inter_level_span :] if self.inter_level_span > 0 else []
                inter = self.inter_level[k](sum(recent)) if recent else 0.0
                x = x + self.remap_features[k](feats) + self.remap_heatmaps[k](heat) + inter
        landmark_logits = self.landmark_head(torch.cat([feats, heatmaps[-1]], dim=1))
        landmarks = heatmap_soft_argmax(landmark_logits, images.shape[-2:])
        return {"heatmaps": heatmaps, "landmark_heatmaps": landmark_logits, "landmarks": landmarks}


def heatmap_soft_argmax(
    logits: torch.Tensor, image_size: tuple[int, int] | torch.Size, temperature: float = 1.0
) -> torch.Tensor:
    """Soft-argmax of per-landmark heatmap logits, in image pixel coordinates.

    Softmax over each ``[h, w]`` map (kornia ``spatial_soft_argmax2d``, which returns pixel
    *indices*); adding 0.5 moves to the pixel-centre frame of ``CONVENTIONS.md`` and the
    heatmap-to-image scale is ``W / w`` (resp. ``H / h``).

    Args:
        logits: ``[B, N, h, w]``.
        image_size: ``(H, W)`` of the image the coordinates refer to.

    Returns:
        ``[B, N, 2]`` ``(x, y)`` in image pixels.
    """
    xy = spatial_soft_argmax2d(logits, torch.tensor(temperature, device=logits.device), normalized_coordinates=False)
    scale = torch.tensor(
        [image_size[1] / logits.shape[-1], image_size[0] / logits.shape[-2]], device=logits.device, dtype=xy.dtype
    )
    return (xy + 0.5) * scale
