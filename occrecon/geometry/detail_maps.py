"""Per-pixel outputs of the detail stage (paper §3.3, Eq. 5-6) at its image size ``S``: the frozen
coarse stage's maps (:class:`CoarseMaps`) and the bump-map decoding (:class:`DetailOutput`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CoarseMaps:
    """Per-pixel output of the frozen coarse stage at the detail stage's size ``S``.

    ``depth [B, 1, S, S]`` (``d``, decimetres, 0 off the face), ``normal [B, 3, S, S]`` (view space),
    ``mask [B, 1, S, S]``, ``albedo [B, 3, S, S]``, ``gamma [B, 9 | 27]``, ``rendered [B, 3, S, S]``
    (albedo shaded with the light on the coarse normals, per pixel), ``mirror [B, S, S, 2]``
    (``grid_sample`` coordinates of each pixel's visible mirror point, -2 where none),
    ``px_per_unit [B]`` (pixels per decimetre), ``coeffs [B, D]``.
    """

    depth: torch.Tensor
    normal: torch.Tensor
    mask: torch.Tensor
    albedo: torch.Tensor
    gamma: torch.Tensor
    mirror: torch.Tensor
    px_per_unit: torch.Tensor
    coeffs: torch.Tensor
    rendered: torch.Tensor


@dataclass
class DetailOutput:
    """``phi [B, 1, S, S]`` codes in ``[0, 255]``, ``confidence [B, 1, S, S]``, ``offset`` ``d' - d`` and
    ``depth`` ``d'`` ``[B, 1, S, S]`` (decimetres), ``normals [B, 3, S, S]`` detailed, view space."""

    phi: torch.Tensor
    confidence: torch.Tensor
    offset: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
