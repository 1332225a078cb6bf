"""The sample every real data set serves and the base classes that serve it (FaceDataset, FaceDataModule).

Frames follow ``CONVENTIONS.md``: continuous pixel coordinates ``(x, y)``, origin at the top-left
corner of the top-left pixel. A sample is a dict of tensors (keys present only when the data set
has them, so one data set's batches always collate):

* ``image`` ``[3, S, S]`` float32 RGB in ``[0, 1]`` (``S = image_size``),
* ``label_map`` ``[S, S]`` int64 (:data:`IGNORE_LABEL` where the crop/augmentation left the image),
* ``landmarks`` ``[N, 2]`` float32 pixels of the ``S x S`` image, ``visibility`` ``[N]`` bool
  (out-of-frame points are kept and marked invisible),
* ``edge_lines`` ``[13, h, w]`` float32 heatmaps (``occrecon.landmarks.edge_line_heatmaps``, drawn
  from all points, visible or not, at ``heatmap_size`` with ``sigma``),
* ``meta``: ``{"id": str, "path": str}``,
* per-sample attributes a data set exposes (e.g. CelebAMask-HQ's ``eyeglasses``), as tensors.

Skip policy: a bad file raises :class:`DataFormatError` naming the file (and the line for text
files). With ``skip_bad=True`` bad samples found while indexing are dropped, counted and summarised
in one logged warning per split (:func:`raise_or_report` is that choice). A sample that fails to
decode later is logged and counted; in the **training** split it is replaced by the next loadable
sample, so training batches always have ``batch_size`` samples (never a batch of one, which
BatchNorm rejects); in evaluation splits it is returned as ``None`` and :func:`collate_skip_none`
leaves it out of the batch. Training loaders also drop the incomplete last batch
(``drop_last=True``) whenever the split holds at least one full batch.

The pieces live in cohesive modules and are re-exported here (the data-set modules import them
from here): :mod:`datamodules.files` (format errors, roots, required files),
:mod:`datamodules.crops` (crop boxes, :func:`crop_to_box`), :mod:`datamodules.loaders` (skip
policy, seeded loaders, collate), :mod:`datamodules.edge_heatmaps` (:func:`edge_lines_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.crops import Box, box_from_landmarks, crop_to_box, full_image_box, square_box
from datamodules.edge_heatmaps import edge_lines_for
from datamodules.files import (
    check_points_in_image,
    error_kind,
    format_error,
    raise_or_report,
    require_file,
    resolve_root,
)
from datamodules.loaders import SkipLog, build_loader, collate_skip_none, load_or_skip, seed_worker
from datamodules.transforms import FaceAugment
from occrecon.labels import IGNORE_LABEL
from occrecon.utils.seeding import numpy_generator

__all__ = [  # the names of this module and those it hands on (imported from here across the repo)
    "IGNORE_LABEL", "STAGE_DATASETS", "Box", "FaceDataModule", "FaceDataset", "RawSample", "Record", "SkipLog",
    "assemble_sample", "box_from_landmarks", "build_loader", "check_points_in_image", "collate_skip_none",
    "crop_to_box", "edge_lines_for", "error_kind", "format_error", "full_image_box", "load_or_skip",
    "raise_or_report", "require_file", "resolve_root", "seed_worker", "square_box",
]  # fmt: skip

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- samples


@dataclass
class Record:
    """One indexed sample: its id, image file and data-set specific fields."""

    id: str
    image: Path
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawSample:
    """A decoded sample in the source image's frame, before crop and augmentation."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    box: Box
    label_map: np.ndarray | None = None  # [H, W] int64, same size as image
    landmarks: np.ndarray | None = None  # [N, 2] float pixels
    visibility: np.ndarray | None = None  # [N] bool


def assemble_sample(
    image: np.ndarray,
    record: Record,
    label_map: np.ndarray | None,
    landmarks: np.ndarray | None,
    visibility: np.ndarray | None,
    heatmap_size: int,
    sigma: float,
) -> dict[str, Any]:
    """Build the sample dict (see the module docstring) from a cropped, augmented ``S x S`` sample."""
    size = image.shape[0]
    sample: dict[str, Any] = {"image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0}
    if label_map is not None:
        sample["label_map"] = torch.from_numpy(np.ascontiguousarray(label_map)).long()
    if landmarks is not None and visibility is not None:
        points = torch.from_numpy(np.asarray(landmarks, dtype=np.float32))
        inside = (points[:, 0] >= 0) & (points[:, 0] < size) & (points[:, 1] >= 0) & (points[:, 1] < size)
        sample["landmarks"] = points
        sample["visibility"] = torch.from_numpy(np.asarray(visibility, dtype=bool)) & inside
        sample["edge_lines"] = edge_lines_for(points, size, heatmap_size, sigma)
    sample["meta"] = {"id": record.id, "path": str(record.image)}
    return sample


# --------------------------------------------------------------------------- dataset


class FaceDataset(Dataset):
    """Map-style dataset over :class:`Record` s: load -> crop to box -> augment -> sample dict.

    Args:
        records: indexed samples.
        load: decodes a record into a :class:`RawSample` (raises DataFormatError / FileNotFoundError).
        image_size: output side ``S``.
        augment: a :class:`datamodules.transforms.FaceAugment` or ``None``.
        heatmap_size, sigma: edge-line heatmap size and width (heatmap pixels).
        skip_bad: samples that fail to load are logged and counted in ``skipped``, then replaced by
            the next loadable sample (``substitute``, training) or returned as ``None``.
        seed: base seed of the per-worker augmentation generator.
        substitute: see ``skip_bad`` (set for the training split: full batches only).
    """

    def __init__(
        self,
        records: Sequence[Record],
        load: Callable[[Record], RawSample],
        image_size: int = 256,
        augment: Any = None,
        heatmap_size: int = 64,
        sigma: float = 1.0,
        skip_bad: bool = False,
        seed: int = 0,
        split: str = "",
        substitute: bool = False,
    ) -> None:
        self.records, self.load, self.image_size = list(records), load, image_size
        self.substitute = substitute
        self.augment, self.heatmap_size, self.sigma = augment, heatmap_size, sigma
        self.skip_bad, self.seed, self.skipped = skip_bad, seed, SkipLog(split)
        self.rank = 0  # distributed rank, set by the data module: ranks get distinct augmentation streams
        self.rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.records)

    def _generator(self) -> np.random.Generator:
        if self.rng is None:  # main process: one stream per dataset, reproducible from the seed
            self.rng = numpy_generator(self.seed, "main", self.rank)
        return self.rng

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        loaded = load_or_skip(lambda i: (self.records[i], self.load(self.records[i])), index, len(self.records),
                              self.skip_bad, self.substitute, self.skipped)  # fmt: skip
        if loaded is None:
            return None
        record, raw = loaded
        image, labels, points = crop_to_box(raw.image, raw.box, self.image_size, raw.label_map, raw.landmarks)
        visibility = raw.visibility
        if self.augment is not None:
            image, labels, points, visibility = self.augment(image, labels, points, visibility, self._generator())
        sample = assemble_sample(image, record, labels, points, visibility, self.heatmap_size, self.sigma)
        sample.update({key: torch.as_tensor(value) for key, value in record.fields.get("extras", {}).items()})
        return sample


# --------------------------------------------------------------------------- data module


STAGE_DATASETS: dict[str, tuple[str, ...]] = {
    "fit": ("fit", "validate"), "validate": ("validate",), "test": ("test",), "predict": ("test",),
}  # fmt: skip
"""Lightning stage -> the datasets it needs (``predict`` uses the test split)."""


class FaceDataModule(L.LightningDataModule):
    """Base of the real data-set modules: builds datasets per split and the seeded loaders.

    Subclasses set the class attributes and implement :meth:`index` and :meth:`load`. Their
    constructors take only their own options (and any base option whose default they change) and
    forward ``**options`` here; the config schema follows that chain
    (:func:`occrecon.config.signature.constructor_parameters`).

    Args:
        root: data set folder; None -> ``$<env_var>``, else ``$OCCRECON_DATA/<default_folder>``.
        image_size: side ``S`` of the square samples.
        batch_size, num_workers, pin_memory: DataLoader options.
        train_split, val_split, test_split: split names used by fit / validate / test.
        augment: augment the training split (:class:`datamodules.transforms.FaceAugment`).
        flip_prob, rotate_deg, scale_jitter, translate, colour_jitter: augmentation ranges.
        heatmap_size, sigma: edge-line heatmap side and Gaussian width (heatmap pixels).
        skip_bad: skip and count bad samples instead of raising (see the module docstring).
        seed: base seed of the augmentation streams (the shuffle order follows the global seed, see :func:`build_loader`).
    """

    name: ClassVar[str] = ""
    env_var: ClassVar[str] = ""
    default_folder: ClassVar[str] = ""
    how_to_get: ClassVar[str] = ""
    label_flip: ClassVar[tuple[int, ...] | None] = None

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 224,
        batch_size: int = 8,
        num_workers: int = 2,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        augment: bool = True,
        flip_prob: float = 0.5,
        rotate_deg: float = 15.0,
        scale_jitter: float = 0.1,
        translate: float = 0.05,
        colour_jitter: float = 0.2,
        heatmap_size: int = 64,
        sigma: float = 1.0,
        skip_bad: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.root_arg, self.image_size, self.batch_size, self.num_workers = root, image_size, batch_size, num_workers
        self.splits = {"fit": train_split, "validate": val_split, "test": test_split}
        self.aug_options = {
            "flip_prob": flip_prob, "rotate_deg": rotate_deg, "scale_jitter": scale_jitter,
            "translate": translate, "colour_jitter": colour_jitter,
        }  # fmt: skip
        self.augment_train, self.heatmap_size, self.sigma = augment, heatmap_size, sigma
        self.skip_bad, self.seed, self.pin_memory = skip_bad, seed, pin_memory
        self.datasets: dict[str, FaceDataset] = {}

    @property
    def root(self) -> Path:
        """The data set's root folder (config, then environment variables)."""
        return resolve_root(self.root_arg, self.env_var, self.default_folder, self.name, self.how_to_get)

    # -- to implement
    def index(self, split: str, on_error: Callable[[BaseException], None] | None = None) -> list[Record]:
        """Records of ``split``; bad entries raise, or go to ``on_error`` when it is given."""
        raise NotImplementedError

    def load(self, record: Record) -> RawSample:
        """Decode one record."""
        raise NotImplementedError

    # -- shared
    def make_dataset(self, split: str, train: bool = False) -> FaceDataset:
        """Index ``split`` and wrap it in a :class:`FaceDataset` (augmented when ``train``)."""
        skips = SkipLog(split)
        records = self.index(split, on_error=skips.add if self.skip_bad else None)
        skips.summary(len(records))
        augment = (
            FaceAugment(label_flip=self.label_flip, **self.aug_options) if (train and self.augment_train) else None
        )
        return FaceDataset(
            records, self.load, self.image_size, augment, self.heatmap_size, self.sigma, self.skip_bad, self.seed, split,
            substitute=train,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        keys = ("fit", "validate", "test") if stage is None else STAGE_DATASETS[stage]
        for key in keys:
            if key not in self.datasets:
                self.datasets[key] = self.make_dataset(self.splits[key], train=key == "fit")
                trainer = getattr(self, "trainer", None)
                self.datasets[key].rank = int(getattr(trainer, "global_rank", 0) or 0)

    def teardown(self, stage: str | None = None) -> None:
        for key, dataset in self.datasets.items():
            skipped = getattr(dataset, "skipped", None)
            if skipped is not None and skipped.items:  # worker processes log their own counts
                log.warning("%s: %d sample(s) failed to load and were skipped", key, len(skipped.items))

    def _loader(self, key: str, shuffle: bool) -> DataLoader:
        if key not in self.datasets:
            self.setup(key)  # "fit" / "validate" / "test" are stage names too
        return build_loader(
            self.datasets[key], self.batch_size, shuffle, self.num_workers, self.pin_memory, collate_skip_none
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("fit", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
