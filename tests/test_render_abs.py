"""Analysis by synthesis through the torch renderer on CPU (issue 3).

A random coefficient vector (identity, expression, albedo, light) renders two known views of a
target face; starting from zero coefficients, Adam on a photometric + landmark loss must recover
the shape: the mean per-vertex error falls well below its starting value. Two views with known
yaw make the depth-only identity modes observable (a single orthographic view cannot see them).
"""

import pytest
import torch

from occrecon.facemodel import procedural
from occrecon.facemodel.morphable import MorphableModel
from occrecon.render.face import render_face
from occrecon.render.mesh_renderer import MeshRenderer


@pytest.fixture
def one_thread():
    # Tiny tensors: threads only add contention on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_photometric_and_landmark_fit_recovers_shape(one_thread):
    torch.manual_seed(0)
    model = MorphableModel(procedural.procedural_face_data())
    renderer = MeshRenderer("torch", 64)
    layout = model.layout("paper")
    free = torch.zeros(1, layout.size, dtype=torch.bool)
    for name in ("id", "exp", "tex", "gamma"):
        free[0, layout.slices[name]] = True
    target = torch.randn(1, layout.size, generator=torch.Generator().manual_seed(1)) * 0.5 * free
    views = torch.zeros(2, layout.size)
    views[:, layout.slices["pose"]] = torch.tensor([[0.1, 0.45, 0, 0, 0, 0], [-0.1, -0.45, 0, 0, 0, 0]])
    with torch.no_grad():
        goal = render_face(model, target + views, renderer)
        goal_verts = model(layout.split(target)).vertices

    def vertex_error(y):
        with torch.no_grad():
            return (model(layout.split(y * free)).vertices - goal_verts).norm(dim=-1).mean().item()

    x = layout.zeros(1).requires_grad_(True)
    start = vertex_error(x)
    opt = torch.optim.Adam([x], lr=0.05)
    for _ in range(60):
        out = render_face(model, x * free + views, renderer)
        photo = ((out.image - goal.image) ** 2).sum(1).mean()
        lm = ((out.landmarks - goal.landmarks) ** 2).sum(-1).mean()
        loss = photo + 1e-2 * lm
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Measured: ratio 0.23 after 60 steps (seeded, deterministic on CPU); assert with 1.5x margin.
    assert vertex_error(x) < 0.35 * start
    assert start > 0.01  # the target is genuinely different from the mean face (> 1 mm)
