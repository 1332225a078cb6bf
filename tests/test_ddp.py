"""Two-process DDP on CPU (gloo) through the real CLI: ranks agree on the run, rank 0's checkpoint loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.toy_stage import TOY, ToySystem

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_fit_on_cpu(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(f"stage: '{TOY}'\nseed: 2\n")
    root = tmp_path / "runs"
    # No run.id: rank 0 makes a fresh id and exports OCCRECON_RUN_ID; the rank Lightning re-launches
    # must end up in the same run directory.
    command = [
        sys.executable, "-m", "occrecon.cli", "fit", "-c", str(config),
        "-c", str(REPO / "experiments" / "debug" / "tiny.yaml"),
        "trainer.strategy=ddp", "trainer.devices=2", f"run.root={root}",
        "trainer.limit_train_batches=3", "trainer.max_epochs=2", "data.num_samples=16",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    runs = list(root.iterdir())
    assert len(runs) == 1, runs
    ckpt = runs[0] / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    # 16 samples over 2 ranks, batch 2 -> 4 batches per rank, limited to 3; 2 epochs.
    assert state["global_step"] == 6
    assert state["occrecon"]["run_id"] == runs[0].name
    model = ToySystem.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    assert model.hparams.width == 8
    assert torch.isfinite(model(torch.rand(1, 3, 64, 64))).all()
