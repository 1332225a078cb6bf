"""Bad data gives a named error or a counted skip, never a crash mid-run.

Training loaders never yield a batch that breaks BatchNorm (drop_last, and skipped training samples
are replaced by the next loadable one); a NaN loss stops the run naming the step and the batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from occrecon.callbacks import NonFiniteLossError
from occrecon.config.load import load_config
from occrecon.training import run_command
from tests.exact_stage import EXACT

BASE = [
    f"stage={EXACT}", "seed=1", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=0", "logger.kind=none", "trainer.max_epochs=2",
]  # fmt: skip


def fit(root: Path, *extra: str):
    trainer, paths = run_command("fit", load_config([], [*BASE, f"run.root={root}", *extra]))
    return trainer, torch.load(paths.last_checkpoint, map_location="cpu", weights_only=True)


def test_incomplete_last_training_batch_is_dropped(run_root: Path) -> None:
    # 9 samples, batch 4: the last batch would hold one sample and BatchNorm would raise
    _, state = fit(run_root, "data.num_samples=9", "data.batch_size=4")
    assert state["global_step"] == 4  # 2 full batches per epoch, 2 epochs


def test_skipped_training_samples_are_replaced_and_counted(run_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 6 of 8 samples fail to decode: without replacement some batch would shrink to 1 (or 0) samples
    with caplog.at_level(logging.WARNING, logger="datamodules.common"):
        trainer, state = fit(run_root, "data.num_samples=8", "data.batch_size=4", "data.skip_bad=true",
                             "data.bad=[0,1,2,4,5,6]")  # fmt: skip
    assert state["global_step"] == 4
    skipped = [r.getMessage() for r in caplog.records if "skipping bad sample" in r.getMessage()]
    assert skipped and all("bad on purpose" in m for m in skipped)
    assert len(trainer.datamodule.datasets["fit"].skipped.items) >= 12  # every epoch tries every bad sample


def test_bad_sample_without_skip_bad_names_it(run_root: Path) -> None:
    from occrecon.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"<(fit|train)-3>.*bad on purpose"):
        fit(run_root, "data.num_samples=8", "data.bad=[3]")


def test_nan_loss_stops_naming_step_and_batch(run_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.exact_stage import ExactSystem

    original = ExactSystem._loss

    def poisoned(self: ExactSystem, batch: dict) -> torch.Tensor:
        loss = original(self, batch)
        return loss * float("nan") if self.training and self.global_step == 3 else loss

    monkeypatch.setattr(ExactSystem, "_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 0, batch 3 \(samples train-\d+,"):
        fit(run_root, "data.num_samples=32", "run.monitor=val/loss")
