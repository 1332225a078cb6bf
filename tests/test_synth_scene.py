"""Consistency of the synthetic generator's samples (occrecon.synth.scene) against independent checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.labels import CELEBAMASK as L
from occrecon.landmarks import edge_line_heatmaps
from occrecon.render.mesh_renderer import MeshRenderer
from occrecon.synth.config import SynthConfig
from occrecon.synth.details import decode_bump, encode_bump
from occrecon.synth.fields import OCCLUDER_CODES
from occrecon.synth.scene import SceneContext

SIZE = 64


@pytest.fixture(scope="module")
def context() -> SceneContext:
    torch.set_num_threads(1)
    return SceneContext.create(
        SynthConfig(n=64, size=SIZE, seed=11, p_glasses=0.6, p_hand=0.4, p_hair=0.4, images_per_identity=2)
    )


@pytest.fixture(scope="module")
def samples(context: SceneContext) -> list[dict[str, np.ndarray]]:
    return [context.render_sample(i) for i in range(10)]


def test_label_map_equals_an_independent_render_foreground(context: SceneContext, samples) -> None:
    """parsing_gt > 0 must be exactly the pixels a fresh render of y's face covers."""
    camera = ScaledOrthographicCamera(image_size=SIZE)
    renderer = MeshRenderer(backend="torch", image_size=SIZE, antialias=False)
    model = context.model
    for s in samples[:4]:
        y = torch.from_numpy(s["coeffs"])[None]
        geo = model(y)  # the stored coefficient vector alone must reproduce the face
        pose = context.layout.group(y, "pose")
        out = renderer.render(
            geo.vertices, model.triangles, camera, pose, geo.albedo, geo.normals, context.layout.split(y).gamma
        )
        mask = out.mask[0, 0].numpy() > 0
        assert np.array_equal(s["parsing_gt"] > 0, mask)
        assert np.array_equal(s["depth_coarse"] > 0, mask)
        np.testing.assert_allclose(pose[0].numpy(), s["camera_pose"], rtol=0, atol=0)


def _labels_near(labels: np.ndarray, point: np.ndarray) -> set[int]:
    col, row = int(point[0]), int(point[1])
    return set(labels[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].ravel().tolist())


def test_landmarks_fall_on_their_regions() -> None:
    """Eye centres on their eye (image-left points 36-41 on the subject's right eye r_eye), nose tip on
    the nose, mouth centre on lips/mouth."""
    ctx = SceneContext.create(
        SynthConfig(n=16, size=SIZE, seed=5, max_yaw_deg=30, p_glasses=0.0, p_hand=0.0, p_hair=0.0)
    )
    eyes_ok = 0
    for i in range(12):
        s = ctx.render_sample(i)
        lm, lab = s["landmarks"], s["parsing_gt"]
        assert L["nose"] in _labels_near(lab, lm[30])
        assert _labels_near(lab, lm[60:68].mean(0)) & {L["mouth"], L["u_lip"], L["l_lip"]}
        left, right = _labels_near(lab, lm[36:42].mean(0)), _labels_near(lab, lm[42:48].mean(0))
        assert L["l_eye"] not in left and L["r_eye"] not in right  # sides never swapped
        eyes_ok += L["r_eye"] in left and L["l_eye"] in right
    assert eyes_ok >= 10  # a closed eye may leave no eye pixel under its centre


def test_images_differ_only_inside_the_occluder_mask(samples) -> None:
    flagged = 0
    for s in samples:
        outside = s["occluders"] == 0
        assert np.array_equal(s["I_in"][outside], s["I_gt"][outside])
        assert np.array_equal(s["parsing_in"][outside], s["parsing_gt"][outside])
        has_occluder = bool(s["glasses"]) or bool(s["hand"]) or bool(s["hair"])
        assert (not outside.all()) == has_occluder
        flagged += has_occluder
        if s["glasses"]:
            assert (s["parsing_in"][np.isin(s["occluders"], (1, 2))] == L["eye_g"]).all()
        if s["hand"]:
            assert (s["parsing_in"][s["occluders"] == OCCLUDER_CODES["hand"]] == 0).all()
        if s["hair"]:
            assert (s["parsing_in"][s["occluders"] == OCCLUDER_CODES["hair"]] == L["hair"]).all()
        occluded = (
            s["occluders"][
                np.clip(s["landmarks"][:, 1].astype(int), 0, SIZE - 1),
                np.clip(s["landmarks"][:, 0].astype(int), 0, SIZE - 1),
            ]
            > 0
        )
        assert np.array_equal(occluded, s["landmark_occluded"])
    assert flagged >= 3  # the mix actually exercises occluders


def test_detail_depth_minus_coarse_depth_equals_decoded_bump(samples, context: SceneContext) -> None:
    bump_range = context.config.bump_range
    phi0 = encode_bump(np.zeros(1), bump_range)[0]
    for s in samples:
        face = s["depth_coarse"] > 0
        offset = s["depth_detail"] - s["depth_coarse"]
        assert (s["bump"][~face] == phi0).all() and phi0 == 128
        inside = face & (np.abs(offset) < bump_range)
        assert inside.sum() > 0.9 * face.sum()
        err = np.abs(decode_bump(s["bump"], bump_range) - offset)[inside]
        assert err.max() <= bump_range / 255.0 + 1e-6  # half a code step
        assert np.abs(offset[face]).max() > 2 * bump_range / 255.0  # the detail is really there


def test_bump_encoding_matches_conventions() -> None:
    r = 0.04
    x = np.array([-1.0, -r, -r / 2, 0.0, r / 2, r, 1.0])
    np.testing.assert_array_equal(encode_bump(x, r), [0, 0, 64, 128, 191, 255, 255])  # round(63.75), round(191.25)
    np.testing.assert_allclose(decode_bump(np.array([0, 255]), r), [-r, r], rtol=1e-6)


def test_glasses_cover_the_eyes_at_moderate_yaw() -> None:
    ctx = SceneContext.create(
        SynthConfig(
            n=20, size=SIZE, seed=2, max_yaw_deg=30, p_glasses=1.0, p_hand=0.0, p_hair=0.0, images_per_identity=1
        )
    )
    covered = []
    for i in range(20):
        s = ctx.render_sample(i)
        assert s["glasses"] > 0
        eyes = np.isin(s["parsing_gt"], (L["l_eye"], L["r_eye"]))
        glasses = np.isin(s["occluders"], (OCCLUDER_CODES["glasses_frame"], OCCLUDER_CODES["glasses_lens"]))
        covered.append((eyes & glasses).sum() >= 0.9 * eyes.sum())
    assert np.mean(covered) >= 0.95


def test_edge_lines_are_drawn_from_the_stored_landmarks(samples, context: SceneContext) -> None:
    c = context.config
    for s in samples[:3]:
        lm = torch.from_numpy(s["landmarks"])[None] * (c.heatmap_size / c.size)
        expected = edge_line_heatmaps(lm, (c.heatmap_size, c.heatmap_size), sigma=c.sigma)[0].numpy()
        assert np.abs(s["edge_lines"] / 255.0 - expected).max() <= 0.5 / 255.0 + 1e-6
        assert s["edge_lines"].shape == (13, c.heatmap_size, c.heatmap_size)


def test_same_index_same_sample_and_identity_shared(context: SceneContext) -> None:
    a, b = context.render_sample(3), context.render_sample(3)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    c = context.render_sample(2)  # same identity (2 pictures per identity), other picture
    layout = context.layout
    ya, yc = torch.from_numpy(a["coeffs"])[None], torch.from_numpy(c["coeffs"])[None]
    assert int(a["identity"]) == int(c["identity"]) == 1
    assert torch.equal(layout.split(ya).id, layout.split(yc).id) and torch.equal(
        layout.split(ya).tex, layout.split(yc).tex
    )
    assert not torch.equal(layout.split(ya).exp, layout.split(yc).exp)
