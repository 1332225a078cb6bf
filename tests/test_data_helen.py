"""Helen (SmithCVPR2013_dataset_resized) loading from fixtures in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import helen_labels, save_image, truncate, write_helen

from datamodules.common import IGNORE_LABEL
from datamodules.helen import HelenDataModule
from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.labels import HELEN

H, W = 24, 20


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_helen(tmp_path / "SmithCVPR2013_dataset_resized", size=(H, W))


def module(root: Path, **kwargs: object) -> HelenDataModule:
    return HelenDataModule(root=str(root), image_size=H, augment=False, **kwargs)


def test_splits_follow_exemplars_tuning_testing(root: Path) -> None:
    dm = module(root)
    assert [len(dm.index(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    assert dm.index("test")[0].id == "100000004_1"


def test_label_map_is_the_argmax_of_the_eleven_soft_maps(root: Path) -> None:
    dm = module(root)
    sample = dm.make_dataset("train")[0]
    labels = sample["label_map"].numpy()
    # whole 24x20 image padded to a 24x24 square: 2 unannotated columns on each side
    np.testing.assert_array_equal(labels[:, 2:22], helen_labels(H, W))
    assert (labels[:, :2] == IGNORE_LABEL).all() and (labels[:, 22:] == IGNORE_LABEL).all()
    assert HELEN["l_eye"] in labels[:, : H // 2] and sample["image"].shape == (3, H, H)


def test_grayscale_image_and_16_bit_maps_are_read(root: Path) -> None:
    name = "100000001_1"
    save_image(root / "images" / f"{name}.jpg", np.full((H, W), 77, np.uint8))
    labels = helen_labels(H, W)
    for k in range(11):
        save_image(
            root / "labels" / name / f"{name}_lbl{k:02d}.png", np.where(labels == k, 60000, 300).astype(np.uint16)
        )
    sample = module(root).make_dataset("train")[0]
    image = sample["image"][:, :, 2:22]
    assert (image[0] == image[1]).all() and (image[1] == image[2]).all()
    np.testing.assert_array_equal(sample["label_map"].numpy()[:, 2:22], labels)


def test_bad_split_line_names_file_and_line(root: Path) -> None:
    (root / "tuning.txt").write_text("3 , 100000003_1\nthis line is wrong\n")
    with pytest.raises(DataFormatError, match=r"tuning.txt:2: expected \"<index> , <name>\""):
        module(root).index("val")


def test_truncated_jpeg_raises_naming_the_file_or_is_skipped_and_counted(root: Path) -> None:
    truncate(root / "images" / "100000002_1.jpg", keep=0.3)
    with pytest.raises(DataFormatError, match="100000002_1.jpg"):
        module(root).make_dataset("train")[1]
    dataset = module(root, skip_bad=True).make_dataset("train")
    assert dataset[1] is None and len(dataset.skipped.items) == 1


def test_missing_label_map_fails_indexing_or_is_skipped(root: Path) -> None:
    (root / "labels" / "100000001_1" / "100000001_1_lbl04.png").unlink()
    with pytest.raises(FileNotFoundError, match="100000001_1_lbl04.png"):
        module(root).index("train")
    assert [r.id for r in module(root, skip_bad=True).make_dataset("train").records] == ["100000002_1"]


def test_missing_root_points_to_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCCRECON_HELEN", raising=False)
    monkeypatch.delenv("OCCRECON_DATA", raising=False)
    with pytest.raises(MissingAssetError, match="OCCRECON_HELEN.*SmithCVPR2013_dataset_resized"):
        HelenDataModule().root  # noqa: B018


def test_env_var_root_and_a_batch(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCCRECON_DATA", str(root.parent))
    dm = HelenDataModule(image_size=32, batch_size=2, num_workers=0)  # default folder name under OCCRECON_DATA
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["label_map"].shape == (2, 32, 32)
    assert set(batch["label_map"].unique().tolist()) <= set(range(11)) | {IGNORE_LABEL}
