"""CLI plug-in: ``occrecon eval fusion --data DIR [--parsing-ckpt P] [--edge-ckpt E] [--split S]``.

Scores the fused parsing ``M_fin`` against the two baselines inside the occluder mask of a
synthetic data set (:mod:`occrecon.evaluation.fusion`) and prints the Markdown table. Without
checkpoints the inputs are the oracle ones (``parsing_in`` and the ground-truth edge lines).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

GROUP = "eval"


def synthetic_loader(
    root: str | Path,
    split: str = "all",
    batch_size: int = 8,
    fields: tuple[str, ...] | None = None,
    image_size: int | None = None,
) -> Any:
    """Un-augmented ``DataLoader`` of the synthetic set at ``root`` (``split``: train, val, test or all).

    ``fields``: the sample fields to read (default: the fusion protocol's
    :data:`occrecon.evaluation.fusion.FIELDS`); ``image_size``: resize on load (None: as stored).
    Every ``occrecon eval`` command that scores a synthetic split loads it here.
    """
    from torch.utils.data import ConcatDataset, DataLoader

    from datamodules.synthetic import SyntheticDataModule
    from occrecon.evaluation.fusion import FIELDS

    dm = SyntheticDataModule(root=str(root), image_size=image_size, fields=fields or FIELDS, batch_size=batch_size,
                             augment=False, generate=False)  # fmt: skip
    dm.setup()
    splits = ("train", "val", "test") if split == "all" else (split,)
    return DataLoader(ConcatDataset([dm.datasets[s] for s in splits]), batch_size=batch_size, shuffle=False)


def load_system(checkpoint: str | Path, stage: str) -> Any:
    """The trained system of the registered ``stage`` (``parsing``, ``edge_lines``, ``synthesis``, ...)
    from an ``occrecon fit`` checkpoint, in eval mode on the CPU."""
    from occrecon.registry import get_stage

    cls = get_stage(stage).load("system")
    return cls.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True).eval()


def run_fusion(args: argparse.Namespace) -> int:
    """Handler of ``occrecon eval fusion``; 0 on success, 1 on a user error (message printed)."""
    from occrecon.errors import OccreconError
    from occrecon.evaluation.fusion import evaluate_fusion

    split = args.split or ("test" if args.parsing_ckpt or args.edge_ckpt else "all")
    try:
        parsing = load_system(args.parsing_ckpt, "parsing") if args.parsing_ckpt else None
        edges = load_system(args.edge_ckpt, "edge_lines") if args.edge_ckpt else None
        loader = synthetic_loader(args.data, split, args.batch_size)
        scores = evaluate_fusion(loader, parsing, edges, args.max_batches)
    except (OccreconError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 1
    source = "oracle" if parsing is None and edges is None else "predicted"
    print(f"M_fin on {args.data} (split {split}; M_fa: {'network' if parsing else 'oracle'}, "
          f"M_edge: {'network' if edges else 'oracle'}; {source} inputs)\n")  # fmt: skip
    print(scores.table())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fusion`` to the ``eval`` group."""
    parser = subparsers.add_parser(
        "fusion", help="score M_fin vs the baselines inside the occluders of a synthetic set",
        description="mIoU of the fused parsing M_fin, 'occluders -> skin' and 'nearest label' vs the "
                    "occluder-free ground truth, inside the ground-truth occluder mask (docs/fusion.md).",
    )  # fmt: skip
    parser.add_argument("--data", required=True, help="synthetic data set folder (occrecon data synth --out DIR)")
    parser.add_argument("--parsing-ckpt", default=None, help="checkpoint of a parsing run (default: oracle M_fa)")
    parser.add_argument("--edge-ckpt", default=None, help="checkpoint of an edge_lines run (default: oracle M_edge)")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default=None,
                        help="split to score (default: all for oracle inputs, test with a checkpoint)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batches", type=int, default=0, help="stop after N batches (0 = whole split)")
    parser.set_defaults(handler=run_fusion)
