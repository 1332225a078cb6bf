"""Finding and reading user photos (shared by ``occrecon reconstruct`` and ``datamodules.images``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def collect_images(inputs: str | Path | list[str | Path]) -> list[Path]:
    """Files as given plus the images directly inside given folders (sorted); missing paths are kept
    so that the caller reports them."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(path)
    return paths


def read_photo(path: str | Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB (EXIF orientation applied); raises ``OSError``/``ValueError`` if unreadable."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB")).copy()
