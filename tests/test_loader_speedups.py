"""The data loader's fast paths give the values of the independent definitions they replace (issue 18)."""

from __future__ import annotations

import math
import zipfile

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from datamodules.common import edge_lines_for
from datamodules.synthetic import colour_jitter
from datamodules.transforms import FaceAugment, flip_label_table
from occrecon.errors import DataFormatError
from occrecon.labels import CELEBAMASK_FLIP, IGNORE_LABEL
from occrecon.landmarks import EDGE_LINES_68, EDGE_LINES_AFLW19, FLIP_68, edge_line_heatmaps, edge_line_heatmaps_np
from occrecon.synth.shards import ShardReader
from occrecon.utils.io import encode_png


def test_edge_heatmap_hand_values() -> None:
    """A horizontal segment (2, 5) -> (10, 5) and a single-point line (disc) at (20.5, 20.5)."""
    points = np.array([[2.0, 5.0], [10.0, 5.0], [20.5, 20.5]], np.float32)
    heat = edge_line_heatmaps_np(points, (32, 32), sigma=1.0, lines=((0, 1), (2,)))
    # pixel (row 6, col 4): centre (4.5, 6.5), 1.5 px below the segment
    assert heat[0, 6, 4] == pytest.approx(math.exp(-(1.5**2) / 2.0), rel=1e-6)
    # pixel (row 4, col 11): centre (11.5, 4.5), nearest point the end (10, 5): d^2 = 2.25 + 0.25
    assert heat[0, 4, 11] == pytest.approx(math.exp(-2.5 / 2.0), rel=1e-6)
    assert heat[0, 8, 5] == 0.0  # centre (5.5, 8.5): d = 3.5 >= 3 sigma
    assert heat[0, 7, 5] == pytest.approx(math.exp(-(2.5**2) / 2.0), rel=1e-6)  # d = 2.5 < 3 sigma
    assert heat[1, 20, 20] == pytest.approx(1.0)  # the disc's centre pixel
    assert heat[1, 20, 22] == pytest.approx(math.exp(-4.0 / 2.0), rel=1e-6)  # 2 px right of it
    assert heat[1, :, :17].max() == 0.0 and heat[0, 12:].max() == 0.0


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
@pytest.mark.parametrize("layout", ["68", "aflw19"])
def test_edge_heatmaps_match_the_batched_definition(sigma: float, layout: str) -> None:
    """Random landmarks, partly outside the frame, some repeated (zero-length segments)."""
    rng = np.random.default_rng(int(sigma * 10) + len(layout))
    lines, count = (EDGE_LINES_68, 68) if layout == "68" else (EDGE_LINES_AFLW19, 19)
    for trial in range(10):
        points = rng.uniform(-8.0, 56.0, size=(count, 2)).astype(np.float32)
        points[5] = points[6]
        if trial == 0:
            points += 200.0  # every line outside the frame
        size = (48, 40)
        reference = edge_line_heatmaps(torch.from_numpy(points)[None], size, sigma, lines)[0].numpy()
        fast = edge_line_heatmaps_np(points, size, sigma, lines)
        assert fast.dtype == np.float32 and fast.shape == reference.shape
        np.testing.assert_allclose(fast, reference, atol=2e-6)
        assert ((fast == 0) == (reference == 0)).mean() > 0.999  # the 3 sigma cut-off: same support


def test_edge_lines_for_scales_to_the_heatmap() -> None:
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.uniform(20.0, 200.0, size=(68, 2)).astype(np.float32))
    reference = edge_line_heatmaps(points[None] * (64 / 224), (64, 64), 1.0)[0]
    torch.testing.assert_close(edge_lines_for(points, 224, 64, 1.0), reference, atol=2e-6, rtol=0)


def _reference_colour_jitter(image: np.ndarray, b: float, c: float, sat: float) -> np.ndarray:
    """The documented formula in float64, step by step: ``[H, W, 3]`` in 0..255 before rounding."""
    x = image.astype(np.float64) / 255.0
    x = (x * b - 0.5) * c + 0.5
    grey = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    x = grey[..., None] + sat * (x - grey[..., None])
    return np.clip(x, 0.0, 1.0) * 255.0


def test_colour_jitter_is_the_documented_formula() -> None:
    from skimage.data import astronaut

    image = astronaut()[::4, ::4]  # 128 x 128, public-domain photo
    grey = np.full((8, 8, 3), 77, np.uint8)
    for seed in range(6):
        jittered = colour_jitter([image, grey], np.random.default_rng(seed), 0.3)
        b, c, sat = np.random.default_rng(seed).uniform(0.7, 1.3, size=3)  # the draw colour_jitter makes
        reference = _reference_colour_jitter(image, b, c, sat)
        assert jittered[0].dtype == np.uint8 and jittered[0].shape == image.shape
        assert np.abs(jittered[0] - reference).max() <= 0.5 + 1e-4  # rounded to the nearest level
        assert (jittered[0] == np.floor(reference + 0.5)).mean() > 0.9999  # ties aside
        assert len(np.unique(jittered[1].reshape(-1, 3), axis=0)) == 1  # equal pixels stay equal


def _reference_augment(augment: FaceAugment, rng: np.random.Generator, image, labels, points, flip_labels):  # noqa: ANN001, ANN202
    """albumentations' single-target pipeline on each image / label map separately (plus our flip rules)."""
    do_flip = rng.random() < augment.flip_prob
    seed = int(rng.integers(0, 2**31 - 1))
    keypoints = A.KeypointParams(format="xy", remove_invisible=False)
    affine = A.Affine(
        scale=(0.8, 1.2), rotate=(-20, 20), translate_percent=(-0.1, 0.1), border_mode=cv2.BORDER_CONSTANT, fill=0,
        fill_mask=IGNORE_LABEL, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=1.0,
    )  # fmt: skip
    out_images, out_labels, moved = [], [], None
    for target in [*image, *labels]:
        pipeline = A.Compose([affine], keypoint_params=keypoints, seed=seed)
        is_image = target.ndim == 3
        result = pipeline(
            **({"image": target} if is_image else {"image": image[0], "mask": target}), keypoints=points - 0.5
        )
        warped = result["image"] if is_image else result["mask"]
        moved = np.asarray(result["keypoints"])[:, :2] + 0.5
        if do_flip:
            warped = warped[:, ::-1]
            moved[:, 0] = warped.shape[1] - moved[:, 0]
        (out_images if is_image else out_labels).append(warped)
    if do_flip:
        moved = moved[list(FLIP_68)]
        lut = flip_label_table(CELEBAMASK_FLIP)
        out_labels = [lut[m] if f else m for m, f in zip(out_labels, flip_labels, strict=True)]
    return out_images, out_labels, moved


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_one_call_for_all_targets_equals_albumentations_per_target(count: int) -> None:
    """``FaceAugment.apply_many`` (one albumentations call for two images and ``count`` label maps,
    stacked as the channels of one mask) gives exactly what albumentations gives on each target
    alone with the same seed."""
    from skimage.data import astronaut

    rng = np.random.default_rng(0)
    image = np.ascontiguousarray(astronaut()[::4, ::4])
    other = np.ascontiguousarray(image[::-1])
    labels = [rng.integers(0, high, size=(128, 128)).astype(np.uint8) for high in (19, 5, 2, 19, 3)][:count]
    points = rng.uniform(10.0, 118.0, size=(68, 2)).astype(np.float32)
    augment = FaceAugment(flip_prob=0.5, rotate_deg=20, scale_jitter=0.2, translate=0.1, colour_jitter=0.0,
                          label_flip=CELEBAMASK_FLIP)  # fmt: skip
    flip_labels = [True, False, False, True, False][:count]
    flips = padded = 0
    for seed in range(8):
        images, maps, moved, _ = augment.apply_many(
            [image, other], labels, points, np.ones(68, bool), np.random.default_rng(seed), flip_labels=flip_labels
        )
        ref_images, ref_maps, ref_moved = _reference_augment(
            augment, np.random.default_rng(seed), [image, other], labels, points, flip_labels
        )
        flips += int(np.random.default_rng(seed).random() < 0.5)
        for got, want in zip([*images, *maps], [*ref_images, *ref_maps], strict=True):
            np.testing.assert_array_equal(got, want)
        assert all(m.dtype == np.int64 for m in maps)
        padded += int((maps[-1] == IGNORE_LABEL).any())
        np.testing.assert_allclose(moved, ref_moved, atol=1e-4)
    assert 0 < flips < 8 and padded > 0  # both flip branches and the border fill were compared


def test_shard_pngs_decode_to_the_stored_arrays(tmp_path) -> None:  # noqa: ANN001
    """OpenCV decodes the shard's PNGs (written by PIL) to the exact arrays, in RGB order."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)  # a pure red pixel: catches a BGR/RGB swap
    labels = rng.integers(0, 19, size=(16, 16), dtype=np.uint8)
    path = tmp_path / "shard-00000.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("I_in/0000000.png", encode_png(rgb))
        archive.writestr("parsing_in/0000000.png", encode_png(labels))
        archive.writestr("I_gt/0000000.png", b"\x89PNG\r\n\x1a\n not a png")
    reader = ShardReader(str(path), 0, 1, 16, 8, 10)
    decoded = reader.image("I_in", 0)
    np.testing.assert_array_equal(decoded, rgb)
    assert decoded.dtype == np.uint8 and tuple(decoded[0, 0]) == (255, 0, 0)
    np.testing.assert_array_equal(reader.image("parsing_in", 0), labels)
    with pytest.raises(DataFormatError, match=r"shard-00000.zip.*I_gt/0000000.png"):
        reader.image("I_gt", 0)
    with pytest.raises(DataFormatError, match="parsing_gt/0000000.png"):
        reader.image("parsing_gt", 0)
