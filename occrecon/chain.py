"""The composite chain of the paper (Fig. 1): parsing -> edge lines -> fusion -> synthesis -> coarse 3D -> detail.

A chain is an ordered list of **links**, one per stage present. Each link wraps the trained
network of its stage (a stage ``System`` built from that stage's own run) and reads and writes
named entries of one *state* dict, so the chain never hard-codes its length: a link runs when the
stages it needs ran before it, and a stage that is not configured is simply absent.

State entries (``B`` batch, ``S`` image size, ``C`` = 19 CelebAMask-HQ classes):

=================  ==========================================  ============
entry              meaning                                     written by
=================  ==========================================  ============
``I_in``           ``[B, 3, S, S]`` input photo in ``[0, 1]``     the batch
``M_fa_logits``    ``[B, C, S, S]`` parsing logits                parsing
``M_fa``           ``[B, S, S]`` int64 parsing with occluders     parsing
``M_edge``         ``[B, 13, h, w]`` line heatmaps in ``[0, 1]``  edge_lines
``landmarks_2d``   ``[B, 68, 2]`` read-out landmarks (pixels)     edge_lines
``M_fin``          ``[B, S, S]`` int64 occlusion-free parsing     fusion
``O``              ``[B, 1, S, S]`` occluder mask (from M_fa)     fusion
``I_out``          ``[B, 3, S, S]`` de-occluded image             synthesis
``coeffs``         ``[B, D]`` morphable-model coefficients ``y``  reconstruction
``render``         :class:`~occrecon.render.mesh_renderer.RenderOutput`  reconstruction
``bump``           ``[B, 1, S, S]`` Phi / 255                     detail
``depth_detail``   ``[B, 1, S, S]`` d' (decimetres)               detail
=================  ==========================================  ============

Stage systems are looked up through :mod:`occrecon.registry` (no static import of the systems),
built from the ``model`` section of the run that produced their checkpoint (``config.yaml`` beside
``checkpoints/``, else the checkpoint's saved hyper-parameters) and loaded with
``torch.load(weights_only=True)``; a missing, unexpected or mis-shaped key raises a
:class:`~occrecon.errors.ConfigError` naming the stage and the key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from occrecon.errors import ConfigError, MissingAssetError
from occrecon.registry import get_stage
from occrecon.runs import checkpoint_run_dir

log = logging.getLogger(__name__)

CHAIN_ORDER: tuple[str, ...] = ("parsing", "edge_lines", "fusion", "synthesis", "reconstruction", "detail")
"""Canonical order of the stages in the chain (paper Fig. 1). ``fusion`` has no network."""
NETWORK_STAGES: tuple[str, ...] = tuple(s for s in CHAIN_ORDER if s != "fusion")


# ----------------------------------------------------------------------------- loading stage systems


def stage_model_config(name: str, ckpt: str | Path | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``model`` keyword arguments that rebuild stage ``name``.

    From the run that wrote ``ckpt`` (its ``config.yaml``; for a loose file the checkpoint's
    ``hyper_parameters``), else ``{}`` (the system's defaults); ``overrides`` are applied on top.
    """
    config: dict[str, Any] = {}
    if ckpt is not None:
        ckpt = Path(ckpt)
        if not ckpt.is_file():
            raise MissingAssetError(ckpt, f"checkpoint of stage {name!r}", f"train it with `occrecon fit -c experiments/{name}/...`")
        run_dir = checkpoint_run_dir(ckpt)
        if run_dir is not None:
            saved = OmegaConf.load(run_dir / "config.yaml")
            if saved.get("stage") != name:
                raise ConfigError(f"{ckpt}: a run of stage {saved.get('stage')!r}, configured as stage {name!r}")
            config = OmegaConf.to_container(saved.model, resolve=True)  # type: ignore[assignment]
        else:
            hparams = torch.load(ckpt, map_location="cpu", weights_only=True).get("hyper_parameters") or {}
            config = dict(hparams)
    return {**config, **dict(overrides or {})}


def build_stage(name: str, config: Mapping[str, Any]) -> nn.Module:
    """The stage's ``System(**config)``; unknown keys raise :class:`ConfigError` naming the stage."""
    system_cls = get_stage(name).load("system")
    try:
        return system_cls(**dict(config))
    except TypeError as err:
        raise ConfigError(f"model.stages.{name}: {err}") from err


def load_stage_weights(name: str, system: nn.Module, ckpt: str | Path) -> None:
    """Load ``ckpt``'s ``state_dict`` into ``system`` strictly, naming the stage and key on a mismatch."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint:
        raise ConfigError(f"{ckpt}: not a Lightning checkpoint of stage {name!r} (no 'state_dict')")
    hook = getattr(system, "on_load_checkpoint", None)
    if hook is not None:
        hook(checkpoint)  # systems refill the fixed assets they leave out of their checkpoints
    state, own = checkpoint["state_dict"], system.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ConfigError(
            f"{ckpt}: stage {name!r} does not match the network built from its config: {what} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ConfigError(
                f"{ckpt}: stage {name!r} key {key!r} has shape {list(value.shape)}, the network expects {list(own[key].shape)}"
            )
    system.load_state_dict(state)


# ----------------------------------------------------------------------------- links


@dataclass
class Link:
    """One stage of the chain.

    ``run(system, state)`` adds this stage's outputs to ``state``; ``loss(system, state, batch)``
    returns ``(total, {term: value})`` of its supervised terms for end-to-end fine-tuning, or None
    when the batch has no target for it. ``needs``: state entries that must exist before it runs.
    """

    name: str
    needs: tuple[str, ...]
    run: Callable[[Any, dict[str, Any]], None]
    loss: Callable[[Any, dict[str, Any], Mapping[str, Any]], tuple[torch.Tensor, dict[str, torch.Tensor]] | None] | None = None
    frozen_parts: tuple[str, ...] = field(default_factory=tuple)
    """Sub-modules of the system never trained in the chain (e.g. a GAN's discriminator)."""
    after_step: Callable[[Any], None] | None = None
    """Called after each optimizer step when the stage is trainable (e.g. an EMA update)."""
    chain_config: Callable[[dict[str, Any], Mapping[str, nn.Module]], None] | None = None
    """Sets, in the stage's config, what the chain supplies instead of the stage (given the
    stages built before it)."""


def _run_parsing(system: Any, state: dict[str, Any]) -> None:
    outputs = system(state["I_in"])
    state["parsing_outputs"] = outputs
    state["M_fa_logits"] = outputs["parsing"]
    state["M_fa"] = outputs["parsing"].argmax(dim=1)


def _loss_parsing(system: Any, state: dict[str, Any], batch: Mapping[str, Any]):
    if "label_map" not in batch:
        return None
    terms = system.criterion(state["parsing_outputs"], batch["label_map"])
    return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}


def _run_edge_lines(system: Any, state: dict[str, Any]) -> None:
    outputs = system(state["I_in"])
    state["edge_outputs"] = outputs
    state["M_edge"] = outputs["heatmaps"][-1].clamp(0.0, 1.0)
    state["landmarks_2d"] = outputs["landmarks"]


def _loss_edge_lines(system: Any, state: dict[str, Any], batch: Mapping[str, Any]):
    if "landmarks" not in batch:
        return None
    outputs = state["edge_outputs"]
    target, _ = system.targets({**batch, "image": state["I_in"]}, tuple(outputs["heatmaps"][-1].shape[-2:]))
    width = state["I_in"].shape[-1]
    scaled = {**outputs, "landmarks": outputs["landmarks"] / width}
    terms = system.g_loss(scaled, target, batch["landmarks"].float() / width, None)  # no adversarial term in the chain
    return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}


def _run_fusion(_: Any, state: dict[str, Any]) -> None:
    from occrecon.fusion import fuse_parsing, occluder_mask

    heat = state["M_edge"].detach().float().clamp(0.0, 1.0)
    occ = occluder_mask(state["M_fa"], heat)
    state["O"] = occ
    state["M_fin"] = fuse_parsing(state["M_fa"], heat, occluders=occ)


def _synthesis_batch(system: Any, state: dict[str, Any], batch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The batch the synthesis stage sees in the chain: ``I_in``, ``M_fin`` under the stage's
    ``fin_key``, ``M_edge``, the occluder mask ``O`` estimated from ``M_fa``, and the batch's
    ``I_gt`` / landmarks (its training targets) when present."""
    out: dict[str, Any] = {"I_in": state["I_in"], "occluder_mask": state["O"], "edge_lines": state.get("M_edge")}
    out[system.hparams.fin_key] = state["M_fin"]
    for key in ("I_gt", "landmarks"):
        if batch is not None and key in batch:
            out[key] = batch[key]
    return out


def _run_synthesis(system: Any, state: dict[str, Any]) -> None:
    cond = system.conditions(_synthesis_batch(system, state))
    generator = system.generator if system.training else system.eval_generator
    state["I_out"] = generator(cond.image, cond.parsing, cond.edges, cond.mask)["output"]


def _synthesis_ema(system: Any) -> None:
    if system.generator_ema is not None:
        system.generator_ema.update_parameters(system.generator)


def _loss_synthesis(system: Any, state: dict[str, Any], batch: Mapping[str, Any]):
    if "I_gt" not in batch:
        return None
    terms = system.generator_loss(system.conditions(_synthesis_batch(system, state, batch)), state["I_out"])
    return terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"}


def _run_reconstruction(system: Any, state: dict[str, Any]) -> None:
    image = state.get("I_out", state["I_in"])
    if image.shape[-1] != system.hparams.image_size:
        image = torch.nn.functional.interpolate(image, size=(system.hparams.image_size,) * 2, mode="bilinear",
                                                antialias=True, align_corners=False)  # fmt: skip
    state["coeffs"] = system(image)
    state["render"] = system.render(state["coeffs"])


def reconstruction_batch(state: dict[str, Any], batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch the coarse stage sees in the chain: ``I_out`` (else ``I_in``) as its input image,
    ``M_fin`` (else ``M_fa``) as the parsing map that masks ``L_phot``, the batch's landmarks."""
    image = state.get("I_out", state["I_in"])
    out: dict[str, Any] = {"image": image, "I_in": image, "I_gt": image}
    labels = state.get("M_fin", state.get("M_fa"))
    if labels is not None:
        out["label_map"] = labels
    for key in ("landmarks", "landmark_visible", "visibility", "coeffs", "glasses"):
        if key in batch:
            out[key] = batch[key]
    return out


def _loss_reconstruction(system: Any, state: dict[str, Any], batch: Mapping[str, Any]):
    prepared = system.prepare(reconstruction_batch(state, batch))
    return system.losses(prepared, state["coeffs"], state["render"])


def _detail_image(system: Any, state: dict[str, Any]) -> torch.Tensor:
    image = state.get("I_out", state["I_in"])
    size = system.hparams.image_size
    if image.shape[-1] != size:
        image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return image


def _detail_config(config: dict[str, Any], built: Mapping[str, nn.Module]) -> None:
    # the chain's coarse stage supplies d(b): the detail stage's own coarse network is not built,
    # and the coefficients are rendered at the size the coarse stage predicted them for
    config["coarse"] = "ground_truth"
    if "reconstruction" in built:
        coarse = built["reconstruction"]
        config["coarse_image_size"] = coarse.hparams.image_size
        config["face_model"], config["face_model_dir"] = coarse.hparams.face_model, coarse.hparams.face_model_dir


def _run_detail(system: Any, state: dict[str, Any]) -> None:
    """Bump map on ``I_out`` (else ``I_in``) over the maps of the chain's own coarse prediction."""
    image = _detail_image(system, state)
    out, coarse = system.detail_from_coeffs(image, state["coeffs"])
    state["detail"] = (image, out, coarse)
    state["bump"], state["depth_detail"] = out.phi / 255.0, out.depth


def _loss_detail(system: Any, state: dict[str, Any], batch: Mapping[str, Any]):
    image, out, coarse = state["detail"]
    return system.losses(dict(batch), image, out, coarse)


LINKS: dict[str, Link] = {
    "parsing": Link("parsing", ("I_in",), _run_parsing, _loss_parsing),
    "edge_lines": Link("edge_lines", ("I_in",), _run_edge_lines, _loss_edge_lines, frozen_parts=("discriminator",)),
    "fusion": Link("fusion", ("M_fa", "M_edge"), _run_fusion),
    "synthesis": Link("synthesis", ("I_in", "M_fin", "O"), _run_synthesis, _loss_synthesis,
                      frozen_parts=("discriminator",), after_step=_synthesis_ema),
    "reconstruction": Link("reconstruction", ("I_in",), _run_reconstruction, _loss_reconstruction),
    "detail": Link("detail", ("coeffs",), _run_detail, _loss_detail, chain_config=_detail_config),
}
"""Stage name -> its link. Stages added later register here (:func:`register_link`)."""


def register_link(link: Link) -> Link:
    """Add (or replace) the link of a stage; its name must be in :data:`CHAIN_ORDER`."""
    if link.name not in CHAIN_ORDER:
        raise ConfigError(f"link {link.name!r}: not a stage of the chain {CHAIN_ORDER}")
    LINKS[link.name] = link
    return link


def chain_order(names: Mapping[str, Any] | list[str] | tuple[str, ...]) -> list[str]:
    """The configured stage names in chain order, ``fusion`` added when parsing and edge lines are both present."""
    names = list(names)
    unknown = [n for n in names if n not in CHAIN_ORDER]
    if unknown:
        raise ConfigError(f"model.stages: unknown stage {unknown[0]!r}; the chain is {', '.join(CHAIN_ORDER)}")
    present = set(names)
    if {"parsing", "edge_lines"} <= present:
        present.add("fusion")
    return [n for n in CHAIN_ORDER if n in present]


def run_chain(systems: Mapping[str, nn.Module], order: list[str], images: torch.Tensor) -> dict[str, Any]:
    """Run the links of ``order`` on ``images`` ``[B, 3, S, S]``; returns the state (module docstring)."""
    state: dict[str, Any] = {"I_in": images}
    for name in order:
        link = LINKS.get(name)
        if link is None:
            raise ConfigError(f"stage {name!r} has no link in the chain yet (occrecon.chain.LINKS)")
        missing = [k for k in link.needs if k not in state]
        if missing:
            raise ConfigError(f"stage {name!r} needs {missing} from an earlier stage; chain: {order}")
        link.run(systems[name] if name in systems else None, state)
    return state


def export_checkpoint(system: Any, path: str | Path) -> Path:
    """Write ``system`` (a ``PipelineSystem``) as one self-contained checkpoint at ``path``.

    The file holds the weights of every stage (less the fixed assets each stage rebuilds from its
    config) and every stage's resolved config, and loads with
    ``PipelineSystem.load_from_checkpoint(path, weights_only=True)``; no optimizer state. Written
    to a temporary file first, so a failure leaves no half-written checkpoint.
    """
    import lightning

    path = Path(path)
    checkpoint = {
        "state_dict": {k: v.detach().cpu() for k, v in system.state_dict().items()},
        "hyper_parameters": dict(system.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "occrecon": {"stage": "pipeline", "order": list(system.order)},
    }
    system.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)
    return path
