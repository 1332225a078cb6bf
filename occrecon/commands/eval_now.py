"""CLI plug-in: ``occrecon eval now`` -- the NoW benchmark's scan-to-mesh error (median / mean / std, mm).

    occrecon eval now --data NOW_ROOT --predictions PRED_DIR [--split val|test] [--challenge C]
    occrecon eval now --synthetic DATA_DIR [--ckpt runs/<id>/checkpoints/last.ckpt] [--split val] [--max-faces 40]

The first form scores any method's predictions on the released NoW data (layout and prediction
format: :mod:`occrecon.evaluation.now`). The second runs the same protocol on a synthetic set
whose true meshes are the "scans": the mean face always, and the coarse 3D run of ``--ckpt``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GROUP = "eval"


def run_now(args: argparse.Namespace) -> int:
    """Handler of ``occrecon eval now``; 0 on success, 2 on a user error (message printed)."""
    from occrecon.errors import ConfigError, OccreconError
    from occrecon.evaluation import now

    try:
        if args.synthetic:
            rows = _synthetic(args)
        elif args.data and args.predictions:
            stats, scored, missing = now.evaluate_folder(
                args.data, args.predictions, args.split, args.challenge, args.max_faces
            )
            rows = {"predictions": {**stats, "images": scored, "missing": missing}}
        else:
            raise ConfigError("give --data NOW_ROOT and --predictions DIR, or --synthetic DATA_DIR")
    except (OccreconError, FileNotFoundError, ValueError) as err:
        print(f"occrecon: error: {err}")
        return 2
    lines = ["| method | faces | median (mm) | mean (mm) | std (mm) |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['images']} | {r['median']:.3f} | {r['mean']:.3f} | {r['std']:.3f} |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _synthetic(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import torch

    from datamodules.synthetic import SyntheticDataModule
    from occrecon.commands.evaluate import load_system
    from occrecon.evaluation.now import synthetic_errors
    from occrecon.facemodel import load_face_model
    from occrecon.synth.reader import load_manifest

    manifest = load_manifest(Path(args.synthetic))
    system = None
    if args.ckpt:
        system = load_system(args.ckpt, "reconstruction")
        model = system.face_model
    else:
        model = load_face_model(manifest["config"]["model"], manifest["config"].get("model_dir"))
    size = int(system.hparams.image_size) if system is not None else None
    fractions = _split_fractions(args)
    dm = SyntheticDataModule(root=args.synthetic, image_size=size, fields=["I_in", "coeffs"], augment=False,
                             batch_size=16, generate=False, **fractions)  # fmt: skip
    dm.setup()
    loader = dm.val_dataloader() if args.split == "val" else dm.test_dataloader()
    print(f"split {args.split} of {args.synthetic} with identity fractions {fractions}")
    layout = model.layout("paper")
    gt, pred, mean = [], [], []
    mm = model.mm_per_unit
    with torch.no_grad():
        for batch in loader:
            c = layout.split(batch["coeffs"].float())
            gt += list((model.shape(c.id, c.exp) * mm).double().numpy())
            mean += [model.mean_shape.double().numpy() * mm] * len(c.id)
            if system is not None:
                pred += list((system.vertices(system(batch["I_in"])) * mm).double().numpy())
            if args.max_faces and len(gt) >= args.max_faces:
                break
    n = min(len(gt), args.max_faces) if args.max_faces else len(gt)
    faces, lmk = model.triangles.numpy(), model.landmark_indices.numpy()
    rows = {}
    for name, meshes in (("mean face", mean), (f"coarse 3D ({args.ckpt})", pred)):
        if meshes:
            stats, _ = synthetic_errors(gt[:n], meshes[:n], faces, lmk)
            rows[name] = {**stats, "images": n}
    return rows


def _split_fractions(args: argparse.Namespace) -> dict[str, float]:
    """Identity split fractions: the options, else the checkpoint's run config (data.val_fraction,
    data.test_fraction), else the data module's defaults -- so "val" is held out from that run."""
    from occrecon.runs import checkpoint_run_dir

    found = {}
    run_dir = checkpoint_run_dir(args.ckpt) if args.ckpt else None
    if run_dir is not None:
        from occrecon.config.load import read_yaml, to_plain

        data = to_plain(read_yaml(run_dir / "config.yaml")).get("data", {})
        found = {k: float(data[k]) for k in ("val_fraction", "test_fraction") if k in data}
    for key in ("val_fraction", "test_fraction"):
        if getattr(args, key) is not None:
            found[key] = getattr(args, key)
    return found


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``now`` to the ``eval`` group."""
    parser = subparsers.add_parser(
        "now", help="NoW benchmark protocol: scan-to-mesh error (median/mean/std mm)",
        description="Rigid (similarity) alignment of each predicted mesh to its scan by 7 landmarks, ICP refinement, "
                    "then the distances of the cropped scan's vertices to the mesh; on NoW or on a synthetic set.",
    )  # fmt: skip
    parser.add_argument("--data", help="NoW folder (imagepathsvalidation.txt, scans/, scans_lmks_onlypp/, ...)")
    parser.add_argument("--predictions", help="predictions folder <subject>/<challenge>/<image>.obj + .npy/.txt")
    parser.add_argument("--challenge", default=None, help="only one challenge (multiview_neutral, ..., selfie)")
    parser.add_argument("--synthetic", help="synthetic data set folder: true meshes as scans")
    parser.add_argument("--ckpt", help="coarse 3D checkpoint scored on the synthetic set next to the mean face")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--val-fraction", type=float, default=None, help="identity split (default: the run's config)")
    parser.add_argument("--test-fraction", type=float, default=None, help="identity split (default: the run's config)")
    parser.add_argument("--max-faces", type=int, default=40, help="stop after N faces (0 = all)")
    parser.add_argument("--json", help="write the table as JSON")
    parser.set_defaults(handler=run_now)
