"""SyntheticDataModule: identity splits, aligned augmentation, first-use generation, and the CLI plug-in."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datamodules.synthetic import SyntheticDataModule
from occrecon.commands import data_synth
from occrecon.errors import ConfigError
from occrecon.labels import CELEBAMASK_FLIP
from occrecon.landmarks import FLIP_68
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset
from occrecon.synth.reader import SyntheticDataset

SIZE = 32
CONFIG = SynthConfig(
    n=24, size=SIZE, seed=21, shard_size=8, images_per_identity=2, p_glasses=0.6, p_hand=0.4, p_hair=0.4
)
FIELDS = (
    "I_in",
    "I_gt",
    "parsing_in",
    "parsing_gt",
    "occluders",
    "occluder_mask",
    "landmarks",
    "landmark_visible",
    "edge_lines",
    "identity",
    "index",
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(CONFIG, tmp_path_factory.mktemp("dm") / "ds", workers=1, progress=False)


def test_splits_are_identity_disjoint_and_cover_everything(root: Path) -> None:
    dm = SyntheticDataModule(root=str(root), fields=("identity",), augment=False, val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    ids = {
        split: {int(dm.datasets[split][i]["identity"]) for i in range(len(dm.datasets[split]))}
        for split in ("train", "val", "test")
    }
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(len(d) for d in dm.datasets.values()) == CONFIG.n
    assert [len(ids[s]) for s in ("train", "val", "test")] == [6, 3, 3]  # 12 identities, 25 % each for val/test


def test_flip_remaps_landmarks_and_labels(root: Path) -> None:
    dm = SyntheticDataModule(
        root=str(root),
        fields=FIELDS,
        flip_prob=1.0,
        rotate_deg=0.0,
        scale_jitter=0.0,
        translate=0.0,
        colour_jitter=0.0,
        test_fraction=0.0,
        val_fraction=0.0,
    )
    dm.setup()
    train = dm.datasets["train"]
    raw = SyntheticDataset(root)
    for k in range(3):
        got, want = train[k], raw[train.indices[k]]
        np.testing.assert_array_equal(
            got["I_in"].permute(1, 2, 0).mul(255).round().byte().numpy(), want["I_in"][:, ::-1]
        )
        np.testing.assert_array_equal(
            got["parsing_in"].numpy(), np.asarray(CELEBAMASK_FLIP)[want["parsing_in"][:, ::-1]]
        )
        np.testing.assert_array_equal(got["occluders"].numpy(), want["occluders"][:, ::-1])
        expected = want["landmarks"][list(FLIP_68)].copy()
        expected[:, 0] = SIZE - expected[:, 0]  # CONVENTIONS: a flip maps x -> W - x
        np.testing.assert_allclose(got["landmarks"].numpy(), expected, atol=1e-4)
        assert torch.equal(got["image"], got["I_in"]) and torch.equal(got["label_map"], got["parsing_in"])


def test_random_augmentation_keeps_in_and_gt_aligned(root: Path) -> None:
    dm = SyntheticDataModule(
        root=str(root),
        fields=FIELDS,
        rotate_deg=20.0,
        scale_jitter=0.1,
        translate=0.05,
        colour_jitter=0.2,
        test_fraction=0.0,
        val_fraction=0.0,
    )
    dm.setup()
    train = dm.datasets["train"]
    for k in range(len(train)):
        s = train[k]
        codes = s["occluders"].numpy()
        mask = ((codes > 0) & (codes != 255)).astype(np.uint8)  # 255: outside the source image
        assert np.array_equal(mask, s["occluder_mask"][0].numpy().astype(np.uint8))
        near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0  # bilinear resampling (rotated, scaled) mixes neighbours
        diff = (s["I_in"] - s["I_gt"]).abs().amax(0).numpy()
        assert diff[~near].max(initial=0) <= 1.5 / 255
        labels_differ = (s["parsing_in"] != s["parsing_gt"]).numpy()
        assert not (labels_differ & ~(mask > 0)).any()
        assert s["edge_lines"].shape == (13, 64, 64)


def test_loaders_are_reproducible(root: Path) -> None:
    """Same global seed (what seed_everything sets) -> same shuffle and augmentation."""
    batches = []
    for _ in range(2):
        torch.manual_seed(7)
        dm = SyntheticDataModule(
            root=str(root),
            fields=("I_in", "landmarks", "index"),
            batch_size=4,
            seed=3,
            test_fraction=0.0,
            val_fraction=0.0,
        )
        batches.append(next(iter(dm.train_dataloader())))
    assert torch.equal(batches[0]["index"], batches[1]["index"]) and torch.equal(batches[0]["I_in"], batches[1]["I_in"])


def test_3d_targets_cannot_be_augmented(root: Path) -> None:
    with pytest.raises(ConfigError, match="augment"):
        SyntheticDataModule(root=str(root), fields=("I_in", "depth_coarse"), augment=True)
    dm = SyntheticDataModule(root=str(root), fields=("depth_coarse", "depth_detail", "bump", "normals"), augment=False)
    dm.setup()
    s = dm.datasets["train"][0]
    assert (
        s["depth_coarse"].shape == (1, SIZE, SIZE) and s["normals"].shape == (3, SIZE, SIZE) and s["bump"].max() <= 1.0
    )


def test_generates_on_first_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "fresh"
    dm = SyntheticDataModule(
        root=str(target),
        fields=("I_in",),
        augment=False,
        synth_n=3,
        synth_size=SIZE,
        synth_workers=1,
        synth_options={"shard_size": 2},
    )
    dm.prepare_data()
    assert "generating 3 samples" in capsys.readouterr().out
    dm.setup()
    assert sum(len(d) for d in dm.datasets.values()) == 3


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    data_synth.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_generates_and_reports_bad_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    base = ["synth", "--out", str(out), "--n", "3", "--size", "32", "--seed", "2", "--workers", "1", "--shard-size", "2", "--no-progress"]
    args = _parse(base)
    assert data_synth.GROUP == "data" and args.handler(args) == 0
    assert len(SyntheticDataset(out)) == 3
    args = _parse([*base, "--export", "lfw"])
    assert args.handler(args) == 1  # 2 identities cannot fill LFW's 10 folds: a clear error, exit 1
    assert "20 identities" in capsys.readouterr().out


def test_image_size_resamples_maps_and_scales_landmarks(root: Path) -> None:
    fields = ("I_in", "parsing_in", "depth_coarse", "landmarks", "edge_lines")
    dm = SyntheticDataModule(
        root=str(root), image_size=2 * SIZE, fields=fields, augment=False, test_fraction=0.0, val_fraction=0.0
    )
    dm.setup()
    train = dm.datasets["train"]
    got, want = train[0], SyntheticDataset(root)[train.indices[0]]
    assert got["I_in"].shape == (3, 2 * SIZE, 2 * SIZE)
    twice = lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)  # noqa: E731  nearest x2
    np.testing.assert_array_equal(got["parsing_in"].numpy(), twice(want["parsing_in"]))
    np.testing.assert_array_equal(got["depth_coarse"][0].numpy(), twice(want["depth_coarse"]))
    np.testing.assert_allclose(got["landmarks"].numpy(), 2 * want["landmarks"], rtol=1e-6)
    assert got["edge_lines"].shape == (13, 64, 64)
