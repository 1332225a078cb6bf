"""--export layouts: own format checks, then the real data modules read them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamodules.celebamask_hq import CelebAMaskHQDataModule
from datamodules.lfw import LFWDataModule
from datamodules.w300 import W300DataModule
from occrecon.errors import ConfigError
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset
from occrecon.synth.export import LFW_ATTRIBUTES, export_dataset, lfw_pairs, pts_text
from occrecon.synth.reader import SyntheticDataset, identity_splits

# 20 identities x 2 pictures: the minimum for LFW's 10 person-disjoint folds
CONFIG = SynthConfig(n=40, size=32, seed=9, shard_size=20, images_per_identity=2, p_glasses=0.5, p_hand=0.2, p_hair=0.2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = generate_dataset(CONFIG, tmp_path_factory.mktemp("export") / "ds", workers=1, progress=False)
    return root, export_dataset(root, ["celebamask_hq", "300w", "lfw"])


def test_lfw_pairs_file_has_lfws_exact_format(exported) -> None:
    _, folders = exported
    lines = (folders["lfw"] / "pairs.txt").read_text().splitlines()
    folds, per = (int(v) for v in lines[0].split("\t"))
    assert folds == 10 and per >= 1 and len(lines) == 1 + folds * 2 * per
    people_per_fold = []
    for f in range(folds):
        block = lines[1 + f * 2 * per : 1 + (f + 1) * 2 * per]
        matched, mismatched = [line.split("\t") for line in block[:per]], [line.split("\t") for line in block[per:]]
        assert all(len(m) == 3 and m[1] != m[2] for m in matched)
        assert all(len(m) == 4 and m[0] != m[2] for m in mismatched)
        people_per_fold.append({m[0] for m in matched} | {m[0] for m in mismatched} | {m[2] for m in mismatched})
        for m in matched:  # every referenced image exists
            assert (folders["lfw"] / "lfw" / m[0] / f"{m[0]}_{int(m[1]):04d}.jpg").is_file()
    for a in range(folds):  # folds are person-disjoint
        for b in range(a + 1, folds):
            assert not people_per_fold[a] & people_per_fold[b]


def test_lfw_attributes_mark_eyeglasses(exported) -> None:
    root, folders = exported
    lines = (folders["lfw"] / "lfw_attributes.txt").read_text().splitlines()
    header = lines[1].split("\t")
    assert (
        header[:3] == ["#", "person", "imagenum"] and header[3:] == list(LFW_ATTRIBUTES) and len(LFW_ATTRIBUTES) == 73
    )
    ds = SyntheticDataset(root, fields=("identity", "image_index", "glasses"))
    for row, i in zip(lines[2:], range(len(ds)), strict=True):
        fields = row.split("\t")
        s = ds[i]
        assert fields[0] == f"Synth {int(s['identity']):06d}" and int(fields[1]) == int(s["image_index"]) + 1
        scores = {name: float(v) for name, v in zip(LFW_ATTRIBUTES, fields[2:], strict=True)}
        assert (scores["No Eyewear"] > 0) == (int(s["glasses"]) == 0)
        assert (scores["Sunglasses"] > 0) == (int(s["glasses"]) == 3)


def test_lfw_export_needs_twenty_identities() -> None:
    with pytest.raises(ConfigError, match="20 identities"):
        lfw_pairs({i: 4 for i in range(12)}, seed=0)
    per, folds = lfw_pairs({i: 3 for i in range(20)}, seed=0)
    # each fold: 2 people x C(3, 2) = 6 matched pairs, 3 x 3 = 9 mismatched pairs -> P = 6
    assert per == 6 and all(len(f) == 12 for f in folds)


def test_pts_text_is_300w_syntax_with_one_based_coordinates() -> None:
    text = pts_text(np.array([[0.5, 1.5]] + [[2.0, 3.0]] * 67))
    lines = text.splitlines()
    assert lines[:3] == ["version: 1", "n_points:  68", "{"] and lines[-1] == "}" and len(lines) == 72
    assert lines[3] == "1.000 2.000"  # our pixel-centre 0.5 is Matlab's 1


def test_celebamask_export_reads_back_through_the_real_module(exported) -> None:
    root, folders = exported
    ds = SyntheticDataset(root, fields=("parsing_in", "identity", "glasses"))
    splits = identity_splits(ds.identities)
    module = CelebAMaskHQDataModule(root=str(folders["celebamask_hq"]), image_size=32, augment=False)
    seen = 0
    for split in ("train", "val", "test"):
        data = module.make_dataset(split)
        for k, record in enumerate(data.records):
            i = int(record.id)
            assert splits[int(ds[i]["identity"])] == split
            assert record.fields["extras"]["eyeglasses"] == (int(ds[i]["glasses"]) > 0)
            if k < 2:
                np.testing.assert_array_equal(data[k]["label_map"].numpy(), ds[i]["parsing_in"])
            seen += 1
    assert seen == len(ds)
    names = {
        p.name.split("_", 1)[1][:-4] for p in (folders["celebamask_hq"] / "CelebAMask-HQ-mask-anno" / "0").glob("*.png")
    }
    assert names <= set(CELEBAMASK_CLASSES[1:]) and "skin" in names


def test_300w_export_reads_back_through_the_real_module(exported) -> None:
    root, folders = exported
    ds = SyntheticDataset(root, fields=("landmarks", "identity"))
    module = W300DataModule(root=str(folders["300w"]), image_size=32, augment=False)
    train, full = module.make_dataset("train"), module.make_dataset("full")
    assert len(train) + len(full) == len(ds)
    for record in train.records[:5] + full.records[:5]:
        i = int(record.id.rsplit("/", 1)[1])
        np.testing.assert_allclose(record.fields["landmarks"], ds[i]["landmarks"], atol=1e-3)  # .pts keeps 3 decimals
    splits = identity_splits(ds.identities)
    assert all(splits[int(ds[int(r.id.rsplit("/", 1)[1])]["identity"])] == "train" for r in train.records)


def test_lfw_export_reads_back_through_the_real_module(exported) -> None:
    root, folders = exported
    module = LFWDataModule(root=str(folders["lfw"]), image_size=32)
    pairs = module.make_dataset("pairs")
    lines = (folders["lfw"] / "pairs.txt").read_text().splitlines()
    assert len(pairs) == len(lines) - 1
    sample = pairs[0]
    assert sample["same"] and sample["image_a"].shape == (3, 32, 32)
    glasses = SyntheticDataset(root, fields=("identity", "image_index", "glasses"))
    by_key = {
        (f"Synth_{int(s['identity']):06d}", int(s["image_index"]) + 1): int(s["glasses"])
        for s in (glasses[i] for i in range(len(glasses)))
    }
    images = module.read_index()[0]
    eyewear = module.read_index()[2]
    for record, code in zip(images, eyewear, strict=True):  # LFW's eyewear classes: 0 none, 1 eyeglasses, 2 sunglasses
        assert code == {0: 0, 1: 1, 2: 1, 3: 2}[by_key[record.fields["key"]]]
