"""Export a synthetic data set in the on-disk layouts of CelebAMask-HQ, 300W and LFW.

The exported folders are read by ``datamodules.celebamask_hq``, ``datamodules.w300`` and
``datamodules.lfw`` unchanged. Every export uses ``I_in`` (the occluded image) and its
annotations; the split of a sample is the split of its identity (``occrecon.synth.reader.identity_splits`` with the default 80/10/10).

* ``celebamask_hq``: ``CelebA-HQ-img/<i>.jpg`` (JPEG q95), ``CelebAMask-HQ-mask-anno/<i // 2000>/
  <i:05d>_<part>.png`` binary masks (0/255) of ``parsing_in`` (``skin`` always written),
  ``CelebA-HQ-to-CelebA-mapping.txt`` whose ``orig_idx`` falls in CelebA's train/val/test ranges
  of the identity's split, the same partition as ``list_eval_partition.txt``,
  ``CelebAMask-HQ-attribute-anno.txt`` (40 CelebA attributes: ``Eyeglasses`` +1 for clear/tinted
  lenses and sunglasses, every other attribute -1 = unknown) and ``CelebAMask-HQ-pose-anno.txt``
  (yaw, pitch, roll in degrees).
* ``300w``: ``<folder>/<i:07d>.png`` + ``.pts`` (1-based pixel centres: ``x_pts = x + 0.5``).
  Train identities go to ``helen/trainset``; val/test identities to ``helen/testset`` (|yaw| <= 30
  degrees, no hand) or ``ibug`` (the rest: the "challenging" subset). ``afw``, ``lfpw/trainset`` and
  ``lfpw/testset`` exist and are empty.
* ``lfw``: ``lfw/<Name>/<Name>_<k+1:04d>.jpg`` with ``Name = Synth_<identity:06d>``; ``pairs.txt``
  in LFW's exact format: header ``10\\t<P>``, then per fold ``P`` matched lines ``Name\\tn1\\tn2`` and
  ``P`` mismatched lines ``Name1\\tn1\\tName2\\tn2``; folds are person-disjoint (identity ``% 10``)
  and ``P`` is the largest count every fold can fill (at most 300). ``lfw_attributes.txt`` in
  Kumar et al.'s layout with the 73 columns: ``No Eyewear`` / ``Eyeglasses`` / ``Sunglasses`` are
  +1/-1 from the generator, every other column 0 (unknown).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from occrecon.errors import ConfigError
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.synth.fields import GLASSES_CODES
from occrecon.synth.reader import SyntheticDataset, identity_splits
from occrecon.utils.io import atomic_write_bytes, atomic_write_text, write_png
from occrecon.utils.seeding import numpy_generator

EXPORT_FORMATS: tuple[str, ...] = ("celebamask_hq", "300w", "lfw")

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling",
    "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)  # fmt: skip

LFW_ATTRIBUTES: tuple[str, ...] = (
    "Male", "Asian", "White", "Black", "Baby", "Child", "Youth", "Middle Aged", "Senior", "Black Hair", "Blond Hair",
    "Brown Hair", "Bald", "No Eyewear", "Eyeglasses", "Sunglasses", "Mustache", "Smiling", "Frowning", "Chubby",
    "Blurry", "Harsh Lighting", "Flash", "Soft Lighting", "Outdoor", "Curly Hair", "Wavy Hair", "Straight Hair",
    "Receding Hairline", "Bangs", "Sideburns", "Fully Visible Forehead", "Partially Visible Forehead",
    "Obstructed Forehead", "Bushy Eyebrows", "Arched Eyebrows", "Narrow Eyes", "Eyes Open", "Big Nose", "Pointy Nose",
    "Big Lips", "Mouth Closed", "Mouth Slightly Open", "Mouth Wide Open", "Teeth Not Visible", "No Beard", "Goatee",
    "Round Jaw", "Double Chin", "Wearing Hat", "Oval Face", "Square Face", "Round Face", "Color Photo", "Posed Photo",
    "Attractive Man", "Attractive Woman", "Indian", "Gray Hair", "Bags Under Eyes", "Heavy Makeup", "Rosy Cheeks",
    "Shiny Skin", "Pale Skin", "5 o' Clock Shadow", "Strong Nose-Mouth Lines", "Wearing Lipstick", "Flushed Face",
    "High Cheekbones", "Brown Eyes", "Wearing Earrings", "Wearing Necktie", "Wearing Necklace",
)  # fmt: skip

LFW_FOLDS = 10
LFW_MAX_PAIRS = 300
CELEBA_SPLIT_START = {"train": 0, "val": 162770, "test": 182637}
"""First 0-based CelebA ``orig_idx`` of each partition (files 1..162770 / ..182637 / rest)."""
W300_FOLDERS: tuple[str, ...] = ("afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset", "ibug")


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def _meta(dataset: SyntheticDataset) -> list[dict[str, np.ndarray]]:
    """Per-sample small fields (identity, picture, glasses, hand, pose) without decoding images."""
    light = SyntheticDataset(dataset.root, fields=("identity", "image_index", "glasses", "hand", "camera_pose"))
    return [light[i] for i in range(len(light))]


def export_celebamask_hq(dataset: SyntheticDataset, out: Path) -> None:
    """Write ``dataset`` in the CelebAMask-HQ layout under ``out`` (see the module docstring)."""
    meta = _meta(dataset)
    splits = identity_splits(dataset.identities)
    counters = dict.fromkeys(CELEBA_SPLIT_START, 0)
    mapping, partition, attributes, poses = ["idx orig_idx orig_file"], [], [], []
    images = SyntheticDataset(dataset.root, fields=("I_in", "parsing_in"))
    for i, m in enumerate(meta):
        sample = images[i]
        split = splits[int(m["identity"])]
        orig_idx = CELEBA_SPLIT_START[split] + counters[split]
        counters[split] += 1
        mapping.append(f"{i} {orig_idx} {orig_idx + 1:06d}.jpg")
        partition.append(f"{orig_idx + 1:06d}.jpg {('train', 'val', 'test').index(split)}")
        atomic_write_bytes(out / "CelebA-HQ-img" / f"{i}.jpg", _jpeg(sample["I_in"]))
        for label, part in enumerate(CELEBAMASK_CLASSES[1:], start=1):
            mask = sample["parsing_in"] == label
            if mask.any() or part == "skin":
                write_png(
                    out / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_{part}.png",
                    mask.astype(np.uint8) * 255,
                )
        glasses = int(m["glasses"]) != GLASSES_CODES["none"]
        values = ["1" if (name == "Eyeglasses" and glasses) else "-1" for name in CELEBA_ATTRIBUTES]
        attributes.append(f"{i}.jpg  " + " ".join(values))
        pitch, yaw, roll = np.degrees(m["camera_pose"][:3].astype(np.float64))
        poses.append(f"{i}.jpg {yaw:.4f} {pitch:.4f} {roll:.4f}")
    n = len(meta)
    atomic_write_text(out / "CelebA-HQ-to-CelebA-mapping.txt", "\n".join(mapping) + "\n")
    atomic_write_text(out / "list_eval_partition.txt", "\n".join(partition) + "\n")
    atomic_write_text(
        out / "CelebAMask-HQ-attribute-anno.txt",
        f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(attributes) + "\n",
    )
    atomic_write_text(out / "CelebAMask-HQ-pose-anno.txt", f"{n}\nYaw Pitch Roll\n" + "\n".join(poses) + "\n")


def pts_text(landmarks: np.ndarray) -> str:
    """A 300W ``.pts`` file for ``[68, 2]`` landmarks in occrecon's frame (written 1-based: ``+0.5``)."""
    rows = "\n".join(f"{x + 0.5:.3f} {y + 0.5:.3f}" for x, y in np.asarray(landmarks, np.float64))
    return f"version: 1\nn_points:  {len(landmarks)}\n{{\n{rows}\n}}\n"


def export_300w(dataset: SyntheticDataset, out: Path) -> None:
    """Write ``dataset`` in the 300W layout under ``out`` (see the module docstring)."""
    for folder in W300_FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    data = SyntheticDataset(dataset.root, fields=("I_in", "landmarks", "identity", "camera_pose", "hand"))
    splits = identity_splits(dataset.identities)
    for i in range(len(data)):
        s = data[i]
        if splits[int(s["identity"])] == "train":
            folder = "helen/trainset"
        else:
            easy = abs(float(np.degrees(s["camera_pose"][1]))) <= 30.0 and not bool(s["hand"])
            folder = "helen/testset" if easy else "ibug"
        write_png(out / folder / f"{i:07d}.png", s["I_in"])
        atomic_write_text(out / folder / f"{i:07d}.pts", pts_text(s["landmarks"]))


def lfw_name(identity: int) -> str:
    """LFW folder name of an identity."""
    return f"Synth_{identity:06d}"


def lfw_pairs(pictures: dict[int, int], seed: int) -> tuple[int, list[list[str]]]:
    """Build LFW's 10 person-disjoint folds of matched and mismatched pairs.

    Args:
        pictures: ``identity -> number of pictures``.
        seed: data set seed (the pair draw is reproducible).

    Returns:
        ``P`` (pairs per class per fold) and, per fold, its ``2 P`` lines (matched first).
    """
    folds: list[list[int]] = [[] for _ in range(LFW_FOLDS)]
    for identity in sorted(pictures):
        folds[identity % LFW_FOLDS].append(identity)
    matched, mismatched = [], []
    for f, ids in enumerate(folds):
        same = [(i, a, b) for i in ids for a, b in itertools.combinations(range(1, pictures[i] + 1), 2)]
        diff = [
            (i, a, j, b)
            for i, j in itertools.combinations(ids, 2)
            for a in range(1, pictures[i] + 1)
            for b in range(1, pictures[j] + 1)
        ]
        rng = numpy_generator(seed, "lfw-pairs", f)
        matched.append([same[k] for k in rng.permutation(len(same))])
        mismatched.append([diff[k] for k in rng.permutation(len(diff))])
    per_class = min(LFW_MAX_PAIRS, *(len(m) for m in matched), *(len(m) for m in mismatched))
    if per_class == 0:
        raise ConfigError(
            f"the LFW export needs matched and mismatched pairs in each of its {LFW_FOLDS} person-disjoint folds: "
            f"at least {2 * LFW_FOLDS} identities with 2+ pictures (e.g. --n {4 * 2 * LFW_FOLDS} with 4 pictures per identity)"
        )
    lines = []
    for f in range(LFW_FOLDS):
        fold = [f"{lfw_name(i)}\t{a}\t{b}" for i, a, b in matched[f][:per_class]]
        fold += [f"{lfw_name(i)}\t{a}\t{lfw_name(j)}\t{b}" for i, a, j, b in mismatched[f][:per_class]]
        lines.append(fold)
    return per_class, lines


def export_lfw(dataset: SyntheticDataset, out: Path) -> None:
    """Write ``dataset`` in the LFW layout under ``out`` (see the module docstring)."""
    meta = _meta(dataset)
    pictures: dict[int, int] = {}
    for m in meta:
        pictures[int(m["identity"])] = max(pictures.get(int(m["identity"]), 0), int(m["image_index"]) + 1)
    per_class, folds = lfw_pairs(pictures, int(dataset.manifest["config"]["seed"]))
    header = "#\tperson\timagenum\t" + "\t".join(LFW_ATTRIBUTES)
    rows = []
    images = SyntheticDataset(dataset.root, fields=("I_in",))
    for i, m in enumerate(meta):
        name, number = lfw_name(int(m["identity"])), int(m["image_index"]) + 1
        atomic_write_bytes(out / "lfw" / name / f"{name}_{number:04d}.jpg", _jpeg(images[i]["I_in"]))
        code = int(m["glasses"])
        eyewear = {
            "No Eyewear": code == GLASSES_CODES["none"],
            "Eyeglasses": code in (GLASSES_CODES["clear"], GLASSES_CODES["tinted"]),
            "Sunglasses": code == GLASSES_CODES["sunglasses"],
        }
        values = [("1.0" if eyewear[a] else "-1.0") if a in eyewear else "0.0" for a in LFW_ATTRIBUTES]
        rows.append("\t".join([name.replace("_", " "), str(number), *values]))
    atomic_write_text(out / "pairs.txt", f"{LFW_FOLDS}\t{per_class}\n" + "\n".join(itertools.chain(*folds)) + "\n")
    comment = "# occrecon synthetic data set: eyewear columns are exact (+1/-1); every other column is unknown (0)"
    atomic_write_text(out / "lfw_attributes.txt", comment + "\n" + header + "\n" + "\n".join(rows) + "\n")


EXPORTERS: dict[str, Callable[[SyntheticDataset, Path], None]] = {
    "celebamask_hq": export_celebamask_hq,
    "300w": export_300w,
    "lfw": export_lfw,
}


def export_dataset(
    root: str | os.PathLike[str], formats: Iterable[str], out: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Export the data set at ``root`` in each of ``formats`` to ``out/<format>`` (default ``root/export``).

    Returns:
        ``format -> folder`` (the folder to pass as the real data module's ``root``).
    """
    formats = list(formats)
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown:
        raise ConfigError(f"unknown export format(s) {unknown}; choose from {list(EXPORTERS)}")
    dataset = SyntheticDataset(root, fields=())
    base = Path(root) / "export" if out is None else Path(out)
    written = {}
    for name in formats:
        folder = base / name
        EXPORTERS[name](dataset, folder)
        written[name] = folder
    return written
