"""A synthetic albedo model driven by region labels (procedural model; transferred to SFM).

Mean colour by CelebAMask-HQ region (skin, lips, brows, eye whites with iris and pupil discs,
inner mouth), a cheek flush, and a basis whose first modes are interpretable — skin tone light ->
dark, redness, yellowness, lip colour, brow darkness, two iris colours, cheek flush — followed
by small random smooth colour fields. RGB in [0, 1]; with the unit prior, +-3 sigma stays in range
for the named modes. Synthetic: chosen to look plausible, not fitted to skin measurements.
"""

from __future__ import annotations

import numpy as np

from occrecon.labels import CELEBAMASK as L

SKIN = (0.70, 0.52, 0.43)  # a medium tone: the first mode spans light to dark within [0, 1]
REGION_COLOURS: dict[int, tuple[float, float, float]] = {
    L["u_lip"]: (0.64, 0.35, 0.35), L["l_lip"]: (0.66, 0.37, 0.37), L["mouth"]: (0.35, 0.12, 0.12),
    L["l_brow"]: (0.32, 0.22, 0.16), L["r_brow"]: (0.32, 0.22, 0.16),
    L["l_eye"]: (0.93, 0.91, 0.88), L["r_eye"]: (0.93, 0.91, 0.88), L["neck"]: (0.67, 0.49, 0.41),
}  # fmt: skip
IRIS, PUPIL = (0.33, 0.24, 0.16), (0.05, 0.04, 0.04)
IRIS_RADIUS, PUPIL_RADIUS = 0.045, 0.018  # decimetres


def smooth_blobs(
    xy: np.ndarray, weight: np.ndarray, rng: np.random.Generator, n: int, sigma: tuple[float, float], mirrored: bool
) -> np.ndarray:
    """A smooth random scalar field ``[V]`` on the face front, ``max |value| = 1``.

    Args:
        xy: ``[V, 2]`` frontal coordinates (dm). weight: ``[V]`` front weight in [0, 1].
        n: Gaussian blobs; sigma: range of their widths (dm); mirrored: add each blob's mirror
            image (``x -> -x``), giving a left-right symmetric field.
    """
    x, y = xy[:, 0], xy[:, 1]
    field = np.zeros(len(xy))
    for _ in range(n):
        cx, cy = rng.uniform(0.0 if mirrored else -0.6, 0.6), rng.uniform(-0.85, 0.85)
        sx, sy, a = rng.uniform(*sigma), rng.uniform(*sigma), rng.normal()
        field += a * np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
        if mirrored:
            field += a * np.exp(-0.5 * (((x + cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
    field *= weight
    return field / max(float(np.abs(field).max()), 1e-12)


def albedo_model(
    xy: np.ndarray,
    labels: np.ndarray,
    eye_centres: np.ndarray,
    front: np.ndarray,
    rng: np.random.Generator,
    n_tex: int = 80,
) -> tuple[np.ndarray, np.ndarray]:
    """Albedo mean ``[V, 3]`` and basis ``[V, 3, n_tex]`` from region labels.

    Args:
        xy: ``[V, 2]`` frontal coordinates (dm, model space).
        labels: ``[V]`` CelebAMask-HQ labels.
        eye_centres: ``[2, 2]`` iris centres (x, y) of the two eyes.
        front: ``[V]`` in [0, 1], how much a vertex faces the front (weights random fields).
        rng: generator of the random smooth modes.
    """
    mean = np.tile(np.array(SKIN), (len(labels), 1))
    for label, colour in REGION_COLOURS.items():
        mean[labels == label] = colour
    eyes = np.isin(labels, [L["l_eye"], L["r_eye"]])
    r = np.min(np.linalg.norm(xy[:, None, :] - eye_centres[None], axis=-1), axis=1)
    iris, pupil = eyes & (r < IRIS_RADIUS), eyes & (r < PUPIL_RADIUS)
    mean[iris], mean[pupil] = IRIS, PUPIL
    ax, y = np.abs(xy[:, 0]), xy[:, 1]
    skin = (labels == L["skin"]).astype(float)
    cheeks = np.exp(-0.5 * (((ax - 0.42) / 0.12) ** 2 + ((y + 0.05) / 0.1) ** 2)) * front * skin
    mean += 0.05 * cheeks[:, None] * np.array([1.0, -0.3, -0.2])
    skinlike = np.isin(labels, [L["skin"], L["nose"], L["neck"], L["l_ear"], L["r_ear"]]).astype(float)
    lips = np.isin(labels, [L["u_lip"], L["l_lip"]]).astype(float)
    brows = np.isin(labels, [L["l_brow"], L["r_brow"]]).astype(float)
    iris_only = (iris & ~pupil).astype(float)
    named = [
        skinlike[:, None] * np.array([-0.085, -0.085, -0.08]) + lips[:, None] * np.array([-0.06, -0.05, -0.05]),
        skinlike[:, None] * np.array([0.035, -0.01, -0.01]),
        skinlike[:, None] * np.array([0.01, 0.02, -0.03]),
        lips[:, None] * np.array([0.06, -0.03, -0.01]),
        brows[:, None] * np.array([-0.07, -0.06, -0.05]),
        iris_only[:, None] * np.array([0.08, 0.05, -0.02]),
        iris_only[:, None] * np.array([-0.06, 0.02, 0.10]),
        cheeks[:, None] * np.array([0.05, -0.01, -0.01]),
    ]
    basis = np.zeros((len(labels), 3, n_tex))
    k0 = min(len(named), n_tex)
    basis[:, :, :k0] = np.stack(named[:k0], axis=-1)
    for k in range(k0, n_tex):
        colour = rng.normal(size=3)
        field = smooth_blobs(xy, front, rng, 2, (0.08, 0.3), mirrored=False)
        basis[:, :, k] = 0.02 * 0.96 ** (k - k0) * field[:, None] * (colour / np.linalg.norm(colour))
    return mean, basis
