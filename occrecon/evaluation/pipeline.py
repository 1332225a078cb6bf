"""Report of the composite chain: every intermediate map for a few test faces, and the chain's
metrics against each stage alone.

Measured on the test split (else val) of the data module the chain was fine-tuned with:

* ``M_fin`` vs ``M_fa`` inside the ground-truth occluder mask (mIoU, :class:`FusionScores`);
* ``I_out`` vs ``I_gt`` inside the ground-truth occluder mask (PSNR, L1) next to ``I_in`` itself;
* the coarse stage's 3D error (rigid / similarity, mm), NME and photometric error on ``I_out``
  (the chain) and on ``I_in`` (the same coarse stage without the synthesis stage in front).

Nothing here imports :mod:`occrecon.systems`: the trained ``PipelineSystem`` is used through its
``forward`` (the chain state of :mod:`occrecon.chain`) and ``evaluate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from occrecon.evaluation.common import eval_loader, first_batches, move_batch, scalar_metrics
from occrecon.evaluation.fusion import FusionScores
from occrecon.evaluation.synthesis import region_scores
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.metrics.reconstruction import ReconstructionMetrics
from occrecon.report import ReportSection, markdown_table
from occrecon.viz import colorize_labels, colorize_scalar, image_to_uint8, save_titled_grid

MAP_TITLES: dict[str, str] = {
    "I_in": "I_in",
    "M_fa": "M_fa",
    "M_edge": "M_edge",
    "M_fin": "M_fin",
    "I_out": "I_out",
    "render": "coarse render",
    "depth_detail": "detailed depth d'",
}


def chain_row(state: dict[str, Any], i: int) -> list[np.ndarray]:
    """Pictures ``[H, W, 3]`` uint8 of sample ``i``'s intermediate maps, in :data:`MAP_TITLES` order."""
    size = state["I_in"].shape[-1]
    row = [image_to_uint8(state["I_in"][i])]
    for key in ("M_fa", "M_edge", "M_fin", "I_out", "render", "depth_detail"):
        if key not in state:
            continue
        value = state[key]
        if key in ("M_fa", "M_fin"):
            row.append(colorize_labels(value[i]))
        elif key == "M_edge":
            lines = torch.nn.functional.interpolate(value[i : i + 1].amax(1, keepdim=True), size=(size, size), mode="bilinear")
            row.append(colorize_scalar(lines[0, 0], vmin=0.0, vmax=1.0, cmap="magma"))
        elif key == "render":
            mask = value.mask[i]
            rendered = torch.nn.functional.interpolate(value.image[i : i + 1].clamp(0, 1), size=(size, size))[0]
            mask = torch.nn.functional.interpolate(mask[None], size=(size, size))[0]
            base = state.get("I_out", state["I_in"])[i]
            row.append(image_to_uint8(base * (1 - mask) + rendered * mask))
        elif key == "depth_detail":
            depth = torch.nn.functional.interpolate(value[i : i + 1], size=(size, size))[0, 0]
            row.append(colorize_scalar(depth, mask=depth > 0))
        else:
            row.append(image_to_uint8(value[i]))
    return row


@torch.no_grad()
def demo_section(system: Any, datamodule: Any, out_dir: str | Path, max_batches: int = 4, max_rows: int = 4) -> ReportSection:
    """Evaluate the chain (module docstring); writes ``out_dir/pipeline.png``."""
    out_dir = Path(out_dir)
    system.eval()
    metrics = ReconstructionMetrics(tuple(system.val_metrics.names))
    fusion = FusionScores(len(CELEBAMASK_CLASSES), methods=("M_fin", "M_fa"))
    synthesis: dict[str, list[torch.Tensor]] = {"I_out psnr": [], "I_in psnr": [], "I_out l1": [], "I_in l1": []}
    rows: list[list[np.ndarray]] = []
    titles: list[str] = []
    for batch in first_batches(eval_loader(datamodule), max_batches):
        batch = move_batch(batch, system.device)
        state = system(batch["image"])
        values = system.evaluate(state, batch)
        if values:
            metrics.update(values, batch["glasses"] > 0 if "glasses" in batch else None)
        if "M_fin" in state and {"parsing_gt", "occluder_mask"} <= set(batch):
            fusion.update({"M_fin": state["M_fin"], "M_fa": state["M_fa"]}, batch["parsing_gt"], batch["occluder_mask"])
        if "I_out" in state and {"I_gt", "occluder_mask"} <= set(batch):
            for name, image in (("I_out", state["I_out"]), ("I_in", state["I_in"])):
                scores = region_scores(image.clamp(0, 1), batch["I_gt"], batch["occluder_mask"])
                synthesis[f"{name} psnr"].append(scores["psnr"])
                synthesis[f"{name} l1"].append(scores["l1"])
        for i in range(state["I_in"].shape[0]):
            if len(rows) < max_rows:
                rows.append(chain_row(state, i))
        titles = [MAP_TITLES[k] for k in MAP_TITLES if k in state]
    figure = save_titled_grid(out_dir / "pipeline.png", rows, titles, scale=2)
    tables = []
    computed = scalar_metrics(metrics.compute(), "test") if metrics.update_count else {}
    if "test/error_mm_without_synthesis" in computed:
        names = [("3D rigid (mm)", "error_mm"), ("3D similarity (mm)", "error_sim_mm"), ("NME", "nme"), ("photometric", "photo_error")]
        table_rows = [[label, computed.get(f"test/{key}", float("nan")), computed.get(f"test/{key}_without_synthesis", float("nan"))]
                      for label, key in names]  # fmt: skip
        tables.append(markdown_table(["coarse stage metric", "chain (coarse on I_out)", "coarse alone (on I_in)"], table_rows))
    if fusion.count:
        tables.append(fusion.table())
    summary: dict[str, float] = {}  # the coarse-stage numbers are in the table
    for key, parts in synthesis.items():
        if parts:
            summary[f"inside occluders: {key}"] = float(torch.cat(parts).nanmean())
    text = (
        f"The chain {' -> '.join(system.order)} after its end-to-end fine-tune (trainable: "
        f"{', '.join(system.trainable) or 'none'}), on up to {max_batches} test batches. Columns of the "
        "picture: every intermediate map. 'coarse alone' feeds the same coarse stage the occluded I_in: "
        "the difference is what the synthesis stage in front buys (or costs) the 3D reconstruction."
    )
    return ReportSection("The composite chain", text, summary, tables, [("intermediate maps", figure.name)])
