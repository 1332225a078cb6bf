"""Stop a run at the first non-finite training loss, naming the step and the batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from occrecon.errors import OccreconError


class NonFiniteLossError(OccreconError, FloatingPointError):
    """The training loss became NaN or infinite (bad labels, a bad sample, a diverging run)."""


def describe_batch(batch: Any, batch_idx: int, limit: int = 8) -> str:
    """``batch <i>`` plus the sample ids of the batch when it carries them (``meta.id`` / ``index``)."""
    ids: Any = None
    if isinstance(batch, Mapping):
        meta = batch.get("meta")
        if isinstance(meta, Mapping):
            ids = meta.get("id")
        if ids is None:
            ids = batch.get("index", batch.get("image_index"))
    if isinstance(ids, torch.Tensor):
        ids = ids.flatten().tolist()
    if ids is None:
        return f"batch {batch_idx}"
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:limit]) + (f", ... ({len(ids)} samples)" if len(ids) > limit else "")
    return f"batch {batch_idx} (samples {shown})"


class FiniteLossCallback(L.Callback):
    """Raise :class:`NonFiniteLossError` before the backward pass of a NaN/inf loss.

    The check runs before any gradient is applied, so the last checkpoint stays usable. Under DDP
    the decision is shared by all ranks (one boolean all-reduce per step), so every rank stops
    together instead of waiting for each other in the gradient all-reduce.
    """

    def __init__(self) -> None:
        self._batch: Any = None
        self._batch_idx = -1

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch, self._batch_idx = batch, batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            where = describe_batch(self._batch, self._batch_idx)
            value = loss.detach().float().flatten()[0].item()
            raise NonFiniteLossError(
                f"training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}, {where}"
                f"{'' if trainer.world_size == 1 else ', on at least one rank'}); check that batch's labels "
                "(`occrecon data check`), lower model.optimizer.lr, or set trainer.gradient_clip_val"
            )
        self._batch = None

    def on_train_batch_end(self, *args: Any) -> None:
        self._batch = None
