"""Cameras: the paper's scaled orthographic projection (Eq. 7) and Deep3D's perspective camera.

Frames, units and signs are those of ``CONVENTIONS.md``; the short version:

- ``view_from_model``: ``X_view = R @ X_model + t`` with ``R = Rz(roll) Ry(yaw) Rx(pitch)``,
  camera at the origin looking down ``-z``, ``+y`` up; ``depth = -z_view`` (model units).
- ``clip_from_view``: OpenGL clip space ``[B, V, 4]`` for the rasterizer (``y_ndc`` up, near
  plane at ``z_ndc = -1``).
- ``pixels_from_view``: continuous pixel coordinates ``(x, y)``, ``y`` down, pixel ``(i, j)``
  centred at ``(j + 0.5, i + 0.5)``; equal to ``x_px = (x_ndc + 1) / 2 * W``,
  ``y_px = (1 - y_ndc) / 2 * H`` of the clip coordinates (the one place where ``y`` flips).

Both cameras share the default intrinsics of Deep3DFaceRecon (focal 1015 px and principal point
112 px at 224 px, camera distance 10, near 5, far 15), scaled with the image size. The
orthographic camera's default scale is the perspective magnification at the model origin
(``focal / camera_distance`` px per unit), so zero coefficients frame the face alike in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occrecon.errors import ConfigError
from occrecon.geometry.rotation import rotate_points, rotation_from_euler
from occrecon.utils.checks import check_shape

POSE_SIZE = 6
"""Both cameras take a 6-vector pose per sample."""


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


@dataclass(frozen=True)
class _CameraBase:
    """Shared intrinsics; subclasses define how the pose enters."""

    image_size: int | tuple[int, int] = 224
    focal: float = 1015.0
    principal_point: float = 112.0
    reference_size: float = 224.0
    camera_distance: float = 10.0
    near: float = 5.0
    far: float = 15.0

    def __post_init__(self) -> None:
        if not 0 < self.near < self.far:
            raise ConfigError(f"camera needs 0 < near < far, got near={self.near}, far={self.far}")

    @property
    def height(self) -> int:
        return _image_hw(self.image_size)[0]

    @property
    def width(self) -> int:
        return _image_hw(self.image_size)[1]

    @property
    def focal_px(self) -> tuple[float, float]:
        """``(fx, fy)`` in pixels at this image size."""
        return self.focal * self.width / self.reference_size, self.focal * self.height / self.reference_size

    @property
    def center_px(self) -> tuple[float, float]:
        """Principal point ``(cx, cy)`` in pixels (y down) at this image size."""
        return (
            self.principal_point * self.width / self.reference_size,
            self.principal_point * self.height / self.reference_size,
        )

    def rotation(self, pose: torch.Tensor) -> torch.Tensor:
        """``[B, 6] -> [B, 3, 3]`` from the pose's leading ``(pitch, yaw, roll)``."""
        check_shape(pose, ["B", POSE_SIZE], "pose")
        return rotation_from_euler(pose[:, :3])

    def normals_to_view(self, normals: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Rotate model-space normals ``[B, V, 3]`` into view space ``[B, V, 3]``."""
        return rotate_points(normals, self.rotation(pose))

    def _depth_to_ndc(self, depth: torch.Tensor) -> torch.Tensor:
        # OpenGL's mapping for the perspective camera is applied through w; the orthographic one
        # maps depth linearly. Both send near -> -1 and far -> +1.
        return (2.0 * depth - (self.far + self.near)) / (self.far - self.near)


@dataclass(frozen=True)
class ScaledOrthographicCamera(_CameraBase):
    """Paper Eq. 7: ``V_2d = f * P_r * R * S + t_2d`` with pose ``(pitch, yaw, roll, f, tx, ty)``.

    ``f`` is relative: the scale is ``s = s0 * (1 + f)`` pixels per model unit with
    ``s0 = focal_px / camera_distance``. ``(tx, ty)`` is in pixels relative to the image centre,
    ``ty`` down. In view space the translation is ``t = (tx / s, -ty / s, -camera_distance)`` so
    that depths stay in model units and the face sits between the near and far planes.
    """

    def scale(self, pose: torch.Tensor) -> torch.Tensor:
        """Pixels per model unit along x, ``[B]`` (``y`` uses the same scale times ``H / W``)."""
        check_shape(pose, ["B", POSE_SIZE], "pose")
        return self.focal_px[0] / self.camera_distance * (1.0 + pose[:, 3])

    def _scales(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sx = self.scale(pose)
        return sx, sx * (self.height / self.width)

    def view_from_model(self, verts: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3]`` model -> ``[B, V, 3]`` view space."""
        check_shape(verts, ["B", "V", 3], "verts")
        sx, sy = self._scales(pose)
        t = torch.stack([pose[:, 4] / sx, -pose[:, 5] / sy, torch.full_like(sx, -self.camera_distance)], dim=-1)
        return rotate_points(verts, self.rotation(pose)) + t[:, None, :]

    def clip_from_view(self, verts_view: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, V, 3]`` view -> ``[B, V, 4]`` clip (``w = 1``); needs ``pose`` for the scale."""
        check_shape(verts_view, ["B", "V", 3], "verts_view")
        if pose is None:
            raise ConfigError("ScaledOrthographicCamera.clip_from_view needs the pose (it holds the scale f)")
        sx, sy = self._scales(pose)
        x = verts_view[..., 0] * (2.0 * sx / self.width)[:, None]
        y = verts_view[..., 1] * (2.0 * sy / self.height)[:, None]
        z = self._depth_to_ndc(-verts_view[..., 2])
        return torch.stack([x, y, z, torch.ones_like(z)], dim=-1)

    def pixels_from_view(self, verts_view: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, V, 3]`` view -> ``[B, V, 2]`` pixels ``(x, y)``, y down; needs ``pose``."""
        check_shape(verts_view, ["B", "V", 3], "verts_view")
        if pose is None:
            raise ConfigError("ScaledOrthographicCamera.pixels_from_view needs the pose (it holds the scale f)")
        sx, sy = self._scales(pose)
        x = 0.5 * self.width + sx[:, None] * verts_view[..., 0]
        y = 0.5 * self.height - sy[:, None] * verts_view[..., 1]
        return torch.stack([x, y], dim=-1)

    def directions_to_camera(self, verts_view: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[B, V, 3]`` from each point towards the camera: ``+z`` everywhere."""
        out = torch.zeros_like(verts_view)
        out[..., 2] = 1.0
        return out


@dataclass(frozen=True)
class PerspectiveCamera(_CameraBase):
    """Deep3DFaceRecon's pinhole camera, pose ``(pitch, yaw, roll, tx, ty, tz)``.

    ``X_view = R X + (tx, ty, tz - camera_distance)``; pixels ``x = cx + fx * x_v / depth``,
    ``y = cy - fy * y_v / depth`` with ``depth = -z_v`` (Deep3D's ``K`` with the y axis flipped
    to point down).
    """

    def view_from_model(self, verts: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3]`` model -> ``[B, V, 3]`` view space."""
        check_shape(verts, ["B", "V", 3], "verts")
        t = pose[:, 3:6] - pose.new_tensor([0.0, 0.0, self.camera_distance])
        return rotate_points(verts, self.rotation(pose)) + t[:, None, :]

    def clip_from_view(self, verts_view: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, V, 3]`` view -> ``[B, V, 4]`` OpenGL clip coordinates (``w = depth``)."""
        check_shape(verts_view, ["B", "V", 3], "verts_view")
        (fx, fy), (cx, cy) = self.focal_px, self.center_px
        x, y, z = verts_view.unbind(-1)
        w = -z
        n, f = self.near, self.far
        xc = (2.0 * fx / self.width) * x + (2.0 * cx / self.width - 1.0) * w
        yc = (2.0 * fy / self.height) * y + (1.0 - 2.0 * cy / self.height) * w
        zc = -(f + n) / (f - n) * z - 2.0 * f * n / (f - n)
        return torch.stack([xc, yc, zc, w], dim=-1)

    def pixels_from_view(self, verts_view: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, V, 3]`` view -> ``[B, V, 2]`` pixels ``(x, y)``, y down."""
        check_shape(verts_view, ["B", "V", 3], "verts_view")
        (fx, fy), (cx, cy) = self.focal_px, self.center_px
        depth = -verts_view[..., 2]
        return torch.stack([cx + fx * verts_view[..., 0] / depth, cy - fy * verts_view[..., 1] / depth], dim=-1)

    def directions_to_camera(self, verts_view: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[B, V, 3]`` from each point towards the camera centre (the origin)."""
        return torch.nn.functional.normalize(-verts_view, dim=-1)


Camera = ScaledOrthographicCamera | PerspectiveCamera
"""Either camera; both expose the same methods."""
