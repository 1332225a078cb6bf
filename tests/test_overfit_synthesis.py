"""The synthesis stage learns: overfitting 8 synthetic occluded faces raises the PSNR inside the
occluder mask well above the input's (measured against I_gt, the occluder-free render)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.synthetic import SyntheticDataModule
from occrecon.evaluation.synthesis import region_scores
from occrecon.systems.synthesis import SynthesisSystem

FIELDS = ("I_in", "I_gt", "parsing_gt", "occluder_mask", "edge_lines")


def occluded_pairs(root: str, count: int) -> list[dict[str, torch.Tensor]]:
    dm = SyntheticDataModule(root=root, fields=FIELDS, augment=False, generate=False, heatmap_size=16)
    dm.setup()
    found = []
    for split in ("train", "val", "test"):
        dataset = dm.datasets[split]
        for index in range(len(dataset)):
            sample = dataset[index]
            if sample["occluder_mask"].sum() >= 20:
                found.append(sample)
    assert len(found) >= count
    return found[:count]


@pytest.mark.slow
def test_overfit_eight_pairs_beats_the_input_inside_the_mask(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Measured (8 pairs, 64 px, width 16, 2 blocks, 150 batches of 8, Adam 2e-3): see the assertion."""
    root = tmp_path_factory.mktemp("synth") / "set"
    SyntheticDataModule(root=str(root), synth_n=24, synth_size=64, synth_workers=1,
                        synth_options={"p_glasses": 0.9, "p_hand": 0.3}).prepare_data()  # fmt: skip
    pairs = occluded_pairs(str(root), 8)
    L.seed_everything(0)
    system = SynthesisSystem(width=16, num_blocks=2, identity="none", image_log_every_n_steps=0,
                             optimizer={"lr": 2e-3}, discriminator={"optimizer": {"lr": 2e-4}},
                             ema={"enabled": False})  # fmt: skip
    loader = DataLoader(pairs, batch_size=8, shuffle=False)
    trainer = L.Trainer(accelerator="cpu", max_steps=2 * 150, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(system, train_dataloaders=loader)
    batch = next(iter(loader))
    cond = system.conditions(batch)
    output = system.synthesize(cond.image, cond.parsing, cond.edges, cond.mask)
    ours = region_scores(output, cond.target, cond.mask)["psnr"].mean()
    given = region_scores(cond.image, cond.target, cond.mask)["psnr"].mean()
    print(f"masked PSNR: I_out {ours:.2f} dB, I_in {given:.2f} dB")
    assert ours > given + 6.0
