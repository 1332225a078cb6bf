"""PLY writer/reader and the OBJ/PLY dispatch of occrecon.mesh_io (used by the detail stage's meshes).

Independent truths: a PLY file written byte by byte here from the PLY specification (ascii and
big-endian binary, with extra properties the reader must skip), and the bytes of the written file
decoded with ``struct`` instead of the project's reader.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from occrecon.errors import DataFormatError, ShapeError
from occrecon.mesh_io import read_mesh, read_ply, write_mesh, write_obj, write_ply

VERTS = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 1.0, -0.25]])
TRIS = np.array([[0, 1, 2], [1, 3, 2]])
COLOURS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.5, -0.5, 0.5]])  # last clamped


def test_binary_ply_bytes_follow_the_spec(tmp_path: Path) -> None:
    path = write_ply(tmp_path / "m.ply", VERTS, TRIS, COLOURS)
    data = path.read_bytes()
    head, body = data.split(b"end_header\n")
    assert head.decode().splitlines()[:2] == ["ply", "format binary_little_endian 1.0"]
    assert b"element vertex 4" in head and b"element face 2" in head
    assert b"property uchar red" in head and b"property list uchar int vertex_indices" in head
    assert len(body) == 4 * (12 + 3) + 2 * (1 + 12)
    x, y, z, r, g, b = struct.unpack_from("<fffBBB", body, 3 * 15)  # the 4th vertex
    assert (x, y, z) == (1.0, 1.0, -0.25) and (r, g, b) == (255, 0, 128)  # round(127.5) = 128
    n, i, j, k = struct.unpack_from("<Biii", body, 4 * 15 + 13)  # the 2nd face
    assert (n, i, j, k) == (3, 1, 3, 2)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path: Path, binary: bool) -> None:
    path = write_ply(tmp_path / "m.ply", VERTS, TRIS, COLOURS, binary=binary)
    v, f, c = read_ply(path)
    np.testing.assert_allclose(v, VERTS, atol=1e-6)
    np.testing.assert_array_equal(f, TRIS)
    np.testing.assert_allclose(c, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 128 / 255]], atol=1e-9)
    _, _, none = read_ply(write_ply(tmp_path / "n.ply", VERTS, TRIS, binary=binary))
    assert none is None


def test_reader_handles_foreign_files(tmp_path: Path) -> None:
    """Big-endian binary with doubles, alpha, normals and an extra element; an ascii file with float colours."""
    header = (
        b"ply\nformat binary_big_endian 1.0\ncomment made by hand\nelement vertex 3\n"
        b"property double x\nproperty double y\nproperty double z\nproperty float nx\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        b"element face 1\nproperty list uint8 uint32 vertex_index\nproperty uchar flags\n"
        b"element edge 1\nproperty int vertex1\nproperty int vertex2\nend_header\n"
    )
    body = b"".join(struct.pack(">dddfBBBB", *p, 0.5, 10, 20, 30, 255) for p in VERTS[:3])
    body += struct.pack(">BIIIB", 3, 2, 0, 1, 7) + struct.pack(">ii", 0, 1)
    path = tmp_path / "be.ply"
    path.write_bytes(header + body)
    v, f, c = read_ply(path)
    np.testing.assert_array_equal(v, VERTS[:3])
    np.testing.assert_array_equal(f, [[2, 0, 1]])
    np.testing.assert_allclose(c, np.tile([10, 20, 30], (3, 1)) / 255.0)

    text = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    text += "property float red\nproperty float green\nproperty float blue\nelement face 1\n"
    text += "property list uchar int vertex_indices\nend_header\n0 0 0 0.1 0.2 0.3\n1 0 0 0 0 0\n0 1 0 1 1 1\n3 0 1 2\n"
    (tmp_path / "a.ply").write_text(text)
    v, f, c = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(f, [[0, 1, 2]])
    np.testing.assert_allclose(c[0], [0.1, 0.2, 0.3])  # float colours are kept as stored


def test_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(DataFormatError, match="bad.ply"):
        read_ply(bad)
    quad = tmp_path / "quad.ply"
    quad.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    )
    with pytest.raises(DataFormatError, match="triangular"):
        read_ply(quad)
    truncated = tmp_path / "t.ply"
    truncated.write_bytes(write_ply(tmp_path / "ok.ply", VERTS, TRIS).read_bytes()[:-5])
    with pytest.raises(DataFormatError, match="body"):
        read_ply(truncated)
    with pytest.raises(ShapeError):
        write_ply(tmp_path / "x.ply", VERTS[:, :2], TRIS)
    with pytest.raises(DataFormatError, match=".stl"):
        read_mesh(tmp_path / "x.stl")


def test_dispatch_by_suffix_keeps_counts(tmp_path: Path) -> None:
    from occrecon.facemodel import load_face_model

    model = load_face_model("procedural")
    colours = np.random.default_rng(0).random(model.mean_shape.shape)
    for suffix in (".obj", ".ply"):
        v, f, c = read_mesh(write_mesh(tmp_path / f"face{suffix}", model.mean_shape, model.triangles, colours))
        assert v.shape == tuple(model.mean_shape.shape) and f.shape == tuple(model.triangles.shape)
        np.testing.assert_array_equal(f, model.triangles.numpy())
        np.testing.assert_allclose(c, colours, atol=0.5 / 255 + 1e-6)
    assert write_obj  # the OBJ writer is unchanged (tests/test_mesh_io.py)
