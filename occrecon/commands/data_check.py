"""CLI plug-in: ``occrecon data check <dataset> --root DIR`` (see :mod:`occrecon.data_check`)."""

from __future__ import annotations

import argparse

from occrecon.data_check import DATASETS, check_dataset, format_problems, format_table
from occrecon.errors import OccreconError

GROUP = "data"


def run(args: argparse.Namespace) -> int:
    """Print the per-split table and the problems; 0 when clean, 1 when anything is wrong."""
    try:
        reports = check_dataset(args.dataset, args.root)
    except OccreconError as err:  # e.g. the root does not exist: say where to get the data
        print(f"error: {err}")
        return 1
    print(format_table(reports))
    failed = [r for r in reports if r.failed]
    if failed:
        print("\nproblems:")
        print(format_problems(reports, limit=args.max_problems))
        return 1
    print("\nno problems found")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``check`` to the ``data`` group."""
    parser = subparsers.add_parser("check", help="count samples and problems of a data set, per split")
    parser.add_argument("dataset", choices=sorted(DATASETS), help="data set to check")
    parser.add_argument(
        "--root", default=None, help="data set folder (default: $OCCRECON_<NAME> or $OCCRECON_DATA/<folder>)"
    )
    parser.add_argument("--max-problems", type=int, default=50, help="problem messages to print")
    parser.set_defaults(handler=run)
