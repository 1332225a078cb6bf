"""The one augmentation module of every data set (albumentations): scale/rotate/shift, flip, colour.

Applied after the crop to the face box (``datamodules.crops.crop_to_box``), on the ``S x S``
crop. Image, label map and keypoints go through the same albumentations call, so they stay
consistent. Details:

* Coordinates: albumentations puts pixel centres at integers; occrecon at ``+0.5``
  (``CONVENTIONS.md``). Keypoints are shifted by ``-0.5`` going in and ``+0.5`` coming out, which
  makes its flip ``x -> (W - 1) - x`` our ``x -> W - x``.
* Keypoints are never dropped (``remove_invisible=False``); points that leave the frame are marked
  invisible by ``assemble_sample``.
* Horizontal flip swaps left/right: landmark order through ``FLIP_68`` / ``FLIP_AFLW19`` and labels
  through the data set's table (``CELEBAMASK_FLIP`` / ``HELEN_FLIP``). A flip mirrors the face, so
  every side convention swaps: the iBUG order (image side), CelebAMask-HQ's ``l_``/``r_`` (the
  subject's side) and Helen's (the viewer's side); see ``occrecon.labels``.
* Pixels that come from outside the crop get image 0 and label ``IGNORE_LABEL``.
* Randomness comes only from the ``numpy.random.Generator`` passed in (one per worker, see
  ``datamodules.loaders.seed_worker``): the same generator state gives the same augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

from occrecon.errors import ShapeError
from occrecon.labels import IGNORE_LABEL
from occrecon.landmarks import FLIP_68, FLIP_AFLW19

_FLIP_BY_COUNT: dict[int, tuple[int, ...]] = {len(FLIP_68): FLIP_68, len(FLIP_AFLW19): FLIP_AFLW19}


def flip_landmark_order(count: int) -> tuple[int, ...]:
    """Flip permutation for a landmark layout with ``count`` points (68 or 19)."""
    if count not in _FLIP_BY_COUNT:
        raise ShapeError("landmarks", "[68, 2] or [19, 2] (layouts with a flip permutation)", (count, 2))
    return _FLIP_BY_COUNT[count]


def flip_label_table(table: Sequence[int]) -> np.ndarray:
    """A 256-entry lookup table applying ``table`` to labels (255 and unlisted values unchanged)."""
    lut = np.arange(256, dtype=np.int64)
    lut[: len(table)] = np.asarray(table, dtype=np.int64)
    return lut


class FaceAugment:
    """Random similarity + flip + colour jitter on a cropped sample.

    Args:
        flip_prob: probability of a horizontal flip.
        rotate_deg: rotation drawn uniformly in ``[-rotate_deg, rotate_deg]`` degrees.
        scale_jitter: scale drawn in ``[1 - scale_jitter, 1 + scale_jitter]``.
        translate: shift drawn in ``[-translate, translate]`` of the image side.
        colour_jitter: brightness/contrast/saturation strength (hue gets a quarter of it).
        label_flip: ``label -> label after flip`` table, or ``None`` when there are no labels.
    """

    def __init__(
        self,
        flip_prob: float = 0.5,
        rotate_deg: float = 15.0,
        scale_jitter: float = 0.1,
        translate: float = 0.05,
        colour_jitter: float = 0.2,
        label_flip: Sequence[int] | None = None,
    ) -> None:
        self.flip_prob = flip_prob
        self.label_lut = None if label_flip is None else flip_label_table(label_flip)
        keypoints = A.KeypointParams(format="xy", remove_invisible=False)
        transforms: list[A.BasicTransform] = [
            A.Affine(
                scale=(1.0 - scale_jitter, 1.0 + scale_jitter), rotate=(-rotate_deg, rotate_deg),
                translate_percent=(-translate, translate), border_mode=cv2.BORDER_CONSTANT, fill=0,
                fill_mask=IGNORE_LABEL, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=1.0,
            )
        ]  # fmt: skip
        if colour_jitter > 0:
            c = colour_jitter
            transforms.append(A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 4.0, p=1.0))
        self.geometry = A.Compose(transforms, keypoint_params=keypoints, seed=0)
        self.flip = A.Compose([A.HorizontalFlip(p=1.0)], keypoint_params=keypoints, seed=0)

    def __call__(
        self,
        image: np.ndarray,
        label_map: np.ndarray | None,
        landmarks: np.ndarray | None,
        visibility: np.ndarray | None,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Augment ``image`` ``[S, S, 3]`` uint8, ``label_map`` ``[S, S]``, ``landmarks`` ``[N, 2]``, ``visibility`` ``[N]``.

        Returns the four in the same layouts (``None`` stays ``None``); the landmark count never changes.
        """
        labels = [] if label_map is None else [label_map]
        images, labels, landmarks, visibility = self.apply_many([image], labels, landmarks, visibility, rng)
        return images[0], (labels[0] if labels else None), landmarks, visibility

    def apply_many(
        self,
        images: Sequence[np.ndarray],
        label_maps: Sequence[np.ndarray],
        landmarks: np.ndarray | None,
        visibility: np.ndarray | None,
        rng: np.random.Generator,
        flip_labels: Sequence[bool] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None, np.ndarray | None]:
        """One augmentation draw applied to several aligned ``images`` ``[S, S, 3]`` uint8 and
        ``label_maps`` ``[S, S]`` (values ``< 256``) in one albumentations call.

        Draws from ``rng`` exactly as :meth:`__call__` does (one flip draw, one seed), so the result
        equals calling it on each image / label map with the same generator state. ``flip_labels``:
        per label map, whether a flip remaps it through ``label_flip`` (default: all); label maps
        come back int64 with :data:`IGNORE_LABEL` where the image was left.
        """
        do_flip = bool(rng.random() < self.flip_prob)
        self.geometry.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        out = self._apply(self.geometry, images, label_maps, landmarks)
        if do_flip:
            out = self._apply(self.flip, *out)
        images, label_maps, landmarks = out
        labels = [np.asarray(label).astype(np.int64) for label in label_maps]
        if do_flip:
            if landmarks is not None:
                order = list(flip_landmark_order(landmarks.shape[0]))
                landmarks = landmarks[order]
                visibility = None if visibility is None else np.asarray(visibility)[order]
            if self.label_lut is not None:
                remap = [True] * len(labels) if flip_labels is None else flip_labels
                labels = [self.label_lut[label] if flip else label for label, flip in zip(labels, remap, strict=True)]
        return list(images), labels, landmarks, visibility

    def _apply(
        self,
        pipeline: A.Compose,
        images: Sequence[np.ndarray],
        label_maps: Sequence[np.ndarray],
        landmarks: np.ndarray | None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """``pipeline`` on the images, label maps (uint8) and landmarks (our frame, see the module docstring).

        Extra images go in as albumentations' additional ``image`` targets and the label maps as
        the channels of one mask: one call, every target warped by the same matrix (albumentations'
        ``images=`` batch path costs several times more).
        """
        extra = {f"image{i}": "image" for i in range(1, len(images))}
        if not extra.keys() <= pipeline.additional_targets.keys():
            pipeline.add_targets(extra)
        inputs: dict[str, np.ndarray] = {"image": images[0]}
        inputs.update({name: image for name, image in zip(extra, images[1:], strict=True)})
        if label_maps:
            channels = [np.asarray(label).astype(np.uint8, copy=False) for label in label_maps]
            if len(channels) == 2:  # OpenCV warps 2-channel images differently (off by a pixel): add a third
                channels.append(np.zeros_like(channels[0]))
            stacked = np.stack(channels, axis=-1)
            inputs["mask"] = stacked[..., 0] if len(label_maps) == 1 else stacked
        points = np.zeros((0, 2), np.float32) if landmarks is None else np.asarray(landmarks, np.float32) - 0.5
        out = pipeline(**inputs, keypoints=points)
        images_out = [out["image"]] + [out[name] for name in extra]
        mask = out["mask"] if label_maps else None
        labels_out = (
            [] if mask is None else [mask] if mask.ndim == 2 else [mask[..., k] for k in range(len(label_maps))]
        )
        moved = None if landmarks is None else np.asarray(out["keypoints"], dtype=np.float32)[:, :2] + 0.5
        if moved is not None and moved.shape[0] != landmarks.shape[0]:  # remove_invisible=False guarantees this
            raise ShapeError("augmented landmarks", f"[{landmarks.shape[0]}, 2]", tuple(moved.shape))
        return images_out, labels_out, moved
