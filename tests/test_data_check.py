"""``occrecon data check``: per-split counts, problem categories and exit codes on official-format fixtures."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    landmarks68,
    pts_text,
    save_image,
    truncate,
    write_300w,
    write_aflw,
    write_celebamask,
    write_helen,
    write_lfw,
)

from occrecon.cli import main
from occrecon.commands import data_check as command
from occrecon.data_check import check_dataset

WRITERS = {
    "helen": write_helen,
    "celebamask_hq": write_celebamask,
    "w300": write_300w,
    "aflw": write_aflw,
    "lfw": write_lfw,
}


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers()
    command.register(groups)
    args = parser.parse_args(["check", *argv])
    return args.handler(args)


def totals(reports) -> dict[str, int]:
    keys = reports[0].counts
    return {k: sum(r.counts[k] for r in reports) for k in keys}


def test_the_cli_routes_data_check_to_this_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``occrecon data check`` (the plug-in's group + name) reaches the check: a truncated image is
    reported and the exit code is 1; a clean set exits 0."""
    root = write_helen(tmp_path / "helen")
    assert main(["data", "check", "helen", "--root", str(root)]) == 0
    assert "no problems found" in capsys.readouterr().out
    truncate(root / "images" / "100000002_1.jpg", keep=0.3)
    assert main(["data", "check", "helen", "--root", str(root)]) == 1
    assert "100000002_1.jpg" in capsys.readouterr().out


@pytest.mark.parametrize("dataset", sorted(WRITERS))
def test_clean_data_sets_exit_0_with_a_table(tmp_path: Path, dataset: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = WRITERS[dataset](tmp_path / dataset)
    assert run(dataset, "--root", str(root)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["split", "samples", "ok", "missing", "corrupt", "labels", "points", "format"]
    assert "no problems found" in out


def test_helen_truncated_jpeg_is_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_helen(tmp_path / "helen")
    truncate(root / "images" / "100000002_1.jpg", keep=0.3)
    reports = check_dataset("helen", str(root))
    assert reports[0].samples == 2 and reports[0].ok == 1 and reports[0].counts["corrupt"] == 1
    assert run("helen", "--root", str(root)) == 1
    assert "100000002_1.jpg" in capsys.readouterr().out


def test_w300_67_points_and_missing_private_set(tmp_path: Path) -> None:
    root = write_300w(tmp_path / "300W")
    (root / "ibug" / "image_5000.pts").write_text(pts_text(landmarks68((20, 20), 10)[:67]))
    for folder in ("01_Indoor", "02_Outdoor"):  # a separate download: absent is not a problem
        for path in (root / folder).iterdir():
            path.unlink()
        (root / folder).rmdir()
    reports = {r.split: r for r in check_dataset("w300", str(root))}
    assert reports["challenging"].counts["points"] == 1 and reports["private_indoor"].absent
    assert totals(list(reports.values()))["points"] == 1 and not reports["train"].failed
    assert run("w300", "--root", str(root)) == 1


def test_celebamask_missing_part_mask_and_label_255(tmp_path: Path) -> None:
    root = write_celebamask(tmp_path / "CelebAMask-HQ", mask_size=16)
    (root / "CelebAMask-HQ-mask-anno" / "0" / "00002_skin.png").unlink()
    for index in (0, 1, 2, 3, 2000, 2001):
        merged = np.zeros((16, 16), np.uint8)
        merged[2, 2] = 255 if index == 3 else 13
        save_image(root / "CelebAMask-HQ-mask" / f"{index}.png", merged)
    reports = {r.split: r for r in check_dataset("celebamask_hq", str(root))}
    assert reports["val"].counts["missing"] == 1 and "00002_skin.png" in reports["val"].problems[0]
    assert reports["val (merged)"].counts["labels"] == 1 and "got 255" in reports["val (merged)"].problems[0]
    assert reports["train"].ok == 2 and not reports["test (merged)"].failed
    assert run("celebamask_hq", "--root", str(root)) == 1


def test_lfw_bad_pairs_line_and_aflw_missing_image(tmp_path: Path) -> None:
    root = write_lfw(tmp_path / "LFW")
    lines = (root / "pairs.txt").read_text().splitlines()
    lines[5] = "Zico\t1"
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    (reports,) = check_dataset("lfw", str(root))
    assert reports.counts["format"] == 1 and "pairs.txt:6" in reports.problems[0]
    aflw = write_aflw(tmp_path / "AFLW")
    (aflw / "flickr" / "0" / "image00003.jpg").unlink()
    assert totals(check_dataset("aflw", str(aflw)))["missing"] == 1
    assert run("aflw", "--root", str(aflw)) == 1


def test_missing_root_exits_1_with_download_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("lfw", "--root", str(tmp_path / "nothing")) == 1
    assert "vis-www.cs.umass.edu/lfw" in capsys.readouterr().out


def test_check_runs_through_the_occrecon_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from occrecon.cli import main

    root = write_lfw(tmp_path / "LFW")
    assert main(["data", "check", "lfw", "--root", str(root)]) == 0
    truncate(root / "lfw" / "Zico" / "Zico_0001.jpg", keep=0.3)
    assert main(["data", "check", "lfw", "--root", str(root)]) == 1
    assert "Zico_0001.jpg" in capsys.readouterr().out
