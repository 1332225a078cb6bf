"""Shared test set-up: offline, quiet, temp directories only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The tests use tiny tensors: intra-op threads only add synchronisation, and on a loaded 2-core
# machine OpenMP spin-waits made some tests 50x slower. One thread keeps the suite fast and steady.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# `tests.toy_stage:TOY_STAGE` is imported by name (also in CLI subprocesses via PYTHONPATH).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def _offline_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No W&B, no albumentations version check, no stray run ids; W&B files in a temp dir."""
    wandb_dir = tmp_path_factory.mktemp("wandb")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    for var in ("NODE_RANK", "WANDB_RUN_ID", "WANDB_API_KEY", "OCCRECON_RUN_ID", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID",
                "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def run_root(tmp_path: Path) -> Path:
    """A fresh ``run.root`` (tests pass it as an override; the working directory never changes)."""
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``python -m occrecon.cli`` subprocesses: repo importable, offline, 1 thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OCCRECON_", "PL_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1",
        WANDB_MODE="disabled",
        NO_ALBUMENTATIONS_UPDATE="1",
    )
    return env
