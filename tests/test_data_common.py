"""Shared data pieces: root resolution, crop boxes, crop geometry, sample assembly, skip policy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.common import (
    IGNORE_LABEL,
    FaceDataset,
    RawSample,
    Record,
    box_from_landmarks,
    collate_skip_none,
    crop_to_box,
    full_image_box,
    resolve_root,
    square_box,
)
from occrecon.errors import DataFormatError, MissingAssetError


def test_root_comes_from_argument_then_dataset_variable_then_occrecon_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "data" / "Helen").mkdir(parents=True)
    monkeypatch.setenv("OCCRECON_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OCCRECON_X", str(tmp_path / "b"))
    assert resolve_root(str(tmp_path / "a"), "OCCRECON_X", "Helen", "Helen", "get it") == tmp_path / "a"
    assert resolve_root(None, "OCCRECON_X", "Helen", "Helen", "get it") == tmp_path / "b"
    monkeypatch.delenv("OCCRECON_X")
    assert resolve_root(None, "OCCRECON_X", "Helen", "Helen", "get it") == tmp_path / "data" / "Helen"


def test_missing_root_says_where_to_get_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCCRECON_DATA", raising=False)
    monkeypatch.delenv("OCCRECON_X", raising=False)
    with pytest.raises(MissingAssetError, match="OCCRECON_X.*download here"):
        resolve_root(None, "OCCRECON_X", "Helen", "Helen", "download here")
    with pytest.raises(MissingAssetError, match="nowhere.*download here"):
        resolve_root(str(tmp_path / "nowhere"), "OCCRECON_X", "Helen", "Helen", "download here")


def test_square_boxes() -> None:
    assert square_box((10, 20, 30, 60), margin=0.0) == (0.0, 20.0, 40.0, 60.0)  # side = max(20, 40)
    assert square_box((0, 0, 10, 10), margin=0.5) == (-5.0, -5.0, 15.0, 15.0)  # 10 * (1 + 2 * 0.5)
    assert full_image_box(10, 30) == (0.0, -10.0, 30.0, 20.0)
    points = np.array([[2.0, 4.0], [6.0, 8.0]])
    assert box_from_landmarks(points, margin=0.25) == (1.0, 3.0, 7.0, 9.0)


@pytest.mark.parametrize("source", [40, 400])  # 400 takes the area pre-resize path
def test_crop_maps_pixels_landmarks_and_labels_alike(source: int) -> None:
    image = np.zeros((source, source, 3), np.uint8)
    cell = source // 40
    labels = np.zeros((source, source), np.int64)
    row, col = 13 * cell, 25 * cell  # a bright block and a label block at the same place
    image[row : row + 2 * cell, col : col + 2 * cell] = 255
    labels[row : row + 2 * cell, col : col + 2 * cell] = 7
    centre = np.array([[col + cell, row + cell]], dtype=np.float64)  # continuous coords of the block centre
    box = (5.0 * cell, 5.0 * cell, 35.0 * cell, 35.0 * cell)
    out, out_labels, out_points = crop_to_box(image, box, 60, labels, centre)
    expected = (centre[0] - 5 * cell) * 60 / (30 * cell)
    np.testing.assert_allclose(out_points[0], expected)
    ys, xs = np.nonzero(out[..., 0] > 127)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], expected, atol=0.6)
    ys, xs = np.nonzero(out_labels == 7)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], expected, atol=0.6)


def test_crop_outside_the_image_pads_image_with_zero_and_labels_with_ignore() -> None:
    image = np.full((10, 10, 3), 200, np.uint8)
    out, labels, _ = crop_to_box(image, (-10.0, 0.0, 10.0, 20.0), 20, np.ones((10, 10), np.int64))
    assert (out[:10, :10] == 0).all() and (labels[:10, :10] == IGNORE_LABEL).all()
    assert (out[:10, 10:] == 200).all() and (labels[:10, 10:] == 1).all()
    assert (labels[10:] == IGNORE_LABEL).all()


def _loader(fail: set[int]):
    def load(record: Record) -> RawSample:
        if int(record.id) in fail:
            raise DataFormatError(record.image, "a readable image file", got="truncated")
        points = np.array([[float(record.id) + 1, 2.0]] * 68)
        return RawSample(
            image=np.zeros((8, 8, 3), np.uint8),
            box=(0.0, 0.0, 8.0, 8.0),
            landmarks=points,
            visibility=np.ones(68, bool),
        )

    return load


def test_samples_are_tensors_in_the_documented_layouts() -> None:
    dataset = FaceDataset([Record("0", Path("0.jpg"))], _loader(set()), image_size=16, heatmap_size=8)
    sample = dataset[0]
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32
    torch.testing.assert_close(sample["landmarks"][0], torch.tensor([2.0, 4.0]))  # scaled by 16 / 8
    assert sample["visibility"].dtype == torch.bool and sample["edge_lines"].shape == (13, 8, 8)
    assert sample["meta"] == {"id": "0", "path": "0.jpg"}


def test_bad_sample_raises_naming_the_file_unless_skipping(caplog: pytest.LogCaptureFixture) -> None:
    records = [Record(str(i), Path(f"img{i}.jpg")) for i in range(3)]
    with pytest.raises(DataFormatError, match="img1.jpg"):
        FaceDataset(records, _loader({1}), image_size=8)[1]
    dataset = FaceDataset(records, _loader({1}), image_size=8, skip_bad=True)
    with caplog.at_level(logging.WARNING):
        batch = collate_skip_none([dataset[i] for i in range(3)])
    assert batch["image"].shape[0] == 2 and batch["meta"]["id"] == ["0", "2"]
    assert len(dataset.skipped.items) == 1 and "img1.jpg" in caplog.text
    assert collate_skip_none([None, None]) is None


def test_data_modules_take_plain_typed_keyword_arguments() -> None:
    import inspect

    from datamodules.aflw import AFLWDataModule
    from datamodules.celebamask_hq import CelebAMaskHQDataModule
    from datamodules.common import FaceDataModule
    from datamodules.helen import HelenDataModule
    from datamodules.lfw import LFWDataModule
    from datamodules.w300 import W300DataModule
    from occrecon.config.signature import constructor_parameters

    for cls in (HelenDataModule, CelebAMaskHQDataModule, W300DataModule, AFLWDataModule, LFWDataModule):
        params = constructor_parameters(cls)
        assert set(constructor_parameters(FaceDataModule)) <= set(params), cls.__name__
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty and hint is not inspect.Parameter.empty
                   for p, hint in params.values())
        module = cls(**{"root": "/nonexistent", "image_size": 32, "batch_size": 1, "skip_bad": True})
        assert module.image_size == 32 and module.skip_bad
