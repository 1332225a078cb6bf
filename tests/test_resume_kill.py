"""last.ckpt is the newest state; kill -9 + --resume is bit-identical (1 process and 2-process DDP);
2-process DDP equals 1 process of the same global batch; a resumed run keeps its metrics history.

The runs use ``tests/exact_stage.py``: the real ``FaceDataModule`` path with augmentation drawn in
the main process (``num_workers=0``), dropout and BatchNorm.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from occrecon.config.load import load_config
from occrecon.training import run_command
from tests.exact_stage import EXACT, KILL_ENV

REPO = Path(__file__).resolve().parents[1]

BASE = [
    "seed=3", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=1", "trainer.log_every_n_steps=1",
    "logger.kind=csv",
]  # fmt: skip


def load(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_last_ckpt_is_the_newest_state_and_best_is_separate(run_root: Path) -> None:
    # val/loss maximised: the best epoch is not the last one, yet last.ckpt must be the end of fit.
    overrides = [*BASE, f"run.root={run_root}", "run.id=m", "trainer.max_epochs=3", "run.monitor=val/loss",
                 "run.monitor_mode=max", "run.checkpoint_every_n_steps=5"]  # fmt: skip
    _, paths = run_command("fit", load_config([], [f"stage={EXACT}", *overrides]))
    last = load(paths.last_checkpoint)
    assert last["global_step"] == 24 and last["epoch"] == 2
    best = sorted(p.name for p in paths.checkpoints.glob("epoch*.ckpt"))
    assert len(best) == 1, best
    assert best != ["epoch002-step0000024.ckpt"]  # the control: the best epoch is an earlier one here
    # the end-of-epoch last.ckpt is written after the epoch's validation, with its RNG and loop state
    assert "ModelCheckpoint" in "".join(last["callbacks"])


def test_last_ckpt_follows_every_epoch_and_step(run_root: Path) -> None:
    overrides = [*BASE, f"run.root={run_root}", "run.id=s", "trainer.max_epochs=-1", "trainer.max_steps=11",
                 "run.monitor=val/loss", "run.monitor_mode=max", "run.checkpoint_every_n_steps=3"]  # fmt: skip
    _, paths = run_command("fit", load_config([], [f"stage={EXACT}", *overrides]))
    assert load(paths.last_checkpoint)["global_step"] == 11  # a max_steps stop mid-epoch (8 steps per epoch)
    assert not list(paths.checkpoints.glob("step*.ckpt"))  # only kept with run.keep_step_checkpoints


def cli_fit(root: Path, run_id: str, env: dict[str, str], *extra: str, kill_at: int | None = None) -> int:
    config = root / "exact.yaml"
    config.write_text(f"stage: '{EXACT}'\n")
    command = [sys.executable, "-m", "occrecon.cli", "fit", "-c", str(config), *BASE, f"run.root={root}",
               f"run.id={run_id}", *extra]  # fmt: skip
    env = dict(env)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    # start_new_session: the run's SIGKILL of its process group never reaches pytest
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                            start_new_session=True)  # fmt: skip
    if kill_at is None:
        assert result.returncode == 0, result.stderr[-3000:]
    return result.returncode


def assert_identical_runs(root: Path, full: str, resumed: str) -> None:
    a, b = load(root / full / "checkpoints" / "last.ckpt"), load(root / resumed / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"]
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not differ, f"{len(differ)} of {len(a['state_dict'])} tensors differ: {differ[:5]}"
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # the metrics log of the resumed run holds the whole history, equal to the uninterrupted one's
    metrics = [(root / run / "logs" / "fit" / "metrics.csv").read_text() for run in (full, resumed)]
    assert metrics[0].count("\n") > 10 and metrics[0] == metrics[1]


def kill_and_resume(root: Path, env: dict[str, str], kill_at: int, ckpt_step: int, *extra: str) -> None:
    cli_fit(root, "full", env, *extra)
    code = cli_fit(root, "killed", env, *extra, kill_at=kill_at)
    assert code == -signal.SIGKILL
    killed = load(root / "killed" / "checkpoints" / "last.ckpt")
    assert killed["global_step"] == ckpt_step  # mid-epoch: the newest step checkpoint
    lines = (root / "killed" / "logs" / "fit" / "metrics.csv").read_text().splitlines()
    assert any(line.split(",")[2] == str(kill_at - 1) for line in lines[1:])  # rows after the checkpoint exist
    cli_fit(root, "killed", env, *extra, "run.resume=true")
    assert_identical_runs(root, "full", "killed")


@pytest.mark.slow
def test_kill9_mid_epoch_resumes_exactly_without_workers(run_root: Path, subprocess_env: dict[str, str]) -> None:
    # 32 samples, batch 4: 8 steps per epoch; killed at step 11 (epoch 1, batch 3), resumed from step 9
    kill_and_resume(run_root, subprocess_env, 11, 9, "trainer.max_epochs=2", "run.checkpoint_every_n_steps=3",
                    "data.num_workers=0")  # fmt: skip


DDP = ["trainer.strategy=ddp", "trainer.devices=2"]


@pytest.mark.slow
@pytest.mark.ddp
def test_kill9_mid_epoch_resumes_exactly_under_ddp(run_root: Path, subprocess_env: dict[str, str]) -> None:
    # 2 ranks x batch 4 over 32 samples: 4 steps per epoch; killed at step 7 (epoch 1, batch 3), resumed from 6
    kill_and_resume(run_root, subprocess_env, 7, 6, *DDP, "trainer.max_epochs=2", "run.checkpoint_every_n_steps=3",
                    "data.num_workers=0")  # fmt: skip


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_equals_one_process_of_the_same_global_batch(
    run_root: Path, subprocess_env: dict[str, str]
) -> None:
    # Lightning gives a DDP *training* loader a shuffled DistributedSampler whatever the loader's own
    # shuffle says (seeded by PL_GLOBAL_SEED + epoch), so per-step sample sets can only match when the
    # training split is exactly one global batch: 4 samples, 2 ranks x batch 2 vs 1 process x batch 4,
    # every step sees all 4 in both runs (one step per epoch, 6 epochs). The loss is a mean over
    # equal-sized rank batches, so DDP's gradient average is the 4-sample gradient. No dropout or
    # augmentation (their streams are per rank); BatchNorm's batch statistics are per rank: off.
    common = ["trainer.max_epochs=6", "data.augment=false", "data.shuffle=false", "model.dropout=0.0",
              "model.optimizer.name=sgd", "model.optimizer.lr=0.1", "trainer.num_sanity_val_steps=0",
              "trainer.limit_val_batches=0", "data.num_samples=4", "logger.kind=none"]  # fmt: skip
    cli_fit(run_root, "single", subprocess_env, *common, "data.batch_size=4", "model.norm=false")
    cli_fit(run_root, "ddp", subprocess_env, *common, *DDP, "data.batch_size=2", "model.norm=false")
    a, b = (load(run_root / r / "checkpoints" / "last.ckpt") for r in ("single", "ddp"))
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
