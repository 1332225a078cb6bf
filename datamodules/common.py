"""Pieces shared by every real data-set module: roots, crop boxes, samples, skip policy, base classes.

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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from datamodules.edge_heatmaps import edge_line_heatmaps_np
from datamodules.transforms import FaceAugment
from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.labels import IGNORE_LABEL
from occrecon.landmarks import EDGE_LINES_68, EDGE_LINES_AFLW19, NUM_LANDMARKS_AFLW19
from occrecon.utils.seeding import numpy_generator

log = logging.getLogger(__name__)


Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in continuous pixel coordinates."""

# --------------------------------------------------------------------------- errors and roots


def format_error(
    kind: str, path: str | Path, expected: str, line: int | None = None, got: str | None = None
) -> DataFormatError:
    """A :class:`DataFormatError` tagged with ``kind`` (``corrupt``, ``labels``, ``points``, ``format``)
    so ``occrecon data check`` can count problems per category."""
    err = DataFormatError(path, expected, line=line, got=got)
    err.kind = kind  # type: ignore[attr-defined]
    return err


def error_kind(err: BaseException) -> str:
    """Category of a loading error: ``missing`` for absent files, else the tag of :func:`format_error`."""
    if isinstance(err, FileNotFoundError):
        return "missing"
    return getattr(err, "kind", "corrupt")


def raise_or_report(err: BaseException, on_error: Callable[[BaseException], None] | None) -> None:
    """Raise ``err``, or hand it to ``on_error`` when given (``skip_bad`` indexing, ``occrecon data check``)."""
    if on_error is None:
        raise err
    on_error(err)


def check_points_in_image(points: np.ndarray, image: np.ndarray, path: str | Path, slack: float = 0.5) -> None:
    """Raise a ``points`` :class:`DataFormatError` naming ``path`` when a landmark ``[N, 2]`` lies
    farther than ``slack`` x the image side outside the ``H x W`` image (annotation of another image,
    swapped x/y, wrong units); landmarks just outside the frame are normal (cropped faces)."""
    height, width = image.shape[:2]
    low = -slack * np.array([width, height])
    high = (1.0 + slack) * np.array([width, height])
    outside = ~((points >= low) & (points <= high)).all(axis=1)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise format_error(
            "points", path, f"landmarks within {slack:.0%} of the {width}x{height} image",
            got=f"{int(outside.sum())} point(s) outside, e.g. point {first + 1} at {points[first].round(1).tolist()}",
        )  # fmt: skip


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` or raise ``FileNotFoundError`` naming it and what it should contain."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} is missing")
    return path


def resolve_root(
    root: str | os.PathLike[str] | None, env_var: str, default_folder: str, what: str, how_to_get: str
) -> Path:
    """Find a data set's root folder: ``root``, else ``$<env_var>``, else ``$OCCRECON_DATA/<default_folder>``.

    Raises :class:`MissingAssetError` naming the place looked at and where users obtain the data set.
    """
    if root is not None and str(root) != "":
        path = Path(root).expanduser()
    elif os.environ.get(env_var):
        path = Path(os.environ[env_var]).expanduser()
    elif os.environ.get("OCCRECON_DATA"):
        path = Path(os.environ["OCCRECON_DATA"]).expanduser() / default_folder
    else:
        hint = f"Set root=..., ${env_var} or $OCCRECON_DATA (expects $OCCRECON_DATA/{default_folder}). {how_to_get}"
        raise MissingAssetError(f"<{what} root>", what, hint)
    if not path.is_dir():
        raise MissingAssetError(path, f"{what} folder", how_to_get)
    return path


# --------------------------------------------------------------------------- crop boxes


def square_box(box: Box, margin: float = 0.0) -> Box:
    """The square around ``box``'s centre with side ``max(w, h) * (1 + 2 * margin)``.

    ``margin`` is the fraction of the side added on each side (0.2 -> 40 % larger).
    """
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin) / 2.0
    if half <= 0:
        half = 0.5
    return (cx - half, cy - half, cx + half, cy + half)


def box_from_landmarks(landmarks: np.ndarray, margin: float = 0.2) -> Box:
    """Square crop box around all ``landmarks`` ``[N, 2]`` (visible or not), see :func:`square_box`."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return square_box((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), margin)


def full_image_box(height: int, width: int) -> Box:
    """The square box centred on the image that contains all of it (short side padded)."""
    return square_box((0.0, 0.0, float(width), float(height)), 0.0)


def _box_matrix(scale: float, x0: float, y0: float, fx: float = 1.0, fy: float = 1.0) -> np.ndarray:
    """OpenCV ``2x3`` map of ``x' = scale (x - x0)`` for a source resized by ``(fx, fy)``.

    OpenCV puts pixel centres at integers, ours at ``+0.5``: ``x_cv = x - 0.5`` on both sides.
    """
    ax, ay = scale / fx, scale / fy
    return np.array([[ax, 0.0, 0.5 * ax - scale * x0 - 0.5], [0.0, ay, 0.5 * ay - scale * y0 - 0.5]])


def crop_to_box(
    image: np.ndarray, box: Box, size: int, label_map: np.ndarray | None = None, landmarks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Resample the square ``box`` of ``image`` ``[H, W, 3]`` to ``size x size`` (padding with 0).

    Labels are resampled nearest-neighbour with :data:`IGNORE_LABEL` outside the image; landmarks
    ``[N, 2]`` are mapped by the same similarity ``x' = s (x - x0)``, ``s = size / box_width``.
    """
    x0, y0, x1, _ = box
    scale = size / (x1 - x0)
    fx = fy = 1.0
    if scale < 0.5:  # area-average first so the bilinear warp does not alias
        small = cv2.resize(image, None, fx=scale * 2.0, fy=scale * 2.0, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        image = small
    matrix = _box_matrix(scale, x0, y0, fx, fy)
    out = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )
    labels_out = None
    if label_map is not None:
        labels_out = cv2.warpAffine(
            label_map.astype(np.uint8), _box_matrix(scale, x0, y0), (size, size), flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_LABEL,
        ).astype(np.int64)  # fmt: skip
    points_out = None if landmarks is None else (landmarks - np.array([x0, y0])) * scale
    return out, labels_out, points_out


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


def edge_lines_for(landmarks: torch.Tensor, image_size: int, heatmap_size: int, sigma: float) -> torch.Tensor:
    """``[13, h, w]`` edge-line heatmaps for ``[N, 2]`` landmarks given in ``image_size`` pixels.

    68 points use the LAB lines; 19 points the AFLW-19 grouping of ``occrecon.landmarks``.
    """
    lines = EDGE_LINES_AFLW19 if landmarks.shape[0] == NUM_LANDMARKS_AFLW19 else EDGE_LINES_68
    scaled = landmarks.detach().float().cpu().numpy() * (heatmap_size / image_size)
    return torch.from_numpy(edge_line_heatmaps_np(scaled, (heatmap_size, heatmap_size), sigma=sigma, lines=lines))


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


class SkipLog:
    """Counts skipped samples (path, reason) and logs one summary per split."""

    def __init__(self, split: str) -> None:
        self.split, self.items = split, []  # type: ignore[var-annotated]

    def add(self, err: BaseException) -> None:
        self.items.append(str(err))
        # the running count makes each worker's log a summary of its own skips so far
        log.warning("skipping bad sample #%d of split %r (skip_bad=True): %s", len(self.items), self.split, err)

    def summary(self, kept: int) -> None:
        if self.items:
            log.warning("%s: skipped %d bad sample(s), kept %d (skip_bad=True)", self.split, len(self.items), kept)


T = TypeVar("T")


def load_or_skip(
    load: Callable[[int], T], index: int, count: int, skip_bad: bool, substitute: bool, skipped: SkipLog
) -> T | None:
    """``load(index)``, applying the skip policy (module docstring) to DataFormatError / FileNotFoundError.

    ``skip_bad=False``: the error propagates. Else it is counted in ``skipped`` and the result is
    ``None`` or, with ``substitute``, ``load`` of the next index that works (wrapping around;
    a split where every sample fails raises DataFormatError).
    """
    for step in range(count if (skip_bad and substitute) else 1):
        try:
            return load((index + step) % count)
        except (DataFormatError, FileNotFoundError) as err:
            if not skip_bad:
                raise
            skipped.add(err)
    if substitute:
        raise DataFormatError(f"<split {skipped.split!r}>", "at least one loadable sample",
                              got=f"all {count} failed (skip_bad=True)")  # fmt: skip
    return None


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


def build_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, pin_memory: bool = False, collate_fn: Any = None
) -> DataLoader:
    """The loader every data module returns (``shuffle=True``: the training loader).

    Training loaders drop the incomplete last batch when the split has at least one full batch
    (a last batch of one sample would break BatchNorm).

    Training loaders (``shuffle=True``) are :class:`occrecon.callbacks.ResumableDataLoader`: the
    shuffle order and the worker seeds come from the global RNG (seeded by ``seed_everything``),
    which that loader saves and restores, so a run resumed at an epoch boundary or mid-epoch sees
    the same batches as an uninterrupted one (with ``num_workers=0`` the main-process augmentation
    generator is part of that saved state, see :mod:`occrecon.callbacks.resume`).
    """
    from occrecon.callbacks import ResumableDataLoader

    loader_cls = ResumableDataLoader if shuffle else DataLoader
    drop_last = shuffle and len(dataset) >= batch_size  # type: ignore[arg-type]
    return loader_cls(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate_fn,
        worker_init_fn=seed_worker, pin_memory=pin_memory, drop_last=drop_last,
    )  # fmt: skip


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's dataset its own augmentation generator.

    The worker seed (``torch``'s ``base_seed + worker_id``; ``base_seed`` is drawn from the global
    RNG each epoch) differs between workers and epochs and is reproducible under
    ``seed_everything``; the data module's ``seed`` and the distributed rank are mixed in, so no
    two workers share an augmentation stream.
    """
    from occrecon.callbacks import dataset_generators

    info = get_worker_info()
    if info is None:
        return
    for target in dataset_generators(info.dataset):  # through Subset / ConcatDataset wrappers
        target.rng = numpy_generator(target.seed, info.seed, getattr(target, "rank", 0))


def collate_skip_none(batch: list[Any]) -> Any:
    """``default_collate`` without the ``None`` entries of skipped samples (``None`` if all were)."""
    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None


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
