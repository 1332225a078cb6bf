"""The ``occrecon`` command line.

    occrecon fit|validate|test|predict -c experiments/<stage>/<name>.yaml [-c overlay.yaml ...]
             [key.sub=value ...] [--print-config] [--resume] [--overwrite] [--ckpt PATH]

Overrides are ``key.sub=value`` words, exactly what a W&B sweep agent passes with
``${args_no_hyphens}``; they may appear anywhere after the command. Further sub-commands are
plug-ins in :mod:`occrecon.commands`. Every handler returns an exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from occrecon import __version__
from occrecon.commands import discover
from occrecon.errors import OccreconError

TRAIN_HELP = {
    "fit": "train a stage (creates or resumes runs/<run_id>/)",
    "validate": "run the validation loop on a checkpoint",
    "test": "run the test loop on a checkpoint",
    "predict": "run the prediction loop on a checkpoint",
}


def build_parser(command_package: str = "occrecon.commands") -> argparse.ArgumentParser:
    """The full parser: the four Lightning commands plus every plug-in command."""
    parser = argparse.ArgumentParser(
        prog="occrecon",
        description="occrecon: 3D face reconstruction under occlusion (PyTorch Lightning).",
        epilog="Run 'occrecon COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"occrecon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command, help_text in TRAIN_HELP.items():
        _add_train_command(subparsers, command, help_text)
    discover(subparsers, command_package)
    return parser


def _add_train_command(subparsers: argparse._SubParsersAction, command: str, help_text: str) -> None:
    sub = subparsers.add_parser(
        command,
        help=help_text,
        description=f"{help_text}. Configs merge in order, then the key.sub=value overrides.",
    )
    sub.add_argument("-c", "--config", action="append", required=True, metavar="YAML",
                     help="experiment file; repeat to add overlays (e.g. experiments/debug/tiny.yaml)")
    sub.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    sub.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    sub.add_argument("--resume", action="store_true", help="continue the run from its last.ckpt (run.resume=true)")
    sub.add_argument("--overwrite", action="store_true",
                     help="delete an existing run directory and start again (run.overwrite=true)")
    sub.add_argument("--ckpt", metavar="PATH", help="checkpoint to evaluate (or, for fit, to restore fully)")
    sub.set_defaults(handler=run_train_command, command=command)


def run_train_command(args: argparse.Namespace) -> int:
    """Handler of fit/validate/test/predict."""
    from occrecon.config.load import load_config, to_yaml

    overrides = list(args.overrides)
    if args.resume:
        overrides.append("run.resume=true")
    if args.overwrite:
        overrides.append("run.overwrite=true")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        sys.stdout.write(to_yaml(cfg))
        return 0
    if cfg.run.resume and cfg.run.overwrite:
        raise OccreconError("--resume and --overwrite exclude each other")
    from occrecon.training import run_command

    trainer, paths = run_command(args.command, cfg, ckpt=args.ckpt)
    print(f"occrecon: {args.command} finished; run {paths.run_id} in {paths.dir}")
    return 1 if trainer.interrupted else 0


def _setup_logging() -> None:
    # Lightning configures its own loggers; only occrecon's messages need a handler here.
    logger = logging.getLogger("occrecon")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``occrecon`` console script."""
    _setup_logging()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # key=value words after an option (e.g. `-c a.yaml --resume lr=1`) land here; plug-ins
        # taking overrides too say so with set_defaults(accepts_overrides=True).
        takes = getattr(args, "handler", None) is run_train_command or getattr(args, "accepts_overrides", False)
        if takes and all(
            "=" in word and not word.startswith("-") for word in extra
        ):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args))
    except OccreconError as err:
        print(f"occrecon: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
