"""CLI plug-in: ``occrecon eval lfw`` -- the paper's Table 1 (face verification on LFW's pairs).

    occrecon eval lfw --data LFW_ROOT --ckpt runs/<id>/checkpoints/last.ckpt [--out DIR] [--json PATH]
    occrecon eval lfw --scores SCORES.csv --pairs pairs.txt [--attributes lfw_attributes.txt] [--json PATH]

The first form predicts α_id (and, when the identity network is available, its embedding) for
every image of ``pairs.txt`` with a trained coarse 3D run; the second scores precomputed
similarities (one per pair, ``pairs.txt`` order). Protocol: :mod:`occrecon.evaluation.lfw`.
Both run unchanged on the synthetic export (``occrecon data synth ... --export lfw``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

GROUP = "eval"


def run_lfw(args: argparse.Namespace) -> int:
    """Handler of ``occrecon eval lfw``; 0 on success, 2 on a user error (message printed)."""
    import numpy as np

    from occrecon.errors import ConfigError, OccreconError
    from occrecon.evaluation import lfw

    try:
        if args.scores:
            if not args.pairs:
                raise ConfigError("--scores needs --pairs (the pairs.txt the scores follow)")
            pairs = _pairs(Path(args.pairs), Path(args.attributes) if args.attributes else None)
            scores = {"scores": lfw.read_scores(args.scores, expected=len(pairs.same))}
        else:
            if not (args.data and args.ckpt):
                raise ConfigError("give --data LFW_ROOT and --ckpt CHECKPOINT, or --scores and --pairs")
            root = Path(args.data)
            attributes = root / "lfw_attributes.txt"
            pairs = _pairs(root / "pairs.txt", attributes if attributes.is_file() else None)
            scores = _descriptor_scores(args, root, pairs)
        masks = lfw.subset_masks(pairs.eyewear_a, pairs.eyewear_b, args.glasses_rule)
        rows = {name: lfw.verification_table(s, pairs.same, pairs.folds, masks) for name, s in scores.items()}
    except (OccreconError, FileNotFoundError, ValueError) as err:
        print(f"occrecon: error: {err}")
        return 2
    print(lfw.table_markdown(rows, paper=not args.no_paper))
    if args.json:
        lfw.write_json(rows if len(rows) > 1 else next(iter(rows.values())), args.json)
        print(f"table written to {args.json}")
    if args.out:
        out = Path(args.out)
        curves = {
            f"{name} / {subset}": (s, pairs.same, masks[subset])
            for name, s in scores.items() for subset in lfw.SUBSETS if np.any(masks[subset])
        }  # fmt: skip
        png = lfw.plot_roc(curves, out / "roc.png")
        (out / "table.md").write_text(lfw.table_markdown(rows, paper=not args.no_paper) + "\n")
        lfw.write_json(rows, out / "table.json")
        for name, s in scores.items():
            np.savetxt(out / f"scores_{name}.csv", s, fmt="%.8f", header="similarity", comments="")
        print(f"ROC curves: {png}; table and per-pair scores in {out}")
    return 0


def _pairs(pairs_path: Path, attributes: Path | None):  # noqa: ANN202 - evaluation.lfw.PairList
    from datamodules.lfw import read_eyewear, read_pairs
    from occrecon.evaluation.lfw import pair_list

    return pair_list(read_pairs(pairs_path), read_eyewear(attributes) if attributes else None)


def _descriptor_scores(args: argparse.Namespace, root: Path, pairs) -> dict:  # noqa: ANN001 - PairList
    from datamodules.lfw import LFWDataModule
    from occrecon.assets.identity import build_identity_network
    from occrecon.commands.evaluate import load_system
    from occrecon.evaluation import lfw
    from occrecon.losses.reconstruction import IdentityFeatureLoss

    system = load_system(args.ckpt, "reconstruction")
    identity = None
    if args.identity != "none":
        network, reason = build_identity_network(args.identity, args.identity_weights)
        if network is None:
            print(f"identity-network row skipped: {reason}")
        else:
            identity = IdentityFeatureLoss(network).eval()
    module = LFWDataModule(
        root=str(root), image_size=int(system.hparams.image_size), num_workers=0, augment=False,
        crop_size=args.crop_size, image_dir=args.image_dir,
    )  # fmt: skip
    images = module.make_dataset("images")
    index = {record.fields["key"]: i for i, record in enumerate(images.records)}
    descriptors = lfw.image_descriptors(images, system, identity, args.batch_size)
    return {name: lfw.cosine_scores(d, index, pairs.keys) for name, d in descriptors.items()}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lfw`` to the ``eval`` group."""
    parser = subparsers.add_parser(
        "lfw", help="face verification on LFW pairs.txt: 100%%-EER, accuracy, nAUC (paper Table 1)",
        description="10-fold LFW verification (threshold of each fold chosen on the other nine) for all / "
                    "glasses / no_glasses pairs, from a coarse 3D checkpoint (alpha_id, identity embedding) "
                    "or from precomputed similarities.",
    )  # fmt: skip
    parser.add_argument(
        "--data", help="LFW folder (lfw/, pairs.txt, lfw_attributes.txt) or a synthetic --export lfw folder"
    )
    parser.add_argument("--ckpt", help="checkpoint of a coarse 3D (reconstruction) run")
    parser.add_argument(
        "--scores", help="CSV of precomputed similarities, one per pair in pairs.txt order (last column)"
    )
    parser.add_argument("--pairs", help="pairs.txt the scores follow")
    parser.add_argument("--attributes", help="lfw_attributes.txt (eyewear subsets); without it only 'all' has pairs")
    parser.add_argument("--json", help="write the table as JSON (per subset: eer_acc, acc, nauc -> mean, std in %%)")
    parser.add_argument("--out", help="folder for roc.png, table.md, table.json and the per-pair scores")
    parser.add_argument("--glasses-rule", choices=("both", "any"), default="both",
                        help="'glasses' subset: both images wear eyewear (default) or at least one")  # fmt: skip
    parser.add_argument(
        "--identity", default="dlib", help="identity network of the second row (dlib, arcface_r50, none)"
    )
    parser.add_argument("--identity-weights", default=None, help="weights of the identity network")
    parser.add_argument(
        "--crop-size", type=int, default=None, help="central square crop in source pixels (default: whole image)"
    )
    parser.add_argument("--image-dir", default="lfw", help="image folder under --data (lfw or lfw-deepfunneled)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--no-paper", action="store_true", help="leave the paper's Table 1 rows out of the printed table"
    )
    parser.set_defaults(handler=run_lfw)
