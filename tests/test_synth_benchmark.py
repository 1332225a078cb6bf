"""The synthetic benchmark measures what the paper claims: no size bias in the data's Eq. 7 scale."""

from __future__ import annotations

import torch

from occrecon.synth.config import SynthConfig
from occrecon.synth.scene import SceneContext


def test_scale_is_centred_on_the_mean_faces_scale() -> None:
    # y = 0 means f = 0: a network that starts from the mean face must not be pulled to shrink it
    context = SceneContext.create(SynthConfig(n=400, size=64, seed=5))
    scales = torch.tensor([float(context.draw(i).coeffs.scale) for i in range(400)])
    assert scales.abs().max() <= 0.1 + 1e-6
    assert abs(float(scales.mean())) < 0.012  # uniform on [-0.1, 0.1]: std of the mean of 400 = 0.0029
    assert float(scales.min()) < -0.09 and float(scales.max()) > 0.09
