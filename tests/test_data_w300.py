"""300W loading: .pts syntax, split folders, crop from landmarks with a margin, image variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import jpeg_with_exif_rotation, landmarks68, pts_text, save_image, write_300w

from datamodules.w300 import W300DataModule, read_pts
from occrecon.errors import DataFormatError

SIZE = 40


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_300w(tmp_path / "300W", per_folder=1, size=SIZE)


def module(root: Path, **kwargs: object) -> W300DataModule:
    return W300DataModule(root=str(root), image_size=64, heatmap_size=16, augment=False, **kwargs)


def test_split_membership(root: Path) -> None:
    dm = module(root)
    counts = {
        s: len(dm.index(s)) for s in ("train", "common", "challenging", "full", "private", "private_indoor", "all")
    }
    assert counts == {"train": 3, "common": 2, "challenging": 1, "full": 3, "private": 2, "private_indoor": 1, "all": 8}
    assert {r.id.split("/")[0] for r in dm.index("train")} == {"afw", "helen", "lfpw"}
    assert dm.index("private_indoor")[0].id == "01_Indoor/indoor_001"


def test_pts_are_read_in_the_occrecon_frame(root: Path) -> None:
    expected = landmarks68((SIZE / 2 + 3, SIZE / 2), SIZE / 4)  # the fixture writes x + 0.5 (1-based)
    np.testing.assert_allclose(read_pts(root / "ibug" / "image_5000.pts"), expected, atol=1e-3)


@pytest.mark.parametrize("margin", [0.0, 0.25])
def test_crop_is_the_landmark_square_with_margin(root: Path, margin: float) -> None:
    sample = module(root, margin=margin).make_dataset("challenging")[0]
    points = sample["landmarks"].numpy()
    extent = points.max(0) - points.min(0)
    np.testing.assert_allclose(extent.max(), 64 / (1 + 2 * margin), rtol=1e-4)
    np.testing.assert_allclose((points.max(0) + points.min(0)) / 2, [32, 32], atol=1e-3)
    # points exactly on the far border (margin 0) are outside [0, S) and so marked invisible
    on_far_border = (points >= 64 - 1e-3).any(axis=1)
    np.testing.assert_array_equal(sample["visibility"].numpy(), ~on_far_border)
    assert sample["edge_lines"].shape == (13, 16, 16)
    assert sample["edge_lines"].amax(dim=(1, 2)).min() > 0.5  # every line is drawn inside the crop


def write_pts_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_67_points_is_an_error_naming_the_line(root: Path) -> None:
    path = root / "afw" / "image_0000.pts"
    path.write_text(pts_text(landmarks68((20, 20), 10)[:67]))
    with pytest.raises(DataFormatError, match=r"image_0000.pts:2: expected 68 points, got 67"):
        read_pts(path)
    lines = pts_text(landmarks68((20, 20), 10)).splitlines()
    write_pts_lines(path, lines[:70] + ["}"])  # header says 68 but only 67 point lines
    with pytest.raises(DataFormatError, match=r"image_0000.pts:71: expected point 68 of 68"):
        read_pts(path)


def test_header_is_checked_exactly(root: Path) -> None:
    path = root / "afw" / "image_0000.pts"
    lines = pts_text(landmarks68((20, 20), 10)).splitlines()
    write_pts_lines(path, ["version: 2", *lines[1:]])
    with pytest.raises(DataFormatError, match=r":1: expected 'version: 1', got 'version: 2'"):
        read_pts(path)
    write_pts_lines(path, [*lines[:-1], "end"])
    with pytest.raises(DataFormatError, match=r":72: expected '}'"):
        read_pts(path)


def test_bad_pts_is_skipped_and_counted_when_asked(root: Path) -> None:
    (root / "afw" / "image_0000.pts").write_text(pts_text(landmarks68((20, 20), 10)[:67]))
    with pytest.raises(DataFormatError):
        module(root).index("train")
    dataset = module(root, skip_bad=True).make_dataset("train")
    assert len(dataset) == 2


def test_missing_image_is_reported(root: Path) -> None:
    (root / "ibug" / "image_5000.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="image_5000"):
        module(root).index("challenging")


def test_exif_rotated_jpeg_and_rgba_png(root: Path) -> None:
    stored = np.full((SIZE, SIZE + 6, 3), 40, np.uint8)
    stored[4:7, 29:32] = 255  # marker around stored pixel (row 5, col 30)
    jpeg_with_exif_rotation(root / "ibug" / "image_5000.jpg", stored, orientation=6)  # viewer rotates 90 deg clockwise
    dm = module(root)
    raw = dm.load(dm.index("challenging")[0])
    assert raw.image.shape == (SIZE + 6, SIZE, 3)
    assert raw.image[30, SIZE - 1 - 5].min() > 200  # (row, col) -> (col, H - 1 - row)
    rgba = np.zeros((SIZE, SIZE + 6, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 120, 255
    save_image(root / "01_Indoor" / "indoor_001.png", rgba)
    sample = dm.make_dataset("private_indoor")[0]
    assert sample["image"].shape == (3, 64, 64) and abs(sample["image"][:, 32, 32].mean().item() - 120 / 255) < 0.02
