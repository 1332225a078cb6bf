"""Detected landmarks attached to unannotated CelebAMask-HQ images, cached per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import CELEBA_IDS, write_celebamask
from PIL import Image

from datamodules.celebamask_hq import CelebAMaskHQDataModule
from occrecon.faces import landmark_cache

MASK = 256


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    pytest.importorskip("skimage", reason="scikit-image (the astronaut photo) not installed")
    from occrecon.assets.face_api import face_models_cached

    if not face_models_cached():
        pytest.skip("face-api networks not cached: run `occrecon assets fetch face-api`")
    from occrecon.faces.samples import astronaut

    root = write_celebamask(tmp_path / "CelebAMask-HQ", image_size=32, mask_size=MASK)
    # the first image becomes a real face (public domain); the others stay face-less drawings
    photo = Image.fromarray(astronaut())
    photo.save(root / "CelebA-HQ-img" / f"{CELEBA_IDS[0]}.jpg", quality=95)
    return root


def test_detected_landmarks_are_attached_and_cached(root, tmp_path, monkeypatch):
    cache = tmp_path / "lm"
    dm = CelebAMaskHQDataModule(root=str(root), image_size=MASK, augment=False, detect_landmarks=True,
                                landmark_cache=str(cache))  # fmt: skip
    records = dm.index("all")
    face = dm.load(records[0])
    assert face.landmarks.shape == (68, 2) and face.visibility.all()
    # the image is resized to the 256 px mask: the astronaut's eyes are in the upper middle
    eyes = face.landmarks[36:48]
    assert 60 < eyes[:, 0].mean() < 200 and 40 < eyes[:, 1].mean() < 140
    assert (cache / f"{records[0].id}_{MASK}.npy").is_file()
    blank = dm.load(records[1])  # no face: cached as invisible points
    assert not blank.visibility.any()
    # second pass: read from the cache, the detector is never built
    monkeypatch.setattr(landmark_cache, "_DETECTORS", {})
    monkeypatch.setattr(landmark_cache, "_detector", lambda size: pytest.fail("detector called on a cached image"))
    again = dm.load(records[0])
    np.testing.assert_array_equal(again.landmarks, face.landmarks)
    # the batch carries them (landmarks + visibility) through the shared FaceDataset
    sample = dm.make_dataset("all")[0]
    assert sample["landmarks"].shape == (68, 2) and bool(sample["visibility"].all())


def test_default_off_keeps_samples_without_landmarks(root):
    dm = CelebAMaskHQDataModule(root=str(root), image_size=MASK, augment=False)
    assert dm.load(dm.index("all")[0]).landmarks is None
