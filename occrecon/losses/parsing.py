"""Face-parsing losses (paper §3.1, EAGRNet's training objective).

``L = w_parse * CE(parsing) + w_edge * balanced CE(edge) + w_edge_parse * CE(parsing on edge pixels)``.
Edge targets come from the label maps (:func:`label_boundaries`), never from files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.morphology import dilation, erosion
from torch import nn

from occrecon.labels import IGNORE_LABEL
from occrecon.utils.checks import check_shape


def label_boundaries(labels: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Boundary pixels of a label map: a pixel is an edge if a 4-neighbour has another label.

    Matches EAGRNet's ``generate_edge`` (a 2-pixel band, one pixel on each side of every label
    change). Computed as ``dilation != erosion`` with a 3x3 cross (kornia morphology; its geodesic
    border ignores pixels outside the image). Pixels whose label is ``ignore_index`` get
    ``ignore_index``.

    Args:
        labels: ``[B, H, W]`` int64 class indices.

    Returns:
        ``[B, H, W]`` int64 in ``{0, 1, ignore_index}``.
    """
    check_shape(labels, ["B", "H", "W"], "labels")
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], device=labels.device)
    valid = labels != ignore_index
    # ignored pixels are neutral: lowest value for the max, highest for the min
    as_float = labels.float().unsqueeze(1)
    invalid = ~valid.unsqueeze(1)
    hi = dilation(as_float.masked_fill(invalid, -1.0), cross)
    lo = erosion(as_float.masked_fill(invalid, float(ignore_index) + 1.0), cross)
    edges = (hi != lo).squeeze(1).long()
    return edges.masked_fill(~valid, ignore_index)


def parsing_ce(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Mean pixel-wise cross-entropy; ``logits`` ``[B, C, H, W]``, ``labels`` ``[B, H, W]``."""
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


def balanced_edge_ce(
    edge_logits: torch.Tensor, edge_target: torch.Tensor, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Class-balanced edge cross-entropy (EAGRNet): edge pixels weigh ``N_neg / N``, others ``N_pos / N``.

    Counts are over the whole batch's valid pixels. The result is the weighted mean
    ``sum(w_i * ce_i) / sum(w_i)`` (what ``F.cross_entropy(weight=...)`` computes).

    Args:
        edge_logits: ``[B, 2, H, W]`` (softmax) or ``[B, 1, H, W]`` (sigmoid) logits.
        edge_target: ``[B, H, W]`` int64 in ``{0, 1, ignore_index}``.

    Returns:
        scalar loss.
    """
    check_shape(edge_target, ["B", "H", "W"], "edge_target")
    valid = edge_target != ignore_index
    target = edge_target.masked_fill(~valid, 0)
    n_pos = (target.bool() & valid).sum().float()
    n_neg = valid.sum().float() - n_pos
    n = (n_pos + n_neg).clamp_min(1.0)
    weights = torch.where(target.bool(), n_neg / n, n_pos / n) * valid.float()
    if edge_logits.shape[1] == 1:
        ce = F.binary_cross_entropy_with_logits(edge_logits[:, 0], target.float(), reduction="none")
    else:
        ce = F.cross_entropy(edge_logits, target, reduction="none")
    return (weights * ce).sum() / weights.sum().clamp_min(1e-12)


def edge_parsing_ce(
    logits: torch.Tensor, labels: torch.Tensor, edge_target: torch.Tensor, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Parsing cross-entropy restricted to boundary pixels (EAGRNet's edge-attention term).

    Per image: ``sum over edge pixels of CE / number of edge pixels``, then the mean over images
    (an image without edge pixels contributes 0).

    Args:
        logits: ``[B, C, H, W]``; labels, edge_target: ``[B, H, W]``.
    """
    ce = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")  # [B, H, W]
    on_edge = (edge_target == 1).float()
    per_image = (ce * on_edge).flatten(1).sum(1) / on_edge.flatten(1).sum(1).clamp_min(1.0)
    return per_image.mean()


def parsing_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    parse_weight: float = 1.0,
    edge_weight: float = 1.0,
    edge_parse_weight: float = 1.0,
    ignore_index: int = IGNORE_LABEL,
) -> dict[str, torch.Tensor]:
    """Total face-parsing loss and its terms.

    Args:
        outputs: ``FaceParsingNet`` output, ``{"parsing": [B, C, H, W], "edge": [B, E, H, W]}``.
        labels: ``[B, H, W]`` int64.

    Returns:
        ``{"loss", "parse", "edge", "edge_parse"}`` scalars (``loss`` is the weighted sum).
    """
    edge_target = label_boundaries(labels, ignore_index)
    terms = {
        "parse": parsing_ce(outputs["parsing"], labels, ignore_index),
        "edge": balanced_edge_ce(outputs["edge"], edge_target, ignore_index),
        "edge_parse": edge_parsing_ce(outputs["parsing"], labels, edge_target, ignore_index),
    }
    terms["loss"] = (
        parse_weight * terms["parse"] + edge_weight * terms["edge"] + edge_parse_weight * terms["edge_parse"]
    )
    return terms


class ParsingLoss(nn.Module):
    """Module wrapper of :func:`parsing_loss` holding the weights."""

    def __init__(
        self,
        parse_weight: float = 1.0,
        edge_weight: float = 1.0,
        edge_parse_weight: float = 1.0,
        ignore_index: int = IGNORE_LABEL,
    ) -> None:
        super().__init__()
        self.parse_weight, self.edge_weight, self.edge_parse_weight = parse_weight, edge_weight, edge_parse_weight
        self.ignore_index = ignore_index

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return parsing_loss(
            outputs, labels, self.parse_weight, self.edge_weight, self.edge_parse_weight, self.ignore_index
        )
