"""Readers of the Basel Face Model 2009 as Deep3DFaceRecon uses it.

Two entry points, the same result:

* :func:`load_bfm_front` reads Deep3DFaceRecon's prepared ``BFM_model_front.mat`` (keys
  ``meanshape [1, 3V]`` dm, ``idBase [3V, 80]``, ``exBase [3V, 64]`` (dm, pre-multiplied by the
  standard deviations), ``meantex [1, 3V]`` and ``texBase [3V, 80]`` (0-255), ``tri [F, 3]``,
  ``keypoints [68]``, ``frontmask2_idx``, ``tri_mask2`` (1-based), ``skinmask [V]`` 0/1 flags,
  ``point_buf`` (ignored: normals use a scatter-add over ``tri``)).
* :func:`load_bfm09_raw` rebuilds those arrays from the user's raw files as Deep3D's
  ``util/load_mats.py::transferBFM09`` does: ``01_MorphableModel.mat`` (``shapeMU/PC/EV``,
  ``texMU/PC/EV``, micrometres), ``Exp_Pca.bin`` (Guo et al.'s expression PCA), ``std_exp.txt``
  (its standard deviations), ``BFM_exp_idx.mat`` (``trimIndex``: expression-model vertex -> BFM
  vertex, 1-based), ``BFM_front_idx.mat`` (``idx``: front vertex -> expression-model vertex) and
  ``facemodel_info.mat`` (``tri``, ``keypoints``, ``frontmask2_idx``, ``skinmask``, ``tri_mask2``).
  ``idBase = shapePC * shapeEV / 1e5``, ``exBase = expPC * expEV / 1e5``, ``texBase = texPC * texEV``,
  ``meanshape = shapeMU / 1e5`` (micrometres -> decimetres), first 80/64/80 columns.

``Exp_Pca.bin`` layout (as read by Deep3D's ``LoadExpBasis``): int32 ``k``; float32 ``expMU
[3N]``; float32 ``expPC`` stored as ``k`` consecutive components of ``3N`` values (x, y, z
interleaved per vertex). Deep3D hard-codes ``N = 53215``; occrecon derives ``N`` from the file size.
``expMU`` is not used (as in Deep3D).

Both readers then re-centre the mean on its vertex centroid (Deep3D's ``recenter=True``), divide
the albedo by 255, derive region labels from the landmarks, a mirror map (reflected nearest
neighbour within 3 mm) and cylindrical texture coordinates (:mod:`occrecon.facemodel.derived`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.facemodel.derived import cylindrical_uv, estimate_mirror_map, regions_from_landmarks, vertex_normals_np
from occrecon.facemodel.morphable import FaceModelData
from occrecon.labels import CELEBAMASK as L

FRONT_FILE = "BFM_model_front.mat"
RAW_FILES = (
    "01_MorphableModel.mat",
    "Exp_Pca.bin",
    "std_exp.txt",
    "BFM_exp_idx.mat",
    "BFM_front_idx.mat",
    "facemodel_info.mat",
)
HOW_TO_GET = (
    "Register at https://faces.dmi.unibas.ch/bfm/ to download the Basel Face Model 2009 "
    "(PublicMM1/01_MorphableModel.mat); get Exp_Pca.bin (Guo et al., CoarseData) and Deep3DFaceRecon_pytorch's "
    "BFM/ helper files (std_exp.txt, BFM_exp_idx.mat, BFM_front_idx.mat, facemodel_info.mat) as its README "
    "describes; Deep3DFaceRecon writes BFM_model_front.mat from them on first run. Pass the folder as model_dir."
)
MICROMETRE_TO_DM = 1e-5
MIRROR_TOLERANCE_DM = 0.03


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingAssetError(path, what, HOW_TO_GET)
    return path


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        mat = loadmat(str(path))
    except (MatReadError, ValueError, NotImplementedError, OSError) as err:
        raise DataFormatError(
            path, "a MATLAB v5/v7 .mat file (scipy.io.loadmat; re-save v7.3 files with -v7)", got=str(err)
        ) from err
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DataFormatError(path, f"variables {list(keys)}", got=f"missing {missing}")
    return mat


def _index(mat: dict[str, Any], key: str, path: Path, bound: int) -> np.ndarray:
    """1-based MATLAB indices -> 0-based int64, checked against ``[0, bound)``."""
    idx = np.asarray(mat[key]).astype(np.int64) - 1
    if idx.size and (idx.min() < 0 or idx.max() >= bound):
        raise DataFormatError(
            path, f"1-based '{key}' indices in [1, {bound}]", got=f"[{idx.min() + 1}, {idx.max() + 1}]"
        )
    return idx


def _basis(array: np.ndarray, n_vertices: int, k: int, key: str, path: Path) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != 3 * n_vertices:
        raise DataFormatError(path, f"'{key}' of shape [{3 * n_vertices}, K]", got=str(array.shape))
    k = min(k, array.shape[1])
    return array[:, :k].reshape(n_vertices, 3, k)


def _assemble(arrays: dict[str, np.ndarray], path: Path, n_id: int, n_exp: int, n_tex: int) -> FaceModelData:
    """Deep3D's front-model arrays (already 0-based) -> :class:`FaceModelData`."""
    mean = np.asarray(arrays["meanshape"], dtype=np.float64).reshape(-1, 3)
    mean = mean - mean.mean(axis=0)
    n = len(mean)
    tri = arrays["tri"].reshape(-1, 3)
    landmarks = arrays["keypoints"].reshape(-1)
    if len(landmarks) != 68:
        raise DataFormatError(path, "68 'keypoints'", got=str(len(landmarks)))
    normals = vertex_normals_np(mean, tri)
    labels = regions_from_landmarks(mean, normals, landmarks)
    face_mask = np.ones(n, dtype=bool)
    if arrays.get("frontmask2_idx") is not None:
        face_mask[:] = False
        face_mask[arrays["frontmask2_idx"].reshape(-1)] = True
    skin = arrays.get("skinmask")
    skin_mask = np.asarray(skin).reshape(-1) > 0 if skin is not None else labels == L["skin"]
    if len(skin_mask) != n:
        raise DataFormatError(path, f"'skinmask' with one flag per vertex ({n})", got=str(len(skin_mask)))
    return FaceModelData(
        name="bfm",
        mean_shape=mean,
        id_basis=_basis(arrays["idBase"], n, n_id, "idBase", path),
        exp_basis=_basis(arrays["exBase"], n, n_exp, "exBase", path),
        albedo_mean=np.asarray(arrays["meantex"], dtype=np.float64).reshape(n, 3) / 255.0,
        albedo_basis=_basis(arrays["texBase"], n, n_tex, "texBase", path) / 255.0,
        triangles=tri,
        landmark_indices=landmarks,
        region_labels=labels,
        skin_mask=skin_mask,
        face_mask=face_mask,
        uv=cylindrical_uv(mean),
        mirror_index=estimate_mirror_map(mean, MIRROR_TOLERANCE_DM),
    )


def _info_indices(mat: dict[str, Any], path: Path, n: int) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {
        "tri": _index(mat, "tri", path, n),
        "keypoints": _index(mat, "keypoints", path, n),
        "frontmask2_idx": _index(mat, "frontmask2_idx", path, n) if "frontmask2_idx" in mat else None,
        "skinmask": np.asarray(mat["skinmask"]) if "skinmask" in mat else None,
    }
    return out


def load_bfm_front(path: str | Path, n_id: int = 80, n_exp: int = 64, n_tex: int = 80) -> FaceModelData:
    """Read Deep3DFaceRecon's ``BFM_model_front.mat`` (a file, or a folder containing it)."""
    path = Path(path)
    path = _require(path / FRONT_FILE if path.is_dir() else path, f"Deep3DFaceRecon face model {FRONT_FILE}")
    mat = _loadmat(path, ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints"))
    if np.asarray(mat["meanshape"]).size % 3:
        raise DataFormatError(path, "'meanshape' with 3V values", got=str(np.asarray(mat["meanshape"]).shape))
    n = np.asarray(mat["meanshape"]).size // 3
    arrays = {k: mat[k] for k in ("meanshape", "idBase", "exBase", "meantex", "texBase")}
    arrays.update(_info_indices(mat, path, n))
    return _assemble(arrays, path, n_id, n_exp, n_tex)


def read_exp_pca(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``Exp_Pca.bin`` -> ``expMU [3N]``, ``expPC [3N, k]`` (see the module docstring)."""
    data = path.read_bytes()
    if len(data) < 4:
        raise DataFormatError(
            path, "int32 component count k, then float32 expMU [3N] and expPC [k, 3N]", got=f"{len(data)} bytes"
        )
    k = int(np.frombuffer(data, "<i4", 1)[0])
    floats = (len(data) - 4) // 4
    if k <= 0 or (len(data) - 4) % 4 or floats % (3 * (k + 1)):
        raise DataFormatError(
            path, "int32 k > 0, then (k + 1) * 3N float32 values", got=f"k = {k}, {len(data) - 4} further bytes"
        )
    n3 = floats // (k + 1)
    values = np.frombuffer(data, "<f4", floats, offset=4).astype(np.float64)
    return values[:n3], values[n3:].reshape(k, n3).T


def load_bfm09_raw(model_dir: str | Path, n_id: int = 80, n_exp: int = 64, n_tex: int = 80) -> FaceModelData:
    """Build the front model from the raw BFM 2009 + expression files, as ``transferBFM09`` does."""
    d = Path(model_dir)
    paths = {name: _require(d / name, f"BFM file {name}") for name in RAW_FILES}
    bfm = _loadmat(paths["01_MorphableModel.mat"], ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"))
    _, exp_pc = read_exp_pca(paths["Exp_Pca.bin"])
    try:
        exp_ev = np.loadtxt(paths["std_exp.txt"], ndmin=1)
    except ValueError as err:
        raise DataFormatError(paths["std_exp.txt"], "one standard deviation per line", got=str(err)) from err
    if len(exp_ev) != exp_pc.shape[1]:
        raise DataFormatError(
            paths["std_exp.txt"], f"{exp_pc.shape[1]} values (one per Exp_Pca.bin component)", got=str(len(exp_ev))
        )
    n_bfm = np.asarray(bfm["shapeMU"]).size // 3
    n_exp_vertices = exp_pc.shape[0] // 3
    trim = _index(
        _loadmat(paths["BFM_exp_idx.mat"], ("trimIndex",)), "trimIndex", paths["BFM_exp_idx.mat"], n_bfm
    ).reshape(-1)
    front = _index(
        _loadmat(paths["BFM_front_idx.mat"], ("idx",)), "idx", paths["BFM_front_idx.mat"], n_exp_vertices
    ).reshape(-1)
    if len(trim) != n_exp_vertices:
        raise DataFormatError(
            paths["BFM_exp_idx.mat"], f"{n_exp_vertices} trimIndex entries (Exp_Pca.bin vertices)", got=str(len(trim))
        )
    shape_index = trim[front]

    def select(flat: np.ndarray, index: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
        flat = np.asarray(flat, dtype=np.float64)
        per_vertex = (flat * scale).reshape(-1, 3, flat.shape[1] if flat.ndim == 2 else 1)
        return per_vertex[index].reshape(len(index) * 3, -1)

    ev = lambda key: np.asarray(bfm[key], dtype=np.float64).reshape(1, -1)  # noqa: E731
    arrays = {
        "meanshape": select(bfm["shapeMU"], shape_index, MICROMETRE_TO_DM),
        "idBase": select(bfm["shapePC"], shape_index, ev("shapeEV") * MICROMETRE_TO_DM),
        "exBase": select(exp_pc, front, exp_ev.reshape(1, -1) * MICROMETRE_TO_DM),
        "meantex": select(bfm["texMU"], shape_index, 1.0),
        "texBase": select(bfm["texPC"], shape_index, ev("texEV")),
    }
    info = _loadmat(paths["facemodel_info.mat"], ("tri", "keypoints"))
    arrays.update(_info_indices(info, paths["facemodel_info.mat"], len(front)))
    return _assemble(arrays, paths["01_MorphableModel.mat"], n_id, n_exp, n_tex)
