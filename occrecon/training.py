"""Build the Trainer, logger, callbacks, system and data module of a run from its config.

:func:`run_command` is what ``occrecon fit|validate|test|predict`` executes. Stage systems use
:func:`build_optimization` in ``configure_optimizers`` so every stage reads ``model.optimizer``
and ``model.scheduler`` the same way.
"""

from __future__ import annotations

import csv
import logging
import math
import netrc
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from occrecon.callbacks import FiniteLossCallback, RNGStateCallback, RunInfoCallback
from occrecon.config.load import save_config, to_plain
from occrecon.config.validate import validate_config
from occrecon.errors import ConfigError
from occrecon.registry import get_dataset, get_stage
from occrecon.runs import RunPaths, prepare_run, resume_checkpoint

log = logging.getLogger(__name__)

COMMANDS = ("fit", "validate", "test", "predict")


def instantiate(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule]:
    """``System(**model)`` and ``DataModule(**data)`` of the config's stage (plain containers)."""
    spec = get_stage(cfg.stage)
    system = spec.load("system")(**to_plain(cfg.model))
    data = to_plain(cfg.data)
    dataset = data.pop("dataset", None)
    datamodule_cls = spec.load("datamodule") if dataset is None else get_dataset(dataset)
    return system, datamodule_cls(**data)


class HistoryCSVLogger(CSVLogger):
    """A ``CSVLogger`` that keeps the rows a resumed run logged before its checkpoint.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts. With ``resumed=True``
    the old rows are read first; when the resumed run logs its first row (step ``S``), the old rows
    with ``step < S`` are put back in front of it. Rows of the interrupted run from ``S`` on are
    dropped: the resumed run logs those steps again. An uninterrupted and a killed + resumed run
    end with the same file (``tests/test_resume_kill.py``).
    """

    def __init__(self, *args: Any, resumed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._history: list[dict[str, str]] | None = None
        if resumed and rank_zero_only.rank == 0:
            self._history = _read_csv(Path(self.log_dir) / "metrics.csv")

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._history is not None and rank_zero_only.rank == 0:
            first = len(self.experiment.metrics) if step is None else step
            kept = [row for row in self._history if int(float(row["step"])) < first]
            self.experiment.metrics[:0] = kept
            self._history = None
        super().log_metrics(metrics, step)


def _read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV metrics file, each without its empty cells (rows without a step dropped)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    return [row for row in rows if "step" in row]


def build_logger(cfg: DictConfig, paths: RunPaths, command: str = "fit", resumed: bool = False) -> Logger | bool:
    """The experiment logger of ``logger.kind`` (False for ``none``); W&B's id is the run id.

    CSV/TensorBoard files go to ``<run>/logs/<command>/``; W&B files to ``<run>/wandb/``. A ``fit``
    resumed from a checkpoint keeps the CSV history before it (:class:`HistoryCSVLogger`).
    """
    kind = str(to_plain(cfg.logger)["kind"])
    if kind == "none":
        return False
    if kind == "csv":
        return HistoryCSVLogger(save_dir=str(paths.dir), name="logs", version=command, resumed=resumed and command == "fit")
    if kind == "tensorboard":
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            return TensorBoardLogger(save_dir=str(paths.dir), name="logs", version=command)
        except ModuleNotFoundError as err:
            raise ConfigError(
                "logger.kind=tensorboard needs the tensorboard package: pip install tensorboard "
                "(or use logger.kind=csv)"
            ) from err
    from lightning.pytorch.loggers import WandbLogger

    lcfg = cfg.logger
    offline = lcfg.offline if lcfg.offline is not None else not wandb_key_available()
    # WandbLogger calls wandb.init lazily on rank 0 with resume="allow": the same id continues
    # the same W&B run after --resume or a SLURM requeue.
    return WandbLogger(
        id=paths.run_id,
        save_dir=str(paths.dir),
        project=lcfg.project,
        entity=lcfg.entity,
        group=lcfg.group,
        name=lcfg.name or paths.run_id,
        tags=list(lcfg.tags),
        offline=offline,
        log_model=False if offline else lcfg.log_model,
    )


def wandb_key_available() -> bool:
    """True when W&B can authenticate: ``WANDB_API_KEY`` or a ``wandb login`` netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class LatestCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that writes ``last.ckpt`` (see :func:`build_callbacks`), with its own
    ``state_key`` so it never collides with the monitored one when ``run.monitor`` is None."""

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            role="latest", every_n_train_steps=self._every_n_train_steps, every_n_epochs=self._every_n_epochs
        )


def build_callbacks(cfg: DictConfig, paths: RunPaths) -> list[Callback]:
    """Checkpointing, RNG state, run info, the finite-loss guard and, with a logger, the LR monitor.

    Two checkpoint callbacks, so ``last.ckpt`` is always the newest state whatever is monitored:

    * *latest*: rewrites ``last.ckpt`` at the end of every training epoch (after its validation),
      every ``run.checkpoint_every_n_steps`` optimizer steps and therefore also at the end of fit
      (a ``max_steps`` stop ends the epoch); ``run.keep_step_checkpoints`` keeps each of these
      as ``step<S>.ckpt`` too;
    * *best*: ``epoch<E>-step<S>.ckpt``, the ``run.save_top_k`` best by ``run.monitor`` (the
      latest epochs when ``run.monitor`` is None), written after validation; never ``last.ckpt``.
    """
    run = cfg.run
    best = ModelCheckpoint(
        dirpath=paths.checkpoints,
        filename="epoch{epoch:03d}-step{step:07d}",
        auto_insert_metric_name=False,
        monitor=run.monitor,
        mode=run.monitor_mode,
        save_top_k=run.save_top_k,
        save_last=False,
        enable_version_counter=False,
    )
    # ModelCheckpoint keeps the newest file when nothing is monitored: named "last", that file is
    # last.ckpt. Steps and epochs are separate triggers in Lightning, hence one callback each.
    latest = LatestCheckpoint(
        dirpath=paths.checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
        save_on_train_epoch_end=True, enable_version_counter=False,
    )  # fmt: skip
    checkpoints = [best, latest]
    if run.checkpoint_every_n_steps > 0:
        keep = bool(run.keep_step_checkpoints)
        checkpoints.append(
            LatestCheckpoint(
                dirpath=paths.checkpoints, filename="step{step:07d}" if keep else "last",
                auto_insert_metric_name=False, monitor=None, save_top_k=-1 if keep else 1, save_last=keep,
                every_n_train_steps=run.checkpoint_every_n_steps, enable_version_counter=False,
            )  # fmt: skip
        )
    callbacks: list[Callback] = [
        *checkpoints, RNGStateCallback(), RunInfoCallback(paths.run_id, to_plain(cfg)), FiniteLossCallback(),
    ]  # fmt: skip
    if str(to_plain(cfg.logger)["kind"]) != "none":
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return callbacks


def build_trainer(
    cfg: DictConfig,
    paths: RunPaths,
    command: str = "fit",
    callbacks: Iterable[Callback] = (),
    resumed: bool = False,
) -> L.Trainer:
    """A ``lightning.Trainer`` with every ``trainer.*`` option, the run's logger and callbacks."""
    options = to_plain(cfg.trainer)
    own = build_callbacks(cfg, paths) if command == "fit" else []
    return L.Trainer(
        **options,
        default_root_dir=str(paths.dir),
        logger=build_logger(cfg, paths, command, resumed),
        callbacks=[*own, *callbacks],
        enable_checkpointing=command == "fit",
    )


def run_command(
    command: str, cfg: DictConfig, ckpt: str | Path | None = None, callbacks: Iterable[Callback] = ()
) -> tuple[L.Trainer, RunPaths]:
    """Run ``command`` for ``cfg``: resolve the run, seed, build everything, call the Trainer.

    ``fit`` with ``run.resume`` continues from the run's newest last/requeue checkpoint; an
    explicit ``ckpt`` for ``fit`` restores that full training state into this run instead.
    Evaluation commands load ``ckpt`` (default: the run's ``last.ckpt``).
    """
    if command not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    validate_config(cfg, command)  # before any directory or process exists
    paths = prepare_run(cfg, command, ckpt)
    if ckpt is None and (command != "fit" or cfg.run.resume):
        found = resume_checkpoint(paths)
        ckpt = found
        if found is None and command != "fit":
            raise ConfigError(f"{command}: no checkpoint given (--ckpt) and none in {paths.checkpoints}")
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError(f"{ckpt}: checkpoint file not found")
    L.seed_everything(cfg.seed, workers=True)
    system, datamodule = instantiate(cfg)
    if command == "fit":
        record_effective_model(cfg, system, paths)
    if command == "predict":  # photo folder / test split as prediction data, predictions written under the run
        from occrecon.callbacks.predictions import prediction_setup

        datamodule, writers = prediction_setup(cfg, datamodule, paths.dir)
        callbacks = [*callbacks, *writers]
    trainer = build_trainer(cfg, paths, command, callbacks, resumed=ckpt is not None)
    method = getattr(trainer, command)
    log.info("%s run %s in %s%s", command, paths.run_id, paths.dir, f" from {ckpt}" if ckpt else "")
    method(system, datamodule=datamodule, ckpt_path=None if ckpt is None else str(ckpt))
    return trainer, paths


def record_effective_model(cfg: DictConfig, system: L.LightningModule, paths: RunPaths) -> list[str]:
    """Put the ``model`` values a system changed while building (e.g. ``loss.weights.feat`` -> 0 when
    no identity weights exist) into ``cfg`` and the run's ``config.yaml``, so the config, the
    checkpoint's hparams and the logger's (W&B) config all record what is in effect. Returns the keys."""
    hparams = getattr(system, "hparams", {})
    changed = []
    for key in list(cfg.model.keys()):
        if key in hparams and to_plain(hparams[key]) != to_plain(cfg.model[key]):
            log.warning("model.%s in effect differs from the config: %s (recorded in %s)", key, hparams[key], paths.config)
            OmegaConf.update(cfg, f"model.{key}", to_plain(hparams[key]), merge=True)
            changed.append(f"model.{key}")
    if changed and rank_zero_only.rank == 0:
        save_config(cfg, paths.config)
    return changed


def build_optimization(
    module: L.LightningModule, optimizer: Mapping[str, Any], scheduler: Mapping[str, Any], params: Any = None
) -> dict[str, Any]:
    """``configure_optimizers`` output from ``model.optimizer`` / ``model.scheduler`` (plain dicts).

    Optimizers: adam, adamw, sgd. Schedulers: none, cosine, step, multistep, each with an optional
    linear warm-up of ``warmup`` intervals; ``t_max = 0`` spans the whole run.
    """
    params = module.parameters() if params is None else params
    name = optimizer["name"].lower()
    common = {"lr": optimizer["lr"], "weight_decay": optimizer["weight_decay"]}
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        opt = cls(params, betas=tuple(optimizer["betas"]), **common)
    elif name == "sgd":
        opt = torch.optim.SGD(params, momentum=optimizer["momentum"], **common)
    else:
        raise ConfigError(f"model.optimizer.name: unknown optimizer {name!r} (expected adam, adamw or sgd)")
    sched = _build_scheduler(module, opt, scheduler)
    if sched is None:
        return {"optimizer": opt}
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": scheduler["interval"]}}


def _build_scheduler(
    module: L.LightningModule, opt: torch.optim.Optimizer, cfg: Mapping[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler | None:
    name, interval = cfg["name"].lower(), cfg["interval"]
    if interval not in ("epoch", "step"):
        raise ConfigError(f"model.scheduler.interval: expected 'epoch' or 'step', got {interval!r}")
    sched_mod = torch.optim.lr_scheduler
    if name == "none":
        main = None
    elif name == "cosine":
        main = sched_mod.CosineAnnealingLR(
            opt, T_max=max(1, (cfg["t_max"] or _run_length(module, interval)) - cfg["warmup"]), eta_min=cfg["eta_min"]
        )
    elif name == "step":
        main = sched_mod.StepLR(opt, step_size=cfg["step_size"], gamma=cfg["gamma"])
    elif name == "multistep":
        main = sched_mod.MultiStepLR(opt, milestones=list(cfg["milestones"]), gamma=cfg["gamma"])
    else:
        raise ConfigError(f"model.scheduler.name: unknown scheduler {name!r} (expected none, cosine, step, multistep)")
    if cfg["warmup"] <= 0:
        return main
    warm = sched_mod.LinearLR(opt, start_factor=1.0 / (cfg["warmup"] + 1), total_iters=cfg["warmup"])
    if main is None:
        return warm
    return sched_mod.SequentialLR(opt, [warm, main], milestones=[cfg["warmup"]])


def _run_length(module: L.LightningModule, interval: str) -> int:
    trainer = module.trainer
    if interval == "step":
        return int(trainer.estimated_stepping_batches)
    if trainer.max_epochs is None or trainer.max_epochs < 0:
        raise ConfigError("model.scheduler.t_max: set it (or trainer.max_epochs) for an epoch-based cosine schedule")
    return int(trainer.max_epochs) if math.isfinite(trainer.max_epochs) else 1
