"""Left/right label conventions on an asymmetric input: a frontal synthetic face (CONVENTIONS.md "Labels").

The truth comes from the data sets, not from occrecon: in CelebAMask-HQ's own sample label maps
``l_eye`` lies on the image's right (``l_`` = the subject's left), Helen's "left" is the viewer's
(Relabeled-HELEN README), and the 68 iBUG points 36-41 are the eye on the image's left. A frontal
face puts the subject's left on the image's right half, which is what these tests check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.transforms import FaceAugment
from occrecon.facemodel.derived import regions_from_landmarks, vertex_normals_np
from occrecon.facemodel.procedural import procedural_face_data
from occrecon.fusion import fuse_parsing
from occrecon.labels import CELEBAMASK as L
from occrecon.labels import CELEBAMASK_FLIP, CELEBAMASK_TO_HELEN, HELEN
from occrecon.synth.config import SynthConfig
from occrecon.synth.scene import SceneContext

SIZE = 96
SIDED = ("eye", "brow")


@pytest.fixture(scope="module")
def frontal() -> dict[str, np.ndarray]:
    """One frontal, unoccluded sample of the synthetic generator (pose ranges 0)."""
    torch.set_num_threads(1)
    config = SynthConfig(
        n=1, size=SIZE, seed=3, max_yaw_deg=0.0, max_pitch_deg=0.0, max_roll_deg=0.0,
        p_glasses=0.0, p_hand=0.0, p_hair=0.0, exp_scale=0.0,
    )  # fmt: skip
    return SceneContext.create(config).render_sample(0)


def _centroid_x(labels: np.ndarray, value: int) -> float:
    cols = np.nonzero(labels == value)[1]
    assert cols.size > 0, value
    return float(cols.mean() + 0.5)


def test_frontal_synthetic_face_puts_the_subjects_left_on_the_image_right(frontal) -> None:
    labels, marks = frontal["parsing_gt"], frontal["landmarks"]
    for part in SIDED:
        assert _centroid_x(labels, L[f"l_{part}"]) > SIZE / 2 > _centroid_x(labels, L[f"r_{part}"]), part
    # landmarks stay image-side: points 36-41 / 17-21 are the image-left eye / brow = the subject's right
    assert marks[36:42, 0].mean() < SIZE / 2 < marks[42:48, 0].mean()
    assert abs(marks[36:42, 0].mean() - _centroid_x(labels, L["r_eye"])) < 2.0
    assert abs(marks[42:48, 0].mean() - _centroid_x(labels, L["l_eye"])) < 2.0


def test_horizontal_flip_swaps_labels_consistently(frontal) -> None:
    image, labels, marks = frontal["I_gt"], frontal["parsing_gt"], frontal["landmarks"]
    augment = FaceAugment(
        flip_prob=1.0, rotate_deg=0, scale_jitter=0, translate=0, colour_jitter=0, label_flip=CELEBAMASK_FLIP
    )
    _, out_labels, out_marks, _ = augment(image, labels, marks, np.ones(68, bool), np.random.default_rng(0))
    for part in SIDED:
        # the mirrored face is again a frontal face: its subject's left is on the image's right ...
        assert _centroid_x(out_labels, L[f"l_{part}"]) > SIZE / 2 > _centroid_x(out_labels, L[f"r_{part}"])
        # ... and it is exactly the mirror image of the old subject's right
        np.testing.assert_array_equal(out_labels == L[f"l_{part}"], (labels == L[f"r_{part}"])[:, ::-1])
    assert out_marks[36:42, 0].mean() < SIZE / 2 < out_marks[42:48, 0].mean()


def test_helen_view_of_a_celebamask_map_is_viewer_sided(frontal) -> None:
    # as in CelebAMask-HQ's own sample maps: l_ parts on the image's right
    truth = np.zeros((8, 16), np.int64)
    truth[2:4, 10:14], truth[2:4, 2:6] = L["l_eye"], L["r_eye"]
    truth[0:2, 10:14], truth[0:2, 2:6] = L["l_brow"], L["r_brow"]
    for labels in (truth, frontal["parsing_gt"]):
        helen = np.asarray(CELEBAMASK_TO_HELEN)[labels]
        half = labels.shape[1] / 2
        for part in SIDED:  # Helen's "left" = the viewer's left = the image's left
            assert _centroid_x(helen, HELEN[f"l_{part}"]) < half < _centroid_x(helen, HELEN[f"r_{part}"])


def test_regions_derived_from_landmarks_are_subject_sided() -> None:
    """The SFM/BFM path (regions from 68 landmarks) agrees with the procedural model's own labels."""
    data = procedural_face_data()
    normals = vertex_normals_np(data.mean_shape, data.triangles)
    labels = regions_from_landmarks(data.mean_shape, normals, data.landmark_indices)
    x = data.mean_shape[:, 0]  # model space: +x = the image's right of a frontal face
    for part in SIDED:
        assert (x[labels == L[f"l_{part}"]] > 0).all() and (x[labels == L[f"r_{part}"]] < 0).all(), part


def test_fusion_regrows_each_eye_on_its_own_side(frontal) -> None:
    """Glasses hide both eyes; the eyes re-grown from the (image-side) lines keep the subject's sides."""
    gt = torch.from_numpy(frontal["parsing_gt"]).long()[None]
    marks = torch.from_numpy(frontal["landmarks"]).float()[None]
    eyes = (gt == L["l_eye"]) | (gt == L["r_eye"])
    rows = torch.nonzero(eyes[0])[:, 0]
    observed = gt.clone()
    observed[:, rows.min() - 2 : rows.max() + 3] = torch.where(
        gt[:, rows.min() - 2 : rows.max() + 3] > 0, L["eye_g"], 0
    )  # a glasses band across the face
    fused = fuse_parsing(observed, landmarks=marks, landmark_sigma=1.0)[0].numpy()
    for name in ("l_eye", "r_eye"):
        pred, true = fused == L[name], gt[0].numpy() == L[name]
        assert (pred & true).sum() / (pred | true).sum() > 0.4, name
    assert _centroid_x(fused, L["l_eye"]) > SIZE / 2 > _centroid_x(fused, L["r_eye"])
