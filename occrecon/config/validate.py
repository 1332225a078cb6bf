"""Checks of a loaded config that types cannot express, run before any work (no directory, no process).

:func:`validate_config` raises one :class:`ConfigError` (one line: the key, the value, what is
expected) for values that would otherwise crash later with a traceback, hang, or train silently
wrong: a negative learning rate, weight decay or loss weight, ``trainer.devices`` of 0 or more
processes than the machine has CPU cores, a GPU accelerator without CUDA, and non-positive sizes.
``occrecon fit|validate|test|predict`` exits with status 2 on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from occrecon.config.load import to_plain
from occrecon.errors import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")
#: Under ``model.loss``, every number in these sub-sections is a weight and must be >= 0.
WEIGHT_SECTIONS = ("weights", "regu")


def cpu_count() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def validate_config(cfg: DictConfig, command: str = "fit") -> None:
    """Raise :class:`ConfigError` for the first problem found (see the module docstring)."""
    plain = to_plain(cfg)
    _check_model(plain.get("model") or {})
    _check_data(plain.get("data") or {})
    _check_trainer(plain["trainer"], command)
    run = plain["run"]
    if run["checkpoint_every_n_steps"] < 0:
        raise ConfigError(f"run.checkpoint_every_n_steps={run['checkpoint_every_n_steps']}: expected >= 0 (0 = off)")
    if run["monitor_mode"] not in ("min", "max"):
        raise ConfigError(f"run.monitor_mode={run['monitor_mode']!r}: expected 'min' or 'max'")
    if run["save_top_k"] < -1:
        raise ConfigError(f"run.save_top_k={run['save_top_k']}: expected -1 (all), 0 or more")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_model(model: Mapping[str, Any]) -> None:
    optimizer = model.get("optimizer") or {}
    for key in ("lr", "weight_decay"):
        value = optimizer.get(key)
        if _number(value) and value < 0:
            raise ConfigError(f"model.optimizer.{key}={value}: expected a number >= 0")
    loss = model.get("loss") or {}
    for section in WEIGHT_SECTIONS:
        for key, value in _leaves(loss.get(section), f"model.loss.{section}"):
            if _number(value) and value < 0:
                raise ConfigError(f"{key}={value}: loss weights must be >= 0 (0 switches the term off)")


def _leaves(tree: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(tree, Mapping):
        return [leaf for key, value in tree.items() for leaf in _leaves(value, f"{prefix}.{key}")]
    return [] if tree is None else [(prefix, tree)]


def _check_data(data: Mapping[str, Any]) -> None:
    for key in ("batch_size", "image_size"):
        value = data.get(key)
        if _number(value) and value < 1:
            raise ConfigError(f"data.{key}={value}: expected an integer >= 1")
    workers = data.get("num_workers")
    if _number(workers) and workers < 0:
        raise ConfigError(f"data.num_workers={workers}: expected >= 0 (0 = load in the main process)")


def _device_count(devices: Any) -> int | None:
    """The number of devices ``trainer.devices`` asks for; None for ``auto``/-1 (Lightning decides)."""
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return None
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        if not text.lstrip("-").isdigit():
            raise ConfigError(f"trainer.devices={devices!r}: expected an integer, 'auto', -1 or a list of indices")
        devices = int(text)
    if devices == -1:
        return None
    return int(devices)


def _check_trainer(trainer: Mapping[str, Any], command: str) -> None:
    accelerator = str(trainer["accelerator"]).lower()
    devices = trainer["devices"]
    count = _device_count(devices)
    if count is not None and count < 1:
        raise ConfigError(f"trainer.devices={devices}: expected at least 1 device (or 'auto')")
    if trainer["num_nodes"] < 1:
        raise ConfigError(f"trainer.num_nodes={trainer['num_nodes']}: expected >= 1")
    gpus = cuda_device_count()
    if accelerator in GPU_ACCELERATORS:
        if gpus == 0:
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no CUDA device is visible (torch.cuda.is_available() is False); "
                "on this machine use trainer.accelerator=cpu (or -c experiments/trainer/cpu.yaml instead of "
                "experiments/trainer/gpu.yaml / ddp.yaml)"
            )
        if count is not None and not isinstance(devices, list | tuple) and count > gpus:
            raise ConfigError(f"trainer.devices={devices}: only {gpus} CUDA device(s) are visible")
    elif accelerator == "cpu" or (accelerator == "auto" and gpus == 0):
        cores = cpu_count()
        if count is not None and count > cores:
            raise ConfigError(
                f"trainer.devices={devices} on CPU starts {count} processes but this machine has {cores} CPU "
                f"core(s): use trainer.devices<={cores}"
            )
