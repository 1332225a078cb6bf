"""File IO shared by every data module and the generator: atomic writes and robust image reads."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from occrecon.errors import DataFormatError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    A crash or exception inside the ``with`` block leaves ``path`` untouched (nothing
    half-written is ever visible under the final name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _open_image(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()  # decode now so a truncated file fails here, naming the file
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataFormatError(path, "a readable image file", got=f"{type(err).__name__}: {err}") from err
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` RGB of shape ``[H, W, 3]``.

    EXIF orientation is applied; grayscale, palette, RGBA (alpha dropped over black) and 16-bit
    inputs are converted. A missing file raises ``FileNotFoundError``; an unreadable or
    truncated one raises :class:`DataFormatError` naming the file.
    """
    path = Path(path)
    image = ImageOps.exif_transpose(_open_image(path))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max() > 255 else 255.0
        array = np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_label_map(path: str | Path) -> np.ndarray:
    """Read a single-channel label/mask PNG as ``int64`` of shape ``[H, W]``.

    8-bit, 16-bit, palette (indices kept) and RGB files whose three channels are equal are
    accepted; an RGB file with differing channels raises :class:`DataFormatError`.
    """
    path = Path(path)
    image = _open_image(path)
    if image.mode in ("RGB", "RGBA"):
        array = np.asarray(image)[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise DataFormatError(path, "a single-channel label map", got=f"a colour image (mode {image.mode})")
        return array[..., 0].astype(np.int64)
    if image.mode == "LA":
        return np.asarray(image)[..., 0].astype(np.int64)
    return np.asarray(image).astype(np.int64)


def encode_png(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` ``[H, W]``/``[H, W, 3]`` or ``uint16`` ``[H, W]`` array as PNG bytes.

    The encoding is deterministic (same array, same bytes).
    """
    if array.dtype == np.uint16:
        image = Image.fromarray(array, mode=None)
    elif array.dtype == np.uint8:
        image = Image.fromarray(array)
    else:
        raise TypeError(f"encode_png needs uint8 or uint16, got {array.dtype}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an array as PNG atomically (see :func:`encode_png`)."""
    atomic_write_bytes(path, encode_png(array))
