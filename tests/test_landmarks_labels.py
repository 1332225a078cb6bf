"""Convention tests for label spaces, landmark layouts and edge-line heatmaps."""

import math

import pytest
import torch

from occrecon import labels
from occrecon.errors import ShapeError
from occrecon.landmarks import (
    EDGE_LINES_68,
    EDGE_LINES_AFLW19,
    FLIP_68,
    FLIP_AFLW19,
    NUM_EDGE_LINES,
    distance_to_lines,
    edge_line_heatmaps,
    five_points,
)


def test_celebamask_order_is_order_a():
    # Pinned against the data set's own g_mask.py order (reference notes §5.2, order "A").
    assert labels.CELEBAMASK_CLASSES[1:] == (
        "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
        "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
    )  # fmt: skip
    assert len(labels.HELEN_CLASSES) == 11


@pytest.mark.parametrize("table,classes", [(labels.CELEBAMASK_FLIP, labels.CELEBAMASK_CLASSES), (labels.HELEN_FLIP, labels.HELEN_CLASSES)])
def test_label_flip_swaps_pairs_and_is_an_involution(table, classes):
    for i, name in enumerate(classes):
        assert table[table[i]] == i
        mirrored = {"l": "r", "r": "l"}.get(name[0], "") + name[1:]
        if name[1:2] == "_" and mirrored in classes:  # l_lip is the *lower* lip: no mirror partner
            assert classes[table[i]] == mirrored
        else:
            assert table[i] == i


def test_celebamask_to_helen_keeps_names_and_crosses_sides():
    # CelebAMask-HQ l_ = the subject's left; Helen's "left" = the viewer's left (occrecon.labels)
    crossed = {"l_eye": "r_eye", "r_eye": "l_eye", "l_brow": "r_brow", "r_brow": "l_brow"}
    for i, name in enumerate(labels.CELEBAMASK_CLASSES):
        if name in labels.HELEN:
            assert labels.CELEBAMASK_TO_HELEN[i] == labels.HELEN[crossed.get(name, name)]
    assert labels.CELEBAMASK_TO_HELEN[labels.CELEBAMASK["eye_g"]] == 0


def test_flip_68_pairs_symmetric_features():
    assert all(FLIP_68[FLIP_68[i]] == i for i in range(68))
    # jaw ends, eye outer corners, mouth corners swap; nose tip and chin stay.
    assert FLIP_68[0] == 16 and FLIP_68[36] == 45 and FLIP_68[39] == 42 and FLIP_68[48] == 54
    assert FLIP_68[30] == 30 and FLIP_68[8] == 8 and FLIP_68[57] == 57 and FLIP_68[66] == 66
    assert all(FLIP_AFLW19[FLIP_AFLW19[i]] == i for i in range(19))


def test_flip_then_mirror_maps_a_symmetric_layout_onto_itself():
    # A left-right symmetric point set: mirroring x and permuting must reproduce it.
    width = 100.0
    pts = torch.rand(68, 2) * 40
    sym = pts.clone()
    for i in range(68):
        j = FLIP_68[i]
        if i < j:
            sym[j, 0] = width - sym[i, 0]
            sym[j, 1] = sym[i, 1]
        elif i == j:
            sym[i, 0] = width / 2
    flipped = sym[list(FLIP_68)].clone()
    flipped[:, 0] = width - flipped[:, 0]
    torch.testing.assert_close(flipped, sym)


def test_edge_line_tables_cover_layouts():
    assert len(EDGE_LINES_68) == len(EDGE_LINES_AFLW19) == NUM_EDGE_LINES == 13
    assert set().union(*map(set, EDGE_LINES_68)) == set(range(68))
    assert set().union(*map(set, EDGE_LINES_AFLW19)) == set(range(19))


def test_distance_to_a_horizontal_segment_is_analytic():
    lm = torch.zeros(1, 68, 2)
    lm[0, :, 0] = 4.0  # everything parked; the nose bridge (27-30) becomes a horizontal segment
    lm[0, :, 1] = 100.0
    lm[0, 27] = torch.tensor([2.0, 5.0])
    lm[0, 28] = torch.tensor([6.0, 5.0])
    lm[0, 29] = torch.tensor([6.0, 5.0])
    lm[0, 30] = torch.tensor([6.0, 5.0])
    dist = distance_to_lines(lm, (10, 10))[0, 3]  # channel 3 = nose bridge
    # pixel (row 1, col 3) has centre (3.5, 1.5): perpendicular distance 3.5
    assert dist[1, 3].item() == pytest.approx(3.5)
    # pixel (row 5, col 9) has centre (9.5, 5.5): distance to the end point (6, 5)
    assert dist[5, 9].item() == pytest.approx(math.hypot(3.5, 0.5))


def test_heatmap_formula_and_cutoff():
    lm = torch.full((1, 68, 2), 8.0)
    sigma = 1.5
    heat = edge_line_heatmaps(lm, (16, 16), sigma=sigma)
    dist = distance_to_lines(lm, (16, 16))
    expected = torch.exp(-dist**2 / (2 * sigma**2)) * (dist < 3 * sigma)
    torch.testing.assert_close(heat, expected)
    assert heat.max() <= 1.0 and (heat[dist >= 3 * sigma] == 0).all()


def test_single_point_line_is_a_disc():
    lm = torch.zeros(1, 19, 2)
    lm[0, 18] = torch.tensor([5.0, 5.0])
    dist = distance_to_lines(lm, (10, 10), EDGE_LINES_AFLW19)[0, 0]
    assert dist[4, 4].item() == pytest.approx(math.hypot(0.5, 0.5))


def test_five_points_and_shape_errors():
    lm = torch.arange(136, dtype=torch.float32).reshape(1, 68, 2)
    five = five_points(lm)
    torch.testing.assert_close(five[0, 2], lm[0, 30])
    torch.testing.assert_close(five[0, 0], lm[0, 36:42].mean(0))
    with pytest.raises(ShapeError, match="landmarks68"):
        five_points(torch.zeros(1, 67, 2))
