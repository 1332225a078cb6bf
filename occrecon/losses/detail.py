"""Losses of the detail stage (paper §3.3): the bump-map loss of Eq. 6 and the self-supervised terms
for real photos, which have no ground-truth bump map.

* :func:`bump_geometry_loss` -- ``L_geo = ||Phi~ - Phi||_1 + ||d_x Phi~ - d_x Phi||_1 + ||d_y Phi~ - d_y Phi||_1``
  (Eq. 6), gradients by kornia's ``spatial_gradient`` (central differences);
* :func:`shading_loss` -- the photo against the image re-rendered with the detailed normals and the
  coarse stage's albedo and SH light (Lambertian, ``occrecon.geometry.lighting``), inside visible skin;
* :func:`smoothness_loss` -- an L1 prior on the Laplacian of the bump map;
* :func:`symmetry_loss` -- DECA's soft symmetry: an occluded pixel's code pulled towards the code at
  its mirror point on the face (through the face model's mirror map), when that point is visible;
* :func:`confidence_loss` -- the confidence map learns ``exp(-|error| / tau)`` of the current error.

Bump maps enter every loss as codes divided by 255 (``[0, 1]``), so a weight of 1 on ``L_geo``
means "one code unit of error costs 1/255". Masked means divide by the mask's sum (at least 1).
All weights are ``model.loss.weights.<term>`` (``occrecon.systems.detail``).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from occrecon.geometry.bump import image_gradients
from occrecon.geometry.lighting import shade
from occrecon.utils.checks import check_shape


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values [B, C, H, W]`` over the pixels of ``mask [B, 1, H, W]`` (all pixels when None).

    Masked-out pixels contribute neither value nor gradient (``where``, not a product).
    """
    if mask is None:
        return values.mean()
    mask = mask.detach().to(values.dtype).expand_as(values)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    return torch.where(mask > 0, values, zero).mul(mask).sum() / mask.sum().clamp_min(1.0)


def bump_geometry_loss(
    predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_geo`` of paper Eq. 6 on normalised bump maps.

    ``L_geo = mean|Phi~ - Phi| + mean|d_x Phi~ - d_x Phi| + mean|d_y Phi~ - d_y Phi|`` over the pixels
    of ``mask``; ``d_x``, ``d_y`` are central differences along columns and rows
    (``kornia.filters.spatial_gradient(mode="diff")``: ``(f[j+1] - f[j-1]) / 2``, replicated borders).

    Args:
        predicted: ``[B, 1, H, W]`` predicted ``Phi`` / 255.
        target: ``[B, 1, H, W]`` ground truth ``Phi~`` / 255.
        mask: optional ``[B, 1, H, W]`` pixel weights (the face region).

    Returns:
        ``(L_geo, {"value": ..., "grad_x": ..., "grad_y": ...})``.
    """
    check_shape(predicted, ["B", 1, "H", "W"], "predicted")
    check_shape(target, list(predicted.shape), "target")
    px, py = image_gradients(predicted)
    tx, ty = image_gradients(target)
    parts = {
        "value": masked_mean((predicted - target).abs(), mask),
        "grad_x": masked_mean((px - tx).abs(), mask),
        "grad_y": masked_mean((py - ty).abs(), mask),
    }
    return parts["value"] + parts["grad_x"] + parts["grad_y"], parts


def shade_maps(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-pixel Lambertian SH shading ``albedo * (Y(n) . gamma)`` of ``[B, 3, H, W]`` maps -> ``[B, 3, H, W]``."""
    check_shape(normals, ["B", 3, "H", "W"], "normals")
    check_shape(albedo, list(normals.shape), "albedo")
    return shade(albedo.permute(0, 2, 3, 1), normals.permute(0, 2, 3, 1), gamma).permute(0, 3, 1, 2)


def shading_residual(
    normals: torch.Tensor, albedo: torch.Tensor, gamma: torch.Tensor, image: torch.Tensor
) -> torch.Tensor:
    """Per-pixel ``|clamp(albedo * (Y(n') . gamma), 0, 1) - I|`` averaged over RGB, ``[B, 1, H, W]`` (a photo saturates).

    Args:
        normals: ``[B, 3, H, W]`` detailed unit normals, view space.
        albedo: ``[B, 3, H, W]`` coarse albedo in ``[0, 1]``.
        gamma: ``[B, 9]`` or ``[B, 27]`` SH light of the coarse stage (``occrecon.geometry.lighting``).
        image: ``[B, 3, H, W]`` the photo in ``[0, 1]``.
    """
    check_shape(image, list(normals.shape), "image")
    return (shade_maps(albedo, normals, gamma).clamp(0.0, 1.0) - image).abs().mean(1, keepdim=True)


def shading_loss(
    normals: torch.Tensor, albedo: torch.Tensor, gamma: torch.Tensor, image: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Self-supervised shading term: mean over the visible skin ``mask [B, 1, H, W]`` of :func:`shading_residual`."""
    return masked_mean(shading_residual(normals, albedo, gamma, image), mask)


def smoothness_loss(code: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Smoothness prior: ``mean |Laplacian(Phi / 255)|`` (kornia 3x3 Laplacian, unnormalised)."""
    check_shape(code, ["B", 1, "H", "W"], "code")
    return masked_mean(kornia.filters.laplacian(code, kernel_size=3, normalized=False).abs(), mask)


def symmetry_loss(
    code: torch.Tensor, mirror_grid: torch.Tensor, occluded: torch.Tensor, visible: torch.Tensor
) -> torch.Tensor:
    """Soft symmetry (DECA) for occluded pixels: ``mean_{p occluded, m(p) visible} |Phi(p) - sg[Phi(m(p))]|``.

    Args:
        code: ``[B, 1, H, W]`` bump map / 255.
        mirror_grid: ``[B, H, W, 2]`` normalised ``grid_sample`` coordinates (``align_corners=False``)
            of each pixel's mirror point; outside ``[-1, 1]`` where there is none.
        occluded: ``[B, 1, H, W]`` occluded face pixels (where the term applies).
        visible: ``[B, 1, H, W]`` visible face pixels (where a mirror point may be read).

    The mirrored code is detached: the visible side teaches the occluded one, never the reverse.
    """
    check_shape(code, ["B", 1, "H", "W"], "code")
    check_shape(mirror_grid, [code.shape[0], code.shape[2], code.shape[3], 2], "mirror_grid")
    mirrored = F.grid_sample(code.detach(), mirror_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    readable = F.grid_sample(visible.to(code.dtype), mirror_grid, mode="nearest", align_corners=False)
    inside = (mirror_grid.abs() <= 1).all(-1)[:, None]
    weight = occluded.to(code.dtype) * readable * inside
    return masked_mean((code - mirrored).abs(), weight)


def confidence_loss(
    confidence: torch.Tensor, error: torch.Tensor, tau: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy of the confidence map against ``exp(-|error| / tau)`` (error detached).

    ``error`` and ``tau`` share a unit (codes for ``Phi``, intensities for shading residuals).
    """
    check_shape(confidence, ["B", 1, "H", "W"], "confidence")
    check_shape(error, list(confidence.shape), "error")
    target = torch.exp(-error.detach().abs() / tau)
    bce = F.binary_cross_entropy(confidence.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return masked_mean(bce, mask)
