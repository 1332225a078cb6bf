"""Measure occluder removal ``I_out`` (:mod:`occrecon.systems.synthesis`) where ``I_gt`` is known.

Protocol (synthetic set, or any batch with ``I_in``, ``I_gt`` and an occluder mask): per image,
for each method,

* PSNR, SSIM and L1 **inside the occluder mask** and **over the whole face** (``face_mask`` or the
  mask, else the whole image) against ``I_gt`` (torchmetrics; PSNR/L1 over the region's pixels,
  SSIM = the mean of torchmetrics' full SSIM map over the region), averaged over the images whose
  mask is not empty;
* ``eye_g px``: pixels a parsing network still labels ``eye_g`` in the result (only with a parsing
  network), and ``id cos``: cosine of the identity network's embeddings of the result and
  ``I_gt`` (only with identity weights).

Methods, all measured in the same run on the same masks: ``synthesis`` (the trained generator, its
EMA when the checkpoint has one), ``telea`` (``cv2.inpaint``, Telea 2004, radius 3 px),
``nearest`` (every masked pixel takes the colour of the nearest unmasked one) and ``input`` (the
occluded image itself). FID is not reported: it needs Inception weights, which cannot be had here.

The conditions are the oracle ones (``M_fin`` = ``parsing_gt``, ``M_edge`` = the ground-truth edge
lines, the ground-truth occluder mask) unless trained parsing and edge-lines systems are given;
then ``M_fin`` and the mask come from :func:`occrecon.evaluation.fusion.fusion_maps` of their
predictions (the pipeline's conditions).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from occrecon.labels import CELEBAMASK
from occrecon.report import markdown_table

METHODS: tuple[str, ...] = ("synthesis", "telea", "nearest", "input")
FIELDS: tuple[str, ...] = ("I_in", "I_gt", "parsing_gt", "occluder_mask", "face_mask", "edge_lines", "landmarks")
NAMES = {"synthesis": "synthesis (G)", "telea": "cv2.inpaint Telea", "nearest": "nearest-pixel fill",
         "input": "input I_in (no removal)"}  # fmt: skip


def _composite(filled: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from occrecon.nets.synthesis import composite

    return composite(filled, image, mask)


def telea_fill(images: torch.Tensor, mask: torch.Tensor, radius: float = 3.0) -> torch.Tensor:
    """``cv2.inpaint`` (Telea) of ``[B, 3, H, W]`` images in ``[0, 1]`` inside ``mask`` ``[B, 1, H, W]``
    (8-bit, as OpenCV requires); pixels outside the mask are the input's, bit for bit."""
    out = []
    for image, m in zip(images, mask, strict=True):
        rgb = (image.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        filled = cv2.inpaint(rgb, (m[0].cpu().numpy() > 0.5).astype(np.uint8), radius, cv2.INPAINT_TELEA)
        out.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 255.0)
    return _composite(torch.stack(out).to(images), images, mask)


def nearest_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Every masked pixel takes the colour of the nearest unmasked pixel (Euclidean distance transform)."""
    out = images.clone()
    for b in range(images.shape[0]):
        hole = mask[b, 0].cpu().numpy() > 0.5
        if not hole.any() or hole.all():
            continue
        _, (rows, cols) = distance_transform_edt(hole, return_indices=True)
        rows, cols = torch.from_numpy(rows).to(images.device), torch.from_numpy(cols).to(images.device)
        out[b] = images[b][:, rows, cols]
    return _composite(out, images, mask)


def region_scores(output: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image ``psnr``, ``ssim``, ``l1`` of ``output`` vs ``target`` ``[B, 3, H, W]`` over ``region``
    ``[B, 1, H, W]`` (NaN for an empty region)."""
    _, ssim_map = structural_similarity_index_measure(
        output, target, data_range=1.0, reduction="none", return_full_image=True
    )
    scores: dict[str, list[float]] = defaultdict(list)
    for b in range(output.shape[0]):
        inside = region[b].expand_as(output[b]) > 0.5
        if not inside.any():
            for key in ("psnr", "ssim", "l1"):
                scores[key].append(float("nan"))
            continue
        o, t = output[b][inside], target[b][inside]
        scores["psnr"].append(float(peak_signal_noise_ratio(o, t, data_range=1.0)))
        scores["ssim"].append(float(ssim_map[b][inside].mean()))
        scores["l1"].append(float((o - t).abs().mean()))
    return {k: torch.tensor(v) for k, v in scores.items()}


class SynthesisScores:
    """Per-image scores of every method (module docstring), averaged by :meth:`compute`."""

    def __init__(self, methods: tuple[str, ...] = METHODS) -> None:
        self.methods = methods
        self.values: dict[str, dict[str, list[torch.Tensor]]] = {m: defaultdict(list) for m in methods}
        self.count = 0

    def update(
        self,
        outputs: Mapping[str, torch.Tensor],
        target: torch.Tensor,
        mask: torch.Tensor,
        face: torch.Tensor | None = None,
        parsing_net: Callable[[torch.Tensor], torch.Tensor] | None = None,
        embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """Add a batch: ``outputs[method]`` ``[B, 3, H, W]``; ``face`` ``[B, 1, H, W]`` (None: whole image);
        ``parsing_net``: images -> ``[B, H, W]`` labels; ``embed``: ``(images, kept)`` -> ``[B, D]`` identity
        embeddings (``kept``: bool ``[B]`` of the batch's images scored, for their landmarks)."""
        keep = mask.flatten(1).amax(1) > 0.5  # images without an occluder are skipped (I_out == I_in there)
        if not keep.any():
            return
        mask, target = mask[keep], target[keep]
        whole = torch.ones_like(mask) if face is None else ((face[keep] > 0.5) | (mask > 0.5)).to(mask.dtype)
        reference = None if embed is None else embed(target, keep)
        for method in self.methods:
            output = outputs[method][keep]
            values = self.values[method]
            for prefix, region in (("mask", mask), ("face", whole)):
                for key, value in region_scores(output, target, region).items():
                    values[f"{key}_{prefix}"].append(value)
            if parsing_net is not None:
                values["eye_g_px"].append((parsing_net(output) == CELEBAMASK["eye_g"]).flatten(1).sum(1).float().cpu())
            if reference is not None:
                values["id_cos"].append(torch.cosine_similarity(embed(output, keep), reference, dim=1).cpu())
        self.count += target.shape[0]

    def compute(self) -> dict[str, dict[str, float]]:
        """``{method: {metric: mean over images}}`` (images with an empty mask skipped)."""
        return {
            method: {key: float(torch.cat(v).nanmean()) for key, v in values.items()}
            for method, values in self.values.items()
        }

    def table(self) -> str:
        """Markdown table, one row per method."""
        scores = self.compute()
        keys = [k for k in ("psnr_mask", "ssim_mask", "l1_mask", "psnr_face", "ssim_face", "l1_face", "eye_g_px", "id_cos")
                if k in next(iter(scores.values()), {})]  # fmt: skip
        labels = {"psnr_mask": "PSNR mask (dB)", "ssim_mask": "SSIM mask", "l1_mask": "L1 mask",
                  "psnr_face": "PSNR face (dB)", "ssim_face": "SSIM face", "l1_face": "L1 face",
                  "eye_g_px": "eye_g px left", "id_cos": "id cos vs I_gt"}  # fmt: skip
        rows = [(NAMES.get(m, m), *[s[k] for k in keys]) for m, s in scores.items()]
        return markdown_table([f"method ({self.count} images)", *[labels[k] for k in keys]], rows)


def method_outputs(system: Any, cond: Any) -> dict[str, torch.Tensor]:
    """``I_out`` of every method for one batch of :class:`~occrecon.systems.synthesis.Conditions`."""
    return {
        "synthesis": system.synthesize(cond.image, cond.parsing, cond.edges, cond.mask),
        "telea": telea_fill(cond.image, cond.mask),
        "nearest": nearest_fill(cond.image, cond.mask),
        "input": cond.image,
    }


def predicted_batch(batch: dict[str, Any], parsing_system: Any, edge_system: Any) -> dict[str, Any]:
    """``batch`` with the pipeline's conditions: ``M_fin`` (``parsing_gt`` key replaced) and the occluder
    mask from the trained networks' ``M_fa`` and ``M_edge`` (:func:`occrecon.evaluation.fusion.fusion_maps`);
    the ground-truth mask is kept as ``gt_mask`` for scoring."""
    from occrecon.evaluation.fusion import fusion_maps

    heatmaps = edge_system.predict_heatmaps(batch["I_in"])
    maps = fusion_maps(parsing_system.predict_labels(batch["I_in"]), heatmaps)
    return {**batch, "parsing_gt": maps["M_fin"], "edge_lines": heatmaps, "gt_mask": batch["occluder_mask"],
            "occluder_mask": maps["O"]}  # fmt: skip


def identity_embedder(kind: str = "dlib", path: str | None = None) -> tuple[Callable | None, str]:
    """``images -> embeddings`` of the frozen identity network (aligned with the batch's 68 landmarks
    when given), or ``(None, reason)`` when its weights are unavailable."""
    from occrecon.assets.identity import build_identity_network

    network, reason = build_identity_network(kind, path)
    if network is None:
        return None, reason

    def embed(images: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        from occrecon.nets.identity import identity_input

        return network.to(images.device)(identity_input(network, images, landmarks))

    return embed, ""


@torch.no_grad()
def score_batches(
    system: Any,
    batches: Any,
    parsing_system: Any = None,
    edge_system: Any = None,
    embed: Callable | None = None,
    on_batch: Callable[[dict[str, Any], Any, dict[str, torch.Tensor]], None] | None = None,
) -> SynthesisScores:
    """Score every method over ``batches`` (sample dicts with ``I_in``, ``I_gt``, ``occluder_mask``,
    ``parsing_gt``, ``edge_lines``); predicted conditions when both ``parsing_system`` and
    ``edge_system`` are given. ``on_batch(batch, conditions, outputs)`` sees every batch (pictures)."""
    from occrecon.evaluation.common import move_batch

    system.eval()
    scores = SynthesisScores()
    parse = None if parsing_system is None else parsing_system.eval().predict_labels
    for batch in batches:
        batch = move_batch(batch, system.device)
        if parsing_system is not None and edge_system is not None:
            batch = predicted_batch(batch, parsing_system, edge_system.eval())
        cond = system.conditions(batch)
        outputs = method_outputs(system, cond)
        landmarks = batch.get("landmarks")
        embed_batch = None if embed is None else (lambda images, kept, lm=landmarks: embed(images, None if lm is None else lm[kept]))
        scored_mask = batch.get("gt_mask", cond.mask)
        scores.update(outputs, cond.target, scored_mask, batch.get("face_mask"), parse, embed_batch)
        if on_batch is not None:
            on_batch(batch, cond, outputs)
    return scores


def evaluate_synthesis(
    batches: Any,
    system: Any,
    parsing_system: Any = None,
    edge_system: Any = None,
    identity: str = "dlib",
    max_batches: int = 0,
) -> tuple[SynthesisScores, str]:
    """Score ``system`` and the baselines over the batches of a synthetic split (module docstring;
    ``occrecon eval synthesis`` loads them with :func:`occrecon.commands.evaluate.synthetic_loader`
    and :data:`FIELDS`). Returns the scores and a note on what was left out (identity weights missing)."""
    from occrecon.evaluation.common import first_batches

    embed, reason = identity_embedder(identity) if identity != "none" else (None, "identity: none")
    scores = score_batches(system, first_batches(batches, max_batches), parsing_system, edge_system, embed)
    notes = [] if embed is not None else [f"no identity cosine ({reason})"]
    if parsing_system is None:
        notes.append("no eye_g count (no parsing checkpoint)")
    return scores, "; ".join(notes)


def synthesis_grid(batch: Mapping[str, Any], output: torch.Tensor, count: int = 4) -> np.ndarray:
    """``[H, W, 3]`` uint8 grid, one row per sample: ``I_in | M_fin | I_out | I_gt`` (training log picture)."""
    from occrecon.viz import grid

    return grid(_rows(batch, output, None, count))


def _rows(batch: Mapping[str, Any], output: torch.Tensor, baseline: torch.Tensor | None, count: int) -> list[list[np.ndarray]]:
    from occrecon.viz import colorize_labels, image_to_uint8

    rows = []
    image = batch["I_in"] if "I_in" in batch else batch["image"]
    for i in range(max(0, min(count, output.shape[0]))):
        row = [image_to_uint8(image[i])]
        if "parsing_gt" in batch and batch["parsing_gt"].dim() == 3:
            row.append(colorize_labels(batch["parsing_gt"][i]))
        row.append(image_to_uint8(output[i]))
        if baseline is not None:
            row.append(image_to_uint8(baseline[i]))
        if "I_gt" in batch:
            row.append(image_to_uint8(batch["I_gt"][i]))
        rows.append(row)
    return rows


@torch.no_grad()
def demo_section(system: Any, datamodule: Any, out_dir: str | Path, max_batches: int = 4, parsing_system: Any = None) -> Any:
    """Report section of the synthesis stage on the test split (else val) of ``datamodule``: the
    :class:`SynthesisScores` table of ``synthesis`` and the baselines over ``max_batches`` batches, and
    ``out_dir/synthesis.png``: ``I_in | M_fin | I_out | Telea | I_gt`` (paths relative to ``out_dir``)."""
    from occrecon.evaluation.common import eval_loader, first_batches
    from occrecon.report import ReportSection
    from occrecon.viz import save_titled_grid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[list[np.ndarray]] = []

    def keep(batch: dict[str, Any], cond: Any, outputs: dict[str, torch.Tensor]) -> None:
        rows.extend(_rows(batch, outputs["synthesis"], outputs["telea"], 4 - len(rows)))

    scores = score_batches(system, first_batches(eval_loader(datamodule), max_batches), parsing_system, on_batch=keep)
    figure = save_titled_grid(out_dir / "synthesis.png", rows, ["I_in", "M_fin", "I_out", "Telea", "I_gt"], scale=2)
    values = scores.compute()
    metrics = {f"{m}/{k}": v for m in ("synthesis", "input", "telea") for k, v in values[m].items()
               if k in ("psnr_mask", "ssim_mask", "l1_mask")}  # fmt: skip
    hp = system.hparams
    weights = ", ".join(f"{k} {v:g}" for k, v in system.effective_weights.items())
    text = (
        f"Occluder removal `I_out = m*G + (1-m)*I_in` ({hp.conditioning} guidance by M_fin and M_edge, width "
        f"{hp.width}, {hp.num_blocks} residual blocks; {'EMA generator' if system.eval_generator is not system.generator else 'generator'}) "
        f"on {scores.count} test images with the oracle conditions (M_fin = occluder-free parsing, ground-truth "
        f"edge lines and occluder mask). Loss weights in effect: {weights}. Baselines measured in the same run. "
        "FID is not reported (Inception weights cannot be had here)."
    )
    return ReportSection("Occluder removal I_out (synthesis)", text, metrics, [scores.table()],
                         [("I_in | M_fin | I_out | Telea | I_gt", figure.name)])  # fmt: skip
