"""Typed OmegaConf configuration: schemas (:mod:`.schema`) and loading/saving/diffing (:mod:`.load`)."""

from occrecon.config.load import diff_configs, load_config, save_config, to_plain, to_yaml
from occrecon.config.schema import BaseDataConfig, BaseModelConfig, ExperimentConfig

__all__ = [
    "BaseDataConfig",
    "BaseModelConfig",
    "ExperimentConfig",
    "diff_configs",
    "load_config",
    "save_config",
    "to_plain",
    "to_yaml",
]
