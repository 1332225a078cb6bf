"""Mid-level facial detail for the synthetic data set: a displacement field along the normals.

The detailed shape of a sample is the coarse model surface moved along its normal by a scalar
height ``h(u)`` (decimetres, + = out of the face) that depends on the identity (wrinkle depth,
spacing, phase — an "age" code) and on the expression (each wrinkle group is activated by a fixed
projection of the expression coefficients). ``u`` is the canonical position of the surface point:
the mean shape of the face model, interpolated per pixel, so wrinkles stay attached to the same
anatomical place whatever the identity, expression and pose.

The displacement is evaluated per pixel (displacement/bump mapping) instead of per vertex, so the
wrinkles are finer than the mesh. The detailed depth along the line of sight is, for a locally
planar surface moved by ``h`` along its unit normal ``n``, ``d' = d - h / |n . r|`` with ``r`` the
unit viewing ray (see :func:`detailed_depth`); the bump map of the paper's Eq. 5 is
``Phi = phi(d' - d)`` with the encoding ``phi`` of ``CONVENTIONS.md`` (:func:`encode_bump`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from occrecon.utils.checks import check_shape

DEFAULT_BUMP_RANGE = 0.04
"""Default ``bump_range`` (decimetres = 4 mm): ``|d' - d|`` beyond it saturates the uint8 code."""


def encode_bump(offset: torch.Tensor | np.ndarray, bump_range: float) -> np.ndarray:
    """The encoding ``phi`` of Eq. 5: ``clip(round(127.5 + x / bump_range * 127.5), 0, 255)``.

    Args:
        offset: ``[*]`` depth offsets ``d' - d`` in model units (0 where the face does not project).
        bump_range: offset that maps to 255 (``-bump_range`` maps to 0).

    Returns:
        ``[*]`` uint8 codes; ``phi(0) = 128`` (halves round up).
    """
    x = offset.detach().cpu().numpy() if isinstance(offset, torch.Tensor) else np.asarray(offset)
    # floor(v + 0.5) instead of np.round: numpy rounds half to even, which would put phi(0) at 128
    # on some inputs and 127 on others; floor(+0.5) is the usual "round half up" and deterministic.
    code = np.floor(127.5 + x.astype(np.float64) / bump_range * 127.5 + 0.5)
    return np.clip(code, 0, 255).astype(np.uint8)


def decode_bump(code: torch.Tensor | np.ndarray, bump_range: float) -> np.ndarray:
    """``phi^{-1}``: uint8 code ``[*]`` -> depth offset ``[*]`` (float32, model units).

    ``d'(b) = d(b) + phi^{-1}(Phi(b))`` (Eq. 5); the round trip error is at most
    ``bump_range / 255`` inside ``[-bump_range, bump_range]``.
    """
    c = code.detach().cpu().numpy() if isinstance(code, torch.Tensor) else np.asarray(code)
    return ((c.astype(np.float32) - 127.5) / 127.5 * bump_range).astype(np.float32)


@dataclass(frozen=True)
class DetailParams:
    """Per-sample wrinkle parameters (all amplitudes in decimetres, >= 0).

    ``forehead``, ``crows``, ``frown``, ``nasolabial``: depth of each wrinkle group (identity
    depth x expression activation); ``spacing``: forehead wrinkle period; ``phase``: forehead
    phase; ``waviness``: forehead wrinkle bending; ``pores``: fine skin relief amplitude;
    ``pore_freq`` ``[K, 3]`` / ``pore_phase`` ``[K]``: the relief's plane waves (cycles per dm).
    """

    forehead: float
    crows: float
    frown: float
    nasolabial: float
    spacing: float
    phase: float
    waviness: float
    pores: float
    pore_freq: torch.Tensor
    pore_phase: torch.Tensor


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def sample_detail_params(identity_gen: torch.Generator, expression: torch.Tensor) -> DetailParams:
    """Draw the identity's wrinkle code and activate it with the expression coefficients.

    Args:
        identity_gen: generator of the identity (same identity => same wrinkles at rest).
        expression: ``[E]`` expression coefficients (unit Gaussian prior); a fixed projection of
            them (seeded independently of the data seed, so a given expression always wrinkles
            the same way) raises or lowers each group's depth by up to about 2x.
    """
    check_shape(expression, ["E"], "expression")
    age = _uniform(identity_gen, 0.2, 1.0)  # overall wrinkliness of this person
    depth = {k: age * _uniform(identity_gen, 0.5, 1.0) for k in ("forehead", "crows", "frown", "nasolabial")}
    proj = torch.randn(4, expression.numel(), generator=torch.Generator().manual_seed(4242))
    drive = torch.sigmoid(proj @ expression.float() / math.sqrt(expression.numel()) * 2.0) * 2.0  # (0, 2)
    pore_freq = torch.randn(6, 3, generator=identity_gen) * 8.0  # cycles per dm: above ~6 px per period at 128 px
    pore_phase = torch.rand(6, generator=identity_gen) * 2 * math.pi
    return DetailParams(
        forehead=0.007 * depth["forehead"] * float(drive[0]),
        crows=0.006 * depth["crows"] * float(drive[1]),
        frown=0.008 * depth["frown"] * float(drive[2]),
        nasolabial=0.016 * depth["nasolabial"] * (0.5 + 0.5 * float(drive[3])),
        spacing=_uniform(identity_gen, 0.07, 0.11),
        phase=_uniform(identity_gen, 0.0, 2 * math.pi),
        waviness=_uniform(identity_gen, 0.0, 0.03),
        pores=0.0008 * age,
        pore_freq=pore_freq,
        pore_phase=pore_phase,
    )


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-0.5 * (x / sigma) ** 2)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance ``[P]`` from points ``p`` ``[P, 2]`` to the segment ``a``-``b`` (``[2]`` each)."""
    ab = b - a
    t = (((p - a) @ ab) / (ab @ ab).clamp_min(1e-12)).clamp(0.0, 1.0)
    return (p - a - t[:, None] * ab).norm(dim=-1)


def displacement(canonical: torch.Tensor, anchors: torch.Tensor, params: DetailParams) -> torch.Tensor:
    """Height of the detailed surface above the coarse one, ``h(u)``.

    Args:
        canonical: ``[P, 3]`` canonical (mean-shape) model-space positions ``u``, decimetres.
        anchors: ``[68, 3]`` the mean shape's landmark positions (iBUG order), which place the
            wrinkle groups on any face model.
        params: the sample's :class:`DetailParams`.

    Returns:
        ``[P]`` heights in decimetres (negative = a furrow). Differentiable in ``canonical``.
    """
    check_shape(canonical, ["P", 3], "canonical")
    check_shape(anchors, [68, 3], "anchors")
    x, y = canonical[:, 0], canonical[:, 1]
    xy = canonical[:, :2]
    eye_l, eye_r = anchors[36:42, :2].mean(0), anchors[42:48, :2].mean(0)
    iod = (eye_r - eye_l).norm()  # inter-ocular distance scales every group
    brow_y = anchors[17:27, 1].max()
    mid_x = 0.5 * (eye_l[0] + eye_r[0])

    # forehead: horizontal furrows above the brows, slightly wavy, fading towards the temples
    band = torch.sigmoid((y - brow_y - 0.1 * iod) / (0.05 * iod)) * _gauss(y - brow_y - 0.55 * iod, 0.35 * iod)
    band = band * _gauss(x - mid_x, 0.9 * iod)
    wave = y + params.waviness * torch.sin(2 * math.pi * x / (0.8 * iod))
    h = -params.forehead * band * torch.sin(2 * math.pi * wave / params.spacing + params.phase).clamp_min(0) ** 2

    # frown lines: two short vertical furrows between the brows
    inner = 0.18 * iod
    for sign in (-1.0, 1.0):
        h = h - params.frown * _gauss(x - mid_x - sign * inner, 0.025 * iod) * _gauss(
            y - brow_y + 0.02 * iod, 0.12 * iod
        )

    # crow's feet: radial furrows fanning out of each outer eye corner
    for corner, outward in ((anchors[36, :2], -1.0), (anchors[45, :2], 1.0)):
        rel = xy - corner
        radius = rel.norm(dim=-1)
        angle = torch.atan2(rel[:, 1], outward * rel[:, 0] + 1e-9)
        fan = _gauss(angle, 0.6) * _gauss(radius - 0.18 * iod, 0.1 * iod) * (outward * rel[:, 0] > 0).float()
        h = h - params.crows * fan * torch.cos(angle * 9.0).clamp_min(0) ** 2

    # nasolabial folds: nose wing to a point beside the mouth corner
    for wing, mouth, side in ((anchors[31, :2], anchors[48, :2], -1.0), (anchors[35, :2], anchors[54, :2], 1.0)):
        start = wing + torch.stack([side * 0.1 * iod, 0.0 * iod])
        end = mouth + torch.stack([side * 0.12 * iod, -0.1 * iod])
        h = h - params.nasolabial * _gauss(_segment_distance(xy, start, end), 0.05 * iod)

    # fine relief everywhere (pores, uneven skin)
    waves = torch.sin(canonical @ params.pore_freq.to(canonical).T * 2 * math.pi + params.pore_phase.to(canonical))
    return h + params.pores * waves.mean(dim=-1)


def detailed_normals(
    canonical: torch.Tensor, normals: torch.Tensor, anchors: torch.Tensor, params: DetailParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Height and perturbed normals of the detailed surface (bump mapping).

    For ``S' = S + h n`` the normal tilts against the tangential gradient of ``h``:
    ``n' = normalize(n - (g - (g . n) n))`` with ``g = dh/du`` (autograd).

    Args:
        canonical: ``[P, 3]`` canonical positions ``u``.
        normals: ``[P, 3]`` unit normals of the coarse surface (model space).
        anchors: ``[68, 3]`` canonical landmark positions.
        params: the sample's detail parameters.

    Returns:
        ``h`` ``[P]`` and ``n'`` ``[P, 3]`` (model space, unit length).
    """
    check_shape(normals, ["P", 3], "normals")
    with torch.enable_grad():
        u = canonical.detach().clone().requires_grad_(True)
        h = displacement(u, anchors, params)
        (grad,) = torch.autograd.grad(h.sum(), u)
    tangential = grad - (grad * normals).sum(-1, keepdim=True) * normals
    detailed = torch.nn.functional.normalize(normals - tangential, dim=-1)
    return h.detach(), detailed


def detailed_depth(
    depth: torch.Tensor, height: torch.Tensor, normals_view: torch.Tensor, rays: torch.Tensor, min_cos: float = 0.2
) -> torch.Tensor:
    """Depth ``d'`` of the detailed surface along the line of sight (paper Eq. 5's ``d'``).

    Moving a locally planar surface by ``h`` along its unit normal ``n`` moves its intersection
    with a ray of unit direction ``r`` by ``h / |n . r|`` towards the camera, so
    ``d' = d - h / max(|n . r|, min_cos)`` (the clamp keeps grazing silhouettes finite).

    Args:
        depth: ``[P]`` coarse depth ``d`` (``-z_view``).
        height: ``[P]`` displacement ``h``.
        normals_view: ``[P, 3]`` coarse unit normals in view space.
        rays: ``[P, 3]`` unit viewing rays in view space.
        min_cos: lower bound on ``|n . r|``.

    Returns:
        ``[P]`` detailed depth ``d'``.
    """
    cos = (normals_view * rays).sum(-1).abs().clamp_min(min_cos)
    return depth - height / cos
