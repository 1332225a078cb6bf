"""Helen face parsing (Smith et al., CVPR 2013), the ``SmithCVPR2013_dataset_resized`` release.

Layout read (exactly as released)::

    SmithCVPR2013_dataset_resized/
      images/<name>.jpg
      labels/<name>/<name>_lbl00.png ... <name>_lbl10.png   11 grayscale maps per image
      exemplars.txt  tuning.txt  testing.txt                 lines "<index> , <name>"

Splits: ``train`` = exemplars (2 000), ``val`` = tuning (230), ``test`` = testing (100) — the
mapping used by the public loaders. The ``lblNN`` maps are soft (anti-aliased, 0-255); the label
map is the per-pixel ``argmax`` over the 11 maps, with class order = file order
(``occrecon.labels.HELEN_CLASSES``; "left" = image side). The sample is the whole image padded to
a square (the release's images are already face crops). There are no landmarks in this release.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from datamodules.common import FaceDataModule, RawSample, Record
from datamodules.crops import full_image_box
from datamodules.files import format_error, raise_or_report, require_file
from occrecon.labels import HELEN_CLASSES, HELEN_FLIP
from occrecon.utils.io import read_image, read_label_map

SPLIT_FILES: dict[str, str] = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}
NUM_CLASSES = len(HELEN_CLASSES)
HOW_TO_GET = (
    "Download SmithCVPR2013_dataset_resized.zip from the Helen page "
    "(http://www.ifp.illinois.edu/~vuongle2/helen/ , 'Helen face parsing' by Brandon Smith) and unzip it."
)


def read_split_file(path: Path, on_error: Callable[[BaseException], None] | None = None) -> list[str]:
    """Names listed in a Helen split file (``"<index> , <name>"`` per line; blank lines ignored)."""
    names = []
    for number, line in enumerate(require_file(path, "Helen split file").read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1]:
            err = format_error("format", path, '"<index> , <name>"', line=number, got=repr(line))
            raise_or_report(err, on_error)
            continue
        names.append(parts[1])
    return names


def label_paths(root: Path, name: str) -> list[Path]:
    """The 11 ``labels/<name>/<name>_lblNN.png`` files of one image."""
    return [root / "labels" / name / f"{name}_lbl{k:02d}.png" for k in range(NUM_CLASSES)]


def load_helen(record: Record) -> RawSample:
    """Decode an image and its 11 soft maps into an ``argmax`` label map."""
    image = read_image(record.image)
    maps = []
    for path in record.fields["labels"]:
        soft = read_label_map(require_file(path, "Helen label map"))
        if soft.shape != image.shape[:2]:
            raise format_error(
                "labels",
                path,
                f"a {image.shape[1]}x{image.shape[0]} map like its image",
                got=f"{soft.shape[1]}x{soft.shape[0]}",
            )
        maps.append(soft)
    label_map = np.stack(maps).argmax(axis=0).astype(np.int64)
    return RawSample(image=image, box=full_image_box(*image.shape[:2]), label_map=label_map)


class HelenDataModule(FaceDataModule):
    """Helen parsing data (11 classes). Splits ``train``/``val``/``test`` (see the module docstring);
    all constructor arguments are those of :class:`datamodules.common.FaceDataModule`."""

    name = "Helen (SmithCVPR2013_dataset_resized)"
    env_var = "OCCRECON_HELEN"
    default_folder = "SmithCVPR2013_dataset_resized"
    how_to_get = HOW_TO_GET
    label_flip = HELEN_FLIP
    num_classes = NUM_CLASSES

    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        if split not in SPLIT_FILES:
            raise format_error("format", self.root, f"a split in {sorted(SPLIT_FILES)}", got=repr(split))
        root = self.root
        records = []
        for name in read_split_file(root / SPLIT_FILES[split], on_error):
            image = root / "images" / f"{name}.jpg"
            record = Record(id=name, image=image, fields={"labels": label_paths(root, name)})
            missing = [p for p in [image, *record.fields["labels"]] if not p.is_file()]
            if missing:
                err = FileNotFoundError(f"{missing[0]}: listed in {SPLIT_FILES[split]} but missing")
                raise_or_report(err, on_error)
                continue
            records.append(record)
        return records

    def load(self, record: Record) -> RawSample:
        return load_helen(record)
