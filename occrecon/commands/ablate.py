"""CLI plug-in: ``occrecon ablate experiments/ablations/<stage>/<name>.yaml [-c overlay.yaml ...] [key=value ...]``.

Runs every cell of an ablation file (a grid and/or a list of overrides over a base experiment)
locally, one ``fit`` run per (cell, seed), resumably, and writes ``results.md``/``results.csv``/
``results.png`` under the ablation's root (``run.root=...`` overrides it). The file format and
the resume rules: :mod:`occrecon.ablation`.
"""

from __future__ import annotations

import argparse


def run_ablate(args: argparse.Namespace) -> int:
    """Handler of ``occrecon ablate``; 0 when every run finished."""
    from occrecon.ablation import load_spec, run_ablation

    spec = load_spec(args.spec)
    if args.list:
        for cell in spec.cells:
            print(f"{cell.name}: {' '.join(cell.words()) or '(base config)'}")
        return 0
    results, root = run_ablation(spec, args.config or [], args.overrides, args.seeds, args.only)
    print((root / "results.md").read_text())
    counts = {s: sum(r.status == s for r in results) for s in ("ran", "resumed", "skipped")}
    print(f"[ablate] {len(results)} runs ({counts['ran']} ran, {counts['resumed']} resumed, "
          f"{counts['skipped']} already finished); results in {root}")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ablate``."""
    parser = subparsers.add_parser(
        "ablate", help="run an ablation grid/list of overrides locally (resumable) and tabulate it",
        description="Run each cell x seed of an ablation file as a normal fit run (finished runs are skipped, "
                    "killed ones resumed) and write results.md, results.csv and results.png.",
    )  # fmt: skip
    parser.add_argument("spec", help="ablation file, e.g. experiments/ablations/reconstruction/loss_weights.yaml")
    parser.add_argument("-c", "--config", action="append", metavar="YAML", help="overlay added to every cell")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="overrides for every cell (run.root=DIR)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the file's)")
    parser.add_argument("--only", nargs="+", default=None, metavar="CELL", help="run only these cells")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    parser.set_defaults(handler=run_ablate, accepts_overrides=True)
