"""Load, validate, save and diff experiment configs.

``load_config(["experiments/parsing/helen.yaml", "experiments/debug/tiny.yaml"], ["seed=3"])``
merges the files in order, then the ``key.sub=value`` overrides (W&B's ``${args_no_hyphens}``),
over :class:`~occrecon.config.schema.ExperimentConfig` whose ``model``/``data`` sections are
typed by the stage named in ``stage``. Each file and override is merged on its own, so an error
names the key, the file (or override) and the expected type.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import type_str
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from occrecon.config.schema import RESUME_FROZEN_DATA_KEYS, RESUME_MUTABLE_MODEL_PREFIXES, ExperimentConfig
from occrecon.config.signature import schema_from_signature
from occrecon.errors import ConfigError
from occrecon.registry import StageSpec, get_dataset, get_stage
from occrecon.utils.io import atomic_write_text

#: Keys under ``run`` that legitimately differ between a run and its resumption.
_RUN_CONTROL_KEYS = ("run.resume", "run.overwrite", "run.id")


def data_schema(spec: StageSpec, dataset: str | None) -> type:
    """The ``data`` dataclass: the data set module's signature, else the stage's own schema."""
    if dataset is None:
        return spec.load("data_schema")
    return schema_from_signature(get_dataset(dataset), (("dataset", str, dataset),))


def experiment_schema(spec: StageSpec, dataset: str | None = None) -> DictConfig:
    """The structured config of an experiment of stage ``spec`` (all defaults filled in)."""
    model_cls = spec.load("model_schema")
    data_cls = data_schema(spec, dataset)
    schema_cls = dataclasses.make_dataclass(
        f"{model_cls.__name__}Experiment",
        [
            ("model", model_cls, dataclasses.field(default_factory=model_cls)),
            ("data", data_cls, dataclasses.field(default_factory=data_cls)),
        ],
        bases=(ExperimentConfig,),
    )
    return OmegaConf.structured(schema_cls)


#: The checkout holding ``experiments/`` (for an editable install / a source tree).
CHECKOUT = Path(__file__).resolve().parents[2]


def find_config_file(path: str | Path) -> Path:
    """``path`` as given, else (a relative path not found in the working directory) the same path
    in the occrecon checkout, so ``-c experiments/...`` works from any directory (sweep agents)."""
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    fallback = CHECKOUT / path
    return fallback if fallback.is_file() else path


def read_yaml(path: str | Path) -> DictConfig:
    """Read one config file; a missing or malformed file raises :class:`ConfigError` naming it."""
    path = find_config_file(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level, got a list")
    return cfg


def parse_overrides(overrides: Sequence[str]) -> list[DictConfig]:
    """Each ``key.sub=value`` string as its own one-key config (values parsed as YAML)."""
    parsed = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r}: expected the form key.sub=value")
        try:
            parsed.append(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r}: {_first_line(err)}") from err
    return parsed


def load_config(paths: Sequence[str | Path], overrides: Sequence[str] = ()) -> DictConfig:
    """Merge ``paths`` then ``overrides`` over the schema of the stage they name; resolve.

    Raises :class:`ConfigError` for a missing file, an unknown key, a wrong type, an unknown
    stage, a missing required value or a broken interpolation.
    """
    layers = [(str(p), read_yaml(p)) for p in paths]
    layers += [(f"override {o!r}", c) for o, c in zip(overrides, parse_overrides(overrides), strict=True)]
    stage = _find_stage(layers)
    cfg = experiment_schema(get_stage(stage), _find_dataset(layers))
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as err:
            raise ConfigError(_explain(err, source, cfg)) from err
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{_sources(layers)}: cannot resolve {err.full_key!r}: {_first_line(err)}") from err
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{_sources(layers)}: required value(s) not set: {', '.join(missing)}")
    OmegaConf.set_struct(cfg, True)
    return cfg


def to_plain(cfg: Any) -> Any:
    """A resolved plain-Python copy (dicts, lists, str/int/float/bool/None) of a config node."""
    if not OmegaConf.is_config(cfg):
        return cfg
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def save_config(cfg: DictConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically); :func:`load_config` reads it back."""
    atomic_write_text(path, to_yaml(cfg))


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text (``--print-config``)."""
    return OmegaConf.to_yaml(OmegaConf.create(to_plain(cfg)))


@dataclasses.dataclass
class ConfigDiff:
    """Changes between a saved run config and a new one, as ``(key, old, new)`` triples."""

    refused: list[tuple[str, Any, Any]]
    allowed: list[tuple[str, Any, Any]]

    def describe(self, kind: str) -> str:
        rows = self.refused if kind == "refused" else self.allowed
        return "\n".join(f"  {key}: {old!r} -> {new!r}" for key, old, new in rows)


def diff_configs(old: Mapping[str, Any], new: Mapping[str, Any]) -> ConfigDiff:
    """Compare two plain configs for ``--resume``.

    Refused (they change the network's shape or input, so the checkpoint would not fit):
    ``stage``, anything under ``model`` except ``model.loss``/``model.optimizer``/
    ``model.scheduler``, and ``data.image_size``. Everything else is allowed and listed.
    """
    flat_old, flat_new = _flatten(old), _flatten(new)
    diff = ConfigDiff(refused=[], allowed=[])
    missing = object()
    for key in sorted(set(flat_old) | set(flat_new)):
        before, after = flat_old.get(key, missing), flat_new.get(key, missing)
        if before == after or key in _RUN_CONTROL_KEYS:
            continue
        row = (key, None if before is missing else before, None if after is missing else after)
        (diff.refused if _is_frozen(key) else diff.allowed).append(row)
    return diff


def _is_frozen(key: str) -> bool:
    if key == "stage" or key in RESUME_FROZEN_DATA_KEYS:
        return True
    if key.startswith("model."):
        return not any(key == p or key.startswith(p + ".") for p in RESUME_MUTABLE_MODEL_PREFIXES)
    return False


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _find_stage(layers: list[tuple[str, DictConfig]]) -> str:
    stage, where = None, None
    for source, layer in layers:
        if "stage" in layer:
            stage, where = layer["stage"], source
    if stage is None:
        raise ConfigError(f"{_sources(layers)}: no 'stage' key (expected e.g. 'stage: parsing')")
    if not isinstance(stage, str):
        raise ConfigError(f"{where}: stage: expected str, got {type(stage).__name__}")
    return stage


def _find_dataset(layers: list[tuple[str, DictConfig]]) -> str | None:
    dataset = None
    for source, layer in layers:
        value = OmegaConf.select(layer, "data.dataset", default=None)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"{source}: data.dataset: expected str, got {type(value).__name__}")
            dataset = value
    return dataset


def _explain(err: OmegaConfBaseException, source: str, schema: DictConfig) -> str:
    key = err.full_key or "?"
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(schema, parent_key) if parent_key else schema
    if isinstance(err, ConfigKeyError) and isinstance(parent, DictConfig):
        valid = [str(k) for k in parent.keys()]
        hint = difflib.get_close_matches(leaf, valid, n=1)
        guess = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"{source}: unknown key {key!r} (expected one of: {', '.join(valid)}){guess}"
    expected = _expected_type(parent, leaf)
    return f"{source}: {key}: {_first_line(err)}" + (f" (expected {expected})" if expected else "")


def _expected_type(parent: Any, leaf: str) -> str | None:
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return None
    node = parent._get_node(leaf)
    metadata = getattr(node, "_metadata", None)
    if metadata is None or metadata.ref_type in (None, Any):
        return None
    return type_str(metadata.ref_type) + (" or null" if metadata.optional else "")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _sources(layers: list[tuple[str, DictConfig]]) -> str:
    return ", ".join(source for source, _ in layers) or "<no config files>"
