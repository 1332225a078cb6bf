"""A bad configuration fails before any work: one line on stderr, exit status 2, no run directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from occrecon.cli import main
from occrecon.config.validate import cpu_count
from tests.toy_stage import TOY

REPO = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    config = tmp_path / "toy.yaml"
    config.write_text(f"stage: '{TOY}'\n")
    root = tmp_path / "runs"
    code = main(["fit", "-c", str(config), *args, f"run.root={root}", "logger.kind=none"])
    err = capsys.readouterr().err.strip()
    assert not root.exists(), "the run directory was created before the config was refused"
    return code, err


CASES = [
    (["model.optimizer.lr=-0.001"], r"model\.optimizer\.lr=-0\.001: expected a number >= 0"),
    (["model.loss.weights.l1=-1"], r"model\.loss\.weights\.l1=-1(\.0)?: loss weights must be >= 0"),
    (["trainer.accelerator=cpu", "trainer.devices=0"], r"trainer\.devices=0: expected at least 1 device"),
    (["trainer.accelerator=cpu", f"trainer.devices={cpu_count() + 1}"], r"CPU core\(s\): use trainer\.devices<="),
    (["trainer.accelerator=cpu", "trainer.devices=64", "trainer.strategy=ddp"], r"trainer\.devices=64 on CPU"),
    (["data.batch_size=0"], r"data\.batch_size=0: expected an integer >= 1"),
    (["run.checkpoint_every_n_steps=-5"], r"run\.checkpoint_every_n_steps=-5"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_bad_value_is_one_line_exit_2(
    overrides: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "trainer.devices=64" in overrides and cpu_count() >= 64:
        pytest.skip("a machine with 64 cores may run 64 CPU processes")
    code, err = run_cli(tmp_path, capsys, *overrides)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("occrecon: error: ")
    assert re.search(message, err), err


@NO_CUDA
@pytest.mark.parametrize("overlay", [["-c", str(REPO / "experiments/trainer/gpu.yaml")], ["trainer.accelerator=gpu"]])
def test_gpu_without_cuda_is_refused(overlay: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(tmp_path, capsys, *overlay)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "no CUDA device is visible" in err and "trainer.accelerator=cpu" in err


def test_good_config_still_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(f"stage: '{TOY}'\n")
    args = ["fit", "-c", str(config), f"run.root={tmp_path / 'runs'}", "logger.kind=none", "trainer.accelerator=cpu",
            "trainer.devices=1", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "model.loss.weights.l1=0", "trainer.enable_progress_bar=false"]  # fmt: skip
    assert main(args) == 0


def test_unavailable_identity_records_the_weight_in_effect_or_fails_when_required(tmp_path: Path) -> None:
    from occrecon.config.load import load_config, read_yaml
    from occrecon.errors import ConfigError
    from occrecon.runs import prepare_run
    from occrecon.training import instantiate, record_effective_model

    missing = tmp_path / "no-such-weights.pt"
    overrides = [f"run.root={tmp_path / 'runs'}", "run.id=r", "model.depth=18", "model.identity=dlib",
                 f"model.identity_weights={missing}", "model.loss.weights.feat=0.2", "model.renderer=torch",
                 f"data.root={tmp_path / 'synth'}"]  # fmt: skip
    files = [REPO / "experiments/reconstruction/synthetic.yaml", REPO / "experiments/debug/tiny.yaml"]
    cfg = load_config(files, overrides)
    paths = prepare_run(cfg)
    assert read_yaml(paths.config).model.loss.weights.feat == 0.2
    system, _ = instantiate(cfg)
    assert system.weights["feat"] == 0.0 and system.hparams["loss"]["weights"]["feat"] == 0.0  # hparams -> W&B
    assert record_effective_model(cfg, system, paths) == ["model.loss"]
    assert read_yaml(paths.config).model.loss.weights.feat == 0.0 and cfg.model.loss.weights.feat == 0.0
    with pytest.raises(ConfigError, match="require_identity=true but L_feat is unavailable"):
        instantiate(load_config(files, [*overrides, "model.loss.require_identity=true"]))
