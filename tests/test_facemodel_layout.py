"""CoefficientLayout: sizes, the documented group order, split/join round trips."""

import pytest
import torch

from occrecon.errors import ConfigError, ShapeError
from occrecon.facemodel.layout import CoefficientLayout


def test_paper_and_deep3d_sizes():
    assert CoefficientLayout.paper(80, 64, 80).size == 239  # the paper's y in R^239
    assert CoefficientLayout.deep3d(80, 64, 80).size == 257  # Deep3D's fc_dim
    assert CoefficientLayout.paper(63, 6, 80).size == 63 + 6 + 80 + 9 + 6
    assert CoefficientLayout.make("deep3d", 10, 5, 3).gamma_channels == 3
    assert CoefficientLayout.make("paper", 10, 5, 3).gamma_channels == 1


def test_paper_split_follows_documented_order():
    layout = CoefficientLayout.paper(80, 64, 80)
    y = torch.arange(239, dtype=torch.float32)[None]
    c = layout.split(y)
    assert c.id[0, 0] == 0 and c.id.shape == (1, 80)
    assert c.exp[0, 0] == 80 and c.tex[0, 0] == 144 and c.gamma[0, 0] == 224 and c.gamma.shape == (1, 9)
    assert c.angles.tolist() == [[233, 234, 235]]  # pitch, yaw, roll
    assert c.scale.tolist() == [[236]]  # f
    assert c.translation.tolist() == [[237, 238]]  # t_2d


def test_deep3d_split_matches_split_coeff_of_deep3d():
    layout = CoefficientLayout.deep3d(80, 64, 80)
    y = torch.arange(257, dtype=torch.float32)[None]
    c = layout.split(y)
    # Deep3D: [224:227] angles, [227:254] gamma, [254:257] trans
    assert c.angles.tolist() == [[224, 225, 226]]
    assert c.gamma[0, 0] == 227 and c.gamma[0, -1] == 253
    assert c.translation.tolist() == [[254, 255, 256]]
    assert torch.equal(c.scale, torch.zeros(1, 1))


@pytest.mark.parametrize("kind", ["paper", "deep3d"])
def test_split_join_round_trip_and_gradients(kind):
    layout = CoefficientLayout.make(kind, 7, 5, 3)
    y = torch.randn(4, layout.size, requires_grad=True)
    c = layout.split(y)
    assert torch.equal(layout.join(c), y)
    (c.id.sum() + 2 * c.angles.sum()).backward()
    assert y.grad[:, layout.slices["id"]].eq(1).all()
    assert y.grad.sum() == 7 * 4 + 2 * 3 * 4


def test_slices_are_contiguous_and_cover_the_vector():
    layout = CoefficientLayout.paper(80, 64, 80)
    covered = torch.zeros(layout.size, dtype=torch.int64)
    for s in layout.slices.values():
        covered[s] += 1
    assert covered.eq(1).all()
    assert list(layout.slices) == ["id", "exp", "tex", "gamma", "pose"]


def test_zeros_and_group_access():
    layout = CoefficientLayout.paper(4, 3, 2)
    z = layout.zeros(3)
    assert z.shape == (3, layout.size) and z.abs().sum() == 0
    y = torch.randn(2, layout.size)
    assert torch.equal(layout.group(y, "pose"), y[:, -6:])
    with pytest.raises(ConfigError):
        layout.group(y, "trans")


def test_errors():
    layout = CoefficientLayout.deep3d(4, 3, 2)
    with pytest.raises(ShapeError):
        layout.split(torch.zeros(2, layout.size + 1))
    c = layout.split(torch.zeros(2, layout.size))
    with pytest.raises(ConfigError):  # Deep3D has no free focal length
        layout.join(type(c)(**{**c.as_dict(), "scale": torch.ones(2, 1)}))
    with pytest.raises(ShapeError):
        layout.join(type(c)(**{**c.as_dict(), "id": torch.zeros(2, 5)}))
    with pytest.raises(ConfigError):
        CoefficientLayout.make("bfm", 1, 1, 1)


def test_layout_of_recognises_the_size_and_every_caller_shares_its_error():
    """One home for "which layout is this vector": the model, the renderer and the system agree."""
    from occrecon.facemodel import load_face_model
    from occrecon.facemodel.layout import layout_of
    from occrecon.render.face import render_face
    from occrecon.render.mesh_renderer import MeshRenderer

    model = load_face_model("procedural")
    paper, deep3d = model.layout("paper").size, model.layout("deep3d").size
    assert deep3d - paper == 18  # deep3d: 3 angles + 27 SH + 3 translation; paper: 9 SH + 6 pose
    assert layout_of(model, torch.zeros(2, paper)).kind == "paper"
    assert layout_of(model, torch.zeros(2, deep3d)).kind == "deep3d"
    wrong = torch.zeros(2, paper + 1)
    expected = (
        f"coefficients must have shape [B, {paper}] (paper) or [B, {deep3d}] (deep3d) for face model "
        f"'{model.name}' (the coefficients must come from this face model), got [2, {paper + 1}]"
    )
    for call in (lambda: layout_of(model, wrong), lambda: model(wrong),
                 lambda: render_face(model, wrong, MeshRenderer("torch", 16)),
                 lambda: layout_of(model, torch.zeros(paper))):  # fmt: skip
        with pytest.raises(ShapeError) as info:
            call()
        assert str(info.value).split(", got")[0] == expected.split(", got")[0]
    with pytest.raises(ShapeError, match=r"got \[2, " + str(paper + 1)):
        layout_of(model, wrong)
