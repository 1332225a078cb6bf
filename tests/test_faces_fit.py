"""Alignment to the training framings (and back) and the per-image Eq. 4 fit, against known truths.

The fit is checked on faces rendered from known coefficients (the truth), not on its own output.
"""

import math

import numpy as np
import pytest
import torch

from occrecon.facemodel import load_face_model
from occrecon.faces.align import (
    DEEP3D_LM3D_STD,
    align_face,
    alignment_transform,
    apply,
    compose,
    deep3d_template,
    invert,
)
from occrecon.faces.fit import FaceFitter, FitSettings
from occrecon.landmarks import FIVE_POINTS_FROM_68


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _landmarks_with_five_points(points5: np.ndarray) -> np.ndarray:
    """68 points whose five_points() reduction is exactly ``points5`` (each group at its point)."""
    lm = np.zeros((68, 2))
    for group, p in zip(FIVE_POINTS_FROM_68, points5, strict=True):
        lm[list(group)] = p
    return lm


def test_deep3d_template_by_hand():
    t = deep3d_template(224)
    # left eye (-0.3115, 0.2904): x = 112 + 102 * -0.3115 = 80.227, y = 112 - 102 * 0.2904 = 82.379
    assert t[0] == pytest.approx([80.227, 82.3792], abs=1e-3)
    assert deep3d_template(112)[0] == pytest.approx(t[0] / 2)
    assert DEEP3D_LM3D_STD.shape == (5, 3)


def test_alignment_recovers_a_known_similarity():
    """Landmarks = template moved by a known similarity: alignment must return its inverse."""
    angle, scale, shift = math.radians(20), 2.5, np.array([310.0, 140.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    photo_points = deep3d_template(224) @ rot.T + shift
    matrix = alignment_transform(_landmarks_with_five_points(photo_points), "deep3d", 224)
    np.testing.assert_allclose(apply(matrix, photo_points), deep3d_template(224), atol=1e-6)
    np.testing.assert_allclose(invert(matrix)[:, :2], rot, atol=1e-6)
    np.testing.assert_allclose(invert(matrix)[:, 2], shift, atol=1e-5)
    np.testing.assert_allclose(compose(invert(matrix), matrix), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    double = compose(matrix, matrix)  # applying twice = composing
    np.testing.assert_allclose(apply(double, photo_points), apply(matrix, apply(matrix, photo_points)), atol=1e-9)


def test_celebahq_framing_by_hand():
    """Upright face, eyes 100 px apart at y=200, mouth 100 px below: crop side 2*max(200, 180) = 400."""
    points = np.array([[150.0, 200], [250, 200], [200, 250], [160, 300], [240, 300]])
    matrix = alignment_transform(_landmarks_with_five_points(points), "celebahq", 1024)
    # centre c = eye_avg + 0.1 * eye_to_mouth = (200, 210) -> crop centre; side 400 px -> 1024
    np.testing.assert_allclose(apply(matrix, np.array([200.0, 210.0])), [512, 512], atol=1e-6)
    np.testing.assert_allclose(matrix[:, :2], np.eye(2) * 1024 / 400, atol=1e-9)


def test_align_and_paste_back_round_trip():
    rng = np.random.default_rng(0)
    photo = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(photo).permute(2, 0, 1)[None].float(), 9, 1, 4)
    photo = smooth[0].permute(1, 2, 0).round().byte().numpy()  # smooth so bilinear resampling is near exact
    points = deep3d_template(224) * 0.8 + np.array([120.0, 60.0])
    aligned = align_face(photo, _landmarks_with_five_points(points), "deep3d", 224)
    np.testing.assert_allclose(aligned.to_photo(aligned.landmarks), _landmarks_with_five_points(points), atol=1e-4)
    # the crop pixel at the template's left eye shows the photo at the photo's left eye
    x, y = points[0]
    tx, ty = deep3d_template(224)[0]
    assert aligned.image[0, :, int(ty), int(tx)] * 255 == pytest.approx(
        torch.tensor(photo[int(y), int(x)], dtype=torch.float32), abs=6
    )
    back = aligned.paste(aligned.image)[0].permute(1, 2, 0).numpy() * 255
    inner = (slice(90, 200), slice(150, 280))  # inside the crop's footprint
    assert np.abs(back[inner] - photo[inner]).mean() < 2.0


def _true_face(fitter, seed=0):
    layout = fitter.layout
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(1, layout.size)
    sl = layout.slices
    y[:, sl["id"]] = torch.randn(1, layout.sizes["id"], generator=g) * 0.8
    y[:, sl["exp"]] = torch.randn(1, layout.sizes["exp"], generator=g) * 0.5
    y[:, sl["tex"]] = torch.randn(1, layout.sizes["tex"], generator=g) * 0.5
    y[:, sl["gamma"].start] = 0.1
    y[:, sl["pose"]] = torch.tensor([[0.05, 0.25, 0.08, 0.1, 6.0, -4.0]])  # pitch, yaw, roll, f, tx, ty
    return y


def test_fit_recovers_a_rendered_face_and_rejects_an_occluder():
    model = load_face_model("procedural")
    fitter = FaceFitter(model, "paper", 128, settings=FitSettings(landmark_steps=120, steps=40, render_size=96))
    y_true = _true_face(fitter)
    with torch.no_grad():
        out = fitter.render(y_true)
        background = torch.linspace(0.2, 0.6, 128).view(1, 1, 1, 128).expand(1, 3, 128, 128)
        image = out.mask * out.image.clamp(0, 1) + (1 - out.mask) * background
        landmarks = fitter.landmarks(y_true)
    occluder = torch.zeros(1, 1, 128, 128)
    occluder[..., 70:100, 30:70] = 1.0  # a flat, skin-coloured patch over the lower left face
    image = image * (1 - occluder) + occluder * torch.tensor([0.85, 0.6, 0.5]).view(1, 3, 1, 1)
    visible = out.mask.clone()  # a parsing-style visibility that does not know the occluder
    result = fitter.fit(image, landmarks, visible=visible)
    m = result.metrics
    assert m["landmark_px_after"] < 0.5 * m["landmark_px_before"], m
    assert m["landmark_px_after"] < 2.0, m
    assert m["photometric_after"] < 0.5 * m["photometric_before"], m
    pose = fitter.layout.split(result.coeffs)
    truth = fitter.layout.split(y_true)
    assert torch.allclose(pose.angles, truth.angles, atol=0.08)  # radians
    assert torch.allclose(pose.translation, truth.translation, atol=2.0)  # pixels
    # the outlier rule removes most of the occluder from the photometric mask, little else
    occluded = (occluder * out.mask).sum()
    kept_on_occluder = (result.mask * occluder).sum() / occluded
    kept_elsewhere = (result.mask * (1 - occluder) * out.mask).sum() / ((1 - occluder) * out.mask).sum()
    assert kept_on_occluder < 0.3 and kept_elsewhere > 0.8, (kept_on_occluder, kept_elsewhere, m)


def test_zero_steps_keep_the_start():
    model = load_face_model("procedural")
    fitter = FaceFitter(model, "paper", 96)
    y0 = _true_face(fitter, 1)
    result = fitter.fit(torch.rand(1, 3, 96, 96), fitter.landmarks(y0).detach(), y0=y0, steps=0, landmark_steps=0)
    assert torch.equal(result.coeffs, y0)
    assert result.metrics["landmark_px_after"] == pytest.approx(0.0, abs=1e-4)


def test_translation_scales_with_render_size():
    """The paper layout's (tx, ty) are pixels: a half-size render must land the face at half the offset."""
    model = load_face_model("procedural")
    fitter = FaceFitter(model, "paper", 128, settings=FitSettings(render_size=64))
    y = _true_face(fitter)
    with torch.no_grad():
        big, small = fitter.render(y), fitter.render(y, 64)
    centroid = [(o.mask[0, 0].nonzero().float().mean(0)) / o.mask.shape[-1] for o in (big, small)]
    assert torch.allclose(centroid[0], centroid[1], atol=0.02)


class _TinyRecogniser(torch.nn.Module):
    """Stand-in identity network (template/input_size like the real ones)."""

    template, input_size = "dlib", 150

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_identity_term_takes_part_in_the_fit():
    model = load_face_model("procedural")
    settings = FitSettings(landmark_steps=0, steps=10, render_size=64, raster_every=5)
    image = torch.rand(1, 3, 96, 96)
    lm = FaceFitter(model, "paper", 96).landmarks(torch.zeros(1, model.layout("paper").size)).detach() + 1.5
    plain = FaceFitter(model, "paper", 96, settings=settings).fit(image, lm)
    with_id = FaceFitter(model, "paper", 96, identity_network=_TinyRecogniser(), settings=settings).fit(image, lm)
    assert not torch.allclose(plain.coeffs, with_id.coeffs)  # L_feat changed the path of the fit
    settings.weights["feat"] = 0.0
    off = FaceFitter(model, "paper", 96, identity_network=_TinyRecogniser(), settings=settings).fit(image, lm)
    torch.testing.assert_close(off.coeffs, plain.coeffs)  # weight 0: the network is never evaluated
