"""Coarse 3D reconstruction stage (paper §3.3): ResNet-50 -> ``y``, weakly supervised through the
differentiable renderer by ``L_shape`` (Eq. 4) with the scaled orthographic camera of Eq. 7.

Input (``model.input``): ``occluded`` trains on ``I_in`` (the occluded image; synthetic field
``I_in``, real data ``image``), ``clean`` on the occlusion-free ``I_gt`` (the paper's ``I_out``
stands in for it once the synthesis stage exists). ``L_phot`` is evaluated only inside the rendered
face region ∩ a visibility mask (:func:`visibility_mask`): on synthetic data the occluder-free skin
labels ``parsing_gt`` minus the occluder mask, on real data the parsing map, else the YCbCr skin
model -- occluded pixels never pull the shape. ``L_land`` and ``L_feat`` need landmarks in the
batch and are skipped for batches without them (CelebAMask-HQ).

Losses are logged unweighted and weighted (``train/loss/<term>``, ``train/loss/<term>_weighted``).
Validation/test on data with ground-truth coefficients (``coeffs``, the synthetic set) log
``val/error_mm`` (rigid-aligned per-vertex error of the face region, mm), ``val/error_sim_mm``
(similarity-aligned), ``val/error`` / ``val/error_sim`` (model units), ``val/nme``,
``val/photo_error``, ``val/id_cosine`` (all identity modes) and ``val/id_cosine_visible`` (the modes an
image can show), the mean-face baseline ``val/mean_face_error_mm`` / ``val/mean_face_error_sim_mm``
and the rigid size floor ``val/size_floor_mm`` (:func:`occrecon.metrics.reconstruction.shape_errors`),
each also ``_glasses`` / ``_no_glasses``. ``L_land`` is in pixels of a 224 px image whatever
``image_size`` (λ_land means the same at every size). The ground-truth
mesh is rebuilt from ``coeffs`` with this system's face model, so ``model.face_model`` must be the
one the data were made with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from occrecon.assets.identity import build_identity_network
from occrecon.config.schema import BaseModelConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.evaluation.reconstruction import reconstruction_grid
from occrecon.facemodel import load_face_model
from occrecon.facemodel.layout import layout_of
from occrecon.labels import CELEBAMASK
from occrecon.landmarks import five_points
from occrecon.losses.reconstruction import (
    DEFAULT_WEIGHTS,
    REGU_INNER_WEIGHTS,
    IdentityFeatureLoss,
    landmark_loss,
    landmark_weights,
    light_colour_loss,
    photometric_loss,
    regularization_loss,
    shape_loss,
)  # fmt: skip
from occrecon.losses.skin import skin_mask
from occrecon.metrics.reconstruction import (
    ReconstructionMetrics,
    coefficient_cosine,
    landmark_nme,
    photometric_error,
    shape_errors,
    visible_modes,
)  # fmt: skip
from occrecon.nets.coeff_regressor import CoefficientRegressor
from occrecon.render.face import camera_for_layout, render_face
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput
from occrecon.systems.common import PerSampleEvaluation, image_loggers, log_image
from occrecon.training import build_optimization

log = logging.getLogger(__name__)

PHOTO_CLASSES: tuple[int, ...] = tuple(
    CELEBAMASK[n] for n in ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")
)
"""Parsing classes of the face interior used as the ``L_phot`` mask (no glasses, hair, ears, neck)."""
METRICS: tuple[str, ...] = (
    "error", "error_mm", "error_sim", "error_sim_mm", "nme", "photo_error", "id_cosine", "id_cosine_visible",
    "mean_face_error_mm", "mean_face_error_sim_mm", "size_floor_mm",
)  # fmt: skip
INPUTS = {"occluded": "I_in", "clean": "I_gt"}
FROZEN_PREFIXES = ("face_model.", "feat_loss.")
"""State-dict prefixes of fixed assets (face model, identity network): rebuilt from the config,
never stored in checkpoints (tens of MB each)."""


@dataclass
class ReconstructionLossWeights:
    """λ of Eq. 4 (paper) and ``light`` (RGB-SH monochromaticity, deep3d layout only)."""

    feat: float = DEFAULT_WEIGHTS["feat"]
    regu: float = DEFAULT_WEIGHTS["regu"]
    phot: float = DEFAULT_WEIGHTS["phot"]
    land: float = DEFAULT_WEIGHTS["land"]
    light: float = DEFAULT_WEIGHTS["light"]


@dataclass
class RegularizationWeights:
    """Inner weights of ``L_regu`` on α_id, β_exp, β_tex."""

    id: float = REGU_INNER_WEIGHTS["id"]
    exp: float = REGU_INNER_WEIGHTS["exp"]
    tex: float = REGU_INNER_WEIGHTS["tex"]


@dataclass
class ReconstructionLossConfig:
    weights: ReconstructionLossWeights = field(default_factory=ReconstructionLossWeights)
    regu: RegularizationWeights = field(default_factory=RegularizationWeights)
    landmark_boost: float = 20.0
    require_identity: bool = False  # true: fail at start when L_feat's identity weights are unavailable


@dataclass
class ReconstructionModelConfig(BaseModelConfig):
    """``model`` section of the reconstruction stage.

    ``depth``/``width``: ResNet depth and stem width (50/64 = ResNet-50). ``layout``: ``paper``
    (239, Eq. 7 camera) or ``deep3d`` (257, perspective camera, RGB SH). ``face_model``:
    procedural | sfm | bfm (``face_model_dir`` for the files). ``image_size``: render size
    (YAML: ``${data.image_size}``); batches of another size are resized. ``renderer``: auto |
    torch | nvdiffrast. ``input``: occluded | clean (see module docstring). ``identity``: dlib |
    arcface_r50 | arcface_r100 | none for ``L_feat`` (weights ``identity_weights``; unavailable ->
    the term is disabled with a warning). ``skin_source``: auto | parsing | ycbcr.
    """

    depth: int = 50
    backbone_weights: str | None = None
    layout: str = "paper"
    face_model: str = "procedural"
    face_model_dir: str | None = None
    image_size: int = 224
    renderer: str = "auto"
    input: str = "occluded"
    identity: str = "dlib"
    identity_weights: str | None = None
    skin_source: str = "auto"
    image_log_every_n_steps: int = 200
    loss: ReconstructionLossConfig = field(default_factory=ReconstructionLossConfig)


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"model.{name}: expected one of {options}, got {value!r}")
    return value


def visibility_mask(batch: dict[str, Any], image: torch.Tensor, input_kind: str, source: str = "auto") -> torch.Tensor:
    """``[B, 1, H, W]`` float mask of pixels ``L_phot`` may compare (before ∩ the rendered face).

    ``auto`` order: synthetic ``parsing_gt`` (occluder-free labels) minus ``occluder_mask`` when
    the input is occluded; else the input's parsing ``label_map`` (occluders are background there);
    else the YCbCr skin model of ``image``. ``parsing`` forces a parsing map, ``ycbcr`` the skin model.
    """
    classes = torch.tensor(PHOTO_CLASSES, device=image.device)
    if source in ("auto", "parsing") and "parsing_gt" in batch:
        keep = torch.isin(batch["parsing_gt"], classes)[:, None]
        if input_kind == "occluded":
            if "occluder_mask" not in batch:
                raise ConfigError("L_phot on occluded synthetic input needs the 'occluder_mask' field in data.fields")
            keep = keep & (batch["occluder_mask"] < 0.5)
        return keep.to(image.dtype)
    if source in ("auto", "parsing") and "label_map" in batch:
        return torch.isin(batch["label_map"], classes)[:, None].to(image.dtype)
    if source == "parsing":
        raise ConfigError("model.skin_source=parsing but the batch has no parsing map (parsing_gt or label_map)")
    return skin_mask(image)


def _resize(prepared: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Resize the prepared inputs to ``size`` (images bilinear+antialias, masks nearest, points scaled)."""
    old = prepared["image"].shape[-1]
    if old == size:
        return prepared
    out = dict(prepared)
    for key in ("image", "target"):
        out[key] = F.interpolate(prepared[key], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out["skin"] = F.interpolate(prepared["skin"], size=(size, size), mode="nearest")
    if "landmarks" in prepared:
        out["landmarks"] = prepared["landmarks"] * (size / old)  # continuous pixel frame scales about 0
    return out


class ReconstructionSystem(PerSampleEvaluation, L.LightningModule):
    """LightningModule of the coarse 3D stage (module docstring). Built as ``ReconstructionSystem(**model)``."""

    def __init__(
        self,
        width: int = 64,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        depth: int = 50,
        backbone_weights: str | None = None,
        layout: str = "paper",
        face_model: str = "procedural",
        face_model_dir: str | None = None,
        image_size: int = 224,
        renderer: str = "auto",
        input: str = "occluded",
        identity: str = "dlib",
        identity_weights: str | None = None,
        skin_source: str = "auto",
        image_log_every_n_steps: int = 200,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        defaults = ReconstructionModelConfig()
        self.optimizer_cfg = merged_defaults(defaults.optimizer, optimizer, "model.optimizer")
        self.scheduler_cfg = merged_defaults(defaults.scheduler, scheduler, "model.scheduler")
        loss = merged_defaults(defaults.loss, loss, "model.loss")
        self.input_key = INPUTS[_choice("input", input, tuple(INPUTS))]
        self.skin_source = _choice("skin_source", skin_source, ("auto", "parsing", "ycbcr"))
        self.face_model = load_face_model(face_model, face_model_dir)
        self.layout = self.face_model.layout(_choice("layout", layout, ("paper", "deep3d")))
        self.regressor = CoefficientRegressor(self.layout.groups, depth, width, backbone_weights)
        self.renderer = MeshRenderer(renderer, image_size)
        self.camera = camera_for_layout(layout, image_size)
        self.weights, self.regu_weights = loss["weights"], loss["regu"]
        self.register_buffer("landmark_w", landmark_weights(boost=loss["landmark_boost"]), persistent=False)
        self.feat_loss, self.feat_disabled = None, ""
        if self.weights["feat"] > 0:
            network, reason = build_identity_network(identity, identity_weights)
            if network is None:
                if loss["require_identity"]:
                    raise ConfigError(
                        f"model.loss.require_identity=true but L_feat is unavailable ({reason}); run "
                        "`occrecon assets fetch face-recognition` or set model.loss.weights.feat=0"
                    )
                # never silently zero: say so once here, keep the reason for the logs, and record
                # the weight in effect (hparams, W&B config, the run's config.yaml)
                log.info("model.loss.weights.feat set to 0 (L_feat unavailable): %s", reason)
                self.weights["feat"], self.feat_disabled = 0.0, reason
                self.hparams["loss"] = loss
            else:
                self.feat_loss = IdentityFeatureLoss(network)
        self.val_metrics = ReconstructionMetrics(METRICS)
        self.test_metrics = ReconstructionMetrics(METRICS)

    # -- model --------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` in ``[0, 1]`` -> coefficients ``y [B, layout.size]``."""
        return self.regressor(images)

    def render(self, y: torch.Tensor) -> RenderOutput:
        """Render ``y [B, size]`` at ``image_size`` (image, mask, landmarks, ...)."""
        return render_face(self.face_model, y, self.renderer, self.camera)

    def vertices(self, y: torch.Tensor) -> torch.Tensor:
        """Model-space mesh ``[B, V, 3]`` (decimetres) of coefficients in either layout."""
        c = layout_of(self.face_model, y).split(y)
        return self.face_model.shape(c.id, c.exp)

    # -- batches and losses ---------------------------------------------------------------------
    def prepare(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Input image, photometric target and mask, landmarks of a batch at ``image_size``."""
        key = self.input_key if self.input_key in batch else "image"
        if key not in batch or (self.input_key == "I_gt" and "I_gt" not in batch):
            raise ConfigError(f"model.input={self.hparams.input!r} needs the batch field {self.input_key!r}")
        image = batch[key]
        prepared = {
            "image": image,
            "target": image,
            "skin": visibility_mask(batch, image, self.hparams.input, self.skin_source),
        }
        if "landmarks" in batch:
            prepared["landmarks"] = batch["landmarks"].float()
            vis = batch.get("landmark_visible", batch.get("visibility"))
            prepared["visible"] = (
                torch.ones(batch["landmarks"].shape[:2], device=image.device) if vis is None else vis.float()
            )
        return _resize(prepared, self.hparams.image_size)

    def losses(
        self, prepared: dict[str, torch.Tensor], y: torch.Tensor, out: RenderOutput
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_shape`` (Eq. 4) and its logged parts (:func:`shape_loss`); absent inputs skip a term."""
        c = self.layout.split(y)
        mask = out.mask.detach() * prepared["skin"]
        terms: dict[str, Any] = {
            "phot": lambda: photometric_loss(out.image, prepared["target"], mask),
            "regu": lambda: regularization_loss(c.as_dict(), self.regu_weights),
        }
        if self.layout.gamma_channels == 3:
            terms["light"] = lambda: light_colour_loss(c.gamma)
        if "landmarks" in prepared:
            lm, vis = prepared["landmarks"], prepared["visible"]
            terms["land"] = lambda: landmark_loss(out.landmarks, lm, self.landmark_w, vis, self.hparams.image_size)
            if self.feat_loss is not None:
                terms["feat"] = lambda: self.feat_loss(
                    prepared["image"], out.image, five_points(lm), five_points(out.landmarks)
                )
        return shape_loss(terms, self.weights)

    def step(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, RenderOutput]:
        prepared = self.prepare(batch)
        y = self(prepared["image"])
        out = self.render(y)
        total, logs = self.losses(prepared, y, out)
        return total, logs, prepared, y, out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        total, logs, prepared, _, out = self.step(batch)
        size = prepared["image"].shape[0]
        self.log_dict({f"train/loss/{k}": v for k, v in logs.items()}, batch_size=size)
        self.log("train/loss", total.detach(), batch_size=size, prog_bar=True)
        every = self.hparams.image_log_every_n_steps
        if every > 0 and self.global_step % every == 0 and image_loggers(self.logger):
            log_image(self.logger, "train/reconstruction", reconstruction_grid(prepared, out), self.global_step)
        return total

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, batch: dict[str, Any], prepared: dict[str, torch.Tensor], y: torch.Tensor, out: RenderOutput
    ) -> dict[str, torch.Tensor]:
        """Per-sample metrics ``name -> [B]`` (:data:`METRICS`; those without ground truth absent)."""
        values = {"photo_error": photometric_error(out.image, prepared["target"], out.mask * prepared["skin"])}
        if "landmarks" in prepared:
            values["nme"] = landmark_nme(out.landmarks, prepared["landmarks"], prepared["visible"] > 0)
        if "coeffs" in batch:
            gt = batch["coeffs"].float()
            face = self.face_model.face_mask if bool(self.face_model.face_mask.any()) else None
            fm, mm = self.face_model, self.face_model.mm_per_unit
            values.update(shape_errors(self.vertices(y), self.vertices(gt), fm.mean_shape, face, mm))
            gt_id, pred_id = layout_of(fm, gt).split(gt).id, self.layout.split(y).id
            values["id_cosine"] = coefficient_cosine(pred_id, gt_id)
            values["id_cosine_visible"] = coefficient_cosine(pred_id, gt_id, visible_modes(fm.id_basis, face, mm))
        return values

    def _eval_step(self, batch: dict[str, Any], metrics: ReconstructionMetrics, prefix: str) -> None:
        total, logs, prepared, y, out = self.step(batch)
        size = prepared["image"].shape[0]
        self.log_dict({f"{prefix}/loss/{k}": v for k, v in logs.items()}, batch_size=size, sync_dist=True)
        self.log(f"{prefix}/loss", total, batch_size=size, sync_dist=True)
        glasses = batch["glasses"] > 0 if "glasses" in batch else None
        metrics.update(self.evaluate(batch, prepared, y, out), glasses)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Coefficients, mesh (+ albedo) and the render (image, mask, 68 landmarks) of each sample."""
        y = self(self.prepare(batch)["image"])
        out = self.render(y)
        albedo = self.face_model.albedo(self.layout.split(y).tex)
        return {"coeffs": y, "vertices": self.vertices(y), "albedo": albedo, "render": out.image.clamp(0, 1),
                "render_mask": out.mask, "landmarks": out.landmarks}  # fmt: skip

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self, self.optimizer_cfg, self.scheduler_cfg, self.regressor.parameters())

    # -- checkpoints without the fixed assets -----------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(FROZEN_PREFIXES)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # strict loading expects every key: take the fixed assets from this (config-built) instance
        own = {k: v for k, v in self.state_dict().items() if k.startswith(FROZEN_PREFIXES)}
        checkpoint["state_dict"].update({k: v for k, v in own.items() if k not in checkpoint["state_dict"]})
