"""Square face crop boxes and the crop that resamples a box to the ``S x S`` sample.

Frames follow ``CONVENTIONS.md``: continuous pixel coordinates ``(x, y)``, origin at the top-left
corner of the top-left pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from occrecon.labels import IGNORE_LABEL

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in continuous pixel coordinates."""


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
