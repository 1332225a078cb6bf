"""Detail stage (paper §3.3, Eq. 5-6): a U-Net predicts the bump map ``Phi`` that adds mid-level detail
(wrinkles, folds) to the coarse shape: ``d'(b) = d(b) + phi^{-1}(Phi(b))`` (:mod:`occrecon.geometry.bump`).

The coarse stage is frozen and supplies, per pixel, the coarse depth ``d``, view-space normals, the
face mask, the albedo and the SH light, and a mirror map (``model.coarse``):

* ``ground_truth`` -- synthetic data only: the stored coefficients ``coeffs`` stand in for the coarse
  prediction (rendered with ``model.face_model`` at ``model.coarse_image_size``, the size the set was
  generated at), and the stored ``depth_coarse`` / ``face_mask`` are ``d`` and the mask (no checkpoint).
* a path to a checkpoint of a ``reconstruction`` run -- that system (rebuilt from its run's
  ``config.yaml``) regresses ``y`` from the input image; its render gives the maps. Its weights are
  not stored in this stage's checkpoints: the path must still exist when they are loaded.

U-Net input (``model.input``): ``occluded`` = ``I_in``, ``clean`` = ``I_gt`` (stand-in for ``I_out``).

Loss (every weight ``model.loss.weights.<term>``; a zero weight skips the term; absent targets too):
``geo`` Eq. 6 (needs the ground truth ``bump``), ``shading`` the photo vs the image re-rendered with
the detailed normals and the coarse albedo/light inside visible skin, ``smooth`` a Laplacian prior,
``sym`` DECA's soft symmetry for occluded face pixels, ``conf`` the confidence map
(:mod:`occrecon.losses.detail`). Logged as ``train/loss/<term>`` and ``train/loss/<term>_weighted``.

Validation/test with ground truth (the synthetic set) log ``val/<metric>_<region>`` and, for
"coarse only" (``d' = d``), ``val/coarse/<metric>_<region>`` (:class:`occrecon.evaluation.detail.DetailMetrics`).
Maps: :mod:`occrecon.geometry.detail_maps`, rendered by :mod:`occrecon.render.pixel_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from occrecon.config.schema import BaseModelConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.evaluation.detail import DetailMetrics, detail_grid
from occrecon.facemodel import load_face_model
from occrecon.geometry.bump import PHI_ZERO, bump_offset, detailed_depth, detailed_normals
from occrecon.geometry.detail_maps import CoarseMaps, DetailOutput
from occrecon.labels import CELEBAMASK
from occrecon.losses.detail import (
    bump_geometry_loss,
    confidence_loss,
    masked_mean,
    shading_residual,
    smoothness_loss,
    symmetry_loss,
)  # fmt: skip
from occrecon.nets.bump import BumpUNet, bump_inputs
from occrecon.render.face import camera_for_layout
from occrecon.render.mesh_renderer import MeshRenderer
from occrecon.render.pixel_attributes import finish_coarse_maps, render_coarse_maps, resize_maps
from occrecon.systems.common import PerSampleEvaluation, image_loggers, log_image
from occrecon.training import build_optimization

INPUTS = {"occluded": "I_in", "clean": "I_gt"}
GROUND_TRUTH = "ground_truth"
OCCLUDER_CLASSES: tuple[int, ...] = tuple(CELEBAMASK[n] for n in ("background", "eye_g", "hair", "hat"))
"""Parsing classes that, inside the rendered face, mark an occluder on real photos (hands are background)."""


@dataclass
class DetailLossWeights:
    """Weights of the detail stage's terms (module docstring)."""

    geo: float = 1.0
    shading: float = 0.0
    smooth: float = 0.0
    sym: float = 0.0
    conf: float = 0.05


@dataclass
class DetailLossConfig:
    """``conf_tau``: error scale of the confidence target ``exp(-|e| / tau)`` (bump codes; for the
    shading residual without ground truth, 8-bit intensity levels)."""

    weights: DetailLossWeights = field(default_factory=DetailLossWeights)
    conf_tau: float = 4.0


@dataclass
class DetailModelConfig(BaseModelConfig):
    """``model`` section of the detail stage.

    ``width``/``levels``: U-Net base width and depth. ``coarse``: ``ground_truth`` or a
    reconstruction checkpoint (module docstring). ``input``: occluded | clean. ``image_size``: size
    of the maps (YAML ``${data.image_size}``; divisible by ``2**levels``). ``coarse_image_size``:
    render size of the ground-truth coefficients (YAML ``${data.synth_size}``). ``bump_range``:
    offset of code 255, decimetres (the data set's manifest). ``face_model``/``face_model_dir``: the
    model of ``ground_truth`` coefficients. ``renderer``: auto | torch | nvdiffrast. ``min_nz``:
    grazing-angle clamp of the normal decoding. ``cache_coarse``: keep the coarse maps of up to this
    many samples (CPU memory, about 0.9 MB each at 128 px), keyed by the batch's ``index`` field: the
    frozen coarse stage is then run once per sample (valid only without augmentation; 0 = off).
    """

    width: int = 32
    levels: int = 4
    coarse: str = GROUND_TRUTH
    input: str = "occluded"
    image_size: int = 128
    coarse_image_size: int = 128
    bump_range: float = 0.04
    face_model: str = "procedural"
    face_model_dir: str | None = None
    renderer: str = "auto"
    min_nz: float = 0.2
    cache_coarse: int = 0
    image_log_every_n_steps: int = 200
    loss: DetailLossConfig = field(default_factory=DetailLossConfig)


class DetailSystem(PerSampleEvaluation, L.LightningModule):
    """LightningModule of the detail stage (module docstring). Built as ``DetailSystem(**model)``."""

    def __init__(
        self,
        width: int = 32,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        levels: int = 4,
        coarse: str = GROUND_TRUTH,
        input: str = "occluded",
        image_size: int = 128,
        coarse_image_size: int = 128,
        bump_range: float = 0.04,
        face_model: str = "procedural",
        face_model_dir: str | None = None,
        renderer: str = "auto",
        min_nz: float = 0.2,
        cache_coarse: int = 0,
        image_log_every_n_steps: int = 200,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        defaults = DetailModelConfig()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        if input not in INPUTS:
            raise ConfigError(f"model.input: expected one of {tuple(INPUTS)}, got {input!r}")
        if image_size % 2**levels:
            raise ConfigError(f"model.image_size={image_size} must be divisible by 2**model.levels = {2**levels}")
        loss_cfg = merged_defaults(defaults.loss, loss, "model.loss")
        self.weights, self.conf_tau = loss_cfg["weights"], float(loss_cfg["conf_tau"])
        self.input_key = INPUTS[input]
        self.net = BumpUNet(width, levels)
        self.coarse_system: nn.Module | None = None
        if coarse == GROUND_TRUTH:
            self.face_model = load_face_model(face_model, face_model_dir)
            self.coarse_size = coarse_image_size
        else:
            self.coarse_system = self._load_coarse(coarse)
            self.face_model = self.coarse_system.face_model
            self.coarse_size = int(self.coarse_system.hparams.image_size)
        self.layout = self.face_model.layout("paper")
        self.camera = camera_for_layout("paper", self.coarse_size)
        self.coarse_renderer = MeshRenderer(renderer, self.coarse_size, antialias=False)
        self.renderer = MeshRenderer(renderer, image_size, antialias=False)
        self.val_metrics = DetailMetrics()
        self.test_metrics = DetailMetrics()
        self._cache: dict[int, tuple[torch.Tensor, ...]] = {}

    @staticmethod
    def _load_coarse(ckpt: str) -> nn.Module:
        from occrecon.chain import build_stage, load_stage_weights, stage_model_config

        config = stage_model_config("reconstruction", ckpt)
        if config.get("layout", "paper") != "paper":
            raise ConfigError(
                f"model.coarse={ckpt}: the detail stage decodes depth along the orthographic lines of sight "
                f"of the paper layout (Eq. 7); this reconstruction run uses layout {config.get('layout')!r}"
            )
        config["identity"] = "none"  # L_feat's network is not needed to run the frozen stage
        system = build_stage("reconstruction", config)
        load_stage_weights("reconstruction", system, ckpt)
        system.requires_grad_(False)
        return system.eval()

    def train(self, mode: bool = True) -> DetailSystem:
        super().train(mode)
        if self.coarse_system is not None:
            self.coarse_system.eval()  # frozen: BatchNorm statistics never move
        return self

    # -- the coarse stage -----------------------------------------------------------------------
    def input_image(self, batch: dict[str, Any]) -> torch.Tensor:
        """The U-Net's image ``[B, 3, S, S]`` (``model.input``; real data sets serve ``image``)."""
        key = self.input_key if self.input_key in batch else "image"
        if key not in batch or (self.input_key == "I_gt" and "I_gt" not in batch):
            raise ConfigError(f"model.input={self.hparams.input!r} needs the batch field {self.input_key!r}")
        image = batch[key]
        size = self.hparams.image_size
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return image

    @torch.no_grad()
    def coarse_from_coeffs(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render coefficients ``[B, D]`` (paper layout) at ``coarse_size``; maps at the detail size (see :class:`CoarseMaps`)."""
        args = (self.face_model, self.layout, self.coarse_renderer, self.camera, self.coarse_size)
        return render_coarse_maps(*args, coeffs, self.hparams.image_size)

    @torch.no_grad()
    def coarse_maps(self, batch: dict[str, Any], image: torch.Tensor | None = None) -> CoarseMaps:
        """The frozen coarse stage's maps for a batch (``model.coarse``, module docstring), from the
        cache when ``model.cache_coarse`` is on and every sample of the batch is in it."""
        limit = self.hparams.cache_coarse
        keys = batch["index"].reshape(-1).tolist() if limit > 0 and "index" in batch else None
        names = list(CoarseMaps.__dataclass_fields__)
        if keys is not None and all(k in self._cache for k in keys):
            device = batch["index"].device
            return CoarseMaps(*(torch.stack([self._cache[k][i] for k in keys]).to(device) for i in range(len(names))))
        maps = self._coarse_maps(batch, image)
        if keys is not None:
            for row, key in enumerate(keys):
                if len(self._cache) < limit:
                    self._cache[key] = tuple(getattr(maps, name)[row].cpu() for name in names)
        return maps

    def _coarse_maps(self, batch: dict[str, Any], image: torch.Tensor | None = None) -> CoarseMaps:
        if self.coarse_system is None:
            if "coeffs" not in batch:
                raise ConfigError("model.coarse=ground_truth needs the synthetic field 'coeffs' in data.fields")
            maps = self.coarse_from_coeffs(batch["coeffs"].float())
            for key, field_name in (("depth", "depth_coarse"), ("mask", "face_mask")):
                if field_name not in batch:
                    raise ConfigError(f"model.coarse=ground_truth needs the synthetic field {field_name!r} in data.fields")
                maps[key] = resize_maps({key: batch[field_name].float()}, self.hparams.image_size)[key]
            maps["normal"] = maps["normal"] * maps["mask"]
            return self.finish_maps(maps)
        image = self.input_image(batch) if image is None else image
        return self.finish_maps(self.coarse_from_coeffs(self.predict_coeffs(image)))

    @torch.no_grad()
    def predict_coeffs(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen reconstruction network's ``y [B, D]`` for ``image [B, 3, H, W]`` (resized to its size)."""
        if self.coarse_system is None:
            raise ConfigError("model.coarse=ground_truth has no coarse network: pass the coefficients")
        size = self.coarse_size
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return self.coarse_system(image)

    finish_maps = staticmethod(finish_coarse_maps)

    def detail_from_coeffs(self, image: torch.Tensor, coeffs: torch.Tensor | None = None) -> tuple[DetailOutput, CoarseMaps]:
        """The composite pipeline's call: ``image [B, 3, S, S]`` (``I_out`` or ``I_in``, in ``[0, 1]``) and
        the coarse stage's coefficients ``y [B, D]`` (paper layout, at ``coarse_size`` pixels; None =
        this stage's own frozen coarse network) -> ``(DetailOutput, CoarseMaps)``."""
        size = self.hparams.image_size
        if image.shape[-1] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        coeffs = self.predict_coeffs(image) if coeffs is None else coeffs
        coarse = self.finish_maps(self.coarse_from_coeffs(coeffs.detach()))
        return self.detail(image, coarse), coarse

    # -- the detail network -----------------------------------------------------------------------
    def detail(self, image: torch.Tensor, coarse: CoarseMaps) -> DetailOutput:
        """``image [B, 3, S, S]`` + coarse maps -> bump map, confidence, detailed depth and normals."""
        inputs = bump_inputs(image, coarse.rendered, coarse.depth, coarse.normal, coarse.mask)
        phi, confidence = self.net(inputs, coarse.mask)
        return self.decode(phi, confidence, coarse)

    def decode(self, phi: torch.Tensor, confidence: torch.Tensor, coarse: CoarseMaps) -> DetailOutput:
        """Eq. 5 for a bump map ``phi`` (codes): ``d' = d + phi^{-1}(Phi)`` and the detailed normals."""
        range_ = self.hparams.bump_range
        offset = bump_offset(phi, range_) * coarse.mask
        depth = detailed_depth(coarse.depth, phi, range_, coarse.mask)
        normals = detailed_normals(coarse.normal, offset, coarse.px_per_unit, self.hparams.min_nz)
        return DetailOutput(phi, confidence, offset, depth, normals)

    def forward(self, batch: dict[str, Any]) -> tuple[DetailOutput, CoarseMaps]:
        image = self.input_image(batch)
        coarse = self.coarse_maps(batch, image)
        return self.detail(image, coarse), coarse

    # -- losses -----------------------------------------------------------------------------------
    def regions(self, batch: dict[str, Any], image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(visible skin, occluded face)`` masks ``[B, 1, S, S]`` inside the coarse face ``mask``."""
        from occrecon.systems.reconstruction import visibility_mask

        size = self.hparams.image_size
        visible = resize_maps({"v": visibility_mask(batch, image, self.hparams.input)}, size)["v"] * mask
        if "occluder_mask" in batch:
            occluded = resize_maps({"o": batch["occluder_mask"].float()}, size)["o"] * mask
        elif "label_map" in batch:
            labels = resize_maps({"l": batch["label_map"][:, None].float()}, size)["l"].long()
            occluded = torch.isin(labels, torch.tensor(OCCLUDER_CLASSES, device=mask.device)).to(mask.dtype) * mask
        else:
            occluded = torch.zeros_like(mask)
        if self.hparams.input == "clean":
            occluded = torch.zeros_like(mask)  # I_gt / I_out show no occluder to reason about
        return visible, occluded

    def target_phi(self, batch: dict[str, Any], mask: torch.Tensor) -> torch.Tensor | None:
        """Ground-truth ``Phi~`` as codes ``[B, 1, S, S]`` (``PHI_ZERO`` off the face), None without ``bump``."""
        if "bump" not in batch:
            return None
        code = resize_maps({"b": batch["bump"].float() * 255.0}, self.hparams.image_size)["b"]
        return torch.where(mask > 0, code, torch.full_like(code, PHI_ZERO))

    def losses(
        self, batch: dict[str, Any], image: torch.Tensor, out: DetailOutput, coarse: CoarseMaps
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted sum of the terms (module docstring) and their logged values."""
        w, mask = self.weights, coarse.mask
        visible, occluded = self.regions(batch, image, mask)
        target = self.target_phi(batch, mask)
        logs: dict[str, torch.Tensor] = {}
        terms: dict[str, torch.Tensor] = {}
        residual = None
        if w["geo"] > 0 and target is not None:
            terms["geo"], parts = bump_geometry_loss(out.phi / 255.0, target / 255.0, mask)
            logs.update({f"geo_{k}": v.detach() for k, v in parts.items()})
        if w["shading"] > 0 or (w["conf"] > 0 and target is None):
            residual = shading_residual(out.normals, coarse.albedo, coarse.gamma, image)
            if w["shading"] > 0:
                terms["shading"] = masked_mean(residual, visible)
        if w["smooth"] > 0:
            terms["smooth"] = smoothness_loss(out.phi / 255.0, mask)
        if w["sym"] > 0:
            terms["sym"] = symmetry_loss(out.phi / 255.0, coarse.mirror, occluded, visible)
        if w["conf"] > 0:
            error = (out.phi - target) if target is not None else residual * 255.0
            terms["conf"] = confidence_loss(out.confidence, error, self.conf_tau, mask if target is not None else visible)
        total = sum((w[k] * v for k, v in terms.items()), torch.zeros((), device=mask.device))
        for key, value in terms.items():
            logs[key] = value.detach()
            logs[f"{key}_weighted"] = (w[key] * value).detach()
        return total, logs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        image = self.input_image(batch)
        coarse = self.coarse_maps(batch, image)
        out = self.detail(image, coarse)
        total, logs = self.losses(batch, image, out, coarse)
        size = image.shape[0]
        self.log_dict({f"train/loss/{k}": v for k, v in logs.items()}, batch_size=size)
        self.log("train/loss", total.detach(), batch_size=size, prog_bar=True)
        every = self.hparams.image_log_every_n_steps
        if every > 0 and self.global_step % every == 0 and image_loggers(self.logger):
            log_image(self.logger, "train/detail", detail_grid(self, batch, image, out, coarse), self.global_step)
        return total

    # -- evaluation -------------------------------------------------------------------------------
    def _eval_step(self, batch: dict[str, Any], metrics: DetailMetrics, prefix: str) -> None:
        image = self.input_image(batch)
        coarse = self.coarse_maps(batch, image)
        out = self.detail(image, coarse)
        total, logs = self.losses(batch, image, out, coarse)
        size = image.shape[0]
        self.log_dict({f"{prefix}/loss/{k}": v for k, v in logs.items()}, batch_size=size, sync_dist=True)
        self.log(f"{prefix}/loss", total, batch_size=size, sync_dist=True)
        if all(k in batch for k in ("bump", "depth_detail", "normals")):
            metrics.update_from(self, batch, image, out, coarse)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        out, _ = self(batch)
        return {"bump": out.phi, "confidence": out.confidence, "depth_detail": out.depth, "normals": out.normals}

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self, self.optimizer_cfg, self.scheduler_cfg, self.net.parameters())

    # -- checkpoints hold the U-Net only -----------------------------------------------------------
    def _frozen_keys(self, state: dict[str, Any]) -> list[str]:
        return [k for k in state if not k.startswith("net.") and not k.startswith(("val_metrics.", "test_metrics."))]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in self._frozen_keys(state):
            del state[key]  # face model and frozen coarse stage: rebuilt from the config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        own = self.state_dict()
        state.update({k: own[k] for k in self._frozen_keys(own) if k not in state})
