"""The procedural face model: occrecon's embedded default (no files, synthetic, deterministic).

Geometry comes from :mod:`occrecon.facemodel.procedural_shape`. This module derives from the
same construction everything a :class:`~occrecon.facemodel.morphable.MorphableModel` needs:

* identity basis (80): the named construction parameters first (face width, length, nose size,
  nose length, jaw width, eye spacing, brow height, lip fullness, cheek fullness, depth, chin,
  eye height, mouth width, forehead) as central finite differences of the construction, then
  random smooth mirror-symmetric normal displacements with decreasing standard deviation;
  every mode is symmetrised exactly with the mirror map;
* expression basis (64): jaw open, smile, brow raise, eye close, pucker, frown, then small random
  smooth (not necessarily symmetric) displacement fields;
* albedo (80): skin tone light -> dark first, then redness, yellowness, lip colour, brow
  darkness, iris colour, cheek flush, then small random smooth colour fields;
* region labels (CelebAMask-HQ indices), skin and photometric masks, 68 landmarks and the
  exact mirror map (column ``j`` <-> ``C - 1 - j`` of the symmetric grid).

All random parts use :func:`occrecon.utils.seeding.numpy_generator` with a fixed key, so the
model is identical on every machine. It is synthetic: a face-shaped mesh, not face statistics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from occrecon.facemodel import procedural_shape as ps
from occrecon.facemodel.albedo import albedo_model, smooth_blobs
from occrecon.facemodel.derived import vertex_normals_np
from occrecon.facemodel.morphable import FaceModelData
from occrecon.labels import CELEBAMASK as L
from occrecon.landmarks import FLIP_68, NUM_LANDMARKS_68
from occrecon.utils.seeding import numpy_generator

N_ID, N_EXP, N_TEX = 80, 64, 80
SEED_KEY = "occrecon-procedural-face-v1"


def mirror_map(grid: ps.Grid) -> np.ndarray:
    """``[V]`` index of each vertex's mirror image (exact: the grid is symmetric by construction)."""
    rows, cols = grid.shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (r * cols + (cols - 1 - c)).reshape(-1)


def symmetrise(field: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average ``[V, 3, ...]`` with its reflection ``(x -> -x)`` carried through the mirror map."""
    reflected = field[mirror].copy()
    reflected[:, 0] *= -1.0
    return 0.5 * (field + reflected)


def region_labels(c: ps.Construction) -> np.ndarray:
    """CelebAMask-HQ label per vertex from the construction (rest shape, default identity)."""
    p = dict(ps.DEFAULTS)
    labels = np.full(c.x0.shape, L["skin"], dtype=np.int64)
    front = (c.front > 0.1) & (c.row >= c.grid.chin_row)
    subject_left = c.x0 > 0  # +x = the image's right = the subject's left: the l_ labels (CONVENTIONS.md)
    labels[c.row < c.grid.chin_row] = L["neck"]
    nose_tip = ps.NOSE_TIP_Y
    nose = front & (ps.nose_relief(c, p) > 0.035) & (c.y0 > nose_tip - 0.1) & (c.y0 < ps.NOSE_ROOT_Y + 0.03)
    labels[nose] = L["nose"]
    xe = np.abs(c.x0) - ps.EYE_X
    arch = np.clip(1.0 - ((xe - 0.01) / 0.2) ** 2, 0.0, None)
    half = 0.026 * (1.0 - 0.5 * np.clip(np.abs((xe - 0.01) / 0.2), 0, 1))
    brow = front & (np.abs(c.y0 - ps.BROW_Y - 0.03 * arch) < half) & (xe > -0.17) & (xe < 0.21)
    labels[brow] = np.where(subject_left[brow], L["l_brow"], L["r_brow"])
    ex, dy, hu, hl = ps.eye_frame(c, p)
    eye = front & (np.abs(ex) < 1) & (dy < hu) & (dy > -hl)
    labels[eye] = np.where(subject_left[eye], L["l_eye"], L["r_eye"])
    hu, hl = ps.lip_heights(c, p)
    m = c.grid.mouth_row
    labels[front & (c.row > m) & (c.y0 - ps.MOUTH_Y < hu)] = L["u_lip"]
    labels[front & (c.row < m) & (ps.MOUTH_Y - c.y0 < hl)] = L["l_lip"]
    labels[front & (c.row == m) & (hu > 0)] = L["mouth"]
    return labels


def _nearest(c: ps.Construction, candidates: np.ndarray, x: float, y: float) -> int:
    idx = np.flatnonzero(candidates)
    d = (c.x0[idx] - x) ** 2 + (c.y0[idx] - y) ** 2
    return int(idx[np.argmin(d)])


def landmark_indices(c: ps.Construction, labels: np.ndarray, mean: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """68 iBUG landmarks: image-left and mid-line points by construction, the rest by mirroring.

    The image-left brow/eye (points 17-21, 36-41) lie on the subject's right ``r_brow``/``r_eye``."""
    front = (c.front > 0.1) & (c.row >= c.grid.chin_row)
    centre = c.col == (c.grid.shape[1] - 1) // 2
    lm = np.full(NUM_LANDMARKS_68, -1, dtype=np.int64)
    is_label = lambda *names: np.isin(labels, [L[n] for n in names])  # noqa: E731
    for k in range(9):  # jaw contour, image-left half down to the chin
        s = k / 8.0
        x, y = -0.76 * np.cos(s * np.pi / 2) ** 0.8, 0.22 - 1.10 * np.sin(s * np.pi / 2) ** 1.5
        lm[k] = _nearest(c, front & is_label("skin") & ((c.col <= np.argmax(centre)) if k < 8 else centre), x, y)
    for k, xe in zip(range(17, 22), np.linspace(0.19, -0.15, 5), strict=True):  # image-left brow, outer -> inner
        arch = max(0.0, 1.0 - ((xe - 0.01) / 0.2) ** 2)
        lm[k] = _nearest(c, is_label("r_brow"), -(ps.EYE_X + xe), ps.BROW_Y + 0.03 * arch)
    for k, y in zip(range(27, 30), (0.30, 0.18, 0.07), strict=True):  # nose bridge
        lm[k] = _nearest(c, centre & front, 0.0, y)
    nose_col = np.flatnonzero(centre & is_label("nose"))
    lm[30] = nose_col[np.argmax(mean[nose_col, 2])]  # nose tip: the most forward mid-line point
    for k, (x, dy) in zip((31, 32, 33), ((-0.085, -0.075), (-0.045, -0.09), (0.0, -0.1)), strict=True):
        lm[k] = _nearest(c, front & (centre if x == 0 else c.x0 < 0), x, ps.NOSE_TIP_Y + dy)
    eye_pts = {
        36: (1.0, 0.0),
        37: (0.35, 0.95),
        38: (-0.35, 0.95),
        39: (-0.95, 0.0),
        40: (-0.35, -0.95),
        41: (0.35, -0.95),
    }
    for k, (ex, frac) in eye_pts.items():
        ex = float(np.clip(ex, -0.9, 0.9))
        lens = 1.0 - ex**2
        h = ps.EYE_UPPER * lens**0.8 if frac > 0 else ps.EYE_LOWER * lens**0.9
        y = ps.EYE_Y + 0.008 * ex + frac * h
        lm[k] = _nearest(c, is_label("r_eye"), -(ps.EYE_X + ex * ps.EYE_HALF_WIDTH), y)
    half = ps.MOUTH_HALF_WIDTH
    lip = is_label("u_lip", "l_lip")
    lm[48] = _nearest(c, lip & (c.x0 < 0), -0.97 * half, ps.MOUTH_Y)
    for k, x in zip((49, 50, 51), (-0.15, -0.06, 0.0), strict=True):
        hu = ps.UPPER_LIP_HEIGHT * (1 - (x / half) ** 2) ** 0.6 * (1 - 0.25 * np.exp(-0.5 * (x / 0.025) ** 2))
        lm[k] = _nearest(c, is_label("u_lip") & (centre if x == 0 else c.x0 < 0), x, ps.MOUTH_Y + 0.85 * hu)
    for k, x in zip((57, 58, 59), (0.0, -0.07, -0.15), strict=True):
        hl = ps.LOWER_LIP_HEIGHT * (1 - (x / half) ** 2) ** 0.5
        lm[k] = _nearest(c, is_label("l_lip") & (centre if x == 0 else c.x0 < 0), x, ps.MOUTH_Y - 0.85 * hl)
    m = c.grid.mouth_row
    for k, x, row in (
        (60, -0.8 * half, m + 1),
        (61, -0.1, m + 1),
        (62, 0.0, m + 1),
        (66, 0.0, m - 1),
        (67, -0.1, m - 1),
    ):
        lm[k] = _nearest(c, (c.row == row) & (centre if x == 0 else c.x0 < 0), x, ps.MOUTH_Y)
    for k in range(NUM_LANDMARKS_68):  # right half: the mirror image of the left half
        if lm[k] < 0:
            lm[k] = mirror[lm[FLIP_68[k]]]
    return lm


def _finite_difference(names: tuple[str, ...], grid: ps.Grid) -> np.ndarray:
    """``[V, 3, len(names)]`` central differences of the construction (one unit = one sigma)."""
    cols = [ps.construct({n: 0.5}, grid) - ps.construct({n: -0.5}, grid) for n in names]
    return np.stack(cols, axis=-1)


@lru_cache(maxsize=1)
def _build() -> FaceModelData:
    grid = ps.make_grid()
    c = ps.base_surface(grid)
    mean = ps.construct({}, grid)
    triangles = ps.triangulate(grid)
    mirror = mirror_map(grid)
    normals = vertex_normals_np(mean, triangles)
    rng = numpy_generator(SEED_KEY)
    xy = np.stack([c.x0, c.y0], axis=1)
    id_basis = np.zeros((len(mean), 3, N_ID))
    id_basis[:, :, : len(ps.IDENTITY_PARAMS)] = _finite_difference(ps.IDENTITY_PARAMS, grid)
    for k in range(len(ps.IDENTITY_PARAMS), N_ID):  # random smooth symmetric modes, decreasing std
        field = smooth_blobs(xy, c.front, rng, 3, (0.08, 0.25), mirrored=True)
        id_basis[:, :, k] = 0.012 * 0.96 ** (k - len(ps.IDENTITY_PARAMS)) * field[:, None] * normals
    exp_basis = np.zeros((len(mean), 3, N_EXP))
    exp_basis[:, :, : len(ps.EXPRESSION_PARAMS)] = _finite_difference(ps.EXPRESSION_PARAMS, grid)
    for k in range(len(ps.EXPRESSION_PARAMS), N_EXP):
        field = smooth_blobs(xy, c.front, rng, 2, (0.06, 0.15), mirrored=False)
        exp_basis[:, :, k] = 0.005 * 0.96 ** (k - len(ps.EXPRESSION_PARAMS)) * field[:, None] * normals
    labels = region_labels(c)
    eyes = np.array([[-ps.EYE_X, ps.EYE_Y], [ps.EYE_X, ps.EYE_Y]])
    albedo_mean, albedo_basis = albedo_model(xy, labels, eyes, c.front, rng, N_TEX)
    rows, cols = grid.shape
    uv = np.stack([c.col / (cols - 1), c.row / (rows - 1)], axis=1)
    not_neck = c.row >= grid.chin_row
    return FaceModelData(
        name="procedural",
        mean_shape=symmetrise(mean, mirror),
        id_basis=symmetrise(id_basis, mirror),
        exp_basis=exp_basis,
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        triangles=triangles,
        landmark_indices=landmark_indices(c, labels, mean, mirror),
        region_labels=labels,
        skin_mask=(labels == L["skin"]) & (c.front > 0.3) & not_neck & (c.y0 < 0.85),
        face_mask=(c.front > 0.2) & not_neck & (c.y0 < 0.9),
        uv=uv,
        mirror_index=mirror,
        identity_names=ps.IDENTITY_PARAMS,
        expression_names=ps.EXPRESSION_PARAMS,
    )


def procedural_face_data() -> FaceModelData:
    """The procedural model's arrays (built once per process, ~0.1 s; callers must not mutate)."""
    return _build()
