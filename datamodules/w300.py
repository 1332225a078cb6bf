"""300W (Sagonas et al., 2013/2016): 68 landmarks from the ibug releases, read as distributed.

Layout read (the unzipped ibug archives side by side)::

    300W/
      afw/  helen/trainset/  helen/testset/  lfpw/trainset/  lfpw/testset/  ibug/
                                   <img>.jpg|.png + <img>.pts
      01_Indoor/indoor_001.png + .pts ...  02_Outdoor/outdoor_001.png + .pts ...   (300W private test)

Splits: ``train`` = afw + helen/trainset + lfpw/trainset (3 148), ``common`` = helen/testset +
lfpw/testset (554), ``challenging`` = ibug (135), ``full`` = common + challenging (689),
``private`` = 01_Indoor + 02_Outdoor (600), ``private_indoor``, ``private_outdoor``, and ``all`` =
every ``.pts`` under the root (custom or exported sets in the same file format). ``val``/``test``
default to ``common``/``full``.

``.pts`` syntax (checked exactly, errors name the line)::

    version: 1
    n_points:  68
    {
    <x> <y>          x 68
    }

Coordinates: iBUG's 300-W annotation pages (ibug.doc.ic.ac.uk/resources) state that the points
follow "the Matlab convention of 1 being the first index, i.e. the top left pixel is x=1, y=1":
1-based pixel centres. occrecon's frame puts the first pixel's centre at 0.5, so
``x_ours = x_pts - 0.5`` (:data:`PTS_OFFSET`). All 68 points are annotated (visible = True).
The face crop is the square around the landmarks enlarged by ``margin`` on each side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.common import FaceDataModule, RawSample, Record
from datamodules.crops import box_from_landmarks
from datamodules.files import check_points_in_image, format_error, raise_or_report, require_file
from occrecon.landmarks import NUM_LANDMARKS_68
from occrecon.utils.io import read_image

PTS_OFFSET = -0.5
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG")
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "private_indoor": ("01_Indoor",),
    "private_outdoor": ("02_Outdoor",),
    "private": ("01_Indoor", "02_Outdoor"),
}
HOW_TO_GET = (
    "Download the 300W images and annotations from https://ibug.doc.ic.ac.uk/resources/300-W/ (afw, helen, lfpw, "
    "ibug zips; the private test set from https://ibug.doc.ic.ac.uk/resources/300-W_IMAVIS/) and unzip them into one folder."
)


def read_pts(path: Path, num_points: int = NUM_LANDMARKS_68) -> np.ndarray:
    """Parse a ``.pts`` file into ``[num_points, 2]`` pixel coordinates in occrecon's frame.

    Raises :class:`DataFormatError` (kind ``points``) naming the line for any deviation.
    """
    lines = require_file(path, "landmark file").read_text(errors="replace").splitlines()
    expect = [(1, "version: 1"), (3, "{")]
    for number, want in expect:
        got = lines[number - 1].strip() if len(lines) >= number else "<end of file>"
        if got != want:
            raise format_error("points", path, repr(want), line=number, got=repr(got))
    header = lines[1].split() if len(lines) > 1 else []
    if len(header) != 2 or header[0] != "n_points:" or not header[1].isdigit():
        raise format_error(
            "points", path, f'"n_points:  {num_points}"', line=2, got=repr(lines[1] if len(lines) > 1 else "")
        )
    if int(header[1]) != num_points:
        raise format_error("points", path, f"{num_points} points", line=2, got=header[1])
    points = []
    for number in range(4, 4 + num_points):
        line = lines[number - 1] if len(lines) >= number else "<end of file>"
        try:
            x, y = (float(v) for v in line.split())
            if not (np.isfinite(x) and np.isfinite(y)):
                raise ValueError(line)
        except ValueError:
            raise format_error(
                "points", path, f"point {number - 3} of {num_points} as '<x> <y>' (finite numbers)", line=number,
                got=repr(line),
            ) from None  # fmt: skip
        points.append((x, y))
    closing = 4 + num_points
    got = lines[closing - 1].strip() if len(lines) >= closing else "<end of file>"
    if got != "}":
        raise format_error("points", path, "'}' after the points", line=closing, got=repr(got))
    return np.asarray(points, dtype=np.float64) + PTS_OFFSET


def image_for(pts: Path) -> Path | None:
    """The image next to a ``.pts`` file (same stem, any usual extension)."""
    for ext in IMAGE_EXTENSIONS:
        candidate = pts.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def list_pts(root: Path, split: str) -> list[Path]:
    """All ``.pts`` files of ``split`` (sorted; raises if a required folder is absent)."""
    if split == "all":
        return sorted(root.rglob("*.pts"))
    if split not in SPLITS:
        raise ValueError(f"300W split must be one of {sorted([*SPLITS, 'all'])}, got {split!r}")
    files = []
    for folder in SPLITS[split]:
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"{root / folder}: 300W folder of split {split!r} is missing")
        files += sorted((root / folder).glob("*.pts"))
    return files


class W300DataModule(FaceDataModule):
    """300W 68-point landmarks (no parsing labels).

    Args (besides those of :class:`datamodules.common.FaceDataModule`):
        margin: crop margin per side, as a fraction of the landmarks' larger extent.
    """

    name = "300W"
    env_var = "OCCRECON_300W"
    default_folder = "300W"
    how_to_get = HOW_TO_GET

    def __init__(
        self,
        val_split: str = "common",
        test_split: str = "full",
        margin: float = 0.25,
        **options: Any,
    ) -> None:
        super().__init__(val_split=val_split, test_split=test_split, **options)
        self.margin = margin

    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        root = self.root
        records = []
        for pts in list_pts(root, split):
            image = image_for(pts)
            try:
                if image is None:
                    raise FileNotFoundError(f"{pts.with_suffix('.jpg')}: image for {pts.name} is missing (.jpg/.png)")
                points = read_pts(pts)
            except (FileNotFoundError, ValueError) as err:
                raise_or_report(err, on_error)
                continue
            rel = pts.relative_to(root).with_suffix("").as_posix()
            records.append(Record(id=rel, image=image, fields={"landmarks": points, "pts": pts}))
        return records

    def load(self, record: Record) -> RawSample:
        image = read_image(record.image)
        points = record.fields["landmarks"]
        check_points_in_image(points, image, record.fields.get("pts", record.image))
        return RawSample(
            image=image, box=box_from_landmarks(points, self.margin), landmarks=points.copy(),
            visibility=np.ones(len(points), dtype=bool),
        )  # fmt: skip
