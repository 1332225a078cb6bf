"""AFLW-19 loading from an AFLWinfo_release.mat written with scipy in the documented structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from data_fixtures import write_aflw

from datamodules.aflw import AFLWDataModule, read_aflw_info
from occrecon.errors import DataFormatError


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_aflw(tmp_path / "AFLW", count=10, invisible=(1, 7))


def module(root: Path, **kwargs: object) -> AFLWDataModule:
    return AFLWDataModule(root=str(root), image_size=48, heatmap_size=12, augment=False, train_count=6, **kwargs)


def test_fields_are_read_in_the_documented_layout(root: Path) -> None:
    mat = scipy.io.loadmat(str(root / "AFLWinfo_release.mat"))
    info = read_aflw_info(root / "AFLWinfo_release.mat")
    np.testing.assert_allclose(info["landmarks"][4, :, 0], mat["data"][4, :19] - 0.5)
    np.testing.assert_allclose(info["landmarks"][4, :, 1], mat["data"][4, 19:] - 0.5)
    assert info["names"][4] == "1/image00004.jpg"
    assert info["visibility"][1].sum() == 18 and not info["visibility"][1, 18]


def test_ra_split_and_frontal_subset(root: Path) -> None:
    dm = module(root)
    # ra = [10, 9, ..., 1] (1-based): train = faces 9..4, test = faces 3..0
    assert [r.id for r in dm.index("train")] == ["9", "8", "7", "6", "5", "4"]
    assert [r.id for r in dm.index("test")] == ["3", "2", "1", "0"]
    assert [r.id for r in dm.index("frontal")] == ["3", "2", "0"]  # face 1 has an invisible chin


def test_sample_is_the_bbox_crop_with_margin_and_keeps_visibility(root: Path) -> None:
    dm = module(root, margin=0.1)
    sample = dm.make_dataset("test")[2]  # face 1
    info = read_aflw_info(root / "AFLWinfo_release.mat")
    # bbox [8, 32, 8, 32] squared with 10 % per side: side 28.8 starting at 5.6
    expected = (info["landmarks"][1] - 5.6) * 48 / 28.8
    np.testing.assert_allclose(sample["landmarks"].numpy(), expected, rtol=1e-5, atol=1e-4)
    assert sample["visibility"].sum() == 18 and not sample["visibility"][18]
    assert sample["edge_lines"].shape == (13, 12, 12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("ra"), "'ra' = a 1-based permutation"),
        (lambda m: m.update(data=m["data"][:, :36]), "'data' of shape Nx38, got 10x36"),
        (lambda m: m.update(mask_new=m["mask_new"][:9]), "'mask_new' of shape 10x19"),
        (lambda m: m.pop("bbox"), "a field 'bbox'"),
    ],
)
def test_malformed_mat_names_the_field(root: Path, change, message: str) -> None:
    path = root / "AFLWinfo_release.mat"
    mat = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    change(mat)
    scipy.io.savemat(str(path), mat)
    with pytest.raises(DataFormatError, match=message):
        read_aflw_info(path)


def test_missing_image_raises_or_is_skipped(root: Path) -> None:
    (root / "flickr" / "0" / "image00003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="image00003.jpg"):
        module(root).index("test")
    assert len(module(root, skip_bad=True).make_dataset("test")) == 3
