"""Losses of the face edge-lines stage (paper §3.2): heatmap MSE per stack, ``d_gt`` (Eq. 1, two-sided),
the discriminator loss ``L_D`` (Eq. 2) and the adversarial term ``L_adv`` (Eq. 3).

All discriminator outputs are *logits*; probabilities are ``D = sigmoid(logit)`` and the logs
are evaluated with ``softplus`` for numerical stability (``log D = -softplus(-z)``,
``log(1 - D) = -softplus(z)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.landmarks import EDGE_LINES_68, distance_to_lines
from occrecon.utils.checks import check_shape

DEFAULT_THETA = 1.5
"""Eq. 1's distance threshold ``theta`` in heatmap pixels (the one home of the default; see
``docs/fusion.md`` for how it was chosen)."""

DEFAULT_DELTA = 0.8
"""Eq. 1's share threshold ``delta`` (the one home of the default)."""


def heatmap_mse(
    predictions: Sequence[torch.Tensor], target: torch.Tensor, stack_weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Intermediate supervision: ``sum_k w_k * MSE(prediction_k, target)`` over the stacks.

    Args:
        predictions: one ``[B, L, h, w]`` heatmap per stack.
        target: ``[B, L, h, w]`` ground-truth map ``M_gt``.
        stack_weights: one weight per stack (default 1 each).
    """
    weights = [1.0] * len(predictions) if stack_weights is None else list(stack_weights)
    if len(weights) != len(predictions):
        raise ValueError(f"{len(predictions)} stacks but {len(weights)} stack weights")
    return sum(w * F.mse_loss(p, target) for w, p in zip(weights, predictions, strict=True))


def landmark_distance_loss(pred: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Mean Euclidean landmark error divided by ``scale`` (e.g. the image size); ``[B, N, 2]`` each."""
    check_shape(pred, ["B", "N", 2], "pred")
    return (pred - target).norm(dim=-1).mean() / scale


def line_pixel_mask(heatmaps: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Pixels of the *predicted* lines: ``heatmap >= threshold`` (``[B, L, h, w]`` bool).

    With LAB heatmaps ``exp(-D^2 / 2 sigma^2)``, 0.5 keeps the band ``D <= 1.18 sigma`` around a line.
    """
    return heatmaps >= threshold


def _within(mask: torch.Tensor, theta: float) -> torch.Tensor:
    """``[B, L, h, w]`` bool: pixels whose centre is closer than ``theta`` to a centre of ``mask``.

    Exact on the pixel grid: a dilation by the disc of integer offsets ``dx^2 + dy^2 < theta^2``.
    """
    r = max(math.ceil(theta) - 1, 0)
    d = torch.arange(-r, r + 1, device=mask.device, dtype=torch.float32)
    disc = ((d[:, None] ** 2 + d[None, :] ** 2) < theta**2).float()[None, None]
    b, c, h, w = mask.shape
    hits = F.conv2d(mask.reshape(b * c, 1, h, w).float(), disc, padding=r)
    return (hits > 0.5).reshape(b, c, h, w)


def line_precision_recall(
    heatmaps: torch.Tensor,
    landmarks: torch.Tensor,
    theta: float,
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two shares of Eq. 1 (occrecon's reading, ``docs/fusion.md``), per map, over all lines.

    * **precision**: of the predicted line pixels (:func:`line_pixel_mask`, channel ``i``), the
      share whose centre lies closer than ``theta`` to the ground-truth polyline ``i`` (the paper's
      "generated coordinate set" read on the "ground-truth distance matrix",
      :func:`occrecon.landmarks.distance_to_lines`); 0 when no pixel is predicted.
    * **recall**: of the pixels the ground-truth polyline ``i`` passes through (centre within
      ``sqrt(2) / 2`` of it), the share that has a predicted pixel of channel ``i`` closer than
      ``theta``; 1 when no true line lies in the map.

    Args:
        heatmaps: ``[B, L, h, w]`` predicted maps.
        landmarks: ``[B, N, 2]`` ground truth, in the *heatmap's* pixel frame.
        theta: distance threshold in heatmap pixels.

    Returns:
        precision ``[B]`` and recall ``[B]`` in ``[0, 1]``.
    """
    check_shape(heatmaps, ["B", len(lines), "h", "w"], "heatmaps")
    check_shape(landmarks, [heatmaps.shape[0], "N", 2], "landmarks")
    predicted = line_pixel_mask(heatmaps, threshold)
    truth = distance_to_lines(landmarks.to(torch.float32), tuple(heatmaps.shape[-2:]), lines)
    n_predicted = predicted.flatten(1).sum(1)
    precision = (predicted & (truth < theta)).flatten(1).sum(1) / n_predicted.clamp(min=1)
    on_truth = truth <= math.sqrt(0.5)
    n_true = on_truth.flatten(1).sum(1)
    covered = (on_truth & _within(predicted, theta)).flatten(1).sum(1)
    recall = torch.where(n_true > 0, covered / n_true.clamp(min=1), torch.ones_like(precision))
    return precision.float(), recall.float()


def effectiveness_label(
    heatmaps: torch.Tensor,
    landmarks: torch.Tensor,
    theta: float = DEFAULT_THETA,
    delta: float = DEFAULT_DELTA,
    lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1, two-sided: ``d_gt = 1`` iff both shares of :func:`line_precision_recall` reach ``delta``.

    The predicted lines must lie near the true ones (precision) *and* cover them (recall), so a
    map that is on everywhere (precision ~ line area / map area), off everywhere (both 0) or
    shifted by more than ``theta`` is not effective, nor is one with lines only at the landmarks.

    Args:
        heatmaps: ``[B, L, h, w]`` predicted ``M_edge`` (detached here).
        landmarks: ``[B, N, 2]`` GT landmarks ``S_coor`` in the heatmap pixel frame.
        theta: distance threshold in heatmap pixels.
        delta: share threshold in ``[0, 1]``.

    Returns:
        ``d_gt`` ``[B]`` float in ``{0, 1}`` and the share ``min(precision, recall)`` ``[B]``.
    """
    precision, recall = line_precision_recall(heatmaps.detach(), landmarks.detach(), theta, lines, threshold)
    share = torch.minimum(precision, recall)
    return (share >= delta).float(), share


def discriminator_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor, d_gt: torch.Tensor) -> torch.Tensor:
    """Eq. 2 with its intended (BCE) signs, as a loss to *minimise* over ``D``.

    ``L_D = -E[log(1 - |D(G(I)) - d_gt|)] - E[log D(M_gt)]``. For ``d_gt`` in ``{0, 1}``,
    ``1 - |D - d_gt|`` is ``D`` when ``d_gt = 1`` and ``1 - D`` when ``d_gt = 0``, so the first
    term is exactly ``BCE(D(G(I)), d_gt)`` and the second ``BCE(D(M_gt), 1)``. The paper prints
    ``+E[log(1 - |...|)]``; minimising that would push ``D(G(I))`` *away* from ``d_gt``, against
    the text ("trained to predict ... the generated map according to d_gt"), so the sign is
    taken as a typo (LAB's boundary discriminator has the form used here).

    Args:
        fake_logits: ``[B]`` ``D`` logits on generated maps (generator detached by the caller).
        real_logits: ``[B']`` ``D`` logits on ground-truth maps.
        d_gt: ``[B]`` labels from :func:`effectiveness_label`.
    """
    fake = F.binary_cross_entropy_with_logits(fake_logits, d_gt.to(fake_logits.dtype))
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    return fake + real


def adversarial_loss(fake_logits: torch.Tensor, non_saturating: bool = True) -> torch.Tensor:
    """Eq. 3, the generator's adversarial term (to minimise over ``G``).

    ``non_saturating=False``: literally ``E[log(1 - D(G(I)))]``. Its gradient vanishes when
    ``D`` confidently rejects the maps (``D -> 0``), exactly the early-training regime, so the
    default is the standard non-saturating form ``-E[log D(G(I))]`` (Goodfellow et al. 2014),
    which has the same fixed point and strong gradients there.

    Args:
        fake_logits: ``[B]`` ``D`` logits on generated maps (gradient flows into ``G``).
    """
    if non_saturating:
        return F.softplus(-fake_logits).mean()  # -log sigmoid(z)
    return -F.softplus(fake_logits).mean()  # log(1 - sigmoid(z))


class EdgeLinesLoss(nn.Module):
    """Generator loss: per-stack heatmap MSE (+ landmark term) (+ weighted Eq. 3 when ``fake_logits`` given).

    Args:
        stack_weights: per-stack MSE weights (``None``: 1 each).
        landmark_weight: weight of :func:`landmark_distance_loss` (landmarks in image pixels
            divided by ``landmark_scale``).
        adversarial_weight: weight of :func:`adversarial_loss`.
        non_saturating: see :func:`adversarial_loss`.
    """

    def __init__(
        self,
        stack_weights: Sequence[float] | None = None,
        landmark_weight: float = 1.0,
        landmark_scale: float = 1.0,
        adversarial_weight: float = 0.01,
        non_saturating: bool = True,
    ) -> None:
        super().__init__()
        self.stack_weights = stack_weights
        self.landmark_weight, self.landmark_scale = landmark_weight, landmark_scale
        self.adversarial_weight, self.non_saturating = adversarial_weight, non_saturating

    def forward(
        self,
        outputs: dict,
        target_heatmaps: torch.Tensor,
        target_landmarks: torch.Tensor | None = None,
        fake_logits: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``outputs``: ``EdgeLinesNet`` output. Returns ``{"loss", "mse", ["landmarks"], ["adv"]}``."""
        terms = {"mse": heatmap_mse(outputs["heatmaps"], target_heatmaps, self.stack_weights)}
        total = terms["mse"]
        if target_landmarks is not None and self.landmark_weight:
            terms["landmarks"] = landmark_distance_loss(outputs["landmarks"], target_landmarks, self.landmark_scale)
            total = total + self.landmark_weight * terms["landmarks"]
        if fake_logits is not None and self.adversarial_weight:
            terms["adv"] = adversarial_loss(fake_logits, self.non_saturating)
            total = total + self.adversarial_weight * terms["adv"]
        terms["loss"] = total
        return terms


class DiscriminatorLoss(nn.Module):
    """``L_D`` (Eq. 2) with ``d_gt`` computed from the predictions by Eq. 1.

    Args:
        theta: line-to-line distance threshold in heatmap pixels (Eq. 1).
        delta: share that precision and recall must both reach (Eq. 1).
        line_threshold: heatmap level that defines a predicted line pixel.
    """

    def __init__(
        self,
        theta: float = DEFAULT_THETA,
        delta: float = DEFAULT_DELTA,
        line_threshold: float = 0.5,
        lines: tuple[tuple[int, ...], ...] = EDGE_LINES_68,
    ) -> None:
        super().__init__()
        self.theta, self.delta, self.line_threshold, self.lines = theta, delta, line_threshold, lines

    def forward(
        self, fake_logits: torch.Tensor, real_logits: torch.Tensor, fake_heatmaps: torch.Tensor, landmarks: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``landmarks``: GT ``[B, N, 2]`` in heatmap pixels. Returns ``{"loss", "d_gt", "share"}``."""
        d_gt, share = effectiveness_label(
            fake_heatmaps, landmarks, self.theta, self.delta, self.lines, self.line_threshold
        )
        return {"loss": discriminator_loss(fake_logits, real_logits, d_gt), "d_gt": d_gt, "share": share}
