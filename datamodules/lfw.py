"""Labeled Faces in the Wild: verification pairs and the eyewear attribute, from the official files.

Layout read::

    LFW/
      lfw/<Name>/<Name>_<NNNN>.jpg            (or lfw-deepfunneled/..., ``image_dir``), 250x250
      pairs.txt                               header "<folds>\\t<n>" ("10\\t300"), then per fold
                                              n lines "Name\\tn1\\tn2" (same person) and
                                              n lines "Name1\\tn1\\tName2\\tn2" (different people)
      lfw_attributes.txt                      optional (Kumar et al.): line 1 a comment, line 2
                                              "#\\tperson\\timagenum\\tMale\\t...", rows "Aaron Eckhart\\t1\\t<scores>"

Eyewear per image = ``argmax(No Eyewear, Eyeglasses, Sunglasses)`` of the attribute scores:
:data:`NO_EYEWEAR` 0, :data:`EYEGLASSES` 1, :data:`SUNGLASSES` 2, :data:`UNKNOWN` -1 when the
image has no attribute row. Attribute names use spaces; folders use underscores.

Splits: ``pairs`` (verification pairs of ``folds``, default all 10) and ``images`` (every image
referenced by ``pairs.txt``; samples carry ``eyewear``). ``glasses="with"`` keeps pairs where at least one image has eyeglasses
or sunglasses; ``"without"`` pairs where both images have no eyewear (pairs with an unknown image
are in neither); both need ``lfw_attributes.txt`` and raise :class:`~occrecon.errors.MissingAssetError`
naming it when it is absent (CelebAMask-HQ does the same for its attribute file). A pair sample is ``{"image_a", "image_b", "same" (bool), "fold", "index_a",
"index_b", "eyewear_a", "eyewear_b", "meta_a", "meta_b"}``; images are cropped to the central
``crop_size`` square (default: the whole image). The synthetic generator's LFW export is read the
same way (any fold count / pair count in the header).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from datamodules.common import FaceDataModule, FaceDataset, RawSample, Record
from datamodules.crops import full_image_box, square_box
from datamodules.files import format_error, raise_or_report, require_file
from occrecon.errors import MissingAssetError
from occrecon.utils.io import read_image

UNKNOWN, NO_EYEWEAR, EYEGLASSES, SUNGLASSES = -1, 0, 1, 2
EYEWEAR_COLUMNS = ("No Eyewear", "Eyeglasses", "Sunglasses")
PAIRS_FILE = "pairs.txt"
ATTRIBUTES_FILE = "lfw_attributes.txt"
HOW_TO_GET = (
    "Download lfw.tgz (or lfw-deepfunneled.tgz) and pairs.txt from http://vis-www.cs.umass.edu/lfw/ and "
    "lfw_attributes.txt from https://www.cs.columbia.edu/CAVE/databases/pubfig/download/ ; extract into one folder."
)


@dataclass(frozen=True)
class Pair:
    """A verification pair: image keys ``(name, number)``, same person or not, and its fold (0-based)."""

    a: tuple[str, int]
    b: tuple[str, int]
    same: bool
    fold: int


def _number(text: str, path: Path, line: int, raw: str) -> int:
    if not text.isdigit():
        raise format_error("format", path, "an image number (integer)", line=line, got=repr(raw))
    return int(text)


def read_pairs(path: Path, on_error: Callable[[BaseException], None] | None = None) -> list[Pair]:
    """Parse ``pairs.txt``; every line is checked against its position (matched 3 / mismatched 4 fields)."""
    lines = require_file(path, "LFW pairs file").read_text().splitlines()
    header = lines[0].split() if lines else []
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise format_error(
            "format",
            path,
            'the header "<folds>\\t<pairs per class>" (e.g. "10\\t300")',
            line=1,
            got=repr(lines[0] if lines else ""),
        )
    folds, per_class = int(header[0]), int(header[1])
    body = lines[1:]
    if len(body) != folds * 2 * per_class:
        raise format_error(
            "format", path, f"{folds * 2 * per_class} pair lines ({folds} folds x 2 x {per_class})", got=str(len(body))
        )
    pairs = []
    for offset, raw in enumerate(body):
        number, fold, same = offset + 2, offset // (2 * per_class), (offset % (2 * per_class)) < per_class
        fields = raw.split("\t") if "\t" in raw else raw.split()
        try:
            if same and len(fields) == 3:
                pairs.append(
                    Pair(
                        (fields[0], _number(fields[1], path, number, raw)),
                        (fields[0], _number(fields[2], path, number, raw)),
                        True,
                        fold,
                    )
                )
            elif not same and len(fields) == 4:
                pairs.append(
                    Pair(
                        (fields[0], _number(fields[1], path, number, raw)),
                        (fields[2], _number(fields[3], path, number, raw)),
                        False,
                        fold,
                    )
                )
            else:
                want = (
                    '3 fields "Name n1 n2" (same person)' if same else '4 fields "Name1 n1 Name2 n2" (different people)'
                )
                raise format_error("format", path, want, line=number, got=f"{len(fields)} fields: {raw!r}")
        except ValueError as err:
            raise_or_report(err, on_error)
    return pairs


def read_eyewear(path: Path) -> dict[tuple[str, int], int]:
    """``(folder name, image number) -> eyewear class`` from ``lfw_attributes.txt`` (argmax of 3 scores)."""
    lines = require_file(path, "LFW attributes file").read_text().splitlines()
    header = lines[1].split("\t") if len(lines) > 1 else []
    if (
        len(header) < 3
        or header[0].strip() != "#"
        or header[1:3] != ["person", "imagenum"]
        or not set(EYEWEAR_COLUMNS) <= set(header)
    ):
        raise format_error(
            "format",
            path,
            '"#\\tperson\\timagenum\\t<attributes>" with No Eyewear/Eyeglasses/Sunglasses',
            line=2,
            got=repr(lines[1][:80] if len(lines) > 1 else ""),
        )
    columns = [header.index(name) - 1 for name in EYEWEAR_COLUMNS]  # rows have no leading '#'
    table = {}
    for number, raw in enumerate(lines[2:], start=3):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) != len(header) - 1:
            raise format_error(
                "format", path, f"{len(header) - 1} tab-separated fields", line=number, got=str(len(fields))
            )
        try:
            scores = [float(fields[c]) for c in columns]
            key = (fields[0].replace(" ", "_"), int(fields[1]))
        except ValueError:
            raise format_error(
                "format", path, "numeric image number and scores", line=number, got=repr(raw[:80])
            ) from None
        table[key] = int(np.argmax(scores))
    return table


def pair_keeps(pair_eyewear: tuple[int, int], glasses: str) -> bool:
    """Whether a pair with eyewear classes ``(a, b)`` belongs to the ``glasses`` subset."""
    if glasses == "all":
        return True
    if UNKNOWN in pair_eyewear:
        return False
    wearing = any(e in (EYEGLASSES, SUNGLASSES) for e in pair_eyewear)
    return wearing if glasses == "with" else not wearing


class PairDataset(Dataset):
    """Verification pairs over a per-image :class:`FaceDataset` (``pairs`` hold indices into it)."""

    def __init__(self, images: FaceDataset, pairs: list[tuple[int, int, bool, int]], eyewear: list[int]) -> None:
        self.images, self.pairs, self.eyewear = images, pairs, eyewear
        self.seed = images.seed  # seed_worker finds the per-image dataset through ``datasets``
        self.datasets = [images]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        ia, ib, same, fold = self.pairs[index]
        a, b = self.images[ia], self.images[ib]
        if a is None or b is None:
            return None
        return {
            "image_a": a["image"], "image_b": b["image"], "same": same, "fold": fold, "index_a": ia, "index_b": ib,
            "eyewear_a": self.eyewear[ia], "eyewear_b": self.eyewear[ib], "meta_a": a["meta"], "meta_b": b["meta"],
        }  # fmt: skip


class LFWDataModule(FaceDataModule):
    """LFW verification pairs (``val``/``test`` = ``pairs``) and images (``train`` = ``images``).

    Args (besides those of :class:`datamodules.common.FaceDataModule`):
        image_dir: ``"lfw"`` or ``"lfw-deepfunneled"`` (any folder with the same layout).
        folds: 0-based folds to use (default: all).
        glasses: ``"all"``, ``"with"`` or ``"without"`` (see the module docstring).
        crop_size: side of the central square crop in source pixels (default: whole image).
    """

    name = "LFW"
    env_var = "OCCRECON_LFW"
    default_folder = "LFW"
    how_to_get = HOW_TO_GET

    def __init__(
        self,
        train_split: str = "images",
        val_split: str = "pairs",
        test_split: str = "pairs",
        augment: bool = False,
        image_dir: str = "lfw",
        folds: list[int] | None = None,
        glasses: str = "all",
        crop_size: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(train_split=train_split, val_split=val_split, test_split=test_split, augment=augment, **options)
        if glasses not in ("all", "with", "without"):
            raise ValueError(f"glasses must be all, with or without, got {glasses!r}")
        self.image_dir, self.folds, self.glasses, self.crop_size = image_dir, folds, glasses, crop_size

    def image_path(self, root: Path, key: tuple[str, int]) -> Path:
        """``<root>/<image_dir>/<Name>/<Name>_<NNNN>.jpg``."""
        return root / self.image_dir / key[0] / f"{key[0]}_{key[1]:04d}.jpg"

    def read_index(
        self, on_error: Callable[[BaseException], None] | None = None
    ) -> tuple[list[Record], list[Pair], list[int]]:
        """Image records (referenced by ``pairs.txt``), parsed pairs, per-image eyewear."""
        root = self.root
        pairs = read_pairs(root / PAIRS_FILE, on_error)
        if self.glasses != "all" and not (root / ATTRIBUTES_FILE).is_file():
            raise MissingAssetError(
                root / ATTRIBUTES_FILE,
                f"LFW eyewear attributes (needed for glasses={self.glasses!r}; glasses='all' works without them)",
                "Get lfw_attributes.txt from https://www.cs.columbia.edu/CAVE/databases/pubfig/download/ "
                "and put it next to pairs.txt.",
            )
        eyewear_table = read_eyewear(root / ATTRIBUTES_FILE) if (root / ATTRIBUTES_FILE).is_file() else {}
        keys = sorted({key for pair in pairs for key in (pair.a, pair.b)})
        records, eyewear, bad = [], [], set()
        for key in keys:
            path = self.image_path(root, key)
            if not path.is_file():
                bad.add(key)
                err = FileNotFoundError(f"{path}: LFW image referenced by {PAIRS_FILE} is missing")
                raise_or_report(err, on_error)
                continue
            eyewear.append(eyewear_table.get(key, UNKNOWN))
            fields = {"key": key, "extras": {"eyewear": eyewear[-1]}}  # per-image samples carry it too
            records.append(Record(id=f"{key[0]}_{key[1]:04d}", image=path, fields=fields))
        pairs = [p for p in pairs if p.a not in bad and p.b not in bad]
        return records, pairs, eyewear

    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        """Every image referenced by ``pairs.txt`` (the same for both splits)."""
        return self.read_index(on_error)[0]

    def load(self, record: Record) -> RawSample:
        image = read_image(record.image)
        height, width = image.shape[:2]
        if self.crop_size is None:
            box = full_image_box(height, width)
        else:
            half = self.crop_size / 2.0
            box = square_box((width / 2 - half, height / 2 - half, width / 2 + half, height / 2 + half))
        return RawSample(image=image, box=box)

    def make_dataset(self, split: str, train: bool = False) -> Any:
        if split not in ("images", "pairs"):
            raise ValueError(f"LFW split must be images or pairs, got {split!r}")
        from datamodules.loaders import SkipLog
        from datamodules.transforms import FaceAugment

        skips = SkipLog(split)
        records, pairs, eyewear = self.read_index(skips.add if self.skip_bad else None)
        skips.summary(len(records))
        augment = FaceAugment(**self.aug_options) if (train and self.augment_train) else None
        images = FaceDataset(
            records, self.load, self.image_size, augment, self.heatmap_size, self.sigma, self.skip_bad, self.seed, split
        )
        if split == "images":
            return images
        position = {record.fields["key"]: i for i, record in enumerate(records)}
        folds = set(range(max((p.fold for p in pairs), default=-1) + 1)) if self.folds is None else set(self.folds)
        chosen = []
        for p in pairs:
            ia, ib = position[p.a], position[p.b]
            if p.fold in folds and pair_keeps((eyewear[ia], eyewear[ib]), self.glasses):
                chosen.append((ia, ib, p.same, p.fold))
        return PairDataset(images, chosen, eyewear)
