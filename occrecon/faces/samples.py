"""Public-domain photos that ship with installed packages (for tests, the notebook and the README).

- ``astronaut``: ``skimage.data.astronaut()`` (NASA, public domain), 512x512; needs scikit-image.
- ``grace_hopper``: matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy photo, public domain),
  512x600.
- ``pair``: both side by side on a 600x1024 canvas (two faces in one photo).
- ``astronaut_portrait``: the astronaut cropped to a 384x512 (W x H) portrait (non-square input).
"""

from __future__ import annotations

import numpy as np

from occrecon.errors import MissingAssetError


def astronaut() -> np.ndarray:
    """``[512, 512, 3]`` uint8 RGB (``skimage.data.astronaut()``)."""
    try:
        from skimage import data
    except ImportError as err:
        raise MissingAssetError("skimage.data.astronaut", "scikit-image", "pip install scikit-image") from err
    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    """``[600, 512, 3]`` uint8 RGB (matplotlib sample data)."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB")).copy()


def reference_images() -> dict[str, np.ndarray]:
    """The photos the face-api port is checked on (``tests/fixtures/face_api``), by name."""
    a, g = astronaut(), grace_hopper()
    pair = np.zeros((600, 1024, 3), np.uint8)
    pair[:512, :512], pair[:, 512:] = a, g
    return {"astronaut": a, "grace_hopper": g, "pair": pair, "astronaut_portrait": np.ascontiguousarray(a[:, 64:448])}
