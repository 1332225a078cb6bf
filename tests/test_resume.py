"""Resume is exact: interrupted + resumed runs end with the same parameters as uninterrupted ones."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from occrecon.config.load import load_config
from occrecon.errors import ConfigError
from occrecon.runs import RunExistsError, resolve_run_id
from occrecon.training import run_command
from tests import toy_stage
from tests.toy_stage import TOY

# 32 samples / batch 4 = 8 steps per epoch; dropout 0.5 and a shuffled loader make every step
# depend on the RNG state and on the loader position.
BASE = [
    f"stage={TOY}",
    "seed=7",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=1",
    "trainer.log_every_n_steps=1",
    "logger.kind=none",
    "run.checkpoint_every_n_steps=3",
]


class Killed(RuntimeError):
    """Raised by :class:`KillAtStep` to simulate a crash."""


class KillAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def fit(root: Path, run_id: str, *extra: str, callbacks: tuple[L.Callback, ...] = ()) -> Path:
    cfg = load_config([], [*BASE, f"run.root={root}", f"run.id={run_id}", *extra])
    _, paths = run_command("fit", cfg, callbacks=callbacks)
    return paths.last_checkpoint


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    # weights_only=True: the checkpoint holds plain containers and tensors only.
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def assert_equal_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    root = tmp_path_factory.mktemp("full")
    ckpt = fit(root, "full", "trainer.max_epochs=2")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 16 and state["epoch"] == 1
    return state["state_dict"]


@pytest.mark.slow
def test_resume_after_epoch_is_exact(uninterrupted: dict[str, torch.Tensor], run_root: Path) -> None:
    first = fit(run_root, "split", "trainer.max_epochs=1")
    after_one = weights(first)
    assert any(not torch.equal(after_one[k], uninterrupted[k]) for k in after_one)
    resumed = fit(run_root, "split", "trainer.max_epochs=2", "run.resume=true")
    assert_equal_params(weights(resumed), uninterrupted)


@pytest.mark.slow
def test_resume_mid_epoch_after_crash_is_exact(uninterrupted: dict[str, torch.Tensor], run_root: Path) -> None:
    # Killed before step 11 (epoch 1, batch 3): the newest checkpoint is the step-9 one.
    with pytest.raises(Killed):
        fit(run_root, "crash", "trainer.max_epochs=2", callbacks=(KillAtStep(11),))
    last = torch.load(run_root / "crash" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 9
    resumed = fit(run_root, "crash", "trainer.max_epochs=2", "run.resume=true")
    assert_equal_params(weights(resumed), uninterrupted)


@pytest.mark.slow
def test_step_based_run_stopped_mid_epoch_resumes_exactly(
    uninterrupted: dict[str, torch.Tensor], run_root: Path
) -> None:
    # max_steps instead of epochs: stop after 10 steps (epoch 1, batch 2), continue to 16.
    first = fit(run_root, "steps", "trainer.max_epochs=-1", "trainer.max_steps=10")
    assert torch.load(first, map_location="cpu", weights_only=True)["global_step"] == 10
    resumed = fit(run_root, "steps", "trainer.max_epochs=-1", "trainer.max_steps=16", "run.resume=true")
    assert_equal_params(weights(resumed), uninterrupted)


@pytest.mark.slow
def test_rng_state_is_what_makes_resume_exact(uninterrupted: dict[str, torch.Tensor], run_root: Path) -> None:
    """Control: the same resume without the saved RNG states does not reproduce the run."""
    ckpt = fit(run_root, "norng", "trainer.max_epochs=1")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    removed = [key for key in state["callbacks"] if key.startswith("RNGStateCallback")]
    assert removed
    for key in removed:
        del state["callbacks"][key]
    torch.save(state, ckpt)
    resumed = fit(run_root, "norng", "trainer.max_epochs=2", "run.resume=true")
    assert any(not torch.equal(weights(resumed)[k], uninterrupted[k]) for k in uninterrupted)


@pytest.mark.slow
def test_existing_run_dir_is_refused(run_root: Path) -> None:
    fit(run_root, "dup", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1")
    with pytest.raises(RunExistsError, match="--resume.*--overwrite"):
        fit(run_root, "dup", "trainer.max_epochs=1")
    # --overwrite starts again from scratch: the old step counter is gone.
    ckpt = fit(run_root, "dup", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "run.overwrite=true")
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 2


@pytest.mark.slow
def test_resume_refuses_shape_change_and_names_it(run_root: Path) -> None:
    fit(run_root, "shape", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1")
    with pytest.raises(ConfigError, match=r"model\.width: 8 -> 16"):
        fit(run_root, "shape", "trainer.max_epochs=2", "model.width=16", "run.resume=true")
    with pytest.raises(ConfigError, match=r"data\.image_size"):
        fit(run_root, "shape", "trainer.max_epochs=2", "data.image_size=16", "run.resume=true")


@pytest.mark.slow
def test_plain_dataloader_would_not_resume_mid_epoch_exactly(
    uninterrupted: dict[str, torch.Tensor], run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: without ResumableDataLoader the crashed run replays the epoch's first batches."""
    monkeypatch.setattr(toy_stage, "ResumableDataLoader", DataLoader)
    with pytest.raises(Killed):
        fit(run_root, "plain", "trainer.max_epochs=2", callbacks=(KillAtStep(11),))
    resumed = fit(run_root, "plain", "trainer.max_epochs=2", "run.resume=true")
    assert any(not torch.equal(weights(resumed)[k], uninterrupted[k]) for k in uninterrupted)


ENV_CASES = [
    ({"WANDB_RUN_ID": "w1", "SLURM_JOB_ID": "9", "OCCRECON_RUN_ID": "o"}, "w1"),
    ({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "3"}, "8_3"),
    ({"SLURM_JOB_ID": "9", "OCCRECON_RUN_ID": "o"}, "9"),
    ({"TORCHELASTIC_RUN_ID": "te", "OCCRECON_RUN_ID": "o"}, "te"),
]


@pytest.mark.parametrize(("environ", "expected"), ENV_CASES)
def test_run_id_order(environ: dict[str, str], expected: str) -> None:
    assert resolve_run_id(None, environ, rank=0) == expected
    assert resolve_run_id(None, environ, rank=1) == expected
    assert resolve_run_id("explicit", environ, rank=0) == "explicit"


def test_exported_id_reaches_other_ranks_only() -> None:
    environ = {"OCCRECON_RUN_ID": "parent", "TORCHELASTIC_RUN_ID": "none"}
    assert resolve_run_id(None, environ, rank=1) == "parent"  # a DDP child of the launching process
    assert resolve_run_id(None, environ, rank=0) != "parent"  # a second fit in the same session
    with pytest.raises(ConfigError, match="rank 2 has no run id"):
        resolve_run_id(None, {}, rank=2)


def test_new_run_ids_are_fresh_and_leave_the_seeded_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    first, second = resolve_run_id(None, {}, rank=0), resolve_run_id(None, {}, rank=0)
    assert first != second and "/" not in first
    assert torch.equal(torch.rand(1), expected)


def test_bad_run_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="run.id"):
        resolve_run_id("a/b", {}, rank=0)
