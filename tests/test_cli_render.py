"""``occrecon render`` smoke test on tiny settings: the grid PNG has one tile row per two faces,
eight 48 px tiles per row, faces on a black background, seeded, and a missing face model is a
clean exit 2 with the message of MissingAssetError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occrecon.cli import main

SIZE = 48
HEADER = 24  # title strip of viz.save_titled_grid


def render(tmp_path: Path, name: str, *args: str) -> np.ndarray:
    out = tmp_path / name
    assert main(["render", "--size", str(SIZE), "--backend", "torch", "--out", str(out), *args]) == 0
    return np.asarray(Image.open(out).convert("RGB"))


def test_grid_layout_faces_and_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = render(tmp_path, "two.png", "--n", "2", "--seed", "1")
    assert f"wrote {tmp_path / 'two.png'} (2 faces" in capsys.readouterr().out
    # one grid row: 2 faces x (shaded, labels, depth, landmarks), tiles 2 px apart (viz.grid)
    assert two.shape == (HEADER + 2 + (SIZE + 2), 2 + 8 * (SIZE + 2), 3)
    four = render(tmp_path, "four.png", "--n", "4", "--seed", "1")
    assert four.shape == (HEADER + 2 + 2 * (SIZE + 2), 2 + 8 * (SIZE + 2), 3)  # a second row
    # the first tile: a lit face in the middle of a black background
    tile = two[HEADER + 2 : HEADER + 2 + SIZE, 2 : 2 + SIZE].astype(int)
    assert tile[:2, :2].max() < 20 and tile[:2, -2:].max() < 20  # top corners: background
    assert tile[SIZE // 2 - 4 : SIZE // 2 + 4, SIZE // 2 - 4 : SIZE // 2 + 4].mean() > 60  # centre: face
    # seeded: the same seed gives the same picture, another seed another one
    assert np.array_equal(render(tmp_path, "again.png", "--n", "2", "--seed", "1"), two)
    assert not np.array_equal(render(tmp_path, "other.png", "--n", "2", "--seed", "2"), two)


def test_missing_face_model_exits_2_and_says_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["render", "--model", "bfm", "--model-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert "BFM_model_front.mat" in err and "not found" in err
    assert not (tmp_path / "x.png").exists()
