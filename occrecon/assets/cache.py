"""The user cache directory for converted assets (platformdirs' layout, no dependency)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "OCCRECON_CACHE"


def cache_dir(create: bool = False) -> Path:
    """Directory of occrecon's converted assets.

    Resolution order: ``$OCCRECON_CACHE``; ``$XDG_CACHE_HOME/occrecon``; ``~/Library/Caches/occrecon``
    on macOS; ``%LOCALAPPDATA%\\occrecon\\Cache`` on Windows; ``~/.cache/occrecon``.
    """
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        path = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "occrecon"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Caches" / "occrecon"
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        path = Path(os.environ["LOCALAPPDATA"]) / "occrecon" / "Cache"
    else:
        path = Path.home() / ".cache" / "occrecon"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
