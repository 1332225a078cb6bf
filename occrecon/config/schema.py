"""Typed schemas of an occrecon experiment (OmegaConf structured configs).

An experiment file is merged over :class:`ExperimentConfig`; the ``model`` and ``data`` sections
are typed by the dataclasses of the stage named in ``stage`` (see :mod:`occrecon.registry`), so
an unknown key or a wrong type anywhere fails at load time.

Stage authors extend the two base classes::

    @dataclass
    class ParsingLossWeights:
        ce: float = 1.0
        dice: float = 0.5

    @dataclass
    class ParsingLoss:
        weights: ParsingLossWeights = field(default_factory=ParsingLossWeights)

    @dataclass
    class ParsingModelConfig(BaseModelConfig):
        num_classes: int = 19
        loss: ParsingLoss = field(default_factory=ParsingLoss)

Every loss weight lives under ``model.loss.weights.<term>`` (W&B sweeps and ablation overlays
address them as ``model.loss.weights.ce=0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

# OmegaConf reads these annotations at runtime (`X | None` and `list[T]` need OmegaConf >= 2.4).


class LoggerKind(str, Enum):
    """Experiment logger backends (``logger.kind``)."""

    csv = "csv"
    wandb = "wandb"
    tensorboard = "tensorboard"
    none = "none"


@dataclass
class OptimizerConfig:
    """``torch.optim`` optimizer; ``name`` is one of adam, adamw, sgd."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9  # sgd only


@dataclass
class SchedulerConfig:
    """Learning-rate schedule; ``name`` is one of none, cosine, step, multistep.

    ``interval`` is ``epoch`` or ``step``: the unit of ``t_max``/``step_size``/``milestones``.
    ``t_max = 0`` means "the whole run" (``trainer.max_epochs`` or the estimated stepping batches).
    """

    name: str = "none"
    interval: str = "epoch"
    t_max: int = 0
    eta_min: float = 0.0
    step_size: int = 10
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup: int = 0  # linear warm-up length in `interval` units


@dataclass
class BaseModelConfig:
    """Options every stage's ``model`` section has. ``width`` is the base channel width every
    stage derives its networks from (so ``experiments/debug/tiny.yaml`` can shrink any stage)."""

    width: int = 64
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class BaseDataConfig:
    """Options every stage's ``data`` section has. ``root`` None means the embedded default."""

    image_size: int = 224
    batch_size: int = 8
    num_workers: int = 2
    root: str | None = None


@dataclass
class RunConfig:
    """Where a run lives and how it is checkpointed (see :mod:`occrecon.runs`).

    ``id`` None: taken from ``WANDB_RUN_ID``, ``SLURM_JOB_ID[_SLURM_ARRAY_TASK_ID]``, else new.
    ``checkpoint_every_n_steps`` > 0 adds a step checkpoint (and refreshes ``last.ckpt``) every N
    optimizer steps, on top of the end-of-epoch one; ``keep_step_checkpoints`` keeps each of them
    as ``step<N>.ckpt`` (else only ``last.ckpt`` is refreshed). ``monitor`` (e.g. ``val/nme``) keeps the ``save_top_k`` best
    epoch checkpoints; None keeps the latest.
    """

    root: str = "runs"
    id: str | None = None
    resume: bool = False
    overwrite: bool = False
    checkpoint_every_n_steps: int = 0
    keep_step_checkpoints: bool = False
    monitor: str | None = None
    monitor_mode: str = "min"
    save_top_k: int = 1


@dataclass
class TrainerConfig:
    """``lightning.Trainer`` arguments (names and meanings as in Lightning)."""

    accelerator: str = "auto"
    devices: Any = "auto"  # int, "auto", "-1" or a list of device indices (Lightning checks it)
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    max_epochs: int | None = 10
    max_steps: int = -1
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    limit_predict_batches: int | float = 1.0
    val_check_interval: int | float = 1.0
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int = 2
    deterministic: bool = False
    benchmark: bool | None = None
    log_every_n_steps: int = 50
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    enable_progress_bar: bool = True
    enable_model_summary: bool = True


@dataclass
class LoggerConfig:
    """Experiment logger. ``offline`` None: W&B goes online only when an API key is available
    (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc)."""

    kind: LoggerKind = LoggerKind.csv
    project: str = "occrecon"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    offline: bool | None = None
    log_model: bool = False


@dataclass
class PredictConfig:
    """``predict`` section (``occrecon predict``, :mod:`occrecon.callbacks.predictions`).

    ``images``: a photo folder/file to predict on instead of the stage's data (``None``: the data
    module's prediction or test split). ``align``: ``auto`` (the stage's training framing),
    ``deep3d``, ``celebahq`` or ``none`` (whole photo). ``out``: output folder (default
    ``<run dir>/predictions``). ``min_face_size``: smallest face detected (pixels).
    """

    images: str | None = None
    align: str = "auto"
    out: str | None = None
    min_face_size: float = 40.0


@dataclass
class ExperimentConfig:
    """The whole experiment. ``model``/``data`` are replaced by the stage's dataclasses at load."""

    stage: str = MISSING
    seed: int = 0
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    model: Any = None
    data: Any = None


#: Keys that may change on ``--resume`` although they sit under ``model``/``data`` (prefix match).
#: Everything else under ``model`` (architecture, widths, counts) and ``data.image_size`` would
#: change the network's shape or input and is refused; see :func:`occrecon.config.load.diff_configs`.
RESUME_MUTABLE_MODEL_PREFIXES = ("model.loss", "model.optimizer", "model.scheduler")
RESUME_FROZEN_DATA_KEYS = ("data.image_size",)
