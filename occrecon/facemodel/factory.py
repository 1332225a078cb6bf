"""``load_face_model``: one entry point for the procedural, SFM and BFM face models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from occrecon.errors import ConfigError, MissingAssetError
from occrecon.facemodel import bfm, sfm
from occrecon.facemodel.morphable import FaceModelData, MorphableModel
from occrecon.facemodel.procedural import procedural_face_data

FACE_MODELS: tuple[str, ...] = ("procedural", "sfm", "bfm")


def truncate(
    data: FaceModelData, n_id: int | None = None, n_exp: int | None = None, n_tex: int | None = None
) -> FaceModelData:
    """Keep the leading ``n_id / n_exp / n_tex`` modes (``None``: all)."""
    return replace(
        data,
        id_basis=data.id_basis[:, :, :n_id],
        exp_basis=data.exp_basis[:, :, :n_exp],
        albedo_basis=data.albedo_basis[:, :, :n_tex],
        identity_names=data.identity_names[: n_id if n_id is not None else None],
        expression_names=data.expression_names[: n_exp if n_exp is not None else None],
    )


def load_face_model_data(name: str, model_dir: str | Path | None = None, bfm_source: str = "auto") -> FaceModelData:
    """The arrays of face model ``name`` (see :func:`load_face_model`)."""
    if name == "procedural":
        return procedural_face_data()
    if name not in FACE_MODELS:
        raise ConfigError(f"face model must be one of {FACE_MODELS}, got {name!r}")
    if model_dir is None:
        how = sfm.HOW_TO_GET if name == "sfm" else bfm.HOW_TO_GET
        raise MissingAssetError("<model_dir not set>", f"the folder of the {name} face model files", how)
    model_dir = Path(model_dir)
    if name == "sfm":
        return sfm.load_sfm(model_dir)
    if bfm_source not in ("auto", "front", "raw"):
        raise ConfigError(f"bfm_source must be 'auto', 'front' or 'raw', got {bfm_source!r}")
    front = model_dir / bfm.FRONT_FILE
    if bfm_source == "front" or (
        bfm_source == "auto" and (front.is_file() or not (model_dir / bfm.RAW_FILES[0]).is_file())
    ):
        return bfm.load_bfm_front(front)
    return bfm.load_bfm09_raw(model_dir)


def load_face_model(
    name: str = "procedural",
    model_dir: str | Path | None = None,
    n_id: int | None = None,
    n_exp: int | None = None,
    n_tex: int | None = None,
    bfm_source: str = "auto",
) -> MorphableModel:
    """Load a face model as a :class:`MorphableModel`.

    Args:
        name: ``"procedural"`` (embedded, no files), ``"sfm"`` (Surrey Face Model folder) or
            ``"bfm"`` (a folder with Deep3D's ``BFM_model_front.mat``, or the raw BFM 2009 files).
        model_dir: folder of the model files (required for ``sfm`` and ``bfm``).
        n_id, n_exp, n_tex: keep only the leading modes (default: all the model has, at most
            80 / 64 / 80).
        bfm_source: ``"auto"`` (the prepared file when present, else the raw files), ``"front"``
            or ``"raw"``.

    Raises:
        MissingAssetError: a file is missing (the message says where users obtain it).
        DataFormatError: a file does not match its format (the message names file and field).
    """
    data = load_face_model_data(name, model_dir, bfm_source)
    return MorphableModel(truncate(data, n_id, n_exp, n_tex))
