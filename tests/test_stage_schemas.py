"""Each stage's typed model schema and its System constructor agree (names and defaults).

The schema dataclass types the config (unknown keys and wrong types fail at load time); the
constructor is what ``System(**model)`` calls. A default changed in one place and not the other
would make a config-built system differ from a hand-built one, so the two are pinned together.
"""

import inspect

import pytest
from omegaconf import OmegaConf

from occrecon.registry import STAGES

BUILT = ["parsing", "edge_lines", "synthesis", "reconstruction", "detail", "pipeline"]


@pytest.mark.parametrize("stage", BUILT)
def test_schema_fields_are_the_constructor_arguments(stage: str) -> None:
    spec = STAGES[stage]
    schema = OmegaConf.to_container(OmegaConf.structured(spec.load("model_schema")))
    params = {k: p for k, p in inspect.signature(spec.load("system").__init__).parameters.items() if k != "self"}
    assert set(schema) == set(params), f"{stage}: schema-only {set(schema) - set(params)}, constructor-only {set(params) - set(schema)}"
    for key, value in schema.items():
        default = params[key].default
        if isinstance(value, dict):
            assert default is None, f"{stage}: nested section {key!r} takes its defaults from the schema"
        else:
            assert default == value, f"{stage}: model.{key} defaults to {value!r} in the schema but {default!r} in the constructor"


@pytest.mark.parametrize("stage", BUILT)
def test_system_built_from_schema_defaults(stage: str) -> None:
    spec = STAGES[stage]
    model = OmegaConf.to_container(OmegaConf.structured(spec.load("model_schema")))
    model["width"] = 8  # small, the architecture is otherwise the default one
    if stage == "reconstruction":
        model.update(identity="none", depth=18)
    if stage == "synthesis":
        model.update(identity="none")
    if stage == "pipeline":  # a chain needs a stage; it gets the pipeline's width
        model["stages"] = {"reconstruction": {"model": {"identity": "none", "depth": 18}}}
    system = spec.load("system")(**model)
    assert system.hparams["width"] == 8
