"""The procedural face: symmetry, topology, landmarks vs regions, expressions, albedo, framing."""

import numpy as np
import pytest
import torch

from occrecon.facemodel import procedural
from occrecon.facemodel.morphable import MorphableModel
from occrecon.labels import CELEBAMASK as L
from occrecon.labels import CELEBAMASK_FLIP
from occrecon.landmarks import FLIP_68

REFLECT = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def data():
    return procedural.procedural_face_data()


@pytest.fixture(scope="module")
def model(data):
    return MorphableModel(data)


def test_sizes(data, model):
    assert 2000 <= len(data.mean_shape) <= 12000
    assert (model.n_id, model.n_exp, model.n_tex) == (80, 64, 80)
    assert model.layout("paper").size == 239 and model.layout("deep3d").size == 257
    assert data.triangles.min() == 0 and data.triangles.max() == len(data.mean_shape) - 1


def test_zero_coefficients_give_the_mean_shape(model):
    geom = model(model.layout().zeros(2))
    assert torch.equal(geom.vertices[1], model.mean_shape)


def test_mirror_map_is_an_exact_symmetry(data):
    m = data.mirror_index
    assert (m >= 0).all() and np.array_equal(m[m], np.arange(len(m)))
    assert np.abs(data.mean_shape[m] * REFLECT - data.mean_shape).max() < 1e-6
    id_reflected = data.id_basis[m] * REFLECT[None, :, None]
    assert np.abs(id_reflected - data.id_basis).max() < 1e-6
    named = len(data.expression_names)
    exp_reflected = data.exp_basis[m, :, :named] * REFLECT[None, :, None]
    assert np.abs(exp_reflected - data.exp_basis[:, :, :named]).max() < 1e-6
    flip = np.array(CELEBAMASK_FLIP)
    assert np.array_equal(data.region_labels[m], flip[data.region_labels])
    assert np.array_equal(data.landmark_indices[list(FLIP_68)], m[data.landmark_indices])


def test_landmarks_lie_in_their_regions(data):
    lab = data.region_labels[data.landmark_indices]
    # subject-side labels on image-side landmarks: the image-left eye/brow (36-41, 17-21) is r_
    assert (lab[36:42] == L["r_eye"]).all() and (lab[42:48] == L["l_eye"]).all()
    assert (lab[17:22] == L["r_brow"]).all() and (lab[22:27] == L["l_brow"]).all()
    assert np.isin(lab[48:60], [L["u_lip"], L["l_lip"]]).all()
    assert np.isin(lab[60:68], [L["u_lip"], L["l_lip"], L["mouth"]]).all()
    assert lab[30] == L["nose"]
    # CelebAMask-HQ convention: l_ = the subject's left = the image's right = positive x
    x = data.mean_shape[:, 0]
    assert (x[data.region_labels == L["l_eye"]] > 0).all() and (x[data.region_labels == L["r_eye"]] < 0).all()
    lm = data.mean_shape[data.landmark_indices]
    assert lm[0, 0] < lm[8, 0] < lm[16, 0] and lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    assert lm[8, 1] < lm[57, 1] < lm[51, 1] < lm[33, 1] < lm[27, 1] < lm[19, 1]  # chin -> brow, upwards


def test_every_listed_region_is_present(data):
    present = set(np.unique(data.region_labels).tolist())
    for name in ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth", "neck"):
        assert L[name] in present, name


def test_topology_no_degenerate_triangles_consistent_winding(data):
    v, f = data.mean_shape, data.triangles
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-7  # dm^2
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # consistently oriented manifold: each directed edge is used once (its twin, if any, reversed)
    assert len(np.unique(directed, axis=0)) == len(directed)
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)  # no duplicate triangles


def test_normals_point_outward(model, data):
    n = model.vertex_normals(model.mean_shape[None])[0].numpy()
    tip = data.landmark_indices[30]
    assert n[tip, 2] > 0.9
    chin = data.landmark_indices[8]
    assert n[chin, 2] > 0.0
    # left cheek faces -x, right cheek +x (no inverted patches on the face)
    face = data.face_mask & (np.abs(data.mean_shape[:, 0]) > 0.55)
    assert (np.sign(n[face, 0]) == np.sign(data.mean_shape[face, 0])).mean() > 0.97


def test_size_and_deep3d_framing(data):
    v = data.mean_shape
    face = v[data.face_mask]
    width = face[:, 0].max() - face[:, 0].min()
    assert 1.4 < width < 1.9  # dm, like BFM in Deep3D units
    lm = v[data.landmark_indices]
    eye_dist = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
    assert 0.55 < eye_dist < 0.7  # Deep3D's 3D template: eye centres 0.62 dm apart
    # Deep3D camera: focal 1015 px, principal point 112, camera at z = 10
    px = 112 + 1015 * lm[:, 0] / (10 - lm[:, 2])
    py = 112 - 1015 * lm[:, 1] / (10 - lm[:, 2])
    assert px.min() > 20 and px.max() < 204 and py.min() > 40 and py.max() < 210
    assert 95 < px.max() - px.min() < 175


def _landmarks_after(data, name, value):
    k = data.expression_names.index(name)
    v = data.mean_shape + value * data.exp_basis[:, :, k]
    return v[data.landmark_indices], data.mean_shape[data.landmark_indices]


def test_jaw_open_lowers_the_chin_not_the_eyes(data):
    after, before = _landmarks_after(data, "jaw_open", 1.0)
    dy = after[:, 1] - before[:, 1]
    assert dy[8] < -0.05 and dy[57] < -0.05 and dy[66] < -0.05
    assert abs(dy[51]) < 0.01 and abs(dy[62]) < 0.01 and np.abs(dy[36:48]).max() < 1e-3
    assert after[62, 1] - after[66, 1] > 0.05  # the lips part


def test_eye_close_moves_upper_lids_down(data):
    after, before = _landmarks_after(data, "eye_close", 1.0)
    dy = after[:, 1] - before[:, 1]
    upper, lower = dy[[37, 38, 43, 44]], dy[[41, 40, 47, 46]]
    assert (upper < -0.02).all()
    assert (np.abs(lower) < 0.35 * np.abs(upper)).all() and np.abs(dy[48:68]).max() < 1e-6
    assert (
        after[[37, 38, 43, 44], 1] - after[[41, 40, 47, 46], 1]
        < 0.6 * (before[[37, 38, 43, 44], 1] - before[[41, 40, 47, 46], 1])
    ).all()


def test_smile_and_brow_raise(data):
    after, before = _landmarks_after(data, "smile", 1.0)
    assert (after[[48, 54], 1] - before[[48, 54], 1] > 0.02).all()
    assert after[54, 0] - after[48, 0] > before[54, 0] - before[48, 0]
    after, before = _landmarks_after(data, "brow_raise", 1.0)
    assert (after[17:27, 1] - before[17:27, 1] > 0.02).all()


def test_albedo_ranges_and_named_modes(data):
    a, b = data.albedo_mean, data.albedo_basis
    assert a.min() >= 0 and a.max() <= 1
    for k in range(8):  # named modes stay in range at +-3 sigma
        assert (a + 3 * b[:, :, k]).min() >= 0 and (a - 3 * b[:, :, k]).max() <= 1
    skin = data.region_labels == L["skin"]
    assert (b[skin, :, 0].sum(1) < 0).all()  # mode 0: skin tone light -> dark
    lips, brows = (
        np.isin(data.region_labels, [L["u_lip"], L["l_lip"]]),
        np.isin(data.region_labels, [L["l_brow"], L["r_brow"]]),
    )
    ratio = lambda m: (a[m, 0] / a[m, 1]).mean()  # noqa: E731
    assert ratio(lips) > ratio(skin) + 0.3  # lips are redder than skin
    assert a[brows].mean() < a[skin].mean() - 0.3


def test_deterministic_rebuild(data):
    procedural._build.cache_clear()
    again = procedural.procedural_face_data()
    for name in (
        "mean_shape",
        "id_basis",
        "exp_basis",
        "albedo_basis",
        "triangles",
        "landmark_indices",
        "region_labels",
    ):
        assert np.array_equal(getattr(again, name), getattr(data, name)), name


def test_factory_loads_and_truncates():
    from occrecon.facemodel import load_face_model

    model = load_face_model("procedural", n_id=10, n_exp=6, n_tex=8)
    assert (model.n_id, model.n_exp, model.n_tex) == (10, 6, 8)
    assert model.expression_names[:4] == ("jaw_open", "smile", "brow_raise", "eye_close")
    assert model.layout("paper").size == 10 + 6 + 8 + 9 + 6
    assert model.mm_per_unit == 100.0
