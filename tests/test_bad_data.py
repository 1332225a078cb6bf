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


# --------------------------------------------------------------------------- synthetic data set


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from occrecon.synth.config import SynthConfig
    from occrecon.synth.dataset_writer import generate_dataset

    config = SynthConfig(n=12, size=32, seed=3, shard_size=12, images_per_identity=1)
    return generate_dataset(config, tmp_path_factory.mktemp("synth") / "ds", workers=1, progress=False)


def copy_set(synth: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(synth, tmp_path / "ds"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("content", "message"), [(b"", "an empty file"), (b"{not json", "JSONDecodeError")])
def test_broken_manifest_is_named_and_nothing_is_written(
    synth: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    from datamodules.synthetic import SyntheticDataModule
    from occrecon.errors import DataFormatError

    root = copy_set(synth, tmp_path)
    (root / "manifest.json").write_bytes(content)
    before = snapshot(root)
    with pytest.raises(DataFormatError, match=rf"manifest\.json: expected a JSON manifest.*{message}.*not regenerating"):
        SyntheticDataModule(root=str(root), synth_n=12, synth_size=32).prepare_data()
    assert snapshot(root) == before


def test_foreign_non_empty_folder_is_never_generated_into(tmp_path: Path) -> None:
    from datamodules.synthetic import SyntheticDataModule
    from occrecon.errors import DataFormatError

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(DataFormatError, match="non-empty folder without manifest.json"):
        SyntheticDataModule(root=str(tmp_path / "photos"), synth_n=12, synth_size=32).prepare_data()
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["me.jpg"]


def poison_coeffs(root: Path, sample: int) -> None:
    """Write NaN into one row of coeffs.npy of the (single) shard, keeping the manifest consistent."""
    import io
    import json
    import zipfile

    import numpy as np

    from occrecon.synth.dataset_writer import sha256_file

    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["shards"][0]
    shard = root / entry["file"]
    with zipfile.ZipFile(shard) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    coeffs = np.load(io.BytesIO(members["coeffs.npy"]))
    coeffs[sample, 5] = np.nan
    buffer = io.BytesIO()
    np.save(buffer, coeffs)
    members["coeffs.npy"] = buffer.getvalue()
    with zipfile.ZipFile(shard, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    entry["bytes"], entry["sha256"] = shard.stat().st_size, sha256_file(shard)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_nan_in_coeffs_names_the_sample_and_data_check_reports_it(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from occrecon.cli import main
    from occrecon.errors import DataFormatError
    from occrecon.synth.reader import SyntheticDataset

    root = copy_set(synth, tmp_path)
    poison_coeffs(root, 4)
    with pytest.raises(DataFormatError, match=r"finite values in coeffs\.npy, got NaN/inf in sample 4"):
        SyntheticDataset(root, fields=("coeffs",))[4]
    assert main(["data", "check", "synthetic", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "NaN/inf in sample 4" in out and out.count("NaN/inf") == 1
    assert main(["data", "check", "synthetic", "--root", str(synth)]) == 0


def test_skip_bad_applies_to_the_synthetic_set(synth: Path, tmp_path: Path) -> None:
    from datamodules.synthetic import SyntheticDataModule
    from occrecon.errors import DataFormatError

    root = copy_set(synth, tmp_path)
    fields = ["I_in", "coeffs"]
    dm = SyntheticDataModule(root=str(root), fields=fields, batch_size=2, generate=False, augment=False)
    dm.setup()
    train = dm.datasets["train"]
    poison_coeffs(root, train.indices[0])
    with pytest.raises(DataFormatError, match=f"sample {train.indices[0]}"):
        _all_batches(root, fields, skip_bad=False)
    batches = _all_batches(root, fields, skip_bad=True)
    assert all(batch["coeffs"].shape[0] == 2 and torch.isfinite(batch["coeffs"]).all() for batch in batches)


def _all_batches(root: Path, fields: list[str], skip_bad: bool) -> list[dict]:
    from datamodules.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(root=str(root), fields=fields, batch_size=2, generate=False, augment=False, skip_bad=skip_bad)
    return list(dm.train_dataloader())


# --------------------------------------------------------------------------- data check finds everything


def test_data_check_300w_finds_nan_points_and_points_far_outside(tmp_path: Path) -> None:
    from occrecon.data_check import check_dataset
    from tests.data_fixtures import write_300w

    root = write_300w(tmp_path / "w300", per_folder=2, size=20)
    pts = sorted(root.rglob("*.pts"))
    lines = pts[0].read_text().splitlines()
    lines[3] = "nan nan"
    pts[0].write_text("\n".join(lines) + "\n")
    far = pts[1].read_text().splitlines()
    far[3:71] = [" ".join(str(float(v) + 500.0) for v in line.split()) for line in far[3:71]]
    pts[1].write_text("\n".join(far) + "\n")
    problems = [p for report in check_dataset("w300", str(root)) for p in report.problems]
    assert any(str(pts[0]) in p and ":4:" in p and "'nan nan'" in p for p in problems), problems
    assert any(str(pts[1]) in p and "point(s) outside" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_data_check_celebamask_reports_every_finding_and_the_right_file(tmp_path: Path) -> None:
    import numpy as np

    from occrecon.data_check import check_dataset
    from tests.data_fixtures import face_image, save_image, write_celebamask

    root = write_celebamask(tmp_path / "celeba")
    save_image(root / "CelebA-HQ-img" / "0.jpg", face_image(50, 40, seed=0), quality=95)  # 40x50: not square
    skin = root / "CelebAMask-HQ-mask-anno" / "0" / "00001_skin.png"
    save_image(skin, np.zeros((20, 20), np.uint8))  # the other parts are 16x16
    mapping = root / "CelebA-HQ-to-CelebA-mapping.txt"
    lines = mapping.read_text().splitlines()
    mapping.write_text("\n".join([*lines[:2], "this line is broken", *lines[2:]]) + "\n")
    problems = [p for report in check_dataset("celebamask_hq", str(root)) for p in report.problems]
    text = "\n".join(problems)
    assert "CelebA-HQ-to-CelebA-mapping.txt:3" in text  # the bad mapping line ...
    assert "0.jpg: expected a square CelebA-HQ image" in text and "got 40x50" in text  # ... hides nothing
    assert "00001_skin.png: expected a 16x16 mask" in text and "_nose.png" not in text
