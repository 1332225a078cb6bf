"""Random face coefficients: the faces of ``occrecon render`` and the notebook's tour."""

from __future__ import annotations

import math

import torch

from occrecon.facemodel.layout import CoefficientLayout


def random_coefficients(
    layout: CoefficientLayout, batch: int, generator: torch.Generator, max_yaw_deg: float = 30.0
) -> torch.Tensor:
    """``[batch, layout.size]`` random plausible coefficients of ``layout``.

    Identity/texture ~ N(0, 0.8), expression ~ N(0, 0.5) (unit-variance model modes), mild random
    SH light (N(0, 0.15) on top of the layout's ambient term), yaw uniform in ``±max_yaw_deg``,
    pitch ~ N(0, 8°), roll ~ N(0, 5°), scale and translation at the layout's centred default.

    >>> from occrecon.facemodel.layout import CoefficientLayout
    >>> layout = CoefficientLayout.paper(10, 5, 10)  # 10 + 5 + 10 + 9 SH + 6 pose = 40
    >>> y = random_coefficients(layout, 3, torch.Generator().manual_seed(0), max_yaw_deg=20)
    >>> tuple(y.shape), bool(layout.split(y).angles[:, 1].abs().max() <= math.radians(20))
    ((3, 40), True)
    """
    y = layout.zeros(batch)
    parts = layout.split(y)

    def normal(like: torch.Tensor, std: float) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator) * std

    angles = torch.stack(
        [
            normal(parts.angles[:, 0], math.radians(8)),
            (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(max_yaw_deg),
            normal(parts.angles[:, 2], math.radians(5)),
        ],
        dim=1,
    )
    parts = type(parts)(
        **{
            **parts.as_dict(),
            "id": normal(parts.id, 0.8),
            "exp": normal(parts.exp, 0.5),
            "tex": normal(parts.tex, 0.8),
            "gamma": normal(parts.gamma, 0.15),
            "angles": angles,
        }
    )
    return layout.join(parts)
