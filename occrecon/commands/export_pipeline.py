"""CLI plug-in: ``occrecon export-pipeline -c experiments/pipeline/<name>.yaml [key=value ...] --out pipeline.ckpt``.

Builds the composite chain from the stage checkpoints named in the config
(``model.stages.<name>.ckpt``), or takes a trained pipeline run's checkpoint (``--ckpt``), and
writes one self-contained checkpoint: every stage's weights and config, no optimizer state
(:func:`occrecon.chain.export_checkpoint`). ``occrecon reconstruct --pipeline`` and ``occrecon
predict`` read it.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Handler; 0 on success, 2 on a user error (message printed)."""
    from occrecon.chain import export_checkpoint
    from occrecon.errors import OccreconError

    try:
        from occrecon.systems.pipeline import PipelineSystem

        if args.ckpt:
            system = PipelineSystem.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True)
        else:
            if not args.config:
                print("error: give -c experiments/pipeline/<name>.yaml (stage checkpoints) or --ckpt <pipeline run ckpt>")
                return 2
            from occrecon.config.load import load_config, to_plain

            cfg = load_config(args.config, args.overrides)
            if cfg.stage != "pipeline":
                print(f"error: {args.config[-1]}: stage is {cfg.stage!r}, expected 'pipeline'")
                return 2
            system = PipelineSystem(**to_plain(cfg.model))
        path = export_checkpoint(system.eval(), args.out)
    except (OccreconError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 2
    print(f"wrote {path}: stages {', '.join(system.order)} ({sum(p.numel() for p in system.parameters()):,} parameters)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-pipeline", help="write the chained stages as one self-contained checkpoint", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("-c", "--config", action="append", metavar="YAML", help="pipeline experiment (+ overlays)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    parser.add_argument("--ckpt", help="a trained pipeline run's checkpoint instead of a config")
    parser.add_argument("--out", required=True, help="output checkpoint path")
    parser.set_defaults(handler=run)
