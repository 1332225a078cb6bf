"""The NoW benchmark's protocol (Sanyal et al., CVPR 2019): scan-to-mesh error of a predicted mesh.

For one image with a predicted mesh and a ground-truth scan, each with 7 landmarks:

1. **Crop** the scan to a sphere around the face (:func:`face_crop`): centre
   ``c = n + 0.3 (b - n)`` with ``n`` the nose bottom (point 4) and ``b`` the midpoint of the inner
   eye corners (points 1, 2); radius ``1.4 (|p0 - p3| + |b - n|) / 2`` (outer eye corners 0, 3).
2. **Align** the predicted mesh to the scan by the least-squares similarity (rotation, translation,
   scale) of its 7 landmarks onto the scan's (Umeyama; proper rotations only), then **refine** by
   minimising the squared scan-to-mesh distances of the cropped scan's vertices over the same
   similarity (ICP: closest points on the mesh, Umeyama, repeat).
3. **Distances**: unsigned distance of every cropped scan vertex to the aligned mesh surface
   (closest point on a triangle, :func:`point_triangle_distance`); reported as median / mean / std.
   NoW's scans are in mm, so the numbers are mm.

The 7 landmarks, in NoW's order: outer corner of the image-left eye, its inner corner, inner corner
of the image-right eye, its outer corner, nose bottom, image-left and image-right mouth corners =
iBUG-68 points :data:`NOW_FROM_68`.

**NoW on disk** (the released archives extracted into one folder, as the official
``now_evaluation`` code reads it)::

    <root>/imagepathsvalidation.txt        "<subject>/<challenge>/<image>.jpg" per line (test: imagepathstest.txt)
    <root>/NoW_Dataset/final_release_version/iphone_pictures/<subject>/<challenge>/<image>.jpg
    <root>/NoW_Dataset/final_release_version/detected_face/<subject>/<challenge>/<image>.npy   face box
    <root>/scans/<subject>/<scan>.obj       the subject's neutral scan, mm (one per subject)
    <root>/scans_lmks_onlypp/<subject>/<scan>.pp   its 7 landmarks, MeshLab "picked points" XML

``<challenge>`` is ``multiview_neutral``, ``multiview_expressions``, ``multiview_occlusions`` or
``selfie``. Predictions (one per image) are read from ``<pred>/<subject>/<challenge>/<image>.obj``
with the 7 landmarks in ``<image>.npy`` (``[7, 3]``) or ``<image>.txt`` (7 lines "x y z"), in the
mesh's frame; the scale does not matter (step 2 estimates it).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from occrecon.errors import DataFormatError, ShapeError
from occrecon.metrics.reconstruction import umeyama

NOW_FROM_68: tuple[int, ...] = (36, 39, 42, 45, 33, 48, 54)
"""iBUG-68 indices of NoW's 7 landmarks (order of the module docstring)."""
CHALLENGES: tuple[str, ...] = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")


# -- geometry ----------------------------------------------------------------------------------------
def point_triangle_distance(points: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``[P]`` from each point ``[P, 3]`` to its triangle ``[P, 3, 3]`` (closest point
    on the solid triangle: face, edge or vertex region; Ericson, *Real-Time Collision Detection* 5.1.5)."""
    return (points - closest_point_on_triangle(points, triangles)).norm(dim=-1)


def closest_point_on_triangle(p: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Closest point ``[P, 3]`` of triangle ``tri[i]`` (``[P, 3, 3]``, corners a, b, c) to ``p[i]``."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    dot = lambda u, v: (u * v).sum(-1)  # noqa: E731
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp, cp = p - b, p - c
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    tiny = torch.finfo(p.dtype).tiny
    # interior (barycentric), then overwritten by the edge and vertex regions that apply
    denom = (va + vb + vc).clamp_min(tiny)
    out = a + ab * (vb / denom)[:, None] + ac * (vc / denom)[:, None]
    w_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp_min(tiny)
    out = torch.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[:, None], b + (c - b) * w_bc[:, None], out)
    w_ac = d2 / (d2 - d6).clamp_min(tiny)
    out = torch.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[:, None], a + ac * w_ac[:, None], out)
    w_ab = d1 / (d1 - d3).clamp_min(tiny)
    out = torch.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[:, None], a + ab * w_ab[:, None], out)
    out = torch.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)
    out = torch.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)
    out = torch.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)
    return out


def closest_points_on_mesh(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 16, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact closest points of ``points [P, 3]`` on the mesh ``(vertices [V, 3], faces [F, 3])``.

    First the ``k`` triangles with the nearest centroids; then every triangle ``j`` that could still
    be closer (``|p - c_j| - r_j`` below the best distance so far, ``c_j`` its centroid and ``r_j``
    its largest centroid-to-corner distance) is checked, so the result is exact.

    Returns ``(closest [P, 3], distance [P])`` (float64).
    """
    from scipy.spatial import cKDTree

    pts = torch.as_tensor(np.asarray(points, dtype=np.float64))
    tri = torch.as_tensor(np.asarray(vertices, dtype=np.float64)[np.asarray(faces)])  # [F, 3, 3]
    centroids = tri.mean(1)
    radii = (tri - centroids[:, None]).norm(dim=-1).max(dim=1).values
    k = min(k, tri.shape[0])
    _, idx = cKDTree(centroids.numpy()).query(pts.numpy(), k=k)
    cand = torch.as_tensor(np.asarray(idx).reshape(len(pts), k))
    flat = closest_point_on_triangle(pts.repeat_interleave(k, 0), tri[cand.reshape(-1)]).reshape(len(pts), k, 3)
    dist = (flat - pts[:, None]).norm(dim=-1)
    best_d, best = dist.min(1)
    closest = flat[torch.arange(len(pts)), best]
    # triangles beyond the points' bounding sphere grown by the largest best distance cannot win
    centre = pts.mean(0)
    reach = (pts - centre).norm(dim=-1).max() + best_d.max()
    near = torch.nonzero((centroids - centre).norm(dim=-1) - radii <= reach).flatten()
    for start in range(0, len(pts), chunk):
        p = pts[start : start + chunk]
        lower = torch.cdist(p, centroids[near]) - radii[near]  # [C, F'] lower bound of each triangle's distance
        rows, cols = torch.nonzero(lower < best_d[start : start + chunk, None] - 1e-12, as_tuple=True)
        if rows.numel() == 0:
            continue
        cols = near[cols]
        q = closest_point_on_triangle(p[rows], tri[cols])
        d = (q - p[rows]).norm(dim=-1)
        better = torch.full((len(p),), math.inf, dtype=d.dtype).scatter_reduce(0, rows, d, "amin")
        for r in torch.nonzero(better < best_d[start : start + chunk]).flatten().tolist():
            pick = (rows == r).nonzero().flatten()
            j = pick[d[pick].argmin()]
            best_d[start + r], closest[start + r] = d[j], q[j]
    return closest.numpy(), best_d.numpy()


def face_crop(scan_vertices: np.ndarray, landmarks7: np.ndarray) -> np.ndarray:
    """``[N]`` bool: scan vertices inside NoW's face sphere (module docstring, step 1)."""
    lm = np.asarray(landmarks7, dtype=np.float64)
    if lm.shape != (7, 3):
        raise ShapeError("landmarks7", "[7, 3]", lm.shape)
    nose_bottom, bridge = lm[4], (lm[1] + lm[2]) / 2.0
    centre = nose_bottom + 0.3 * (bridge - nose_bottom)
    radius = 1.4 * (np.linalg.norm(lm[0] - lm[3]) + np.linalg.norm(bridge - nose_bottom)) / 2.0
    return np.linalg.norm(np.asarray(scan_vertices) - centre, axis=1) <= radius


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    s, rot, t = umeyama(
        torch.as_tensor(src, dtype=torch.float64)[None], torch.as_tensor(dst, dtype=torch.float64)[None]
    )
    return float(s[0]), rot[0].numpy(), t[0].numpy()


def _apply(transform: tuple[float, np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    s, rot, t = transform
    return s * points @ rot.T + t


@dataclass
class NowResult:
    """Scan-to-mesh distances of one image (scan units, mm for NoW) and the alignment used."""

    distances: np.ndarray
    scale: float
    iterations: int

    @property
    def stats(self) -> dict[str, float]:
        return summary(self.distances)


def summary(distances: np.ndarray) -> dict[str, float]:
    """``median``, ``mean``, ``std`` (population) of a distance array."""
    d = np.asarray(distances, dtype=np.float64)
    return {"median": float(np.median(d)), "mean": float(d.mean()), "std": float(d.std())}


def now_errors(
    scan_vertices: np.ndarray,
    scan_landmarks: np.ndarray,
    mesh_vertices: np.ndarray,
    mesh_faces: np.ndarray,
    mesh_landmarks: np.ndarray,
    iterations: int = 20,
    tol: float = 1e-7,
) -> NowResult:
    """The protocol of the module docstring for one (scan, prediction) pair.

    Args:
        scan_vertices: ``[N, 3]`` scan vertices (mm); ``scan_landmarks`` ``[7, 3]`` on the scan.
        mesh_vertices, mesh_faces: the predicted mesh ``[V, 3]`` (any unit/frame), ``[F, 3]``.
        mesh_landmarks: ``[7, 3]`` the prediction's 7 landmarks in the mesh frame.
        iterations, tol: ICP refinement steps and the relative change of the mean squared distance
            that stops it.
    """
    scan = np.asarray(scan_vertices, dtype=np.float64)[face_crop(scan_vertices, scan_landmarks)]
    if len(scan) == 0:
        raise ShapeError("scan_vertices", "vertices inside the NoW face crop of its landmarks", np.shape(scan_vertices))
    mesh = np.asarray(mesh_vertices, dtype=np.float64)
    transform = _similarity(np.asarray(mesh_landmarks, dtype=np.float64), np.asarray(scan_landmarks, dtype=np.float64))
    previous, done = math.inf, 0
    while done < iterations:
        done += 1
        aligned = _apply(transform, mesh)
        closest, dist = closest_points_on_mesh(scan, aligned, mesh_faces)
        err = float(np.mean(dist**2))
        if previous - err <= tol * max(previous, 1e-30):
            break
        previous = err
        # the closest points in the *unaligned* mesh frame: invert the current similarity
        s, rot, t = transform
        source = ((closest - t) @ rot) / s
        transform = _similarity(source, scan)
    aligned = _apply(transform, mesh)
    _, dist = closest_points_on_mesh(scan, aligned, mesh_faces)
    return NowResult(dist, transform[0], done)


# -- files ---------------------------------------------------------------------------------------------
def read_pp(path: str | Path) -> np.ndarray:
    """The 7 ``[7, 3]`` points of a MeshLab picked-points file (``<point x= y= z= .../>``, file order)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, FileNotFoundError) as err:
        raise DataFormatError(path, "a MeshLab picked-points XML file (.pp)", got=str(err)) from None
    points = []
    for node in root.iter("point"):
        try:
            points.append([float(node.attrib[a]) for a in ("x", "y", "z")])
        except (KeyError, ValueError):
            raise DataFormatError(path, '<point x="..." y="..." z="..."/> entries', got=str(node.attrib)) from None
    if len(points) != 7:
        raise DataFormatError(path, "7 picked points (NoW's landmarks)", got=str(len(points)))
    return np.asarray(points)


def read_landmarks(path: str | Path) -> np.ndarray:
    """A prediction's ``[7, 3]`` landmarks from ``.npy`` or a text file of 7 lines "x y z"."""
    path = Path(path)
    try:
        points = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataFormatError(path, "7 landmarks, [7, 3] (.npy or 7 lines 'x y z')", got=str(err)) from None
    if points.shape != (7, 3):
        raise DataFormatError(path, "7 landmarks, shape [7, 3]", got=str(points.shape))
    return points.astype(np.float64)


def image_list(root: str | Path, split: str = "val", challenge: str | None = None) -> list[tuple[str, str, str]]:
    """``(subject, challenge, image stem)`` of ``imagepaths{validation,test}.txt`` (optionally one challenge)."""
    path = Path(root) / ("imagepathsvalidation.txt" if split == "val" else "imagepathstest.txt")
    if not path.is_file():
        raise DataFormatError(path, "NoW's image list (see occrecon.evaluation.now for the layout)", got="no such file")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("/")
        if len(parts) < 3:
            raise DataFormatError(path, '"<subject>/<challenge>/<image>.jpg"', line=number, got=repr(line))
        subject, chal, image = parts[-3], parts[-2], Path(parts[-1]).stem
        if challenge is None or chal == challenge:
            entries.append((subject, chal, image))
    return entries


def evaluate_folder(
    root: str | Path, predictions: str | Path, split: str = "val", challenge: str | None = None, max_images: int = 0
) -> tuple[dict[str, float], int, int]:
    """Run the protocol over NoW's image list; returns the pooled stats (mm), images scored, missing."""
    from occrecon.mesh_io import read_obj

    root, predictions = Path(root), Path(predictions)
    pooled, scored, missing = [], 0, 0
    scans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for subject, chal, image in image_list(root, split, challenge):
        if max_images and scored >= max_images:
            break
        stem = predictions / subject / chal / image
        lmk = next((p for p in (stem.with_suffix(".npy"), stem.with_suffix(".txt")) if p.is_file()), None)
        if not stem.with_suffix(".obj").is_file() or lmk is None:
            missing += 1
            continue
        if subject not in scans:
            scan_obj = sorted((root / "scans" / subject).glob("*.obj"))
            scan_pp = sorted((root / "scans_lmks_onlypp" / subject).glob("*.pp"))
            if not scan_obj or not scan_pp:
                raise DataFormatError(
                    root / "scans" / subject, "the subject's scan .obj and its .pp landmarks", got="missing"
                )
            scans[subject] = (read_obj(scan_obj[0])[0], read_pp(scan_pp[0]))
        vertices, faces, _ = read_obj(stem.with_suffix(".obj"))
        result = now_errors(*scans[subject], vertices, faces, read_landmarks(lmk))
        pooled.append(result.distances)
        scored += 1
    stats = summary(np.concatenate(pooled)) if pooled else {"median": math.nan, "mean": math.nan, "std": math.nan}
    return stats, scored, missing


def synthetic_errors(
    gt_vertices: Sequence[np.ndarray],
    pred_vertices: Sequence[np.ndarray],
    faces: np.ndarray,
    landmark_indices: np.ndarray,
) -> tuple[dict[str, float], list[NowResult]]:
    """The protocol with the true meshes as scans (synthetic set): pooled stats and per-face results.

    ``gt_vertices``/``pred_vertices``: per face ``[V, 3]`` in mm (same topology); ``landmark_indices``:
    the model's 68 landmark vertex indices (the 7 are taken by :data:`NOW_FROM_68`).
    """
    seven = np.asarray(landmark_indices)[list(NOW_FROM_68)]
    results = [now_errors(g, g[seven], p, faces, p[seven]) for g, p in zip(gt_vertices, pred_vertices, strict=True)]
    return summary(np.concatenate([r.distances for r in results])), results
