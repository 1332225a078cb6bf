"""Fusion of the parsing map ``M_fa`` and the edge-lines map ``M_edge`` into ``M_fin`` (paper §3, Fig. 1).

The paper defers to "Zhao et al.'s Algorithm", its reference [42]: Zhao & Qi, "Generative face
parsing map guided 3D face reconstruction under occluded scenes", CGI 2021. That algorithm is not
available to us (no code or detailed description we could obtain); what follows is occrecon's own
design.
``M_fa`` labels occluders (glasses as ``eye_g``, hands as background) but cannot see the parts under
them; ``M_edge`` was trained to keep predicting the facial lines through occluders. So:

1. **Face hull** — convex hull of the pixels ``M_fa`` labels as a face part (skin, brows, eyes,
   nose, lips, mouth, glasses) together with the ridge points of every edge line (step 3),
   so a hand hiding the chin still lies inside the hull; shrunk by 2 pixels, since the hull of a
   rasterised face touches background pixels along its rim.
2. **Occluder mask** ``O`` — pixels labelled as an occluder (``eye_g``) plus pixels of a
   non-face label (background, hat, cloth, necklace, earring) inside the face hull.
3. **Part shapes from the lines** — each line heatmap (upsampled to the map size) is reduced to a
   ridge curve: per column, the row of maximal response where it reaches ``tau`` (the nose bridge:
   per row, the column). Then: an eye is the region between its upper and lower eyelid curves;
   the inner mouth lies between the inner lip lines, the upper lip between the outer and inner
   upper lines, the lower lip between the inner and outer lower lines (where the inner lines are
   missing the outer pair is split at its midpoint); a brow is the band of the brow thickness
   below its brow line (300W brow points trace the upper brow edge; the thickness is measured
   from the visible part of that brow, else the mirrored brow, else 0.2 x the brow's length); the
   nose is the convex hull of the bridge and nose-bottom curves. Sides: the line names follow the
   iBUG landmarks (image side: ``l_eye_upper`` is the eye on the image's left) while CelebAMask-HQ
   labels name the subject's side, so ``l_eye`` grows from the ``r_eye_*`` lines
   (:func:`occrecon.labels.image_side`; Helen's viewer-side labels map straight).
4. **Relabelling** — ``M_fin = M_fa`` outside ``O``. Inside ``O`` and the hull a pixel takes the
   first part whose re-grown region contains it (priority eyes, brows, inner mouth, lips, nose),
   else skin. Occluded pixels outside the hull (a glasses temple over the hair) take the label of
   the nearest non-occluded pixel.

Given 68 landmarks (e.g. the edge-lines net's read-out) instead, the lines are rendered from them
at full resolution (:func:`occrecon.landmarks.edge_line_heatmaps`) and used the same way.

Baselines: :func:`fuse_skin` (occluded -> skin) and :func:`fuse_nearest` (each occluded pixel
takes the label of the nearest non-occluded face pixel). :func:`occluded_miou` compares them.
All functions take ``[B, H, W]`` int64 label maps in the label space given by ``classes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from occrecon.errors import ShapeError
from occrecon.labels import CELEBAMASK_CLASSES, image_side
from occrecon.landmarks import EDGE_LINE_NAMES, NUM_EDGE_LINES, edge_line_heatmaps
from occrecon.utils.checks import check_shape

FACE_PART_NAMES: tuple[str, ...] = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")
OCCLUDER_NAMES: tuple[str, ...] = ("eye_g",)
NON_FACE_NAMES: tuple[str, ...] = ("background", "hat", "cloth", "neck_l", "ear_r")
_LINE = {name: i for i, name in enumerate(EDGE_LINE_NAMES)}


def _ids(classes: Sequence[str], names: Sequence[str]) -> list[int]:
    return [classes.index(n) for n in names if n in classes]


def _fill_convex(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of the convex hull of ``points`` ``[K, 2]`` given as pixel indices ``(col, row)``."""
    mask = np.zeros(shape, np.uint8)
    if len(points) >= 3:
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def _upsampled(heatmaps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(heatmaps.float(), size=size, mode="bilinear", align_corners=False).cpu().numpy()


def face_hull(parsing: np.ndarray, heat: np.ndarray | None, classes: Sequence[str], tau: float) -> np.ndarray:
    """``[H, W]`` bool hull of face-part / glasses pixels and edge-line pixels (``heat``: ``[L, H, W]``)."""
    rows, cols = np.nonzero(np.isin(parsing, _ids(classes, FACE_PART_NAMES + OCCLUDER_NAMES)))
    points = [np.stack([cols, rows], 1).astype(float)]
    for channel in [] if heat is None else heat:
        # ridge points, not the whole >= tau band: the band spills ~1.2 sigma beyond the face contour
        y_of_x, x_of_y = ridge(channel, tau), ridge(channel, tau, along_rows=True)
        cx, ry = np.nonzero(~np.isnan(y_of_x))[0], np.nonzero(~np.isnan(x_of_y))[0]
        points += [np.stack([cx, y_of_x[cx] - 0.5], 1), np.stack([x_of_y[ry] - 0.5, ry], 1)]
    hull = _fill_convex(np.concatenate(points), parsing.shape).astype(np.uint8)
    # shrink by 2 px: the hull of a rasterised convex face touches background pixels on its rim
    return cv2.erode(hull, np.ones((5, 5), np.uint8)).astype(bool)


def occluder_mask(
    parsing: torch.Tensor,
    heatmaps: torch.Tensor | None = None,
    classes: Sequence[str] = CELEBAMASK_CLASSES,
    tau: float = 0.5,
) -> torch.Tensor:
    """Occluder mask ``O`` (step 2 of the module docstring).

    Args:
        parsing: ``[B, H, W]`` ``M_fa`` labels.
        heatmaps: ``[B, 13, h, w]`` ``M_edge`` (optional; widens the face hull).

    Returns:
        ``[B, 1, H, W]`` float mask in ``{0, 1}``.
    """
    check_shape(parsing, ["B", "H", "W"], "parsing")
    size = tuple(parsing.shape[-2:])
    heat = None if heatmaps is None else _upsampled(heatmaps, size)
    labels = parsing.cpu().numpy()
    masks = []
    for b in range(labels.shape[0]):
        hull = face_hull(labels[b], None if heat is None else heat[b], classes, tau)
        occ = np.isin(labels[b], _ids(classes, OCCLUDER_NAMES)) | (
            hull & np.isin(labels[b], _ids(classes, NON_FACE_NAMES))
        )
        masks.append(occ)
    return torch.from_numpy(np.stack(masks)).to(parsing.device).float().unsqueeze(1)


def ridge(heat: np.ndarray, tau: float, along_rows: bool = False) -> np.ndarray:
    """Ridge of one line heatmap ``[H, W]``: per column the row centre of the maximum (``[W]``), NaN below ``tau``.

    ``along_rows=True`` gives per row the column centre (``[H]``), for near-vertical lines.
    """
    h = heat.T if along_rows else heat
    pos = h.argmax(0) + 0.5
    return np.where(h.max(0) >= tau, pos, np.nan)


def _between(top: np.ndarray, bottom: np.ndarray, height: int) -> np.ndarray:
    """``[H, W]`` pixels whose centre lies between two per-column curves (NaN columns excluded)."""
    lo, hi = np.fmin(top, bottom), np.fmax(top, bottom)
    yc = np.arange(height)[:, None] + 0.5
    with np.errstate(invalid="ignore"):
        return (yc >= lo[None]) & (yc <= hi[None])


def _brow_thickness(parsing: np.ndarray, occluded: np.ndarray, label: int, mirror: int, line: np.ndarray) -> float:
    for lab in (label, mirror):
        visible = (parsing == lab) & ~occluded
        counts = visible.sum(0)
        if counts.any():
            return float(np.median(counts[counts > 0]))
    cols = np.nonzero(~np.isnan(line))[0]
    return 0.2 * float(cols.max() - cols.min() + 1) if len(cols) else 0.0


def part_regions(
    heat: np.ndarray, parsing: np.ndarray, occluded: np.ndarray, classes: Sequence[str], tau: float
) -> list[tuple[int, np.ndarray]]:
    """Re-grown part regions (step 3) as ``(label, [H, W] bool)`` in priority order.

    Args:
        heat: ``[13, H, W]`` line heatmaps at the map size.
        parsing, occluded: ``[H, W]`` ``M_fa`` labels and occluder mask (for the brow thickness).
    """
    height = heat.shape[1]
    r = {name: ridge(heat[i], tau) for name, i in _LINE.items()}
    label = {n: classes.index(n) for n in FACE_PART_NAMES if n in classes}
    line_side = image_side(classes)  # label prefix -> image side of the (image-side) line names
    regions: list[tuple[int, np.ndarray]] = []
    for side in ("l", "r"):
        if f"{side}_eye" in label:
            upper, lower = r[f"{line_side[side]}_eye_upper"], r[f"{line_side[side]}_eye_lower"]
            regions.append((label[f"{side}_eye"], _between(upper, lower, height)))
    for side, other in (("l", "r"), ("r", "l")):
        if f"{side}_brow" in label:
            line = r[f"{line_side[side]}_brow"]
            t = _brow_thickness(parsing, occluded, label[f"{side}_brow"], label.get(f"{other}_brow", -1), line)
            regions.append((label[f"{side}_brow"], _between(line, line + t, height)))
    uo, ui, li, lo = r["upper_lip_outer"], r["upper_lip_inner"], r["lower_lip_inner"], r["lower_lip_outer"]
    middle = (uo + lo) / 2
    if "mouth" in label:
        regions.append((label["mouth"], _between(ui, li, height)))
    if "u_lip" in label:
        regions.append((label["u_lip"], _between(uo, np.where(np.isnan(ui), middle, ui), height)))
    if "l_lip" in label:
        regions.append((label["l_lip"], _between(np.where(np.isnan(li), middle, li), lo, height)))
    if "nose" in label:
        bridge_x = ridge(heat[_LINE["nose_bridge"]], tau, along_rows=True)
        bottom_y = r["nose_bottom"]
        rows, cols = np.nonzero(~np.isnan(bridge_x))[0], np.nonzero(~np.isnan(bottom_y))[0]
        points = (
            np.concatenate([np.stack([bridge_x[rows], rows + 0.5], 1), np.stack([cols + 0.5, bottom_y[cols]], 1)]) - 0.5
        )
        regions.append((label["nose"], _fill_convex(points, parsing.shape)))
    return regions


def _nearest_fill(labels: np.ndarray, fill: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Copy into ``fill`` pixels the label of the nearest ``sources`` pixel (EDT with indices)."""
    if not sources.any():
        return labels
    _, (ri, ci) = distance_transform_edt(~sources, return_indices=True)
    out = labels.copy()
    out[fill] = labels[ri[fill], ci[fill]]
    return out


def fuse_parsing(
    parsing: torch.Tensor,
    heatmaps: torch.Tensor | None = None,
    landmarks: torch.Tensor | None = None,
    occluders: torch.Tensor | None = None,
    classes: Sequence[str] = CELEBAMASK_CLASSES,
    tau: float = 0.5,
    landmark_sigma: float = 2.0,
) -> torch.Tensor:
    """``M_fin`` from ``M_fa`` and ``M_edge`` (algorithm in the module docstring).

    Args:
        parsing: ``[B, H, W]`` int64 ``M_fa``.
        heatmaps: ``[B, 13, h, w]`` ``M_edge`` at any resolution (bilinearly resized to ``H, W``).
        landmarks: ``[B, 68, 2]`` image-pixel landmarks; used instead of ``heatmaps`` when given
            (lines rendered at ``H, W`` with ``landmark_sigma`` pixels).
        occluders: ``[B, 1, H, W]`` mask; default :func:`occluder_mask`.
        tau: heatmap level of a line pixel.

    Returns:
        ``[B, H, W]`` int64 ``M_fin``.
    """
    check_shape(parsing, ["B", "H", "W"], "parsing")
    size = tuple(parsing.shape[-2:])
    if landmarks is not None:
        heatmaps = edge_line_heatmaps(landmarks.float(), size, landmark_sigma)
    if heatmaps is None:
        raise ShapeError("heatmaps (or landmarks)", "[B, 13, h, w] M_edge (or landmarks [B, 68, 2])", ())
    check_shape(heatmaps, [parsing.shape[0], NUM_EDGE_LINES, "h", "w"], "heatmaps")
    if occluders is None:
        occluders = occluder_mask(parsing, heatmaps, classes, tau)
    heat = _upsampled(heatmaps, size)
    labels, occ = parsing.cpu().numpy(), occluders[:, 0].cpu().numpy() > 0.5
    skin = classes.index("skin")
    out = []
    for b in range(labels.shape[0]):
        hull = face_hull(labels[b], heat[b], classes, tau)
        inside, outside = occ[b] & hull, occ[b] & ~hull
        fused = _nearest_fill(labels[b], outside, ~occ[b])
        fused[inside] = skin
        for lab, region in reversed(part_regions(heat[b], labels[b], occ[b], classes, tau)):
            fused[inside & region] = lab  # reversed: earlier (higher-priority) parts are written last
        out.append(fused)
    return torch.from_numpy(np.stack(out)).to(parsing.device)


def fuse_skin(
    parsing: torch.Tensor, occluders: torch.Tensor, classes: Sequence[str] = CELEBAMASK_CLASSES
) -> torch.Tensor:
    """Baseline (a): every occluded pixel becomes skin. ``[B, H, W]``, ``[B, 1, H, W]`` -> ``[B, H, W]``."""
    return parsing.masked_fill(occluders[:, 0] > 0.5, classes.index("skin"))


def fuse_nearest(
    parsing: torch.Tensor, occluders: torch.Tensor, classes: Sequence[str] = CELEBAMASK_CLASSES
) -> torch.Tensor:
    """Baseline (b): each occluded pixel takes the label of the nearest non-occluded face-part pixel."""
    labels, occ = parsing.cpu().numpy(), occluders[:, 0].cpu().numpy() > 0.5
    face = np.isin(labels, _ids(classes, FACE_PART_NAMES))
    out = [_nearest_fill(labels[b], occ[b], face[b] & ~occ[b]) for b in range(labels.shape[0])]
    return torch.from_numpy(np.stack(out)).to(parsing.device)


def occluded_miou(pred: torch.Tensor, gt: torch.Tensor, occluder_mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """mIoU of ``pred`` vs ``gt`` over the pixels of ``occluder_mask`` only.

    Args:
        pred, gt: ``[B, H, W]`` int64; occluder_mask: ``[B, 1, H, W]`` or ``[B, H, W]``.

    Returns:
        scalar: mean IoU over the classes present (in ``gt`` or ``pred``) inside the mask; NaN for an empty mask.
    """
    mask = occluder_mask.reshape(gt.shape) > 0.5
    p, g = pred[mask], gt[mask]
    confmat = (
        torch.bincount(g * num_classes + p, minlength=num_classes * num_classes)
        .reshape(num_classes, num_classes)
        .double()
    )
    tp = confmat.diag()
    union = confmat.sum(0) + confmat.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean() if present.any() else torch.tensor(torch.nan, dtype=torch.float64)
