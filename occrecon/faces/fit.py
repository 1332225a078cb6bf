"""Per-image analysis-by-synthesis fitting of the face model with the Eq. 4 losses.

Works without any trained network (the mean face is the start) or refines a network's
prediction (``y0``). The crop must be in the ``deep3d`` framing of :mod:`occrecon.faces.align`
at ``image_size`` (the default camera's framing, ``CONVENTIONS.md``).

Schedule (:class:`FitSettings`):

1. **landmark stage** (``landmark_steps``, no rasterisation): pose, identity and expression by
   ``λ_land L_land + λ_regu L_regu`` with the 68 landmarks projected by the camera directly;
2. **full stage** (``steps``): every coefficient by ``L_shape`` of Eq. 4 -- ``L_phot``,
   ``L_land``, ``L_regu``, ``L_feat`` through the identity network when one is given (the render
   composited over the photo and both aligned by their own 5 points, as Deep3D), and the light
   prior for RGB SH.

``L_phot`` has two evaluations (``FitSettings.photometric``):

- ``"render"``: every step rasterises at ``render_size`` and compares pixels (the training loss);
- ``"vertex"`` (default, ~20x cheaper on a CPU): every ``raster_every`` steps one rasterisation
  at ``render_size`` finds the visible vertices (those of triangles covering a pixel); in between,
  the shaded colour of each visible vertex is compared with the photo bilinearly sampled at its
  projection, with the same :func:`photometric_loss` (vertices in place of pixels, weighted by
  the masks sampled there). ``L_feat`` needs a render, so it is added on the raster steps only.

**Photometric mask (occlusion handling).** ``L_phot`` compares pixels of
``M = rendered face ∩ V ∩ inliers``. ``V`` is the parsing map's face classes when the caller
passes one (``visible``), else the YCbCr skin model (:func:`occrecon.losses.skin.skin_mask`),
which already drops non-skin occluders (glasses frames, scarves, hair). ``inliers`` is a robust
FOCUS-style outlier rejection (Egger et al. 2018 treat pixels the face model cannot explain as
occlusion): every ``outlier_every`` steps, after ``outlier_warmup`` steps, the per-pixel residual
``r = ||I_render - I||`` over ``face ∩ V`` is computed and pixels with
``r > median(r) + outlier_k * 1.4826 * MAD(r)`` are excluded until the next update. Skin-coloured
occluders (hands, fingers) end up there because the model's albedo and shading cannot reproduce
them once pose and lighting are roughly right.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from occrecon.errors import ConfigError
from occrecon.facemodel.layout import Coefficients
from occrecon.geometry.lighting import shade
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
from occrecon.metrics.reconstruction import photometric_error
from occrecon.render.face import camera_for_layout, camera_pose, render_face
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput

LEARNING_RATES = {"id": 0.05, "exp": 0.05, "tex": 0.05, "gamma": 0.02, "angles": 0.01, "scale": 0.01,
                  "translation_paper": 0.5, "translation_deep3d": 0.005}  # fmt: skip
"""Adam step sizes per coefficient group (statistical groups are in standard deviations, angles in
radians, the paper layout's translation in pixels at ``image_size``)."""


FIT_REGU = 3.6e-3
"""λ_regu of the per-image fit: 10x the training value. One image constrains identity and
expression less than a training set does; on synthetic faces 0-7 (true landmarks, 128 px) the
face-region vertex error after the fit was 4.26 mm with λ_regu = 3.6e-4, 2.27 mm with 3.6e-3 and
2.95 mm with 3.6e-2 (mean face: 3.61 mm). README figures use other images (8 on)."""


@dataclass
class FitSettings:
    """Knobs of :class:`FaceFitter` (defaults measured to converge on astronaut() in a few CPU seconds)."""

    landmark_steps: int = 150
    steps: int = 40
    render_size: int = 112
    weights: dict[str, float] = field(default_factory=lambda: {**DEFAULT_WEIGHTS, "regu": FIT_REGU})
    regu: dict[str, float] = field(default_factory=lambda: dict(REGU_INNER_WEIGHTS))
    photometric: str = "vertex"
    raster_every: int = 10
    outlier_k: float = 2.5
    outlier_every: int = 10
    outlier_warmup: int = 10
    lr_scale: float = 1.0


@dataclass
class FitResult:
    """Fitted coefficients and measurements (crop frame at ``image_size``).

    Attributes:
        coeffs: ``[1, layout.size]`` fitted ``y``.
        initial: ``[1, layout.size]`` the start (zeros or the network's prediction).
        render: :class:`RenderOutput` of ``coeffs`` at ``image_size``.
        mask: ``[1, 1, S, S]`` final photometric mask (face ∩ visible ∩ inliers).
        visible: ``[1, 1, S, S]`` ``V`` (skin model or parsing map).
        metrics: ``landmark_px_before/after`` (mean 68-point distance, pixels at ``image_size``),
            ``photometric_before/after`` (mean RGB L2 in ``[0, 1]`` units inside each render's
            face ∩ ``V``), ``seconds``.
    """

    coeffs: torch.Tensor
    initial: torch.Tensor
    render: RenderOutput
    mask: torch.Tensor
    visible: torch.Tensor
    metrics: dict[str, float]


class FaceFitter:
    """Fits ``y`` of a morphable model to one aligned face crop.

    Args:
        face_model: a :class:`occrecon.facemodel.morphable.MorphableModel`.
        layout: ``"paper"`` (Eq. 7 camera) or ``"deep3d"``.
        image_size: crop side (``deep3d`` framing).
        identity_network: a frozen recogniser with ``template``/``input_size`` (``L_feat``) or ``None``.
        settings: :class:`FitSettings`.
        renderer: rasteriser backend name (``auto``, ``torch``, ``nvdiffrast``).
    """

    def __init__(
        self,
        face_model: Any,
        layout: str = "paper",
        image_size: int = 224,
        identity_network: torch.nn.Module | None = None,
        settings: FitSettings | None = None,
        renderer: str = "auto",
    ) -> None:
        self.face_model = face_model
        self.layout = face_model.layout(layout)
        self.image_size = image_size
        self.settings = settings or FitSettings()
        self.renderer = MeshRenderer(renderer, image_size)
        self.small_renderer = MeshRenderer(renderer, self.settings.render_size, antialias=False)
        self.camera = camera_for_layout(layout, image_size)
        self.feat_loss = IdentityFeatureLoss(identity_network) if identity_network is not None else None
        self.landmark_w = landmark_weights()
        idx = face_model.landmark_indices  # the 68 rows of the bases: landmarks without the full mesh
        self._lm_mean = face_model.mean_shape[idx]
        self._lm_id, self._lm_exp = face_model.id_basis[idx], face_model.exp_basis[idx]

    # -- projection and rendering -------------------------------------------------------------------
    def landmarks(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, 68, 2]`` projected model landmarks at ``image_size`` (no rasterisation)."""
        c = self.layout.split(y)
        points = (self._lm_mean + torch.einsum("vck,bk->bvc", self._lm_id, c.id)
                  + torch.einsum("vck,bk->bvc", self._lm_exp, c.exp))  # fmt: skip
        pose = camera_pose(c)
        return self.camera.pixels_from_view(self.camera.view_from_model(points, pose), pose)

    def at_size(self, y: torch.Tensor, size: int) -> torch.Tensor:
        """``y`` for a render at ``size`` px: the paper layout's translation is in pixels, so it scales."""
        if self.layout.kind != "paper" or size == self.image_size:
            return y
        c = self.layout.split(y)
        scaled = Coefficients(c.id, c.exp, c.tex, c.gamma, c.angles, c.scale, c.translation * (size / self.image_size))
        return self.layout.join(scaled)

    def render(self, y: torch.Tensor, size: int | None = None) -> RenderOutput:
        """Render ``y`` at ``image_size`` (default) or the fitting's ``render_size``."""
        if size is None or size == self.image_size:
            return render_face(self.face_model, y, self.renderer)
        return render_face(self.face_model, self.at_size(y, size), self.small_renderer)

    def vertex_colours(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shaded vertex colours ``[B, V, 3]`` and their pixel positions ``[B, V, 2]`` at ``image_size``."""
        c = self.layout.split(y)
        verts = self.face_model.shape(c.id, c.exp)
        pose = camera_pose(c)
        normals = self.camera.normals_to_view(self.face_model.vertex_normals(verts), pose)
        colour = shade(self.face_model.albedo(c.tex), normals, c.gamma)
        return colour, self.camera.pixels_from_view(self.camera.view_from_model(verts, pose), pose)

    def visible_vertices(self, out: RenderOutput) -> torch.Tensor:
        """``[V]`` float: 1 for vertices of the triangles that cover at least one pixel of ``out``."""
        ids = out.triangle_index[0]
        visible = torch.zeros(self.face_model.num_vertices)
        visible[self.face_model.triangles[ids[ids >= 0].unique()].reshape(-1)] = 1.0
        return visible

    def _sample(self, image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Bilinear samples ``[B, C, 1, V]`` of ``image`` at continuous pixels ``[B, V, 2]``."""
        size = torch.tensor([image.shape[-1], image.shape[-2]], dtype=pixels.dtype)
        grid = (pixels / size * 2 - 1)[:, None]  # align_corners=False: -1/+1 are the outer pixel edges
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # -- fitting ------------------------------------------------------------------------------------
    def _leaves(self, y0: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        c = self.layout.split(y0.detach())
        leaves = {k: v.clone().requires_grad_(True) for k, v in c.as_dict().items()}
        key = f"translation_{self.layout.kind}"
        groups = [{"params": [leaves[k]], "lr": (LEARNING_RATES[key] if k == "translation" else LEARNING_RATES[k])
                   * self.settings.lr_scale, "name": k} for k in leaves]  # fmt: skip
        return leaves, groups

    def _join(self, leaves: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.layout.join(Coefficients(**leaves))

    def _outliers(self, render: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """``[1, 1, H, W]`` inlier mask: residual ``<= median + k 1.4826 MAD`` over ``region``."""
        residual = (render.detach() - target).norm(dim=1, keepdim=True)
        values = residual[region > 0.5]
        if values.numel() < 20:
            return torch.ones_like(residual)
        median = values.median()
        mad = (values - median).abs().median()
        return (residual <= median + self.settings.outlier_k * 1.4826 * mad.clamp_min(1e-3)).to(residual.dtype)

    def fit(
        self,
        image: torch.Tensor,
        landmarks: torch.Tensor,
        y0: torch.Tensor | None = None,
        visible: torch.Tensor | None = None,
        steps: int | None = None,
        landmark_steps: int | None = None,
    ) -> FitResult:
        """Fit one face.

        Args:
            image: ``[1, 3, S, S]`` crop in ``[0, 1]`` (``S = image_size``).
            landmarks: ``[1, 68, 2]`` detected landmarks in crop pixels.
            y0: start ``[1, layout.size]`` (default zeros: the mean face, frontal, centred).
            visible: ``[1, 1, S, S]`` visibility ``V`` (e.g. from a parsing map); default YCbCr skin.
            steps, landmark_steps: override :class:`FitSettings` (``0, 0`` = no fitting).
        """
        started = time.perf_counter()
        s = self.settings
        steps = s.steps if steps is None else steps
        landmark_steps = s.landmark_steps if landmark_steps is None else landmark_steps
        y_start = torch.zeros(1, self.layout.size) if y0 is None else y0.detach().reshape(1, -1).float()
        visible = skin_mask(image) if visible is None else visible.to(image.dtype)
        small = s.render_size
        image_small = F.interpolate(image, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        visible_small = F.interpolate(visible, size=(small, small), mode="nearest")
        lm_small = landmarks * (small / self.image_size)
        weights = dict(s.weights)
        if self.feat_loss is None:
            weights["feat"] = 0.0
        leaves, groups = self._leaves(y_start)

        # 1. landmarks only: pose, identity, expression (cheap: no rasterisation)
        if landmark_steps > 0:
            fixed = {"tex", "gamma"}
            optimizer = torch.optim.Adam([g for g in groups if g["name"] not in fixed])
            for _ in range(landmark_steps):
                y = self._join(leaves)
                c = self.layout.split(y)
                total, _ = shape_loss(
                    {"land": landmark_loss(self.landmarks(y), landmarks, self.landmark_w),
                     "regu": regularization_loss({"id": c.id, "exp": c.exp}, {k: s.regu[k] for k in ("id", "exp")})},
                    weights,
                )  # fmt: skip
                optimizer.zero_grad()
                total.backward()
                optimizer.step()

        # 2. Eq. 4 (module docstring), robust photometric mask
        inliers = torch.ones_like(visible_small)
        vertex_mode = s.photometric == "vertex"
        if s.photometric not in ("vertex", "render"):
            raise ConfigError(f"FitSettings.photometric must be 'vertex' or 'render', got {s.photometric!r}")
        if steps > 0:
            optimizer = torch.optim.Adam(groups)
            seen = None
            for step in range(steps):
                y = self._join(leaves)
                c = self.layout.split(y)
                lm = self.landmarks(y)
                terms: dict[str, Any] = {
                    "land": lambda lm=lm: landmark_loss(lm, landmarks, self.landmark_w),
                    "regu": lambda c=c: regularization_loss(c.as_dict(), s.regu),
                }
                if self.layout.gamma_channels == 3:
                    terms["light"] = lambda c=c: light_colour_loss(c.gamma)
                rasterise = not vertex_mode or step % s.raster_every == 0
                if rasterise:
                    out = self.render(y, small)
                    region = out.mask.detach() * visible_small
                    if step >= s.outlier_warmup and (step - s.outlier_warmup) % s.outlier_every == 0:
                        inliers = self._outliers(out.image, image_small, region)
                    if vertex_mode:
                        seen = self.visible_vertices(out)
                    if self.feat_loss is not None:
                        composite = out.mask * out.image + (1 - out.mask) * image_small
                        terms["feat"] = lambda composite=composite, lm=lm: self.feat_loss(
                            image_small, composite, five_points(lm_small), five_points(lm * (small / self.image_size))
                        )
                if vertex_mode:
                    colour, pixels = self.vertex_colours(y)
                    scale = small / self.image_size
                    target = self._sample(image_small, pixels * scale)
                    weight = self._sample(visible_small * inliers, pixels.detach() * scale) * seen
                    rendered = colour.permute(0, 2, 1)[:, :, None]
                    terms["phot"] = lambda r=rendered, t=target, w=weight: photometric_loss(r, t, (w > 0.5).float())
                else:
                    terms["phot"] = lambda out=out, m=region * inliers: photometric_loss(out.image, image_small, m)
                total, _ = shape_loss(terms, weights)
                optimizer.zero_grad()
                total.backward()
                optimizer.step()

        with torch.no_grad():
            y = self._join(leaves).detach()
            before, after = self.render(y_start), self.render(y)
            big_inliers = F.interpolate(inliers, size=image.shape[-2:], mode="nearest")
            mask = after.mask * visible * big_inliers
            metrics = {
                "landmark_px_before": float((self.landmarks(y_start) - landmarks).norm(dim=-1).mean()),
                "landmark_px_after": float((self.landmarks(y) - landmarks).norm(dim=-1).mean()),
                "photometric_before": float(photometric_error(before.image, image, before.mask * visible)[0]),
                "photometric_after": float(photometric_error(after.image, image, after.mask * visible)[0]),
                "occluded_fraction": float(1 - (mask.sum() / (after.mask * visible).sum().clamp_min(1))),
                "seconds": time.perf_counter() - started,
            }
        return FitResult(y, y_start, after, mask, visible, metrics)
