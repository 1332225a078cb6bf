"""Every YAML under experiments/ loads against the schema (a new bad file fails the suite).

- ``experiments/<stage>/*.yaml``: loaded on their own and with ``debug/tiny.yaml``; the stage
  they name must be registered and its modules written (a missing module fails loudly).
- ``trainer/``, ``logger/``, ``debug/``: overlays, merged over the test-only toy stage.
- ``ablations/<stage>/*.yaml`` and ``demo/<stage>.yaml``: overlays of one stage, merged over
  ``<stage>/synthetic.yaml``.
- ``sweeps/``: W&B sweep files; their ``command`` must end in ``${args_no_hyphens}``, and once the
  experiment files they run exist, every swept parameter must be a valid key of that config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from occrecon.config.load import load_config, read_yaml, to_plain
from occrecon.registry import STAGES
from tests.toy_stage import TOY

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
OVERLAY_DIRS = {"trainer", "logger", "debug"}
STAGE_OVERLAY_DIRS = {"ablations", "demo"}
ALL_YAML = sorted(p for p in EXPERIMENTS.rglob("*") if p.suffix in (".yaml", ".yml"))


def _kind(path: Path) -> str:
    top = path.relative_to(EXPERIMENTS).parts[0]
    if top in OVERLAY_DIRS:
        return "overlay"
    if top == "sweeps":
        return "sweep"
    if top in STAGE_OVERLAY_DIRS:
        # `occrecon ablate` files (a top-level `base:`) are checked cell by cell in tests/test_ablation.py
        return "ablation_spec" if "base" in (yaml.safe_load(path.read_text()) or {}) else "stage_overlay"
    return "stage"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(EXPERIMENTS)) for p in paths]


def test_the_framework_files_are_there() -> None:
    names = set(_ids(ALL_YAML))
    for required in ("trainer/cpu.yaml", "trainer/gpu.yaml", "trainer/ddp.yaml", "trainer/slurm.yaml",
                     "logger/csv.yaml", "logger/wandb.yaml", "logger/tensorboard.yaml", "debug/tiny.yaml"):
        assert required in names
    assert any(_kind(p) == "sweep" for p in ALL_YAML)


@pytest.mark.parametrize("path", [p for p in ALL_YAML if _kind(p) == "overlay"],
                         ids=_ids([p for p in ALL_YAML if _kind(p) == "overlay"]))
def test_overlay_loads_over_the_toy_stage(path: Path) -> None:
    raw = read_yaml(path)
    assert "stage" not in raw, "overlays must not choose the stage"
    cfg = to_plain(load_config([path], [f"stage={TOY}"]))
    for section, values in raw.items():
        for key, value in values.items():
            assert cfg[section][key] == value, f"{section}.{key}"



STAGE_YAML = [p for p in ALL_YAML if _kind(p) == "stage"]


@pytest.mark.parametrize("path", STAGE_YAML, ids=_ids(STAGE_YAML))
def test_stage_experiment_loads(path: Path) -> None:
    raw = read_yaml(path)
    folder = path.relative_to(EXPERIMENTS).parts[0]
    assert raw.get("stage") == folder, f"{path}: experiments/<stage>/ must set 'stage: {folder}'"
    assert raw["stage"] in STAGES, f"{path}: stage {raw['stage']!r} is not registered in occrecon/registry.py"
    load_config([path])
    tiny = load_config([path, EXPERIMENTS / "debug" / "tiny.yaml"])
    assert (tiny.trainer.max_epochs, tiny.model.width, tiny.data.image_size) == (1, 8, 64)


STAGE_OVERLAYS = [p for p in ALL_YAML if _kind(p) == "stage_overlay"]


def _overlaid_stage(path: Path) -> str:
    parts = path.relative_to(EXPERIMENTS).parts
    return parts[1] if len(parts) > 2 else path.stem  # ablations/<stage>/x.yaml or demo/<stage>.yaml


@pytest.mark.parametrize("path", STAGE_OVERLAYS, ids=_ids(STAGE_OVERLAYS))
def test_stage_overlay_loads_over_its_stage(path: Path) -> None:
    stage = _overlaid_stage(path)
    assert stage in STAGES, f"{path}: names no registered stage"
    raw = read_yaml(path)
    assert "stage" not in raw, "overlays must not choose the stage"
    load_config([EXPERIMENTS / stage / "synthetic.yaml", path])


SWEEPS = [p for p in ALL_YAML if _kind(p) == "sweep"]


@pytest.mark.parametrize("path", SWEEPS, ids=_ids(SWEEPS))
def test_sweep_file_drives_the_cli(path: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert {"program", "method", "parameters", "command"} <= set(sweep)
    command = sweep["command"]
    assert command[-1] == "${args_no_hyphens}", "parameters must arrive as key.sub=value words"
    assert "fit" in command
    configs = [EXPERIMENTS.parent / command[i + 1] for i, word in enumerate(command) if word == "-c"]
    assert configs
    keys = list(sweep["parameters"])
    assert all("." in key and "=" not in key for key in keys)
    if all(c.is_file() for c in configs):
        # A value from each parameter's own range, so a typo in a key fails here.
        values = [f"{k}={_example(v)}" for k, v in sweep["parameters"].items()]
        load_config(configs, values)
    else:
        # Waiting for a stage's experiment file: it must be one of a registered stage; the
        # overlays the sweep uses must already load.
        for config in configs:
            rel = config.relative_to(EXPERIMENTS)
            if config.is_file():
                load_config([config], [f"stage={TOY}"] if _kind(config) == "overlay" else [])
            else:
                assert rel.parts[0] in STAGES, f"{path}: {rel} is not an experiment of a registered stage"


def _example(spec: dict) -> object:
    if "values" in spec:
        return spec["values"][0]
    if "value" in spec:
        return spec["value"]
    return spec["min"]
