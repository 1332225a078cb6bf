"""LFW loading: pairs.txt folds, eyewear attribute, glasses subsets, deep-funneled images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_fixtures import lfw_pair_lines, write_lfw

from datamodules.lfw import EYEGLASSES, NO_EYEWEAR, UNKNOWN, LFWDataModule, read_eyewear, read_pairs
from occrecon.errors import DataFormatError


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_lfw(tmp_path / "LFW", folds=10, per_class=2, eyeglasses=("Abel_Pacheco",))


def module(root: Path, **kwargs: object) -> LFWDataModule:
    return LFWDataModule(root=str(root), image_size=16, batch_size=4, num_workers=0, **kwargs)


def test_pairs_have_ten_folds_of_matched_then_mismatched(root: Path) -> None:
    pairs = read_pairs(root / "pairs.txt")
    assert len(pairs) == 40 and sorted({p.fold for p in pairs}) == list(range(10))
    assert [p.same for p in pairs[:4]] == [True, True, False, False]
    assert pairs[0].a == ("Aaron_Eckhart", 1) and pairs[0].b == ("Aaron_Eckhart", 2)
    assert pairs[2].a == ("Aaron_Eckhart", 1) and pairs[2].b == ("Abel_Pacheco", 2)


def test_eyewear_by_argmax_with_spaces_mapped_to_folders(root: Path) -> None:
    eyewear = read_eyewear(root / "lfw_attributes.txt")
    assert eyewear[("Abel_Pacheco", 1)] == EYEGLASSES and eyewear[("Aaron_Eckhart", 2)] == NO_EYEWEAR
    assert ("Zico", 2) not in eyewear


def expected_pairs(glasses: str) -> int:
    count = 0
    for line in lfw_pair_lines(10, 2)[1:]:
        f = line.split("\t")
        keys = [(f[0], int(f[1])), (f[0], int(f[2]))] if len(f) == 3 else [(f[0], int(f[1])), (f[2], int(f[3]))]
        wearing = any(k[0] == "Abel_Pacheco" for k in keys)
        unknown = ("Zico", 2) in keys
        count += glasses == "all" or (not unknown and wearing == (glasses == "with"))
    return count


@pytest.mark.parametrize("glasses", ["all", "with", "without"])
def test_glasses_pair_subsets(root: Path, glasses: str) -> None:
    dataset = module(root, glasses=glasses).make_dataset("pairs")
    assert len(dataset) == expected_pairs(glasses) and len(dataset) > 0
    for ia, ib, _, _ in dataset.pairs:
        worn = {dataset.eyewear[ia], dataset.eyewear[ib]}
        if glasses == "with":
            assert EYEGLASSES in worn and UNKNOWN not in worn
        if glasses == "without":
            assert worn == {NO_EYEWEAR}


def test_pair_batches_and_fold_selection(root: Path) -> None:
    dm = module(root, folds=[3])
    batch = next(iter(dm.test_dataloader()))
    assert batch["image_a"].shape == (4, 3, 16, 16) and batch["fold"].tolist() == [3, 3, 3, 3]
    assert batch["same"].tolist() == [True, True, False, False]
    assert batch["meta_a"]["id"][0] == "Zico_0001"  # fold 3 starts with person (3 + 0) % 4


def test_wrong_field_count_names_the_line(root: Path) -> None:
    lines = (root / "pairs.txt").read_text().splitlines()
    lines[2] = "Aaron_Eckhart\t1\tAbel_Pacheco\t2"  # a mismatched line where a matched one belongs
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"pairs.txt:3: expected 3 fields .*got 4 fields"):
        read_pairs(root / "pairs.txt")
    assert len(module(root, skip_bad=True).make_dataset("pairs")) == 39


def test_header_and_line_count_are_checked(root: Path) -> None:
    lines = (root / "pairs.txt").read_text().splitlines()
    (root / "pairs.txt").write_text("\n".join(["10 folds", *lines[1:]]) + "\n")
    with pytest.raises(DataFormatError, match=r"pairs.txt:1: expected the header"):
        read_pairs(root / "pairs.txt")
    (root / "pairs.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"expected 40 pair lines"):
        read_pairs(root / "pairs.txt")


def test_deep_funneled_folder_and_missing_image(root: Path) -> None:
    shutil.copytree(root / "lfw", root / "lfw-deepfunneled")
    images = module(root, image_dir="lfw-deepfunneled").make_dataset("images")
    assert len(images) == 8 and "lfw-deepfunneled" in images[0]["meta"]["path"]
    eyewear = {images[i]["meta"]["id"]: int(images[i]["eyewear"]) for i in range(8)}
    assert eyewear["Abel_Pacheco_0001"] == EYEGLASSES and eyewear["Zico_0002"] == UNKNOWN
    (root / "lfw" / "Zico" / "Zico_0001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="Zico_0001.jpg"):
        module(root).make_dataset("pairs")
