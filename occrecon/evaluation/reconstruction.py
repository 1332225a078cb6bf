"""Pictures and the demo report section of the coarse 3D reconstruction stage
(:mod:`occrecon.systems.reconstruction`).

* :func:`reconstruction_grid` -- input | render | overlay | landmarks, also logged during training;
* :func:`grey_views` -- plain grey shaded renders of meshes at several yaws;
* :func:`demo_section` -- metrics next to the mean-face baseline, pictures and OBJ meshes on the
  test split (the ``occrecon demo`` contract, :mod:`occrecon.commands.demo`).

``system`` arguments are trained ``ReconstructionSystem`` instances, used through their public
attributes only (this module never imports :mod:`occrecon.systems`).
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch

from occrecon.evaluation.common import eval_loader, move_batch, scalar_metrics
from occrecon.geometry.camera import ScaledOrthographicCamera
from occrecon.mesh_io import write_obj
from occrecon.metrics.reconstruction import ReconstructionMetrics
from occrecon.render.mesh_renderer import RenderOutput
from occrecon.report import ReportSection, markdown_table
from occrecon.viz import draw_landmarks, grid, image_to_uint8, save_titled_grid


def reconstruction_grid(prepared: dict[str, torch.Tensor], out: RenderOutput, count: int = 4) -> np.ndarray:
    """``[H, W, 3]`` uint8 grid, one row per sample: input | render | overlay | landmarks (GT green/red, predicted blue)."""
    rows = []
    for i in range(min(count, out.image.shape[0])):
        image, render, mask = prepared["image"][i], out.image[i].clamp(0, 1), out.mask[i]
        overlay = image * (1 - mask) + render * mask
        points = image_to_uint8(image)
        if "landmarks" in prepared:
            points = draw_landmarks(points, prepared["landmarks"][i], prepared["visible"][i] > 0)
        points = draw_landmarks(points, out.landmarks[i], radius=1.0, colour=(40, 90, 255))  # predicted: blue
        rows.append([image_to_uint8(image), image_to_uint8(render), image_to_uint8(overlay), points])
    return grid(rows)


def grey_views(
    system: L.LightningModule, vertices: torch.Tensor, yaws_deg: tuple[float, ...] = (0.0, 60.0)
) -> list[torch.Tensor]:
    """Plain grey shaded renders ``[B, 3, H, W]`` of model-space meshes ``[B, V, 3]``, one per yaw.

    Scaled orthographic camera at the mean scale, uniform albedo 0.55, light from the upper front.
    """
    size = system.hparams.image_size
    camera = ScaledOrthographicCamera(size)
    fm = system.face_model
    batch = vertices.shape[0]
    albedo = torch.full_like(vertices, 0.55)
    gamma = vertices.new_zeros(batch, 9)
    gamma[:, 1], gamma[:, 2] = -0.25, 0.35  # brighter towards +y (up) and +z (the camera)
    normals = fm.vertex_normals(vertices)
    views = []
    for yaw in yaws_deg:
        pose = vertices.new_zeros(batch, 6)
        pose[:, 1] = math.radians(yaw)
        views.append(
            system.renderer.render(vertices, fm.triangles, camera, pose, albedo, normals, gamma).image.clamp(0, 1)
        )
    return views


@torch.no_grad()
def demo_section(
    system: L.LightningModule, datamodule: L.LightningDataModule, out_dir: Path, max_faces: int = 8
) -> ReportSection:
    """Evaluate on the test split (else val): metrics, pictures, and one OBJ per face (up to ``max_faces``).

    Writes ``out_dir/reconstruction.png`` (input | render | overlay | mesh frontal | mesh 60° yaw)
    and ``out_dir/meshes/test_<k>.obj`` (predicted mesh with albedo colours, decimetres).
    """
    out_dir = Path(out_dir)
    (out_dir / "meshes").mkdir(parents=True, exist_ok=True)
    system.eval()
    metrics = ReconstructionMetrics(system.val_metrics.names)
    baseline = ReconstructionMetrics(system.val_metrics.names)  # y = 0: the mean face, frontal, centred, ambient light
    rows: list[list[np.ndarray]] = []
    written = 0
    for batch in eval_loader(datamodule):
        if written >= max_faces:
            break
        remaining = max_faces - written  # evaluate exactly the faces that get a mesh
        batch = {
            k: v[:remaining] if isinstance(v, torch.Tensor) else v for k, v in move_batch(batch, system.device).items()
        }
        prepared = system.prepare(batch)
        y = system(prepared["image"])
        out = system.render(y)
        glasses = batch["glasses"] > 0 if "glasses" in batch else None
        metrics.update(system.evaluate(batch, prepared, y, out), glasses)
        y0 = torch.zeros_like(y)
        baseline.update(system.evaluate(batch, prepared, y0, system.render(y0)), glasses)
        c = system.layout.split(y)
        verts = system.face_model.shape(c.id, c.exp)
        albedo = system.face_model.albedo(c.tex)
        front, side = grey_views(system, verts)
        for i in range(y.shape[0]):
            write_obj(out_dir / "meshes" / f"test_{written:03d}.obj", verts[i], system.face_model.triangles, albedo[i])
            written += 1
            if len(rows) < 4:
                mask = out.mask[i]
                overlay = prepared["image"][i] * (1 - mask) + out.image[i].clamp(0, 1) * mask
                rows.append(
                    [
                        image_to_uint8(t)
                        for t in (prepared["image"][i], out.image[i].clamp(0, 1), overlay, front[i], side[i])
                    ]
                )
    values = scalar_metrics(metrics.compute(), "test") if metrics.update_count else {}
    base_values = scalar_metrics(baseline.compute(), "test") if baseline.update_count else {}
    titles = ["input", "render", "overlay", "mesh (front)", "mesh (60° yaw)"]
    figure = save_titled_grid(out_dir / "reconstruction.png", rows, titles, scale=2)
    table = _glasses_table(values, base_values)
    text = (
        f"Coarse 3D reconstruction (ResNet-{system.hparams.depth}, width {system.hparams.width}, "
        f"{system.layout.kind} layout, {system.face_model.name} face model, {system.hparams.image_size} px, "
        f"input {system.hparams.input}) on {written} test faces; 3D error = mean per-vertex distance of the "
        f"face region after rigid / similarity alignment, mm; NME = landmark error / inter-ocular distance. "
        f"'mean face' is the untrained prediction y = 0 (frontal, centred), the baseline a trained model must beat. "
        f"OBJ meshes in `meshes/`."
    )
    if system.feat_disabled:
        text += f" L_feat was disabled: {system.feat_disabled}."
    summary = {k: values[k] for k in ("test/photo_error", "test/id_cosine") if k in values}
    return ReportSection(
        "Coarse 3D reconstruction", text, summary, [table] if table else [], [("reconstructions", figure.name)]
    )


def _glasses_table(values: dict[str, float], baseline: dict[str, float]) -> str:
    """With/without-glasses table of the trained model next to the mean-face baseline."""
    if "test/error_mm" not in values:
        return ""
    nan = float("nan")
    rows = []
    for label, suffix in (("all", ""), ("with glasses", "_glasses"), ("without glasses", "_no_glasses")):
        rows.append([label, int(values.get(f"test/count{suffix}", 0)),
                     values.get(f"test/error_mm{suffix}", nan), baseline.get(f"test/error_mm{suffix}", nan),
                     values.get(f"test/error_sim_mm{suffix}", nan), baseline.get(f"test/error_sim_mm{suffix}", nan),
                     values.get(f"test/nme{suffix}", nan), baseline.get(f"test/nme{suffix}", nan)])  # fmt: skip
    header = ["test faces", "count", "3D rigid (mm)", "mean face", "3D similarity (mm)", "mean face", "NME", "mean face"]
    return markdown_table(header, rows)
