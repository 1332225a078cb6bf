"""Evaluation of the coarse 3D stage (paper §3.3): 3D shape error, landmarks, colour, identity.

All per-sample functions return ``[B]`` so a split can be summarised overall and by subset
(with / without glasses, :class:`ReconstructionMetrics`).

- **3D error**: mean Euclidean distance between corresponding vertices of the predicted and the
  ground-truth mesh (same topology) after aligning the prediction to the truth by a rigid
  (rotation + translation) or a similarity (+ uniform scale) transform, least squares
  (Umeyama 1991). Model units (decimetres, ``CONVENTIONS.md``) times ``mm_per_unit`` gives mm.
- **Landmark NME**: :func:`occrecon.metrics.landmarks.nme_per_image` normalised by the
  inter-ocular distance of the ground truth.
- **Photometric error**: mean L2 RGB distance (``[0, 1]`` units) inside an evaluation mask.
- **Identity cosine**: cosine between predicted and ground-truth identity coefficients ``α_id``;
  ``id_cosine_visible`` restricts it to the modes an image can show (:func:`visible_modes`: those
  that move the face region by more than ``0.4 mm`` RMS per σ).
- **Baselines and floors** (:func:`shape_errors`): the mean face (zero identity and expression)
  scored like a prediction, and the *size floor*: the ground truth rescaled to the mean face's RMS
  size, rigid-aligned. One image does not show the face's overall size (the Eq. 7 scale ``f``
  absorbs it), so a rigid error below the size floor is not expected; the similarity-aligned error
  is the one that measures shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from occrecon.errors import ConfigError
from occrecon.metrics.landmarks import inter_ocular_distance, nme_per_image
from occrecon.utils.checks import check_shape

ALIGNMENTS = ("none", "rigid", "similarity")


def umeyama(
    src: torch.Tensor, dst: torch.Tensor, scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares transform ``dst ~ s R src + t`` (Umeyama 1991, proper rotations only).

    Args:
        src, dst: ``[B, N, 3]`` corresponding points.
        scale: estimate ``s`` (similarity); else ``s = 1`` (rigid).

    Returns:
        ``s [B]``, ``R [B, 3, 3]`` (det +1), ``t [B, 3]``.
    """
    check_shape(src, ["B", "N", 3], "src")
    check_shape(dst, list(src.shape), "dst")
    # float64: the SVD of a near-degenerate covariance in float32 loses the small singular values
    src64, dst64 = src.double(), dst.double()
    mu_s, mu_d = src64.mean(1, keepdim=True), dst64.mean(1, keepdim=True)
    xs, xd = src64 - mu_s, dst64 - mu_d
    cov = xd.transpose(1, 2) @ xs / src.shape[1]  # [B, 3, 3] = E[(dst - mu_d)(src - mu_s)^T]
    u, sig, vh = torch.linalg.svd(cov)
    # flip the last axis when U V^T is a reflection, so R is a rotation (Umeyama's S matrix)
    d = torch.ones_like(sig)
    d[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    rot = u @ torch.diag_embed(d) @ vh
    if scale:
        var_s = (xs * xs).sum(dim=(1, 2)) / src.shape[1]
        s = (sig * d).sum(1) / var_s.clamp_min(1e-30)
    else:
        s = torch.ones(src.shape[0], dtype=torch.float64, device=src.device)
    t = mu_d.squeeze(1) - s[:, None] * (rot @ mu_s.transpose(1, 2)).squeeze(2)
    return s.to(src.dtype), rot.to(src.dtype), t.to(src.dtype)


def align_to(src: torch.Tensor, dst: torch.Tensor, mode: str = "rigid") -> torch.Tensor:
    """``src [B, N, 3]`` moved onto ``dst [B, N, 3]`` by the best ``mode`` transform (see :data:`ALIGNMENTS`)."""
    if mode not in ALIGNMENTS:
        raise ConfigError(f"3D error alignment: expected one of {ALIGNMENTS}, got {mode!r}")
    if mode == "none":
        return src
    s, rot, t = umeyama(src, dst, scale=mode == "similarity")
    return s[:, None, None] * src @ rot.transpose(1, 2) + t[:, None, :]


def vertex_error(
    pred: torch.Tensor, gt: torch.Tensor, mode: str = "rigid", vertex_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean per-vertex 3D distance ``[B]`` after aligning ``pred`` to ``gt`` (both ``[B, V, 3]``).

    ``vertex_mask`` (``[V]`` bool) restricts alignment and error to a vertex subset (e.g. the
    face region of the model); units are those of the inputs.
    """
    check_shape(pred, ["B", "V", 3], "pred")
    check_shape(gt, list(pred.shape), "gt")
    if vertex_mask is not None:
        check_shape(vertex_mask, [pred.shape[1]], "vertex_mask")
        pred, gt = pred[:, vertex_mask], gt[:, vertex_mask]
    return (align_to(pred, gt, mode) - gt).norm(dim=-1).mean(dim=1)


def landmark_nme(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` inter-ocular NME of projected landmarks ``pred`` vs ``gt`` (``[B, 68, 2]`` pixels)."""
    return nme_per_image(pred, gt, inter_ocular_distance(gt).clamp_min(1e-6), visible)


def photometric_error(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` mean L2 RGB distance inside ``mask``; ``rendered``, ``target`` ``[B, 3, H, W]``, ``mask`` ``[B, 1, H, W]``.

    A sample with an empty mask gets NaN (no pixel to compare), which summaries skip.
    """
    check_shape(rendered, ["B", 3, "H", "W"], "rendered")
    check_shape(target, list(rendered.shape), "target")
    check_shape(mask, [rendered.shape[0], 1, *rendered.shape[2:]], "mask")
    dist = (rendered - target).norm(dim=1, keepdim=True)
    area = mask.sum(dim=(1, 2, 3))
    total = (dist * mask).sum(dim=(1, 2, 3))
    return torch.where(area > 0, total / area.clamp_min(1.0), torch.full_like(area, float("nan")))


def coefficient_cosine(pred: torch.Tensor, gt: torch.Tensor, modes: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` cosine similarity of coefficient vectors ``[B, K]`` (e.g. ``α_id``), over the
    modes where ``modes`` (``[K]`` bool) is true when given."""
    check_shape(pred, ["B", "K"], "pred")
    check_shape(gt, list(pred.shape), "gt")
    if modes is not None:
        check_shape(modes, [pred.shape[1]], "modes")
        pred, gt = pred[:, modes], gt[:, modes]
    return F.cosine_similarity(pred, gt, dim=1, eps=1e-8)


VISIBLE_MODE_MM = 0.4
"""Threshold of :func:`visible_modes`: RMS displacement of the face region per σ, in mm."""


def mode_displacement(basis: torch.Tensor, vertex_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[K]`` RMS over the (masked) vertices of each mode's displacement per σ.

    Args:
        basis: ``[V, 3, K]`` σ-scaled basis (``MorphableModel.id_basis``), model units.
        vertex_mask: ``[V]`` bool, e.g. ``face_mask`` (default: every vertex).
    """
    check_shape(basis, ["V", 3, "K"], "basis")
    if vertex_mask is not None:
        check_shape(vertex_mask, [basis.shape[0]], "vertex_mask")
        basis = basis[vertex_mask]
    return basis.pow(2).sum(dim=1).mean(dim=0).sqrt()


def visible_modes(
    basis: torch.Tensor, vertex_mask: torch.Tensor | None, mm_per_unit: float, threshold_mm: float = VISIBLE_MODE_MM
) -> torch.Tensor:
    """``[K]`` bool: modes whose RMS displacement of the face region exceeds ``threshold_mm`` per σ."""
    return mode_displacement(basis, vertex_mask) * mm_per_unit > threshold_mm


def rms_size(vertices: torch.Tensor) -> torch.Tensor:
    """``[B]`` RMS distance of the vertices ``[B, N, 3]`` from their centroid."""
    check_shape(vertices, ["B", "N", 3], "vertices")
    centred = vertices - vertices.mean(dim=1, keepdim=True)
    return centred.pow(2).sum(-1).mean(-1).sqrt()


def shape_errors(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mean: torch.Tensor,
    vertex_mask: torch.Tensor | None = None,
    mm_per_unit: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-sample 3D errors ``[B]`` of a prediction, of the mean face, and the rigid size floor.

    Args:
        pred, gt: ``[B, V, 3]`` predicted and true meshes (same topology, model units).
        mean: ``[V, 3]`` mean face (the baseline that knows nothing about the image).
        vertex_mask: ``[V]`` bool region scored (e.g. ``face_mask``).
        mm_per_unit: model units -> mm.

    Returns:
        ``error``/``error_sim`` (model units), ``error_mm``/``error_sim_mm`` (rigid / similarity
        aligned), ``mean_face_error_mm``/``mean_face_error_sim_mm``, ``size_floor_mm`` (the truth
        scaled about its centroid to the mean face's RMS size, rigid-aligned to the truth).
    """
    check_shape(mean, [pred.shape[1], 3], "mean")
    base = mean.to(pred).expand_as(pred)
    region = (lambda v: v) if vertex_mask is None else (lambda v: v[:, vertex_mask])
    g = region(gt)
    centre = g.mean(dim=1, keepdim=True)
    resized = centre + (g - centre) * (rms_size(region(base)) / rms_size(g).clamp_min(1e-12))[:, None, None]
    out = {
        "error": vertex_error(pred, gt, "rigid", vertex_mask),
        "error_sim": vertex_error(pred, gt, "similarity", vertex_mask),
        "mean_face_error_mm": vertex_error(base, gt, "rigid", vertex_mask) * mm_per_unit,
        "mean_face_error_sim_mm": vertex_error(base, gt, "similarity", vertex_mask) * mm_per_unit,
        "size_floor_mm": vertex_error(resized, g, "rigid") * mm_per_unit,
    }
    out["error_mm"], out["error_sim_mm"] = out["error"] * mm_per_unit, out["error_sim"] * mm_per_unit
    return out


class ReconstructionMetrics(Metric):
    """Per-sample reconstruction metrics over a split, summarised overall and by glasses.

    ``update(values, glasses)``: ``values`` maps a metric name to ``[B]`` per-sample values (NaN =
    not available for that sample), ``glasses`` is ``[B]`` bool (None: no split). ``compute()``
    returns ``{name: mean, name_glasses: mean, name_no_glasses: mean}`` (NaN-skipping means; a
    subset without samples is NaN) plus ``count``, ``count_glasses``, ``count_no_glasses``.
    """

    full_state_update = False

    def __init__(self, names: tuple[str, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = tuple(names)
        for name in self.names:
            self.add_state(f"v_{name}", default=[], dist_reduce_fx="cat")
        self.add_state("glasses", default=[], dist_reduce_fx="cat")

    def update(self, values: dict[str, torch.Tensor], glasses: torch.Tensor | None = None) -> None:
        batch = next(iter(values.values())).shape[0]
        flags = torch.full((batch,), -1.0) if glasses is None else glasses.float()
        self.glasses.append(flags.to(self.device))
        for name in self.names:
            value = values.get(name)
            value = torch.full((batch,), float("nan"), device=self.device) if value is None else value
            getattr(self, f"v_{name}").append(value.detach().float().to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        flags = dim_zero_cat(self.glasses)
        subsets = {"": torch.ones_like(flags, dtype=torch.bool), "_glasses": flags == 1, "_no_glasses": flags == 0}
        out: dict[str, torch.Tensor] = {}
        for suffix, keep in subsets.items():
            out[f"count{suffix}"] = keep.sum().float()
        for name in self.names:
            values = dim_zero_cat(getattr(self, f"v_{name}"))
            for suffix, keep in subsets.items():
                out[f"{name}{suffix}"] = values[keep].nanmean() if bool(keep.any()) else values.new_tensor(float("nan"))
        return out
