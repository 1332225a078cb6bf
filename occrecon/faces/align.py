"""Align detected faces to a stage's training framing, and map results back to the photo.

Framings (``FRAMINGS``), each a similarity from the 5 points of the 68 landmarks
(:func:`occrecon.landmarks.five_points`: eye centres, nose tip, mouth corners):

- ``"deep3d"``: Deep3DFaceRecon's ``align_img`` framing, the one the coarse 3D stage's camera
  assumes (focal 1015 px at 224, ``CONVENTIONS.md``): the BFM standard 5 points ``lm3d_std``
  projected at 102 px per unit about the crop centre, ``template = c + 102 (X, -Y)`` at 224 px
  (scaled for other sizes). Deep3D fits scale + translation only (POS); here a full similarity
  is fitted (:func:`occrecon.alignment.estimate_similarity`), so in-plane roll is removed too.
- ``"celebahq"``: the CelebA-HQ / FFHQ crop (Karras et al. 2018, ``dataset_tool``): centre
  ``c = eye_avg + 0.1 eye_to_mouth``, half side ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``,
  oriented along ``eye_to_eye - rot90(eye_to_mouth)``; the framing of the 2D stages trained on
  CelebAMask-HQ (parsing, edge lines).

All matrices are ``[2, 3]`` float64 numpy maps of ``CONVENTIONS.md`` continuous pixel coordinates
(``p' = A p + t``); :func:`warp` converts them for kornia's integer-centre ``warp_affine``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from kornia.geometry.transform import warp_affine

from occrecon.alignment import estimate_similarity
from occrecon.errors import ConfigError
from occrecon.landmarks import five_points

DEEP3D_LM3D_STD = np.array(
    [[-0.3115, 0.2904, 0.1338], [0.3098, 0.2897, 0.1318], [0.0033, -0.0462, 0.5524],
     [-0.2522, -0.3813, 0.2241], [0.2485, -0.3813, 0.2224]]
)  # fmt: skip
"""Deep3D ``load_lm3d`` 5 points (left eye, right eye, nose, left/right mouth corner), BFM units."""
DEEP3D_RESCALE = 102.0
DEEP3D_SIZE = 224

FRAMINGS = ("deep3d", "celebahq")
STAGE_FRAMING = {"reconstruction": "deep3d", "synthesis": "deep3d", "pipeline": "deep3d",
                 "parsing": "celebahq", "edge_lines": "celebahq"}  # fmt: skip
"""Training framing of each stage (the CelebAMask-HQ-trained 2D stages see CelebA-HQ crops)."""


def deep3d_template(size: int = DEEP3D_SIZE) -> np.ndarray:
    """``[5, 2]`` 5-point template of the ``deep3d`` framing in a ``size`` px crop (continuous pixels)."""
    xy = DEEP3D_RESCALE * DEEP3D_LM3D_STD[:, :2] * np.array([1.0, -1.0]) + DEEP3D_SIZE / 2
    return xy * (size / DEEP3D_SIZE)


def _celebahq_matrix(points5: np.ndarray, size: int) -> np.ndarray:
    """CelebA-HQ crop as a similarity: the oriented square ``c +- x +- y`` -> ``[0, size]^2``."""
    eye_l, eye_r, _, mouth_l, mouth_r = points5
    eye_avg, mouth_avg = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # rot90 (y down)
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    corners = np.stack([c - x - y, c + x - y, c + x + y, c - x + y])  # top-left, clockwise
    target = np.array([[0, 0], [size, 0], [size, size], [0, size]], float)
    return estimate_similarity(torch.from_numpy(corners)[None], torch.from_numpy(target))[0].numpy()


def alignment_transform(landmarks68: np.ndarray, framing: str = "deep3d", size: int = DEEP3D_SIZE) -> np.ndarray:
    """``[2, 3]`` similarity taking photo pixels to the ``size`` px crop of ``framing``."""
    points = five_points(torch.as_tensor(np.asarray(landmarks68, np.float64)))
    if framing == "deep3d":
        return estimate_similarity(points[None], torch.from_numpy(deep3d_template(size)))[0].numpy()
    if framing == "celebahq":
        return _celebahq_matrix(points.numpy(), size)
    raise ConfigError(f"unknown face framing {framing!r}; expected one of {FRAMINGS}")


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``[2, 3]`` affine map."""
    a = np.linalg.inv(matrix[:, :2])
    return np.concatenate([a, -a @ matrix[:, 2:]], axis=1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``[2, 3]`` map of ``outer(inner(p))``."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], axis=1)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``[..., 2]`` points by a ``[2, 3]`` affine matrix."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: torch.Tensor, matrix: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Warp ``[B, C, H, W]`` by a continuous-pixel ``[2, 3]`` matrix to ``size = (h, w)`` (zeros outside)."""
    m = np.asarray(matrix, np.float64)
    integer = np.concatenate([m[:, :2], (m[:, 2] + m[:, :2].sum(1) * 0.5 - 0.5)[:, None]], 1)  # p_i = p_c - 0.5
    return warp_affine(image, torch.as_tensor(integer, dtype=image.dtype)[None].expand(image.shape[0], 2, 3),
                       dsize=size, mode=mode, align_corners=True)  # fmt: skip


@dataclass
class AlignedFace:
    """A face warped to a framing.

    Attributes:
        image: ``[1, 3, size, size]`` float in ``[0, 1]``.
        landmarks: ``[68, 2]`` landmarks in crop pixels.
        matrix: photo -> crop ``[2, 3]``; ``inverse``: crop -> photo.
        photo_size: ``(H, W)`` of the photo.
    """

    image: torch.Tensor
    landmarks: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    photo_size: tuple[int, int]
    framing: str

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels ``[..., 2]`` -> photo pixels."""
        return apply(self.inverse, points)

    def paste(self, crop: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Warp a crop-frame ``[B, C, size, size]`` image back onto the photo's ``[B, C, H, W]`` frame."""
        return warp(crop, self.inverse, self.photo_size, mode)


def align_face(
    photo: np.ndarray | torch.Tensor, landmarks68: np.ndarray, framing: str = "deep3d", size: int = DEEP3D_SIZE
) -> AlignedFace:
    """Warp ``photo`` (``[H, W, 3]`` uint8 RGB, or float in ``[0, 1]``) to ``framing`` at ``size`` px."""
    array = np.asarray(photo)
    image = torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1)[None].float()
    if array.dtype == np.uint8:
        image = image / 255.0
    matrix = alignment_transform(landmarks68, framing, size)
    crop = warp(image, matrix, (size, size))
    return AlignedFace(crop, apply(matrix, landmarks68).astype(np.float32), matrix, invert(matrix),
                       tuple(array.shape[:2]), framing)  # fmt: skip
