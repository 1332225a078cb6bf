"""Small helpers shared by the stage systems (LightningModules): picture logging during training.

Kept generic on purpose: nothing here knows about a particular stage. Metric flattening and the
evaluation batches of the demo sections live in :mod:`occrecon.evaluation.common`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lightning.pytorch.loggers import Logger

from occrecon.evaluation.common import scalar_metrics


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


class PerSampleEvaluation:
    """Validation/test hooks of a system whose metrics gather per-sample values (torchmetrics with
    ``dist_reduce_fx="cat"``): ``self._eval_step(batch, metrics, prefix)`` updates ``self.val_metrics``
    / ``self.test_metrics``, and each epoch end logs their ``compute()`` under ``val/`` / ``test/``.
    ``compute()`` gathers every rank's values, so all ranks log the same numbers (no ``sync_dist``)."""

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def _log_split(self, metrics: Any, prefix: str) -> None:
        if metrics.update_count:
            self.log_dict(scalar_metrics(metrics.compute(), prefix))
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_split(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_split(self.test_metrics, "test")
