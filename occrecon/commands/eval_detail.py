"""CLI plug-in: ``occrecon eval detail`` -- the detail stage on a synthetic data set.

    occrecon eval detail --data DIR --ckpt runs/<id>/checkpoints/last.ckpt [--split test] [--out DIR]

Prints the Markdown table of :func:`occrecon.evaluation.detail.metrics_table`: L1 of ``Phi`` (codes)
and of ``d'`` (mm) and the normal angular error (degrees), inside visible skin and inside the
occluder region, for the trained network, "coarse only" (``Phi = phi(0)``) and the oracle (the
ground-truth ``Phi`` through the same decoding), all measured in the same run. ``--out`` also writes
the pictures and the detailed meshes (OBJ + PLY) of the first faces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GROUP = "eval"

FIELDS: tuple[str, ...] = (
    "I_in", "I_gt", "parsing_gt", "occluder_mask", "face_mask", "depth_coarse", "depth_detail", "normals", "bump",
    "coeffs", "glasses", "index",
)  # fmt: skip
"""Synthetic fields the evaluation reads (ground truth and the ``ground_truth`` coarse stage)."""


def load_detail_system(ckpt: str | Path, device: str = "cpu") -> Any:
    """A trained ``DetailSystem`` from an ``occrecon fit`` checkpoint, in eval mode.

    The frozen coarse stage is rebuilt from ``model.coarse`` of the run (``ground_truth`` or the
    reconstruction checkpoint it names, which must still exist).
    """
    from occrecon.errors import MissingAssetError
    from occrecon.systems.detail import DetailSystem

    if not Path(ckpt).is_file():
        raise MissingAssetError(ckpt, "detail-stage checkpoint", "train one with `occrecon fit -c experiments/detail/synthetic.yaml`")
    return DetailSystem.load_from_checkpoint(str(ckpt), map_location=device, weights_only=True).eval()


def synthetic_loader(root: str | Path, image_size: int, split: str, batch_size: int) -> Any:
    """Un-augmented loader of ``split`` (train, val, test or all) of the synthetic set at ``root``."""
    from torch.utils.data import ConcatDataset, DataLoader

    from datamodules.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(root=str(root), image_size=image_size, fields=FIELDS, batch_size=batch_size,
                             augment=False, generate=False)  # fmt: skip
    dm.setup()
    splits = ("train", "val", "test") if split == "all" else (split,)
    return DataLoader(ConcatDataset([dm.datasets[s] for s in splits]), batch_size=batch_size, shuffle=False)


def run_detail(args: argparse.Namespace) -> int:
    """Handler of ``occrecon eval detail``; 0 on success, 1 on a user error (message printed)."""
    from occrecon.errors import OccreconError
    from occrecon.evaluation.detail import evaluate_detail, metrics_table

    try:
        system = load_detail_system(args.ckpt)
        loader = synthetic_loader(args.data, system.hparams.image_size, args.split, args.batch_size)
        values = evaluate_detail(system, loader, args.max_batches)
        if args.out:
            _write_pictures(system, loader, Path(args.out))
    except (OccreconError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 1
    print(f"Detail stage {args.ckpt} on {args.data} (split {args.split}; {int(values['pixels_visible'])} visible-skin, "
          f"{int(values['pixels_occluded'])} occluded face pixels)\n")  # fmt: skip
    print(metrics_table(values))
    if args.json:
        Path(args.json).write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    return 0


def _write_pictures(system: Any, loader: Any, out: Path) -> None:
    from occrecon.evaluation.detail import demo_section

    class _Loaders:  # the demo section reads a data module's test loader
        def setup(self, stage: str) -> None:
            pass

        def test_dataloader(self) -> Any:
            return loader

    section = demo_section(system, _Loaders(), out)
    print(f"pictures: {out / section.figures[0][1]}; meshes: {out / 'meshes'}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``detail`` to the ``eval`` group."""
    parser = subparsers.add_parser(
        "detail", help="score a detail-stage run on a synthetic set (Phi, d', normals vs coarse only)",
        description="L1 of Phi and d' and the normal angular error inside visible skin and inside the occluder "
                    "region, for the trained bump network, 'coarse only' (Phi = phi(0)) and the oracle (docs/detail.md).",
    )  # fmt: skip
    parser.add_argument("--data", required=True, help="synthetic data set folder (occrecon data synth --out DIR)")
    parser.add_argument("--ckpt", required=True, help="checkpoint of a detail run (runs/<id>/checkpoints/*.ckpt)")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batches", type=int, default=0, help="stop after N batches (0 = whole split)")
    parser.add_argument("--out", default=None, help="also write pictures and meshes (OBJ + PLY) here")
    parser.add_argument("--json", default=None, help="also write the numbers as JSON here")
    parser.set_defaults(handler=run_detail)
