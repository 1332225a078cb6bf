"""Render a morphable face model from a flat coefficient vector (the paper's ``y``).

Duck-typed against :class:`occrecon.facemodel.morphable.MorphableModel` (``layout(kind)``,
``forward(Coefficients) -> FaceGeometry``, buffers ``triangles``, ``region_labels``,
``landmark_indices``); the layout of ``y`` is recognised by :func:`occrecon.facemodel.layout.layout_of`.
"""

from __future__ import annotations

from typing import Any

import torch

from occrecon.facemodel.layout import Coefficients, layout_of
from occrecon.geometry.camera import Camera, PerspectiveCamera, ScaledOrthographicCamera
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput


def camera_for_layout(kind: str, image_size: int | tuple[int, int]) -> Camera:
    """The paper layout drives Eq. 7's scaled orthographic camera; Deep3D's its perspective one."""
    return ScaledOrthographicCamera(image_size) if kind == "paper" else PerspectiveCamera(image_size)


def camera_pose(coefficients: Coefficients) -> torch.Tensor:
    """``[B, 6]`` camera pose from split coefficients.

    Paper layout: ``(pitch, yaw, roll, f, tx, ty)``; Deep3D layout: ``(pitch, yaw, roll, tx, ty, tz)``.
    """
    c = coefficients
    if c.translation.shape[1] == 2:
        return torch.cat([c.angles, c.scale, c.translation], 1)
    return torch.cat([c.angles, c.translation], 1)


def render_face(
    model: Any, coeffs: torch.Tensor, renderer: MeshRenderer, camera: Camera | None = None, shading: str = "vertex"
) -> RenderOutput:
    """Evaluate ``model`` at ``coeffs [B, size]`` and render it with labels and 68 landmarks.

    The camera defaults to :func:`camera_for_layout` of the coefficient layout at the renderer's
    resolution.
    """
    layout = layout_of(model, coeffs)
    c = layout.split(coeffs)
    geom = model(c)
    camera = camera or camera_for_layout(layout.kind, renderer.resolution)
    return renderer.render(
        geom.vertices,
        model.triangles,
        camera,
        camera_pose(c),
        geom.albedo,
        geom.normals,
        c.gamma,
        vertex_labels=model.region_labels,
        landmark_indices=model.landmark_indices,
        shading=shading,
    )
