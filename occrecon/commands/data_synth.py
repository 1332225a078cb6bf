"""CLI plug-in: ``occrecon data synth --out DIR --n N --size PX --seed S [--export FORMAT ...]``.

Generates (or resumes) the synthetic occluded-face data set (``occrecon.synth``, documented in
``docs/synthetic.md``) and optionally exports it in the CelebAMask-HQ, 300W and LFW layouts.
"""

from __future__ import annotations

import argparse

GROUP = "data"
EXPORT_CHOICES = ("celebamask_hq", "300w", "lfw")


def run(args: argparse.Namespace) -> int:
    """Generate, then export; prints where everything went. 0 on success, 1 on a user error."""
    from occrecon.errors import OccreconError
    from occrecon.synth.config import SynthConfig
    from occrecon.synth.dataset_writer import generate_dataset
    from occrecon.synth.export import export_dataset

    try:
        config = SynthConfig(
            n=args.n, size=args.size, seed=args.seed, model=args.model, model_dir=args.model_dir,
            images_per_identity=args.images_per_identity, shard_size=args.shard_size, max_yaw_deg=args.max_yaw,
            p_glasses=args.p_glasses, p_hand=args.p_hand, p_hair=args.p_hair,
        )  # fmt: skip
        root = generate_dataset(config, args.out, workers=args.workers, progress=not args.no_progress)
        print(f"synthetic data set: {root} ({config.n} samples, {config.size} px, seed {config.seed})")
        if args.export:
            for name, folder in export_dataset(root, args.export).items():
                print(f"exported {name}: {folder}")
    except OccreconError as err:
        print(f"error: {err}")
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` to the ``data`` group."""
    parser = subparsers.add_parser(
        "synth", help="generate the synthetic occluded-face data set (resumes an interrupted run)",
        description="Render faces with and without occluders and the ground truth of every stage (docs/synthetic.md).",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="data set folder (an interrupted generation there is resumed)")
    parser.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed; same seed => byte-identical output")
    parser.add_argument("--model", choices=("procedural", "sfm", "bfm"), default="procedural", help="face model")
    parser.add_argument("--model-dir", default=None, help="folder of the sfm/bfm files")
    parser.add_argument(
        "--export",
        nargs="+",
        choices=EXPORT_CHOICES,
        default=[],
        metavar="FORMAT",
        help=f"also write DIR/export/<FORMAT> in a public layout: {', '.join(EXPORT_CHOICES)}",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--images-per-identity", type=int, default=4, help="pictures per identity (default 4)")
    parser.add_argument("--shard-size", type=int, default=32, help="samples per shard file (default 32)")
    parser.add_argument("--max-yaw", type=float, default=60.0, help="yaw range +-degrees (default 60)")
    parser.add_argument("--p-glasses", type=float, default=0.5, help="probability of glasses per sample")
    parser.add_argument("--p-hand", type=float, default=0.2, help="probability of a hand per sample")
    parser.add_argument("--p-hair", type=float, default=0.2, help="probability of hair strands per sample")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
