"""Ablation runner: a tiny 2-cell grid on experiments/debug/tiny.yaml runs, resumes, tabulates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from occrecon.ablation import load_spec, logger_words
from occrecon.cli import main
from occrecon.config.load import load_config
from occrecon.errors import ConfigError
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
base: [{repo}/experiments/reconstruction/synthetic.yaml]
seeds: [0]
metrics: [val/error_sim_mm, val/nme]
grid:
  model.loss.weights.land: [0.0, 1.6e-3]
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(n=8, size=64, seed=3, images_per_identity=1, shard_size=8)
    return generate_dataset(config, tmp_path_factory.mktemp("abl") / "ds", workers=1, progress=False)


def test_spec_grid_and_cells(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "base: [a.yaml]\nseeds: [0, 1]\ngrid:\n  model.x: [1, 2]\n  model.y: [a]\ncells:\n  base: {}\n  z: {model.z: 0.5}\n"
    )
    spec = load_spec(path)
    assert [c.name for c in spec.cells] == ["x=1_y=a", "x=2_y=a", "base", "z"]
    assert spec.cells[1].words() == ["model.x=2", "model.y=a"] and spec.seeds == [0, 1]
    path.write_text("base: [a.yaml]\ngird: {}\n")
    with pytest.raises(ConfigError, match="gird"):
        load_spec(path)


def test_shipped_ablation_files_load() -> None:
    files = sorted((REPO / "experiments" / "ablations").rglob("*.yaml"))
    specs = [f for f in files if "base:" in f.read_text()]
    assert any(f.name == "loss_weights.yaml" for f in specs)
    for path in specs:
        spec = load_spec(path)
        for cell in spec.cells:  # every cell's keys exist in the stage's schema
            base = [REPO / b for b in (cell.base or spec.base) + spec.overlays]
            load_config(base, [*cell.words(), "model.identity=none"] if "reconstruction" in str(path) else cell.words())


def test_tiny_grid_runs_resumes_and_writes_the_table(tmp_path: Path, dataset: Path) -> None:
    spec = tmp_path / "tiny_grid.yaml"
    spec.write_text(SPEC.format(repo=REPO))
    root = tmp_path / "abl"
    argv = [
        "ablate", str(spec), "-c", str(REPO / "experiments/debug/tiny.yaml"), f"run.root={root}",
        f"data.root={dataset}", "data.generate=false", "data.augment=false", "data.val_fraction=0.25",
        "model.identity=none", "model.depth=18", "model.renderer=torch", "trainer.limit_train_batches=2",
        "run.checkpoint_every_n_steps=0", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((root / "runs.csv").open()))
    assert [(r["cell"], r["status"]) for r in rows] == [("land=0.0", "ran"), ("land=0.0016", "ran")]
    assert all(float(r["val/error_sim_mm"]) > 0 for r in rows)
    table = (root / "results.md").read_text()
    assert "land=0.0016" in table and "val/error_sim_mm" in table and "±" in table
    assert (root / "results.png").stat().st_size > 1000 and (root / "results.csv").is_file()
    assert (root / "land=0.0-s0" / "config.yaml").is_file()  # each cell a normal run directory
    first = {r["cell"]: r["val/error_sim_mm"] for r in rows}

    assert main(argv) == 0  # a second call skips both finished cells
    rows = list(csv.DictReader((root / "runs.csv").open()))
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert {r["cell"]: r["val/error_sim_mm"] for r in rows} == first

    # a killed cell (checkpoint, no completion marker) is resumed, not restarted
    (root / "land=0.0016-s0" / "ablation.json").unlink()
    assert main(argv) == 0
    rows = list(csv.DictReader((root / "runs.csv").open()))
    assert [r["status"] for r in rows] == ["skipped", "resumed"]
    done = json.loads((root / "land=0.0016-s0" / "ablation.json").read_text())
    assert done["finished"] and done["metrics"]["val/error_sim_mm"] == pytest.approx(float(first["land=0.0016"]))


def test_wandb_cells_share_the_ablations_group() -> None:
    base = [REPO / "experiments/reconstruction/synthetic.yaml"]
    wandb = load_config(base, ["logger.kind=wandb"])
    assert logger_words(wandb, "loss_weights", "no_feat", "no_feat-s0") == [
        "logger.group=loss_weights", "logger.name=no_feat-s0", "logger.tags=[ablation,loss_weights,no_feat]",
    ]  # fmt: skip
    mine = load_config(base, ["logger.kind=wandb", "logger.group=g"])
    assert logger_words(mine, "a", "c", "c-s0")[0] == "logger.name=c-s0"
    assert logger_words(load_config(base), "a", "c", "c-s0") == []  # csv: nothing to group
