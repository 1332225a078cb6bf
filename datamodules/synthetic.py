"""The embedded default data set: synthetic occluded faces with ground truth for every stage.

``SyntheticDataModule`` serves any subset of the fields of ``occrecon.synth`` (``docs/synthetic.md``)
as tensors, split into train/val/test **by identity** (``occrecon.synth.reader.identity_splits``:
no person in two splits). When ``root`` holds no data set yet, :meth:`prepare_data` generates one
with the ``synth_*`` settings (printing a message), so the default experiment needs no manual step.

Sample layout (keys present only when requested; ``S`` = ``image_size``, default the stored size):

* ``I_in``, ``I_gt`` ``[3, S, S]`` float32 RGB in ``[0, 1]``; ``image`` is ``I_in`` (alias);
* ``parsing_in``, ``parsing_gt`` ``[S, S]`` int64 (CelebAMask-HQ 19 classes, 255 outside the image
  after augmentation); ``label_map`` is ``parsing_in``;
* ``occluders`` ``[S, S]`` int64 codes (255 outside the source image after augmentation); ``occluder_mask``, ``face_mask`` ``[1, S, S]`` float in {0, 1};
* ``landmarks`` ``[68, 2]`` float32 pixels, ``landmark_visible`` (alias ``visibility``) ``[68]`` bool
  (points leaving the frame become invisible), ``landmark_occluded`` ``[68]`` bool;
* ``edge_lines`` ``[13, h, h]`` float32 in ``[0, 1]`` (redrawn from the augmented landmarks);
* ``depth_coarse``, ``depth_detail`` ``[1, S, S]`` float32 (decimetres, 0 off the face);
  ``normals`` ``[3, S, S]`` float32; ``bump`` ``[1, S, S]`` float32 = uint8 code / 255;
* ``coeffs`` ``[D]``, ``camera_pose`` ``[6]`` float32; ``identity``, ``image_index``, ``index`` int64;
  ``glasses`` int64; ``hand``, ``hair`` bool.

Augmentation (train split, ``augment=True``) is ``datamodules.transforms.FaceAugment`` (geometry and
flip), applied with one generator state to ``I_in``/``parsing_in``, ``I_gt``/``parsing_gt`` and
``occluders`` so all stay aligned; a flip remaps ``l_``/``r_`` labels and landmark indices. Colour
jitter is a per-pixel function (:func:`colour_jitter`: brightness, contrast about mid-grey,
saturation) applied with the same factors to ``I_in`` and ``I_gt``: a contrast about the *image
mean* (albumentations' ``ColorJitter``) would shift unoccluded pixels of ``I_in`` and ``I_gt``
differently, breaking "``I_in`` = ``I_gt`` outside the occluders". 3D targets (depth, normals,
bump) are not image-space augmentable: requesting them with ``augment=True`` raises ConfigError.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.edge_heatmaps import edge_lines_for
from datamodules.loaders import SkipLog, build_loader, collate_skip_none, load_or_skip
from datamodules.transforms import FaceAugment
from occrecon.errors import ConfigError
from occrecon.labels import CELEBAMASK_FLIP
from occrecon.synth.reader import ALL_FIELDS, SPLITS, SyntheticDataset, identity_splits, manifest_status
from occrecon.utils.seeding import numpy_generator

DEFAULT_FIELDS: tuple[str, ...] = (
    "I_in", "I_gt", "parsing_in", "parsing_gt", "occluder_mask", "landmarks", "landmark_visible", "edge_lines",
)  # fmt: skip
NOT_AUGMENTABLE: tuple[str, ...] = ("depth_coarse", "depth_detail", "normals", "bump")
_IMAGES, _MAPS_HWC = ("I_in", "I_gt"), ("normals",)
_SCALAR_MAPS = ("depth_coarse", "depth_detail")
_LABELS = ("parsing_in", "parsing_gt", "occluders", "occluder_mask", "face_mask")
_PER_PIXEL = ("parsing_in", "parsing_gt", "occluders", "occluder_mask", "face_mask", "bump", "normals", *_SCALAR_MAPS)


def colour_jitter(images: list[np.ndarray], rng: np.random.Generator, strength: float) -> list[np.ndarray]:
    """Jitter ``[H, W, 3]`` uint8 images with one draw of per-pixel colour factors.

    ``x -> ((x * b - 0.5) * c + 0.5)``, then saturation ``g + s (x - g)`` with ``g`` the pixel's grey
    value; ``b, c, s`` uniform in ``[1 - strength, 1 + strength]``; clipped to ``[0, 1]`` and rounded
    to uint8. Equal input pixels stay equal. The whole map is one affine colour transform
    ``y = M x + t``, applied in float32 by ``cv2.transform``.
    """
    b, c, sat = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    mix = sat * np.eye(3) + (1.0 - sat) * np.array([[0.299, 0.587, 0.114]])  # rows sum to 1
    # in 0..255 units: y = mix @ (b c x + 127.5 (1 - c))
    matrix = np.concatenate([mix * (b * c), np.full((3, 1), 127.5 * (1.0 - c))], axis=1).astype(np.float32)
    return [
        (np.clip(cv2.transform(image.astype(np.float32), matrix), 0.0, 255.0) + 0.5).astype(np.uint8)
        for image in images
    ]


def default_root() -> Path:
    """``$OCCRECON_SYNTH``, else ``$OCCRECON_DATA/synth``, else ``data/synth``."""
    if os.environ.get("OCCRECON_SYNTH"):
        return Path(os.environ["OCCRECON_SYNTH"])
    if os.environ.get("OCCRECON_DATA"):
        return Path(os.environ["OCCRECON_DATA"]) / "synth"
    return Path("data/synth")


class SyntheticFaces(Dataset):
    """One split of the synthetic data set as tensors (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        indices: Sequence[int],
        fields: Sequence[str],
        augment: FaceAugment | None,
        heatmap_size: int,
        sigma: float,
        seed: int,
        colour: float = 0.0,
        image_size: int | None = None,
        skip_bad: bool = False,
        split: str = "",
    ) -> None:
        self.fields = tuple(fields)
        # skip policy of datamodules.loaders: training samples are replaced, evaluation ones dropped
        self.skip_bad, self.substitute, self.skipped = skip_bad, split == "train", SkipLog(split)
        stored = set(self.fields)
        if augment is not None and "edge_lines" in stored:  # redrawn from the augmented landmarks
            stored = (stored - {"edge_lines"}) | {"landmarks"}
        self.data = SyntheticDataset(root, fields=tuple(f for f in ALL_FIELDS if f in stored))
        self.indices, self.augment = list(indices), augment
        self.colour = colour
        self.heatmap_size, self.sigma, self.seed = heatmap_size, sigma, seed
        self.size = self.data.size if image_size is None else int(image_size)
        self.rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _augment(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply one augmentation draw to every image, map and the landmarks of ``raw`` (one
        albumentations call for all of them; the flip remaps the labels of the parsings only)."""
        if self.rng is None:
            self.rng = numpy_generator(self.seed, "main")
        points, vis = raw.get("landmarks"), raw.get("landmark_visible")
        image_keys = [key for key in _IMAGES if key in raw]
        label_keys = [key for key in _LABELS if key in raw]
        images = [raw[key] for key in image_keys] or [np.zeros((self.size, self.size, 3), np.uint8)]
        images, labels, moved, moved_vis = self.augment.apply_many(  # type: ignore[union-attr]
            images, [raw[key] for key in label_keys], points, vis, self.rng,
            flip_labels=[key.startswith("parsing") for key in label_keys],
        )  # fmt: skip
        raw.update(zip(image_keys, images, strict=False))
        for key, value in zip(label_keys, labels, strict=True):
            # masks: outside the source image is "not occluder" / "not face"
            raw[key] = value if key.startswith(("parsing", "occluders")) else (value == 1)
        if self.colour > 0:
            keys = [k for k in _IMAGES if k in raw]
            for key, image in zip(keys, colour_jitter([raw[k] for k in keys], self.rng, self.colour), strict=True):
                raw[key] = image
        if points is not None:
            raw["landmarks"] = moved
            if vis is not None:
                raw["landmark_visible"] = moved_vis
        return raw

    def __getitem__(self, item: int) -> dict[str, Any] | None:
        raw = load_or_skip(lambda i: self.data[self.indices[i]], item, len(self.indices), self.skip_bad,
                           self.substitute, self.skipped)  # fmt: skip
        if raw is None:
            return None
        if self.size != self.data.size:
            raw = self._resize(raw)
        if self.augment is not None:
            raw = self._augment(raw)
        return self._to_tensors(raw)

    def _resize(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Resample every map to ``image_size``: images by area (down) / bilinear (up), everything
        else nearest-neighbour (labels, codes and depths keep exact stored values); landmarks scale
        by ``image_size / size`` (exact in the corner-origin pixel frame)."""
        scale = self.size / self.data.size
        smooth = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        for key, value in raw.items():
            if key in _IMAGES:
                raw[key] = cv2.resize(value, (self.size, self.size), interpolation=smooth)
            elif key in _PER_PIXEL:  # nearest-neighbour copies stored values: float16 ones stay exact in
                # float32 (what _to_tensors serves), booleans are resampled as their 0/1 bytes
                source = value.view(np.uint8) if value.dtype == np.bool_ else value
                source = source.astype(np.float32) if source.dtype == np.float16 else source
                resized = cv2.resize(source, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
                raw[key] = resized.view(np.bool_) if value.dtype == np.bool_ else resized
            elif key == "landmarks":
                raw[key] = (value * scale).astype(np.float32)
        return raw

    def _to_tensors(self, raw: dict[str, np.ndarray]) -> dict[str, Any]:
        size = self.size
        out: dict[str, Any] = {}
        for key, value in raw.items():  # one copy each: decoded arrays may be read-only, shard rows are views
            if key in _IMAGES:
                out[key] = torch.from_numpy(value.astype(np.float32)).permute(2, 0, 1).div_(255.0)
            elif key in _MAPS_HWC:
                out[key] = torch.from_numpy(value.astype(np.float32)).permute(2, 0, 1)
            elif key in _SCALAR_MAPS or key in ("occluder_mask", "face_mask"):
                out[key] = torch.from_numpy(value.astype(np.float32))[None]
            elif key == "bump":
                out[key] = torch.from_numpy(value.astype(np.float32))[None].div_(255.0)
            elif key in ("parsing_in", "parsing_gt", "occluders", "glasses"):
                out[key] = torch.from_numpy(np.asarray(value).astype(np.int64))
            elif key == "edge_lines" and self.augment is None:
                out[key] = torch.from_numpy(value.astype(np.float32)).div_(255.0)
            else:
                array = np.array(value)  # keeps 0-d scalars 0-d
                out[key] = torch.from_numpy(array.astype(np.float32) if array.dtype == np.float16 else array)
        if "landmarks" in out:
            pts = out["landmarks"].float()
            inside = (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
            if "landmark_visible" in out:
                out["landmark_visible"] = out["landmark_visible"].bool() & inside
            if "edge_lines" in self.fields and self.augment is not None:
                out["edge_lines"] = edge_lines_for(pts, size, self.heatmap_size, self.sigma)
        out = {k: v for k, v in out.items() if k in self.fields}
        for alias, source in (("image", "I_in"), ("label_map", "parsing_in"), ("visibility", "landmark_visible")):
            if source in out:
                out[alias] = out[source]
        return out


class SyntheticDataModule(L.LightningDataModule):
    """The synthetic occluded-face data set (generated on first use).

    Args:
        root: data set folder (default :func:`default_root`).
        image_size: side of the served samples (``None``: the stored size); images are resampled
            by area / bilinear, every other map nearest-neighbour, landmarks scaled.
        fields: fields to serve (default :data:`DEFAULT_FIELDS`; any of ``occrecon.synth.reader.ALL_FIELDS``).
        batch_size, num_workers, pin_memory, seed: loader settings (``seed`` drives the per-worker
            augmentation generators; the shuffle follows the global seed, see ``build_loader``).
        augment: augment the train split (see the module docstring); ``flip_prob``, ``rotate_deg``,
            ``scale_jitter``, ``translate``, ``colour_jitter``: its strengths.
        val_fraction, test_fraction: share of identities in val / test.
        heatmap_size, sigma: edge-line heatmaps redrawn after augmentation.
        generate: generate the data set when ``root`` is absent or empty, or finish an interrupted
            generation there (else raise). A non-empty folder that is not a data set of ours (no
            manifest, an empty or non-JSON one) raises DataFormatError: nothing is written into it.
        skip_bad: skip and count samples that fail to load (NaN values, corrupt shards), as the
            real data sets do (``datamodules.common``).
        shuffle: shuffle the train split every epoch (``False``: stored order, e.g. to compare a
            DDP run with one process of the same global batch; such a loader is not resumable mid-epoch).
        synth_n, synth_size, synth_seed, synth_workers, synth_options: generator settings
            (``synth_options``: further ``occrecon.synth.config.SynthConfig`` keys).
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int | None = None,
        fields: Sequence[str] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
        flip_prob: float = 0.5,
        rotate_deg: float = 10.0,
        scale_jitter: float = 0.05,
        translate: float = 0.03,
        colour_jitter: float = 0.1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        heatmap_size: int = 64,
        sigma: float = 1.0,
        generate: bool = True,
        synth_n: int = 256,
        synth_size: int = 128,
        synth_seed: int = 0,
        synth_workers: int | None = None,
        synth_options: dict[str, Any] | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        skip_bad: bool = False,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.skip_bad, self.shuffle = skip_bad, shuffle
        self.root = Path(root) if root else default_root()
        self.image_size = image_size  # serve at this side (None: the stored size)
        self.fields = tuple(DEFAULT_FIELDS if fields is None else fields)
        unknown = [f for f in self.fields if f not in ALL_FIELDS]
        if unknown:
            raise ConfigError(f"unknown synthetic fields {unknown}; choose from {list(ALL_FIELDS)}")
        blocked = [f for f in self.fields if f in NOT_AUGMENTABLE]
        if augment and blocked:
            raise ConfigError(
                f"fields {blocked} are 3D targets that image-space augmentation would corrupt; set augment=false"
            )
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.augment_options = {
            "flip_prob": flip_prob,
            "rotate_deg": rotate_deg,
            "scale_jitter": scale_jitter,
            "translate": translate,
            "colour_jitter": colour_jitter,
        }
        self.augment_train, self.val_fraction, self.test_fraction = augment, val_fraction, test_fraction
        self.heatmap_size, self.sigma, self.generate = heatmap_size, sigma, generate
        self.synth = {"n": synth_n, "size": synth_size, "seed": synth_seed, **(synth_options or {})}
        self.synth_workers = synth_workers
        self.datasets: dict[str, SyntheticFaces] = {}

    def prepare_data(self) -> None:
        """Generate the data set (or finish an interrupted generation) when ``root`` has no complete one.

        A complete data set already in ``root`` is used as it is, whatever the ``synth_*`` settings
        (its manifest records the config it was made with).
        """
        from occrecon.synth.config import SynthConfig
        from occrecon.synth.dataset_writer import generate_dataset

        status = manifest_status(self.root)  # raises for a folder that is not ours: never written into
        if status == "complete":
            return
        if not self.generate:
            return  # setup() raises the reader's error naming what is missing
        config = SynthConfig.from_dict(self.synth)
        verb = "finishing the interrupted generation" if status == "interrupted" else "not found"
        print(
            f"synthetic data set {verb} in {self.root}: generating {config.n} samples at {config.size} px (seed {config.seed}) ..."
        )
        generate_dataset(config, self.root, workers=self.synth_workers)

    def split_indices(self, split: str) -> list[int]:
        """Sample indices of ``split`` (all pictures of the identities assigned to it)."""
        identities = SyntheticDataset(self.root, fields=()).identities.tolist()
        assignment = identity_splits(identities, self.val_fraction, self.test_fraction)
        return [i for i, ident in enumerate(identities) if assignment[ident] == split]

    def setup(self, stage: str | None = None) -> None:
        if self.generate:  # used without a Trainer; a no-op when prepare_data already ran
            self.prepare_data()
        for split in SPLITS:
            if split in self.datasets:
                continue
            train = split == "train" and self.augment_train
            options = {k: v for k, v in self.augment_options.items() if k != "colour_jitter"}
            augment = FaceAugment(label_flip=CELEBAMASK_FLIP, colour_jitter=0.0, **options) if train else None
            colour = self.augment_options["colour_jitter"] if train else 0.0
            self.datasets[split] = SyntheticFaces(
                self.root,
                self.split_indices(split),
                self.fields,
                augment,
                self.heatmap_size,
                self.sigma,
                self.seed,
                colour,
                self.image_size,
                self.skip_bad,
                split,
            )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        return build_loader(
            self.datasets[split], self.batch_size, shuffle, self.num_workers, self.pin_memory, collate_skip_none
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
