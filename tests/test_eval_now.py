"""NoW protocol: point-to-triangle distances by hand, the face crop, alignment invariance, file readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from occrecon.errors import DataFormatError
from occrecon.evaluation.now import (
    closest_points_on_mesh,
    face_crop,
    now_errors,
    point_triangle_distance,
    read_landmarks,
    read_pp,
)

TRI = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
# point -> (distance, closest point) worked out by hand for the triangle a=(0,0,0) b=(1,0,0) c=(0,1,0)
CASES = [
    ((0.2, 0.2, 3.0), 3.0, (0.2, 0.2, 0.0)),  # above the interior
    ((2.0, -1.0, 0.0), math.sqrt(2.0), (1.0, 0.0, 0.0)),  # vertex b region
    ((-1.0, -1.0, -1.0), math.sqrt(3.0), (0.0, 0.0, 0.0)),  # vertex a region
    ((0.5, -2.0, 1.0), math.sqrt(5.0), (0.5, 0.0, 0.0)),  # edge ab
    ((1.0, 1.0, 0.0), math.sqrt(0.5), (0.5, 0.5, 0.0)),  # edge bc
    ((-1.0, 0.5, 0.0), 1.0, (0.0, 0.5, 0.0)),  # edge ac
    ((0.0, 3.0, 4.0), math.sqrt(4.0 + 16.0), (0.0, 1.0, 0.0)),  # vertex c region
]


@pytest.mark.parametrize(("point", "distance", "closest"), CASES)
def test_point_triangle_distance_by_hand(point, distance, closest) -> None:
    from occrecon.evaluation.now import closest_point_on_triangle

    p = torch.tensor([point], dtype=torch.float64)
    tri = torch.tensor([TRI], dtype=torch.float64)
    assert point_triangle_distance(p, tri).item() == pytest.approx(distance)
    assert closest_point_on_triangle(p, tri)[0].tolist() == pytest.approx(list(closest))


def test_scan_to_mesh_distance_on_a_square() -> None:
    # unit square of two triangles in z = 0; distances by hand
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    points = np.array([[0.5, 0.5, 2.0], [0.9, 0.2, -0.5], [2.0, 0.5, 0.0], [-3.0, -4.0, 0.0], [0.25, 0.75, 0.0]])
    _, dist = closest_points_on_mesh(points, vertices, faces, k=1)
    assert dist.tolist() == pytest.approx([2.0, 0.5, 1.0, 5.0, 0.0])


def test_closest_points_exact_against_every_triangle() -> None:
    gen = np.random.default_rng(0)
    vertices = gen.normal(size=(60, 3))
    faces = gen.integers(0, 60, size=(80, 3))
    points = gen.normal(size=(40, 3)) * 2.0
    _, fast = closest_points_on_mesh(points, vertices, faces, k=2)  # tiny k: the fallback must fix it
    tri = torch.as_tensor(vertices[faces])
    brute = [point_triangle_distance(torch.as_tensor(p).expand(len(faces), 3), tri).min().item() for p in points]
    assert fast.tolist() == pytest.approx(brute)


def test_face_crop_sphere_by_hand() -> None:
    lm = np.array([[-4, 0, 0], [-1, 0, 0], [1, 0, 0], [4, 0, 0], [0, -3, 0], [-2, -5, 0], [2, -5, 0]], float)
    # centre (0, -2.1, 0), radius 1.4 * (8 + 3) / 2 = 7.7
    verts = np.array([[0, 5.6 - 1e-9, 0], [0, 5.7, 0], [7.6, -2.1, 0], [0, -2.1, -7.8]])
    assert face_crop(verts, lm).tolist() == [True, False, True, False]


def cap_mesh() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A curved cap (x, y in mm, z = -0.05 r^2), its triangles and 7 landmark vertices."""
    xs, ys = np.meshgrid(np.linspace(-6, 6, 25), np.linspace(-8, 6, 29))
    scan = np.stack([xs.ravel(), ys.ravel(), -0.05 * (xs.ravel() ** 2 + ys.ravel() ** 2)], 1)
    grid = np.arange(25 * 29).reshape(29, 25)
    faces = np.concatenate(
        [np.stack([grid[:-1, :-1].ravel(), grid[:-1, 1:].ravel(), grid[1:, 1:].ravel()], 1),
         np.stack([grid[:-1, :-1].ravel(), grid[1:, 1:].ravel(), grid[1:, :-1].ravel()], 1)]
    )  # fmt: skip
    return scan, faces, [300, 306, 312, 318, 162, 60, 70]


def moved(points: np.ndarray) -> np.ndarray:
    """``points`` scaled by 0.01, rotated 0.4 rad about z and moved (a similarity)."""
    angle = 0.4
    rot = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    return 0.01 * points @ rot.T + np.array([3.0, -1.0, 2.0])


def test_similarity_copy_of_the_scan_scores_zero() -> None:
    # the prediction is the scan's surface scaled, rotated and moved: zero error after alignment
    scan, faces, seven = cap_mesh()
    xs, ys = scan[:, 0], scan[:, 1]
    pred = moved(scan)
    result = now_errors(scan, scan[seven], pred, faces, pred[seven])
    assert result.stats["mean"] < 1e-6 and result.scale == pytest.approx(100.0)
    bumped = pred.copy()
    bumped[:, 2] += 0.01 * 0.5 * np.exp(-(xs**2 + ys**2) / 4.0)  # a 0.5-unit bump
    assert 0.01 < now_errors(scan, scan[seven], bumped, faces, bumped[seven]).stats["mean"] < 0.5


def test_readers(tmp_path: Path) -> None:
    pp = tmp_path / "scan.pp"
    points = "".join(f'  <point x="{i}.5" y="{-i}" z="{2 * i}" active="1" name="{i}"/>\n' for i in range(7))
    pp.write_text(
        f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData>\n </DocumentData>\n{points}</PickedPoints>\n"
    )
    assert read_pp(pp)[3].tolist() == [3.5, -3.0, 6.0]
    pp.write_text("<PickedPoints><point x='1' y='2' z='3'/></PickedPoints>")
    with pytest.raises(DataFormatError, match="7 picked points"):
        read_pp(pp)
    txt = tmp_path / "img.txt"
    txt.write_text("\n".join("1 2 3" for _ in range(7)))
    assert read_landmarks(txt).shape == (7, 3)
    np.save(tmp_path / "bad.npy", np.zeros((68, 3)))
    with pytest.raises(DataFormatError, match=r"\[7, 3\]"):
        read_landmarks(tmp_path / "bad.npy")


def test_cli_reads_the_now_layout(tmp_path: Path) -> None:
    from occrecon.cli import main
    from occrecon.mesh_io import write_obj

    scan, faces, seven = cap_mesh()
    root, pred = tmp_path / "NoW", tmp_path / "pred"
    (root / "scans" / "S1").mkdir(parents=True)
    (root / "scans_lmks_onlypp" / "S1").mkdir(parents=True)
    write_obj(root / "scans" / "S1" / "scan.obj", scan, faces)
    points = "".join(f'<point x="{x}" y="{y}" z="{z}" name="{i}"/>' for i, (x, y, z) in enumerate(scan[seven]))
    (root / "scans_lmks_onlypp" / "S1" / "scan.pp").write_text(f"<PickedPoints>{points}</PickedPoints>")
    lines = ["S1/selfie/IMG_1.jpg", "S1/multiview_neutral/IMG_2.jpg"]  # the second has no prediction
    (root / "imagepathsvalidation.txt").write_text("\n".join(f"FaMoS/{line}" for line in lines) + "\n")
    (pred / "S1" / "selfie").mkdir(parents=True)
    write_obj(pred / "S1" / "selfie" / "IMG_1.obj", moved(scan), faces, precision=9)
    np.savetxt(pred / "S1" / "selfie" / "IMG_1.txt", moved(scan)[seven])
    out = tmp_path / "now.json"
    assert main(["eval", "now", "--data", str(root), "--predictions", str(pred), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["predictions"]
    assert row["images"] == 1 and row["missing"] == 1 and row["mean"] < 1e-4
