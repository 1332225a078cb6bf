"""Lightning callbacks occrecon adds to every run (see :func:`occrecon.training.build_callbacks`)."""

from occrecon.callbacks.finite_loss import FiniteLossCallback, NonFiniteLossError
from occrecon.callbacks.resume import (
    ResumableDataLoader,
    RNGStateCallback,
    collect_rng_states,
    dataset_generators,
    set_rng_states,
)
from occrecon.callbacks.run_info import RunInfoCallback

__all__ = [
    "FiniteLossCallback", "NonFiniteLossError", "RNGStateCallback", "ResumableDataLoader", "RunInfoCallback", "collect_rng_states", "dataset_generators", "set_rng_states",
]
