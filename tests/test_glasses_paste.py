"""glasses_paste: pairs from the CelebAMask-HQ layout; the paste changes only the donor's warped
eye_g pixels, the eyes are aligned, the pairing is fixed per index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import write_celebamask

from datamodules.glasses_paste import GlassesPasteDataModule, donor_transform, paste_glasses
from occrecon.labels import CELEBAMASK


def add_glasses(root: Path, index: int, size: int = 16) -> None:
    """An eye_g part mask (a bar over both eyes) for image ``index`` of the fixture."""
    mask = np.zeros((size, size), np.uint8)
    mask[size // 2 - 1 : size // 2 + 3, size // 5 : 4 * size // 5] = 255
    cv2.imwrite(str(root / "CelebAMask-HQ-mask-anno" / str(index // 2000) / f"{index:05d}_eye_g.png"), mask)


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    root = write_celebamask(tmp_path / "celeba", image_size=32, mask_size=16, glasses=(1, 2000))
    for index in (1, 2000):
        add_glasses(root, index)
    return root


def test_pairs_change_only_the_pasted_glasses(celeba: Path) -> None:
    dm = GlassesPasteDataModule(root=str(celeba), image_size=16, batch_size=1, num_workers=0, flip_prob=0.0)
    train = dm.make_dataset("train")
    assert len(train) == 1  # id 0 is the glasses-free target, id 1 the donor
    sample = train[0]
    mask = sample["occluder_mask"][0] > 0.5
    assert int(sample["donor"]) == 1 and mask.sum() > 0
    outside = ~mask.expand(3, -1, -1)
    assert torch.equal(sample["I_in"][outside], sample["I_gt"][outside])
    assert not torch.equal(sample["I_in"], sample["I_gt"])
    assert torch.equal(sample["label_map"][mask], torch.full((int(mask.sum()),), CELEBAMASK["eye_g"]))
    assert torch.equal(sample["parsing_gt"][~mask], sample["label_map"][~mask])
    assert (sample["parsing_gt"] != CELEBAMASK["eye_g"]).all()
    again = GlassesPasteDataModule(root=str(celeba), image_size=16, num_workers=0, flip_prob=0.0)
    assert torch.equal(again.make_dataset("train")[0]["I_in"], sample["I_in"])  # fixed pairs


def test_donor_is_aligned_by_the_eye_centres() -> None:
    target = np.zeros((32, 32), np.int64)
    target[10:12, 8:10], target[10:12, 20:22] = CELEBAMASK["l_eye"], CELEBAMASK["r_eye"]  # centres (9, 11), (21, 11)
    donor = np.zeros((32, 32), np.int64)
    donor[14:16, 4:6], donor[14:16, 10:12] = CELEBAMASK["l_eye"], CELEBAMASK["r_eye"]  # centres (5, 15), (11, 15)
    matrix = donor_transform(donor, target)
    # scale 12 / 6 = 2, no rotation; donor (5, 15) -> target (9, 11) in pixel-centre coordinates
    assert np.allclose(matrix[:, :2], [[2, 0], [0, 2]], atol=1e-4)
    assert np.allclose(matrix @ np.array([4.5, 14.5, 1.0]), [8.5, 10.5], atol=1e-3)
    image = np.full((32, 32, 3), 7, np.uint8)
    glasses = donor.copy()
    glasses[14:16, 6:10] = CELEBAMASK["eye_g"]  # the bridge between the donor's eyes
    pasted, mask = paste_glasses(image, target, np.full((32, 32, 3), 200, np.uint8), glasses)
    rows, cols = np.nonzero(mask)
    assert rows.min() >= 9 and rows.max() <= 12 and cols.min() >= 11 and cols.max() <= 20
    assert (pasted[mask] == 200).all() and (pasted[~mask] == 7).all()


def test_one_tiny_training_step_of_the_celebamask_experiment(tmp_path: Path) -> None:
    from occrecon.config.load import load_config
    from occrecon.training import run_command

    repo = Path(__file__).resolve().parents[1]
    root = write_celebamask(tmp_path / "celeba", image_size=32, mask_size=16, glasses=(1, 2, 2000))
    for index in (1, 2, 2000):
        add_glasses(root, index)
    cfg = load_config(
        [repo / "experiments/synthesis/celebamask_hq.yaml", repo / "experiments/debug/tiny.yaml"],
        [f"data.root={root}", "data.image_size=16", "data.batch_size=1", "data.num_workers=0", "model.num_blocks=1",
         "model.identity=none", f"run.root={tmp_path / 'runs'}", "model.image_log_every_n_steps=0",
         "model.discriminator.num_scales=1", "model.discriminator.num_layers=2"],  # a 16 px image is too small for a second PatchGAN scale
    )  # fmt: skip
    fit, paths = run_command("fit", cfg)
    assert fit.global_step == 2  # one pair: one G and one D step
    assert {"train/l1", "val/psnr_mask"} <= set(fit.callback_metrics)
