"""Measure the fusion ``M_fin`` (:mod:`occrecon.fusion`) on the synthetic set, where the
occluder-free parsing ``parsing_gt`` is known.

Protocol: over a split, for each method, one confusion matrix of its labels vs ``parsing_gt`` over
the pixels of the **ground-truth** occluder mask (glasses, hands, hair strands), summed over all
images; mIoU = mean IoU over the classes present there (in truth or prediction), as
:func:`occrecon.fusion.occluded_miou` defines it, plus the pixel accuracy. Methods:

* ``M_fin`` — :func:`occrecon.fusion.fuse_parsing` of ``M_fa`` and ``M_edge``;
* ``skin`` — baseline (a), :func:`occrecon.fusion.fuse_skin`;
* ``nearest`` — baseline (b), :func:`occrecon.fusion.fuse_nearest`;
* ``M_fa`` — no fusion at all (the occluders stay labelled as occluders), for reference.

All fusions use the same occluder mask ``O`` *estimated* from ``M_fa`` and ``M_edge``
(:func:`occrecon.fusion.occluder_mask`): the ground-truth mask only selects the scored pixels.

Inputs are either the oracle (``M_fa`` = ``parsing_in``, the parsing with occluders; ``M_edge`` =
the ground-truth edge-line heatmaps) or the predictions of trained parsing / edge-lines systems
(checkpoints of ``occrecon fit``). ``occrecon eval fusion`` (:mod:`occrecon.commands.evaluate`,
which loads the data set and the checkpoints) prints :meth:`FusionScores.table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from occrecon.evaluation.common import eval_loader, first_batches, move_batch
from occrecon.fusion import fuse_nearest, fuse_parsing, fuse_skin, occluder_mask
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.metrics.parsing import iou_per_class
from occrecon.report import ReportSection, markdown_table
from occrecon.viz import colorize_labels, image_to_uint8, overlay_heatmaps, save_titled_grid

METHODS: tuple[str, ...] = ("M_fin", "nearest", "skin", "M_fa")
FIELDS: tuple[str, ...] = ("I_in", "parsing_in", "parsing_gt", "occluder_mask", "edge_lines")


def fusion_maps(parsing: torch.Tensor, heatmaps: torch.Tensor) -> dict[str, torch.Tensor]:
    """``M_fin``, both baselines and the estimated occluder mask from one ``M_fa`` / ``M_edge`` pair.

    Args:
        parsing: ``[B, H, W]`` int64 ``M_fa`` (CelebAMask-HQ labels).
        heatmaps: ``[B, 13, h, w]`` ``M_edge`` in ``[0, 1]`` at any resolution.

    Returns:
        ``{"M_fin", "nearest", "skin", "M_fa"}`` ``[B, H, W]`` int64 and ``"O"`` ``[B, 1, H, W]`` float.
    """
    heatmaps = heatmaps.float().clamp(0.0, 1.0)
    occ = occluder_mask(parsing, heatmaps)
    return {
        "M_fin": fuse_parsing(parsing, heatmaps, occluders=occ),
        "nearest": fuse_nearest(parsing, occ),
        "skin": fuse_skin(parsing, occ),
        "M_fa": parsing,
        "O": occ,
    }


class FusionScores:
    """Confusion matrices of every method inside the ground-truth occluder mask, summed over a split."""

    def __init__(self, num_classes: int = len(CELEBAMASK_CLASSES), methods: tuple[str, ...] = METHODS) -> None:
        self.num_classes, self.methods = num_classes, methods
        self.confmats = {m: torch.zeros(num_classes, num_classes, dtype=torch.long) for m in methods}
        self.count = 0

    def update(self, maps: Mapping[str, torch.Tensor], parsing_gt: torch.Tensor, gt_occluders: torch.Tensor) -> None:
        """Add a batch: ``maps`` from :func:`fusion_maps`, ``parsing_gt`` ``[B, H, W]``, mask ``[B, 1, H, W]``."""
        inside = gt_occluders.reshape(parsing_gt.shape) > 0.5
        truth = parsing_gt[inside].cpu()
        for method in self.methods:
            pred = maps[method][inside].cpu()
            self.confmats[method] += multiclass_confusion_matrix(pred, truth, self.num_classes, validate_args=False)
        self.count += parsing_gt.shape[0]

    def compute(self) -> dict[str, dict[str, float]]:
        """``{method: {"miou", "pixel_accuracy", "pixels"}}`` over everything added so far."""
        out = {}
        for method, confmat in self.confmats.items():
            total = int(confmat.sum())
            out[method] = {
                "miou": float(iou_per_class(confmat).nanmean()),
                "pixel_accuracy": float(confmat.diag().sum()) / max(total, 1),
                "pixels": total,
            }
        return out

    def table(self) -> str:
        """Markdown table: one row per method, mIoU and pixel accuracy inside the occluder mask."""
        names = {"M_fin": "M_fin (fusion)", "nearest": "nearest label", "skin": "occluders -> skin",
                 "M_fa": "M_fa (no fusion)"}  # fmt: skip
        rows = [(names.get(m, m), 100 * s["miou"], 100 * s["pixel_accuracy"]) for m, s in self.compute().items()]
        pixels = next(iter(self.compute().values()))["pixels"] if self.methods else 0
        header = ["method", f"mIoU % (occluded pixels, {self.count} images, {pixels} px)", "pixel acc. %"]
        return markdown_table(header, rows)


@torch.no_grad()
def evaluate_fusion(
    batches: Iterable[Mapping[str, Any]],
    parsing_system: Any = None,
    edge_system: Any = None,
    max_batches: int = 0,
) -> FusionScores:
    """Score ``M_fin`` and the baselines over the batches of a synthetic split (module docstring).

    Args:
        batches: sample-dict batches with the fields :data:`FIELDS` (``occrecon eval fusion`` builds
            them with :func:`occrecon.commands.evaluate.synthetic_loader`).
        parsing_system / edge_system: trained systems; ``None`` uses the oracle input
            (``parsing_in`` / the ground-truth edge lines).
        max_batches: stop after this many batches (0 = all of them).
    """
    scores = FusionScores()
    for batch in first_batches(batches, max_batches):
        images = batch["I_in"]
        parsing = batch["parsing_in"] if parsing_system is None else parsing_system.predict_labels(images)
        heatmaps = batch["edge_lines"] if edge_system is None else edge_system.predict_heatmaps(images)
        scores.update(fusion_maps(parsing, heatmaps), batch["parsing_gt"], batch["occluder_mask"])
    return scores


@torch.no_grad()
def demo_section(
    parsing_system: Any, edge_system: Any, datamodule: Any, out_dir: str | Path, max_batches: int = 4
) -> ReportSection:
    """Report section of ``M_fin`` from both *trained* networks on the test split (else val).

    Needs batches with the synthetic fields ``parsing_gt`` and ``occluder_mask``. Scores ``M_fin``
    and the baselines inside the ground-truth occluder mask (:class:`FusionScores`) and saves
    ``out_dir/fusion.png``: input | ``M_fa`` | ``M_edge`` over the image | ``M_fin`` | occluder-free
    ground truth (paths in ``figures`` are relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parsing_system.eval()
    edge_system.eval()
    scores = FusionScores()
    rows: list[list[Any]] = []
    for batch in first_batches(eval_loader(datamodule), max_batches):
        batch = move_batch(batch, parsing_system.device)
        heatmaps = edge_system.predict_heatmaps(batch["image"])
        maps = fusion_maps(parsing_system.predict_labels(batch["image"]), heatmaps)
        scores.update(maps, batch["parsing_gt"], batch["occluder_mask"])
        for i in range(min(4 - len(rows), heatmaps.shape[0])):
            image = batch["image"][i]
            rows.append([image_to_uint8(image), colorize_labels(maps["M_fa"][i]), overlay_heatmaps(image, heatmaps[i]),
                         colorize_labels(maps["M_fin"][i]), colorize_labels(batch["parsing_gt"][i])])  # fmt: skip
    titles = ["input", "M_fa", "M_edge", "M_fin", "occluder-free GT"]
    figure = save_titled_grid(out_dir / "fusion.png", rows, titles, scale=2)
    metrics = {f"{m}/miou_occluded": v["miou"] for m, v in scores.compute().items()}
    text = (
        "`M_fin` fuses the trained networks' `M_fa` and `M_edge` (algorithm: docs/fusion.md). mIoU vs the "
        f"occluder-free ground truth inside the ground-truth occluder mask, {scores.count} test images."
    )
    return ReportSection(
        "Fused parsing M_fin", text, metrics, [scores.table()], [("M_fa, M_edge and M_fin", figure.name)]
    )
