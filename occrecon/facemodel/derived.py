"""Per-vertex data derived geometrically when a face model file does not provide it.

Used by the SFM and BFM readers (which ship no semantic regions, and BFM no mirror map or
texture coordinates). Rules, all on the mean shape in model space seen from the front:

* regions: polygons through the 68 landmarks (eyes 42-47 = ``l_eye`` / 36-41 = ``r_eye``, inner mouth 60-67, upper lip
  48-54 + 64-60, lower lip 54-59, 48 + 60-67-64), a nose polygon from the bridge top (27) widened
  by 0.07 dm down to the nostrils (31-35) widened by 0.03 dm, brow bands within 0.03 dm of the
  brow polylines (22-26 = ``l_brow``, 17-21 = ``r_brow``), and neck = below the jaw polyline (0-16)
  by more than 0.02 dm. Sides: labels are CelebAMask-HQ's (subject's own side), landmarks iBUG's
  image-side order, so the subject's left eye ``l_eye`` is points 42-47, at ``+x`` in model space
  (the image's right, ``CONVENTIONS.md``).
  A vertex counts only where its normal faces the camera (``n_z > 0``); polygons include a 0.01 dm
  margin so landmark vertices on a boundary fall inside their region. Everything else is skin.
* mirror map: nearest vertex of the reflected mean (``x -> -x``) within a tolerance, else -1.
* texture coordinates: a cylindrical projection around the vertical axis, scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as MplPath
from scipy.spatial import cKDTree

from occrecon.labels import CELEBAMASK as L

POLYGON_MARGIN = 0.01
BROW_HALF_WIDTH = 0.03
NECK_MARGIN = 0.02


def _segment_distance(points: np.ndarray, polyline: np.ndarray, closed: bool) -> np.ndarray:
    """Distance ``[N]`` from ``points [N, 2]`` to a polyline ``[K, 2]``."""
    a = polyline if closed else polyline[:-1]
    b = np.roll(polyline, -1, axis=0) if closed else polyline[1:]
    seg = b - a  # [S, 2]
    rel = points[:, None, :] - a[None]  # [N, S, 2]
    t = np.clip((rel * seg[None]).sum(-1) / np.maximum((seg**2).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * seg[None], axis=-1).min(axis=1)


def _inside(points: np.ndarray, polygon: np.ndarray, margin: float = POLYGON_MARGIN) -> np.ndarray:
    inside = MplPath(polygon).contains_points(points)
    return inside | (_segment_distance(points, polygon, closed=True) < margin)


def regions_from_landmarks(vertices: np.ndarray, normals: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """CelebAMask-HQ labels ``[V]`` from the mean shape ``[V, 3]``, its normals and 68 landmark indices."""
    xy = vertices[:, :2]
    lm = xy[landmarks]
    facing = normals[:, 2] > 0.0
    labels = np.full(len(xy), L["skin"], dtype=np.int64)
    jaw = lm[:17]
    order = np.argsort(jaw[:, 0])
    jaw_y = np.interp(xy[:, 0], jaw[order, 0], jaw[order, 1])
    within = (xy[:, 0] > jaw[:, 0].min()) & (xy[:, 0] < jaw[:, 0].max())
    labels[within & (xy[:, 1] < jaw_y - NECK_MARGIN)] = L["neck"]
    nose = np.array([
        lm[27] + [-0.07, 0.0], lm[31] + [-0.03, 0.05], lm[31] + [-0.03, 0.0], lm[32], lm[33], lm[34],
        lm[35] + [0.03, 0.0], lm[35] + [0.03, 0.05], lm[27] + [0.07, 0.0],
    ])  # fmt: skip
    labels[facing & _inside(xy, nose)] = L["nose"]
    # subject-side labels on image-side landmarks: the subject's left brow/eye is the image-right one
    for name, idx in (("r_brow", range(17, 22)), ("l_brow", range(22, 27))):
        labels[facing & (_segment_distance(xy, lm[list(idx)], closed=False) < BROW_HALF_WIDTH)] = L[name]
    for name, idx in (("r_eye", range(36, 42)), ("l_eye", range(42, 48))):
        labels[facing & _inside(xy, lm[list(idx)])] = L[name]
    upper = lm[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]]
    lower = lm[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]]
    labels[facing & _inside(xy, upper)] = L["u_lip"]
    labels[facing & _inside(xy, lower)] = L["l_lip"]
    inner = lm[60:68]
    area = 0.5 * abs(np.dot(inner[:, 0], np.roll(inner[:, 1], -1)) - np.dot(inner[:, 1], np.roll(inner[:, 0], -1)))
    if area > 1e-6:  # closed lips (a zero-area inner contour) have no visible inner mouth
        labels[facing & MplPath(inner).contains_points(xy)] = L["mouth"]
    return labels


def estimate_mirror_map(vertices: np.ndarray, tolerance: float) -> np.ndarray:
    """``[V]`` nearest vertex to each vertex's reflection ``x -> -x`` if closer than ``tolerance``, else -1."""
    reflected = vertices * np.array([-1.0, 1.0, 1.0])
    dist, idx = cKDTree(vertices).query(reflected)
    return np.where(dist < tolerance, idx, -1).astype(np.int64)


def cylindrical_uv(vertices: np.ndarray) -> np.ndarray:
    """``[V, 2]`` texture coordinates: azimuth around the vertical axis and height, in [0, 1]."""
    centre_z = vertices[:, 2].min()
    u = np.arctan2(vertices[:, 0], vertices[:, 2] - centre_z + 1e-9)
    v = vertices[:, 1]
    scale = lambda a: (a - a.min()) / max(float(np.ptp(a)), 1e-12)  # noqa: E731
    return np.stack([scale(u), scale(v)], axis=1)


def vertex_normals_np(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` (numpy twin of ``morphable.vertex_normals``)."""
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    fn = np.cross(v1 - v0, v2 - v0)
    acc = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(acc, triangles[:, k], fn)
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)
