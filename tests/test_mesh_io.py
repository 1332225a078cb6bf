"""OBJ writer/reader round trip (occrecon.mesh_io)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from occrecon.errors import DataFormatError, ShapeError
from occrecon.mesh_io import read_obj, write_obj


def test_round_trip_with_colours(tmp_path: Path) -> None:
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 1.0, -0.25]])
    tris = torch.tensor([[0, 1, 2], [1, 3, 2]])
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.5, -0.5, 0.5]])  # last clamped
    path = write_obj(tmp_path / "m.obj", verts, tris, colours)
    v, f, c = read_obj(path)
    np.testing.assert_allclose(v, verts.numpy(), atol=1e-6)
    np.testing.assert_array_equal(f, tris.numpy())
    np.testing.assert_allclose(c, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1.0, 0.0, 0.5]], atol=1e-6)
    text = path.read_text().splitlines()
    assert "f 1 2 3" in text  # 1-based indices


def test_round_trip_without_colours_and_face_model(tmp_path: Path) -> None:
    from occrecon.facemodel import load_face_model

    model = load_face_model("procedural")
    path = write_obj(tmp_path / "face.obj", model.mean_shape, model.triangles)
    v, f, c = read_obj(path)
    assert c is None
    np.testing.assert_allclose(v, model.mean_shape.numpy(), atol=1e-6)
    np.testing.assert_array_equal(f, model.triangles.numpy())  # vertex order and topology kept


def test_reader_accepts_slash_and_negative_indices(tmp_path: Path) -> None:
    path = tmp_path / "x.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 -1/1\n")
    _, f, _ = read_obj(path)
    np.testing.assert_array_equal(f, [[0, 1, 2]])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ShapeError):
        write_obj(tmp_path / "a.obj", torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="index"):
        write_obj(tmp_path / "a.obj", torch.zeros(3, 3), torch.tensor([[0, 1, 3]]))
    bad = tmp_path / "quad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3 4\n")
    with pytest.raises(DataFormatError, match=r"quad.obj:5"):
        read_obj(bad)
