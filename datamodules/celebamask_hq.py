"""CelebAMask-HQ (Lee et al., CVPR 2020), read from the official release.

Layout read::

    CelebAMask-HQ/
      CelebA-HQ-img/<id>.jpg                               1024x1024 (resized to the mask size)
      CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png   512x512 binary part masks (>0 = part)
      CelebA-HQ-to-CelebA-mapping.txt                      "idx orig_idx orig_file" header, "0 119613 119614.jpg"
      CelebAMask-HQ-attribute-anno.txt                     "30000", 40 names, "<id>.jpg  a1 .. a40" (+-1)
      list_eval_partition.txt                              optional: CelebA's "<orig_file> <0|1|2>"
      CelebAMask-HQ-mask/<id>.png                          optional: merged maps (``label_source="merged"``)

Label order: occrecon's order "A" (``occrecon.labels.CELEBAMASK_CLASSES``, = the data set's
``g_mask.py``). Part masks are merged in that order, later parts overwriting earlier ones (as
``g_mask.py`` does). Pre-merged maps written in order "B" (zllrunning/face-parsing.PyTorch) or "C"
(FaRL) are remapped through :data:`ORDER_B` / :data:`ORDER_C`. A part file is absent when the part
is absent, except ``skin`` which every face has: a missing skin mask is reported as missing.

Splits (``train``/``val``/``test``/``all``): the CelebA partition of each image's ``orig_file``
from ``list_eval_partition.txt`` when that file is in the root; otherwise from ``orig_idx`` ranges
with CelebA's 1-based file numbers ``n = orig_idx + 1``: train ``n <= 162770``, val
``162771 <= n <= 182637``, test ``n >= 182638`` (the data set's ``g_partition.py`` compares
``orig_idx`` against 162771/182638 directly, one off from the file numbers). Expected counts:
24 183 / 2 993 / 2 824. ``glasses="with"|"without"`` keeps the images whose ``Eyeglasses``
attribute is +1 / -1; every sample carries ``eyeglasses`` (bool tensor) when the attribute file
exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datamodules.common import FaceDataModule, RawSample, Record
from datamodules.crops import full_image_box
from datamodules.files import format_error, raise_or_report, require_file
from occrecon.labels import CELEBAMASK, CELEBAMASK_CLASSES, CELEBAMASK_FLIP
from occrecon.utils.io import read_image, read_label_map

PARTS: tuple[str, ...] = CELEBAMASK_CLASSES[1:]
"""The 18 part-file suffixes, in order "A" (label = position + 1)."""

ORDER_B_CLASSES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r", "nose",
    "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)  # fmt: skip
ORDER_C_CLASSES: tuple[str, ...] = (
    "background", "neck", "skin", "cloth", "l_ear", "r_ear", "l_brow", "r_brow", "l_eye", "r_eye", "nose",
    "mouth", "l_lip", "u_lip", "hair", "eye_g", "hat", "ear_r", "neck_l",
)  # fmt: skip
ORDER_A: tuple[int, ...] = tuple(range(len(CELEBAMASK_CLASSES)))
ORDER_B: tuple[int, ...] = tuple(CELEBAMASK[name] for name in ORDER_B_CLASSES)
"""``ORDER_B[value_in_order_B]`` = the order-"A" label (zllrunning ``prepropess_data.py``)."""
ORDER_C: tuple[int, ...] = tuple(CELEBAMASK[name] for name in ORDER_C_CLASSES)
"""``ORDER_C[value_in_order_C]`` = the order-"A" label (FaRL, names bg, neck, face, cloth, rr, lr, ...)."""
REMAP: dict[str, tuple[int, ...]] = {"A": ORDER_A, "B": ORDER_B, "C": ORDER_C}

MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
PARTITION_FILE = "list_eval_partition.txt"
NUM_ATTRIBUTES = 40
PARTITION_NAMES = {0: "train", 1: "val", 2: "test"}
HOW_TO_GET = (
    "Download CelebAMask-HQ from https://github.com/switchablenorms/CelebAMask-HQ (Google Drive / Baidu links) "
    "and unzip it; list_eval_partition.txt comes with CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html)."
)


def mask_path(root: Path, index: int, part: str) -> Path:
    """``CelebAMask-HQ-mask-anno/<index // 2000>/<index:05d>_<part>.png``."""
    return root / "CelebAMask-HQ-mask-anno" / str(index // 2000) / f"{index:05d}_{part}.png"


def partition_from_orig_idx(orig_idx: int) -> str:
    """CelebA partition of a 0-based ``orig_idx`` (file ``orig_idx + 1``), see the module docstring."""
    number = orig_idx + 1
    return "train" if number <= 162770 else ("val" if number <= 182637 else "test")


def read_mapping(path: Path, on_error: Callable[[BaseException], None] | None = None) -> dict[int, tuple[int, str]]:
    """``idx -> (orig_idx, orig_file)`` from ``CelebA-HQ-to-CelebA-mapping.txt`` (a bad line raises,
    or goes to ``on_error`` and is left out, so one bad line does not hide other findings)."""
    lines = require_file(path, "CelebA-HQ-to-CelebA mapping").read_text().splitlines()
    if not lines or lines[0].split() != ["idx", "orig_idx", "orig_file"]:
        raise format_error(
            "format", path, 'the header "idx orig_idx orig_file"', line=1, got=repr(lines[0] if lines else "")
        )
    table = {}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            bad = format_error("format", path, '"<idx> <orig_idx> <orig_file>"', line=number, got=repr(line))
            raise_or_report(bad, on_error)
            continue
        table[int(parts[0])] = (int(parts[1]), parts[2])
    return table


def read_partition(path: Path) -> dict[str, str]:
    """``orig_file -> train|val|test`` from CelebA's ``list_eval_partition.txt``."""
    table = {}
    for number, line in enumerate(require_file(path, "CelebA partition").read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise format_error("format", path, '"<file>.jpg <0|1|2>"', line=number, got=repr(line))
        table[parts[0]] = PARTITION_NAMES[int(parts[1])]
    return table


def read_attributes(path: Path) -> dict[int, dict[str, bool]]:
    """``id -> {attribute: bool}`` from ``CelebAMask-HQ-attribute-anno.txt`` (values +1/-1)."""
    lines = require_file(path, "CelebAMask-HQ attributes").read_text().splitlines()
    if not lines or not lines[0].strip().isdigit():
        raise format_error("format", path, "the image count on line 1", line=1, got=repr(lines[0] if lines else ""))
    names = lines[1].split() if len(lines) > 1 else []
    if len(names) != NUM_ATTRIBUTES:
        raise format_error("format", path, f"{NUM_ATTRIBUTES} attribute names on line 2", line=2, got=f"{len(names)}")
    table = {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        values = parts[1:]
        if len(values) != NUM_ATTRIBUTES or not parts[0].endswith(".jpg") or any(v not in ("1", "-1") for v in values):
            raise format_error(
                "format", path, f'"<id>.jpg" and {NUM_ATTRIBUTES} values +-1', line=number, got=repr(line)
            )
        table[int(parts[0][:-4])] = {name: value == "1" for name, value in zip(names, values, strict=True)}
    if len(table) != int(lines[0]):
        raise format_error("format", path, f"{lines[0].strip()} rows as line 1 says", got=str(len(table)))
    return table


def merge_parts(root: Path, index: int) -> np.ndarray:
    """Order-"A" label map ``[512, 512]`` int64 from the part masks of image ``index``."""
    skin = mask_path(root, index, "skin")
    require_file(skin, "skin part mask (every CelebAMask-HQ face has one)")
    masks = {}
    for label, part in enumerate(PARTS, start=1):
        path = mask_path(root, index, part)
        if path.is_file():
            masks[label] = (path, read_label_map(path))
    # the size most parts share (512x512 in the release) is the reference: the odd file is named
    shapes = [mask.shape for _, mask in masks.values()]
    shape = max(set(shapes), key=lambda s: (shapes.count(s), s == masks[1][1].shape))
    label_map = np.zeros(shape, dtype=np.int64)
    for label, (path, mask) in masks.items():
        if mask.shape != shape:
            raise format_error(
                "labels", path, f"a {shape[1]}x{shape[0]} mask like the other parts", got=f"{mask.shape[1]}x{mask.shape[0]}"
            )
        label_map[mask > 0] = label
    return label_map


def read_merged(path: Path, order: str) -> np.ndarray:
    """A pre-merged label map in ``order`` ("A", "B" or "C"), remapped to order "A"."""
    values = read_label_map(require_file(path, "merged CelebAMask-HQ label map"))
    if values.max(initial=0) >= len(CELEBAMASK_CLASSES) or values.min(initial=0) < 0:
        bad = int(values.max()) if values.max() >= len(CELEBAMASK_CLASSES) else int(values.min())
        raise format_error("labels", path, f"label values in 0..{len(CELEBAMASK_CLASSES) - 1}", got=str(bad))
    return np.asarray(REMAP[order], dtype=np.int64)[values]


def load_celebamask(record: Record) -> RawSample:
    """Decode one image and its label map; the image is resized to the label map's size."""
    fields = record.fields
    if fields["merged"] is not None:
        label_map = read_merged(fields["merged"], fields["order"])
    else:
        label_map = merge_parts(fields["root"], int(record.id))
    image = read_image(record.image)
    if image.shape[0] != image.shape[1]:
        raise format_error(
            "format", record.image, "a square CelebA-HQ image (1024x1024 in the release)",
            got=f"{image.shape[1]}x{image.shape[0]}",
        )  # fmt: skip
    if image.shape[:2] != label_map.shape:
        image = cv2.resize(image, (label_map.shape[1], label_map.shape[0]), interpolation=cv2.INTER_AREA)
    return RawSample(image=image, box=full_image_box(*label_map.shape), label_map=label_map)


class CelebAMaskHQDataModule(FaceDataModule):
    """CelebAMask-HQ parsing data (19 classes, order "A").

    Args (besides those of :class:`datamodules.common.FaceDataModule`):
        label_source: ``"parts"`` (official per-part masks) or ``"merged"`` (``CelebAMask-HQ-mask/<id>.png``).
        merged_order: class order of merged maps: ``"A"``, ``"B"`` or ``"C"``.
        glasses: ``"all"``, ``"with"`` or ``"without"`` (Eyeglasses attribute subset).
        detect_landmarks: attach 68 landmarks detected by the face-api ports (so ``L_land`` works
            on these unannotated images), cached per image in ``landmark_cache`` (default
            ``<occrecon cache>/landmarks/celebamask_hq``; :mod:`occrecon.faces.landmark_cache`).
    """

    name = "CelebAMask-HQ"
    env_var = "OCCRECON_CELEBAMASK_HQ"
    default_folder = "CelebAMask-HQ"
    how_to_get = HOW_TO_GET
    label_flip = CELEBAMASK_FLIP
    num_classes = len(CELEBAMASK_CLASSES)

    def __init__(
        self,
        label_source: str = "parts",
        merged_order: str = "A",
        glasses: str = "all",
        detect_landmarks: bool = False,
        landmark_cache: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if (
            label_source not in ("parts", "merged")
            or merged_order not in REMAP
            or glasses not in ("all", "with", "without")
        ):
            raise ValueError(f"label_source/merged_order/glasses: got {label_source!r}/{merged_order!r}/{glasses!r}")
        self.label_source, self.merged_order, self.glasses = label_source, merged_order, glasses
        self.detect_landmarks, self.landmark_cache = detect_landmarks, landmark_cache

    def split_of(self, root: Path, on_error: Callable[[BaseException], None] | None = None) -> dict[int, str]:
        """``id -> split`` through the mapping file (see the module docstring)."""
        mapping = read_mapping(root / MAPPING_FILE, on_error)
        if (root / PARTITION_FILE).is_file():
            partition = read_partition(root / PARTITION_FILE)
            missing = [orig for _, orig in mapping.values() if orig not in partition]
            if missing:
                raise format_error("format", root / PARTITION_FILE, f"a line for {missing[0]} (from {MAPPING_FILE})")
            return {idx: partition[orig] for idx, (_, orig) in mapping.items()}
        return {idx: partition_from_orig_idx(orig) for idx, (orig, _) in mapping.items()}

    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        root = self.root
        if split == "all":
            ids = sorted(int(p.stem) for p in (root / "CelebA-HQ-img").glob("*.jpg") if p.stem.isdigit())
        elif split in PARTITION_NAMES.values():
            ids = sorted(i for i, s in self.split_of(root, on_error).items() if s == split)
        else:
            raise ValueError(f"CelebAMask-HQ split must be train, val, test or all, got {split!r}")
        attributes = read_attributes(root / ATTRIBUTE_FILE) if (root / ATTRIBUTE_FILE).is_file() else None
        if self.glasses != "all" and attributes is None:
            raise format_error(
                "format", root / ATTRIBUTE_FILE, f"the attribute file (needed for glasses={self.glasses!r})"
            )
        records = []
        for index in ids:
            extras = {}
            if attributes is not None:
                if index not in attributes:
                    raise format_error("format", root / ATTRIBUTE_FILE, f"a row for {index}.jpg")
                extras["eyeglasses"] = attributes[index]["Eyeglasses"]
                if self.glasses != "all" and extras["eyeglasses"] != (self.glasses == "with"):
                    continue
            merged = root / "CelebAMask-HQ-mask" / f"{index}.png" if self.label_source == "merged" else None
            image = root / "CelebA-HQ-img" / f"{index}.jpg"
            if not image.is_file():
                err = FileNotFoundError(f"{image}: CelebA-HQ image {index} is missing")
                raise_or_report(err, on_error)
                continue
            fields = {"root": root, "merged": merged, "order": self.merged_order, "extras": extras}
            records.append(Record(id=str(index), image=image, fields=fields))
        return records

    def load(self, record: Record) -> RawSample:
        sample = load_celebamask(record)
        if self.detect_landmarks:
            from occrecon.faces.landmark_cache import cached_landmarks, default_cache

            cache = self.landmark_cache or default_cache("celebamask_hq")
            key = f"{record.id}_{sample.image.shape[0]}"
            sample.landmarks, sample.visibility = cached_landmarks(sample.image, key, cache)
        return sample
