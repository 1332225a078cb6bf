"""Face-alignment metrics: NME, failure rate and AUC of the cumulative error distribution.

NME of an image = mean over its points of ``||pred - gt|| / d`` with

* ``inter_ocular`` (300W): ``d = ||p36 - p45||``, the outer eye corners of the 68-point layout;
* ``box`` (AFLW): ``d = sqrt(w * h)`` of the face box (given, else the GT landmarks' extent).

Over a split: ``nme`` = mean of the per-image NMEs; ``fr@t`` = share of images with NME ``> t``;
``auc@t`` = area under the cumulative error distribution ``F(e)`` on ``[0, t]`` divided by ``t``,
computed exactly: ``(1/t) * int_0^t F(e) de = mean_i max(0, t - e_i) / t`` (the limit of the usual
trapezoid sums).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from occrecon.errors import ConfigError
from occrecon.utils.checks import check_shape

INTER_OCULAR_68 = (36, 45)


def inter_ocular_distance(gt: torch.Tensor) -> torch.Tensor:
    """``[B]`` distance between the outer eye corners (points 36 and 45) of ``[B, 68, 2]`` landmarks."""
    check_shape(gt, ["B", 68, 2], "gt")
    return (gt[:, INTER_OCULAR_68[0]] - gt[:, INTER_OCULAR_68[1]]).norm(dim=-1)


def box_size(gt: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` ``sqrt(w * h)`` of ``boxes`` ``[B, 4]`` ``(x0, y0, x1, y1)``, or of the landmarks' bounding box."""
    if boxes is None:
        lo, hi = gt.min(dim=1).values, gt.max(dim=1).values
        boxes = torch.cat([lo, hi], dim=-1)
    check_shape(boxes, [gt.shape[0], 4], "boxes")
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp_min(0).sqrt()


def nme_per_image(
    pred: torch.Tensor, gt: torch.Tensor, normalizer: torch.Tensor, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B]`` normalised mean error; ``pred``, ``gt`` ``[B, N, 2]``, ``normalizer`` ``[B]``, ``visible`` ``[B, N]`` bool."""
    check_shape(pred, ["B", "N", 2], "pred")
    check_shape(gt, list(pred.shape), "gt")
    err = (pred - gt).norm(dim=-1)
    if visible is None:
        return err.mean(dim=1) / normalizer
    w = visible.to(err.dtype)
    return (err * w).sum(1) / w.sum(1).clamp_min(1) / normalizer


def failure_rate(nme: torch.Tensor, threshold: float = 0.08) -> torch.Tensor:
    """Share of images whose NME exceeds ``threshold``."""
    return (nme > threshold).double().mean()


def ced_auc(nme: torch.Tensor, threshold: float = 0.08) -> torch.Tensor:
    """Exact normalised area under the cumulative error distribution on ``[0, threshold]``."""
    return ((threshold - nme.double()).clamp_min(0) / threshold).mean()


class LandmarkMetrics(Metric):
    """NME / failure rate / AUC accumulated over a split.

    Args:
        normalization: ``"inter_ocular"`` (68 points) or ``"box"``.
        threshold: failure and AUC threshold (0.08).

    ``update(pred [B, N, 2], gt [B, N, 2], boxes [B, 4] | None, visible [B, N] | None)``;
    ``compute()`` -> ``{"nme", "fr@<t>", "auc@<t>"}``.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, normalization: str = "inter_ocular", threshold: float = 0.08, **kwargs) -> None:
        super().__init__(**kwargs)
        if normalization not in ("inter_ocular", "box"):
            raise ConfigError(f"NME normalization: expected 'inter_ocular' or 'box', got {normalization!r}")
        self.normalization, self.threshold = normalization, threshold
        self.add_state("nmes", default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor,
        boxes: torch.Tensor | None = None,
        visible: torch.Tensor | None = None,
    ) -> None:
        norm = inter_ocular_distance(gt) if self.normalization == "inter_ocular" else box_size(gt, boxes)
        self.nmes.append(nme_per_image(pred, gt, norm, visible))

    def compute(self) -> dict[str, torch.Tensor]:
        nme = dim_zero_cat(self.nmes)
        t = self.threshold
        return {"nme": nme.mean(), f"fr@{t:g}": failure_rate(nme, t), f"auc@{t:g}": ced_auc(nme, t)}
