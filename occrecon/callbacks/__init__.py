"""Lightning callbacks occrecon adds to every run (see :func:`occrecon.training.build_callbacks`)."""

from occrecon.callbacks.resume import ResumableDataLoader, RNGStateCallback, collect_rng_states, set_rng_states
from occrecon.callbacks.run_info import RunInfoCallback

__all__ = ["RNGStateCallback", "ResumableDataLoader", "RunInfoCallback", "collect_rng_states", "set_rng_states"]
