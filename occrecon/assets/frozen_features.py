"""Frozen networks of the synthesis stage's loss terms (paper §3.3): the parsing network of the
parsing-consistency term, the identity network of the identity term and the feature network of
the perceptual term (``model.perceptual.source``: vgg (a user file) | parsing | identity | auto |
none).

:func:`build_loss_networks` loads what the requested weights need and switches off (weight 0,
logged warning, reason returned) each term whose network cannot be had, so a run never trains
silently without a term it asked for; :func:`frozen_network_terms` evaluates the terms with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from occrecon.assets.identity import build_identity_network
from occrecon.errors import ConfigError
from occrecon.labels import IGNORE_LABEL
from occrecon.losses.synthesis import identity_loss, parsing_consistency, perceptual
from occrecon.nets.identity import identity_input
from occrecon.nets.synthesis import FrozenFeatures, vgg19_features

log = logging.getLogger(__name__)

PERCEPTUAL_SOURCES = ("auto", "vgg", "parsing", "identity", "none")
PARSING_FEATURE_LAYERS = ("backbone.layer1", "backbone.layer2", "backbone.layer3")
IDENTITY_FEATURE_LAYERS = ("conv32_3", "conv64_3", "conv128_2")


@dataclass
class PerceptualConfig:
    """Feature network of the perceptual term: ``vgg`` (torchvision vgg19 state dict at ``vgg_path``,
    a user file), ``parsing`` (the frozen parsing network's backbone), ``identity`` (the frozen
    identity network), ``auto`` (the first available of these), ``none``. ``layers``: module names
    (empty: the source's defaults)."""

    source: str = "auto"
    vgg_path: str | None = None
    layers: list[str] = field(default_factory=list)


class LossNetworks(NamedTuple):
    """``networks``: name (parsing | identity | features) -> frozen module; ``weights``: the loss
    weights in effect; ``disabled``: term -> why it was switched off."""

    networks: dict[str, Any]
    weights: dict[str, float]
    disabled: dict[str, str]


def feature_network(perceptual: Mapping[str, Any], frozen: Mapping[str, nn.Module]) -> tuple[FrozenFeatures | None, str]:
    """The perceptual term's feature extractor (``.source`` set) from the ``model.perceptual``
    section and the already-built frozen networks, or ``(None, reason)``."""
    source, layers = perceptual["source"], list(perceptual["layers"])
    order = ["vgg", "parsing", "identity"] if source == "auto" else [source]
    for candidate in order:
        if candidate == "vgg" and perceptual["vgg_path"]:
            extractor = vgg19_features(perceptual["vgg_path"], *([layers] if layers else []))
        elif candidate == "parsing" and "parsing" in frozen:
            extractor = FrozenFeatures(frozen["parsing"], layers or PARSING_FEATURE_LAYERS)
        elif candidate == "identity" and "identity" in frozen:
            extractor = FrozenFeatures(frozen["identity"], layers or IDENTITY_FEATURE_LAYERS)
        else:
            continue
        extractor.source = candidate
        return extractor, ""
    if source == "none":
        return None, "model.perceptual.source=none"
    return None, (
        f"no feature network for model.perceptual.source={source!r}: no VGG file (model.perceptual.vgg_path; "
        "VGG weights cannot be downloaded here), no parsing checkpoint, no identity weights"
    )


def build_loss_networks(
    requested: Mapping[str, float],
    perceptual: Mapping[str, Any],
    parsing_ckpt: str | None,
    identity: str,
    identity_weights: str | None,
    load_parsing: Callable[[str], nn.Module],
) -> LossNetworks:
    """Frozen networks for the ``requested`` loss weights (``model.loss.weights``).

    ``load_parsing(path)`` loads the frozen parsing network of a parsing-stage checkpoint (the
    system layer passes it: checkpoints are read through their LightningModule).
    """
    weights, disabled, frozen = dict(requested), {}, {}

    def disable(term: str, reason: str) -> None:
        if weights.get(term, 0.0) > 0:
            log.warning("synthesis: model.loss.weights.%s=%s set to 0: %s", term, weights[term], reason)
        weights[term] = 0.0
        disabled[term] = reason

    source = perceptual["source"]
    if parsing_ckpt and (weights["parsing"] > 0 or source in ("parsing", "auto")):
        frozen["parsing"] = load_parsing(parsing_ckpt)
    elif weights["parsing"] > 0:
        disable("parsing", "no model.parsing_ckpt given (the frozen parsing network)")
    need_identity = weights["identity"] > 0 or source == "identity" or (source == "auto" and "parsing" not in frozen)
    if need_identity and weights["identity"] + weights["perceptual"] > 0:
        network, reason = build_identity_network(identity, identity_weights)
        if network is None:
            disable("identity", reason)
        else:
            frozen["identity"] = network
    elif weights["identity"] > 0:
        disable("identity", "identity network not requested")
    if weights["perceptual"] > 0:
        extractor, reason = feature_network(perceptual, frozen)
        if extractor is None:
            disable("perceptual", reason)
        else:
            frozen["features"] = extractor
    features_source = frozen["features"].source if "features" in frozen else "none"
    if "parsing" in frozen and weights["parsing"] == 0 and features_source != "parsing":
        del frozen["parsing"]
    return LossNetworks(frozen, weights, disabled)


def _identity_embedding(network: nn.Module, images: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
    return network(identity_input(network, images, landmarks))


def frozen_network_terms(
    networks: Mapping[str, Any],
    weights: Mapping[str, float],
    output: torch.Tensor,
    target: torch.Tensor,
    parsing: torch.Tensor | None,
    mask: torch.Tensor,
    landmarks: torch.Tensor | None,
    layer_weights: list[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted perceptual, parsing-consistency and identity terms (those with a weight > 0) of
    ``output`` = ``I_out`` against ``target`` = ``I_gt`` ``[B, 3, H, W]`` with the frozen
    ``networks`` of :func:`build_loss_networks` (:mod:`occrecon.losses.synthesis`).

    ``parsing``: ``M_fin`` labels ``[B, H, W]`` (the parsing term's target), ``mask`` the occluder
    mask ``[B, 1, H, W]``, ``landmarks`` ``[B, 68, 2]`` pixels (identity crops; None: centre crop).
    The gradient flows through ``output`` only.
    """
    terms: dict[str, torch.Tensor] = {}
    features, parsing_logits = networks.get("features"), None
    if features is not None and weights["perceptual"] > 0:
        features.to(output.device)
        crop = (lambda x: identity_input(features.network, x, landmarks)) if features.source == "identity" else (lambda x: x)
        fake = features(crop(output))
        if features.source == "parsing":
            parsing_logits = features.network_output["parsing"]
        with torch.no_grad():
            real = features(crop(target))
        terms["perceptual"] = perceptual(fake, real, layer_weights or None)
    if weights["parsing"] > 0:
        if parsing_logits is None:
            parsing_logits = networks["parsing"].to(output.device)(output)["parsing"]
        if parsing is None or parsing.dim() != 3:
            raise ConfigError("synthesis: the parsing-consistency term needs M_fin labels (model.use_parsing)")
        terms["parsing"] = parsing_consistency(parsing_logits, parsing, mask, IGNORE_LABEL)
    if weights["identity"] > 0:
        network = networks["identity"].to(output.device)
        with torch.no_grad():
            reference = _identity_embedding(network, target, landmarks)
        terms["identity"] = identity_loss(_identity_embedding(network, output, landmarks), reference)
    return terms
