"""Quirks of the real releases: AFLW ``.png`` names whose file is a ``.jpg``, LFW glasses subsets
without ``lfw_attributes.txt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from data_fixtures import write_aflw, write_lfw

from datamodules.aflw import PNG_NAME_JPG_FILE, AFLWDataModule
from datamodules.lfw import LFWDataModule
from occrecon.data_check import check_dataset, format_table
from occrecon.errors import MissingAssetError


def rename_in_namelist(root: Path, faces: tuple[int, ...]) -> None:
    """Make the ``nameList`` entries of ``faces`` end in ``.png`` (the files stay ``.jpg``), as 43 AFLW names do."""
    path = root / "AFLWinfo_release.mat"
    mat = scipy.io.loadmat(str(path))
    names = mat["nameList"]
    for i in faces:
        names[i, 0] = np.array([str(names[i, 0].ravel()[0]).replace(".jpg", ".png")])
    scipy.io.savemat(str(path), {k: v for k, v in mat.items() if not k.startswith("__")})


def test_aflw_png_name_falls_back_to_the_jpg_and_is_counted(tmp_path: Path) -> None:
    root = write_aflw(tmp_path / "AFLW", count=10)
    rename_in_namelist(root, (2, 5, 7))
    dm = AFLWDataModule(root=str(root), image_size=32)
    records = dm.index("all")
    assert len(records) == 10 and dm.index_findings == {PNG_NAME_JPG_FILE: 3}
    by_id = {r.id: r.image for r in records}
    assert by_id["5"] == root / "flickr" / "2" / "image00005.jpg"
    assert dm.load(records[0]).image.shape == (40, 40, 3)
    reports = check_dataset("aflw", str(root))
    assert all(not r.failed for r in reports)
    assert sum(r.findings.get(PNG_NAME_JPG_FILE, 0) for r in reports) == 3  # the train split (all 10 faces here)
    assert PNG_NAME_JPG_FILE in format_table(reports)


def test_aflw_png_without_any_file_is_still_missing(tmp_path: Path) -> None:
    root = write_aflw(tmp_path / "AFLW", count=10)
    rename_in_namelist(root, (4,))
    (root / "flickr" / "1" / "image00004.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image00004\.png"):
        AFLWDataModule(root=str(root), image_size=32).index("all")


@pytest.mark.parametrize("glasses", ["with", "without"])
def test_lfw_glasses_subset_without_attribute_file_names_it(tmp_path: Path, glasses: str) -> None:
    root = write_lfw(tmp_path / "LFW")
    (root / "lfw_attributes.txt").unlink()
    dm = LFWDataModule(root=str(root), glasses=glasses, image_size=32)
    with pytest.raises(MissingAssetError, match="lfw_attributes.txt"):
        dm.make_dataset("pairs")
    assert len(LFWDataModule(root=str(root), glasses="all", image_size=32).make_dataset("pairs")) == 40
