"""``MeshRenderer``: camera + SH shading + rasterizer -> images and buffers in image layout.

This is the one place where rasterizer buffers (nvdiffrast layout ``[B, H, W, C]``, row 0 at
``y_ndc = -1``) become image tensors (``[B, C, H, W]``, row 0 at the image top): :func:`_to_image`
flips rows once and moves channels first (``CONVENTIONS.md``).

Outputs (:class:`RenderOutput`):

- ``image`` ``[B, 3, H, W]``: SH-shaded albedo, background 0, antialiased across silhouettes.
- ``mask`` ``[B, 1, H, W]``: 1 where a triangle covers the pixel centre.
- ``depth`` ``[B, 1, H, W]``: ``-z_view`` of the surface point seen at the pixel centre (model
  units, the ``d(b)`` of paper Eq. 5, perspective-correctly interpolated), **0 outside** the mask
  (0 rather than NaN so that masked losses never meet NaN gradients).
- ``normal`` ``[B, 3, H, W]``: unit view-space normal, 0 outside.
- ``labels`` ``[B, H, W]`` int64: label of the hit triangle's vertex with the largest barycentric
  (nearest vertex, never interpolated), 0 outside (only when ``vertex_labels`` is given).
- ``landmarks`` ``[B, N, 2]`` pixels and ``landmark_visible`` ``[B, N]`` bool: a landmark is
  visible when its vertex normal faces the camera (``n . to_camera > 0``) and its depth is within
  ``depth_tolerance`` (model units, default 0.05 = 5 mm) of the depth buffer at one of the 2x2
  covered pixels whose centres surround it (so a landmark hidden behind the nose or outside the
  image is invisible, while one on the mesh border still is visible).
- ``triangle_index`` ``[B, H, W]`` int64 (``-1`` outside) and ``barycentrics`` ``[B, H, W, 3]``
  in image layout, plus ``rast`` in the backend's raw layout for reuse with ``backend.interpolate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from occrecon.errors import ConfigError
from occrecon.geometry.camera import Camera
from occrecon.geometry.lighting import shade, shade_pixels
from occrecon.render.backend import RasterBackend, get_backend
from occrecon.render.torch_raster import take_rows
from occrecon.utils.checks import check_shape


@dataclass
class RenderOutput:
    """Renderer outputs in image layout (see the module docstring for each field)."""

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    triangle_index: torch.Tensor
    barycentrics: torch.Tensor
    rast: torch.Tensor
    labels: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    landmark_visible: torch.Tensor | None = None


def _to_image(buf: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, C]`` bottom-up rasterizer layout -> ``[B, C, H, W]`` top-down image layout."""
    return buf.flip(1).permute(0, 3, 1, 2)


def _nearest_vertex_labels(rast: torch.Tensor, tri: torch.Tensor, vertex_labels: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` label of the largest-barycentric vertex of each pixel's triangle, 0 outside."""
    ids = rast[..., 3].long() - 1
    u, v = rast[..., 0].detach(), rast[..., 1].detach()
    corner = torch.stack([u, v, 1.0 - u - v], -1).argmax(-1)
    vert = take_rows(tri.long().reshape(-1), ids.clamp(min=0) * 3 + corner)
    return torch.where(ids >= 0, take_rows(vertex_labels.long(), vert), torch.zeros_like(vert))


class MeshRenderer(torch.nn.Module):
    """Render a batch of meshes with a camera, SH lighting and a rasterizer backend.

    Args:
        backend: ``"auto" | "torch" | "nvdiffrast"`` or a backend object.
        image_size: ``H`` (square) or ``(H, W)``; must match the camera's image size.
        antialias: blend silhouettes (needed for silhouette gradients).
        depth_tolerance: landmark visibility tolerance in model units.
    """

    def __init__(
        self,
        backend: str | RasterBackend = "auto",
        image_size: int | tuple[int, int] = 224,
        antialias: bool = True,
        depth_tolerance: float = 0.05,
    ) -> None:
        super().__init__()
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.resolution = (int(h), int(w))
        self.antialias = antialias
        self.depth_tolerance = depth_tolerance

    def forward(self, *args: Any, **kwargs: Any) -> RenderOutput:
        return self.render(*args, **kwargs)

    def render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        camera: Camera,
        pose: torch.Tensor,
        albedo: torch.Tensor,
        normals: torch.Tensor,
        gamma: torch.Tensor,
        vertex_labels: torch.Tensor | None = None,
        landmark_indices: torch.Tensor | None = None,
        shading: str = "vertex",
    ) -> RenderOutput:
        """Render model-space meshes.

        Args:
            vertices, albedo, normals: ``[B, V, 3]`` model-space positions, albedo in ``[0, 1]`` and
                unit vertex normals.
            faces: ``[F, 3]`` vertex indices.
            camera: a camera from :mod:`occrecon.geometry.camera` with this image size.
            pose: ``[B, 6]`` camera pose (layout defined by the camera).
            gamma: ``[B, 9]`` mono or ``[B, 27]`` RGB SH coefficients.
            vertex_labels: optional ``[V]`` int64 region labels.
            landmark_indices: optional ``[N]`` int64 vertex indices.
            shading: ``"vertex"`` (Gouraud, Deep3D) or ``"pixel"`` (from interpolated normals).
        """
        check_shape(vertices, ["B", "V", 3], "vertices")
        check_shape(albedo, list(vertices.shape), "albedo")
        check_shape(normals, list(vertices.shape), "normals")
        if (camera.height, camera.width) != self.resolution:
            raise ConfigError(f"camera image size {(camera.height, camera.width)} != renderer size {self.resolution}")
        verts_view = camera.view_from_model(vertices, pose)
        normals_view = camera.normals_to_view(normals, pose)
        pos = camera.clip_from_view(verts_view, pose)
        rast = self.backend.rasterize(pos, faces, self.resolution)
        interp = self.backend.interpolate
        if shading == "vertex":
            color = interp(shade(albedo, normals_view, gamma), rast, faces)
        elif shading == "pixel":
            color = shade_pixels(interp(albedo, rast, faces), interp(normals_view, rast, faces), gamma)
        else:
            raise ConfigError(f"shading must be 'vertex' or 'pixel', got {shading!r}")
        if self.antialias:
            color = self.backend.antialias(color.contiguous(), rast, pos, faces)
        geom = interp(torch.cat([-verts_view[..., 2:3], normals_view], -1), rast, faces)
        covered = rast[..., 3:4] > 0
        normal_map = F.normalize(geom[..., 1:], dim=-1, eps=1e-12)
        u, v = rast[..., 0:1], rast[..., 1:2]
        out = RenderOutput(
            image=_to_image(color),
            mask=_to_image(covered.to(color.dtype)),
            depth=_to_image(geom[..., :1]),
            normal=_to_image(normal_map),
            triangle_index=rast[..., 3].flip(1).long() - 1,
            barycentrics=torch.cat([u, v, covered * (1.0 - u - v)], -1).flip(1),
            rast=rast,
        )
        if vertex_labels is not None:
            out.labels = _nearest_vertex_labels(rast, faces, vertex_labels).flip(1)
        if landmark_indices is not None:
            out.landmarks, out.landmark_visible = self._landmarks(
                camera, pose, verts_view, normals_view, landmark_indices.long(), out.depth, out.mask
            )
        return out

    def _landmarks(self, camera, pose, verts_view, normals_view, idx, depth, mask):
        """Project landmark vertices; visibility from facing and the depth buffer (see module doc)."""
        lm_view = verts_view[:, idx]
        lm_px = camera.pixels_from_view(lm_view, pose)
        facing = (normals_view[:, idx] * camera.directions_to_camera(lm_view)).sum(-1) > 0
        h, w = self.resolution
        # The 2x2 pixels whose centres surround the point (so landmarks on the mesh border, whose
        # own pixel centre may fall just outside, still find their surface).
        base = (lm_px.detach() - 0.5).floor().long()
        lm_depth = -lm_view[..., 2].detach()
        b = torch.arange(lm_px.shape[0], device=lm_px.device)[:, None]
        close = torch.zeros_like(facing)
        for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
            row, col = base[..., 1] + dr, base[..., 0] + dc
            inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
            rc, cc = row.clamp(0, h - 1), col.clamp(0, w - 1)
            hit = (mask[b, 0, rc, cc] > 0) & ((depth[b, 0, rc, cc].detach() - lm_depth).abs() <= self.depth_tolerance)
            close |= inside & hit
        return lm_px, facing & close
