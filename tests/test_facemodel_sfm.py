"""Surrey Face Model reader: reads the shared eos files (skipped when absent); malformed files fail clearly."""

import shutil

import numpy as np
import pytest
import torch

from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.facemodel import load_face_model
from occrecon.facemodel import sfm as sfm_reader
from occrecon.labels import CELEBAMASK as L
from tests.fixtures_facemodel import SFM_SKIP_REASON, sfm_dir

SFM = sfm_dir()
needs_sfm = pytest.mark.skipif(SFM is None, reason=SFM_SKIP_REASON)


@pytest.fixture(scope="module")
def model():
    return load_face_model("sfm", SFM)


@needs_sfm
def test_reader_reproduces_the_documented_model():
    raw = sfm_reader.read_sfm_shape(SFM / sfm_reader.SHAPE_FILE)
    assert raw["mean"].shape == (3 * 3448,) and raw["triangles"].shape == (6736, 3)
    assert raw["basis"].shape == (3 * 3448, 63) and raw["texcoords"].shape == (3448, 2)
    basis = raw["basis"]
    assert np.allclose(basis.T @ basis, np.eye(63), atol=1e-4)  # an orthonormal basis, as eos stores it
    assert (np.diff(raw["eigenvalues"]) <= 0).all()  # PCA order
    names, offsets = sfm_reader.read_sfm_blendshapes(SFM / sfm_reader.BLENDSHAPE_FILE)
    assert names == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"] and offsets.shape == (3 * 3448, 6)


@needs_sfm
def test_model_units_frame_and_bases(model):
    assert (model.num_vertices, model.triangles.shape[0], model.n_id, model.n_exp) == (3448, 6736, 63, 6)
    mean = model.mean_shape
    assert torch.allclose(mean.mean(0), torch.zeros(3), atol=1e-5)  # re-centred
    width = mean[:, 0].max() - mean[:, 0].min()
    assert 1.3 < width < 1.7  # decimetres (the file is in millimetres)
    raw = sfm_reader.read_sfm_shape(SFM / sfm_reader.SHAPE_FILE)
    col = model.id_basis[:, :, 0].reshape(-1).double()
    assert torch.isclose(
        col.norm(), torch.tensor(np.sqrt(raw["eigenvalues"][0]) * 0.01, dtype=torch.float64), rtol=1e-4
    )
    # +z towards the camera: the nose tip is the most forward landmark and its normal faces +z
    lm = model.landmark_indices
    assert model.mean_shape[lm, 2].argmax() == 30
    normals = model.vertex_normals(mean[None])[0]
    assert normals[lm[30], 2] > 0.9


@needs_sfm
def test_landmarks_follow_the_mapping_and_contours(model):
    lm = model.landmark_indices.numpy()
    mapping = sfm_reader.read_ibug_mapping(SFM / sfm_reader.LANDMARK_FILE)
    assert lm[8] == 33 and lm[36] == 177 and lm[30] == 114  # ibug_to_sfm.txt: 9 = 33, 37 = 177, 31 = 114
    assert all(lm[k] == v for k, v in mapping.items())
    right, left = sfm_reader.read_contours(SFM / sfm_reader.CONTOUR_FILE)
    assert set(lm[0:8]) <= set(right) and set(lm[9:17]) <= set(left)
    y = model.mean_shape[lm[:17], 1].numpy()
    assert (np.diff(y[:9]) < 0).all() and (np.diff(y[8:]) > 0).all()  # down to the chin, then up
    x = model.mean_shape[lm, 0].numpy()
    assert x[0] < 0 < x[16] and x[36] < x[45]  # image-side convention
    lab = model.region_labels[lm].numpy()
    assert (lab[36:42] == L["r_eye"]).all() and (lab[42:48] == L["l_eye"]).all()  # subject-side labels
    assert np.isin(lab[48:60], [L["u_lip"], L["l_lip"]]).all()


@needs_sfm
def test_mirror_map_uses_the_symmetry_file(model):
    sym = sfm_reader.read_symmetry(SFM / sfm_reader.SYMMETRY_FILE)
    m = model.mirror_index.numpy()
    assert np.array_equal(m[: len(sym)], sym)
    known = m >= 0
    reflected = model.mean_shape[m[known]].numpy() * [-1, 1, 1]
    assert np.abs(reflected - model.mean_shape[known].numpy()).max() < 0.035  # within 3.5 mm


@needs_sfm
def test_expressions_and_albedo(model):
    k = list(model.expression_names).index("surprise")
    exp = torch.zeros(1, model.n_exp)
    exp[0, k] = 2.0
    v = model.shape(torch.zeros(1, model.n_id), exp)[0]
    lm = model.landmark_indices
    assert v[lm[8], 1] < model.mean_shape[lm[8], 1] - 0.05  # surprise drops the jaw
    assert model.albedo_mean.min() >= 0 and model.albedo_mean.max() <= 1


@needs_sfm
def test_truncated_or_missing_files_fail_clearly(tmp_path):
    for name in (
        sfm_reader.SHAPE_FILE,
        sfm_reader.BLENDSHAPE_FILE,
        sfm_reader.LANDMARK_FILE,
        sfm_reader.CONTOUR_FILE,
        sfm_reader.SYMMETRY_FILE,
    ):
        shutil.copy(SFM / name, tmp_path / name)
    data = (tmp_path / sfm_reader.SHAPE_FILE).read_bytes()
    (tmp_path / sfm_reader.SHAPE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="sfm_shape_3448.bin"):
        load_face_model("sfm", tmp_path)
    (tmp_path / sfm_reader.SHAPE_FILE).unlink()
    with pytest.raises(MissingAssetError, match="eos"):
        load_face_model("sfm", tmp_path)


def test_malformed_small_files(tmp_path):
    bad = tmp_path / "shape.bin"
    bad.write_bytes(np.array([2], "<u4").tobytes())
    with pytest.raises(DataFormatError, match="version 1"):
        sfm_reader.read_sfm_shape(bad)
    sym = tmp_path / "sym.txt"
    sym.write_text("2 # comment\nx\n")
    with pytest.raises(DataFormatError, match=":2"):
        sfm_reader.read_symmetry(sym)
    toml = tmp_path / "map.txt"
    toml.write_text("[other]\n1 = 2\n")
    with pytest.raises(DataFormatError, match="landmark_mappings"):
        sfm_reader.read_ibug_mapping(toml)
    blend = tmp_path / "blend.bin"
    blend.write_bytes(
        np.array([1], "<u8").tobytes() + np.array([3], "<u8").tobytes() + b"abc" + np.array([6, 2], "<i4").tobytes()
    )
    with pytest.raises(DataFormatError, match="blend.bin"):
        sfm_reader.read_sfm_blendshapes(blend)
    with pytest.raises(MissingAssetError, match="eos"):
        load_face_model("sfm", tmp_path / "nowhere")
