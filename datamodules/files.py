"""Reading a real data set's files: typed format errors, the skip-or-raise choice, roots and required files.

Every bad file raises :class:`occrecon.errors.DataFormatError` naming the file (and the line for
text files), tagged with a category by :func:`format_error` for ``occrecon data check``; while
indexing with ``skip_bad=True`` the error goes to a callback instead (:func:`raise_or_report`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from occrecon.errors import DataFormatError, MissingAssetError


def format_error(
    kind: str, path: str | Path, expected: str, line: int | None = None, got: str | None = None
) -> DataFormatError:
    """A :class:`DataFormatError` tagged with ``kind`` (``corrupt``, ``labels``, ``points``, ``format``)
    so ``occrecon data check`` can count problems per category."""
    err = DataFormatError(path, expected, line=line, got=got)
    err.kind = kind  # type: ignore[attr-defined]
    return err


def error_kind(err: BaseException) -> str:
    """Category of a loading error: ``missing`` for absent files, else the tag of :func:`format_error`."""
    if isinstance(err, FileNotFoundError):
        return "missing"
    return getattr(err, "kind", "corrupt")


def raise_or_report(err: BaseException, on_error: Callable[[BaseException], None] | None) -> None:
    """Raise ``err``, or hand it to ``on_error`` when given (``skip_bad`` indexing, ``occrecon data check``)."""
    if on_error is None:
        raise err
    on_error(err)


def check_points_in_image(points: np.ndarray, image: np.ndarray, path: str | Path, slack: float = 0.5) -> None:
    """Raise a ``points`` :class:`DataFormatError` naming ``path`` when a landmark ``[N, 2]`` lies
    farther than ``slack`` x the image side outside the ``H x W`` image (annotation of another image,
    swapped x/y, wrong units); landmarks just outside the frame are normal (cropped faces)."""
    height, width = image.shape[:2]
    low = -slack * np.array([width, height])
    high = (1.0 + slack) * np.array([width, height])
    outside = ~((points >= low) & (points <= high)).all(axis=1)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise format_error(
            "points", path, f"landmarks within {slack:.0%} of the {width}x{height} image",
            got=f"{int(outside.sum())} point(s) outside, e.g. point {first + 1} at {points[first].round(1).tolist()}",
        )  # fmt: skip


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` or raise ``FileNotFoundError`` naming it and what it should contain."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} is missing")
    return path


def resolve_root(
    root: str | os.PathLike[str] | None, env_var: str, default_folder: str, what: str, how_to_get: str
) -> Path:
    """Find a data set's root folder: ``root``, else ``$<env_var>``, else ``$OCCRECON_DATA/<default_folder>``.

    Raises :class:`MissingAssetError` naming the place looked at and where users obtain the data set.
    """
    if root is not None and str(root) != "":
        path = Path(root).expanduser()
    elif os.environ.get(env_var):
        path = Path(os.environ[env_var]).expanduser()
    elif os.environ.get("OCCRECON_DATA"):
        path = Path(os.environ["OCCRECON_DATA"]).expanduser() / default_folder
    else:
        hint = f"Set root=..., ${env_var} or $OCCRECON_DATA (expects $OCCRECON_DATA/{default_folder}). {how_to_get}"
        raise MissingAssetError(f"<{what} root>", what, hint)
    if not path.is_dir():
        raise MissingAssetError(path, f"{what} folder", how_to_get)
    return path
