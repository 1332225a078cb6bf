"""Face-model test helpers: where the shared SFM files live, and BFM files written in Deep3D's formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

REPO = Path(__file__).resolve().parents[1]
SFM_FILES = (
    "sfm_shape_3448.bin",
    "expression_blendshapes_3448.bin",
    "ibug_to_sfm.txt",
    "sfm_model_contours.json",
    "sfm_reference_symmetry.txt",
)


def sfm_dir() -> Path | None:
    """The shared Surrey Face Model folder (``$OCCRECON_SFM_DIR`` or ``../shared/facemodels/sfm``), or None."""
    candidates = [os.environ.get("OCCRECON_SFM_DIR"), REPO.parent / "shared" / "facemodels" / "sfm"]
    for c in candidates:
        if c and all((Path(c) / f).is_file() for f in SFM_FILES):
            return Path(c)
    return None


SFM_SKIP_REASON = "Surrey Face Model files not found (set OCCRECON_SFM_DIR or provide ../shared/facemodels/sfm; see the eos project's share/ folder)"


def face_model_params() -> list:
    """``pytest.param((name, folder))`` of every face model a test can load here: procedural always,
    SFM when its files are found (marked ``sfm``, skipped otherwise)."""
    found = sfm_dir()
    sfm_marks = [pytest.mark.sfm, pytest.mark.skipif(found is None, reason=SFM_SKIP_REASON)]
    return [pytest.param(("procedural", None), id="procedural"), pytest.param(("sfm", found), id="sfm", marks=sfm_marks)]


def flat(per_vertex: np.ndarray) -> np.ndarray:
    """``[V, 3, K]`` -> Deep3D's ``[3V, K]`` (x, y, z interleaved per vertex)."""
    return per_vertex.reshape(per_vertex.shape[0] * 3, -1)


def write_bfm_front(path: Path, data, n_id: int = 5, n_exp: int = 4, n_tex: int = 3) -> dict[str, np.ndarray]:
    """Write ``data`` (a FaceModelData) as Deep3D's ``BFM_model_front.mat``; returns what was written."""
    v = len(data.mean_shape)
    face_idx = np.flatnonzero(data.face_mask)
    arrays = {
        "meanshape": data.mean_shape.reshape(1, -1),
        "idBase": flat(data.id_basis[:, :, :n_id]),
        "exBase": flat(data.exp_basis[:, :, :n_exp]),
        "meantex": (data.albedo_mean * 255.0).reshape(1, -1),
        "texBase": flat(data.albedo_basis[:, :, :n_tex] * 255.0),
        "tri": data.triangles + 1,
        "point_buf": np.ones((v, 8), dtype=np.int32),
        "keypoints": (data.landmark_indices + 1).reshape(1, -1),
        "frontmask2_idx": (face_idx + 1).reshape(-1, 1),
        "skinmask": data.skin_mask.astype(np.float64).reshape(1, -1),
        "tri_mask2": data.triangles[:10] + 1,
    }
    savemat(str(path), arrays)
    return arrays


def write_exp_pca(path: Path, mean: np.ndarray, components: np.ndarray) -> None:
    """``Exp_Pca.bin``: int32 k, float32 expMU [3N], float32 expPC as k rows of 3N."""
    k = components.shape[1]
    with open(path, "wb") as handle:
        handle.write(np.int32(k).tobytes())
        handle.write(mean.astype("<f4").tobytes())
        handle.write(components.T.astype("<f4").tobytes())
