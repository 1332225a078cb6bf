"""CelebAMask-HQ loading: part-mask merge in order A, remap of orders B/C, partition, eyeglasses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import celeba_parts, save_image, write_celeba_partition, write_celebamask

from datamodules.celebamask_hq import ORDER_B, ORDER_C, CelebAMaskHQDataModule, partition_from_orig_idx
from occrecon.errors import DataFormatError

MASK = 16


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_celebamask(tmp_path / "CelebAMask-HQ", image_size=32, mask_size=MASK)


def module(root: Path, **kwargs: object) -> CelebAMaskHQDataModule:
    return CelebAMaskHQDataModule(root=str(root), image_size=MASK, augment=False, **kwargs)


def expected_labels() -> np.ndarray:
    """Order A by hand: skin 1, nose 2, l_eye 4, r_eye 5, hair 13 (the fixture's parts do not overlap but skin)."""
    parts = celeba_parts(MASK)
    labels = np.zeros((MASK, MASK), np.int64)
    for name, value in (("skin", 1), ("nose", 2), ("l_eye", 4), ("r_eye", 5), ("hair", 13)):
        labels[parts[name] > 0] = value
    return labels


def test_partition_from_mapping_uses_celeba_file_numbers(root: Path) -> None:
    dm = module(root)
    assert [[r.id for r in dm.index(s)] for s in ("train", "val", "test")] == [["0", "1"], ["2", "3"], ["2000", "2001"]]
    # CelebA: 000001-162770 train, 162771-182637 val, 182638- test (file number = orig_idx + 1)
    assert [partition_from_orig_idx(i) for i in (162769, 162770, 182636, 182637)] == ["train", "val", "val", "test"]


def test_list_eval_partition_takes_precedence(root: Path) -> None:
    names = {f"{orig + 1:06d}.jpg": 2 for orig in (100, 162769, 162770, 182636, 182637, 190000)}
    names["000101.jpg"] = 1
    write_celeba_partition(root, names)
    dm = module(root)
    assert [len(dm.index(s)) for s in ("train", "val", "test")] == [0, 1, 5]


def test_parts_merge_into_order_a_and_images_resize_to_the_masks(root: Path) -> None:
    dataset = module(root).make_dataset("train")
    for i in range(2):
        sample = dataset[i]
        np.testing.assert_array_equal(sample["label_map"].numpy(), expected_labels())
        assert sample["image"].shape == (3, MASK, MASK)
    assert [bool(dataset[i]["eyeglasses"]) for i in range(2)] == [False, True]


def test_mask_folders_are_id_div_2000_and_16_bit_masks_work(root: Path) -> None:
    skin = celeba_parts(MASK)["skin"].astype(np.uint16) * 257  # 0 / 65535
    save_image(root / "CelebAMask-HQ-mask-anno" / "1" / "02000_skin.png", skin)
    sample = module(root).make_dataset("test")[0]
    np.testing.assert_array_equal(sample["label_map"].numpy(), expected_labels())


def test_glasses_subsets(root: Path) -> None:
    assert [r.id for r in module(root, glasses="with").index("train")] == ["1"]
    assert [r.id for r in module(root, glasses="without").index("test")] == ["2001"]


def test_missing_skin_mask_is_reported(root: Path) -> None:
    (root / "CelebAMask-HQ-mask-anno" / "0" / "00001_skin.png").unlink()
    with pytest.raises(FileNotFoundError, match="00001_skin.png"):
        module(root).make_dataset("train")[1]


def test_remap_tables_by_hand() -> None:
    assert sorted(ORDER_B) == list(range(19)) and sorted(ORDER_C) == list(range(19))
    assert (ORDER_B[2], ORDER_B[6], ORDER_B[10], ORDER_B[17]) == (6, 3, 2, 13)  # l_brow, eye_g, nose, hair
    assert (ORDER_C[1], ORDER_C[2], ORDER_C[15], ORDER_C[18]) == (17, 1, 3, 16)  # neck, skin, eye_g, neck_l


def test_merged_maps_in_order_b_are_remapped(root: Path) -> None:
    merged = np.zeros((MASK, MASK), np.uint8)
    merged[:4] = 17  # hair in order B
    merged[8:10, 4:7] = 4  # l_eye in order B (same value as order A)
    merged[12, :] = 2  # l_brow in order B
    for index in (0, 1):
        save_image(root / "CelebAMask-HQ-mask" / f"{index}.png", merged)
    labels = module(root, label_source="merged", merged_order="B").make_dataset("train")[0]["label_map"].numpy()
    assert (labels[:4] == 13).all() and (labels[8:10, 4:7] == 4).all() and (labels[12] == 6).all()


def test_merged_label_value_255_is_out_of_range(root: Path) -> None:
    merged = np.zeros((MASK, MASK), np.uint8)
    merged[3, 3] = 255
    save_image(root / "CelebAMask-HQ-mask" / "0.png", merged)
    with pytest.raises(DataFormatError, match=r"0.png: expected label values in 0..18, got 255"):
        module(root, label_source="merged").make_dataset("train")[0]


def test_attribute_file_row_errors_name_the_line(root: Path) -> None:
    path = root / "CelebAMask-HQ-attribute-anno.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]  # 39 values
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="attribute-anno.txt:4"):
        module(root).index("train")
