"""Sample a synthetic scene and render it with and without occluders.

One sample (``SceneContext.render_sample(i)``):

1. **Draw** (per-sample generators of ``occrecon.utils.seeding``): the identity ``i //
   images_per_identity`` fixes shape, albedo, wrinkle code and glasses style
   (``torch_generator(seed, "identity", id)``); the sample fixes expression, SH light, pose, whether
   glasses / hand / hair are present (``torch_generator(seed, "sample", i)``), the background and
   the image-space occluder layers (``numpy_generator(seed, "background"|"occluders", i)``).
2. **Face render** (``MeshRenderer``, no antialiasing, scaled-orthographic camera of Eq. 7 whose
   pose is the ``p`` group of ``y``): labels ``parsing_gt``, coarse depth ``d``, landmarks and
   their visibility. Per pixel the canonical position is interpolated and the displacement
   ``h`` of :mod:`occrecon.synth.details` gives the detailed normal (shading) and ``d'``.
3. **Glasses**: the face and glasses meshes are rasterized *together* (one mesh; glasses vertices
   labelled ``eye_g``), once with and once without the lens triangles; lens pixels blend the lens
   tint (``lens_alpha``) over the lens-less render — a transparent lens is a second layer.
4. **Hand / hair** layers are painted over the result (hands: label 0, hair: label ``hair``).

``I_in`` equals ``I_gt`` outside ``occluders > 0``: occluders cast **no shadows** and the face
behind them is unchanged. The images are not antialiased (labels, masks and colours agree
pixel for pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from occrecon.facemodel import CoefficientLayout, Coefficients, MorphableModel, load_face_model
from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.geometry.lighting import shade_pixels
from occrecon.labels import CELEBAMASK
from occrecon.landmarks import edge_line_heatmaps
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput
from occrecon.synth.backgrounds import textured_background
from occrecon.synth.config import SynthConfig
from occrecon.synth.details import detailed_depth, detailed_normals, encode_bump, sample_detail_params
from occrecon.synth.fields import GLASSES_CODES, OCCLUDER_CODES
from occrecon.synth.occluders import GlassesMesh, build_glasses, hair_layer, hand_layer, sample_glasses_style
from occrecon.utils.seeding import numpy_generator, torch_generator


def describe_scene(config: SynthConfig) -> dict[str, Any]:
    """Manifest entries that describe the model, layout and camera of ``config``."""
    model = load_face_model(config.model, config.model_dir)
    layout = model.layout("paper")
    cam = ScaledOrthographicCamera(image_size=config.size)
    return {
        "face_model": {
            "name": config.model,
            "num_vertices": int(model.num_vertices),
            "num_triangles": int(model.triangles.shape[0]),
        },
        "coefficient_layout": {
            "kind": layout.kind,
            "groups": [[name, size] for name, size in layout.groups],
            "size": layout.size,
        },
        "camera": {
            "type": "ScaledOrthographicCamera",
            "image_size": config.size,
            "focal": cam.focal,
            "reference_size": cam.reference_size,
            "camera_distance": cam.camera_distance,
            "pose": "(pitch, yaw, roll, f, tx, ty) = coefficient group 'pose' = field camera_pose",
        },
    }


def _gather(attr: torch.Tensor, render: RenderOutput, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex ``attr`` ``[V, C]`` at every covered pixel: ``[P, C]`` (image order)."""
    ids = render.triangle_index[0].reshape(-1)
    covered = ids >= 0
    corners = faces[ids[covered]]  # [P, 3]
    bary = render.barycentrics[0].reshape(-1, 3)[covered]
    return (attr[corners] * bary[..., None]).sum(1)


@dataclass
class _Draw:
    coeffs: Coefficients
    glasses: int  # GLASSES_CODES value
    hand: bool
    hair: bool


class SceneContext:
    """Face model, camera and renderer for one config (built once per worker process)."""

    def __init__(self, config: SynthConfig, model: MorphableModel) -> None:
        self.config, self.model = config, model
        self.layout: CoefficientLayout = model.layout("paper")
        self.camera = ScaledOrthographicCamera(image_size=config.size)
        self.renderer = MeshRenderer(backend="torch", image_size=config.size, antialias=False)
        self.faces = model.triangles
        self.canonical = model.mean_shape  # [V, 3] canonical positions: wrinkles stick to anatomy
        self.anchors = model.mean_shape[model.landmark_indices]  # [68, 3]

    @classmethod
    def create(cls, config: SynthConfig) -> SceneContext:
        return cls(config, load_face_model(config.model, config.model_dir))

    # ----------------------------------------------------------------------------- sampling
    def _wears_glasses(self, identity: int, picture: int) -> bool:
        """Glasses pattern of an identity: independent draws, but both cases once there are 2+ pictures."""
        c = self.config
        gen = torch_generator(c.seed, "identity-glasses", identity)
        wear = (torch.rand(c.images_per_identity, generator=gen) < c.p_glasses).tolist()
        if c.images_per_identity >= 2 and 0.0 < c.p_glasses < 1.0 and len(set(wear)) == 1:
            wear[-1] = not wear[-1]  # verification needs each person with and without glasses
        return bool(wear[picture])

    def draw(self, index: int) -> _Draw:
        """Draw the coefficients and occluder choices of sample ``index``."""
        c, m = self.config, self.model
        identity, picture = c.identity_of(index)
        id_gen, gen = torch_generator(c.seed, "identity", identity), torch_generator(c.seed, "sample", index)
        id_coeffs = torch.randn(1, m.n_id, generator=id_gen) * c.id_scale
        tex = torch.randn(1, m.n_tex, generator=id_gen) * c.tex_scale
        exp = torch.randn(1, m.n_exp, generator=gen) * c.exp_scale
        gamma = torch.randn(1, 9, generator=gen) * c.light_scale
        gamma[0, 0] = (torch.rand((), generator=gen) - 0.5) * 0.3  # ambient around the +0.8 offset
        gamma[0, 2] = gamma[0, 2].abs()  # light from the camera side more often than from behind
        u = torch.rand(6, generator=gen) * 2.0 - 1.0
        angles = torch.stack([u[0] * c.max_pitch_deg, u[1] * c.max_yaw_deg, u[2] * c.max_roll_deg]) * (math.pi / 180.0)
        scale = (u[3] * c.max_scale).reshape(1, 1)  # centred on f = 0 (y = 0): no size bias
        translation = (u[4:6] * 0.04 * c.size).reshape(1, 2)
        style_code = 0
        if self._wears_glasses(identity, picture):
            style = sample_glasses_style(torch_generator(c.seed, "identity-style", identity))
            style_code = GLASSES_CODES[style.kind]
        hand, hair = bool(torch.rand((), generator=gen) < c.p_hand), bool(torch.rand((), generator=gen) < c.p_hair)
        coeffs = Coefficients(id_coeffs, exp, tex, gamma, angles[None], scale, translation)
        return _Draw(coeffs, style_code, hand, hair)

    # ----------------------------------------------------------------------------- rendering
    def _render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        albedo: torch.Tensor,
        normals: torch.Tensor,
        labels: torch.Tensor,
        pose: torch.Tensor,
        gamma: torch.Tensor,
        landmarks: bool = False,
    ) -> RenderOutput:
        return self.renderer.render(
            vertices[None], faces, self.camera, pose, albedo[None], normals[None], gamma, vertex_labels=labels,
            landmark_indices=self.model.landmark_indices if landmarks else None, shading="pixel",
        )  # fmt: skip

    def _face_pass(self, draw: _Draw, index: int, pose: torch.Tensor) -> dict[str, Any]:
        """Render the face alone: ``I_gt``, labels, coarse and detailed depth, normals, landmarks."""
        c = self.config
        geo = self.model(draw.coeffs)
        verts, normals, albedo = geo.vertices[0], geo.normals[0], geo.albedo[0].clamp(0.0, 1.0)
        gamma = draw.coeffs.gamma
        face = self._render(verts, self.faces, albedo, normals, self.model.region_labels, pose, gamma, landmarks=True)
        covered = face.triangle_index[0].reshape(-1) >= 0
        # detail: displacement along the normals, evaluated per pixel on canonical positions
        params = sample_detail_params(
            torch_generator(c.seed, "identity-detail", c.identity_of(index)[0]), draw.coeffs.exp[0]
        )
        n_model = torch.nn.functional.normalize(_gather(normals, face, self.faces), dim=-1)
        height, n_detail = detailed_normals(_gather(self.canonical, face, self.faces), n_model, self.anchors, params)
        rot = self.camera.rotation(pose)[0]
        depth = face.depth[0, 0].reshape(-1)[covered]
        rays = -self.camera.directions_to_camera(
            self.camera.view_from_model(_gather(verts, face, self.faces)[None], pose)
        )[0]
        depth_detail = detailed_depth(depth, height, n_model @ rot.T, rays)
        rgb = shade_pixels(_gather(albedo, face, self.faces)[None], (n_detail @ rot.T)[None], gamma)[0]
        background = textured_background(numpy_generator(c.seed, "background", index), c.size)
        i_gt = torch.from_numpy(background).float().reshape(-1, 3) / 255.0
        i_gt[covered] = rgb.clamp(0.0, 1.0)

        def pixel_map(values: torch.Tensor, channels: int) -> torch.Tensor:
            full = values.new_zeros(c.size * c.size, channels)
            full[covered] = values.reshape(-1, channels)
            return full.reshape(c.size, c.size, channels).squeeze(-1)

        return {
            "geometry": (verts, normals, albedo), "i_gt": i_gt.reshape(c.size, c.size, 3), "parsing_gt": face.labels[0],
            "covered": covered.reshape(c.size, c.size), "d": pixel_map(depth, 1), "d_detail": pixel_map(depth_detail, 1),
            "normals": pixel_map(n_detail @ rot.T, 3), "landmarks": face.landmarks[0], "visible": face.landmark_visible[0],
        }  # fmt: skip

    def render_sample(self, index: int) -> dict[str, np.ndarray]:
        """Render sample ``index``: a dict with every field of :mod:`occrecon.synth.fields`."""
        c = self.config
        draw = self.draw(index)
        identity, picture = c.identity_of(index)
        pose = torch.cat([draw.coeffs.angles, draw.coeffs.scale, draw.coeffs.translation], 1)
        f = self._face_pass(draw, index, pose)
        i_in, parsing_in = f["i_gt"].clone(), f["parsing_gt"].clone()
        occluders = torch.zeros(c.size, c.size, dtype=torch.uint8)
        if draw.glasses:
            style = sample_glasses_style(torch_generator(c.seed, "identity-style", identity))
            glasses = build_glasses(f["geometry"][0], self.model.landmark_indices, style)
            self._composite_glasses(
                glasses, style.lens_alpha, f["geometry"], pose, draw.coeffs.gamma, (i_in, parsing_in, occluders)
            )
        lm = f["landmarks"].numpy()
        self._paint_layers(draw, index, lm, i_in, parsing_in, occluders)
        col, row = (np.clip(np.floor(lm[:, k]).astype(int), 0, c.size - 1) for k in (0, 1))
        heat = edge_line_heatmaps(
            f["landmarks"][None] * (c.heatmap_size / c.size), (c.heatmap_size, c.heatmap_size), sigma=c.sigma
        )[0]
        phi0 = encode_bump(np.zeros(1), c.bump_range)[0]
        bump = np.where(f["covered"].numpy(), encode_bump(f["d_detail"] - f["d"], c.bump_range), phi0)
        to_u8 = lambda t: (t.clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8).numpy()  # noqa: E731
        return {
            "I_in": to_u8(i_in), "I_gt": to_u8(f["i_gt"]),
            "parsing_in": parsing_in.numpy().astype(np.uint8), "parsing_gt": f["parsing_gt"].numpy().astype(np.uint8),
            "occluders": occluders.numpy(), "bump": bump.astype(np.uint8),
            "depth_coarse": f["d"].numpy().astype(np.float32), "depth_detail": f["d_detail"].numpy().astype(np.float32),
            "normals": f["normals"].numpy().astype(np.float16),
            "landmarks": lm.astype(np.float32), "landmark_visible": f["visible"].numpy(),
            "landmark_occluded": occluders.numpy()[row, col] > 0,
            "edge_lines": (heat * 255.0 + 0.5).floor().to(torch.uint8).numpy(),
            "coeffs": self.layout.join(draw.coeffs)[0].numpy().astype(np.float32), "camera_pose": pose[0].numpy().astype(np.float32),
            "identity": np.int64(identity), "image_index": np.int64(picture), "index": np.int64(index),
            "glasses": np.uint8(draw.glasses), "hand": np.bool_(draw.hand), "hair": np.bool_(draw.hair),
        }  # fmt: skip

    def _composite_glasses(
        self,
        glasses: GlassesMesh,
        alpha: float,
        geometry: tuple[torch.Tensor, ...],
        pose: torch.Tensor,
        gamma: torch.Tensor,
        targets: tuple[torch.Tensor, ...],
    ) -> None:
        """Rasterize face + glasses together (with and without lenses); blend into ``targets`` in place.

        ``geometry`` = face ``(vertices, normals, albedo)`` ``[V, 3]`` each; ``targets`` =
        ``(I_in [H, W, 3], parsing_in [H, W], occluders [H, W])``, modified in place.
        """
        verts, normals, albedo = geometry
        i_in, parsing_in, occluders = targets
        n_face_v, n_face_f = verts.shape[0], self.faces.shape[0]
        all_v = torch.cat([verts, glasses.vertices])
        all_n = torch.cat([normals, glasses.normals])
        all_c = torch.cat([albedo, glasses.colours])
        all_l = torch.cat(
            [self.model.region_labels, torch.full((glasses.vertices.shape[0],), CELEBAMASK["eye_g"], dtype=torch.long)]
        )
        g_faces = glasses.faces + n_face_v
        full = torch.cat([self.faces, g_faces])
        no_lens = torch.cat([self.faces, g_faces[~glasses.lens_faces]])
        front = self._render(all_v, full, all_c, all_n, all_l, pose, gamma)
        behind = self._render(all_v, no_lens, all_c, all_n, all_l, pose, gamma)
        tri_front, tri_behind = front.triangle_index[0], behind.triangle_index[0]
        is_glasses = tri_front >= n_face_f
        is_lens = is_glasses & glasses.lens_faces[(tri_front - n_face_f).clamp(min=0)]
        frame_behind = tri_behind >= n_face_f
        img_front, img_behind = front.image[0].permute(1, 2, 0), behind.image[0].permute(1, 2, 0)
        # what a lens lets through: the frame seen through it, else the (detailed) face / background
        through = torch.where(frame_behind[..., None], img_behind, i_in)
        lens_rgb = img_front.clamp(0, 1) * alpha + through * (1.0 - alpha)
        i_in[:] = torch.where(
            is_lens[..., None], lens_rgb, torch.where(is_glasses[..., None], img_front.clamp(0, 1), i_in)
        )
        parsing_in[is_glasses] = CELEBAMASK["eye_g"]
        occluders[is_glasses] = OCCLUDER_CODES["glasses_frame"]
        occluders[is_lens] = OCCLUDER_CODES["glasses_lens"]

    def _paint_layers(self, draw: _Draw, index: int, landmarks: np.ndarray, i_in, parsing_in, occluders) -> None:
        """Paint hand and hair layers (image space, in front of everything)."""
        rng = numpy_generator(self.config.seed, "occluders", index)
        layers = []
        if draw.hair:
            layers.append((hair_layer(rng, self.config.size, landmarks), CELEBAMASK["hair"], OCCLUDER_CODES["hair"]))
        if draw.hand:
            layers.append(
                (hand_layer(rng, self.config.size, landmarks), CELEBAMASK["background"], OCCLUDER_CODES["hand"])
            )
        for (mask, colour), label, code in layers:
            m = torch.from_numpy(mask)
            i_in[m] = torch.from_numpy(colour[mask] / 255.0).float()
            parsing_in[m] = label
            occluders[m] = code
