"""Helpers shared by the evaluation modules: metric flattening and a fixed number of evaluation
batches of a data module, moved to a system's device.

Nothing here knows a particular stage, and nothing imports :mod:`occrecon.systems` (systems may
import evaluation, never the reverse; README "Layout").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from occrecon.errors import ConfigError


def scalar_metrics(values: Mapping[str, torch.Tensor | float], prefix: str) -> dict[str, float]:
    """``{prefix/name: float}`` of the finite entries (NaN marks classes absent from the split).

    >>> scalar_metrics({"miou": 0.5, "f1/eye": float("nan")}, "val")
    {'val/miou': 0.5}
    """
    out = {}
    for name, value in values.items():
        number = float(value)
        if np.isfinite(number):
            out[f"{prefix}/{name}"] = number
    return out


def first_batches(loader: Iterable[Any], count: int) -> Iterator[Any]:
    """The first ``count`` batches of ``loader`` (all of them when ``count <= 0``).

    >>> list(first_batches("abcd", 2)), list(first_batches("abc", 0))
    (['a', 'b'], ['a', 'b', 'c'])
    """
    for index, batch in enumerate(loader):
        if 0 < count <= index:
            return
        yield batch


def eval_loader(datamodule: Any) -> Iterable[Any]:
    """The test loader of a data module, else its validation loader (after ``setup``)."""
    for stage, name in (("test", "test_dataloader"), ("validate", "val_dataloader")):
        try:
            datamodule.setup(stage)
            return getattr(datamodule, name)()
        except (NotImplementedError, AttributeError, FileNotFoundError):
            continue
    raise ConfigError(f"data module {type(datamodule).__name__}: expected a test or a validation loader, found neither")


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a sample-dict batch moved to ``device`` (other entries unchanged)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
