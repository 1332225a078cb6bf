"""Losses of the synthesis stage (paper §3.3: ``I_out`` is synthesised "by existing methods [15]";
the paper states no equation of its own, so the terms follow the peers: EdgeConnect's masked L1,
adversarial and feature-matching terms, MaskGAN's multi-scale feature matching, LaFIn/EdgeConnect's
perceptual term, plus two terms that tie ``I_out`` to the project's own networks).

Weights live in ``model.loss.weights.<term>``; the total generator loss is
``l1 * L_l1 + adversarial * L_adv + feature_matching * L_fm + parsing * L_parse + identity * L_id
+ perceptual * L_perc``. Discriminator outputs are *logits*; ``kind`` is ``"hinge"`` or ``"lsgan"``.

Every function is pure (tensors in, scalar tensor out). Images ``[B, 3, H, W]`` in ``[0, 1]``,
masks ``[B, 1, H, W]`` in ``{0, 1}`` (1 = occluder region to synthesise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from occrecon.errors import ConfigError
from occrecon.labels import IGNORE_LABEL
from occrecon.losses.reconstruction import feature_loss
from occrecon.utils.checks import check_shape

ADVERSARIAL_KINDS = ("hinge", "lsgan")


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean absolute error over the pixels (and channels) inside ``mask``.

    ``sum(|p - t| * m) / (C * sum(m) + eps)``: EdgeConnect's ``L1 / mean(mask)`` normalised per
    masked pixel, so the term does not depend on the occluder's size; 0 for an empty mask.
    """
    check_shape(prediction, ["B", "C", "H", "W"], "prediction")
    check_shape(mask, [prediction.shape[0], 1, prediction.shape[2], prediction.shape[3]], "mask")
    diff = (prediction - target).abs() * mask
    return diff.sum() / (prediction.shape[1] * mask.sum() + eps)


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ConfigError(f"model.loss.adversarial: expected one of {ADVERSARIAL_KINDS}, got {kind!r}")


def generator_adversarial(fake_logits: Sequence[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """``L_adv`` of ``G``, averaged over the discriminator scales.

    hinge: ``-mean(D(fake))`` (Lim & Ye 2017; SPADE); lsgan: ``mean((D(fake) - 1)^2)`` (Mao et al. 2017).
    """
    _check_kind(kind)
    terms = [-z.mean() if kind == "hinge" else (z - 1.0).pow(2).mean() for z in fake_logits]
    return torch.stack(terms).mean()


def discriminator_adversarial(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor], kind: str = "hinge"
) -> torch.Tensor:
    """``L_D``, averaged over scales.

    hinge: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``;
    lsgan: ``(mean((D(real) - 1)^2) + mean(D(fake)^2)) / 2``.
    """
    _check_kind(kind)
    terms = []
    for real, fake in zip(real_logits, fake_logits, strict=True):
        if kind == "hinge":
            terms.append(F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
        else:
            terms.append(0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean()))
    return torch.stack(terms).mean()


def feature_matching(
    fake_features: Sequence[Sequence[torch.Tensor]], real_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Discriminator feature matching (pix2pixHD / EdgeConnect): mean over scales and over the
    intermediate layers (the logit layer excluded) of ``L1(D_l(fake), D_l(real))``; the real
    features are treated as constants."""
    terms = []
    for fake_scale, real_scale in zip(fake_features, real_features, strict=True):
        for fake, real in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            terms.append(F.l1_loss(fake, real.detach()))
    return torch.stack(terms).mean()


def parsing_consistency(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Cross-entropy of the frozen parsing network's logits on ``I_out`` against ``M_fin``.

    The parsing of the synthesised face must be the fused, occluder-free map: any pixel still
    parsed as ``eye_g`` (or as a hand = background inside the face) costs. ``mask`` ``[B, 1, H, W]``
    restricts the mean to the synthesised region (None: the whole image). Logits ``[B, C, H, W]``,
    ``target`` ``[B, H, W]`` int64 (``ignore_index`` skipped).
    """
    check_shape(logits, ["B", "C", "H", "W"], "logits")
    check_shape(target, [logits.shape[0], logits.shape[2], logits.shape[3]], "target")
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    valid = (target != ignore_index).float()
    if mask is not None:
        valid = valid * mask[:, 0]
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1.0)


def identity_loss(embedding_output: torch.Tensor, embedding_reference: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` of the frozen identity network's embeddings of ``I_out`` and the reference
    (``I_gt`` when paired, else ``I_in``): the same person before and after (``L_feat`` of Eq. 4)."""
    return feature_loss(embedding_reference, embedding_output)


def perceptual(
    fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """``sum_l w_l * L1(phi_l(I_out), phi_l(I_gt))`` over the layers of a frozen feature network
    (EdgeConnect: VGG-19 relu1_1..relu5_1, weights 1); the target features are constants."""
    weights = [1.0] * len(fake_features) if weights is None else list(weights)
    if len(weights) != len(fake_features):
        raise ConfigError(f"{len(fake_features)} perceptual layers but {len(weights)} layer weights")
    return sum(w * F.l1_loss(f, r.detach()) for w, f, r in zip(weights, fake_features, real_features, strict=True))
