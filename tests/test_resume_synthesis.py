"""Resume mid-GAN-training is bit-exact: both networks, both optimisers, the EMA generator, the
spectral-norm power-iteration vectors and the G/D schedule counter."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from occrecon.config.load import load_config
from occrecon.training import run_command
from tests.test_resume import KillAtStep, Killed
from tests.test_system_parsing import make_synth_root

REPO = Path(__file__).resolve().parents[1]
# 4 training faces, batch 1 -> 4 batches per epoch; G every batch, D every 2nd batch, so the
# optimiser steps per batch are 2, 1, 2, 1 and global_step runs 2, 3, 5, 6 | 8, 9, 11, 12.
OVERRIDES = [
    "seed=3", "logger.kind=none", "data.batch_size=1", "trainer.limit_train_batches=1.0", "trainer.max_epochs=2",
    "trainer.limit_val_batches=1", "model.identity=none", "model.image_log_every_n_steps=0", "model.num_blocks=1",
    "model.discriminator_every=2", "model.ema.decay=0.9", "run.checkpoint_every_n_steps=2",
]  # fmt: skip


def fit(root: Path, data: Path, run_id: str, *extra: str, callbacks: tuple[L.Callback, ...] = ()) -> Path:
    cfg = load_config(
        [REPO / "experiments/synthesis/synthetic.yaml", REPO / "experiments/debug/tiny.yaml"],
        [*OVERRIDES, f"data.root={data}", f"run.root={root}", f"run.id={run_id}", *extra],
    )
    _, paths = run_command("fit", cfg, callbacks=callbacks)
    return paths.last_checkpoint


def assert_same_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for index, slots in opt_a["state"].items():
            for name, value in slots.items():
                assert torch.equal(value, opt_b["state"][index][name]), (index, name)


@pytest.mark.slow
def test_resume_mid_gan_training_is_bit_exact(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    data = make_synth_root(tmp_path_factory)
    full = torch.load(fit(tmp_path, data, "full"), map_location="cpu", weights_only=True)
    assert full["global_step"] == 12 and int(full["state_dict"]["batches_seen"]) == 8
    assert int(full["state_dict"]["generator_ema.n_averaged"]) == 8
    with pytest.raises(Killed):  # before batch 6 (epoch 1, batch 2); newest checkpoint: step 8 (epoch 1, batch 0)
        fit(tmp_path, data, "crash", callbacks=(KillAtStep(9),))
    last = torch.load(tmp_path / "crash" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 8 and int(last["state_dict"]["batches_seen"]) == 5
    assert any(not torch.equal(last["state_dict"][k], full["state_dict"][k]) for k in full["state_dict"])
    resumed = torch.load(fit(tmp_path, data, "crash", "run.resume=true"), map_location="cpu", weights_only=True)
    assert_same_state(resumed, full)
