"""Pictures and the demo report section of the edge-lines stage (:mod:`occrecon.systems.edge_lines`).

* :func:`edge_grid` -- ``M_edge`` over the image with the read-out | ground truth, also logged
  during training;
* :func:`demo_section` -- NME / FR / AUC of the read-out, the share of effective maps (Eq. 1) and
  the pictures on the test split (the ``occrecon demo`` contract, :mod:`occrecon.commands.demo`).

``system`` arguments are trained ``EdgeLinesSystem`` instances, used through their public
attributes only (this module never imports :mod:`occrecon.systems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from occrecon.evaluation.common import eval_loader, first_batches, move_batch, scalar_metrics
from occrecon.losses.edge_lines import effectiveness_label
from occrecon.metrics.landmarks import LandmarkMetrics
from occrecon.report import ReportSection
from occrecon.viz import draw_landmarks, grid, overlay_heatmaps, save_titled_grid


def edge_grid(batch: dict[str, Any], heatmaps: torch.Tensor, landmarks: torch.Tensor, count: int = 4) -> np.ndarray:
    """``[H, W, 3]`` uint8 grid, one row per sample: M_edge over the image + read-out | GT lines + GT points."""
    return grid(_rows(batch, heatmaps.clamp(0, 1), landmarks, count))


@torch.no_grad()
def demo_section(
    system: L.LightningModule, datamodule: L.LightningDataModule, out_dir: Path, max_batches: int = 4
) -> ReportSection:
    """Evaluate ``system`` on the test split (else val) of ``datamodule``: NME / FR / AUC of the
    read-out over ``max_batches`` batches, and ``out_dir/edge_lines.png`` (M_edge over the image
    with the read-out landmarks | ground-truth lines and landmarks)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system.eval()
    metrics = LandmarkMetrics(system.val_metrics.normalization)
    rows: list[list[np.ndarray]] = []
    effective, shares = [], []
    for batch in first_batches(eval_loader(datamodule), max_batches):
        batch = move_batch(batch, system.device)
        outputs = system(batch["image"])
        heat = outputs["heatmaps"][-1].clamp(0, 1)
        _, landmarks_heat = system.targets(batch, tuple(heat.shape[-2:]))
        d_gt, share = effectiveness_label(heat, landmarks_heat, system.d_loss.theta, system.d_loss.delta, system.lines)
        effective.append(d_gt)
        shares.append(share)
        metrics.update(outputs["landmarks"], batch["landmarks"].float(), visible=batch.get("visibility"))
        rows += _rows(batch, heat, outputs["landmarks"], 4 - len(rows))
    values = scalar_metrics(metrics.compute(), "M_edge")
    values["M_edge/effective (Eq. 1)"] = float(torch.cat(effective).mean())
    values["M_edge/line_share"] = float(torch.cat(shares).mean())
    figure = save_titled_grid(
        out_dir / "edge_lines.png", rows, ["M_edge over the image + read-out", "ground truth"], scale=2
    )
    text = (
        f"Face edge lines `M_edge` (stacked hourglasses x{system.hparams.num_stacks}, width {system.hparams.width}) "
        f"and the landmark read-out; NME normalised by {metrics.normalization.replace('_', '-')} distance, "
        f"theta={system.d_loss.theta}, delta={system.d_loss.delta}."
    )
    return ReportSection("Face edge lines M_edge", text, values, [], [("M_edge and landmarks", figure.name)])


def _rows(batch: dict[str, Any], heat: torch.Tensor, landmarks: torch.Tensor, count: int) -> list[list[np.ndarray]]:
    out = []
    for i in range(max(0, min(count, heat.shape[0]))):
        image = batch["image"][i]
        out.append([draw_landmarks(overlay_heatmaps(image, heat[i]), landmarks[i]),
                    draw_landmarks(overlay_heatmaps(image, batch["edge_lines"][i]), batch["landmarks"][i])])  # fmt: skip
    return out
