"""Detected 68-point landmarks for data sets without annotations, cached per image.

``L_land`` (Eq. 4) needs landmarks; CelebAMask-HQ has none. :func:`cached_landmarks` runs the
face-api ports (:class:`occrecon.faces.detect.FaceDetector`, largest face) once per image and
keeps the result in ``<cache>/<key>.npy`` (``[68, 3]`` float32: ``x, y, visible``), so later
epochs and worker processes read a 816-byte file instead of running two networks. A photo
without a detected face is cached too, with every point invisible (``L_land`` then skips it).
Coordinates follow ``CONVENTIONS.md`` in the frame of the image given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_DETECTORS: dict[float, object] = {}


def default_cache(name: str) -> Path:
    """``<occrecon cache>/landmarks/<name>`` (:func:`occrecon.assets.cache.cache_dir`)."""
    from occrecon.assets.cache import cache_dir

    return cache_dir() / "landmarks" / name


def _detector(min_face_size: float):  # noqa: ANN202 - FaceDetector, imported lazily
    if min_face_size not in _DETECTORS:  # one per process (data-loader workers build their own)
        import torch

        from occrecon.faces.detect import FaceDetector

        torch.set_num_threads(1)
        _DETECTORS[min_face_size] = FaceDetector(min_face_size=min_face_size)
    return _DETECTORS[min_face_size]


def cached_landmarks(
    image: np.ndarray, key: str, cache: str | Path, min_face_size: float = 40.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(landmarks [68, 2] float32, visible [68] bool)`` of the largest face of ``image`` (``[H, W, 3]`` uint8).

    ``key`` names the image uniquely within ``cache`` (include the image size if it can change).
    """
    path = Path(cache) / f"{key}.npy"
    if path.is_file():
        stored = np.load(path)
    else:
        faces = _detector(min_face_size).detect(image)
        stored = np.zeros((68, 3), np.float32)
        if faces:
            largest = max(faces, key=lambda f: f.size)
            stored[:, :2], stored[:, 2] = largest.landmarks, 1.0
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{np.random.randint(1 << 30)}.tmp.npy")
        np.save(partial, stored)
        partial.replace(path)  # atomic: concurrent workers never read half a file
    return stored[:, :2].astype(np.float32), stored[:, 2] > 0.5
