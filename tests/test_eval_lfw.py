"""LFW Table-1 protocol: EER, accuracy, nAUC against values computed by hand; 10-fold handling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from datamodules.lfw import read_eyewear, read_pairs
from occrecon.cli import main
from occrecon.errors import DataFormatError
from occrecon.evaluation import lfw


def test_perfect_separation() -> None:
    scores, same = [0.9, 0.8, 0.1, 0.2], [True, True, False, False]
    assert lfw.equal_error_rate(scores, same) == 0.0
    assert lfw.normalised_auc(scores, same) == 1.0
    t = lfw.best_threshold(scores, same)
    assert 0.2 < t < 0.8 and lfw.accuracy_at(scores, same, t) == 1.0


def test_all_equal_scores_are_chance() -> None:
    scores, same = [0.3] * 4, [True, False, True, False]
    # ROC = (0,0) -> (1,1): crosses FPR = 1 - TPR at 0.5; area 0.5
    assert lfw.equal_error_rate(scores, same) == pytest.approx(0.5)
    assert lfw.normalised_auc(scores, same) == pytest.approx(0.5)
    # one decision for every pair: half of them right whatever the threshold
    assert lfw.accuracy_at(scores, same, lfw.best_threshold(scores, same)) == 0.5


def test_tied_scores_by_hand() -> None:
    # ROC (0,0) (0,.5) (.5,1) (1,1): the tie (0.5 same, 0.5 different) is one diagonal step.
    scores, same = [0.5, 0.5, 0.9, 0.1], [True, False, True, False]
    assert lfw.equal_error_rate(scores, same) == pytest.approx(0.25)  # t = .5 + f meets f = 1 - t
    assert lfw.normalised_auc(scores, same) == pytest.approx(0.875)  # 3.5 of 4 pairs ordered (tie = 1/2)


def test_asymmetric_case_by_hand() -> None:
    scores, same = [0.8, 0.4, 0.6, 0.5, 0.3], [True, True, True, False, False]
    # sorted: .8S .6S .5D .4S .3D -> ROC (0,0) (0,1/3) (0,2/3) (.5,2/3) (.5,1) (1,1)
    assert lfw.equal_error_rate(scores, same) == pytest.approx(1 / 3)
    assert lfw.normalised_auc(scores, same) == pytest.approx(5 / 6)
    # 4/5 right at thresholds 0.35 and 0.55; the lowest wins
    assert lfw.best_threshold(scores, same) == pytest.approx(0.35)
    assert lfw.accuracy_at(scores, same, 0.35) == pytest.approx(0.8)


def test_one_class_is_not_measurable() -> None:
    assert math.isnan(lfw.equal_error_rate([0.1, 0.2], [True, True]))
    assert math.isnan(lfw.normalised_auc([0.1, 0.2], [False, False]))


# three folds of 2 + 2 pairs; scores per fold (matched first, as pairs.txt)
FOLD_SCORES = [[0.9, 0.8, 0.1, 0.2], [0.7, 0.6, 0.3, 0.4], [0.35, 0.9, 0.5, 0.1]]


def write_pairs(root: Path) -> Path:
    lines = ["3\t2"]
    for f in range(3):
        lines += [f"P{f}_a\t1\t2", f"G{f}\t1\t2", f"P{f}_a\t1\tP{f}_b\t1", f"G{f}\t1\tP{f}_b\t2"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    rows = ["# attributes", "#\tperson\timagenum\tMale\tNo Eyewear\tEyeglasses\tSunglasses"]
    for f in range(3):
        for n in (1, 2):
            rows.append(f"P{f} a\t{n}\t0.1\t1.0\t-1.0\t-1.0")
            rows.append(f"P{f} b\t{n}\t0.1\t1.0\t-1.0\t-1.0")
            rows.append(f"G{f}\t{n}\t0.1\t-1.0\t1.5\t-1.0")
    (root / "lfw_attributes.txt").write_text("\n".join(rows) + "\n")
    return root / "pairs.txt"


def test_ten_fold_thresholds_from_the_other_folds(tmp_path: Path) -> None:
    pairs = lfw.pair_list(read_pairs(write_pairs(tmp_path)))
    assert pairs.folds.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert pairs.same.tolist() == [True, True, False, False] * 3
    result = lfw.ten_fold(np.ravel(FOLD_SCORES), pairs.same, pairs.folds)
    # fold 0: threshold .55 from folds 1+2 (7/8) -> 4/4; fold 1: .275 from folds 0+2 (7/8, lowest of
    # two) -> .3 and .4 wrong; fold 2: .5 from folds 0+1 (8/8) -> .35 wrong, .5 (not > .5) right
    assert result.acc == pytest.approx([1.0, 0.5, 0.75])
    assert result.eer_acc == pytest.approx([1.0, 1.0, 0.5])
    assert result.nauc == pytest.approx([1.0, 1.0, 0.75])
    summary = result.summary()
    assert summary["acc"]["mean"] == pytest.approx(75.0) and summary["acc"]["std"] == pytest.approx(25.0)
    assert summary["eer_acc"]["mean"] == pytest.approx(250 / 3)
    assert summary["eer_acc"]["std"] == pytest.approx(math.sqrt(2500 / 3))
    assert summary["nauc"]["mean"] == pytest.approx(275 / 3) and summary["nauc"]["std"] == pytest.approx(
        math.sqrt(625 / 3)
    )


def test_glasses_subsets_from_attributes(tmp_path: Path) -> None:
    pairs = lfw.pair_list(read_pairs(write_pairs(tmp_path)), read_eyewear(tmp_path / "lfw_attributes.txt"))
    masks = lfw.subset_masks(pairs.eyewear_a, pairs.eyewear_b)
    # per fold: (Pa,Pa) none, (G,G) both, (Pa,Pb) none, (G,Pb) mixed -> in neither subset
    assert masks["glasses"].tolist() == [False, True, False, False] * 3
    assert masks["no_glasses"].tolist() == [True, False, True, False] * 3
    anyone = lfw.subset_masks(pairs.eyewear_a, pairs.eyewear_b, "any")["glasses"]
    assert anyone.tolist() == [False, True, False, True] * 3


def test_cli_scores_to_json(tmp_path: Path) -> None:
    pairs_path = write_pairs(tmp_path)
    scores = tmp_path / "scores.csv"
    scores.write_text("pair,similarity\n" + "".join(f"{i},{s}\n" for i, s in enumerate(np.ravel(FOLD_SCORES))))
    out = tmp_path / "table.json"
    code = main(["eval", "lfw", "--scores", str(scores), "--pairs", str(pairs_path),
                 "--attributes", str(tmp_path / "lfw_attributes.txt"), "--json", str(out), "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 0
    table = json.loads(out.read_text())
    assert set(table) == {"all", "glasses", "no_glasses"}
    assert set(table["all"]) >= {"eer_acc", "acc", "nauc"}
    assert table["all"]["acc"] == {"mean": pytest.approx(75.0), "std": pytest.approx(25.0)}
    # the glasses subset has only matched pairs: EER and AUC are not measurable, accuracy is
    assert table["glasses"]["eer_acc"]["mean"] is None and table["glasses"]["pairs"] == 3
    assert (tmp_path / "o" / "roc.png").stat().st_size > 1000


def test_scores_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.csv"
    bad.write_text("0.5\nabc\n")
    with pytest.raises(DataFormatError, match=r"s.csv:2"):
        lfw.read_scores(bad)
    bad.write_text("0.5\n0.4\n")
    with pytest.raises(DataFormatError, match="3 scores"):
        lfw.read_scores(bad, expected=3)
