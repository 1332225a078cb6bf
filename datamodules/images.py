"""A folder of ordinary photos for ``occrecon predict`` (any stage), optionally face-aligned.

Samples: ``image`` ``[3, S, S]`` float in ``[0, 1]``, ``name`` (``<stem>`` or ``<stem>_face<k>``)
and, when aligned, ``landmarks`` ``[68, 2]`` (detected, crop pixels) and ``crop_from_photo``
``[2, 3]`` (continuous-pixel similarity, :mod:`occrecon.faces.align`) so predictions can be
mapped back to the photo.

``align``: ``deep3d`` / ``celebahq`` detect every face (face-api ports, :mod:`occrecon.faces`)
and warp it to that framing, one sample per face of at least ``min_face_size`` px; ``none`` pads
the whole photo to a square (bottom/right, black) and resizes it. Detection runs once, in
``setup``; unreadable and face-less photos are named in the log and skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from occrecon.errors import ConfigError
from occrecon.faces.photos import collect_images, read_photo

log = logging.getLogger(__name__)
ALIGNMENTS = ("deep3d", "celebahq", "none")


@dataclass
class PhotoItem:
    """One sample: a photo, and for aligned samples the face's transform and landmarks."""

    path: Path
    name: str
    matrix: np.ndarray | None = None
    landmarks: np.ndarray | None = None


def square_resize(photo: np.ndarray, size: int) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[3, size, size]`` float: zero-pad bottom/right to a square, resize (antialiased)."""
    h, w = photo.shape[:2]
    side = max(h, w)
    canvas = torch.zeros(3, side, side)
    canvas[:, :h, :w] = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    return torch.nn.functional.interpolate(canvas[None], size=(size, size), mode="bilinear", antialias=True)[0]


class PhotoDataset(Dataset):
    """Items of :class:`PhotoItem` read and warped on access."""

    def __init__(self, items: list[PhotoItem], image_size: int):
        self.items, self.image_size = items, image_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from occrecon.faces.align import apply, warp

        item = self.items[index]
        photo = read_photo(item.path)
        if item.matrix is None:
            return {"image": square_resize(photo, self.image_size), "name": item.name}
        tensor = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
        image = warp(tensor, item.matrix, (self.image_size, self.image_size))[0]
        return {
            "image": image,
            "name": item.name,
            "landmarks": torch.from_numpy(apply(item.matrix, item.landmarks).astype(np.float32)),
            "crop_from_photo": torch.from_numpy(item.matrix.astype(np.float32)),
        }


class ImagesDataModule(L.LightningDataModule):
    """Photos for prediction (module docstring).

    Args:
        images: a folder, a file, or a list of them.
        image_size: sample side ``S`` (the stage's ``data.image_size``).
        align: ``deep3d``, ``celebahq`` or ``none``.
        min_face_size: faces smaller than this (photo pixels) are ignored.
        batch_size, num_workers: DataLoader options.
    """

    def __init__(
        self,
        images: str | list[str],
        image_size: int = 224,
        align: str = "deep3d",
        min_face_size: float = 40.0,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if align not in ALIGNMENTS:
            raise ConfigError(f"predict.align: expected one of {ALIGNMENTS}, got {align!r}")
        self.images, self.image_size, self.align = images, image_size, align
        self.min_face_size, self.batch_size, self.num_workers = min_face_size, batch_size, num_workers
        self.dataset: PhotoDataset | None = None
        self.skipped: list[str] = []

    def index(self) -> list[PhotoItem]:
        """One item per photo (``align=none``) or per detected face; skipped photos go to ``self.skipped``."""
        paths = collect_images(self.images)
        if not paths:
            raise ConfigError(f"predict.images: no images found in {self.images}")
        detector = None
        if self.align != "none":
            from occrecon.faces.align import alignment_transform
            from occrecon.faces.detect import FaceDetector

            detector = FaceDetector(min_face_size=self.min_face_size)
        items = []
        for path in paths:
            try:
                photo = read_photo(path)
            except (OSError, ValueError) as err:
                self.skipped.append(f"{path}: unreadable ({type(err).__name__})")
                continue
            if detector is None:
                items.append(PhotoItem(path, path.stem))
                continue
            faces = detector.detect(photo)
            if not faces:
                self.skipped.append(f"{path}: no face of at least {self.min_face_size:g} px")
            for k, face in enumerate(faces):
                matrix = alignment_transform(face.landmarks, self.align, self.image_size)
                items.append(PhotoItem(path, f"{path.stem}_face{k}", matrix, face.landmarks))
        for line in self.skipped:
            log.warning("skipped %s", line)
        return items

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = PhotoDataset(self.index(), self.image_size)

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
