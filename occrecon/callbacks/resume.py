"""What makes a resumed run bit-identical to an uninterrupted one.

Lightning's checkpoint restores weights, optimizers, schedulers and loop counters, but not the
global random number generators, and a plain ``DataLoader`` restarts an interrupted epoch from
its first batch. Two pieces close those gaps:

- :class:`RNGStateCallback` stores the python/numpy/torch(/CUDA) RNG states in every checkpoint
  and restores them on resume; it also keeps validation from consuming training randomness
  (validation iterators draw a base seed), so where validation runs does not matter.
- :class:`ResumableDataLoader`, a drop-in ``DataLoader`` with ``state_dict``/``load_state_dict``
  (Lightning's stateful-loader protocol). It records the RNG states at the start of each epoch
  and how many batches it has yielded; on a mid-epoch resume it recreates the same sampler order
  and worker seeds and skips the batches already trained on. Data modules should return it from
  ``train_dataloader``.

States are stored as tensors and plain Python values, so checkpoints load with
``torch.load(weights_only=True)``.

Tested (``tests/test_resume.py``): resume after an epoch, after a crash mid-epoch (from a step
checkpoint) and of a ``max_steps`` run stopped mid-epoch all end bit-identical to the
uninterrupted run. Limit: under DDP only rank 0's RNG states are saved and every rank gets them
back, which is exact when the ranks' main-process random streams agree (same seed, as
``seed_everything`` gives them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader


def collect_rng_states() -> dict[str, Any]:
    """The global python, numpy, torch and (initialised) CUDA RNG states as safe-to-load values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RNGStateCallback(L.Callback):
    """Save/restore the global RNG states with each checkpoint; isolate validation's RNG use."""

    def __init__(self) -> None:
        self._before_validation: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied at restore time, after the model was built and before any data is drawn.
        set_rng_states(state_dict)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        # Validation (mid-epoch or at the epoch end) always follows a training batch end.
        self._before_validation = collect_rng_states()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training or trainer.sanity_checking or self._before_validation is None:
            return
        if trainer.state.fn == "fit":
            set_rng_states(self._before_validation)
            self._before_validation = None


class ResumableDataLoader(DataLoader):
    """``DataLoader`` that Lightning can resume mid-epoch exactly (same arguments as DataLoader).

    The training order is whatever the sampler draws from the global RNG at the start of the
    epoch (as for a plain DataLoader, so seeding with ``seed_everything`` works as usual).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch_rng: dict[str, Any] | None = None
        self._yielded = 0
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_rng": self._epoch_rng, "yielded": self._yielded}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("epoch_rng") is not None and state_dict.get("yielded", 0) > 0:
            self._pending = state_dict

    def __iter__(self) -> Iterator[Any]:
        pending, self._pending = self._pending, None
        current = collect_rng_states() if pending else None
        if pending:
            set_rng_states(pending["epoch_rng"])  # same sampler draw and worker seeds as before
        self._epoch_rng = collect_rng_states()
        iterator = super().__iter__()
        self._yielded = 0
        skip = pending["yielded"] if pending else 0
        for _ in range(skip):
            # Loading (not just indexing) the skipped batches also advances workers' own RNGs
            # exactly as in the interrupted run.
            next(iterator)
            self._yielded += 1
        if current is not None:
            set_rng_states(current)  # the checkpoint's state, restored by RNGStateCallback
        return self._counting(iterator)

    def _counting(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._yielded += 1
            yield batch
