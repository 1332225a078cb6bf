"""``occrecon demo``: each stage's ``demo_section`` is found in ``occrecon.evaluation.<stage>`` (the
contract in :mod:`occrecon.commands.demo`), a stage without one fails before anything is generated
or trained, and the ``--tiny`` smoke run writes a report whose every picture exists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from occrecon.cli import main
from occrecon.commands.demo import DEMO_STAGES, stage_section
from occrecon.errors import ConfigError


@pytest.mark.parametrize("stage", DEMO_STAGES)
def test_every_demo_stage_has_its_section_in_evaluation(stage: str) -> None:
    section = stage_section(stage)
    assert section.__module__ == f"occrecon.evaluation.{stage}"
    params = list(inspect.signature(section).parameters.values())
    assert [p.name for p in params[:3]] == ["system", "datamodule", "out_dir"]
    assert all(p.default is not inspect.Parameter.empty for p in params[3:])  # extras have defaults


def test_a_stage_without_an_evaluation_module_fails_before_any_work(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=r"occrecon/evaluation/nosuchstage\.py"):
        stage_section("nosuchstage")
    args = ["demo", "--tiny", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--stages", "parsing,nosuchstage"]
    assert main(args) == 2
    assert "nosuchstage" in capsys.readouterr().err
    assert not (tmp_path / "data").exists() and not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_tiny_demo_writes_a_report_with_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, data = tmp_path / "out", tmp_path / "data"
    args = ["demo", "--tiny", "--out", str(out), "--data", str(data), "--workers", "1"]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    for title in ("Synthetic occluded faces", "Face parsing M_fa", "Face edge lines M_edge", "Fused parsing M_fin",
                  "Coarse 3D reconstruction"):  # fmt: skip
        assert f"## {title}" in report, title
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(pictures) >= 5 and all((out / p).is_file() for p in pictures)
    assert sorted(p.name for p in (out / "meshes").glob("*.obj"))  # the coarse stage's meshes
    assert "-c experiments/debug/tiny.yaml" in report  # the reproduce line names the smoke overlay
    assert main(args) == 2  # an existing report is kept unless --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_demo_regenerates_a_synthetic_set_of_another_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set written by an older occrecon (format 1: mirrored l_/r_ labels) is rebuilt, not read;
    a current, complete set with the same n/size/seed is reused as it is."""
    import json

    from occrecon.commands.demo import ensure_synthetic
    from occrecon.synth.reader import load_manifest

    data = tmp_path / "synthetic-demo"
    ensure_synthetic(data, 2, 32, 0, 1)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["format_version"] = 1
    (data / "manifest.json").write_text(json.dumps(manifest))
    stale = data / "shards" / "left-over.txt"
    stale.write_text("from the old set")
    _, seconds = ensure_synthetic(data, 2, 32, 0, 1)
    assert "holds synthetic format 1" in capsys.readouterr().out
    assert seconds > 0 and not stale.exists()
    assert load_manifest(data)["format_version"] == 2
    mtime = (data / "manifest.json").stat().st_mtime_ns
    assert ensure_synthetic(data, 2, 32, 0, 1)[1] == 0.0  # reused
    assert (data / "manifest.json").stat().st_mtime_ns == mtime
