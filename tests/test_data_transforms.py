"""Augmentation: geometry of image/labels/keypoints stays consistent; flips swap sides; seeding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import landmarks68
from torch.utils.data import DataLoader

from datamodules.common import IGNORE_LABEL, FaceDataset, RawSample, Record, collate_skip_none, seed_worker
from datamodules.transforms import FaceAugment, flip_landmark_order
from occrecon.errors import ShapeError
from occrecon.labels import CELEBAMASK, CELEBAMASK_FLIP
from occrecon.landmarks import FLIP_AFLW19

SIZE = 64


def eye_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, order-A labels and 68 landmarks where the eye labels sit on the eye landmarks.

    The image-left eye (points 36-41, the subject's right: label r_eye) is drawn red, the image-right
    eye (l_eye) green.
    """
    points = landmarks68((SIZE / 2, SIZE / 2), SIZE / 4)
    image = np.full((SIZE, SIZE, 3), 90, np.uint8)
    labels = np.full((SIZE, SIZE), CELEBAMASK["skin"], np.int64)
    for group, label, colour in ((range(36, 42), "r_eye", (255, 0, 0)), (range(42, 48), "l_eye", (0, 255, 0))):
        lo = np.floor(points[list(group)].min(0)).astype(int)
        hi = np.ceil(points[list(group)].max(0)).astype(int)
        labels[lo[1] : hi[1], lo[0] : hi[0]] = CELEBAMASK[label]
        image[lo[1] : hi[1], lo[0] : hi[0]] = colour
    return image, labels, points


def label_at(labels: np.ndarray, point: np.ndarray) -> int:
    return int(labels[int(point[1]), int(point[0])])


def test_flip_moves_eye_labels_and_landmarks_to_the_mirrored_features() -> None:
    image, labels, points = eye_sample()
    augment = FaceAugment(
        flip_prob=1.0, rotate_deg=0, scale_jitter=0, translate=0, colour_jitter=0, label_flip=CELEBAMASK_FLIP
    )
    out, out_labels, out_points, vis = augment(image, labels, points, np.ones(68, bool), np.random.default_rng(0))
    # the image-left eye of the flipped image is the old image-right (green) eye, mirrored
    left_eye = out_points[36:42].mean(0)
    assert left_eye[0] < SIZE / 2
    np.testing.assert_allclose(
        out_points[36:42].mean(0), [SIZE - points[42:48, 0].mean(), points[42:48, 1].mean()], atol=1e-4
    )
    assert label_at(out_labels, left_eye) == CELEBAMASK["r_eye"]
    assert label_at(out_labels, out_points[42:48].mean(0)) == CELEBAMASK["l_eye"]
    assert tuple(out[int(left_eye[1]), int(left_eye[0])]) == (0, 255, 0)
    # the old r_eye region (red) now carries l_eye and sits under points 42-47
    right_eye = out_points[42:48].mean(0)
    assert tuple(out[int(right_eye[1]), int(right_eye[0])]) == (255, 0, 0)
    assert vis.all() and out_points.shape == (68, 2)


def test_flip_is_an_involution_for_landmarks_and_labels() -> None:
    image, labels, points = eye_sample()
    augment = FaceAugment(
        flip_prob=1.0, rotate_deg=0, scale_jitter=0, translate=0, colour_jitter=0, label_flip=CELEBAMASK_FLIP
    )
    rng = np.random.default_rng(0)
    once = augment(image, labels, points, np.ones(68, bool), rng)
    twice = augment(*once, rng)
    np.testing.assert_allclose(twice[2], points, atol=1e-4)
    np.testing.assert_array_equal(twice[1], labels)
    np.testing.assert_array_equal(twice[0], image)


def test_rotation_keeps_landmarks_on_their_features_and_pads_labels_with_ignore() -> None:
    image, labels, points = eye_sample()
    augment = FaceAugment(
        flip_prob=0.0, rotate_deg=40, scale_jitter=0.2, translate=0.1, colour_jitter=0, label_flip=CELEBAMASK_FLIP
    )
    rng = np.random.default_rng(5)
    for _ in range(5):
        _, out_labels, out_points, _ = augment(image, labels, points, np.ones(68, bool), rng)
        assert label_at(out_labels, out_points[36:42].mean(0)) == CELEBAMASK["r_eye"]
        assert label_at(out_labels, out_points[42:48].mean(0)) == CELEBAMASK["l_eye"]
    # a 40 degree rotation of a full-frame map must bring in unannotated corners
    assert (out_labels == IGNORE_LABEL).any()


def test_keypoints_leaving_the_frame_are_kept_and_moved_with_the_others() -> None:
    """A point far outside the frame (albumentations drops such points by default) stays in its
    slot and follows the same similarity as the in-frame points: the affine map fitted to the
    other 67 points predicts where it goes. A pure flip sends it to slot 16 at x = 64 + 30."""
    image, labels, points = eye_sample()
    points = points.copy()
    points[0] = (-30.0, 10.0)
    flip = FaceAugment(flip_prob=1.0, rotate_deg=0, scale_jitter=0, translate=0, colour_jitter=0)
    _, _, flipped, _ = flip(image, labels, points, np.ones(68, bool), np.random.default_rng(0))
    np.testing.assert_allclose(flipped[16], [SIZE + 30.0, 10.0], atol=1e-3)  # point 0 is the jaw end: slot 16
    augment = FaceAugment(flip_prob=0.0, rotate_deg=30, scale_jitter=0.3, translate=0.2)
    rng = np.random.default_rng(1)
    homogeneous = np.concatenate([points, np.ones((68, 1))], axis=1)
    for _ in range(10):
        _, _, out_points, vis = augment(image, labels, points, np.ones(68, bool), rng)
        assert out_points.shape == (68, 2) and vis.shape == (68,)
        affine, *_ = np.linalg.lstsq(homogeneous[1:], out_points[1:], rcond=None)  # [3, 2] from 67 points
        assert np.abs(out_points[1:] - homogeneous[1:] @ affine).max() < 1e-2  # it is one affine map
        np.testing.assert_allclose(out_points[0], homogeneous[0] @ affine, atol=2e-2)
        assert np.abs(out_points[0] - points[0]).max() > 0.5  # and it did move


def test_aflw_flip_order_and_unknown_layout() -> None:
    assert flip_landmark_order(19) == FLIP_AFLW19
    with pytest.raises(ShapeError):
        flip_landmark_order(5)


def _dataset(seed: int = 0) -> FaceDataset:
    image, labels, points = eye_sample()

    def load(record: Record) -> RawSample:
        return RawSample(
            image=image, box=(0.0, 0.0, SIZE, SIZE), label_map=labels, landmarks=points, visibility=np.ones(68, bool)
        )

    records = [Record(id=str(i), image=Path(f"{i}.png")) for i in range(4)]
    augment = FaceAugment(label_flip=CELEBAMASK_FLIP)
    return FaceDataset(records, load, image_size=32, augment=augment, heatmap_size=16, seed=seed)


def _epoch(seed: int, workers: int, rank: int = 0) -> list[torch.Tensor]:
    """Per sample: landmarks and image pixels flattened together (both must follow the seed)."""
    dataset = _dataset(seed)
    dataset.rank = rank
    loader = DataLoader(
        dataset, batch_size=1, num_workers=workers, worker_init_fn=seed_worker,
        collate_fn=collate_skip_none, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    return [torch.cat([batch["landmarks"][0].flatten(), batch["image"][0].flatten()]) for batch in loader]


def test_two_workers_never_produce_identical_augmentations_and_seed_reproduces() -> None:
    first = _epoch(seed=3, workers=2)  # all four samples are the same raw sample
    # worker 0 gets samples 0 and 2, worker 1 samples 1 and 3: compare across workers
    assert not torch.allclose(first[0], first[1]) and not torch.allclose(first[2], first[3])
    again = _epoch(seed=3, workers=2)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)
    other = _epoch(seed=4, workers=2)
    assert not torch.allclose(first[0], other[0])
    other_rank = _epoch(seed=3, workers=2, rank=1)  # DDP: same seed, another rank
    assert not any(torch.allclose(x, y) for x in first for y in other_rank)


def test_main_process_stream_is_reproducible_from_the_seed() -> None:
    a, b = _epoch(seed=1, workers=0), _epoch(seed=1, workers=0)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    assert not torch.allclose(a[0], a[1])  # successive draws differ
