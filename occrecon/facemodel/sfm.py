"""Reader of the Surrey Face Model (low-resolution, 3448 vertices) in the eos formats.

Files (from the ``share/`` folder of the eos project, github.com/patrikhuber/eos; the model is
free for non-commercial use and is never shipped with occrecon):

* ``sfm_shape_3448.bin`` — cereal binary archive, little-endian: uint32 version; shape PCA model
  then colour PCA model, each ``[mean, orthonormal basis, eigenvalues, triangles]``; then texture
  coordinates. A matrix is int32 rows, int32 cols, rows*cols float32 column-major; a triangle
  list is uint64 n + n*3 int32; texture coordinates uint64 n + n*2 float64. The mean is x, y, z
  interleaved per vertex, in millimetres.
* ``expression_blendshapes_3448.bin`` — uint64 count, then per blendshape a string (uint64 length
  + bytes) and a matrix of offsets ``[3V, 1]`` (mm).
* ``ibug_to_sfm.txt`` (TOML syntax; 0-based vertex ids for 1-based iBUG points), ``sfm_model_contours.json``
  (jaw contour vertices), ``sfm_reference_symmetry.txt`` (1-based mirror vertex per line for the
  845 reference vertices).

Conversions (documented choices): mm -> dm (x 0.01) and the mean re-centred on its vertex
centroid (SFM's origin is at the nose tip; Deep3D re-centres BFM the same way); identity basis = orthonormal basis x
sqrt(eigenvalue) (eos's rescaled basis: unit Gaussian prior), first ``min(n_id, 63)`` modes;
expression basis = blendshape offsets x :data:`BLENDSHAPE_SIGMA` (one standard deviation = half
of a full expression); missing jaw landmarks (iBUG 1-8, 10-17) are 8 vertices per side picked at
equal arc length along the model contour from the height of the outer eye corners down to the chin
(contour vertices lower than the chin vertex are skipped); the missing inner mouth
corners (iBUG 61, 65) are the vertices nearest to the mean of the outer corner and the two
adjacent inner-lip points; the mirror map beyond the 845 reference vertices is the nearest
vertex to the reflected mean within 3 mm (else -1; the reference pairs themselves are symmetric
only to about 2 mm); regions come from
:func:`occrecon.facemodel.derived.regions_from_landmarks`; albedo is the synthetic
:func:`occrecon.facemodel.albedo.albedo_model` transferred through those regions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.facemodel.albedo import albedo_model
from occrecon.facemodel.derived import estimate_mirror_map, regions_from_landmarks, vertex_normals_np
from occrecon.facemodel.morphable import FaceModelData
from occrecon.labels import CELEBAMASK as L
from occrecon.utils.seeding import numpy_generator

SHAPE_FILE = "sfm_shape_3448.bin"
BLENDSHAPE_FILE = "expression_blendshapes_3448.bin"
LANDMARK_FILE = "ibug_to_sfm.txt"
CONTOUR_FILE = "sfm_model_contours.json"
SYMMETRY_FILE = "sfm_reference_symmetry.txt"
HOW_TO_GET = (
    "The Surrey Face Model files are in the share/ folder of the eos project "
    "(https://github.com/patrikhuber/eos/tree/master/share; non-commercial licence): put them in one folder "
    "and pass it as model_dir."
)
MM_TO_DM = 0.01
BLENDSHAPE_SIGMA = 0.5
MIRROR_TOLERANCE_DM = 0.03


class _Binary:
    """Sequential little-endian reader that names the file and byte offset on failure."""

    def __init__(self, path: Path) -> None:
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def take(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise DataFormatError(
                self.path, f"{what} ({count} x {dtype}) at byte {self.pos}", got=f"a file of {len(self.data)} bytes"
            )
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def scalar(self, dtype: str, what: str) -> int:
        return int(self.take(dtype, 1, what)[0])

    def matrix(self, what: str) -> np.ndarray:
        rows, cols = self.scalar("<i4", f"{what} rows"), self.scalar("<i4", f"{what} cols")
        if rows < 0 or cols < 0:
            raise DataFormatError(self.path, f"non-negative {what} size at byte {self.pos - 8}", got=f"{rows} x {cols}")
        return self.take("<f4", rows * cols, what).reshape(cols, rows).T.astype(np.float64)  # column-major

    def triangles(self, what: str) -> np.ndarray:
        n = self.scalar("<u8", f"{what} count")
        return self.take("<i4", 3 * n, what).reshape(n, 3).astype(np.int64)

    def string(self, what: str) -> str:
        n = self.scalar("<u8", f"{what} length")
        return self.take("u1", n, what).tobytes().decode("utf-8", errors="replace")

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise DataFormatError(
                self.path, f"end of file at byte {self.pos}", got=f"{len(self.data) - self.pos} trailing bytes"
            )


def _require(model_dir: Path, name: str) -> Path:
    path = model_dir / name
    if not path.is_file():
        raise MissingAssetError(path, f"Surrey Face Model file {name}", HOW_TO_GET)
    return path


def read_sfm_shape(path: Path) -> dict[str, np.ndarray]:
    """Parse ``sfm_shape_3448.bin``: ``mean [3V]``, ``basis [3V, K]``, ``eigenvalues [K]``,
    ``triangles [F, 3]`` (0-based), ``texcoords [V, 2]`` (all in the file's units, mm)."""
    r = _Binary(Path(path))
    version = r.scalar("<u4", "archive version")
    if version != 1:
        raise DataFormatError(r.path, "cereal archive version 1", got=str(version))
    mean, basis, eig = r.matrix("shape mean"), r.matrix("shape basis"), r.matrix("shape eigenvalues")
    triangles = r.triangles("shape triangles")
    for what in ("colour mean", "colour basis", "colour eigenvalues"):
        r.matrix(what)
    r.triangles("colour triangles")
    n_uv = r.scalar("<u8", "texture coordinate count")
    texcoords = r.take("<f8", 2 * n_uv, "texture coordinates").reshape(n_uv, 2)
    r.expect_end()
    n3 = mean.shape[0]
    if mean.shape[1] != 1 or n3 % 3 or basis.shape[0] != n3 or eig.size != basis.shape[1]:
        raise DataFormatError(
            r.path, "mean [3V, 1], basis [3V, K], eigenvalues [K]", got=f"{mean.shape}, {basis.shape}, {eig.shape}"
        )
    if triangles.size and (triangles.min() < 0 or triangles.max() >= n3 // 3):
        raise DataFormatError(
            r.path, f"triangle indices in [0, {n3 // 3})", got=f"[{triangles.min()}, {triangles.max()}]"
        )
    return {
        "mean": mean[:, 0],
        "basis": basis,
        "eigenvalues": eig.reshape(-1),
        "triangles": triangles,
        "texcoords": texcoords,
    }


def read_sfm_blendshapes(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``expression_blendshapes_3448.bin``: names and offsets ``[3V, N]`` (mm)."""
    r = _Binary(Path(path))
    count = r.scalar("<u8", "blendshape count")
    names, offsets = [], []
    for i in range(count):
        names.append(r.string(f"blendshape {i} name"))
        m = r.matrix(f"blendshape {i} offsets")
        if m.ndim != 2 or m.shape[1] != 1 or (offsets and m.shape[0] != offsets[0].shape[0]):
            raise DataFormatError(r.path, f"blendshape {i} offsets of shape [3V, 1]", got=str(m.shape))
        offsets.append(m[:, 0])
    r.expect_end()
    return names, np.stack(offsets, axis=1) if offsets else np.zeros((0, 0))


def read_ibug_mapping(path: Path) -> dict[int, int]:
    """``ibug_to_sfm.txt``: 0-based iBUG index -> vertex index.

    Only the ``[landmark_mappings]`` table (``ibug = vertex`` integer pairs, ``#`` comments) is
    read; a tiny parser instead of ``tomllib`` keeps Python 3.10 supported.
    """
    mapping: dict[int, int] = {}
    section, seen = None, False
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[([A-Za-z_]+)\]", line)
        if header:
            section = header.group(1)
            seen = seen or section == "landmark_mappings"
            continue
        if section != "landmark_mappings" or not line:
            continue
        pair = re.fullmatch(r"(\d+)\s*=\s*(\d+)", line)
        if pair is None:
            raise DataFormatError(
                path, "'ibug = vertex' integer pairs in [landmark_mappings]", line=number, got=repr(raw)
            )
        mapping[int(pair.group(1)) - 1] = int(pair.group(2))
    if not seen:
        raise DataFormatError(path, "a [landmark_mappings] table of 'ibug = vertex' integers", got="no such table")
    return mapping


def read_contours(path: Path) -> tuple[list[int], list[int]]:
    """``sfm_model_contours.json``: (right, left) contour vertex lists (subject's right = image left)."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))["model_contour"]
        return [int(v) for v in table["right_contour"]], [int(v) for v in table["left_contour"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataFormatError(
            path, '{"model_contour": {"right_contour": [...], "left_contour": [...]}}', got=str(err)
        ) from err


def read_symmetry(path: Path) -> np.ndarray:
    """``sfm_reference_symmetry.txt``: 0-based mirror index per reference vertex."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        if not token.isdigit() or int(token) < 1:
            raise DataFormatError(path, "a 1-based vertex index per line", line=number, got=repr(token))
        out.append(int(token) - 1)
    return np.array(out, dtype=np.int64)


def _contour_landmarks(mean: np.ndarray, contour: list[int], chin: int, top_y: float) -> list[int]:
    """8 contour vertices at equal arc length from the height ``top_y`` down to the chin."""
    pts = mean[contour]
    if pts[0, 1] < pts[-1, 1]:  # make it run from the top (temple) down to the chin
        contour, pts = contour[::-1], pts[::-1]
    start = int(np.argmin(np.abs(pts[:, 1] - top_y)))
    keep = [i for i in range(start, len(contour)) if pts[i, 1] > mean[chin, 1]]  # the chin is the lowest point
    contour, pts = [contour[i] for i in keep], pts[keep]
    path = np.concatenate([pts, mean[chin][None]], axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    targets = arc[-1] * np.arange(8) / 8.0
    return [contour[int(np.argmin(np.abs(arc[:-1] - t)))] for t in targets]


def _landmarks(mean: np.ndarray, mapping: dict[int, int], contours: tuple[list[int], list[int]]) -> np.ndarray:
    lm = np.full(68, -1, dtype=np.int64)
    for k, v in mapping.items():
        if 0 <= k < 68:
            lm[k] = v
    if lm[8] < 0:
        raise DataFormatError(LANDMARK_FILE, "a mapping for the chin (iBUG 9)")
    right, left = contours
    top_y = float(mean[lm[[36, 45]], 1].mean())  # iBUG 1 and 17 sit at about the eye-corner height
    lm[0:8] = _contour_landmarks(mean, right, int(lm[8]), top_y)
    lm[9:17] = _contour_landmarks(mean, left, int(lm[8]), top_y)[::-1]  # iBUG 10-17 run from the chin outwards
    for corner, outer, up, down in ((60, 48, 61, 67), (64, 54, 63, 65)):
        if lm[corner] < 0:
            target = (2 * mean[lm[outer]] + mean[lm[up]] + mean[lm[down]]) / 4.0
            lm[corner] = int(np.argmin(np.linalg.norm(mean - target, axis=1)))
    if (lm < 0).any():
        raise DataFormatError(
            LANDMARK_FILE,
            "mappings for every non-contour iBUG point except 61 and 65",
            got=f"missing {np.flatnonzero(lm < 0) + 1}",
        )
    return lm


def load_sfm(model_dir: str | Path, n_id: int = 80, n_tex: int = 80) -> FaceModelData:
    """Load the Surrey Face Model from ``model_dir`` (see the module docstring for every choice)."""
    model_dir = Path(model_dir)
    shape = read_sfm_shape(_require(model_dir, SHAPE_FILE))
    names, blend = read_sfm_blendshapes(_require(model_dir, BLENDSHAPE_FILE))
    mapping = read_ibug_mapping(_require(model_dir, LANDMARK_FILE))
    contours = read_contours(_require(model_dir, CONTOUR_FILE))
    symmetry = read_symmetry(_require(model_dir, SYMMETRY_FILE))
    mean = shape["mean"].reshape(-1, 3) * MM_TO_DM
    mean = mean - mean.mean(axis=0)
    n_vertices = len(mean)
    if blend.shape[0] != 3 * n_vertices or len(shape["texcoords"]) != n_vertices:
        raise DataFormatError(
            model_dir / BLENDSHAPE_FILE,
            f"offsets and texture coordinates for {n_vertices} vertices",
            got=f"{blend.shape}",
        )
    k = min(n_id, shape["basis"].shape[1])
    id_basis = shape["basis"][:, :k] * np.sqrt(np.clip(shape["eigenvalues"][:k], 0.0, None)) * MM_TO_DM
    exp_basis = blend * BLENDSHAPE_SIGMA * MM_TO_DM
    triangles = shape["triangles"]
    normals = vertex_normals_np(mean, triangles)
    landmarks = _landmarks(mean, mapping, contours)
    labels = regions_from_landmarks(mean, normals, landmarks)
    mirror = estimate_mirror_map(mean, MIRROR_TOLERANCE_DM)
    if len(symmetry) > n_vertices or (len(symmetry) and symmetry.max() >= len(symmetry)):
        raise DataFormatError(
            model_dir / SYMMETRY_FILE, f"at most {n_vertices} lines of indices into the reference vertices"
        )
    mirror[: len(symmetry)] = symmetry
    eyes = np.stack([mean[landmarks[36:42], :2].mean(0), mean[landmarks[42:48], :2].mean(0)])
    front = np.clip(normals[:, 2], 0.0, None) ** 2
    albedo_mean, albedo_basis = albedo_model(
        mean[:, :2], labels, eyes, front, numpy_generator("occrecon-sfm-albedo"), n_tex
    )
    return FaceModelData(
        name="sfm",
        mean_shape=mean,
        id_basis=id_basis.reshape(n_vertices, 3, k),
        exp_basis=exp_basis.reshape(n_vertices, 3, -1),
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        triangles=triangles,
        landmark_indices=landmarks,
        region_labels=labels,
        skin_mask=(labels == L["skin"]) & (normals[:, 2] > 0.3),
        face_mask=(labels != L["neck"]) & (normals[:, 2] > 0.0),
        uv=shape["texcoords"],
        mirror_index=mirror,
        expression_names=tuple(names),
    )
