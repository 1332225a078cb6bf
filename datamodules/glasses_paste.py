"""Paired training data for occluder removal from unpaired CelebAMask-HQ faces: eyeglasses pasted
onto glasses-free faces (the synthesis stage's real-photo recipe; ``data.dataset: glasses_paste``).

CelebAMask-HQ has no pair of the same photo with and without glasses. The recipe makes one:

1. **Split by the attribute.** Faces whose ``Eyeglasses`` attribute is -1 are the *targets*
   (``I_gt``: real faces without glasses, the distribution the discriminator learns); faces with
   +1 are the *donors*.
2. **Pair.** Target ``i`` of a split takes donor ``d = rng.integers(len(donors))`` with
   ``rng = numpy_generator(seed, "glasses_paste", split, i)``: fixed pairs, independent of the
   worker and of the order (donors of the same split only, so test pairs never use train glasses).
3. **Cut.** The donor's glasses are its ``eye_g`` pixels in the merged label map. CelebAMask-HQ
   merges the parts in label order, so the eyes (labels 4, 5) overwrite ``eye_g`` (3): the cut
   region is the frame *and the lens area minus the donor's eyes*, and the target's own eyes show
   through those holes. A donor with fewer than ``min_glasses_pixels`` ``eye_g`` pixels is
   replaced by the next donor.
4. **Align.** The similarity transform mapping the donor's two eye centroids (``l_eye``, ``r_eye``
   pixels) onto the target's (``cv2.estimateAffinePartial2D``) warps the donor image (bilinear) and
   its glasses mask (nearest). Without both eyes in both maps the identity is used (CelebA-HQ
   faces are already roughly aligned).
5. **Paste.** ``I_in = where(m, warped donor, target)``, ``occluder_mask = m``, ``parsing_gt`` = the
   target's map (the occluder-free ``M_fin``), ``parsing_in`` (alias ``label_map``) = the target's
   map with ``eye_g`` where ``m`` (``M_fa``).

Limits (say so when reporting numbers): the pasted lens area carries the *donor's* skin and
lighting, so the lenses are opaque patches, not transparent glass; no shadows, reflections or
refraction; temples are pasted where the donor had them, over whatever the target has there;
large pose differences misalign the frame (only a 2-point similarity); the donor's hair or hand
crossing the frame is pasted with it only if it was labelled ``eye_g``. The pasted faces are
therefore easier than real ones in some ways (sharp mask edges, known mask) and harder in others.
There are no landmarks in CelebAMask-HQ: no ``edge_lines`` field (train with ``model.use_edges: false``
or supply ``M_edge`` from a trained edge-lines network).

Samples (``S`` = ``image_size``): ``I_in``/``image``, ``I_gt`` ``[3, S, S]`` float in ``[0, 1]``;
``parsing_gt``, ``parsing_in``/``label_map`` ``[S, S]`` int64; ``occluder_mask``, ``face_mask``
``[1, S, S]`` float; ``donor`` int64 (CelebA-HQ id of the glasses' donor); ``index`` int64.
Augmentation (train): a horizontal flip of the whole pair with probability ``flip_prob`` (labels
remapped ``l_``/``r_``), drawn from the same per-sample generator (fixed per index, so resumable).
"""

from __future__ import annotations

from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.celebamask_hq import ATTRIBUTE_FILE, CelebAMaskHQDataModule, load_celebamask
from datamodules.common import Record
from datamodules.files import format_error
from datamodules.loaders import build_loader
from occrecon.labels import CELEBAMASK, CELEBAMASK_FLIP
from occrecon.utils.seeding import numpy_generator

EYE_G, L_EYE, R_EYE = CELEBAMASK["eye_g"], CELEBAMASK["l_eye"], CELEBAMASK["r_eye"]


def eye_centres(labels: np.ndarray) -> np.ndarray | None:
    """``[2, 2]`` ``(x, y)`` pixel centres of the ``l_eye`` and ``r_eye`` regions, None if either is absent."""
    centres = []
    for label in (L_EYE, R_EYE):
        rows, cols = np.nonzero(labels == label)
        if len(rows) == 0:
            return None
        centres.append((cols.mean() + 0.5, rows.mean() + 0.5))
    return np.asarray(centres, np.float32)


def donor_transform(donor_labels: np.ndarray, target_labels: np.ndarray) -> np.ndarray:
    """``[2, 3]`` similarity (pixel centres, OpenCV convention) taking the donor's eyes to the target's."""
    src, dst = eye_centres(donor_labels), eye_centres(target_labels)
    if src is None or dst is None:
        return np.eye(2, 3, dtype=np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(src - 0.5, dst - 0.5)
    return np.eye(2, 3, dtype=np.float32) if matrix is None else matrix.astype(np.float32)


def paste_glasses(
    target: np.ndarray, target_labels: np.ndarray, donor: np.ndarray, donor_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-5 of the module docstring on ``[S, S, 3]`` uint8 images and ``[S, S]`` label maps.

    Returns ``(I_in [S, S, 3] uint8, mask [S, S] bool)``; ``I_in`` equals ``target`` outside ``mask``.
    """
    size = (target.shape[1], target.shape[0])
    matrix = donor_transform(donor_labels, target_labels)
    warped = cv2.warpAffine(donor, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    glasses = (donor_labels == EYE_G).astype(np.uint8)
    mask = cv2.warpAffine(glasses, matrix, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return np.where(mask[..., None], warped, target), mask


class GlassesPasteDataset(Dataset):
    """Pasted pairs of one split (module docstring)."""

    def __init__(
        self, targets: list[Record], donors: list[Record], image_size: int, seed: int, split: str,
        flip_prob: float = 0.0, min_glasses_pixels: int = 20,
    ) -> None:  # fmt: skip
        if not targets or not donors:
            raise ValueError(f"glasses_paste {split}: {len(targets)} glasses-free faces and {len(donors)} donors; need both")
        self.targets, self.donors, self.size = targets, donors, image_size
        self.seed, self.split, self.flip_prob, self.min_pixels = seed, split, flip_prob, min_glasses_pixels

    def __len__(self) -> int:
        return len(self.targets)

    def _load(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        raw = load_celebamask(record)
        image = cv2.resize(raw.image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(raw.label_map.astype(np.uint8), (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        return image, labels.astype(np.int64)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = numpy_generator(self.seed, "glasses_paste", self.split, index)
        target, target_labels = self._load(self.targets[index])
        start = int(rng.integers(len(self.donors)))
        for step in range(len(self.donors)):
            record = self.donors[(start + step) % len(self.donors)]
            donor, donor_labels = self._load(record)
            if (donor_labels == EYE_G).sum() >= self.min_pixels:
                break
        else:
            raise format_error("labels", record.image, f"a donor with >= {self.min_pixels} eye_g pixels among {len(self.donors)}")
        image, mask = paste_glasses(target, target_labels, donor, donor_labels)
        parsing_in = np.where(mask, EYE_G, target_labels)
        if rng.random() < self.flip_prob:
            flip = np.asarray(CELEBAMASK_FLIP)
            image, target, mask = image[:, ::-1], target[:, ::-1], mask[:, ::-1]
            target_labels, parsing_in = flip[target_labels[:, ::-1]], flip[parsing_in[:, ::-1]]
        to_image = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0  # noqa: E731
        sample = {
            "I_in": to_image(image), "I_gt": to_image(target),
            "parsing_gt": torch.from_numpy(np.ascontiguousarray(target_labels)),
            "parsing_in": torch.from_numpy(np.ascontiguousarray(parsing_in)),
            "occluder_mask": torch.from_numpy(np.ascontiguousarray(mask)).float()[None],
            "face_mask": torch.from_numpy(np.ascontiguousarray(target_labels > 0)).float()[None],
            "donor": torch.tensor(int(record.id)), "index": torch.tensor(index),
        }  # fmt: skip
        sample["image"], sample["label_map"] = sample["I_in"], sample["parsing_in"]
        return sample


class GlassesPasteDataModule(L.LightningDataModule):
    """CelebAMask-HQ faces with pasted eyeglasses (module docstring).

    Args:
        root: CelebAMask-HQ folder (None: ``$OCCRECON_CELEBAMASK_HQ`` / ``$OCCRECON_DATA/CelebAMask-HQ``).
        image_size: side of the samples. batch_size, num_workers, pin_memory, seed: loader settings.
        label_source, merged_order: as :class:`datamodules.celebamask_hq.CelebAMaskHQDataModule`.
        flip_prob: horizontal flip probability of training pairs.
        min_glasses_pixels: a donor needs at least this many ``eye_g`` pixels (at ``image_size``).
    """

    def __init__(
        self, root: str | None = None, image_size: int = 256, batch_size: int = 8, num_workers: int = 2,
        label_source: str = "parts", merged_order: str = "A", flip_prob: float = 0.5, min_glasses_pixels: int = 20,
        seed: int = 0, pin_memory: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.celeba = CelebAMaskHQDataModule(root=root, label_source=label_source, merged_order=merged_order)
        self.image_size, self.batch_size, self.num_workers, self.pin_memory = image_size, batch_size, num_workers, pin_memory
        self.flip_prob, self.min_pixels, self.seed = flip_prob, min_glasses_pixels, seed
        self.datasets: dict[str, GlassesPasteDataset] = {}

    def make_dataset(self, split: str) -> GlassesPasteDataset:
        records = self.celeba.index(split)
        if records and "eyeglasses" not in records[0].fields["extras"]:
            raise format_error("format", self.celeba.root / ATTRIBUTE_FILE, "the attribute file (Eyeglasses splits targets from donors)")
        targets = [r for r in records if not r.fields["extras"]["eyeglasses"]]
        donors = [r for r in records if r.fields["extras"]["eyeglasses"]]
        flip = self.flip_prob if split == "train" else 0.0
        return GlassesPasteDataset(targets, donors, self.image_size, self.seed, split, flip, self.min_pixels)

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage or "", ("train", "val", "test")):
            if split not in self.datasets:
                self.datasets[split] = self.make_dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = self.make_dataset(split)
        return build_loader(self.datasets[split], self.batch_size, shuffle, self.num_workers, self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
