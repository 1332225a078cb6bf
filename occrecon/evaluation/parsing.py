"""Pictures and the demo report section of the face-parsing stage (:mod:`occrecon.systems.parsing`).

* :func:`parsing_grid` -- input | prediction | target, also logged during training;
* :func:`demo_section` -- ``M_fa`` metrics and pictures on the test split, with ``M_fin`` from the
  ground-truth edge lines where the data carry them (the ``occrecon demo`` contract,
  :mod:`occrecon.commands.demo`).

``system`` arguments are trained ``ParsingSystem`` instances, used through their public attributes
only (this module never imports :mod:`occrecon.systems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from occrecon.evaluation.common import eval_loader, first_batches, move_batch
from occrecon.evaluation.fusion import FusionScores, fusion_maps
from occrecon.labels import IGNORE_LABEL
from occrecon.metrics.parsing import FaceParsingMetrics
from occrecon.report import ReportSection
from occrecon.viz import colorize_labels, grid, image_to_uint8, save_titled_grid


def parsing_grid(batch: dict[str, Any], predicted: torch.Tensor, count: int = 4) -> np.ndarray:
    """``[H, W, 3]`` uint8 grid, one row per sample: input | prediction | target."""
    rows = []
    for i in range(min(count, predicted.shape[0])):
        target = batch["label_map"][i].clone()
        target[target == IGNORE_LABEL] = 0
        rows.append([image_to_uint8(batch["image"][i]), colorize_labels(predicted[i]), colorize_labels(target)])
    return grid(rows)


@torch.no_grad()
def demo_section(
    system: L.LightningModule, datamodule: L.LightningDataModule, out_dir: Path, max_batches: int = 4
) -> ReportSection:
    """Evaluate ``system`` on the test split (else val) of ``datamodule`` and draw ``M_fa`` (and ``M_fin``).

    Metrics over ``max_batches`` batches: mIoU, mean F1, pixel accuracy of ``M_fa`` vs the target
    (``label_map``). When the batches carry the synthetic fields ``parsing_gt``, ``occluder_mask``
    and ``edge_lines`` (CelebAMask-HQ labels), ``M_fin`` = fusion of the predicted ``M_fa`` with the
    ground-truth edge lines is drawn and its mIoU inside the occluder mask reported next to the
    two baselines (:mod:`occrecon.evaluation.fusion`). Saves ``out_dir/parsing.png``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system.eval()
    metrics = FaceParsingMetrics(system.class_names, None, system.hparams.ignore_index)
    scores = FusionScores(len(system.class_names))
    rows: list[list[np.ndarray]] = []
    titles = ["input", "M_fa (predicted)", "target"]
    for batch in first_batches(eval_loader(datamodule), max_batches):
        batch = move_batch(batch, system.device)
        predicted = system.predict_labels(batch["image"])
        metrics.update(predicted, batch["label_map"])
        fused = None
        if {"parsing_gt", "occluder_mask", "edge_lines"} <= set(batch) and system.hparams.label_set == "celebamask":
            maps = fusion_maps(predicted, batch["edge_lines"])
            scores.update(maps, batch["parsing_gt"], batch["occluder_mask"])
            fused = maps["M_fin"]
            titles = ["input", "M_fa (predicted)", "target", "M_fin (M_fa + GT lines)", "occluder-free GT"]
        for i in range(predicted.shape[0]):
            if len(rows) >= 4:
                break
            target = batch["label_map"][i].masked_fill(batch["label_map"][i] == IGNORE_LABEL, 0)
            row = [image_to_uint8(batch["image"][i]), colorize_labels(predicted[i]), colorize_labels(target)]
            if fused is not None:
                row += [colorize_labels(fused[i]), colorize_labels(batch["parsing_gt"][i])]
            rows.append(row)
    computed = metrics.compute()
    values = {f"M_fa/{k}": float(computed[k]) for k in ("miou", "f1/mean", "pixel_accuracy")}
    tables = [scores.table()] if scores.count else []
    figure = save_titled_grid(out_dir / "parsing.png", rows, titles, scale=2)
    text = (
        f"Face parsing `M_fa` ({type(system.net).__name__}, ResNet-{system.hparams.depth}, width "
        f"{system.hparams.width}); metrics over the first {max_batches} evaluation batches."
    )
    if tables:
        text += " `M_fin` fuses the predicted `M_fa` with the ground-truth edge lines; mIoU is measured inside the occluder mask."
    return ReportSection("Face parsing M_fa and fused M_fin", text, values, tables, [("M_fa and M_fin", figure.name)])
