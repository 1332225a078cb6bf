"""The composite stage (client card: "a composite module chains frozen stages for end-to-end
multi-GPU fine-tuning"): every configured stage of :mod:`occrecon.chain`, each rebuilt from its
own run, chained, and the trainable ones fine-tuned end to end.

``model.stages.<name>`` (:class:`StageEntry`): ``ckpt`` (a checkpoint of that stage's run; its
``config.yaml`` supplies the stage's config, so nothing is restated), ``trainable`` (fine-tuned
here or frozen), ``model`` (the stage's config when it has no ``ckpt``: it then starts from its
initialisation, with a logged warning), ``overrides`` (keys changed on top of either). Frozen stages hold no optimizer state, never leave eval mode (BatchNorm
statistics untouched) and have ``requires_grad=False`` from construction, so the trainable set is
fixed before ``fit`` and identical on every DDP rank.

Loss: ``sum_s model.loss.weights.<s> * L_s`` over the trainable stages ``s``, each ``L_s`` that
stage's own supervised loss (:data:`occrecon.chain.LINKS`). Because the coarse stage reads
``I_out``, its Eq. 4 losses flow back into the synthesis stage when both are trainable. A GAN
stage's discriminator is not trained in the chain.

Checkpoints are self-contained: the state dict holds every stage's weights (less the fixed assets
a stage leaves out of its own checkpoints) and the hyper-parameters hold every stage's resolved
config, so ``PipelineSystem.load_from_checkpoint(path, weights_only=True)`` needs no other file
(``occrecon export-pipeline`` writes such a file without training).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn

from occrecon.chain import (
    LINKS,
    NETWORK_STAGES,
    build_stage,
    chain_order,
    load_stage_weights,
    reconstruction_batch,
    run_chain,
    stage_model_config,
)
from occrecon.config.schema import BaseModelConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.metrics.reconstruction import ReconstructionMetrics
from occrecon.training import build_optimization

log = logging.getLogger(__name__)

CHAIN_METRICS: tuple[str, ...] = ("error_mm", "error_sim_mm", "nme", "photo_error")
"""Coarse-stage metrics logged for the chain and, as ``<name>_without_synthesis``, for the same
coarse stage fed ``I_in`` directly (the chain with and without the synthesis stage in front)."""


@dataclass
class StageEntry:
    """``model.stages.<name>``: where the stage comes from and whether it is fine-tuned.

    ``ckpt``: a checkpoint of the stage's own run, whose config rebuilds the stage. ``model``: the
    stage's config when there is no checkpoint (its initialisation; ignored with a checkpoint, so
    nothing is restated). ``overrides``: keys changed on top of either (e.g. ``identity_weights``).
    ``enabled=false`` leaves the stage out of the chain (ablations: ``model.stages.synthesis.enabled=false``).
    """

    ckpt: str | None = None
    trainable: bool = False
    enabled: bool = True
    model: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineLossWeights:
    """Weight of each trainable stage's own loss in the end-to-end sum."""

    parsing: float = 1.0
    edge_lines: float = 1.0
    synthesis: float = 1.0
    reconstruction: float = 1.0
    detail: float = 1.0


@dataclass
class PipelineLossConfig:
    weights: PipelineLossWeights = field(default_factory=PipelineLossWeights)


@dataclass
class PipelineModelConfig(BaseModelConfig):
    """``model`` section of the composite stage (module docstring). ``width`` is handed to the
    stages built without a checkpoint that do not set their own. ``frozen_batchnorm``: the
    trainable stages' BatchNorm layers keep their running statistics (eval mode) while the rest of
    the stage is fine-tuned -- the usual choice for small per-device batches; without it, several
    CUDA processes share batch statistics through SyncBatchNorm (torch has no CPU SyncBatchNorm:
    on CPU each process normalises by its own batch)."""

    stages: dict[str, StageEntry] = field(default_factory=dict)
    frozen_batchnorm: bool = False
    loss: PipelineLossConfig = field(default_factory=PipelineLossConfig)


class PipelineSystem(L.LightningModule):
    """LightningModule of the composite stage. Built as ``PipelineSystem(**model)``."""

    def __init__(
        self,
        width: int = 64,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        stages: dict[str, Any] | None = None,
        frozen_batchnorm: bool = False,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        configured = stages
        stages = {name: {**vars(StageEntry()), **dict(entry or {})} for name, entry in (stages or {}).items()}
        stages = {name: entry for name, entry in stages.items() if entry["enabled"]}
        if not stages:
            raise ConfigError("model.stages: name at least one stage of the chain")
        self.order = chain_order(list(stages))
        defaults = PipelineModelConfig()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        self.weights = merged_defaults(defaults.loss, loss, "model.loss")["weights"]
        self.stages = nn.ModuleDict()
        for name in self.order:
            if name not in NETWORK_STAGES:
                continue
            entry = stages[name]
            config = stage_model_config(name, entry["ckpt"], {} if entry["ckpt"] else entry["model"])
            config.update(entry["overrides"])
            if LINKS[name].chain_config is not None:
                LINKS[name].chain_config(config, self.stages)
            if entry["ckpt"] is None and "width" not in config:
                config["width"] = width
            system = build_stage(name, config)
            if entry["ckpt"] is not None:
                load_stage_weights(name, system, entry["ckpt"])
            elif not entry.get("inline", False):
                log.warning("pipeline: stage %r has no checkpoint (model.stages.%s.ckpt); it starts from its initialisation", name, name)
            # the stage's config is now inline: the pipeline checkpoint needs no other file
            stages[name] = {**entry, "model": config, "overrides": {}, "ckpt": None, "inline": True}
            self.stages[name] = system
        self.trainable = [n for n in self.stages if stages[n]["trainable"]]
        names = CHAIN_METRICS + tuple(f"{m}_without_synthesis" for m in CHAIN_METRICS)
        self.val_metrics = ReconstructionMetrics(names)
        self.frozen_batchnorm = frozen_batchnorm
        self._freeze()
        self.train()
        for name in self.trainable:  # helper networks a trainable stage's loss needs (its own setup's job)
            prepare = getattr(self.stages[name], "build_frozen_networks", None)
            if prepare is not None:
                prepare()
        self.resolved_stages = stages  # every stage's config inline: written into checkpoints
        self.save_hyperparameters({"width": width, "optimizer": optimizer, "scheduler": scheduler,
                                   "stages": configured, "frozen_batchnorm": frozen_batchnorm, "loss": loss})  # fmt: skip

    # -- freezing (decided here, before fit) --------------------------------------------------------
    def _freeze(self) -> None:
        for name, system in self.stages.items():
            # a trainable stage keeps its own choices (e.g. an EMA copy never takes gradients)
            for part in LINKS[name].frozen_parts:
                getattr(system, part).requires_grad_(False)
            if name not in self.trainable:
                system.requires_grad_(False)
                system.eval()

    def train(self, mode: bool = True) -> PipelineSystem:
        """Lightning calls ``train()`` every epoch: frozen stages stay in eval mode."""
        super().train(mode)
        for name, system in self.stages.items():
            if name not in self.trainable:
                system.eval()
            elif self.frozen_batchnorm:
                for module in system.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def setup(self, stage: str) -> None:
        # BatchNorm statistics over all ranks for the stages that train (before DDP wraps the model)
        if self.trainer.world_size > 1 and not self.frozen_batchnorm and self.trainer.strategy.root_device.type == "cuda":
            for name in self.trainable:
                self.stages[name] = nn.SyncBatchNorm.convert_sync_batchnorm(self.stages[name])

    # -- the chain -------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        """Run the chain on ``images [B, 3, S, S]`` in ``[0, 1]``; the state of :mod:`occrecon.chain`."""
        return run_chain(self.stages, self.order, images)

    def losses(self, state: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``sum_s w_s L_s`` over the trainable stages and the logged parts ``<stage>/<term>``."""
        total = state["I_in"].new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        for name in self.trainable:
            result = LINKS[name].loss(self.stages[name], state, batch) if LINKS[name].loss else None
            if result is None:
                continue
            value, parts = result
            total = total + self.weights[name] * value
            logs[name] = value.detach()
            logs.update({f"{name}/{k}": v for k, v in parts.items()})
        return total, logs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        state = self(batch["image"])
        total, logs = self.losses(state, batch)
        size = batch["image"].shape[0]
        self.log_dict({f"train/loss/{k}": v for k, v in logs.items()}, batch_size=size)
        self.log("train/loss", total.detach(), batch_size=size, prog_bar=True)
        return total

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        for name in self.trainable:
            if LINKS[name].after_step is not None:
                LINKS[name].after_step(self.stages[name])

    @torch.no_grad()
    def evaluate(self, state: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Per-sample coarse-stage metrics ``name -> [B]`` of the chain (:data:`CHAIN_METRICS`), and
        of the same coarse stage on ``I_in`` (``<name>_without_synthesis``) when synthesis runs."""
        coarse = self.stages["reconstruction"] if "reconstruction" in self.stages else None
        if coarse is None:
            return {}
        values = coarse.evaluate(batch, coarse.prepare(reconstruction_batch(state, batch)), state["coeffs"], state["render"])
        if "I_out" in state:
            alone = {k: v for k, v in state.items() if k != "I_out"}
            LINKS["reconstruction"].run(coarse, alone)
            prepared = coarse.prepare(reconstruction_batch(alone, batch))
            without = coarse.evaluate(batch, prepared, alone["coeffs"], alone["render"])
            values.update({f"{k}_without_synthesis": v for k, v in without.items()})
        return values

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        state = self(batch["image"])
        total, logs = self.losses(state, batch)
        size = batch["image"].shape[0]
        self.log_dict({f"val/loss/{k}": v for k, v in logs.items()}, batch_size=size, sync_dist=True)
        self.log("val/loss", total, batch_size=size, sync_dist=True)
        values = self.evaluate(state, batch)
        if values:
            self.val_metrics.update(values, batch["glasses"] > 0 if "glasses" in batch else None)

    def on_validation_epoch_end(self) -> None:
        if self.val_metrics.update_count:
            computed = {f"val/{k}": float(v) for k, v in self.val_metrics.compute().items()}
            self.log_dict({k: v for k, v in computed.items() if v == v})  # NaN: not measurable here
        self.val_metrics.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Every intermediate map of the chain (render buffers dropped, kept: its image and mask)."""
        state = self(batch["image"])
        render = state.pop("render", None)
        if render is not None:
            state["render_image"], state["render_mask"] = render.image, render.mask
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for name in self.trainable for p in self.stages[name].parameters() if p.requires_grad]
        if not params:
            raise ConfigError("model.stages: no stage is trainable (set model.stages.<name>.trainable=true to fine-tune)")
        return build_optimization(self, self.optimizer_cfg, self.scheduler_cfg, params)

    # -- checkpoints: each stage's own rules for what it leaves out ----------------------------------------
    def _per_stage(self, checkpoint: dict[str, Any], hook: str) -> None:
        state = checkpoint["state_dict"]
        for name, system in self.stages.items():
            method = getattr(system, hook, None)
            if method is None:
                continue
            prefix = f"stages.{name}."
            sub = {"state_dict": {k[len(prefix):]: state.pop(k) for k in [k for k in state if k.startswith(prefix)]}}
            method(sub)
            state.update({prefix + k: v for k, v in sub["state_dict"].items()})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the checkpoint rebuilds every stage from its inline config: no stage file is needed to load it
        checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "stages": self.resolved_stages}
        self._per_stage(checkpoint, "on_save_checkpoint")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._per_stage(checkpoint, "on_load_checkpoint")
