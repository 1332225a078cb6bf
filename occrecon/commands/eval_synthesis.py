"""CLI plug-in: ``occrecon eval synthesis --data DIR --ckpt CKPT [--parsing-ckpt P] [--edge-ckpt E]``.

Scores the synthesis stage's ``I_out`` and the baselines (the input itself, ``cv2.inpaint`` Telea,
nearest-pixel fill) against ``I_gt`` inside the occluder mask and over the face of a synthetic data
set (:mod:`occrecon.evaluation.synthesis`) and prints the Markdown table. With ``--parsing-ckpt``
the ``eye_g`` pixels left are counted; with both ``--parsing-ckpt`` and ``--edge-ckpt`` the
conditions (``M_fin``, mask) come from those networks instead of the ground truth.
"""

from __future__ import annotations

import argparse

GROUP = "eval"


def run_synthesis(args: argparse.Namespace) -> int:
    """Handler of ``occrecon eval synthesis``; 0 on success, 1 on a user error (message printed)."""
    from occrecon.commands.evaluate import load_system, synthetic_loader
    from occrecon.errors import OccreconError
    from occrecon.evaluation.synthesis import FIELDS, evaluate_synthesis

    try:
        system = load_system(args.ckpt, "synthesis")
        parsing = load_system(args.parsing_ckpt, "parsing") if args.parsing_ckpt else None
        edges = load_system(args.edge_ckpt, "edge_lines") if args.edge_ckpt else None
        batches = synthetic_loader(args.data, args.split, args.batch_size, FIELDS, args.image_size)
        scores, notes = evaluate_synthesis(batches, system, parsing, edges, args.identity, args.max_batches)
    except (OccreconError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 1
    source = "predicted (parsing + edge-lines networks, fused)" if parsing is not None and edges is not None else "oracle"
    print(f"I_out on {args.data} (split {args.split}; conditions: {source}){'; ' + notes if notes else ''}\n")
    print(scores.table())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synthesis`` to the ``eval`` group."""
    parser = subparsers.add_parser(
        "synthesis", help="score I_out vs the input and classical inpainting on a synthetic set",
        description="PSNR/SSIM/L1 of I_out vs I_gt inside the occluder mask and over the face, with the "
                    "input itself and cv2.inpaint (Telea) / nearest-pixel fill as baselines (docs/synthesis.md).",
    )  # fmt: skip
    parser.add_argument("--data", required=True, help="synthetic data set folder (occrecon data synth --out DIR)")
    parser.add_argument("--ckpt", required=True, help="checkpoint of a synthesis run")
    parser.add_argument("--parsing-ckpt", default=None, help="parsing run checkpoint: count eye_g pixels left")
    parser.add_argument("--edge-ckpt", default=None, help="edge_lines checkpoint: with --parsing-ckpt, predicted conditions")
    parser.add_argument("--identity", default="dlib", help="identity network for the cosine (dlib | arcface_r50 | none)")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    parser.add_argument("--image-size", type=int, default=None, help="serve images at this side (the size trained at)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batches", type=int, default=0, help="stop after N batches (0 = whole split)")
    parser.set_defaults(handler=run_synthesis)
