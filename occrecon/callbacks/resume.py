"""What makes a resumed run bit-identical to an uninterrupted one.

Lightning's checkpoint restores weights, optimizers, schedulers and loop counters, but not the
random number generators, and a plain ``DataLoader`` restarts an interrupted epoch from its first
batch. Two pieces close those gaps:

- :class:`RNGStateCallback` stores, for **every rank**, the python/numpy/torch(/CUDA) RNG states and
  the main-process augmentation generators of the training data set(s) (the ``rng`` attribute of
  a data set with a ``seed``, e.g. ``datamodules.common.FaceDataset``; used when
  ``num_workers=0``) in every checkpoint and gives each rank its own back on resume. It also keeps
  validation from consuming training randomness, so where validation runs does not matter.
- :class:`ResumableDataLoader`, a drop-in ``DataLoader`` with ``state_dict``/``load_state_dict``
  (Lightning's stateful-loader protocol). Per rank it records the RNG states and the data set's
  generator states at the start of each epoch and how many batches it has yielded; on a mid-epoch
  resume it recreates the same sampler order, worker seeds and augmentation stream and skips the
  batches already trained on. Data modules return it from ``train_dataloader`` (``build_loader``).

Under DDP the states of all ranks are gathered (``all_gather_object``) when a checkpoint is written,
so the checkpoint holds one entry per rank; resuming with another number of processes cannot be
exact and logs a warning. States are stored as tensors and plain Python values, so checkpoints load
with ``torch.load(weights_only=True)``.

Tested (``tests/test_resume.py``, ``tests/test_resume_kill.py``): resume after an epoch, after a
crash mid-epoch (an exception, and a real SIGKILL of the process, single-process with
``num_workers=0`` and 2-process DDP) and of a ``max_steps`` run stopped mid-epoch all end
bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


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


def dataset_generators(dataset: Any) -> list[Any]:
    """The objects in ``dataset`` (through ``Subset``-like ``.dataset`` and ``ConcatDataset``-like
    ``.datasets`` wrappers) that own an augmentation generator: a ``seed`` and an ``rng`` attribute."""
    found, todo = [], [dataset]
    while todo:
        item = todo.pop(0)
        if hasattr(item, "seed") and hasattr(item, "rng"):
            found.append(item)
        elif hasattr(item, "dataset"):
            todo.append(item.dataset)
        todo.extend(getattr(item, "datasets", []))
    return found


def generator_states(dataset: Any) -> list[str | None]:
    """The states of :func:`dataset_generators` (JSON text; None for a generator not created yet)."""
    return [None if g.rng is None else json.dumps(g.rng.bit_generator.state) for g in dataset_generators(dataset)]


def set_generator_states(dataset: Any, states: list[str | None]) -> None:
    """Inverse of :func:`generator_states`."""
    owners = dataset_generators(dataset)
    if len(owners) != len(states):
        log.warning("resume: the data set has %d augmentation generators, the checkpoint %d; not restored",
                    len(owners), len(states))  # fmt: skip
        return
    for owner, state in zip(owners, states, strict=True):
        if state is None:
            owner.rng = None
        else:
            value = json.loads(state)
            owner.rng = np.random.Generator(getattr(np.random, value["bit_generator"])())
            owner.rng.bit_generator.state = value


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_ranks(state: Any) -> dict[str, list[Any]]:
    """``{"ranks": [state of rank 0, rank 1, ...]}`` (every rank must call it, as checkpointing does)."""
    rank, world = _distributed()
    if world == 1:
        return {"ranks": [state]}
    states: list[Any] = [None] * world
    dist.all_gather_object(states, state)
    return {"ranks": states}


def own_rank(stored: dict[str, Any], what: str) -> Any:
    """This rank's entry of :func:`gather_ranks`' output (a warning when the process count changed)."""
    ranks = stored["ranks"]
    rank, world = _distributed()
    if len(ranks) != world:
        log.warning(
            "resume: %s was saved by %d process(es), resumed with %d: the run continues but is not "
            "bit-identical to an uninterrupted one", what, len(ranks), world,
        )  # fmt: skip
    return ranks[rank % len(ranks)]


def _train_datasets(trainer: L.Trainer) -> list[Any]:
    combined = getattr(trainer.fit_loop, "_combined_loader", None)
    return [] if combined is None else [loader.dataset for loader in combined.flattened]


class RNGStateCallback(L.Callback):
    """Save/restore every rank's RNG and augmentation-generator states; isolate validation's RNG use."""

    def __init__(self) -> None:
        self._before_validation: dict[str, Any] | None = None
        self._trainer: L.Trainer | None = None
        self._pending_data: list[list[str | None]] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        datasets = [] if self._trainer is None else _train_datasets(self._trainer)
        return gather_ranks({"global": collect_rng_states(), "data": [generator_states(d) for d in datasets]})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied at restore time, after the model was built and before any data is drawn.
        if "ranks" not in state_dict:  # checkpoints of occrecon <= 0.1: rank 0's global states only
            set_rng_states(state_dict)
            return
        own = own_rank(state_dict, "the RNG state")
        set_rng_states(own["global"])
        self._pending_data = own["data"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending, self._pending_data = self._pending_data, None
        if pending:
            for dataset, states in zip(_train_datasets(trainer), pending, strict=False):
                set_generator_states(dataset, states)

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
        self._epoch_data: list[str | None] = []
        self._sampler_epoch: int | None = None
        self._yielded = 0
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return gather_ranks({"epoch_rng": self._epoch_rng, "epoch_data": self._epoch_data, "yielded": self._yielded,
                             "sampler_epoch": self._sampler_epoch})  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = own_rank(state_dict, "the data loader position") if "ranks" in state_dict else state_dict
        if own.get("epoch_rng") is not None and own.get("yielded", 0) > 0:
            self._pending = own

    def __iter__(self) -> Iterator[Any]:
        pending, self._pending = self._pending, None
        current = collect_rng_states() if pending else None
        if pending:
            # same sampler draw, worker seeds and main-process augmentation stream as before
            set_rng_states(pending["epoch_rng"])
            if pending.get("epoch_data") is not None:
                set_generator_states(self.dataset, pending["epoch_data"])
            if pending.get("sampler_epoch") is not None:
                # Lightning resumes by iterating before it calls set_epoch: a DistributedSampler
                # must draw the interrupted epoch's order for the batches skipped here
                for sampler in self._samplers():
                    sampler.set_epoch(pending["sampler_epoch"])
        self._epoch_rng = collect_rng_states()
        self._epoch_data = generator_states(self.dataset)
        epochs = [getattr(sampler, "epoch", None) for sampler in self._samplers()]
        self._sampler_epoch = next((e for e in epochs if isinstance(e, int)), None)
        iterator = super().__iter__()
        self._yielded = 0
        skip = pending["yielded"] if pending else 0
        for _ in range(skip):
            # Loading (not just indexing) the skipped batches also advances the augmentation
            # generators (main process or workers) exactly as in the interrupted run.
            next(iterator)
            self._yielded += 1
        if current is not None:
            set_rng_states(current)  # the checkpoint's state, restored by RNGStateCallback
        return self._counting(iterator)

    def _samplers(self) -> list[Any]:
        """The sampler(s) with ``set_epoch`` (e.g. Lightning's DistributedSampler)."""
        found = [self.sampler, getattr(self.batch_sampler, "sampler", None)]
        unique = {id(s): s for s in found if s is not None and callable(getattr(s, "set_epoch", None))}
        return list(unique.values())

    def _counting(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._yielded += 1
            yield batch
