"""Eq. 1 (two-sided, docs/fusion.md) on degenerate maps, against hand-counted pixel shares.

One straight true line across a 64 x 64 map on the centre row of row 10 (``y = 10.5``): the
pixels it passes through are row 10; a LAB band (sigma 1, threshold 0.5) is rows 9-11.
"""

from __future__ import annotations

import pytest
import torch
from data_fixtures import landmarks68

from occrecon.landmarks import edge_line_heatmaps
from occrecon.losses.edge_lines import (
    DEFAULT_DELTA,
    DEFAULT_THETA,
    DiscriminatorLoss,
    effectiveness_label,
    line_precision_recall,
)

S = 64
LINE = ((0, 1, 2),)
THETA = 1.5


def through_row_10(x0: float = -10.0, x1: float = S + 10.0) -> torch.Tensor:
    return torch.tensor([[[x0, 10.5], [0.5 * (x0 + x1), 10.5], [x1, 10.5]]])


def rows_on(*rows: int) -> torch.Tensor:
    heat = torch.zeros(1, 1, S, S)
    heat[0, 0, list(rows)] = 1.0
    return heat


@pytest.mark.parametrize(
    "shift,precision,recall",
    [
        (0, 1.0, 1.0),  # rows 9-11 all within 1.5 of the line
        (1, 2 / 3, 1.0),  # rows 10-12: row 12 is 2 px away
        (2, 1 / 3, 1.0),  # rows 11-13: only row 11 near; row 10 still has row 11 at 1 px
        (3, 0.0, 0.0),  # rows 12-14: nothing within 1.5 either way
    ],
)
def test_shifted_band_hand_counted(shift: int, precision: float, recall: float) -> None:
    p, r = line_precision_recall(rows_on(9 + shift, 10 + shift, 11 + shift), through_row_10(), THETA, LINE)
    assert p.item() == pytest.approx(precision) and r.item() == pytest.approx(recall)


def test_all_on_and_all_off_are_not_effective() -> None:
    lm = through_row_10()
    p, r = line_precision_recall(torch.ones(1, 1, S, S), lm, THETA, LINE)
    assert p.item() == pytest.approx(3 / S) and r.item() == 1.0  # rows 9-11 of 64 are near the line
    p, r = line_precision_recall(torch.zeros(1, 1, S, S), lm, THETA, LINE)
    assert p.item() == 0.0 and r.item() == 0.0
    for heat in (torch.ones(1, 1, S, S), torch.zeros(1, 1, S, S)):
        d_gt, _ = effectiveness_label(heat, lm, THETA, 0.5, LINE)
        assert d_gt.item() == 0.0


def test_dots_at_the_landmarks_do_not_cover_the_line() -> None:
    """Blobs only at the three landmarks (x = 2, 32, 62): every landmark is on a predicted pixel,
    but 10 of the 62 line pixels (columns 1-62) are within 1.5 px of one."""
    lm = through_row_10(2.0, 62.0)
    heat = torch.zeros(1, 1, S, S)
    for cols in ((1, 2), (31, 32), (61, 62)):  # pixel centres within 1.18 px of each landmark
        heat[0, 0, 9:12, list(cols)] = 1.0
    p, r = line_precision_recall(heat, lm, THETA, LINE)
    assert p.item() == 1.0 and r.item() == pytest.approx(10 / 62)
    d_gt, share = effectiveness_label(heat, lm, THETA, 0.5, LINE)
    assert d_gt.item() == 0.0 and share.item() == pytest.approx(10 / 62)


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return torch.from_numpy(landmarks68((32.0, 34.0), 22.0)).float()[None]


def test_face_degenerate_maps(face: torch.Tensor) -> None:
    """The 13 LAB lines of a face at the defaults: only the true map is effective."""
    truth = edge_line_heatmaps(face, (S, S), sigma=1.0)
    maps = {
        "truth": truth,
        "all on": torch.ones_like(truth),
        "all off": torch.zeros_like(truth),
        "blurry (sigma 3)": edge_line_heatmaps(face, (S, S), sigma=3.0),
        "shifted 3 px": edge_line_heatmaps(face + torch.tensor([3.0, 0.0]), (S, S), sigma=1.0),
        "half the lines": truth * (torch.arange(13) % 2 == 0).float()[None, :, None, None],
    }
    d_gt, share = effectiveness_label(torch.cat(list(maps.values())), face.expand(len(maps), -1, -1))
    assert d_gt.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], dict(zip(maps, share.tolist(), strict=True))
    assert share[0].item() == 1.0


def test_one_home_for_the_defaults() -> None:
    from occrecon.systems.edge_lines import DiscriminatorConfig

    loss = DiscriminatorLoss()
    assert (loss.theta, loss.delta) == (DEFAULT_THETA, DEFAULT_DELTA)
    assert (DiscriminatorConfig().theta, DiscriminatorConfig().delta) == (DEFAULT_THETA, DEFAULT_DELTA)
