"""Synthesis evaluation: baselines keep the unmasked pixels, the nearest fill and the region PSNR
by hand, images without an occluder are skipped, and ``occrecon eval synthesis`` end to end."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from occrecon.cli import main
from occrecon.evaluation.synthesis import SynthesisScores, demo_section, nearest_fill, region_scores, telea_fill
from occrecon.evaluation.synthesis_steps import random_batch
from occrecon.systems.synthesis import SynthesisSystem
from tests.test_system_parsing import make_synth_root


def test_nearest_fill_by_hand() -> None:
    image = torch.zeros(1, 3, 1, 5)
    image[0, :, 0, 0], image[0, :, 0, 4] = 0.2, 0.8
    mask = torch.tensor([[[[0.0, 1.0, 1.0, 1.0, 0.0]]]])
    filled = nearest_fill(image, mask)
    middle = filled[0, 0, 0, 2]
    assert torch.equal(filled[0, 0, 0], torch.stack([image[0, 0, 0, 0], image[0, 0, 0, 0], middle, image[0, 0, 0, 4], image[0, 0, 0, 4]]))
    assert middle in (image[0, 0, 0, 0], image[0, 0, 0, 4])  # equidistant: either neighbour


def test_baselines_keep_every_pixel_outside_the_mask() -> None:
    batch = random_batch(2, 32)
    image, mask = batch["I_in"], batch["occluder_mask"]
    outside = mask.expand_as(image) < 0.5
    for fill in (telea_fill, nearest_fill):
        out = fill(image, mask)
        assert torch.equal(out[outside], image[outside])
        assert not torch.equal(out[~outside], image[~outside])


def test_region_psnr_ssim_l1_by_hand() -> None:
    target = torch.zeros(1, 3, 8, 8)
    output = target.clone()
    output[0, :, :2, :2] = 0.1  # 12 values off by 0.1 inside a 16-pixel region (48 values)
    region = torch.zeros(1, 1, 8, 8)
    region[0, 0, :4, :4] = 1.0
    scores = region_scores(output, target, region)
    mse = 12 * 0.01 / 48
    assert scores["psnr"].item() == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert scores["l1"].item() == pytest.approx(12 * 0.1 / 48)
    assert region_scores(target, target, region)["ssim"].item() == pytest.approx(1.0)
    assert math.isnan(region_scores(output, target, torch.zeros_like(region))["psnr"].item())


def test_images_without_an_occluder_are_not_scored() -> None:
    batch = random_batch(2, 32)
    mask = batch["occluder_mask"].clone()
    mask[1] = 0.0
    scores = SynthesisScores(("input",))
    scores.update({"input": batch["I_in"]}, batch["I_gt"], mask)
    assert scores.count == 1
    only_first = region_scores(batch["I_in"][:1], batch["I_gt"][:1], mask[:1])["psnr"].item()
    assert scores.compute()["input"]["psnr_mask"] == pytest.approx(only_first)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth_root(tmp_path_factory)


def saved_system(path: Path) -> Path:
    system = SynthesisSystem(width=8, num_blocks=1, identity="none", image_log_every_n_steps=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    batch = random_batch(1, 64)
    trainer.fit(system, train_dataloaders=DataLoader([{k: v[0] for k, v in batch.items()}], batch_size=1))
    trainer.save_checkpoint(path)
    return path


def test_eval_synthesis_command_prints_every_method(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = saved_system(tmp_path / "synthesis.ckpt")
    code = main(["eval", "synthesis", "--data", str(synth_root), "--ckpt", str(ckpt), "--split", "all", "--identity", "none"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("synthesis (G)", "cv2.inpaint Telea", "nearest-pixel fill", "input I_in", "PSNR mask", "SSIM face"):
        assert name in out
    assert main(["eval", "synthesis", "--data", str(synth_root), "--ckpt", str(tmp_path / "missing.ckpt")]) == 1


def test_demo_section_writes_the_picture_and_the_table(synth_root: Path, tmp_path: Path) -> None:
    from datamodules.synthetic import SyntheticDataModule

    system = SynthesisSystem(width=8, num_blocks=1, identity="none")
    fields = ["I_in", "I_gt", "parsing_gt", "occluder_mask", "face_mask", "edge_lines"]
    dm = SyntheticDataModule(root=str(synth_root), fields=fields, batch_size=2, augment=False, generate=False)
    section = demo_section(system, dm, tmp_path / "report", max_batches=2)
    assert (tmp_path / "report" / section.figures[0][1]).is_file()
    assert {"synthesis/psnr_mask", "input/psnr_mask", "telea/psnr_mask"} <= set(section.metrics)
    assert "cv2.inpaint Telea" in section.tables[0]
