"""CONVENTIONS.md "Image coordinates (2D)", landmarks: ``[B, N, 2]`` ``(x, y)`` pixels, iBUG/300W
68-point order 0-based, **image-side** left/right (points 36-41 are the eye on the image's left).

Pinned on the rendered mean face of every available face model (frontal, zero coefficients):
where each group of the iBUG scheme must lie, asymmetrically (left vs right, up vs down)."""

from __future__ import annotations

import pytest
import torch

from occrecon.facemodel import load_face_model
from occrecon.render.face import render_face
from occrecon.render.mesh_renderer import MeshRenderer
from tests.fixtures_facemodel import face_model_params

SIZE = 64
MODELS = face_model_params()


@pytest.fixture(scope="module", params=MODELS)
def landmarks(request: pytest.FixtureRequest) -> torch.Tensor:
    """``[68, 2]`` pixel landmarks of the frontal mean face at 64 px."""
    model = load_face_model(*request.param)
    out = render_face(model, model.layout("paper").zeros(1), MeshRenderer("torch", SIZE))
    assert out.landmarks.shape == (1, 68, 2)
    return out.landmarks[0]


def x(points: torch.Tensor) -> float:
    return float(points[..., 0].mean())


def y(points: torch.Tensor) -> float:
    return float(points[..., 1].mean())


def test_eyes_brows_and_jaw_ends_are_on_the_documented_image_side(landmarks: torch.Tensor) -> None:
    p = landmarks
    assert x(p[36:42]) < SIZE / 2 < x(p[42:48])  # 36-41: the eye on the image's left
    assert x(p[17:22]) < SIZE / 2 < x(p[22:27])  # 17-21: the brow on the image's left
    assert x(p[0]) < x(p[8]) < x(p[16])  # the jaw runs from the image's left to its right
    assert x(p[48]) < x(p[54])  # mouth corners: 48 left, 54 right
    # within the image-left eye, 36 is the outer corner and 39 the inner one
    assert x(p[36]) < x(p[39]) < x(p[42]) < x(p[45])


def test_groups_are_ordered_top_to_bottom_in_the_y_down_frame(landmarks: torch.Tensor) -> None:
    p = landmarks
    assert y(p[17:27]) < y(p[36:48]) < y(p[30]) < y(p[48:68]) < y(p[8])  # brows, eyes, nose tip, mouth, chin
    assert y(p[27]) < y(p[30])  # the nose bridge (27-30) runs downwards
    assert int(p[:17, 1].argmax()) == 8  # the chin is the lowest jaw point
    assert abs(x(p[27:31]) - SIZE / 2) < 1.0  # the nose bridge sits on the centre line
