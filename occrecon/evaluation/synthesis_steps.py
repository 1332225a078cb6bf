"""Step-level helpers of the synthesis stage (:mod:`occrecon.systems.synthesis`): the validation
metrics of one batch, and for benchmarks and smoke tests a random batch shaped like the synthetic
set's and one ``G`` + ``D`` step outside Lightning (a system is used through its attributes)."""

from __future__ import annotations

from typing import Any

import torch

from occrecon.landmarks import NUM_EDGE_LINES
from occrecon.losses.synthesis import masked_l1


def mask_metrics(
    output: torch.Tensor, target: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, prefix: str = "val"
) -> dict[str, torch.Tensor]:
    """``<prefix>/l1_mask``, ``<prefix>/psnr_mask`` of ``output`` = ``I_out`` and
    ``<prefix>/psnr_mask_input`` of ``image`` = ``I_in`` (the do-nothing baseline) against
    ``target`` = ``I_gt`` ``[B, 3, H, W]`` in ``[0, 1]``, pooled over the pixels inside
    ``mask [B, 1, H, W]``; ``{}`` when the mask is empty."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    inside = mask.expand_as(output) > 0.5
    if not inside.any():
        return {}
    return {
        f"{prefix}/l1_mask": masked_l1(output, target, mask, eps=0.0),
        f"{prefix}/psnr_mask": peak_signal_noise_ratio(output[inside], target[inside], data_range=1.0),
        f"{prefix}/psnr_mask_input": peak_signal_noise_ratio(image[inside], target[inside], data_range=1.0),
    }


def train_step(system: Any, batch: dict[str, Any], optimizers: tuple[torch.optim.Optimizer, ...]) -> dict[str, float]:
    """One ``G`` step and one ``D`` step outside Lightning (plain ``backward``), for benchmarks
    (``bench/train_step.py``'s synthesis row): the same losses as :meth:`occrecon.systems.synthesis.SynthesisSystem.training_step`.

    ``optimizers``: ``(g_opt, d_opt)``, e.g. ``[o["optimizer"] for o in system.configure_optimizers()]``
    after ``system.trainer`` is unset (``configure_optimizers`` reads no trainer for schedulers ``none``).
    Call :meth:`occrecon.systems.synthesis.SynthesisSystem.build_frozen_networks` once before. Returns the losses as floats.
    """
    g_opt, d_opt = optimizers
    cond = system.conditions(batch)
    system.discriminator.requires_grad_(False)
    output = system.generator(cond.image, cond.parsing, cond.edges, cond.mask)["output"]
    terms = system.generator_loss(cond, output)
    g_opt.zero_grad()
    terms["loss"].backward()
    g_opt.step()
    system.discriminator.requires_grad_(True)
    d_loss = system.discriminator_loss(cond, output)
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    if system.generator_ema is not None:
        system.generator_ema.update_parameters(system.generator)
    return {"g_loss": float(terms["loss"]), "d_loss": float(d_loss)}


def random_batch(batch_size: int = 4, size: int = 64, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A synthetic-shaped batch of random content (``I_in``, ``I_gt``, ``parsing_gt``, ``occluder_mask``,
    ``edge_lines`` at ``size / 4``) for benchmarks and smoke tests; no data set needed."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(batch_size, 3, size, size, generator=g)
    mask = torch.zeros(batch_size, 1, size, size)
    mask[:, :, size // 4 : size // 2, size // 8 : -size // 8] = 1.0
    image = torch.where(mask > 0.5, torch.rand(batch_size, 3, size, size, generator=g), gt)
    batch = {
        "I_in": image, "I_gt": gt, "occluder_mask": mask,
        "parsing_gt": torch.randint(0, 19, (batch_size, size, size), generator=g),
        "edge_lines": torch.rand(batch_size, NUM_EDGE_LINES, size // 4, size // 4, generator=g),
    }  # fmt: skip
    return {k: v.to(device) for k, v in batch.items()}
