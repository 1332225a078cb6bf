"""Face-parsing stage (paper §3.1): trains ``N_fa`` (:class:`occrecon.nets.parsing.FaceParsingNet`)
to predict ``M_fa``, the parsing map *with* the occluders labelled (glasses as ``eye_g``, hands as
background; on the synthetic set that is ``parsing_in``, served as ``label_map``).

Loss: :func:`occrecon.losses.parsing.parsing_loss` with ``model.loss.weights.{parse,edge,edge_parse}``.
Metrics (:class:`occrecon.metrics.parsing.FaceParsingMetrics`, one confusion matrix over the whole
split, summed across DDP ranks by torchmetrics): ``val/miou``, ``val/f1/mean``, ``val/f1/<class>``,
``val/pixel_accuracy`` and, for Helen, ``val/f1/overall``.

Widths derive from ``model.width`` (64 = EAGRNet: PSP 512, edge head 256, decoder 256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn

from occrecon.config.schema import BaseModelConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.evaluation.common import scalar_metrics
from occrecon.evaluation.parsing import parsing_grid
from occrecon.labels import CELEBAMASK_CLASSES, HELEN_CLASSES, HELEN_OVERALL_F1_CLASSES, IGNORE_LABEL
from occrecon.losses.parsing import ParsingLoss
from occrecon.metrics.parsing import FaceParsingMetrics
from occrecon.nets.parsing import FaceParsingNet
from occrecon.systems.common import image_loggers, log_image
from occrecon.training import build_optimization

LABEL_SETS: dict[str, tuple[str, ...]] = {"celebamask": CELEBAMASK_CLASSES, "helen": HELEN_CLASSES}
"""``model.label_set`` -> class names in label order."""


@dataclass
class ParsingLossWeights:
    parse: float = 1.0
    edge: float = 1.0
    edge_parse: float = 1.0


@dataclass
class ParsingLossConfig:
    weights: ParsingLossWeights = field(default_factory=ParsingLossWeights)


@dataclass
class ParsingModelConfig(BaseModelConfig):
    """``model`` section of the parsing stage.

    ``label_set``: ``celebamask`` (19 classes; CelebAMask-HQ and synthetic) or ``helen`` (11);
    ``num_classes`` must match it. ``depth``: ResNet depth (101 as EAGRNet; 18/50 on CPU).
    ``sync_batchnorm``: convert BatchNorm to SyncBatchNorm when training on several processes.
    ``image_log_every_n_steps``: input | prediction | target grid to W&B/TensorBoard (0 = never).
    """

    label_set: str = "celebamask"
    num_classes: int = 19
    depth: int = 101
    output_stride: int = 8
    graph_mids: int = 4
    edge_channels: int = 2
    backbone_weights: str | None = None
    sync_batchnorm: bool = True
    ignore_index: int = IGNORE_LABEL
    image_log_every_n_steps: int = 200
    loss: ParsingLossConfig = field(default_factory=ParsingLossConfig)


def class_names(label_set: str, num_classes: int) -> tuple[str, ...]:
    """Class names of ``label_set``; raises ConfigError when ``num_classes`` disagrees."""
    if label_set not in LABEL_SETS:
        raise ConfigError(f"model.label_set: expected one of {sorted(LABEL_SETS)}, got {label_set!r}")
    names = LABEL_SETS[label_set]
    if num_classes != len(names):
        raise ConfigError(f"model.num_classes={num_classes} but label_set {label_set!r} has {len(names)} classes")
    return names


class ParsingSystem(L.LightningModule):
    """LightningModule of the face-parsing stage (see the module docstring). Built as ``ParsingSystem(**model)``."""

    def __init__(
        self,
        width: int = 64,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        label_set: str = "celebamask",
        num_classes: int = 19,
        depth: int = 101,
        output_stride: int = 8,
        graph_mids: int = 4,
        edge_channels: int = 2,
        backbone_weights: str | None = None,
        sync_batchnorm: bool = True,
        ignore_index: int = IGNORE_LABEL,
        image_log_every_n_steps: int = 200,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        defaults = ParsingModelConfig()
        self.save_hyperparameters()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        weights = merged_defaults(defaults.loss, loss, "model.loss")["weights"]
        self.class_names = class_names(label_set, num_classes)
        self.net = FaceParsingNet(
            num_classes=num_classes,
            depth=depth,
            base_width=width,
            output_stride=output_stride,
            psp_channels=8 * width,
            edge_channels=edge_channels,
            edge_mid_channels=4 * width,
            graph_mids=graph_mids,
            decoder_channels=4 * width,
            backbone_weights=backbone_weights,
        )
        self.criterion = ParsingLoss(weights["parse"], weights["edge"], weights["edge_parse"], ignore_index)
        overall = HELEN_OVERALL_F1_CLASSES if label_set == "helen" else None
        self.val_metrics = FaceParsingMetrics(self.class_names, overall, ignore_index)
        self.test_metrics = FaceParsingMetrics(self.class_names, overall, ignore_index)

    def setup(self, stage: str) -> None:
        # before the strategy wraps the model: BatchNorm statistics over all ranks under DDP
        if self.hparams.sync_batchnorm and self.trainer.world_size > 1:
            self.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.net)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` ``[B, 3, H, W]`` in ``[0, 1]`` -> ``{"parsing": [B, C, H, W], "edge": [B, E, H, W]}`` logits."""
        return self.net(images)

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        """``M_fa`` ``[B, H, W]`` int64 for ``[B, 3, H, W]`` images."""
        return self.net(images)["parsing"].argmax(dim=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self(batch["image"])
        terms = self.criterion(outputs, batch["label_map"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=batch["image"].shape[0])
        every = self.hparams.image_log_every_n_steps
        if every > 0 and self.global_step % every == 0 and image_loggers(self.logger):
            log_image(self.logger, "train/parsing", parsing_grid(batch, outputs["parsing"].argmax(1)), self.global_step)
        return terms["loss"]

    def _eval_step(self, batch: dict[str, Any], metrics: FaceParsingMetrics, prefix: str) -> None:
        outputs = self(batch["image"])
        terms = self.criterion(outputs, batch["label_map"])
        self.log(f"{prefix}/loss", terms["loss"], batch_size=batch["image"].shape[0], sync_dist=True)
        metrics.update(outputs["parsing"], batch["label_map"])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def _log_split(self, metrics: FaceParsingMetrics, prefix: str) -> None:
        # compute() sums the confusion matrices of all ranks, so every rank holds the same numbers
        # (sync_dist averages equal values: it only silences Lightning's epoch-level DDP warning)
        self.log_dict(scalar_metrics(metrics.compute(), prefix), sync_dist=True)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_split(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_split(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.predict_labels(batch["image"])

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self, self.optimizer_cfg, self.scheduler_cfg)
