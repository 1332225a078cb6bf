"""Synthesis stage (paper §3.3, Fig. 1): a parsing-guided GAN removes the occluder,
``(I_in, M_fin, M_edge, m) -> I_out``.

Networks: the generator ``G`` (:class:`occrecon.nets.synthesis.SynthesisGenerator`, guidance by
SPADE or concatenation) and a multi-scale spectral-norm PatchGAN ``D``
(:class:`occrecon.nets.patch_discriminator.MultiScalePatchDiscriminator`). ``I_out = m * G + (1 - m) * I_in``:
pixels outside the mask are bit-identical to the input.

Conditions of a batch (:meth:`SynthesisSystem.conditions`): ``I_in`` (``image``), ``M_fin`` =
``batch[model.fin_key]`` (``parsing_gt`` on the synthetic set: the occluder-free parsing; in the
pipeline the fused map of :mod:`occrecon.fusion`), ``M_edge`` = ``edge_lines``, the mask = the
ground-truth ``occluder_mask`` when the batch has one, else the occluder mask of ``M_fa``
(``label_map``; :func:`occrecon.fusion.occluder_mask`: ``eye_g`` plus non-face labels inside the
face hull). The target is ``I_gt``.

Losses (:mod:`occrecon.losses.synthesis`, weights ``model.loss.weights.<term>``): masked L1,
adversarial (hinge | lsgan), feature matching, and the terms of frozen networks (parsing
consistency, identity, perceptual; :mod:`occrecon.assets.frozen_features`, never in the state
dict). A term whose network is unavailable is switched off with a logged warning; the weights in
effect: :attr:`SynthesisSystem.effective_weights`, also under ``checkpoint["synthesis"]``.

Manual optimisation (:class:`~occrecon.systems.gan.ManualGANMixin`): on batch ``n``
(``batches_seen``) a ``G`` step when ``n % generator_every == 0``, a ``D`` step when
``n % discriminator_every == 0`` (none when the adversarial and feature-matching weights are 0);
``trainer.global_step`` counts optimiser steps (2 per batch by default). Optional EMA of ``G``
(``model.ema``) after each ``G`` step, used for evaluation and inference. DDP: use
``trainer.strategy=ddp_find_unused_parameters_true``. Details: ``docs/synthesis.md``.

Metrics: ``val/l1_mask``, ``val/psnr_mask`` (inside the mask, against ``I_gt``; torchmetrics) and
``val/psnr_mask_input`` (the input itself, the do-nothing baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from occrecon.assets.frozen_features import (
    PERCEPTUAL_SOURCES,
    PerceptualConfig,
    build_loss_networks,
    frozen_network_terms,
)
from occrecon.config.schema import BaseModelConfig, OptimizerConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.evaluation.synthesis_steps import mask_metrics
from occrecon.fusion import occluder_mask
from occrecon.landmarks import NUM_EDGE_LINES
from occrecon.losses.synthesis import (
    ADVERSARIAL_KINDS,
    discriminator_adversarial,
    feature_matching,
    generator_adversarial,
    masked_l1,
)
from occrecon.nets.patch_discriminator import MultiScalePatchDiscriminator
from occrecon.nets.synthesis import SynthesisGenerator
from occrecon.systems.common import image_loggers, log_image
from occrecon.systems.gan import ManualGANMixin

TERMS: tuple[str, ...] = ("l1", "adversarial", "feature_matching", "parsing", "identity", "perceptual")


@dataclass
class SynthesisLossWeights:
    l1: float = 1.0
    adversarial: float = 0.1
    feature_matching: float = 10.0
    parsing: float = 0.1
    identity: float = 0.1
    perceptual: float = 0.1


@dataclass
class SynthesisLossConfig:
    """``adversarial``: hinge | lsgan. ``perceptual_layer_weights``: one per feature layer (empty: 1 each)."""

    weights: SynthesisLossWeights = field(default_factory=SynthesisLossWeights)
    adversarial: str = "hinge"
    perceptual_layer_weights: list[float] = field(default_factory=list)


@dataclass
class SynthesisDiscriminatorConfig:
    """Multi-scale PatchGAN. ``width`` 0 = ``model.width``; lr = 0.1 x G's (EdgeConnect's D2G_LR)."""

    width: int = 0
    num_layers: int = 3
    num_scales: int = 2
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-5, betas=[0.0, 0.9]))


@dataclass
class EMAConfig:
    """Exponential moving average of ``G``'s weights (``decay`` per ``G`` step), used for evaluation."""

    enabled: bool = True
    decay: float = 0.999
    use_for_eval: bool = True


@dataclass
class SynthesisModelConfig(BaseModelConfig):
    """``model`` section of the synthesis stage (see the module docstring).

    ``conditioning``: spade | concat (docs/synthesis.md has the ablation). ``use_parsing`` /
    ``use_edges``: feed ``M_fin`` / ``M_edge`` to ``G``. ``fin_key``: batch field used as ``M_fin``.
    ``parsing_ckpt``: a parsing-stage checkpoint (frozen network of the parsing-consistency and
    perceptual terms; None: those terms off). ``identity``: dlib | arcface_r50 | arcface_r100 | none
    (weights ``identity_weights``). ``generator_every`` / ``discriminator_every``: step G / D on
    every n-th batch.
    """

    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, betas=[0.0, 0.9]))
    num_blocks: int = 8
    conditioning: str = "spade"
    use_parsing: bool = True
    use_edges: bool = True
    num_classes: int = 19
    fin_key: str = "parsing_gt"
    parsing_ckpt: str | None = None
    identity: str = "dlib"
    identity_weights: str | None = None
    generator_every: int = 1
    discriminator_every: int = 1
    gradient_clip_val: float = 0.0
    gradient_clip_algorithm: str = "norm"
    image_log_every_n_steps: int = 200
    discriminator: SynthesisDiscriminatorConfig = field(default_factory=SynthesisDiscriminatorConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    loss: SynthesisLossConfig = field(default_factory=SynthesisLossConfig)


class Conditions(NamedTuple):
    """Everything ``G`` and the losses need from one batch (shapes: module docstring of the generator)."""

    image: torch.Tensor
    parsing: torch.Tensor | None
    edges: torch.Tensor | None
    mask: torch.Tensor
    target: torch.Tensor | None
    landmarks: torch.Tensor | None


class SynthesisSystem(ManualGANMixin, L.LightningModule):
    """LightningModule of the synthesis stage (module docstring). Built as ``SynthesisSystem(**model)``."""

    def __init__(
        self,
        width: int = 64,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        num_blocks: int = 8,
        conditioning: str = "spade",
        use_parsing: bool = True,
        use_edges: bool = True,
        num_classes: int = 19,
        fin_key: str = "parsing_gt",
        parsing_ckpt: str | None = None,
        identity: str = "dlib",
        identity_weights: str | None = None,
        generator_every: int = 1,
        discriminator_every: int = 1,
        gradient_clip_val: float = 0.0,
        gradient_clip_algorithm: str = "norm",
        image_log_every_n_steps: int = 200,
        discriminator: dict[str, Any] | None = None,
        perceptual: dict[str, Any] | None = None,
        ema: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        defaults = SynthesisModelConfig()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        self.disc_cfg = merged_defaults(defaults.discriminator, discriminator, "model.discriminator")
        self.perceptual_cfg = merged_defaults(defaults.perceptual, perceptual, "model.perceptual")
        self.ema_cfg = merged_defaults(defaults.ema, ema, "model.ema")
        self.loss_cfg = merged_defaults(defaults.loss, loss, "model.loss")
        if self.loss_cfg["adversarial"] not in ADVERSARIAL_KINDS:
            raise ConfigError(f"model.loss.adversarial: expected one of {ADVERSARIAL_KINDS}, got {self.loss_cfg['adversarial']!r}")
        if self.perceptual_cfg["source"] not in PERCEPTUAL_SOURCES:
            raise ConfigError(f"model.perceptual.source: expected one of {PERCEPTUAL_SOURCES}, got {self.perceptual_cfg['source']!r}")
        if generator_every < 1 or discriminator_every < 1:
            raise ConfigError("model.generator_every and model.discriminator_every must be >= 1")
        self.generator = SynthesisGenerator(width, num_classes, NUM_EDGE_LINES, num_blocks, conditioning, use_parsing, use_edges)
        d = self.disc_cfg
        self.discriminator = MultiScalePatchDiscriminator(3, d["width"] or width, d["num_layers"], d["num_scales"])
        self.generator_ema: AveragedModel | None = None
        if self.ema_cfg["enabled"]:
            ema_fn = get_ema_multi_avg_fn(self.ema_cfg["decay"])
            self.generator_ema = AveragedModel(self.generator, multi_avg_fn=ema_fn, use_buffers=True).requires_grad_(False)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        # requested weights; the frozen networks (and so the weights in effect) are set up at fit time
        self.effective_weights: dict[str, float] = dict(self.loss_cfg["weights"])
        self.disabled: dict[str, str] = {}
        self._frozen: dict[str, Any] = {}  # plain dict: frozen networks stay out of the state dict and of DDP

    def setup(self, stage: str) -> None:
        self.require_find_unused("synthesis")
        if stage == "fit":
            self.build_frozen_networks()

    def build_frozen_networks(self) -> dict[str, float]:
        """Load the frozen parsing / identity / feature networks the configured terms need;
        switch off (weight 0, warning, reason in :attr:`disabled`) those that cannot be had
        (:func:`occrecon.assets.frozen_features.build_loss_networks`). Returns the weights in effect."""
        hp = self.hparams
        built = build_loss_networks(
            self.loss_cfg["weights"], self.perceptual_cfg, hp.parsing_ckpt, hp.identity, hp.identity_weights, load_parsing_network
        )
        self._frozen, self.effective_weights, self.disabled = built
        self.perceptual_source = self._frozen["features"].source if "features" in self._frozen else "none"
        return self.effective_weights

    # ------------------------------------------------------------------ inference

    @property
    def eval_generator(self) -> SynthesisGenerator:
        """The EMA generator when enabled, used for evaluation and it has been updated; else ``G``."""
        ema = self.generator_ema
        if ema is not None and self.ema_cfg["use_for_eval"] and int(ema.n_averaged) > 0:
            return ema.module  # type: ignore[return-value]
        return self.generator

    def forward(
        self, image: torch.Tensor, parsing: torch.Tensor | None, edges: torch.Tensor | None, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"generated", "output"}`` of the training generator ``G`` (see :class:`SynthesisGenerator`)."""
        return self.generator(image, parsing, edges, mask)

    @torch.no_grad()
    def synthesize(
        self, image: torch.Tensor, parsing: torch.Tensor | None, edges: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        """``I_out`` ``[B, 3, H, W]`` with the evaluation generator (EMA when enabled).

        Args:
            image: ``I_in`` ``[B, 3, H, W]`` in ``[0, 1]`` (H, W multiples of 4).
            parsing: ``M_fin`` ``[B, H, W]`` int64 labels or ``[B, 19, H, W]`` one-hot (None when ``use_parsing`` is off).
            edges: ``M_edge`` ``[B, 13, h, w]`` in ``[0, 1]`` (None when ``use_edges`` is off).
            mask: occluder mask ``[B, 1, H, W]`` in ``{0, 1}`` (e.g. :func:`occrecon.fusion.occluder_mask`).
        """
        return self.eval_generator(image, parsing, edges, mask)["output"]

    def conditions(self, batch: dict[str, Any]) -> Conditions:
        """:class:`Conditions` of a sample-dict batch (module docstring: which field is what)."""
        image = batch["I_in"] if "I_in" in batch else batch["image"]
        hp = self.hparams
        edges = batch.get("edge_lines") if hp.use_edges else None
        if "occluder_mask" in batch:
            mask = batch["occluder_mask"].to(image.dtype)
        elif "label_map" in batch:
            mask = occluder_mask(batch["label_map"], batch.get("edge_lines"))
        else:
            raise ConfigError("synthesis: the batch has neither occluder_mask nor label_map (M_fa) to derive the mask from")
        parsing = None
        if hp.use_parsing:
            if hp.fin_key not in batch:
                raise ConfigError(f"synthesis: model.fin_key={hp.fin_key!r} is not a field of the batch ({sorted(batch)})")
            parsing = batch[hp.fin_key]
        return Conditions(image, parsing, edges, mask, batch.get("I_gt"), batch.get("landmarks"))

    # ------------------------------------------------------------------ losses

    def generator_loss(self, cond: Conditions, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted terms of ``G``'s loss for ``I_out`` (``output``); ``"loss"`` is their sum."""
        if cond.target is None:
            raise ConfigError("synthesis: training needs I_gt in the batch (paired data; datamodules/glasses_paste.py makes pairs)")
        w = self.effective_weights
        terms: dict[str, torch.Tensor] = {"l1": masked_l1(output, cond.target, cond.mask)}
        if w["adversarial"] > 0 or w["feature_matching"] > 0:
            fake = self.discriminator(output)
            terms["adversarial"] = generator_adversarial([f[-1] for f in fake], self.loss_cfg["adversarial"])
            if w["feature_matching"] > 0:
                with torch.no_grad():
                    real = self.discriminator(cond.target)
                terms["feature_matching"] = feature_matching(fake, real)
        terms.update(frozen_network_terms(
            self._frozen, w, output, cond.target, cond.parsing, cond.mask, cond.landmarks, self.loss_cfg["perceptual_layer_weights"]
        ))  # fmt: skip
        total = sum(w[k] * v for k, v in terms.items() if w[k] > 0)
        return {"loss": total, **terms}

    def discriminator_loss(self, cond: Conditions, output: torch.Tensor) -> torch.Tensor:
        """``L_D`` of real ``I_gt`` vs the (detached) ``I_out``."""
        real = self.discriminator(cond.target)
        fake = self.discriminator(output.detach())
        return discriminator_adversarial([r[-1] for r in real], [f[-1] for f in fake], self.loss_cfg["adversarial"])

    @property
    def discriminator_active(self) -> bool:
        """``D`` trains only when a term uses it."""
        return self.effective_weights["adversarial"] > 0 or self.effective_weights["feature_matching"] > 0

    # ------------------------------------------------------------------ training (manual optimisation)

    def schedule(self, batch_index: int) -> tuple[bool, bool]:
        """``(G steps, D steps)`` on the ``batch_index``-th training batch (0-based, over the whole run)."""
        hp = self.hparams
        return batch_index % hp.generator_every == 0, self.discriminator_active and batch_index % hp.discriminator_every == 0

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        cond = self.conditions(batch)
        do_g, do_d = self.schedule(int(self.batches_seen))
        logs: dict[str, torch.Tensor] = {}
        output = None
        if do_g:
            with self.toggled_optimizer(g_opt):
                output = self.generator(cond.image, cond.parsing, cond.edges, cond.mask)["output"]
                terms = self.generator_loss(cond, output)
                g_opt.zero_grad()
                self.manual_backward(terms["loss"])
                self.clip(g_opt)
                g_opt.step()
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
            logs.update({f"train/{'g_loss' if k == 'loss' else k}": v.detach() for k, v in terms.items()})
        if do_d:
            with self.toggled_optimizer(d_opt):
                if output is None:
                    with torch.no_grad():
                        output = self.generator(cond.image, cond.parsing, cond.edges, cond.mask)["output"]
                d_loss = self.discriminator_loss(cond, output)
                d_opt.zero_grad()
                self.manual_backward(d_loss)
                self.clip(d_opt)
                d_opt.step()
            logs["train/d_loss"] = d_loss.detach()
        self.batches_seen += 1
        self.step_schedulers("step")
        logs["train/batches"] = self.batches_seen.float()
        self.log_dict(logs, batch_size=cond.image.shape[0])
        every = self.hparams.image_log_every_n_steps
        if every > 0 and output is not None and (int(self.batches_seen) - 1) % every == 0 and image_loggers(self.logger):
            from occrecon.evaluation.synthesis import synthesis_grid

            log_image(self.logger, "train/synthesis", synthesis_grid(batch, output.detach()), self.global_step)

    def on_train_start(self) -> None:
        if self.logger is not None:
            self.logger.log_hyperparams({"effective_loss_weights": self.effective_weights, "disabled_terms": self.disabled})

    def configure_optimizers(self) -> list[dict[str, Any]]:
        return self.gan_optimizers(
            self.optimizer_cfg, self.generator.parameters(), self.disc_cfg["optimizer"], self.discriminator.parameters()
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["synthesis"] = {"effective_weights": dict(self.effective_weights), "disabled": dict(self.disabled)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # what the run trained with (a later fit rebuilds the frozen networks and sets them again)
        record = checkpoint.get("synthesis", {})
        self.effective_weights = dict(record.get("effective_weights", self.effective_weights))
        self.disabled = dict(record.get("disabled", self.disabled))

    # ------------------------------------------------------------------ evaluation

    def _eval_step(self, batch: dict[str, Any], prefix: str) -> None:
        cond = self.conditions(batch)
        if cond.target is not None:
            output = self.synthesize(cond.image, cond.parsing, cond.edges, cond.mask)
            values = mask_metrics(output, cond.target, cond.image, cond.mask, prefix)
            self.log_dict(values, batch_size=cond.image.shape[0], sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        cond = self.conditions(batch)
        return {"I_out": self.synthesize(cond.image, cond.parsing, cond.edges, cond.mask), "mask": cond.mask}


def load_parsing_network(path: str) -> torch.nn.Module:
    """The frozen ``FaceParsingNet`` of a parsing-stage checkpoint (eval mode, no parameter gradients)."""
    from pathlib import Path

    from occrecon.errors import MissingAssetError
    from occrecon.nets.identity import freeze
    from occrecon.systems.parsing import ParsingSystem

    if not Path(path).is_file():
        raise MissingAssetError(path, "model.parsing_ckpt", "Train one: occrecon fit -c experiments/parsing/synthetic.yaml")
    system = ParsingSystem.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    return freeze(system.net)
