"""Read and validate a synthetic data set written by :mod:`occrecon.synth.dataset_writer`.

Every problem raises one :class:`DataFormatError` naming the file: a missing or unreadable
manifest, a manifest of another format version, an incomplete generation, a missing shard, a
truncated shard (size differs from the manifest), a corrupted shard (SHA-256 mismatch with
``verify=True``, otherwise the zip CRC on read), an undecodable PNG or array, a NaN/inf value in a
float array (naming the sample). Nothing is skipped here (``SyntheticDataModule(skip_bad=True)``
skips and counts). :func:`manifest_status` says whether a folder may be generated into.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.synth.dataset_writer import MANIFEST, sha256_file
from occrecon.synth.fields import DERIVED_FIELDS, FIELDS, FORMAT_NAME, FORMAT_VERSION, PNG_FIELDS
from occrecon.synth.shards import ShardReader
from occrecon.utils.seeding import derive_seed

ALL_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS) + tuple(DERIVED_FIELDS)


SPLITS: tuple[str, ...] = ("train", "val", "test")


def identity_splits(identities: Iterable[int], val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[int, str]:
    """Assign each identity to ``train``/``val``/``test`` (all pictures of a person in one split).

    Identities are ordered by a fixed hash of their id (independent of the seed); the first
    ``round(K * test_fraction)`` go to test, the next ``round(K * val_fraction)`` to val, the rest to
    train, where ``K`` is the number of identities. A non-zero fraction gets at least one identity
    once ``K >= 3``, so small data sets never have an empty val or test split, and train keeps at
    least one identity then too.
    """
    ids = sorted(set(int(i) for i in identities), key=lambda i: derive_seed("occrecon-synth-split", i))
    count = len(ids)

    def share(fraction: float) -> int:
        return max(1, round(count * fraction)) if (fraction > 0 and count >= 3) else round(count * fraction)

    n_test = share(test_fraction)
    n_val = max(0, min(share(val_fraction), count - n_test - (1 if count >= 3 else 0)))
    return {i: ("test" if k < n_test else "val" if k < n_test + n_val else "train") for k, i in enumerate(ids)}


def load_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check ``root/manifest.json`` (format, version, completeness, shard list).

    Raises:
        MissingAssetError: ``root`` does not exist.
        DataFormatError: the manifest is missing, unreadable, of another version or incomplete.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingAssetError(root, "synthetic data set folder", "Generate it with `occrecon data synth --out DIR`.")
    path = root / MANIFEST
    if not path.is_file():
        raise DataFormatError(
            path, "the manifest of a synthetic data set (written by `occrecon data synth`)", got="no such file"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(path, "a JSON manifest", got=f"{type(err).__name__}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DataFormatError(
            path,
            f"format {FORMAT_NAME!r}",
            got=repr(manifest.get("format") if isinstance(manifest, dict) else manifest),
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            path,
            f"format_version {FORMAT_VERSION} (this occrecon)",
            got=f"{manifest.get('format_version')} — delete the folder and rerun (a config's synthetic data module "
            "regenerates it; or `occrecon data synth --out <folder>`); see docs/synthetic.md for what changed",
        )
    if not manifest.get("complete"):
        raise DataFormatError(
            path,
            "a complete data set",
            got="an interrupted generation; rerun the same `occrecon data synth` command to resume it",
        )
    try:
        shards, total, step = manifest["shards"], int(manifest["num_samples"]), int(manifest["config"]["shard_size"])
        covered = sum(int(s["count"]) for s in shards)
        in_order = all(
            int(s["first"]) == i * step and {"file", "bytes", "sha256"} <= set(s) for i, s in enumerate(shards)
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataFormatError(
            path,
            f"the manifest keys of format_version {FORMAT_VERSION} (shards, num_samples, config)",
            got=f"{type(err).__name__}: {err}",
        ) from err
    if covered != total or not in_order:
        raise DataFormatError(
            path, f"shards covering samples 0..{total - 1} in order", got=f"{len(shards)} shards with {covered} samples"
        )
    return manifest


def manifest_status(root: str | os.PathLike[str]) -> str:
    """What ``root`` holds before anything is written into it: ``"empty"`` (absent or empty folder),
    ``"complete"`` or ``"interrupted"`` (a generation of ours to finish).

    Raises:
        DataFormatError: a non-empty folder that is not a synthetic data set of ours (no manifest,
            an empty or non-JSON manifest, another format), naming what is wrong, so nothing is
            generated into it.
    """
    root = Path(root)
    if not root.is_dir() or not any(root.iterdir()):
        return "empty"
    path = root / MANIFEST
    if not path.is_file():
        raise DataFormatError(
            root, "an empty folder or a synthetic data set (with manifest.json)",
            got=f"a non-empty folder without {MANIFEST}; not generating into it (choose another data.root)",
        )  # fmt: skip
    try:
        text = path.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        got = "an empty file" if path.stat().st_size == 0 else f"{type(err).__name__}: {err}"
        raise DataFormatError(
            path, "a JSON manifest written by `occrecon data synth`",
            got=f"{got}; not regenerating into this folder (delete it or choose another data.root)",
        ) from err  # fmt: skip
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DataFormatError(path, f"format {FORMAT_NAME!r}", got=repr(manifest.get("format") if isinstance(manifest, dict) else manifest))
    return "complete" if manifest.get("complete") is True else "interrupted"


class SyntheticDataset:
    """Random access to samples of a synthetic data set, as dicts of numpy arrays.

    Args:
        root: the data set folder.
        fields: which fields to load (default: all stored and derived fields, see
            ``occrecon.synth.fields`` and ``docs/synthetic.md``).
        verify: hash every shard against the manifest now (slower; by default the size is checked
            now and zip CRCs when entries are read).

    Example:
        >>> ds = SyntheticDataset("data/synth")  # doctest: +SKIP
        >>> ds[0]["I_in"].shape  # doctest: +SKIP
        (128, 128, 3)
    """

    def __init__(self, root: str | os.PathLike[str], fields: Iterable[str] | None = None, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.fields = tuple(ALL_FIELDS if fields is None else fields)
        unknown = [f for f in self.fields if f not in ALL_FIELDS]
        if unknown:
            raise KeyError(f"unknown synthetic fields {unknown}; known: {list(ALL_FIELDS)}")
        config = self.manifest["config"]
        self.size, self.shard_size = int(config["size"]), int(config["shard_size"])
        for entry in self.manifest["shards"]:
            path = self.root / entry["file"]
            if not path.is_file():
                raise DataFormatError(path, f"shard listed in {self.root / MANIFEST}", got="no such file")
            if path.stat().st_size != entry["bytes"]:
                raise DataFormatError(
                    path,
                    f"{entry['bytes']} bytes (manifest)",
                    got=f"{path.stat().st_size} bytes: truncated or replaced",
                )
            if verify and sha256_file(path) != entry["sha256"]:
                raise DataFormatError(path, f"SHA-256 {entry['sha256']} (manifest)", got="different content: corrupted")
        self._open: tuple[int, ShardReader] | None = None

    def __len__(self) -> int:
        return int(self.manifest["num_samples"])

    @property
    def identities(self) -> np.ndarray:
        """``[N]`` identity id of every sample (from the config, no file access)."""
        return np.arange(len(self)) // int(self.manifest["config"]["images_per_identity"])

    def _shard(self, index: int) -> ShardReader:
        number = index // self.shard_size
        if self._open is None or self._open[0] != number:
            if self._open is not None:
                self._open[1].close()
            entry = self.manifest["shards"][number]
            layout = self.manifest["coefficient_layout"]["size"]
            reader = ShardReader(
                str(self.root / entry["file"]),
                entry["first"],
                entry["count"],
                self.size,
                self.manifest["heatmap_size"],
                layout,
            )
            self._open = (number, reader)
        return self._open[1]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range [0, {len(self)})")
        shard = self._shard(index)
        row = index - shard.first
        wanted = [f for f in self.fields if f not in DERIVED_FIELDS]
        if "occluder_mask" in self.fields and "occluders" not in wanted:
            wanted.append("occluders")
        if "face_mask" in self.fields and "parsing_gt" not in wanted:
            wanted.append("parsing_gt")
        out: dict[str, np.ndarray] = {}
        for name in wanted:
            out[name] = shard.image(name, index) if name in PNG_FIELDS else shard.array(name)[row]
            if out[name].dtype.kind == "f" and not np.isfinite(out[name]).all():
                raise DataFormatError(
                    self.root / self.manifest["shards"][index // self.shard_size]["file"],
                    f"finite values in {name}.npy", got=f"NaN/inf in sample {index} (row {row} of the shard)",
                )  # fmt: skip
        if "occluder_mask" in self.fields:
            out["occluder_mask"] = out["occluders"] > 0
        if "face_mask" in self.fields:
            out["face_mask"] = out["parsing_gt"] > 0
        return {k: v for k, v in out.items() if k in self.fields}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen shards themselves
        state = dict(self.__dict__)
        state["_open"] = None
        return state
