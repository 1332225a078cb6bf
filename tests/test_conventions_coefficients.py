"""CONVENTIONS.md "Coefficients" and "Cameras": the groups of ``y`` in both layouts (one asymmetric
vector cut by hand), and what the pose numbers mean on the rendered landmarks: the paper layout's
``t_2d`` is in pixels with y down, ``f`` is relative (``f_px = f_default (1 + f)``), zero pose is
the centred mean face; Deep3D's ``tz`` brings the face closer (bigger). The group order of
``CoefficientLayout`` itself is also pinned in ``tests/test_facemodel_layout.py``."""

from __future__ import annotations

import pytest
import torch

from occrecon.facemodel import load_face_model
from occrecon.render.face import render_face
from occrecon.render.mesh_renderer import MeshRenderer

SIZE = 64


@pytest.fixture(scope="module")
def model():  # noqa: ANN201 - MorphableModel
    return load_face_model("procedural")


def landmarks(model, kind: str, **groups: list[float]) -> torch.Tensor:  # noqa: ANN001
    layout = model.layout(kind)
    parts = layout.split(layout.zeros(1)).as_dict()
    parts.update({k: torch.tensor([v]) for k, v in groups.items()})
    y = layout.join(type(layout.split(layout.zeros(1)))(**parts))
    return render_face(model, y, MeshRenderer("torch", SIZE)).landmarks[0]


def test_group_order_of_both_layouts_by_hand(model) -> None:  # noqa: ANN001
    n_id, n_exp, n_tex = model.n_id, model.n_exp, model.n_tex
    paper = model.layout("paper")
    y = torch.arange(paper.size, dtype=torch.float64)[None]
    c = paper.split(y)
    start = n_id + n_exp + n_tex  # id | exp | tex | gamma 9 | pitch yaw roll f tx ty
    assert (c.id[0, 0], c.exp[0, 0], c.tex[0, 0]) == (0, n_id, n_id + n_exp)
    assert c.gamma[0].tolist() == list(range(start, start + 9))
    assert (c.angles[0].tolist(), c.scale[0].tolist(), c.translation[0].tolist()) == (
        [start + 9, start + 10, start + 11], [start + 12], [start + 13, start + 14])
    deep3d = model.layout("deep3d")
    c = deep3d.split(torch.arange(deep3d.size, dtype=torch.float64)[None])  # ... | angles 3 | gamma 27 | trans 3
    assert c.angles[0].tolist() == [start, start + 1, start + 2]
    assert c.gamma[0].tolist() == list(range(start + 3, start + 30))
    assert c.translation[0].tolist() == [start + 30, start + 31, start + 32]


def test_zero_pose_is_the_centred_mean_face(model) -> None:  # noqa: ANN001
    p = landmarks(model, "paper")
    assert abs(float(p[:, 0].mean()) - SIZE / 2) < 0.5  # a symmetric face, centred horizontally
    assert 0.25 * SIZE < float(p[:, 1].mean()) < 0.75 * SIZE


def test_t2d_is_pixels_with_y_down_and_f_is_relative(model) -> None:  # noqa: ANN001
    base = landmarks(model, "paper")
    moved = landmarks(model, "paper", translation=[5.0, -3.0])  # 5 px right, 3 px up
    torch.testing.assert_close(moved - base, torch.tensor([5.0, -3.0]).expand(68, 2), atol=1e-3, rtol=0)
    bigger = landmarks(model, "paper", scale=[0.5])  # f = 0.5: 1.5 times the default scale
    centre = torch.tensor([SIZE / 2, SIZE / 2])
    torch.testing.assert_close(bigger - centre, 1.5 * (base - centre), atol=1e-3, rtol=0)


def test_deep3d_translation_z_brings_the_face_closer(model) -> None:  # noqa: ANN001
    base = landmarks(model, "deep3d")
    closer = landmarks(model, "deep3d", translation=[0.0, 0.0, 1.0])  # camera at z = 10: 1 dm closer
    spread = lambda p: float((p[36] - p[45]).norm())  # noqa: E731
    assert spread(closer) > spread(base) * 1.05
    right = landmarks(model, "deep3d", translation=[0.3, 0.0, 0.0])  # +x in view space: image right
    assert float((right - base)[:, 0].mean()) > 1.0
