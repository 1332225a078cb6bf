"""Stage registry: ``stage: <name>`` in a config -> system, data module and their schemas.

Adding a stage is one :class:`StageSpec` entry in :data:`STAGES`. Every reference is a
``"module:attr"`` string imported lazily, so listing the registry (``occrecon --help``) and
loading unrelated configs import no stage code; a reference to a module that does not exist
yet fails with a :class:`ConfigError` naming the stage and the missing module.

Plug-in stages (tests, notebooks, user packages) need no entry here: ``stage: "pkg.mod:SPEC"``
names a module attribute holding a :class:`StageSpec` (``tests/toy_stage.py`` does this).

Contract for the referenced classes:

- ``System(**model_cfg)``: a LightningModule whose ``__init__`` takes the stage's ``model``
  section as keyword arguments (plain dicts/lists/scalars, never OmegaConf objects) and calls
  ``self.save_hyperparameters()`` so checkpoints load with ``torch.load(weights_only=True)``.
- ``DataModule(**data_cfg)``: a LightningDataModule taking the ``data`` section likewise.
- ``model_schema``/``data_schema``: dataclasses extending
  :class:`occrecon.config.schema.BaseModelConfig` / :class:`~occrecon.config.schema.BaseDataConfig`.

Data sets: ``data.dataset: <name>`` picks the data module from :data:`DATASETS` (one module per
data set, shared by every stage that trains on it); the ``data`` section is then typed by that
module's ``__init__`` signature (:func:`occrecon.config.signature.schema_from_signature`). A stage
without a data module of its own (``datamodule=None``) requires ``data.dataset``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from occrecon.errors import ConfigError


@dataclass(frozen=True)
class StageSpec:
    """One training stage. Each field after ``name`` is a ``"module:attr"`` reference."""

    name: str
    system: str
    model_schema: str
    datamodule: str | None = None
    data_schema: str | None = None
    description: str = ""

    def load(self, field_name: str) -> Any:
        """Import and return the object named by ``field_name`` (``system``, ``datamodule``, ...)."""
        ref = getattr(self, field_name)
        if ref is None:
            raise ConfigError(f"stage {self.name!r} has no {field_name} of its own: set data.dataset (one of {', '.join(sorted(DATASETS))})")
        return import_ref(ref, what=f"stage {self.name!r} {field_name}")


def import_ref(ref: str, what: str = "object") -> Any:
    """Import ``"package.module:attr"``; a missing module or attribute raises :class:`ConfigError`."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what}: {ref!r} is not a 'package.module:attr' reference")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # Only translate "this module is missing"; an ImportError inside it is a real bug to show.
        if err.name and module_name.startswith(err.name):
            raise ConfigError(f"{what}: module {module_name!r} (from {ref!r}) does not exist yet") from err
        raise
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ConfigError(f"{what}: {module_name!r} has no attribute {attr!r} (from {ref!r})") from err


def _spec(name: str, stem: str, description: str) -> StageSpec:
    # Convention for built-in stages: occrecon/systems/<name>.py holds <Stem>System and its
    # <Stem>ModelConfig; the data come from a data set module chosen by ``data.dataset``.
    return StageSpec(
        name=name,
        system=f"occrecon.systems.{name}:{stem}System",
        model_schema=f"occrecon.systems.{name}:{stem}ModelConfig",
        description=description,
    )


DATASETS: dict[str, str] = {
    "synthetic": "datamodules.synthetic:SyntheticDataModule",
    "helen": "datamodules.helen:HelenDataModule",
    "celebamask_hq": "datamodules.celebamask_hq:CelebAMaskHQDataModule",
    "w300": "datamodules.w300:W300DataModule",
    "aflw": "datamodules.aflw:AFLWDataModule",
    "lfw": "datamodules.lfw:LFWDataModule",
    "glasses_paste": "datamodules.glasses_paste:GlassesPasteDataModule",
}
"""``data.dataset`` name -> its LightningDataModule (``"module:Class"``)."""


def get_dataset(name: str) -> Any:
    """The data module class of a registered data set name or a ``"module:Class"`` reference."""
    if name in DATASETS:
        return import_ref(DATASETS[name], what=f"data set {name!r}")
    if ":" in name:
        return import_ref(name, what=f"data set {name!r}")
    raise ConfigError(f"unknown data.dataset {name!r}; registered: {', '.join(sorted(DATASETS))} (or 'package.module:Class')")


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        _spec("parsing", "Parsing", "face parsing / occlusion segmentation"),
        _spec("edge_lines", "EdgeLines", "facial edge-line heatmaps"),
        _spec("synthesis", "Synthesis", "de-occlusion image synthesis"),
        _spec("reconstruction", "Reconstruction", "coarse 3D reconstruction (morphable-model coefficients)"),
        _spec("detail", "Detail", "detail bump maps"),
        _spec("pipeline", "Pipeline", "composite of the chained stages"),
    )
}


def register(spec: StageSpec, overwrite: bool = False) -> StageSpec:
    """Add ``spec`` to :data:`STAGES` at run time (plug-ins); refuses to replace silently."""
    if spec.name in STAGES and STAGES[spec.name] != spec and not overwrite:
        raise ConfigError(f"stage {spec.name!r} is already registered ({STAGES[spec.name]})")
    STAGES[spec.name] = spec
    return spec


def get_stage(name: str) -> StageSpec:
    """The :class:`StageSpec` for a registered name or a ``"module:attr"`` plug-in reference."""
    if name in STAGES:
        return STAGES[name]
    if ":" in name:
        spec = import_ref(name, what=f"stage {name!r}")
        if not isinstance(spec, StageSpec):
            raise ConfigError(f"stage {name!r}: expected a StageSpec, got {type(spec).__name__}")
        return spec
    known = ", ".join(sorted(STAGES))
    raise ConfigError(f"unknown stage {name!r}; registered stages: {known} (or 'package.module:SPEC')")
