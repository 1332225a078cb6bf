"""face-api detector / landmark ports against the original (tfjs WASM under Node) on real photos.

Reference outputs: tests/fixtures/face_api/ (regenerate with tools/face_api_reference/make_fixtures.py).
Photos: public-domain ones shipped by scikit-image and matplotlib (occrecon.faces.samples).
Tolerances (measured on the first run: raw grid 2.5e-4, landmarks 1.4e-5 px): raw detector grid
1e-3 absolute (logits up to ~45), boxes 0.01 px, scores 1e-4, landmarks 1e-3 px. Both detectors
(tiny face detector, SSD MobileNet v1) and both landmark nets (full, tiny) are checked.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from occrecon.assets import face_api
from occrecon.errors import MissingAssetError
from occrecon.faces.detect import FaceDetector, image_tensor, nms
from occrecon.faces.nets import pad_same, resize_bilinear_tf

FIXTURES = Path(__file__).parent / "fixtures" / "face_api"


@pytest.fixture(scope="module")
def reference():
    return json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def images():
    pytest.importorskip("skimage", reason="scikit-image (the astronaut photo) not installed")
    from occrecon.faces.samples import reference_images

    return reference_images()


def _fetch_or_skip():
    """Converted weights from the cache, else `npm pack` them once (CI), else skip with the reason."""
    if face_api.face_models_cached():
        return
    if shutil.which("npm") is None:
        pytest.skip("face-api weights not cached and npm missing: run `occrecon assets fetch face-api`")
    try:
        face_api.fetch_face_api()
    except MissingAssetError as err:
        pytest.skip(f"face-api weights not cached and not fetchable: {err}")


@pytest.fixture(scope="module")
def detectors():
    _fetch_or_skip()
    torch.set_num_threads(1)
    return {size: FaceDetector(input_size=size, min_face_size=0) for size in (320, 416, 608)}


@pytest.fixture(scope="module")
def ssd():
    _fetch_or_skip()
    return FaceDetector(kind="ssd", min_face_size=0)


def test_ssd_scores_and_boxes_equal_original(reference, images, ssd):
    """SSD MobileNet v1: all 5118 anchor scores to 1e-4, final boxes to 0.01 px (measured 1e-6 / 3e-5)."""
    grids = np.load(FIXTURES / "reference_detector_grids.npz")
    for im in reference["images"]:
        _, scores = ssd.face_api_ssd(images[im["name"]])
        np.testing.assert_allclose(scores, grids[f"{im['name']}_ssd_scores"], rtol=0, atol=1e-4, err_msg=im["name"])
        ours = ssd.face_api_detect(images[im["name"]])
        assert len(ours) == len(im["ssd_faces"]) >= 1, im["name"]
        for (box, score), ref in zip(ours, im["ssd_faces"], strict=True):
            np.testing.assert_allclose(box, ref["box"], rtol=0, atol=0.01)
            assert score == pytest.approx(ref["score"], abs=1e-4)
    faces = ssd.detect(images["pair"])
    assert len(faces) == 2 and all(f.landmarks.shape == (68, 2) for f in faces)


@pytest.fixture(scope="module")
def tiny_landmarker():
    _fetch_or_skip()
    return FaceDetector(landmark_model="face_landmark_68_tiny", min_face_size=0)


def test_fixture_covers_several_real_photos(reference):
    assert reference["backend"] == "wasm" and reference["faceapi"] == "1.7.15"
    counts = {im["name"]: len(im["faces"]) for im in reference["images"]}
    assert counts == {"astronaut": 1, "grace_hopper": 1, "pair": 2, "astronaut_portrait": 1}


def test_detector_grid_equals_original(reference, images, detectors):
    grids = np.load(FIXTURES / "reference_detector_grids.npz")
    for im in reference["images"]:
        ours = detectors[im["input_size"]].face_api_raw(images[im["name"]]).numpy()
        expected = grids[im["name"]].reshape(ours.shape)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-3, err_msg=im["name"])


def test_boxes_and_scores_equal_original(reference, images, detectors):
    for im in reference["images"]:
        ours = detectors[im["input_size"]].face_api_detect(images[im["name"]])
        assert len(ours) == len(im["faces"]), im["name"]
        for (box, score), ref in zip(ours, im["faces"], strict=True):
            np.testing.assert_allclose(box, ref["box"], rtol=0, atol=0.01)
            assert score == pytest.approx(ref["score"], abs=1e-4)


@pytest.mark.parametrize("which", ["landmarks68", "landmarks68_tiny"])
def test_landmarks_on_the_same_crops_equal_original(reference, images, detectors, tiny_landmarker, which):
    net = tiny_landmarker if which.endswith("tiny") else detectors[416]
    for im in reference["images"]:
        full = image_tensor(images[im["name"]])
        for face in im["faces"]:
            x, y, w, h = face["crop"]
            ours = net.face_api_landmarks([full[..., y : y + h, x : x + w]])[0]
            np.testing.assert_allclose(ours, face[which], rtol=0, atol=1e-3, err_msg=f"{im['name']} {which}")


def test_detect_returns_photo_frame_landmarks(reference, images, detectors):
    """detect(): crop origin added and face-api's integer-centre coordinates moved by +0.5."""
    for im in reference["images"]:
        faces = detectors[im["input_size"]].detect(images[im["name"]])
        for face, ref in zip(faces, im["faces"], strict=True):
            x, y, w, h = ref["crop"]
            expected = np.asarray(ref["landmarks68"]) + [x + 0.5, y + 0.5]
            np.testing.assert_allclose(face.landmarks, expected, rtol=0, atol=1e-3)
            bx, by, bw, bh = ref["box"]
            np.testing.assert_allclose(face.box, [bx + 0.5, by + 0.5, bx + bw + 0.5, by + bh + 0.5], atol=0.01)
            # the 68 points lie inside the face box (slack for the chin below a tight box)
            assert face.landmarks[:, 0].min() > face.box[0] - 5 and face.landmarks[:, 0].max() < face.box[2] + 5


def test_min_face_size_drops_small_faces(images, detectors):
    faces = detectors[608].detect(images["pair"], landmarks=False)
    assert len(faces) == 2
    big = FaceDetector(input_size=608, min_face_size=150, detector=detectors[608].detector,
                       landmarker=detectors[608].landmarker)  # fmt: skip
    kept = big.detect(images["pair"], landmarks=False)
    assert len(kept) == 1 and kept[0].box[0] > 512  # only Grace Hopper's (216 px) face, right half
    assert kept[0].size >= 150


def test_no_face_in_a_flat_image(detectors):
    assert detectors[416].detect(np.full((300, 200, 3), 128, np.uint8)) == []


def test_nms_hand_example():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], float)
    scores = np.array([0.6, 0.9, 0.5, 0.8])
    # IoU(1, 0) = 90/110 > 0.4 -> dropped; IoU(1, 3) = 45/105 = 0.43 -> dropped; box 2 is apart
    assert nms(boxes, scores) == [1, 2]
    assert nms(boxes, scores, iou_threshold=0.5) == [1, 3, 2]


def test_tf_same_padding_and_legacy_resize_by_hand():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert pad_same(x, 3, 2).shape[-2:] == (5, 5)  # H: total 2 -> 1/1; W: total 1 -> 0 before, 1 after
    assert pad_same(x, 3, 2)[0, 0, 0].tolist() == [0.0] * 5
    assert pad_same(x, 3, 2)[0, 0, 1].tolist() == [0.0, 1.0, 2.0, 3.0, 0.0]
    row = torch.tensor([[[[0.0, 10.0, 20.0]]]])
    # size 2 from 3: samples at 0 and 1.5 -> 0 and 15 (tfjs halfPixelCenters=false)
    assert resize_bilinear_tf(row.expand(1, 1, 3, 3), 2)[0, 0, 0].tolist() == [0.0, 15.0]
    # upsampling 3 -> 4: positions 0, .75, 1.5, 2.25 (last clamps to pixel 2)
    assert resize_bilinear_tf(row.expand(1, 1, 3, 3), 4)[0, 0, 0].tolist() == [0.0, 7.5, 15.0, 20.0]


def test_converter_layouts_by_hand():
    weights = {
        "conv0/filters": np.arange(3 * 3 * 3 * 16, dtype=np.float32).reshape(3, 3, 3, 16),
        "conv1/depthwise_filter": np.arange(3 * 3 * 16, dtype=np.float32).reshape(3, 3, 16, 1),
        "fc/weights": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    state = face_api.face_model_state_dict(weights)
    assert state["conv0.weight"][5, 2, 1, 0] == weights["conv0/filters"][1, 0, 2, 5]
    assert state["conv1.depthwise.weight"].shape == (16, 1, 3, 3)
    assert state["conv1.depthwise.weight"][7, 0, 2, 1] == weights["conv1/depthwise_filter"][2, 1, 7, 0]
    assert state["fc.weight"][2, 1] == weights["fc/weights"][1, 2]


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path))
    with pytest.raises(MissingAssetError, match="occrecon assets fetch face-api"):
        FaceDetector()
