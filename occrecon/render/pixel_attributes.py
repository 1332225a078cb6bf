"""Per-pixel maps read off a render: vertex attributes at each pixel, the visible mirror point of
each pixel (the symmetry prior of the detail stage, paper §3.3), and nearest-neighbour resampling
of such maps. Image layout: ``[B, C, H, W]`` maps, ``[B, H, W, 2]`` ``grid_sample`` grids
(normalised coordinates, ``align_corners=False``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from occrecon.geometry.camera import Camera
from occrecon.geometry.detail_maps import CoarseMaps
from occrecon.losses.detail import shade_maps
from occrecon.render.face import camera_pose
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput

MIRROR_DEPTH_TOLERANCE = 0.05
"""A mirror point is visible when its depth is within this (decimetres) of the depth buffer."""


def pixel_attributes(attr: torch.Tensor, out: RenderOutput, triangles: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``attr [B, V, C]`` interpolated at each pixel of a render -> ``[B, C, H, W]`` (0 off the mesh).

    Uses the render's image-layout ``triangle_index`` and ``barycentrics`` (weights in the order of
    the triangle's vertices, as ``occrecon.render.interpolate``).
    """
    tri = out.triangle_index
    b, h, w = tri.shape
    corners = triangles.long()[tri.clamp(min=0)].reshape(b, -1)  # [B, H*W*3]
    values = torch.gather(attr, 1, corners[..., None].expand(-1, -1, attr.shape[-1])).reshape(b, h, w, 3, -1)
    mixed = (out.barycentrics[..., None].to(attr.dtype) * values).sum(-2) * (tri >= 0)[..., None]
    return mixed.permute(0, 3, 1, 2)


def resize_maps(maps: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Nearest-neighbour resampling of ``[B, C, H, W]`` maps and ``[B, H, W, 2]`` grids to ``size``."""
    out = {}
    for key, value in maps.items():
        if value.dim() == 4 and value.shape[-1] == 2 and key == "mirror":
            out[key] = F.interpolate(value.permute(0, 3, 1, 2), size=(size, size), mode="nearest").permute(0, 2, 3, 1)
        elif value.dim() == 4 and value.shape[-1] != size:
            out[key] = F.interpolate(value, size=(size, size), mode="nearest")
        else:
            out[key] = value
    return out


def mirror_grid(
    verts: torch.Tensor, mirror_index: torch.Tensor, camera: Camera, pose: torch.Tensor, out: RenderOutput, tri: torch.Tensor
) -> torch.Tensor:
    """``[B, H, W, 2]`` normalised image coordinates of each pixel's mirror point, -2 where it has none
    (no mirror vertex, off the image, or hidden behind the face: depth test).

    ``verts [B, V, 3]`` model space, ``mirror_index [V]`` each vertex's mirror partner (-1: none),
    ``out`` the render of ``verts`` / ``tri`` with ``camera`` at ``pose``.
    """
    mirror_index = mirror_index.long()
    known = (mirror_index >= 0).to(verts.dtype)
    mirrored = verts[:, mirror_index.clamp(min=0)]  # [B, V, 3]: vertex i's mirror partner
    points = pixel_attributes(torch.cat([mirrored, known[None, :, None].expand(verts.shape[0], -1, 1)], -1), out, tri)
    b, _, h, w = points.shape
    flat = points[:, :3].flatten(2).transpose(1, 2)  # [B, H*W, 3]
    view = camera.view_from_model(flat, pose)
    pixels = camera.pixels_from_view(view, pose)
    grid = torch.stack([pixels[..., 0] / w * 2 - 1, pixels[..., 1] / h * 2 - 1], -1).reshape(b, h, w, 2)
    seen = F.grid_sample(out.depth, grid, mode="nearest", align_corners=False)[:, 0]
    covered = F.grid_sample(out.mask, grid, mode="nearest", align_corners=False)[:, 0]
    depth = -view[..., 2].reshape(b, h, w)
    ok = (points[:, 3] > 0.999) & (out.mask[:, 0] > 0) & (covered > 0.5)
    ok &= (seen - depth).abs() <= MIRROR_DEPTH_TOLERANCE
    return torch.where(ok[..., None], grid, torch.full_like(grid, -2.0))


def render_coarse_maps(
    face_model: Any, layout: Any, renderer: MeshRenderer, camera: Camera, coarse_size: int, coeffs: torch.Tensor, size: int
) -> dict[str, torch.Tensor]:
    """The coarse maps of :class:`~occrecon.geometry.detail_maps.CoarseMaps` (all but ``rendered``)
    for coefficients ``coeffs [B, D]`` of ``layout``, rendered at ``coarse_size`` pixels by
    ``renderer`` / ``camera`` and resampled to ``size``."""
    c = layout.split(coeffs)
    geom = face_model(c)
    pose = camera_pose(c)
    tri = face_model.triangles
    out = renderer.render(geom.vertices, tri, camera, pose, geom.albedo, geom.normals, c.gamma)
    albedo = pixel_attributes(geom.albedo.clamp(0.0, 1.0), out, tri)
    mirror = mirror_grid(geom.vertices, face_model.mirror_index, camera, pose, out, tri)
    maps = {"depth": out.depth, "normal": out.normal, "mask": out.mask, "albedo": albedo, "mirror": mirror}
    maps = resize_maps(maps, size)
    maps["px_per_unit"] = camera.scale(pose) * (size / coarse_size)
    maps["gamma"], maps["coeffs"] = c.gamma, coeffs
    return maps


def finish_coarse_maps(maps: dict[str, torch.Tensor]) -> CoarseMaps:
    """Add the coarse render (albedo shaded with the light on the coarse normals) and type the maps."""
    maps["rendered"] = shade_maps(maps["albedo"], maps["normal"], maps["gamma"]) * maps["mask"]
    return CoarseMaps(**maps)
