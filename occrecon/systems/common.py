"""Small helpers shared by the stage systems (LightningModules): image logging, metric flattening,
and a fixed number of evaluation batches for the demo hooks.

Kept generic on purpose: nothing here knows about a particular stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import Logger


def image_loggers(logger: Logger | None) -> list[Logger]:
    """The loggers that take pictures: W&B (``log_image``) and TensorBoard (``add_image``).

    The CSV logger has no image channel; checking first lets a system skip building the picture.
    """
    loggers = [] if logger is None else getattr(logger, "loggers", None) or [logger]
    return [lg for lg in loggers if hasattr(lg, "log_image") or type(lg).__name__ == "TensorBoardLogger"]


def log_image(logger: Logger | None, key: str, image: np.ndarray, step: int) -> bool:
    """Send one ``[H, W, 3]`` uint8 picture to the loggers of :func:`image_loggers`; False when none takes it."""
    sent = False
    for lg in image_loggers(logger):
        if hasattr(lg, "log_image"):  # WandbLogger
            lg.log_image(key=key, images=[image], step=step)
            sent = True
        else:  # TensorBoardLogger
            lg.experiment.add_image(key, image, global_step=step, dataformats="HWC")
            sent = True
    return sent


def scalar_metrics(values: Mapping[str, torch.Tensor | float], prefix: str) -> dict[str, float]:
    """``{prefix/name: float}`` of the finite entries (NaN marks classes absent from the split)."""
    out = {}
    for name, value in values.items():
        number = float(value)
        if np.isfinite(number):
            out[f"{prefix}/{name}"] = number
    return out


def first_batches(loader: Iterable[Any], count: int) -> Iterator[Any]:
    """The first ``count`` batches of ``loader`` (all of them when ``count <= 0``)."""
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
    raise ValueError(f"{type(datamodule).__name__} has neither a test nor a validation loader")


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a sample-dict batch moved to ``device`` (other entries unchanged)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
