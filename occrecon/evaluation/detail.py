"""Metrics, pictures, meshes and the demo report section of the detail stage (:mod:`occrecon.systems.detail`).

* :class:`DetailMetrics` -- on data with ground truth (the synthetic set): L1 of ``Phi`` (codes),
  L1 of ``d'`` (mm) and the normal angular error (degrees), inside visible skin and inside the
  occluder region separately, for the prediction, for "coarse only" (``Phi = phi(0)``, ``d' = d``)
  and optionally for the "oracle" (the ground-truth ``Phi~`` through the same decoding: the floor
  set by the uint8 quantisation and the normal decoding);
* :func:`evaluate_detail` / :func:`metrics_table` -- the numbers of ``occrecon eval detail``;
* :func:`detail_grid`, :func:`shading_views` -- coarse vs detailed shading, frontal and turned;
* :func:`write_detailed_mesh` -- the detailed depth as a grid mesh, OBJ and PLY with vertex colours;
* :func:`demo_section` -- the ``occrecon demo`` contract (:mod:`occrecon.commands.demo`).

``system`` arguments are ``DetailSystem`` instances used through their public attributes
(``coarse_maps``, ``detail``, ``decode``, ``target_phi``, ``input_image``, ``hparams``, ``renderer``,
``face_model``); this module never imports :mod:`occrecon.systems`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics

from occrecon.evaluation.common import eval_loader, first_batches, move_batch
from occrecon.geometry.bump import PHI_ZERO, angular_error_deg, grid_mesh
from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.geometry.lighting import sh_irradiance
from occrecon.labels import CELEBAMASK
from occrecon.mesh_io import write_obj, write_ply
from occrecon.report import ReportSection, markdown_table
from occrecon.viz import colorize_scalar, image_to_uint8, save_titled_grid

METRIC_NAMES: tuple[str, ...] = ("phi_l1", "depth_l1_mm", "normal_deg")
REGIONS: tuple[str, ...] = ("visible", "occluded")
SKIN_CLASSES: tuple[int, ...] = tuple(
    CELEBAMASK[n] for n in ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")
)
"""Face-interior classes of ``parsing_gt`` that count as skin for the ``visible`` region."""
VIEW_GAMMA = (0.0, -0.3, 0.25, -0.35, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Mono SH light of the shading pictures: from the upper right front, raking enough to show wrinkles."""
VIEW_ALBEDO = 0.7
SIDE_YAW_DEG = 35.0


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="nearest")


def eval_regions(batch: dict[str, Any], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``visible``: skin classes of ``parsing_gt`` (else the whole face) not under an occluder;
    ``occluded``: face pixels under an occluder (``occluder_mask``). ``[B, 1, S, S]`` each, inside ``mask``."""
    size = mask.shape[-1]
    occluder = _resize(batch["occluder_mask"].float(), size) if "occluder_mask" in batch else torch.zeros_like(mask)
    skin = mask
    if "parsing_gt" in batch:
        labels = _resize(batch["parsing_gt"][:, None].float(), size).long()
        skin = torch.isin(labels, torch.tensor(SKIN_CLASSES, device=mask.device)).to(mask.dtype) * mask
    return {"visible": skin * (1 - occluder), "occluded": mask * occluder}


class DetailMetrics(torchmetrics.Metric):
    """Pixel-averaged errors per method and region (module docstring); sums are reduced over ranks.

    ``compute()`` returns ``{"<metric>_<region>": ...}`` for the prediction and
    ``{"<method>/<metric>_<region>": ...}`` for the other methods (NaN where a region was empty).
    """

    full_state_update = False

    def __init__(self, methods: tuple[str, ...] = ("detail", "coarse")) -> None:
        super().__init__()
        self.methods = methods
        self.keys = [f"{m}/{n}_{r}" for m in methods for n in METRIC_NAMES for r in REGIONS]
        self.add_state("sums", default=torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, errors: dict[str, torch.Tensor], regions: dict[str, torch.Tensor]) -> None:
        """``errors["<method>/<metric>"]`` ``[B, 1, S, S]`` per-pixel errors; ``regions`` masks of :func:`eval_regions`."""
        sums, counts = self.sums.clone(), self.counts.clone()
        for i, key in enumerate(self.keys):
            name, region = key.rsplit("_", 1)
            if name not in errors:
                continue
            weight = regions[region] * torch.isfinite(errors[name])
            sums[i] += (torch.nan_to_num(errors[name]) * weight).sum().double()
            counts[i] += weight.sum().double()
        self.sums, self.counts = sums, counts

    def update_from(self, system: Any, batch: dict[str, Any], image: torch.Tensor, out: Any, coarse: Any) -> None:
        """Errors of the prediction ``out`` and of the other methods on a ground-truth batch."""
        self.update(*detail_errors(system, batch, out, coarse, self.methods))

    def compute(self) -> dict[str, torch.Tensor]:
        values = self.sums / self.counts.clamp_min(1.0)
        values = torch.where(self.counts > 0, values, torch.full_like(values, float("nan")))
        return {k.removeprefix("detail/"): v.float() for k, v in zip(self.keys, values, strict=True)}


def detail_errors(
    system: Any, batch: dict[str, Any], out: Any, coarse: Any, methods: Iterable[str] = ("detail", "coarse")
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-pixel errors ``{"<method>/<metric>": [B, 1, S, S]}`` and the evaluation regions of a batch.

    Methods: ``detail`` (``out``), ``coarse`` (``Phi = phi(0)``), ``oracle`` (``Phi = Phi~``).
    Truth: ``bump`` (codes), ``depth_detail`` (``d'``), ``normals`` (detailed, view space).
    """
    size, mask = system.hparams.image_size, coarse.mask
    truth_phi = system.target_phi(batch, mask)
    truth_depth = _resize(batch["depth_detail"].float(), size)
    truth_normal = _resize(batch["normals"].float(), size)
    has_normal = (truth_normal.abs().sum(1, keepdim=True) > 0).to(mask.dtype)
    regions = {k: v * has_normal for k, v in eval_regions(batch, mask).items()}
    outputs = {"detail": out}
    if "coarse" in methods:
        flat = torch.full_like(out.phi, PHI_ZERO)
        outputs["coarse"] = system.decode(flat, torch.ones_like(flat), coarse)
    if "oracle" in methods:
        outputs["oracle"] = system.decode(truth_phi, torch.ones_like(truth_phi), coarse)
    mm = float(system.face_model.mm_per_unit)
    errors = {}
    for name, o in outputs.items():
        if name not in methods:
            continue
        errors[f"{name}/phi_l1"] = (o.phi - truth_phi).abs()
        errors[f"{name}/depth_l1_mm"] = (o.depth - truth_depth).abs() * mm
        errors[f"{name}/normal_deg"] = angular_error_deg(o.normals, truth_normal)
    return errors, regions


@torch.no_grad()
def evaluate_detail(
    system: Any, loader: Iterable[Any], max_batches: int = 0, methods: tuple[str, ...] = ("detail", "coarse", "oracle")
) -> dict[str, float]:
    """Run ``system`` over ``loader`` (ground-truth batches) and return :class:`DetailMetrics` values as floats."""
    system.eval()
    metrics = DetailMetrics(methods).to(system.device)
    for batch in first_batches(loader, max_batches):
        batch = move_batch(batch, system.device)
        out, coarse = system(batch)
        metrics.update(*detail_errors(system, batch, out, coarse, methods))
    values = {k: float(v) for k, v in metrics.compute().items()}
    values["pixels_visible"] = float(metrics.counts[metrics.keys.index(f"{methods[0]}/phi_l1_visible")])
    values["pixels_occluded"] = float(metrics.counts[metrics.keys.index(f"{methods[0]}/phi_l1_occluded")])
    return values


def metrics_table(values: dict[str, float]) -> str:
    """Markdown table: one row per method, columns metric x region (visible skin / occluder region)."""
    labels = {"detail": "detail network", "coarse": "coarse only (Phi = phi(0))", "oracle": "oracle (Phi = ground truth)"}
    header = ["method"] + [f"{n} {r}" for n in ("Phi L1 (codes)", "d' L1 (mm)", "normal (deg)") for r in ("visible", "occluded")]
    rows = []
    for method, label in labels.items():
        prefix = "" if method == "detail" else f"{method}/"
        cells = [values.get(f"{prefix}{n}_{r}", float("nan")) for n in METRIC_NAMES for r in REGIONS]
        if method == "detail" or not all(math.isnan(c) for c in cells):
            rows.append([label, *cells])
    return markdown_table(header, rows)


# ----------------------------------------------------------------------------------- pictures


def _gamma(batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(VIEW_GAMMA, device=device).expand(batch_size, -1)


def front_shading(normals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grey per-pixel shading ``[B, 3, S, S]`` of view-space normals under :data:`VIEW_GAMMA`, white off the face."""
    light = sh_irradiance(normals.permute(0, 2, 3, 1), _gamma(normals.shape[0], normals.device)).permute(0, 3, 1, 2)
    return (VIEW_ALBEDO * light * mask + (1 - mask)).clamp(0, 1)


def turned_shading(system: Any, depth: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor, px_per_unit: float,
                   yaw_deg: float = SIDE_YAW_DEG) -> torch.Tensor:  # fmt: skip
    """One face's depth map as a grid mesh (:func:`occrecon.geometry.bump.grid_mesh`) turned by ``yaw_deg``
    and shaded per pixel with ``normals`` (``[3, S, S]`` view space) -> ``[3, S, S]``, white background."""
    verts, tris, _ = grid_mesh(depth[0], mask[0], px_per_unit)
    size = system.hparams.image_size
    if len(tris) == 0:
        return torch.ones(3, size, size, device=depth.device)
    v = torch.as_tensor(verts, dtype=torch.float32, device=depth.device)
    v[:, 2] -= v[:, 2].mean()  # turn about the face's centre
    rows, cols = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    n = normals[:, rows, cols].T.contiguous()
    camera = ScaledOrthographicCamera(size)
    pose = torch.zeros(1, 6, device=depth.device)
    pose[0, 1] = math.radians(yaw_deg)
    pose[0, 3] = px_per_unit / float(camera.scale(torch.zeros(1, 6))[0]) - 1.0
    faces = torch.as_tensor(tris, dtype=torch.int64, device=depth.device)
    out = system.renderer.render(v[None], faces, camera, pose, torch.full_like(v, VIEW_ALBEDO)[None], n[None],
                                 _gamma(1, depth.device), shading="pixel")  # fmt: skip
    return (out.image[0] * out.mask[0] + (1 - out.mask[0])).clamp(0, 1)


def bump_picture(phi: torch.Tensor, mask: torch.Tensor, span: float = 24.0) -> np.ndarray:
    """``[1, S, S]`` codes -> ``[S, S, 3]`` uint8, ``phi(0) +- span`` codes mapped through a diverging colour map."""
    return colorize_scalar(phi[0] - PHI_ZERO, mask[0], vmin=-span, vmax=span, cmap="RdBu_r")


def detail_grid(system: Any, batch: dict[str, Any], image: torch.Tensor, out: Any, coarse: Any, count: int = 4) -> np.ndarray:
    """Training picture ``[H, W, 3]`` uint8: input | Phi~ (if any) | Phi | coarse | detailed shading (frontal)."""
    from occrecon.viz import grid

    truth = system.target_phi(batch, coarse.mask)
    coarse_sh, detail_sh = front_shading(coarse.normal, coarse.mask), front_shading(out.normals, coarse.mask)
    rows = []
    for i in range(min(count, image.shape[0])):
        row = [image_to_uint8(image[i])]
        if truth is not None:
            row.append(bump_picture(truth[i], coarse.mask[i]))
        row += [bump_picture(out.phi[i].detach(), coarse.mask[i]), image_to_uint8(coarse_sh[i]), image_to_uint8(detail_sh[i])]
        rows.append(row)
    return grid(rows)


def write_detailed_mesh(stem: str | Path, depth: torch.Tensor, mask: torch.Tensor, px_per_unit: float,
                        colors: torch.Tensor | None = None) -> tuple[Path, Path]:  # fmt: skip
    """Write one face's detailed depth ``d'`` ``[1, S, S]`` as ``<stem>.obj`` and ``<stem>.ply``.

    The mesh is :func:`occrecon.geometry.bump.grid_mesh` (one vertex per face pixel, view space of the
    orthographic camera, decimetres, ``z = -d'``), with per-vertex colours from ``colors [3, S, S]``.
    """
    verts, tris, rgb = grid_mesh(depth[0], mask[0], px_per_unit, colors)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return write_obj(stem.with_suffix(".obj"), verts, tris, rgb), write_ply(stem.with_suffix(".ply"), verts, tris, rgb)


@torch.no_grad()
def demo_section(system: Any, datamodule: Any, out_dir: Path, max_faces: int = 8) -> ReportSection:
    """Evaluate on the test split (else val): the metrics table, coarse vs detailed pictures, meshes.

    Writes ``out_dir/detail.png`` and ``out_dir/meshes/detail_<k>.obj`` / ``.ply`` (detailed grid
    meshes of the first ``max_faces`` faces, coloured with the coarse albedo, decimetres).
    """
    out_dir = Path(out_dir)
    system.eval()
    methods = ("detail", "coarse", "oracle")
    metrics = DetailMetrics(methods).to(system.device)
    rows: list[list[np.ndarray]] = []
    written = 0
    has_truth = False
    for batch in eval_loader(datamodule):
        batch = move_batch(batch, system.device)
        out, coarse = system(batch)
        has_truth = all(k in batch for k in ("bump", "depth_detail", "normals"))
        if has_truth:
            metrics.update(*detail_errors(system, batch, out, coarse, methods))
        if written >= max_faces:
            continue
        image = system.input_image(batch)
        truth = system.target_phi(batch, coarse.mask)
        flat = system.decode(torch.full_like(out.phi, PHI_ZERO), out.confidence, coarse)
        front_c, front_d = front_shading(flat.normals, coarse.mask), front_shading(out.normals, coarse.mask)
        front_t = front_shading(_resize(batch["normals"].float(), image.shape[-1]), coarse.mask) if has_truth else None
        for i in range(min(image.shape[0], max_faces - written)):
            px = float(coarse.px_per_unit[i])
            write_detailed_mesh(out_dir / "meshes" / f"detail_{written:03d}", out.depth[i], coarse.mask[i], px, coarse.albedo[i])
            written += 1
            if len(rows) < 4:
                side_c = turned_shading(system, flat.depth[i], flat.normals[i], coarse.mask[i], px)
                side_d = turned_shading(system, out.depth[i], out.normals[i], coarse.mask[i], px)
                row = [image_to_uint8(image[i])]
                row += [bump_picture(truth[i], coarse.mask[i])] if truth is not None else []
                row += [bump_picture(out.phi[i], coarse.mask[i])]
                row += [image_to_uint8(t) for t in (front_c[i], front_d[i])]
                row += [image_to_uint8(front_t[i])] if front_t is not None else []
                row += [image_to_uint8(t) for t in (side_c, side_d)]
                row += [image_to_uint8(out.confidence[i].expand(3, -1, -1))]
                rows.append(row)
    values = {k: float(v) for k, v in metrics.compute().items()} if has_truth else {}
    values["pixels_visible"] = float(metrics.counts[metrics.keys.index("detail/phi_l1_visible")])
    values["pixels_occluded"] = float(metrics.counts[metrics.keys.index("detail/phi_l1_occluded")])
    titles = ["input"] + (["Phi~ (truth)"] if has_truth else []) + ["Phi (predicted)", "coarse", "detailed"] + (
              ["detailed (truth)"] if has_truth else []) + [f"coarse ({SIDE_YAW_DEG:.0f}° yaw)", f"detailed ({SIDE_YAW_DEG:.0f}° yaw)", "confidence"]  # fmt: skip
    figure = save_titled_grid(out_dir / "detail.png", rows, titles, scale=2)
    hp = system.hparams
    text = (
        f"Detail stage (bump-map U-Net, width {hp.width}, {hp.levels} levels, {hp.image_size} px, input {hp.input}, "
        f"coarse stage: {hp.coarse}) on {int(values['pixels_visible'])} visible-skin and "
        f"{int(values['pixels_occluded'])} occluded face pixels of the test split. Phi in codes (0-255; one code = "
        f"{hp.bump_range * 100 / 127.5:.4f} mm of depth offset), d' in mm, "
        f"normal error = angle to the true detailed normal. 'coarse only' is Phi = phi(0) (d' = d) in the same run; "
        f"'oracle' decodes the ground-truth Phi (the floor of the uint8 code and the normal decoding). "
        f"Meshes (OBJ + PLY with vertex colours) in `meshes/`."
    )
    summary = {k: values[k] for k in ("normal_deg_visible", "coarse/normal_deg_visible") if k in values}
    tables = [metrics_table(values)] if has_truth else []
    return ReportSection("Detail (bump maps)", text, summary, tables, [("coarse vs detailed shading", figure.name)])

