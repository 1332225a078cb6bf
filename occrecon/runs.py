"""Run identity, run directories and the resume protocol.

A run lives in ``<run.root>/<run_id>/``::

    config.yaml        the resolved config (rewritten on resume, old/new diff logged)
    checkpoints/       last.ckpt, epoch<E>-step<S>.ckpt, step<S>.ckpt (run.checkpoint_every_n_steps)
    logs/<command>/    CSV / TensorBoard logs; W&B files under wandb/

The run id is, in order: ``run.id``; ``WANDB_RUN_ID`` (set by a sweep agent);
``SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID`` or ``SLURM_JOB_ID`` (stable across requeues);
``TORCHELASTIC_RUN_ID`` (torchrun's rendezvous id); on a non-zero rank, ``OCCRECON_RUN_ID``;
else (rank 0 only) a new time-stamped id. It is resolved before the Trainer exists and exported as
``OCCRECON_RUN_ID``, so the rank processes Lightning's ``ddp`` strategy starts (with a copy of the
environment) agree with rank 0. Rank 0 ignores an inherited ``OCCRECON_RUN_ID``, so a second
``fit`` in the same Python session gets its own run. Only global rank 0 checks, creates or clears
the directory. Multi-node runs without SLURM or torchrun need an explicit ``run.id``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from occrecon.config.load import ConfigDiff, diff_configs, read_yaml, save_config, to_plain
from occrecon.errors import ConfigError

log = logging.getLogger(__name__)

RUN_ID_ENV = "OCCRECON_RUN_ID"


class RunExistsError(ConfigError):
    """The run directory exists and neither ``--resume`` nor ``--overwrite`` was given."""


@dataclass(frozen=True)
class RunPaths:
    """The files of one run."""

    run_id: str
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"


def launcher_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's global rank as far as it is known before the Trainer starts.

    Lightning reads ``RANK``/``LOCAL_RANK``/``SLURM_PROCID``; a process on another node of a
    manually launched multi-node job only has ``NODE_RANK``.
    """
    rank = rank_zero_only.rank
    return rank if rank != 0 else int(environ.get("NODE_RANK", "0") or 0)


def resolve_run_id(explicit: str | None, environ: Mapping[str, str] = os.environ, rank: int | None = None) -> str:
    """The run id by the order in the module docstring (a new one only on global rank 0)."""
    rank = launcher_rank(environ) if rank is None else rank
    if explicit:
        return _check_id(explicit, "run.id")
    if environ.get("WANDB_RUN_ID"):
        return _check_id(environ["WANDB_RUN_ID"], "WANDB_RUN_ID")
    if environ.get("SLURM_ARRAY_JOB_ID") and environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    if environ.get("SLURM_JOB_ID"):
        return _check_id(environ["SLURM_JOB_ID"], "SLURM_JOB_ID")
    if environ.get("TORCHELASTIC_RUN_ID", "none") != "none":
        return _check_id(environ["TORCHELASTIC_RUN_ID"], "TORCHELASTIC_RUN_ID")
    if rank != 0:
        if environ.get(RUN_ID_ENV):
            return _check_id(environ[RUN_ID_ENV], RUN_ID_ENV)
        # A rank started by an external launcher cannot see rank 0's fresh id.
        raise ConfigError(f"rank {rank} has no run id: set run.id=<id> for every process of a multi-node run")
    # secrets, not random: a new id must not consume the seeded global RNG.
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _check_id(run_id: str, source: str) -> str:
    run_id = str(run_id)
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise ConfigError(f"{source}: {run_id!r} is not a usable run id (no '/', not empty)")
    return run_id


def checkpoint_run_dir(ckpt: str | Path) -> Path | None:
    """The run directory of ``<root>/<id>/checkpoints/x.ckpt``, or None for a loose file."""
    ckpt = Path(ckpt).resolve()
    run_dir = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run_dir / "config.yaml").is_file():
        return run_dir
    return None


def prepare_run(cfg: DictConfig, command: str = "fit", ckpt: str | Path | None = None) -> RunPaths:
    """Resolve the run id, export it, and (rank 0, ``fit``) apply the existing-directory guard.

    For ``fit``: an existing directory is refused unless ``run.resume`` (the saved config is
    diffed against ``cfg``; shape-changing edits are refused, others logged) or ``run.overwrite``
    (the directory is deleted). ``config.yaml`` is (re)written. For evaluation commands the run
    is ``run.id``, else the run that holds ``ckpt``, else a new one; nothing is refused.
    """
    explicit = cfg.run.id
    if explicit is None and command != "fit" and ckpt is not None:
        owner = checkpoint_run_dir(ckpt)
        if owner is not None and owner.parent.resolve() == Path(cfg.run.root).resolve():
            explicit = owner.name
    run_id = resolve_run_id(explicit)
    os.environ[RUN_ID_ENV] = run_id
    paths = RunPaths(run_id, Path(cfg.run.root) / run_id)
    if launcher_rank() == 0:
        if command == "fit":
            _guard_fit_dir(cfg, paths)
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        if command == "fit" or not paths.config.exists():
            save_config(cfg, paths.config)
    return paths


def _guard_fit_dir(cfg: DictConfig, paths: RunPaths) -> None:
    if not paths.dir.exists() or not any(paths.dir.iterdir()):
        if cfg.run.resume:
            log.info("run %s: nothing to resume in %s, starting a new run", paths.run_id, paths.dir)
        return
    if cfg.run.resume:
        if paths.config.exists():
            check_resume_config(read_yaml(paths.config), cfg, paths)
        return
    if cfg.run.overwrite:
        log.warning("run %s: --overwrite deletes %s", paths.run_id, paths.dir)
        shutil.rmtree(paths.dir)
        return
    raise RunExistsError(
        f"run directory {paths.dir} already exists (run id {paths.run_id!r}). Pass --resume to continue it "
        "(run.resume=true), --overwrite to delete it and start again (run.overwrite=true), or set another run.id."
    )


def check_resume_config(saved: DictConfig, new: DictConfig, paths: RunPaths) -> ConfigDiff:
    """Refuse a resume that changes the model's shape; log the other changes."""
    diff = diff_configs(to_plain(saved), to_plain(new))
    if diff.refused:
        raise ConfigError(
            f"cannot resume run {paths.run_id!r}: these changes alter the model's shape or input "
            f"(saved in {paths.config}):\n{diff.describe('refused')}\nStart a new run (another run.id) instead."
        )
    if diff.allowed:
        log.warning("resuming run %s with changed settings:\n%s", paths.run_id, diff.describe("allowed"))
    return diff


def resume_checkpoint(paths: RunPaths) -> Path | None:
    """The newest of ``last.ckpt`` and a SLURM requeue ``hpc_ckpt_*.ckpt``; None if neither exists."""
    candidates = [p for p in [paths.last_checkpoint, *paths.dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
