"""Typed errors raised by occrecon.

Every error a user can provoke with bad input (a file, a config key, a tensor of the wrong
shape) is one of these, and its message names the offending thing and what was expected.
"""

from __future__ import annotations

from pathlib import Path


class OccreconError(Exception):
    """Base class of all occrecon errors."""


class ConfigError(OccreconError, ValueError):
    """A configuration value or file is invalid (unknown key, wrong type, missing file)."""


class ShapeError(OccreconError, ValueError):
    """A tensor argument does not have the documented shape."""

    def __init__(self, name: str, expected: str, actual: tuple[int, ...]) -> None:
        self.name, self.expected, self.actual = name, expected, tuple(actual)
        super().__init__(f"{name} must have shape {expected}, got {list(actual)}")


class DataFormatError(OccreconError, ValueError):
    """A data file does not match its documented on-disk format.

    The message names the file, the line (for text annotations, 1-based) and what was expected.
    """

    def __init__(self, path: str | Path, expected: str, line: int | None = None, got: str | None = None) -> None:
        self.path, self.line, self.expected, self.got = Path(path), line, expected, got
        where = f"{path}:{line}" if line is not None else f"{path}"
        msg = f"{where}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


class MissingAssetError(OccreconError, FileNotFoundError):
    """A user-supplied asset (face model, checkpoint, data set) is missing.

    The message says what the file is and where users obtain it.
    """

    def __init__(self, path: str | Path, what: str, how_to_get: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {what} not found. {how_to_get}")
