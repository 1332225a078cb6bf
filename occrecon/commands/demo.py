"""``occrecon demo``: the main job on the embedded synthetic default.

Generates a small synthetic occluded-face data set (if absent), trains every stage that exists
briefly on it (``experiments/<stage>/synthetic.yaml`` + ``experiments/demo/<stage>.yaml``), and
writes ``<out>/report.md`` with a picture grid per stage and the numbers measured.

Adding a stage to the demo (the ``demo_section`` contract):

* ``experiments/<stage>/synthetic.yaml`` and ``experiments/demo/<stage>.yaml`` configure its run;
* ``occrecon/evaluation/<stage>.py`` defines
  ``demo_section(system, datamodule, out_dir) -> occrecon.report.ReportSection``: ``system`` is
  the trained LightningModule (``trainer.lightning_module``), ``datamodule`` the data module it
  was trained with (evaluate on its test split, else val: :func:`occrecon.evaluation.common.eval_loader`),
  ``out_dir`` the report folder (a :class:`pathlib.Path`; write pictures there, name them in
  ``ReportSection.figures`` relative to it). Extra parameters must have defaults;
* the stage name goes into :data:`DEMO_STAGES` (pipeline order).

The demo finds the function by the stage name (:func:`stage_section`), so nothing else changes.
Sections combining trained stages (the fusion ``M_fin``) are added after the stages they need.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Stages the demo trains, in pipeline order (each needs experiments/<stage>/synthetic.yaml,
#: experiments/demo/<stage>.yaml and a ``demo_section`` function in occrecon/evaluation/<stage>.py).
DEMO_STAGES: tuple[str, ...] = ("parsing", "edge_lines", "synthesis", "reconstruction", "detail", "pipeline")
TINY_N = 12
"""Samples of a ``--tiny`` smoke run (enough for non-empty train/val/test splits)."""


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder (next to the package), else ``./experiments``."""
    beside_package = Path(__file__).resolve().parents[2] / "experiments"
    return beside_package if beside_package.is_dir() else Path("experiments").resolve()


def ensure_synthetic(data_dir: Path, n: int, size: int, seed: int, workers: int | None) -> tuple[Path, float]:
    """Generate (or finish) the demo data set; returns its folder and the seconds spent."""
    from occrecon.synth.config import SynthConfig
    from occrecon.synth.dataset_writer import generate_dataset
    from occrecon.synth.fields import FORMAT_NAME, FORMAT_VERSION
    from occrecon.synth.reader import load_manifest

    start = time.perf_counter()
    path = data_dir / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        version = manifest.get("format_version")
        if manifest.get("format") == FORMAT_NAME and version != FORMAT_VERSION:
            # the demo's own generated set, written by another occrecon: regenerate it (about 30 s)
            print(f"[demo] {data_dir} holds synthetic format {version}, this occrecon writes {FORMAT_VERSION}: regenerating it")
            shutil.rmtree(data_dir)
        elif manifest.get("complete"):
            config = load_manifest(data_dir)["config"]
            if (config["n"], config["size"], config["seed"]) == (n, size, seed):
                return data_dir, 0.0
    print(f"[demo] generating {n} synthetic samples at {size} px into {data_dir}")
    generate_dataset(SynthConfig(n=n, size=size, seed=seed), data_dir, workers=workers)
    return data_dir, time.perf_counter() - start


def data_section(data_dir: Path, out: Path, seconds: float):
    """Report section of the data set: counts and the preview grid."""
    from occrecon.report import ReportSection
    from occrecon.synth.preview import save_dataset_preview
    from occrecon.synth.reader import SyntheticDataset

    dataset = SyntheticDataset(data_dir)
    save_dataset_preview(data_dir, out / "synthetic.png", count=6)
    identities = {int(dataset[i]["identity"]) for i in range(len(dataset))}
    glasses = sum(int(dataset[i]["glasses"]) > 0 for i in range(len(dataset)))
    return ReportSection(
        title="Synthetic occluded faces (the embedded default)",
        text=(
            f"`{data_dir}`: rendered by occrecon's own renderer from the procedural face model "
            "(see `docs/synthetic.md` for every field). Columns: `I_in` (with occluders), `I_gt` "
            "(same scene without), parsing with and without occluders, occluder map, landmarks + "
            "edge lines, coarse depth `d`, bump map `Phi` (Eq. 5), normals."
        ),
        metrics={
            "samples": len(dataset),
            "identities": len(identities),
            "samples with glasses": glasses,
            "generation time (s)": round(seconds, 1),
        },
        figures=[("synthetic samples", "synthetic.png")],
    )


def stage_section(stage: str) -> Callable[..., Any]:
    """``occrecon.evaluation.<stage>.demo_section`` (module docstring); ConfigError when absent."""
    from occrecon.errors import ConfigError

    try:
        module = importlib.import_module(f"occrecon.evaluation.{stage}")
    except ModuleNotFoundError as err:
        if err.name != f"occrecon.evaluation.{stage}":
            raise
        raise ConfigError(f"demo stage {stage!r}: expected a module occrecon/evaluation/{stage}.py") from None
    if not callable(getattr(module, "demo_section", None)):
        raise ConfigError(f"demo stage {stage!r}: occrecon/evaluation/{stage}.py has no demo_section function")
    return module.demo_section


def train_stage(stage: str, out: Path, data_dir: Path, overrides: list[str], tiny: bool = False):
    """``fit`` one stage on the demo data, then build its report section (``tiny``: with the
    ``experiments/debug/tiny.yaml`` smoke budget on top of the demo budget).

    Returns the section and the trainer (its ``lightning_module`` and ``datamodule`` are reused by
    the sections that combine stages, e.g. the fusion ``M_fin``)."""
    from occrecon.config.load import load_config
    from occrecon.training import run_command

    experiments = experiments_dir()
    files = [f"{stage}/synthetic.yaml", f"demo/{stage}.yaml", *(["debug/tiny.yaml"] if tiny else [])]
    cfg = load_config(
        [experiments / name for name in files],
        [f"run.root={out / 'runs'}", f"run.id={stage}", "run.overwrite=true", f"data.root={data_dir}", "logger.kind=csv", *overrides],
    )
    start = time.perf_counter()
    trainer, paths = run_command("fit", cfg)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    section = stage_section(stage)(trainer.lightning_module, trainer.datamodule, out)
    command = "occrecon fit " + " ".join(f"-c experiments/{name}" for name in files) + f" data.root={data_dir}"
    section.text = (section.text + "\n\n" if section.text else "") + (
        f"Trained for {trainer.global_step} optimizer steps in {fit_seconds:.0f} s, evaluated in "
        f"{time.perf_counter() - start:.0f} s; run directory `{paths.dir}` (config, checkpoints, CSV logs). "
        f"Reproduce: `{command}`."
    )
    return section, trainer


def fusion_section(parsing_trainer, edge_trainer, out: Path):
    """``M_fin`` from the two trained 2D networks, scored against the baselines (paper §3.3)."""
    from occrecon.evaluation.fusion import demo_section

    section = demo_section(parsing_trainer.lightning_module, edge_trainer.lightning_module, parsing_trainer.datamodule, out)
    section.text = (section.text + "\n\n" if section.text else "") + (
        "With briefly trained networks the edge lines are weak, and the fusion is only as good as "
        "its lines: `docs/fusion.md` gives the same measurement with ground-truth inputs "
        "(`occrecon eval fusion --data DIR`), where M_fin beats both baselines."
    )
    return section


def pipeline_overrides(trained: tuple[str, ...], out: Path) -> list[str]:
    """The chain takes every stage the demo trained from that run's ``last.ckpt`` (its config too)."""
    return [f"model.stages.{stage}.ckpt={out / 'runs' / stage / 'checkpoints' / 'last.ckpt'}" for stage in trained]


def identity_overrides() -> list[str]:
    """``model.identity=dlib`` once the dlib identity weights are cached (fetched here with npm), so
    the coarse stage trains with all four Eq. 4 terms; without them L_feat stays off, with a warning
    (not for `--tiny`: smoke runs never touch the network)."""
    from occrecon.assets.face_api import fetch_face_recognition
    from occrecon.errors import OccreconError

    try:
        fetch_face_recognition()
    except OccreconError as err:
        print(f"[demo] warning: L_feat stays off (identity weights unavailable): {err}")
        return []
    return ["model.identity=dlib"]


def run_demo(out: Path, data_dir: Path, n: int, size: int, seed: int, stages: tuple[str, ...], workers: int | None, overwrite: bool, overrides: list[str], tiny: bool = False) -> Path:
    """The whole main job; returns the report path (``tiny``: smoke budget, see :func:`train_stage`)."""
    from occrecon.errors import ConfigError
    from occrecon.report import write_report

    report = out / "report.md"
    if report.exists() and not overwrite:
        raise ConfigError(f"{report} exists; pass --overwrite to run the demo again")
    for stage in stages:
        stage_section(stage)  # a stage without its evaluation module fails before any training
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data_dir, seconds = ensure_synthetic(data_dir, n, size, seed, workers)
    sections = [data_section(data_dir, out, seconds)]
    trainers = {}
    for stage in stages:
        print(f"[demo] training stage {stage!r}")
        extra = pipeline_overrides(tuple(trainers), out) if stage == "pipeline" else []
        extra += identity_overrides() if (stage == "reconstruction" and not tiny) else []
        section, trainers[stage] = train_stage(stage, out, data_dir, [*overrides, *extra], tiny)
        sections.append(section)
        if stage == "edge_lines" and "parsing" in trainers:
            sections.append(fusion_section(trainers["parsing"], trainers["edge_lines"], out))
    total = time.perf_counter() - start
    preamble = (
        f"Main job of occrecon on the embedded synthetic default: {len(stages)} stage(s) trained "
        f"briefly on {n} samples at {size} px. Total wall time {total / 60:.1f} min on "
        f"{platform.machine()} ({_cpu_count()} CPU cores). These are smoke-scale trainings: the "
        "numbers show the pipeline works end to end, not the paper's accuracy."
    )
    write_report(report, "occrecon demo report", sections, preamble)
    print(f"[demo] wrote {report} in {total:.0f} s")
    return report


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(args: argparse.Namespace) -> int:
    stages = tuple(args.stages.split(",")) if args.stages else DEMO_STAGES
    n, size = args.n or (TINY_N if args.tiny else 480), args.size or (64 if args.tiny else 128)
    run_demo(Path(args.out), Path(args.data), n, size, args.seed, stages, args.workers, args.overwrite, args.overrides, args.tiny)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="main job: synthetic data -> train each stage briefly -> report.md", description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    parser.add_argument("--data", default="data/synthetic-demo", help="synthetic data folder (generated if absent)")
    parser.add_argument("--n", type=int, default=None, help=f"number of synthetic samples (default 480; {TINY_N} with --tiny)")
    parser.add_argument("--size", type=int, default=None, help="image side of the synthetic data (px; default 128, 64 with --tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of {','.join(DEMO_STAGES)}")
    parser.add_argument("--workers", type=int, default=None, help="processes for data generation (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke run: experiments/debug/tiny.yaml on every stage, 64 px data (seconds per stage; the numbers mean nothing)")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides applied to every stage")
    parser.set_defaults(handler=run)
