"""Face edge-lines stage (paper §3.2): generator ``G`` (:class:`occrecon.nets.edge_lines.EdgeLinesNet`,
``M_edge`` + a landmark read-out) trained against the effectiveness discriminator ``D``
(:class:`occrecon.nets.discriminator.EdgeLinesDiscriminator`, Eq. 1-3).

Manual optimisation (Lightning 2.x, two optimisers). Per batch:

1. ``G`` step (``D`` toggled off): ``w_heatmap * sum_k MSE(M_k, M_gt) + w_landmarks * mean ||p - p_gt|| / W
   + w_adversarial * L_adv(D(G(I)))`` (Eq. 3, non-saturating by default);
2. ``D`` step (``G`` toggled off, its output detached): ``L_D`` (Eq. 2) with ``d_gt`` from Eq. 1
   (two-sided: predicted line pixels within ``theta`` heatmap pixels of the true lines, and true lines
   covered, both shares >= ``delta``; ``docs/fusion.md``).

Each step clips its gradients (``model.gradient_clip_val``) and step-interval schedulers are stepped
after it, epoch ones at the epoch end (:class:`~occrecon.systems.gan.ManualGANMixin`).

**Step counting**: ``trainer.global_step`` counts every ``optimizer.step()`` (Lightning #17958), so it
advances by 2 per batch here: ``trainer.max_steps`` and ``run.checkpoint_every_n_steps`` are in
optimiser steps (= 2 x batches). The experiments limit runs by epochs; ``train/batches`` logs the
batch count. **DDP**: the two backward passes of one ``training_step`` each touch only one network,
so DDP must know about unused parameters: use ``trainer.strategy=ddp_find_unused_parameters_true``
(:meth:`EdgeLinesSystem.setup` refuses plain ``ddp``). Gradients are all-reduced by DDP itself.

Metrics: ``val/nme`` (inter-ocular for 68 points, landmark-box for AFLW-19), ``val/fr@0.08``,
``val/auc@0.08``, ``val/mse`` (last stack) and ``val/effective`` (share of maps Eq. 1 calls effective).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from occrecon.config.schema import BaseModelConfig, OptimizerConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.evaluation.common import scalar_metrics
from occrecon.evaluation.edge_lines import edge_grid
from occrecon.landmarks import (
    EDGE_LINES_68,
    EDGE_LINES_AFLW19,
    NUM_LANDMARKS_68,
    NUM_LANDMARKS_AFLW19,
    edge_line_heatmaps,
)
from occrecon.losses.edge_lines import (
    DEFAULT_DELTA,
    DEFAULT_THETA,
    DiscriminatorLoss,
    EdgeLinesLoss,
    effectiveness_label,
)
from occrecon.metrics.landmarks import LandmarkMetrics
from occrecon.nets.discriminator import EdgeLinesDiscriminator
from occrecon.nets.edge_lines import EdgeLinesNet
from occrecon.systems.common import image_loggers, log_image
from occrecon.systems.gan import ManualGANMixin

LAYOUTS: dict[str, tuple[int, tuple[tuple[int, ...], ...], str]] = {
    "68": (NUM_LANDMARKS_68, EDGE_LINES_68, "inter_ocular"),
    "aflw19": (NUM_LANDMARKS_AFLW19, EDGE_LINES_AFLW19, "box"),
}
"""``model.layout`` -> (landmark count, edge-line grouping, NME normalisation)."""


@dataclass
class EdgeLinesLossWeights:
    heatmap: float = 10.0
    landmarks: float = 1.0
    adversarial: float = 0.01


@dataclass
class EdgeLinesLossConfig:
    weights: EdgeLinesLossWeights = field(default_factory=EdgeLinesLossWeights)
    stack_weights: list[float] = field(default_factory=list)  # empty: 1 per stack
    non_saturating: bool = True


@dataclass
class DiscriminatorConfig:
    """``D`` and Eq. 1. ``theta`` in heatmap pixels; ``width`` 0 = ``model.width``. ``D`` sees the maps
    resized to ``input_size`` (0 = as they are), so its depth does not depend on the data resolution."""

    theta: float = DEFAULT_THETA
    delta: float = DEFAULT_DELTA
    line_threshold: float = 0.5
    width: int = 0
    num_levels: int = 3
    input_size: int = 64
    condition_on_image: bool = True
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class EdgeLinesModelConfig(BaseModelConfig):
    """``model`` section of the edge-lines stage.

    ``layout``: ``68`` (300W, synthetic) or ``aflw19``. Hourglass width = ``4 * width`` (256 at
    64, LAB); ``line_channels`` 0 = ``width // 4`` (16 at 64). ``heatmap_sigma``: used only when
    the data's heatmaps are not at the network's output size (then redrawn from the landmarks).
    """

    layout: str = "68"
    num_stacks: int = 4
    hourglass_depth: int = 4
    line_channels: int = 0
    message_kernel: int = 7
    inter_level_span: int = 2
    heatmap_sigma: float = 1.0
    gradient_clip_val: float = 0.0
    gradient_clip_algorithm: str = "norm"
    image_log_every_n_steps: int = 200
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: EdgeLinesLossConfig = field(default_factory=EdgeLinesLossConfig)


class EdgeLinesSystem(ManualGANMixin, L.LightningModule):
    """LightningModule of the edge-lines stage (see the module docstring). Built as ``EdgeLinesSystem(**model)``."""

    def __init__(
        self,
        width: int = 64,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        layout: str = "68",
        num_stacks: int = 4,
        hourglass_depth: int = 4,
        line_channels: int = 0,
        message_kernel: int = 7,
        inter_level_span: int = 2,
        heatmap_sigma: float = 1.0,
        gradient_clip_val: float = 0.0,
        gradient_clip_algorithm: str = "norm",
        image_log_every_n_steps: int = 200,
        discriminator: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if layout not in LAYOUTS:
            raise ConfigError(f"model.layout: expected one of {sorted(LAYOUTS)}, got {layout!r}")
        num_landmarks, self.lines, normalization = LAYOUTS[layout]
        defaults = EdgeLinesModelConfig()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        self.disc_cfg = merged_defaults(defaults.discriminator, discriminator, "model.discriminator")
        loss_cfg = merged_defaults(defaults.loss, loss, "model.loss")
        weights = loss_cfg["weights"]
        self.heatmap_weight = weights["heatmap"]
        self.net = EdgeLinesNet(
            num_stacks=num_stacks,
            width=4 * width,
            hourglass_depth=hourglass_depth,
            line_channels=line_channels or max(width // 4, 2),
            message_kernel=message_kernel,
            inter_level_span=inter_level_span,
            num_landmarks=num_landmarks,
        )
        d = self.disc_cfg
        self.discriminator = EdgeLinesDiscriminator(
            image_channels=3 if d["condition_on_image"] else 0, width=d["width"] or width, num_levels=d["num_levels"]
        )
        stack_weights = [self.heatmap_weight * w for w in (loss_cfg["stack_weights"] or [1.0] * num_stacks)]
        # landmark distances are divided by the image width at run time (landmark_scale = 1 here)
        self.g_loss = EdgeLinesLoss(
            stack_weights, weights["landmarks"], 1.0, weights["adversarial"], loss_cfg["non_saturating"]
        )
        self.d_loss = DiscriminatorLoss(d["theta"], d["delta"], d["line_threshold"], self.lines)
        self.val_metrics = LandmarkMetrics(normalization)
        self.test_metrics = LandmarkMetrics(normalization)

    # ------------------------------------------------------------------ set-up and inference

    def setup(self, stage: str) -> None:
        self.require_find_unused("edge_lines")

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        """``EdgeLinesNet`` output for ``[B, 3, H, W]`` images in ``[0, 1]``."""
        return self.net(images)

    @torch.no_grad()
    def predict_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """``M_edge``: last-stack heatmaps ``[B, 13, H/4, W/4]`` clamped to ``[0, 1]``."""
        return self.net(images)["heatmaps"][-1].clamp(0.0, 1.0)

    def targets(self, batch: dict[str, Any], heat_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground-truth heatmaps at ``heat_size`` and the landmarks in that heatmap's pixel frame."""
        image_h, image_w = batch["image"].shape[-2:]
        scale = torch.tensor([heat_size[1] / image_w, heat_size[0] / image_h], device=batch["landmarks"].device)
        landmarks_heat = batch["landmarks"].float() * scale
        heat = batch["edge_lines"]
        if tuple(heat.shape[-2:]) != tuple(heat_size):  # data drawn at another size: redraw from the points
            heat = edge_line_heatmaps(landmarks_heat, heat_size, self.hparams.heatmap_sigma, self.lines)
        return heat.float(), landmarks_heat

    # ------------------------------------------------------------------ training (manual optimisation)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        images = batch["image"]
        size = images.shape[0]
        adv_on = self.g_loss.adversarial_weight > 0

        with self.toggled_optimizer(g_opt):
            outputs = self(images)
            fake = outputs["heatmaps"][-1]
            target, landmarks_heat = self.targets(batch, tuple(fake.shape[-2:]))
            fake_logits = self.critic(fake, images) if adv_on else None
            # the read-out predicts image pixels; dividing both by W makes the term resolution-free
            width = images.shape[-1]
            scaled = {**outputs, "landmarks": outputs["landmarks"] / width}
            terms = self.g_loss(scaled, target, batch["landmarks"].float() / width, fake_logits)
            g_total = terms["loss"]
            g_opt.zero_grad()
            self.manual_backward(g_total)
            self.clip(g_opt)
            g_opt.step()

        with self.toggled_optimizer(d_opt):
            fake = fake.detach()
            d_terms = self.d_loss(self.critic(fake, images), self.critic(target, images), fake, landmarks_heat)
            d_opt.zero_grad()
            self.manual_backward(d_terms["loss"])
            self.clip(d_opt)
            d_opt.step()

        self.step_schedulers("step")
        logs = {f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}
        logs.update({"train/g_loss": g_total.detach(), "train/d_loss": d_terms["loss"].detach(),
                     "train/effective": d_terms["d_gt"].mean(), "train/line_share": d_terms["share"].mean(),
                     "train/batches": float(self.global_step // 2)})  # fmt: skip
        self.log_dict(logs, batch_size=size, prog_bar=False)
        every = self.hparams.image_log_every_n_steps
        if every > 0 and (self.global_step // 2) % every == 0 and image_loggers(self.logger):
            log_image(
                self.logger, "train/edge_lines", edge_grid(batch, fake, outputs["landmarks"].detach()), self.global_step
            )

    def critic(self, heatmaps: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``D`` logits ``[B]`` of ``[B, 13, h, w]`` maps, resized to ``discriminator.input_size``."""
        size = self.disc_cfg["input_size"]
        if size and tuple(heatmaps.shape[-2:]) != (size, size):
            heatmaps = F.interpolate(heatmaps, size=(size, size), mode="bilinear", align_corners=False)
        return self.discriminator(heatmaps, images)

    def configure_optimizers(self) -> list[dict[str, Any]]:
        return self.gan_optimizers(
            self.optimizer_cfg, self.net.parameters(), self.disc_cfg["optimizer"], self.discriminator.parameters()
        )

    # ------------------------------------------------------------------ evaluation

    def _eval_step(self, batch: dict[str, Any], metrics: LandmarkMetrics, prefix: str) -> None:
        outputs = self(batch["image"])
        fake = outputs["heatmaps"][-1]
        target, landmarks_heat = self.targets(batch, tuple(fake.shape[-2:]))
        d_gt, share = effectiveness_label(
            fake, landmarks_heat, self.d_loss.theta, self.d_loss.delta, self.lines, self.d_loss.line_threshold
        )
        size = batch["image"].shape[0]
        self.log_dict({f"{prefix}/mse": F.mse_loss(fake, target), f"{prefix}/effective": d_gt.mean(),
                       f"{prefix}/line_share": share.mean()}, batch_size=size, sync_dist=True)  # fmt: skip
        metrics.update(outputs["landmarks"], batch["landmarks"].float(), visible=batch.get("visibility"))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(scalar_metrics(self.val_metrics.compute(), "val"), sync_dist=True)  # equal on all ranks
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(scalar_metrics(self.test_metrics.compute(), "test"), sync_dist=True)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        outputs = self(batch["image"])
        return {"heatmaps": outputs["heatmaps"][-1].clamp(0, 1), "landmarks": outputs["landmarks"]}
