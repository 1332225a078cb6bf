"""Writer and reader of the synthetic data set: determinism, resumability, atomicity, bad input."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from occrecon.errors import ConfigError, DataFormatError, MissingAssetError
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import MANIFEST, generate_dataset
from occrecon.synth.fields import FIELDS, FORMAT_VERSION
from occrecon.synth.reader import SyntheticDataset
from occrecon.synth.scene import SceneContext

CONFIG = SynthConfig(n=7, size=32, seed=4, shard_size=3, images_per_identity=2, p_glasses=0.5, p_hand=0.3, p_hair=0.3)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(CONFIG, tmp_path_factory.mktemp("synth") / "ds", workers=1, progress=False)


def test_layout_and_round_trip(dataset: Path) -> None:
    files = _files(dataset)
    assert sorted(files) == [MANIFEST, "shards/shard-00000.zip", "shards/shard-00001.zip", "shards/shard-00002.zip"]
    manifest = json.loads(files[MANIFEST])
    assert (
        manifest["complete"]
        and manifest["format_version"] == FORMAT_VERSION
        and manifest["bump_range"] == CONFIG.bump_range
    )
    assert manifest["config"] == CONFIG.as_dict() and set(manifest["fields"]) >= {f.name for f in FIELDS}
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 1]
    ds = SyntheticDataset(dataset, verify=True)
    assert len(ds) == 7 and ds.identities.tolist() == [0, 0, 1, 1, 2, 2, 3]
    # stored samples equal freshly rendered ones (PNG/NPY are lossless for these dtypes)
    fresh = SceneContext.create(CONFIG).render_sample(4)
    stored = ds[4]
    for spec in FIELDS:
        assert stored[spec.name].dtype == np.dtype(spec.dtype), spec.name
        assert np.array_equal(stored[spec.name], fresh[spec.name]), spec.name
    assert np.array_equal(stored["occluder_mask"], fresh["occluders"] > 0)
    with pytest.raises(IndexError):
        ds[7]


def test_zip_entries_have_fixed_timestamps(dataset: Path) -> None:
    with zipfile.ZipFile(dataset / "shards/shard-00000.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        names = archive.namelist()
    assert "I_in/0000002.png" in names and "depth_detail.npy" in names


def test_same_seed_gives_identical_bytes(dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(CONFIG, tmp_path / "again", workers=1, progress=False)
    assert _files(again) == _files(dataset)
    other = generate_dataset(
        SynthConfig(**{**CONFIG.as_dict(), "seed": 5, "n": 3}), tmp_path / "other", workers=1, progress=False
    )
    assert _files(other)["shards/shard-00000.zip"] != _files(dataset)["shards/shard-00000.zip"]


class _Interrupt(Exception):
    pass


def test_interrupted_generation_resumes_to_identical_bytes(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "resumed"

    def stop_after_first(shard: int) -> None:
        raise _Interrupt(f"killed after shard {shard}")

    with pytest.raises(_Interrupt):
        generate_dataset(CONFIG, root, workers=1, progress=False, on_shard=stop_after_first)
    manifest = json.loads((root / MANIFEST).read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 1
    with pytest.raises(DataFormatError, match="interrupted generation"):
        SyntheticDataset(root)  # an unfinished data set never loads
    # a shard file the manifest does not list (crash before the manifest update) is remade
    (root / "shards/shard-00001.zip").write_bytes(b"not a finished shard")
    generate_dataset(CONFIG, root, workers=1, progress=False)
    assert _files(root) == _files(dataset)


def test_resume_with_another_config_is_refused(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    with pytest.raises(ConfigError, match="another synthetic data set"):
        generate_dataset(SynthConfig(**{**CONFIG.as_dict(), "size": 48}), root, workers=1, progress=False)


def test_corrupted_or_replaced_shard_is_regenerated_on_resume(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "damaged"
    shutil.copytree(dataset, root)
    shard = root / "shards/shard-00001.zip"
    shard.write_bytes(shard.read_bytes()[:100])
    generate_dataset(CONFIG, root, workers=1, progress=False)
    assert _files(root) == _files(dataset)


@pytest.fixture()
def copy(dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    shutil.copytree(dataset, root)
    return root


def test_truncated_shard_names_the_file(copy: Path) -> None:
    shard = copy / "shards/shard-00001.zip"
    shard.write_bytes(shard.read_bytes()[:-50])
    with pytest.raises(DataFormatError, match="shard-00001.zip") as info:
        SyntheticDataset(copy)
    assert info.value.path == shard


def test_corrupted_shard_names_the_file(copy: Path) -> None:
    shard = copy / "shards/shard-00000.zip"
    data = bytearray(shard.read_bytes())
    with zipfile.ZipFile(shard) as archive:  # flip a byte inside the stored I_in PNG of sample 1
        info = archive.getinfo("I_in/0000001.png")
    offset = info.header_offset + 30 + len(info.filename) + 40
    data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="shard-00000.zip"):
        SyntheticDataset(copy, verify=True)
    ds = SyntheticDataset(copy)  # same size: found when the entry is read (zip CRC)
    ds[0]  # other samples of the shard still read
    with pytest.raises(DataFormatError, match=r"shard-00000.zip.*I_in/0000001.png"):
        ds[1]


def test_missing_manifest_names_the_file(copy: Path, tmp_path: Path) -> None:
    (copy / MANIFEST).unlink()
    with pytest.raises(DataFormatError, match="manifest.json"):
        SyntheticDataset(copy)
    with pytest.raises(MissingAssetError, match="occrecon data synth"):
        SyntheticDataset(tmp_path / "nowhere")


def test_other_format_version_names_the_manifest(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match=r"manifest.json: expected format_version"):
        SyntheticDataset(copy)


def test_missing_shard_names_the_file(copy: Path) -> None:
    (copy / "shards/shard-00002.zip").unlink()
    with pytest.raises(DataFormatError, match="shard-00002.zip"):
        SyntheticDataset(copy)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        SynthConfig(n=0)
    with pytest.raises(ConfigError):
        SynthConfig(model="flame")
    with pytest.raises(ConfigError):
        SynthConfig.from_dict({"n": 4, "colour": "red"})


def test_docs_describe_every_field() -> None:
    from occrecon.synth.fields import DERIVED_FIELDS

    text = (Path(__file__).resolve().parents[1] / "docs" / "synthetic.md").read_text(encoding="utf-8")
    for name in [f.name for f in FIELDS] + list(DERIVED_FIELDS):
        assert f"| `{name}` |" in text, name


def test_damaged_manifest_names_the_file(copy: Path) -> None:
    (copy / MANIFEST).write_text("{not json")
    with pytest.raises(DataFormatError, match="manifest.json"):
        SyntheticDataset(copy)
    partial = {"format": "occrecon-synth", "format_version": FORMAT_VERSION, "complete": True}
    (copy / MANIFEST).write_text(json.dumps(partial))  # right version, missing keys
    with pytest.raises(DataFormatError, match="manifest.json"):
        SyntheticDataset(copy)
