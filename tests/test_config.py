"""Config loading: merge order, the promised errors (key, file, expected type), save/diff, optimizers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import nn

from occrecon.config.load import diff_configs, load_config, save_config, to_plain
from occrecon.errors import ConfigError
from occrecon.registry import StageSpec, get_stage
from occrecon.runs import RunPaths
from occrecon.training import build_logger, build_optimization, instantiate
from tests.toy_stage import TOY

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path / "base.yaml", f"stage: '{TOY}'\nseed: 3\ntrainer:\n  max_epochs: 5\nmodel:\n  width: 4\n")


def test_files_then_overrides_merge_in_order(base: Path, tmp_path: Path) -> None:
    overlay = write(tmp_path / "overlay.yaml", "trainer:\n  max_epochs: 7\nmodel:\n  loss:\n    weights:\n      l1: 0.5\n")
    cfg = load_config([base, overlay], ["trainer.max_epochs=9", "logger.tags=[a,b]"])
    assert cfg.trainer.max_epochs == 9  # override beats both files
    assert cfg.model.width == 4  # from base, untouched by the overlay
    assert cfg.model.loss.weights.l1 == 0.5 and cfg.model.loss.weights.mse == 1.0  # schema default kept
    assert list(cfg.logger.tags) == ["a", "b"]
    assert cfg.data.batch_size == 4  # the toy stage's data schema default


def test_overrides_alone_and_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCC_TEST_ROOT", "/data/faces")
    cfg = load_config([], [f"stage={TOY}", "data.root=${oc.env:OCC_TEST_ROOT}"])
    assert cfg.data.root == "/data/faces"


def test_unknown_key_names_key_file_and_suggestion(base: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "typo.yaml", "trainer:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config([base, bad])
    msg = str(err.value)
    assert str(bad) in msg and "trainer.max_epoch" in msg and "did you mean 'max_epochs'" in msg


def test_unknown_key_inside_the_stage_model_schema(base: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "typo.yaml", "model:\n  loss:\n    weights:\n      mes: 1.0\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown key 'model\.loss\.weights\.mes'.*'mse'"):
        load_config([base, bad])


def test_wrong_type_names_key_file_and_expected_type(base: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "type.yaml", "data:\n  batch_size: many\n")
    with pytest.raises(ConfigError) as err:
        load_config([base, bad])
    msg = str(err.value)
    assert str(bad) in msg and "data.batch_size" in msg and "expected int" in msg


def test_wrong_type_in_an_override_names_the_override(base: Path) -> None:
    with pytest.raises(ConfigError, match=r"override 'model.dropout=high'.*model\.dropout.*expected float"):
        load_config([base], ["model.dropout=high"])


def test_bad_logger_kind_lists_the_choices(base: Path) -> None:
    with pytest.raises(ConfigError, match=r"logger\.kind.*csv.*wandb.*tensorboard"):
        load_config([base], ["logger.kind=mlflow"])


def test_missing_file_is_named(base: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config([base, tmp_path / "nope.yaml"])


def test_stage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no 'stage' key"):
        load_config([write(tmp_path / "a.yaml", "seed: 1\n")])
    with pytest.raises(ConfigError, match="unknown stage 'recon'.*reconstruction"):
        load_config([], ["stage=recon"])
    with pytest.raises(ConfigError, match="has no attribute 'NOPE'"):
        get_stage("tests.toy_stage:NOPE")
    unwritten = StageSpec("later", system="occrecon.systems.not_written_yet:S", model_schema="occrecon.systems.not_written_yet:M",
                          datamodule="datamodules.not_written_yet:D", data_schema="datamodules.not_written_yet:C")
    with pytest.raises(ConfigError, match=r"stage 'later' model_schema: module 'occrecon\.systems\.not_written_yet'"):
        unwritten.load("model_schema")


def test_malformed_override(base: Path) -> None:
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config([base], ["--trainer.max_epochs"])


def test_save_and_reload_round_trip(base: Path, tmp_path: Path) -> None:
    cfg = load_config([base], ["logger.kind=wandb", "run.checkpoint_every_n_steps=5"])
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_config([tmp_path / "saved.yaml"])
    assert to_plain(again) == to_plain(cfg)


def test_resume_diff_refuses_shape_keys_only() -> None:
    old = {"stage": "x", "model": {"width": 8, "loss": {"weights": {"a": 1.0}}, "optimizer": {"lr": 0.1}},
           "data": {"image_size": 64, "batch_size": 2}, "trainer": {"max_epochs": 1}, "run": {"resume": False}}
    new = {"stage": "x", "model": {"width": 16, "loss": {"weights": {"a": 2.0}}, "optimizer": {"lr": 0.2}},
           "data": {"image_size": 32, "batch_size": 4}, "trainer": {"max_epochs": 2}, "run": {"resume": True}}
    diff = diff_configs(old, new)
    assert [k for k, _, _ in diff.refused] == ["data.image_size", "model.width"]
    assert [k for k, _, _ in diff.allowed] == [
        "data.batch_size", "model.loss.weights.a", "model.optimizer.lr", "trainer.max_epochs"]


def test_build_optimization_warmup_then_cosine() -> None:
    module = nn.Linear(2, 1)
    out = build_optimization(
        module,  # type: ignore[arg-type]  # only .parameters() is used when t_max is given
        {"name": "sgd", "lr": 1.0, "weight_decay": 0.0, "betas": [0.9, 0.999], "momentum": 0.0},
        {"name": "cosine", "interval": "step", "t_max": 4, "eta_min": 0.0, "step_size": 1, "milestones": [],
         "gamma": 0.1, "warmup": 2},
    )
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # Warm-up 1/3, 2/3 (LinearLR from 1/(w+1)), then cosine over t_max - warmup = 2 steps: 1, 0.5, 0.
    expected = [1 / 3, 2 / 3, 1.0, 0.5, 0.0]
    assert torch.allclose(torch.tensor(lrs), torch.tensor(expected), atol=1e-6)


def test_unknown_optimizer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.optimizer.name"):
        build_optimization(nn.Linear(1, 1), {"name": "lion", "lr": 1.0, "weight_decay": 0.0}, {"name": "none"})  # type: ignore[arg-type]


def test_wandb_logger_is_offline_without_key_and_uses_the_run_id(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either

    cfg = load_config([base, REPO / "experiments" / "logger" / "wandb.yaml"], [f"run.root={tmp_path}"])
    paths = RunPaths("run-42", tmp_path / "run-42")
    logger = build_logger(cfg, paths)
    assert isinstance(logger, WandbLogger)
    assert logger._offline is True  # conftest removes WANDB_API_KEY
    assert logger._wandb_init["id"] == "run-42" and logger._wandb_init["resume"] == "allow"
    assert wandb.run is None  # nothing was initialised by hand
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert build_logger(cfg, paths)._offline is False


def test_tensorboard_logger_or_a_clear_error(base: Path, tmp_path: Path) -> None:
    cfg = load_config([base], ["logger.kind=tensorboard"])
    paths = RunPaths("tb", tmp_path / "tb")
    installed = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    if installed:
        assert type(build_logger(cfg, paths)).__name__ == "TensorBoardLogger"
    else:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            build_logger(cfg, paths)


def test_csv_is_the_default_logger_and_none_disables(base: Path, tmp_path: Path) -> None:
    paths = RunPaths("c", tmp_path / "c")
    logger = build_logger(load_config([base]), paths, "test")
    assert isinstance(logger, CSVLogger) and Path(logger.log_dir) == tmp_path / "c" / "logs" / "test"
    assert build_logger(load_config([base], ["logger.kind=none"]), paths) is False


def test_data_section_typed_by_the_dataset_module(tmp_path: Path) -> None:
    """``data.dataset`` picks a data module; its __init__ signature types the data section."""
    cfg = load_config([], [f"stage={TOY}", "data.dataset=tests.toy_stage:ToyDataModule", "data.batch_size=3"])
    assert cfg.data.batch_size == 3 and cfg.data.dataset == "tests.toy_stage:ToyDataModule"
    with pytest.raises(ConfigError, match="data.nope"):
        load_config([], [f"stage={TOY}", "data.dataset=tests.toy_stage:ToyDataModule", "data.nope=1"])
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_config([], [f"stage={TOY}", "data.dataset=tests.toy_stage:ToyDataModule", "data.batch_size=abc"])
    with pytest.raises(ConfigError, match="unknown data.dataset 'imagenet'"):
        load_config([], [f"stage={TOY}", "data.dataset=imagenet"])
    system, datamodule = instantiate(load_config([], [f"stage={TOY}", "data.dataset=tests.toy_stage:ToyDataModule"]))
    assert type(datamodule).__name__ == "ToyDataModule"
