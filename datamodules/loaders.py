"""The skip policy of bad samples and the seeded DataLoader every data module returns.

A sample that fails to decode is logged and counted (:class:`SkipLog`); in the **training** split
it is replaced by the next loadable sample, so training batches always have ``batch_size``
samples (never a batch of one, which BatchNorm rejects); in evaluation splits it is returned as
``None`` and :func:`collate_skip_none` leaves it out of the batch (:func:`load_or_skip`). Training
loaders also drop the incomplete last batch (``drop_last=True``) whenever the split holds at
least one full batch (:func:`build_loader`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from occrecon.errors import DataFormatError
from occrecon.utils.seeding import numpy_generator

log = logging.getLogger("datamodules.common")
"""The skip messages keep the logger name they always had (``datamodules.common``, where the
sample layout and skip policy are documented), so existing log filters still apply."""


class SkipLog:
    """Counts skipped samples (path, reason) and logs one summary per split."""

    def __init__(self, split: str) -> None:
        self.split, self.items = split, []  # type: ignore[var-annotated]

    def add(self, err: BaseException) -> None:
        self.items.append(str(err))
        # the running count makes each worker's log a summary of its own skips so far
        log.warning("skipping bad sample #%d of split %r (skip_bad=True): %s", len(self.items), self.split, err)

    def summary(self, kept: int) -> None:
        if self.items:
            log.warning("%s: skipped %d bad sample(s), kept %d (skip_bad=True)", self.split, len(self.items), kept)


T = TypeVar("T")


def load_or_skip(
    load: Callable[[int], T], index: int, count: int, skip_bad: bool, substitute: bool, skipped: SkipLog
) -> T | None:
    """``load(index)``, applying the skip policy (module docstring) to DataFormatError / FileNotFoundError.

    ``skip_bad=False``: the error propagates. Else it is counted in ``skipped`` and the result is
    ``None`` or, with ``substitute``, ``load`` of the next index that works (wrapping around;
    a split where every sample fails raises DataFormatError).
    """
    for step in range(count if (skip_bad and substitute) else 1):
        try:
            return load((index + step) % count)
        except (DataFormatError, FileNotFoundError) as err:
            if not skip_bad:
                raise
            skipped.add(err)
    if substitute:
        raise DataFormatError(f"<split {skipped.split!r}>", "at least one loadable sample",
                              got=f"all {count} failed (skip_bad=True)")  # fmt: skip
    return None


def build_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, pin_memory: bool = False, collate_fn: Any = None
) -> DataLoader:
    """The loader every data module returns (``shuffle=True``: the training loader).

    Training loaders drop the incomplete last batch when the split has at least one full batch
    (a last batch of one sample would break BatchNorm).

    Training loaders (``shuffle=True``) are :class:`occrecon.callbacks.ResumableDataLoader`: the
    shuffle order and the worker seeds come from the global RNG (seeded by ``seed_everything``),
    which that loader saves and restores, so a run resumed at an epoch boundary or mid-epoch sees
    the same batches as an uninterrupted one (with ``num_workers=0`` the main-process augmentation
    generator is part of that saved state, see :mod:`occrecon.callbacks.resume`).
    """
    from occrecon.callbacks import ResumableDataLoader

    loader_cls = ResumableDataLoader if shuffle else DataLoader
    drop_last = shuffle and len(dataset) >= batch_size  # type: ignore[arg-type]
    return loader_cls(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate_fn,
        worker_init_fn=seed_worker, pin_memory=pin_memory, drop_last=drop_last,
    )  # fmt: skip


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's dataset its own augmentation generator.

    The worker seed (``torch``'s ``base_seed + worker_id``; ``base_seed`` is drawn from the global
    RNG each epoch) differs between workers and epochs and is reproducible under
    ``seed_everything``; the data module's ``seed`` and the distributed rank are mixed in, so no
    two workers share an augmentation stream.
    """
    from occrecon.callbacks import dataset_generators

    info = get_worker_info()
    if info is None:
        return
    for target in dataset_generators(info.dataset):  # through Subset / ConcatDataset wrappers
        target.rng = numpy_generator(target.seed, info.seed, getattr(target, "rank", 0))


def collate_skip_none(batch: list[Any]) -> Any:
    """``default_collate`` without the ``None`` entries of skipped samples (``None`` if all were)."""
    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None
