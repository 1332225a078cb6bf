"""Two CPU processes (gloo) train the synthesis stage with the strategy it asks for; the rank-0
checkpoint loads and holds the EMA generator and the G/D step counts of both ranks' batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from occrecon.systems.synthesis import SynthesisSystem
from tests.test_system_parsing import make_synth_root

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_run_trains_and_its_checkpoint_loads(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    data = make_synth_root(tmp_path_factory)
    command = [sys.executable, "-m", "occrecon.cli", "fit", "-c", str(REPO / "experiments/synthesis/synthetic.yaml"),
               "-c", str(REPO / "experiments/debug/tiny.yaml"), f"run.root={tmp_path}", f"data.root={data}",
               "trainer.devices=2", "trainer.strategy=ddp_find_unused_parameters_true", "run.id=ddp",
               "model.identity=none", "model.num_blocks=1", "model.image_log_every_n_steps=0", "data.batch_size=1",
               "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]  # fmt: skip
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting with 2 processes" in done.stdout + done.stderr
    ckpt = tmp_path / "ddp" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    # 2 batches per rank, each a G and a D step
    assert state["global_step"] == 4 and int(state["state_dict"]["batches_seen"]) == 2
    system = SynthesisSystem.load_from_checkpoint(ckpt, weights_only=True)
    assert int(system.generator_ema.n_averaged) == 2
