"""Rotations from Euler angles (``CONVENTIONS.md``: ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``).

Column vectors, right-handed, angles in radians. Each elementary rotation turns counter-clockwise
when its axis points at the viewer, so a positive yaw (about +y, up) moves the nose tip (+z,
towards the camera) to +x, the image right.
"""

from __future__ import annotations

import torch

from occrecon.utils.checks import check_shape


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Rotation matrices ``[*, 3, 3]`` about coordinate axis ``axis`` (0=x, 1=y, 2=z) by ``angle`` ``[*]``."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def rotation_from_euler(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from ``(pitch, yaw, roll)``.

    Args:
        angles: ``[*, 3]`` radians, ``(pitch about x, yaw about y, roll about z)``.

    Returns:
        ``[*, 3, 3]`` with ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``, applied as ``R @ x`` (as Deep3D's
        ``compute_rotation``, which uses the transpose with row vectors).
    """
    check_shape(angles, ["*", 3], "angles")
    rx = _axis_rotation(angles[..., 0], 0)
    ry = _axis_rotation(angles[..., 1], 1)
    rz = _axis_rotation(angles[..., 2], 2)
    return rz @ ry @ rx


def rotate_points(points: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Apply per-batch rotations to points or normals.

    Args:
        points: ``[B, V, 3]``.
        rotation: ``[B, 3, 3]``.

    Returns:
        ``[B, V, 3]``, ``R @ p`` for every point (row-vector form ``p @ R^T``).
    """
    check_shape(points, ["B", "V", 3], "points")
    check_shape(rotation, [points.shape[0], 3, 3], "rotation")
    return points @ rotation.transpose(-1, -2)
