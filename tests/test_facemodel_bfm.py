"""BFM readers on small files written in Deep3D's formats (BFM_model_front.mat; raw BFM09 + Exp_Pca.bin)."""

import numpy as np
import pytest
from scipy.io import savemat

from occrecon.errors import ConfigError, DataFormatError, MissingAssetError
from occrecon.facemodel import bfm, load_face_model
from occrecon.facemodel.procedural import procedural_face_data
from occrecon.labels import CELEBAMASK as L
from tests.fixtures_facemodel import write_bfm_front, write_exp_pca


@pytest.fixture(scope="module")
def proc():
    return procedural_face_data()


def test_front_file_round_trip(tmp_path, proc):
    written = write_bfm_front(tmp_path / bfm.FRONT_FILE, proc)
    model = load_face_model("bfm", tmp_path)
    assert model.name == "bfm" and (model.n_id, model.n_exp, model.n_tex) == (5, 4, 3)
    centred = proc.mean_shape - proc.mean_shape.mean(0)  # Deep3D re-centres the mean shape
    assert np.allclose(model.mean_shape.numpy(), centred, atol=1e-5)
    assert np.allclose(model.id_basis.numpy(), written["idBase"].reshape(-1, 3, 5), atol=1e-6)
    assert np.allclose(model.exp_basis.numpy(), proc.exp_basis[:, :, :4], atol=1e-6)
    assert np.allclose(model.albedo_mean.numpy(), proc.albedo_mean, atol=1e-6)  # 0-255 -> [0, 1]
    assert np.allclose(model.albedo_basis.numpy(), proc.albedo_basis[:, :, :3], atol=1e-6)
    assert np.array_equal(model.triangles.numpy(), proc.triangles)  # 1-based -> 0-based
    assert np.array_equal(model.landmark_indices.numpy(), proc.landmark_indices)
    assert np.array_equal(model.face_mask.numpy(), proc.face_mask)
    assert np.array_equal(model.skin_mask.numpy(), proc.skin_mask)
    # regions derived from the landmarks put the eye and lip landmarks in their regions
    lab = model.region_labels[model.landmark_indices].numpy()
    assert (lab[36:42] == L["r_eye"]).all() and (lab[42:48] == L["l_eye"]).all()  # subject-side labels
    assert np.isin(lab[48:60], [L["u_lip"], L["l_lip"]]).all() and lab[30] == L["nose"]
    # the procedural mesh is exactly symmetric, so the estimated mirror map finds every pair
    assert np.array_equal(model.mirror_index.numpy(), proc.mirror_index)
    assert model.uv.min() >= 0 and model.uv.max() <= 1


def _write_raw(folder, proc, rng):
    """Raw BFM09-style files whose front model is the procedural mesh; returns the index maps."""
    v = len(proc.mean_shape)
    n_exp_v, n_bfm = v + 3, v + 7
    front_idx = rng.permutation(n_exp_v)[:v]  # front vertex i -> expression-model vertex
    trim = rng.permutation(n_bfm)[:n_exp_v]  # expression-model vertex -> BFM vertex
    bfm_of_front = trim[front_idx]
    shape_mu = rng.normal(size=(n_bfm, 3)) * 1e5
    shape_mu[bfm_of_front] = proc.mean_shape * 1e5  # micrometres
    tex_mu = rng.uniform(0, 255, size=(n_bfm, 3))
    tex_mu[bfm_of_front] = proc.albedo_mean * 255
    raw = {
        "shapeMU": shape_mu.reshape(-1, 1), "shapePC": rng.normal(size=(3 * n_bfm, 6)), "shapeEV": np.array([[5.0], [4], [3], [2], [1], [0.5]]),
        "texMU": tex_mu.reshape(-1, 1), "texPC": rng.normal(size=(3 * n_bfm, 4)), "texEV": np.array([[40.0], [30], [20], [10]]),
    }  # fmt: skip
    savemat(str(folder / "01_MorphableModel.mat"), raw)
    exp_pc = rng.normal(size=(3 * n_exp_v, 3))
    write_exp_pca(folder / "Exp_Pca.bin", rng.normal(size=3 * n_exp_v), exp_pc)
    std = np.array([2.0, 1.5, 1.0])
    np.savetxt(folder / "std_exp.txt", std)
    savemat(str(folder / "BFM_exp_idx.mat"), {"trimIndex": (trim + 1).reshape(-1, 1)})
    savemat(str(folder / "BFM_front_idx.mat"), {"idx": (front_idx + 1).reshape(-1, 1)})
    info = {
        "tri": proc.triangles + 1, "keypoints": (proc.landmark_indices + 1).reshape(1, -1),
        "frontmask2_idx": (np.flatnonzero(proc.face_mask) + 1).reshape(-1, 1), "skinmask": proc.skin_mask.astype(float).reshape(1, -1),
        "point_buf": np.ones((v, 8)), "tri_mask2": proc.triangles[:5] + 1,
    }  # fmt: skip
    savemat(str(folder / "facemodel_info.mat"), info)
    return raw, exp_pc.astype(np.float32).astype(np.float64), std, front_idx, bfm_of_front


def test_raw_bfm09_follows_transfer_bfm09(tmp_path, proc):
    raw, exp_pc, std, front_idx, bfm_of_front = _write_raw(tmp_path, proc, np.random.default_rng(0))
    model = load_face_model("bfm", tmp_path)  # no BFM_model_front.mat: the raw files are used
    v = len(proc.mean_shape)
    # expected values computed per vertex and component from the written arrays
    i, c, j = 17, 2, 4
    row = 3 * bfm_of_front[i] + c
    assert np.isclose(model.id_basis[i, c, j].item(), raw["shapePC"][row, j] * raw["shapeEV"][j, 0] / 1e5, rtol=1e-5)
    erow = 3 * front_idx[i] + c
    assert np.isclose(model.exp_basis[i, c, 1].item(), exp_pc[erow, 1] * std[1] / 1e5, rtol=1e-5)
    assert np.isclose(model.albedo_basis[i, c, 3].item(), raw["texPC"][row, 3] * raw["texEV"][3, 0] / 255, rtol=1e-5)
    ids = 3 * bfm_of_front[:, None] + np.arange(3)
    expected = raw["shapePC"][ids] * raw["shapeEV"][:, 0] / 1e5  # [V, 3, 6]
    assert np.allclose(model.id_basis.numpy(), expected, rtol=1e-5, atol=1e-9)
    assert np.allclose(model.mean_shape.numpy(), proc.mean_shape - proc.mean_shape.mean(0), atol=1e-5)
    assert np.allclose(model.albedo_mean.numpy(), proc.albedo_mean, atol=1e-5)
    assert model.num_vertices == v and (model.n_id, model.n_exp, model.n_tex) == (6, 3, 4)
    assert np.array_equal(model.landmark_indices.numpy(), proc.landmark_indices)
    assert load_face_model("bfm", tmp_path, n_id=2).n_id == 2


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(MissingAssetError, match="faces.dmi.unibas.ch") as err:
        load_face_model("bfm", tmp_path)
    assert "BFM_model_front.mat" in str(err.value)
    (tmp_path / "01_MorphableModel.mat").write_bytes(b"")
    with pytest.raises(MissingAssetError, match="Exp_Pca.bin"):
        load_face_model("bfm", tmp_path, bfm_source="raw")
    with pytest.raises(MissingAssetError):
        load_face_model("bfm", None)
    with pytest.raises(ConfigError):
        load_face_model("flame")


def test_malformed_files(tmp_path, proc):
    path = tmp_path / bfm.FRONT_FILE
    path.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFormatError, match="BFM_model_front.mat"):
        bfm.load_bfm_front(path)
    arrays = write_bfm_front(path, proc)
    del arrays["idBase"]
    savemat(str(path), arrays)
    with pytest.raises(DataFormatError, match="idBase"):
        bfm.load_bfm_front(path)
    arrays = write_bfm_front(path, proc)
    arrays["keypoints"] = arrays["keypoints"] * 0  # 1-based indices: 0 is out of range
    savemat(str(path), arrays)
    with pytest.raises(DataFormatError, match="keypoints"):
        bfm.load_bfm_front(path)
    arrays = write_bfm_front(path, proc)
    arrays["exBase"] = arrays["exBase"][:-3]
    savemat(str(path), arrays)
    with pytest.raises(DataFormatError, match="exBase"):
        bfm.load_bfm_front(path)


def test_malformed_exp_pca(tmp_path, proc):
    _write_raw(tmp_path, proc, np.random.default_rng(1))
    exp = tmp_path / "Exp_Pca.bin"
    exp.write_bytes(exp.read_bytes()[:-4])
    with pytest.raises(DataFormatError, match="Exp_Pca.bin"):
        load_face_model("bfm", tmp_path)
    _write_raw(tmp_path, proc, np.random.default_rng(1))
    np.savetxt(tmp_path / "std_exp.txt", np.ones(5))
    with pytest.raises(DataFormatError, match="std_exp.txt"):
        load_face_model("bfm", tmp_path)
