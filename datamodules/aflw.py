"""AFLW with the AFLW-19 protocol (Zhu et al., CVPR 2016 "CCL"): ``AFLWinfo_release.mat`` + AFLW images.

Layout read::

    AFLW/
      AFLWinfo_release.mat
      flickr/0/image00002.jpg ...        (or data/flickr/..., as in the AFLW archive aflw/data/flickr)

Fields of ``AFLWinfo_release.mat`` as assumed here (read with ``scipy.io.loadmat``; ``N`` = 24 386
faces in the release; the layout is from peer notes of public loaders, not from the release's own
documentation — items marked [mem] could not be checked against a file):

* ``data``: ``[N, 38]`` float, ``[x_1..x_19, y_1..y_19]`` per face (point order below).
* ``mask_new``: ``[N, 19]``, 1 = visible, 0 = not visible.
* ``bbox``: ``[N, 4]``, ``[left, right, top, bottom]`` in pixels.
* ``nameList``: ``[N, 1]`` cell of image paths relative to ``flickr/`` (e.g. ``0/image00002.jpg``).
  43 of the 21 121 AFLW image names end in ``.png`` while the archive holds a ``.jpg`` of that name;
  as public AFLW converters do, a missing ``.png`` falls back to the ``.jpg``, and
  :attr:`AFLWDataModule.index_findings` counts these per indexed split (``occrecon data check aflw``
  reports them).
* ``ra``: ``[1, N]`` 1-based random permutation; ``train = ra[:20000] - 1``, ``test`` (AFLW-Full)
  ``= ra[20000:] - 1`` (4 386). ``train_count`` changes the 20 000 (only for small test fixtures).

Point order (AFLW's 21 minus the two ears; ``Left`` = image side as used by FaRL's scorer [mem]):
0-2 left brow (left corner, centre, right corner), 3-5 right brow, 6-8 left eye (left corner,
centre, right corner), 9-11 right eye, 12-14 nose (left, centre, right), 15-17 mouth (left corner,
centre, right corner), 18 chin. Flip: ``occrecon.landmarks.FLIP_AFLW19``; edge lines:
``occrecon.landmarks.EDGE_LINES_AFLW19`` (chin as a disc, one 3-point polyline per brow and eye —
shared by upper/lower lid channels — and nose and mouth polylines repeated over the 68-layout
channels they stand for).

Splits: ``train``, ``test`` (= ``full``), ``frontal`` (test faces with all 19 visible, AFLW-Frontal)
and ``all``. Coordinates: assumed Matlab 1-based pixel centres like 300-W's (which iBUG states,
see ``datamodules.w300``); for AFLW this is [mem], so ``x_ours = x - 0.5`` (same
:data:`datamodules.w300.PTS_OFFSET`). Invisible points keep their stored coordinates and
``visibility = False``. The crop is the ``bbox`` squared and enlarged by ``margin`` per side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from datamodules.common import FaceDataModule, RawSample, Record
from datamodules.crops import square_box
from datamodules.files import check_points_in_image, format_error, raise_or_report, require_file
from datamodules.w300 import PTS_OFFSET
from occrecon.landmarks import NUM_LANDMARKS_AFLW19
from occrecon.utils.io import read_image

MAT_FILE = "AFLWinfo_release.mat"
TRAIN_COUNT = 20000
SPLITS = ("train", "test", "full", "frontal", "all")
HOW_TO_GET = (
    "Get the AFLW images from https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/ "
    "(licence form) and AFLWinfo_release.mat from http://mmlab.ie.cuhk.edu.hk/projects/compositional.html ; put the "
    ".mat next to the flickr/ folder."
)


def _field(mat: dict, path: Path, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
    if key not in mat:
        raise format_error(
            "format", path, f"a field {key!r}", got=f"fields {sorted(k for k in mat if not k.startswith('__'))}"
        )
    value = np.asarray(mat[key])
    if value.ndim != len(shape) or any(
        want is not None and want != got for want, got in zip(shape, value.shape, strict=True)
    ):
        pretty = "x".join("N" if s is None else str(s) for s in shape)
        raise format_error("format", path, f"{key!r} of shape {pretty}", got="x".join(map(str, value.shape)))
    return value


def _name(entry: object) -> str:
    """A MATLAB cell entry (nested object/str arrays from loadmat) as a plain string."""
    while isinstance(entry, np.ndarray):
        entry = entry.item() if entry.size == 1 else entry.ravel()[0]
    return str(entry)


def read_aflw_info(path: Path) -> dict[str, np.ndarray | list[str]]:
    """Read and validate ``AFLWinfo_release.mat``.

    Returns ``landmarks`` ``[N, 19, 2]`` (occrecon frame), ``visibility`` ``[N, 19]`` bool,
    ``bbox`` ``[N, 4]`` ``[left, right, top, bottom]``, ``names`` (N paths), ``order`` ``[N]`` 0-based.
    """
    try:
        mat = scipy.io.loadmat(str(require_file(path, "AFLW-19 annotation file")))
    except (ValueError, OSError, TypeError) as err:  # scipy raises these on corrupt .mat files
        raise format_error("corrupt", path, "a MATLAB .mat file", got=str(err)) from err
    data = _field(mat, path, "data", (None, 2 * NUM_LANDMARKS_AFLW19)).astype(np.float64)
    count = data.shape[0]
    mask = _field(mat, path, "mask_new", (count, NUM_LANDMARKS_AFLW19))
    bbox = _field(mat, path, "bbox", (count, 4)).astype(np.float64)
    names = [_name(entry) for entry in np.asarray(_field(mat, path, "nameList", (count, 1))).ravel()]
    order = np.asarray(mat.get("ra", np.zeros(0))).ravel().astype(np.int64) - 1
    if "ra" not in mat or sorted(order.tolist()) != list(range(count)):
        raise format_error("format", path, f"'ra' = a 1-based permutation of 1..{count}", got=f"{order.size} values")
    landmarks = np.stack([data[:, :NUM_LANDMARKS_AFLW19], data[:, NUM_LANDMARKS_AFLW19:]], axis=-1) + PTS_OFFSET
    return {"landmarks": landmarks, "visibility": mask.astype(bool), "bbox": bbox, "names": names, "order": order}


def split_indices(info: dict, split: str, train_count: int = TRAIN_COUNT) -> np.ndarray:
    """0-based face indices of ``split`` (see the module docstring)."""
    order = np.asarray(info["order"])
    if split == "train":
        return order[:train_count]
    if split in ("test", "full"):
        return order[train_count:]
    if split == "frontal":
        test = order[train_count:]
        return test[np.asarray(info["visibility"])[test].all(axis=1)]
    if split == "all":
        return np.arange(order.size)
    raise ValueError(f"AFLW split must be one of {SPLITS}, got {split!r}")


PNG_NAME_JPG_FILE = "nameList .png read as the .jpg in the archive"
"""Key of :attr:`AFLWDataModule.index_findings` counting the ``.png`` -> ``.jpg`` fall-backs."""


def image_file(folder: Path, name: str) -> tuple[Path, bool]:
    """The image of a ``nameList`` entry and whether it is the ``.jpg`` fall-back of a ``.png`` name."""
    image = folder / name
    if not image.is_file() and image.suffix.lower() == ".png":
        for suffix in (".jpg", ".JPG"):
            if image.with_suffix(suffix).is_file():
                return image.with_suffix(suffix), True
    return image, False


def image_folder(root: Path) -> Path:
    """``root/flickr``, ``root/data/flickr`` or ``root/aflw/data/flickr`` (first that exists)."""
    for candidate in (root / "flickr", root / "data" / "flickr", root / "aflw" / "data" / "flickr"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"{root / 'flickr'}: AFLW image folder is missing (also looked in data/flickr, aflw/data/flickr)"
    )


class AFLWDataModule(FaceDataModule):
    """AFLW-19 landmarks with visibility.

    Args (besides those of :class:`datamodules.common.FaceDataModule`):
        margin: crop margin per side, as a fraction of the box side.
        train_count: size of the training part of ``ra`` (20 000 in the protocol).
    """

    name = "AFLW (AFLW-19)"
    env_var = "OCCRECON_AFLW"
    default_folder = "AFLW"
    how_to_get = HOW_TO_GET

    def __init__(
        self,
        val_split: str = "test",
        margin: float = 0.1,
        train_count: int = TRAIN_COUNT,
        **options: Any,
    ) -> None:
        super().__init__(val_split=val_split, **options)
        self.margin, self.train_count = margin, train_count
        self.index_findings: dict[str, int] = {}
        """Counts of tolerated oddities of the last :meth:`index` call (see the module docstring)."""

    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        root = self.root
        info = read_aflw_info(root / MAT_FILE)
        folder = image_folder(root)
        records, fallbacks = [], 0
        for i in split_indices(info, split, self.train_count).tolist():
            image, fallback = image_file(folder, info["names"][i])
            fallbacks += fallback
            if not image.is_file():
                err = FileNotFoundError(f"{image}: AFLW image (nameList entry {i + 1}) is missing")
                raise_or_report(err, on_error)
                continue
            fields = {"landmarks": info["landmarks"][i], "visibility": info["visibility"][i], "bbox": info["bbox"][i]}
            records.append(Record(id=str(i), image=image, fields=fields))
        self.index_findings = {PNG_NAME_JPG_FILE: fallbacks} if fallbacks else {}
        return records

    def load(self, record: Record) -> RawSample:
        image = read_image(record.image)
        check_points_in_image(record.fields["landmarks"], image, record.image)
        left, right, top, bottom = (float(v) for v in record.fields["bbox"])
        return RawSample(
            image=image, box=square_box((left, top, right, bottom), self.margin),
            landmarks=record.fields["landmarks"].copy(), visibility=record.fields["visibility"].copy(),
        )  # fmt: skip
