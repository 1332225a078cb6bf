"""Local ablation runner: a grid or a list of config overrides over a base experiment.

An ablation file (``experiments/ablations/<stage>/<name>.yaml``)::

    base: [experiments/reconstruction/synthetic.yaml]  # experiment file(s), merged in order
    overlays: []                       # more -c files (the command line adds its own after these)
    seeds: [0, 1]                      # every cell runs once per seed (seed=<s>)
    metrics: [val/error_sim_mm, val/error_mm]   # table columns (last validation of each run)
    plot: [val/error_sim_mm]           # metrics drawn in results.png (default: metrics)
    curves: [[val/error_sim_mm, val/mean_face_error_sim_mm]]  # learning-curve panels (default: one per plot metric)
    root: runs/ablations/<name>        # default run.root (a run.root=... override wins)
    grid:                              # cartesian product of values, one cell per combination
      model.loss.weights.land: [0.0, 1.6e-3]
    cells:                             # and/or named cells: name -> {key: value} overrides
      baseline: {}
      no_feat: {model.loss.weights.feat: 0.0}
      other: {_base: [experiments/<stage>/other.yaml], model.x: 1}  # _base replaces 'base' for this cell

Each (cell, seed) is a normal ``occrecon fit`` run in ``<root>/<cell>-s<seed>/`` (config,
checkpoints, logs). Overrides apply in this order: the command line's ``key=value`` words, then
the cell's, then ``seed``, ``run.root``, ``run.id`` (and, with ``logger.kind=wandb``,
``logger.group=<name>`` and the cell as the run name unless set). Resumable: a run whose
``ablation.json`` says it finished with the same overrides is skipped; a run directory with a
``last.ckpt`` but no marker (killed) is resumed (``run.resume=true``); any other leftover
directory is started again. Results: ``<root>/runs.csv`` (one row per run), ``results.csv`` and
``results.md`` (one row per cell: mean ± std over seeds, sample std) and ``results.png``.
Every run also writes ``metrics_history.jsonl`` (the chosen metrics after each validation), the
learning curves ``learning_curves.png`` draws.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from occrecon.errors import ConfigError
from occrecon.viz import metric_bars

log = logging.getLogger(__name__)

SPEC_KEYS = ("base", "overlays", "seeds", "metrics", "plot", "curves", "root", "grid", "cells")
MARKER = "ablation.json"
HISTORY = "metrics_history.jsonl"


@dataclass
class Cell:
    """One ablation cell: a name (used in run ids) and its ``key -> value`` overrides."""

    name: str
    overrides: dict[str, Any]
    base: list[str] | None = None  # replaces the spec's base files for this cell (key ``_base``)

    def words(self) -> list[str]:
        """The overrides as ``key=value`` words (values in YAML flow syntax)."""
        return [f"{k}={_yaml_value(v)}" for k, v in self.overrides.items()]


@dataclass
class AblationSpec:
    """A parsed ablation file (module docstring)."""

    name: str
    path: Path
    base: list[str]
    overlays: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    metrics: list[str] = field(default_factory=list)
    plot: list[str] = field(default_factory=list)
    curves: list[list[str]] = field(default_factory=list)
    root: str | None = None
    cells: list[Cell] = field(default_factory=list)


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "cell"


def _grid_name(overrides: Mapping[str, Any]) -> str:
    return "_".join(f"{k.rsplit('.', 1)[-1]}={_yaml_value(v)}" for k, v in overrides.items())


def load_spec(path: str | Path) -> AblationSpec:
    """Read and check an ablation file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: ablation file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {SPEC_KEYS}")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; an ablation file has {list(SPEC_KEYS)}")

    def str_list(key: str, default: list[str]) -> list[str]:
        value = raw.get(key, default)
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: '{key}' must be a list of strings, got {value!r}")
        return list(value)

    base = str_list("base", [])
    if not base:
        raise ConfigError(f"{path}: 'base' must name at least one experiment file")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    cells: list[Cell] = []
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' must map config keys to non-empty lists of values")
    if grid:
        for values in itertools.product(*grid.values()):
            overrides = dict(zip(grid.keys(), values, strict=True))
            cells.append(Cell(_slug(_grid_name(overrides)), overrides))
    named = raw.get("cells") or {}
    if not isinstance(named, dict) or not all(isinstance(v, dict | type(None)) for v in named.values()):
        raise ConfigError(f"{path}: 'cells' must map cell names to {{key: value}} overrides")
    for n, o in named.items():
        o = dict(o or {})
        cell_base = o.pop("_base", None)
        if cell_base is not None and (
            not isinstance(cell_base, list) or not all(isinstance(b, str) for b in cell_base)
        ):
            raise ConfigError(f"{path}: cells.{n}._base must be a list of experiment files")
        cells.append(Cell(_slug(str(n)), o, cell_base))
    if not cells:
        raise ConfigError(f"{path}: no cells: give 'grid' and/or 'cells'")
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: duplicate cell names {sorted({n for n in names if names.count(n) > 1})}")
    metrics = str_list("metrics", [])
    curves = raw.get("curves") or []
    if not isinstance(curves, list) or not all(
        isinstance(c, list) and all(isinstance(m, str) for m in c) for c in curves
    ):
        raise ConfigError(f"{path}: 'curves' must be a list of panels, each a list of metric names")
    return AblationSpec(
        name=path.stem, path=path, base=base, overlays=str_list("overlays", []), seeds=list(seeds),
        metrics=metrics, plot=str_list("plot", metrics), curves=curves, root=raw.get("root"), cells=cells,
    )  # fmt: skip


def resolve_path(name: str, anchor: Path | None = None) -> Path:
    """A config path as given, else relative to the repository (the folder above ``experiments/``)."""
    path = Path(name)
    if path.is_file() or path.is_absolute():
        return path
    repo = Path(__file__).resolve().parents[1]
    for candidate in (repo / name, *(p / name for p in ([anchor] if anchor else []))):
        if candidate.is_file():
            return candidate
    return path  # load_config names it as missing


class MetricsHistory(L.Callback):
    """Append the chosen metrics (and epoch/step) to ``<run>/metrics_history.jsonl`` after each validation."""

    def __init__(self, path: Path, metrics: Sequence[str]) -> None:
        self.path, self.metrics = Path(path), list(metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if not self.metrics or k in self.metrics}
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """Rows of a run's ``metrics_history.jsonl`` (empty when absent)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunResult:
    cell: str
    seed: int
    run_dir: Path
    metrics: dict[str, float]
    seconds: float
    status: str  # "ran", "resumed", "skipped"


def logger_words(cfg: Any, ablation: str, cell: str, run_id: str) -> list[str]:
    """With ``logger.kind=wandb``: the ablation as the W&B group, the run id as the run name (unless
    set) and tags ``[ablation, <ablation>, <cell>]``; nothing for other loggers."""
    from occrecon.config.load import to_plain

    if str(to_plain(cfg.logger)["kind"]) != "wandb":
        return []
    words = [] if cfg.logger.group else [f"logger.group={ablation}"]
    words += [] if cfg.logger.name else [f"logger.name={run_id}"]
    return [*words, f"logger.tags=[ablation,{ablation},{cell}]"]


def run_cell(
    spec: AblationSpec, cell: Cell, seed: int, configs: Sequence[str | Path], overrides: Sequence[str], root: Path
) -> RunResult:
    """Run (or skip, or resume) one (cell, seed); returns its final metrics."""
    from occrecon.config.load import load_config
    from occrecon.training import run_command

    run_id = f"{cell.name}-s{seed}"
    run_dir = root / run_id
    marker = run_dir / MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("overrides") == cell.words() and done.get("base") == cell.base and done.get("finished"):
            return RunResult(cell.name, seed, run_dir, done["metrics"], done["seconds"], "skipped")
        log.warning("ablation %s: cell %s changed since its run; running it again", spec.name, run_id)
    words = [*overrides, *cell.words(), f"seed={seed}", f"run.root={root}", f"run.id={run_id}"]
    words += logger_words(load_config(configs, words), spec.name, cell.name, run_id)
    resumed = (run_dir / "checkpoints" / "last.ckpt").is_file()
    status = "resumed" if resumed else "ran"
    if run_dir.exists():
        words.append("run.resume=true" if resumed else "run.overwrite=true")
        if not resumed:
            (run_dir / HISTORY).unlink(missing_ok=True)
    if marker.is_file():  # finished with other overrides: start again
        marker.unlink()
        words[-1], status = "run.overwrite=true", "ran"
        (run_dir / HISTORY).unlink(missing_ok=True)
    cfg = load_config(configs, words)
    start = time.perf_counter()
    print(f"[ablate] {spec.name}: {status} {run_id} ({' '.join(cell.words()) or 'base config'})")
    trainer, paths = run_command("fit", cfg, callbacks=[MetricsHistory(run_dir / HISTORY, ())])  # every logged metric
    seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt(f"ablation run {run_id} interrupted; call the ablation again to resume it")
    history = read_history(run_dir)
    final = {k: v for k, v in trainer.callback_metrics.items() if not spec.metrics or k in spec.metrics}
    # the last validation of the history, updated by the trainer's final values (a resumed run that
    # had already finished validates nothing new)
    metrics = {**(history[-1] if history else {}), **{k: float(v) for k, v in final.items()}}
    metrics = {k: v for k, v in metrics.items() if k not in ("epoch", "step")}
    marker.write_text(
        json.dumps(
            {
                "cell": cell.name,
                "seed": seed,
                "overrides": cell.words(),
                "base": cell.base,
                "metrics": metrics,
                "seconds": seconds,
                "finished": True,
            },
            indent=2,
        )
        + "\n"  # fmt: skip
    )
    return RunResult(cell.name, seed, paths.dir, metrics, seconds, status)


def run_ablation(
    spec: AblationSpec,
    configs: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
    only: Sequence[str] | None = None,
) -> tuple[list[RunResult], Path]:
    """Run every (cell, seed) of ``spec`` in turn, then write the tables and plots; returns results and root.

    ``configs``: extra ``-c`` overlays (after the spec's base and overlays); ``overrides``:
    ``key=value`` words (``run.root=...`` sets the ablation root).
    """
    root_words = [o for o in overrides if o.startswith("run.root=")]
    rest = [o for o in overrides if not o.startswith("run.root=")]
    root = Path(root_words[-1].split("=", 1)[1]) if root_words else Path(spec.root or f"runs/ablations/{spec.name}")
    root.mkdir(parents=True, exist_ok=True)

    def files(cell: Cell) -> list[Path]:
        base = [*(cell.base or spec.base), *spec.overlays]
        return [resolve_path(p, spec.path.parent) for p in base] + [Path(c) for c in configs]

    cells = [c for c in spec.cells if not only or c.name in only]
    if only and len(cells) != len(set(only)):
        raise ConfigError(f"--only {list(only)}: unknown cell(s); cells: {[c.name for c in spec.cells]}")
    results = []
    for cell in cells:
        for seed in seeds or spec.seeds:
            results.append(run_cell(spec, cell, seed, files(cell), rest, root))
    write_results(spec, results, root)
    return results, root


# -- tables and plots ------------------------------------------------------------------------------
def summarise(results: Sequence[RunResult], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per cell: ``cell, seeds, <m>_mean, <m>_std`` (sample std; 0 for one seed, NaN-free)."""
    rows = []
    for cell in dict.fromkeys(r.cell for r in results):
        mine = [r for r in results if r.cell == cell]
        row: dict[str, Any] = {"cell": cell, "seeds": len(mine), "minutes": sum(r.seconds for r in mine) / 60.0}
        for m in metrics:
            values = [r.metrics[m] for r in mine if m in r.metrics and not math.isnan(r.metrics[m])]
            mean = sum(values) / len(values) if values else math.nan
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
            row[f"{m}_mean"], row[f"{m}_std"] = mean, (math.sqrt(var) if values else math.nan)
        rows.append(row)
    return rows


def write_results(spec: AblationSpec, results: Sequence[RunResult], root: Path) -> dict[str, Path]:
    """``runs.csv``, ``results.csv``, ``results.md``, ``results.png`` and ``learning_curves.png`` under ``root``."""
    metrics = spec.metrics or sorted({k for r in results for k in r.metrics})
    with (root / "runs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell", "seed", "status", "seconds", *metrics, "run_dir"])
        for r in results:
            writer.writerow(
                [r.cell, r.seed, r.status, f"{r.seconds:.1f}", *(r.metrics.get(m, "") for m in metrics), r.run_dir]
            )
    rows = summarise(results, metrics)
    with (root / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["cell"])
        writer.writeheader()
        writer.writerows(rows)
    overrides = {c.name: " ".join(c.words()) or "(base)" for c in spec.cells}
    lines = [
        f"# Ablation `{spec.name}` ({spec.path})",
        "",
        "| cell | overrides | seeds | " + " | ".join(metrics) + " | minutes |",
        "|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for row in rows:
        cells = [f"{row[f'{m}_mean']:.4g} ± {row[f'{m}_std']:.2g}" for m in metrics]
        lines.append(
            f"| {row['cell']} | `{overrides.get(row['cell'], '')}` | {row['seeds']} | "
            + " | ".join(cells)
            + f" | {row['minutes']:.1f} |"
        )
    (root / "results.md").write_text("\n".join(lines) + "\n")
    written = {"runs": root / "runs.csv", "csv": root / "results.csv", "markdown": root / "results.md"}
    if rows and (spec.plot or metrics):
        written["plot"] = metric_bars(rows, spec.plot or metrics, root / "results.png", spec.name)
        panels = spec.curves or [[m] for m in (spec.plot or metrics)]
        written["curves"] = plot_curves(results, panels, root / "learning_curves.png")
    return written


def plot_curves(results: Sequence[RunResult], panels: Sequence[Sequence[str]], path: Path) -> Path:
    """Learning curves (metrics after each validation vs optimizer step) of every run, one panel per
    group of metrics (e.g. a model's error next to the mean face's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for r in results:
            for m in panel:
                history = [h for h in read_history(r.run_dir) if m in h]
                if history:
                    label = f"{r.cell} s{r.seed}" + (f": {m}" if len(panel) > 1 else "")
                    ax.plot([h["step"] for h in history], [h[m] for h in history], marker=".", label=label)
        ax.set_xlabel("optimizer step")
        ax.set_title(", ".join(panel), fontsize=8)
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
