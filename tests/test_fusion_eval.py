"""Fusion evaluation: the split-level scores on hand-counted cases, and M_fin beating both
baselines on a tiny synthetic set with oracle inputs, through the library and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occrecon.cli import main
from occrecon.commands.evaluate import synthetic_loader
from occrecon.evaluation.fusion import FusionScores, evaluate_fusion
from occrecon.labels import CELEBAMASK as L
from tests.test_system_parsing import make_synth_root


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth_root(tmp_path_factory)


def test_scores_count_only_pixels_inside_the_ground_truth_mask() -> None:
    gt = torch.tensor([[[L["skin"], L["l_eye"], L["l_eye"], L["nose"]]]])
    mask = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    right = gt.clone()
    half = gt.clone()
    half[0, 0, 2] = L["skin"]
    wrong_outside = right.clone()
    wrong_outside[0, 0, 0] = L["hair"]  # outside the mask: must not count
    scores = FusionScores(methods=("right", "half", "outside"))
    scores.update({"right": right, "half": half, "outside": wrong_outside}, gt, mask)
    values = scores.compute()
    assert values["right"] == {"miou": 1.0, "pixel_accuracy": 1.0, "pixels": 2}
    assert values["outside"]["miou"] == 1.0
    # half: l_eye IoU = 1 / 2 (1 hit, 1 miss), skin IoU = 0 / 1 (only predicted) -> mean 0.25
    assert values["half"]["miou"] == pytest.approx(0.25)
    assert values["half"]["pixel_accuracy"] == pytest.approx(0.5)


def test_scores_accumulate_over_batches_not_average_them() -> None:
    """Two images, one all right (3 px) and one all wrong (1 px): accuracy 3/4, not (1 + 0)/2."""
    scores = FusionScores(methods=("m",))
    gt1, gt2 = torch.full((1, 1, 3), L["l_eye"]), torch.full((1, 1, 1), L["nose"])
    scores.update({"m": gt1.clone()}, gt1, torch.ones(1, 1, 1, 3))
    scores.update({"m": torch.full((1, 1, 1), L["skin"])}, gt2, torch.ones(1, 1, 1, 1))
    assert scores.compute()["m"]["pixel_accuracy"] == pytest.approx(0.75)
    assert scores.count == 2


def test_fusion_beats_both_baselines_with_oracle_inputs(synth_root: Path) -> None:
    values = evaluate_fusion(synthetic_loader(synth_root, "all")).compute()
    assert values["M_fin"]["pixels"] > 0
    assert values["M_fin"]["miou"] > values["nearest"]["miou"]
    assert values["M_fin"]["miou"] > values["skin"]["miou"]
    # leaving the occluders as they are is the floor every fusion must clear
    assert values["M_fa"]["miou"] < values["skin"]["miou"]


def test_cli_prints_the_table(synth_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "fusion", "--data", str(synth_root), "--max-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "| M_fin (fusion) |" in out and "| nearest label |" in out and "| occluders -> skin |" in out


def test_cli_reports_a_missing_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "fusion", "--data", str(tmp_path / "nothing")]) == 1
    assert "occrecon data synth" in capsys.readouterr().out


def test_demo_section_with_both_networks(synth_root: Path, tmp_path: Path) -> None:
    from datamodules.synthetic import SyntheticDataModule
    from occrecon.evaluation.fusion import demo_section
    from occrecon.systems.edge_lines import EdgeLinesSystem
    from occrecon.systems.parsing import ParsingSystem

    dm = SyntheticDataModule(root=str(synth_root), batch_size=2, augment=False, generate=False)
    parsing = ParsingSystem(width=8, depth=18)
    edges = EdgeLinesSystem(width=8, num_stacks=2, hourglass_depth=2, message_kernel=3)
    section = demo_section(parsing, edges, dm, tmp_path / "report", max_batches=1)
    assert (tmp_path / "report" / section.figures[0][1]).is_file()
    assert {"M_fin/miou_occluded", "nearest/miou_occluded", "skin/miou_occluded"} <= set(section.metrics)
    assert "M_fin (fusion)" in section.tables[0]
