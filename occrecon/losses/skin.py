"""Skin-colour model in YCbCr for real photos without a parsing map (mask of ``L_phot``, Eq. 4).

Chrominance-only box model of Chai & Ngan (IEEE TCSVT 1999), "Face segmentation using skin-colour
map": a pixel is skin when ``77 <= Cb <= 127`` and ``133 <= Cr <= 173`` (8-bit full-range YCbCr).
The box is made soft with logistic edges (``softness`` in 8-bit chroma units) so the mask is a
probability-like weight; very dark pixels (``Y < min_luma``), where chrominance is noise, are
down-weighted the same way. This is a documented, simpler choice than Deep3D's two 4-component
GMMs; it is used only as the visibility weight of the photometric loss, never as a target.
"""

from __future__ import annotations

import torch
from kornia.color import rgb_to_ycbcr

from occrecon.utils.checks import check_shape

CB_RANGE = (77.0, 127.0)
CR_RANGE = (133.0, 173.0)


def _soft_band(x: torch.Tensor, lo: float, hi: float, softness: float) -> torch.Tensor:
    return torch.sigmoid((x - lo) / softness) * torch.sigmoid((hi - x) / softness)


def skin_probability(images: torch.Tensor, softness: float = 3.0, min_luma: float = 40.0) -> torch.Tensor:
    """Soft skin mask of RGB images.

    Args:
        images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
        softness: width of the logistic edges in 8-bit chroma units (0.5 -> near-binary).
        min_luma: 8-bit luma below which pixels fade out.

    Returns:
        ``[B, 1, H, W]`` in ``(0, 1)``; about 1 inside the Chai-Ngan box, 0 far outside.
    """
    check_shape(images, ["B", 3, "H", "W"], "images")
    ycbcr = rgb_to_ycbcr(images.clamp(0.0, 1.0)) * 255.0
    y, cb, cr = ycbcr[:, 0:1], ycbcr[:, 1:2], ycbcr[:, 2:3]
    prob = _soft_band(cb, *CB_RANGE, softness) * _soft_band(cr, *CR_RANGE, softness)
    return prob * torch.sigmoid((y - min_luma) / softness)


def skin_mask(images: torch.Tensor, threshold: float = 0.5, **kwargs: float) -> torch.Tensor:
    """Binary ``[B, 1, H, W]`` float mask ``skin_probability(images) > threshold``."""
    return (skin_probability(images, **kwargs) > threshold).to(images.dtype)
