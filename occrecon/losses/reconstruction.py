"""Weakly supervised losses of the coarse 3D stage (paper §3.3, Eq. 4).

``L_shape = λ_feat L_feat + λ_regu L_regu + λ_phot L_phot + λ_land L_land`` with the paper's
λ = 0.2, 3.6e-4, 1.4, 1.6e-3 (:data:`DEFAULT_WEIGHTS`). The normalisations follow
Deep3DFaceRecon (``../shared/reference/peers-3d-reconstruction.md`` §3.1) so the λ are
comparable to the peers'. Every term is a pure function; :func:`shape_loss` weighs them and
skips (never evaluates) a term whose weight is 0, which is the ablation hook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from occrecon.alignment import align_faces
from occrecon.errors import ConfigError
from occrecon.landmarks import NUM_LANDMARKS_68
from occrecon.utils.checks import check_shape

DEFAULT_WEIGHTS: dict[str, float] = {"feat": 0.2, "regu": 3.6e-4, "phot": 1.4, "land": 1.6e-3, "light": 10.0}
"""λ of Eq. 4 (paper) plus ``light``: the RGB-SH monochromaticity part of the regulariser, weighted
on its own as Deep3D does (``w_gamma = 10``); it only exists when gamma is RGB (27-D)."""

PAPER_IMAGE_SIZE = 224
"""Image side (px) of the paper's input: ``L_land`` with ``image_size`` is in pixels of this size."""

REGU_INNER_WEIGHTS: dict[str, float] = {"id": 1.0, "exp": 0.8, "tex": 1.7e-2}
"""Inner weights of ``L_regu`` on α_id, β_exp, β_tex (Deep3D's ``w_id``, ``w_exp``, ``w_tex``); keys are
the group names of ``occrecon.facemodel.layout.Coefficients``."""


def photometric_loss(
    rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """``L_phot`` (Eq. 4): L2,1 colour distance, averaged over the pixels of ``mask``.

    ``L = sum_p M_p sqrt(eps + ||I_render(p) - I(p)||^2) / max(sum_p M_p, 1)`` over the batch.
    ``mask`` must already be the rendered face region ∩ the skin/visibility mask: pixels outside
    it (occluders, background) contribute neither value nor gradient, even if they hold NaN.

    Args:
        rendered: ``[B, 3, H, W]`` render in ``[0, 1]``.
        target: ``[B, 3, H, W]`` input image in ``[0, 1]``.
        mask: ``[B, 1, H, W]`` weights in ``[0, 1]`` (treated as a constant: detached).

    Returns:
        Scalar loss.
    """
    check_shape(rendered, ["B", 3, "H", "W"], "rendered")
    check_shape(mask, [rendered.shape[0], 1, rendered.shape[2], rendered.shape[3]], "mask")
    check_shape(target, list(rendered.shape), "target")
    mask = mask.detach().to(rendered.dtype)
    inside = mask > 0
    # where() rather than a product: masked-out pixels must not leak NaN/inf or gradient
    diff = torch.where(inside, rendered - target, torch.zeros((), dtype=rendered.dtype, device=rendered.device))
    distance = torch.sqrt(eps + (diff * diff).sum(dim=1, keepdim=True))
    return (distance * mask).sum() / mask.sum().clamp_min(1.0)


def landmark_weights(
    num_points: int = NUM_LANDMARKS_68, boost: float = 20.0, device: torch.device | None = None
) -> torch.Tensor:
    """Per-landmark weights of Deep3D: 1, and ``boost`` for the nose (28-30) and inner mouth (60-67).

    Returns ``[num_points]``; only the 68-point layout has boosted points.
    """
    weights = torch.ones(num_points, device=device)
    if num_points == NUM_LANDMARKS_68:
        weights[28:31] = boost
        weights[60:68] = boost
    return weights


def landmark_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    visibility: torch.Tensor | None = None,
    image_size: float | None = None,
) -> torch.Tensor:
    """``L_land`` (Eq. 4): weighted mean squared landmark distance in pixels.

    ``L = sum_{b,k} v_bk w_k ||p_bk - q_bk||^2 / max(sum_{b,k} v_bk, 1)``; with every point visible
    this is Deep3D's ``sum w ||.||^2 / (B N)``. With ``image_size`` (the side ``S`` of the image the
    points live in) the distances are measured in pixels of the paper's :data:`PAPER_IMAGE_SIZE`
    (224) image: ``L`` is multiplied by ``(224 / S)^2``, so that λ_land means the same at every
    resolution (at 128 px the raw px² loss is 3.06 times smaller than at 224 px).

    Args:
        predicted: ``[B, N, 2]`` projected model landmarks (pixels).
        target: ``[B, N, 2]`` detected/annotated landmarks (pixels).
        weights: ``[N]`` per-landmark weights; default :func:`landmark_weights`.
        visibility: optional ``[B, N]`` bool/float; invisible points are ignored.

    Returns:
        Scalar loss (pixels^2; pixels of a 224 px image when ``image_size`` is given).
    """
    check_shape(predicted, ["B", "N", 2], "predicted")
    check_shape(target, list(predicted.shape), "target")
    if weights is None:
        weights = landmark_weights(predicted.shape[1], device=predicted.device)
    check_shape(weights, [predicted.shape[1]], "weights")
    vis = torch.ones(predicted.shape[:2], device=predicted.device) if visibility is None else visibility
    check_shape(vis, list(predicted.shape[:2]), "visibility")
    vis = vis.to(predicted.dtype)
    diff = torch.where(
        vis.unsqueeze(-1) > 0, predicted - target, torch.zeros((), dtype=predicted.dtype, device=predicted.device)
    )
    per_point = (diff * diff).sum(-1) * weights.to(predicted) * vis
    scale = 1.0 if image_size is None else (PAPER_IMAGE_SIZE / float(image_size)) ** 2
    return per_point.sum() / vis.sum().clamp_min(1.0) * scale


def feature_loss(embedding_input: torch.Tensor, embedding_render: torch.Tensor) -> torch.Tensor:
    """``L_feat`` (Eq. 4): mean over the batch of ``1 - cos(f(I), f(I_render))``.

    Args:
        embedding_input, embedding_render: ``[B, D]`` identity embeddings.
    """
    check_shape(embedding_input, ["B", "D"], "embedding_input")
    check_shape(embedding_render, list(embedding_input.shape), "embedding_render")
    return (1.0 - F.cosine_similarity(embedding_input, embedding_render, dim=1, eps=1e-8)).mean()


def regularization_loss(
    coefficients: Mapping[str, torch.Tensor],
    inner_weights: Mapping[str, float] = REGU_INNER_WEIGHTS,
) -> torch.Tensor:
    """``L_regu`` (Eq. 4): weighted squared norms of the statistical coefficients, per sample.

    ``L = sum_g w_g ||c_g||^2 / B`` over the groups of ``inner_weights`` (default α_id 1.0,
    β_exp 0.8, β_tex 1.7e-2, as Deep3D); bases are pre-scaled by their standard deviations so this
    is the negative log of a unit Gaussian prior. Groups absent from ``coefficients`` raise KeyError.

    Args:
        coefficients: group name -> ``[B, n_g]``, e.g. ``layout.split(y).as_dict()``.
    """
    terms = [w * coefficients[name].pow(2).sum() for name, w in inner_weights.items() if w != 0]
    batch = next(iter(coefficients.values())).shape[0]
    return torch.stack(terms).sum() / batch


def light_colour_loss(gamma: torch.Tensor) -> torch.Tensor:
    """Monochromatic-light prior for RGB SH (Deep3D ``gamma_loss``): ``mean((γ_c - mean_c γ)^2)``.

    Args:
        gamma: ``[B, 27]`` RGB SH coefficients, channel-major ``[B, 3, 9]`` (``CONVENTIONS.md``).
    """
    check_shape(gamma, ["B", 27], "gamma")
    rgb = gamma.reshape(-1, 3, 9)
    return (rgb - rgb.mean(dim=1, keepdim=True)).pow(2).mean()


Term = torch.Tensor | Callable[[], torch.Tensor]


def shape_loss(terms: Mapping[str, Term], weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_shape`` (Eq. 4): ``sum_t λ_t L_t``.

    Args:
        terms: name -> loss tensor, or a zero-argument callable computing it (evaluated only if
            its weight is non-zero, so ``weights["feat"] = 0`` skips the identity network).
        weights: name -> λ for every name in ``terms``.

    Returns:
        ``(total, logs)`` where ``logs`` holds, detached, ``name`` (unweighted) and
        ``name_weighted`` for every evaluated term, and ``total``.
    """
    unknown = sorted(set(terms) - set(weights))
    if unknown:
        raise ConfigError(f"loss terms {unknown} have no weight; weights given: {sorted(weights)}")
    total: torch.Tensor | None = None
    logs: dict[str, torch.Tensor] = {}
    for name, term in terms.items():
        weight = float(weights[name])
        if weight == 0.0:
            continue
        value = term() if callable(term) else term
        weighted = weight * value
        total = weighted if total is None else total + weighted
        logs[name], logs[f"{name}_weighted"] = value.detach(), weighted.detach()
    if total is None:
        raise ConfigError("every loss weight is zero: nothing to optimise")
    logs["total"] = total.detach()
    return total, logs


class IdentityFeatureLoss(nn.Module):
    """``L_feat`` through a frozen identity network with differentiable 5-point alignment.

    Both images are warped to the network's template (``network.template``, ``network.input_size``)
    using their own 5 points: the input with its detected landmarks, the render with the
    projected model landmarks (as Deep3D). The network stays in eval mode and its parameters
    receive no gradient; the render and the landmarks do.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.network.eval()

    def train(self, mode: bool = True) -> IdentityFeatureLoss:
        super().train(mode)
        self.network.eval()  # batch-norm statistics of a pretrained recogniser must never move
        return self

    def embed(self, images: torch.Tensor, points5: torch.Tensor) -> torch.Tensor:
        """Aligned embedding ``[B, D]`` of ``images`` ``[B, 3, H, W]`` with 5 points ``[B, 5, 2]``."""
        crops = align_faces(images, points5, self.network.template, self.network.input_size)
        return self.network(crops)

    def forward(
        self, images: torch.Tensor, rendered: torch.Tensor, points5: torch.Tensor, rendered_points5: torch.Tensor
    ) -> torch.Tensor:
        """Scalar ``L_feat``; the input's embedding is computed without gradient."""
        with torch.no_grad():
            reference = self.embed(images, points5)
        return feature_loss(reference, self.embed(rendered, rendered_points5))
