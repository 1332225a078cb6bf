"""Photo in, meshes out: detect -> landmarks -> align -> (network prior) -> fit -> export.

:func:`reconstruct_photo` is the one-image API behind ``occrecon reconstruct``; it returns one
:class:`FaceReconstruction` per detected face and :func:`export_face` writes its files.

Network priors (``priors``) plug trained stages in without this module knowing them:

- ``priors.coeffs(crop) -> y0``: the coarse stage's prediction ``[1, size]`` for the ``deep3d``
  crop ``[1, 3, S, S]`` in ``[0, 1]``; the fit starts there (``steps=0`` keeps it as is);
- ``priors.labels(crop) -> [1, S, S]`` int64 CelebAMask-HQ labels in the same crop: ``V`` of
  the photometric mask becomes its face classes and the picture shows it.

A ``--pipeline`` checkpoint can provide both through a :class:`NetworkPriors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from occrecon.faces.align import AlignedFace, align_face, apply
from occrecon.faces.detect import Face, FaceDetector
from occrecon.faces.fit import FaceFitter, FitResult

PHOTO_LABELS = (1, 2, 4, 5, 6, 7, 10, 11, 12)
"""CelebAMask-HQ classes the photometric term may compare (skin, nose, eyes, brows, mouth, lips),
the same set as ``occrecon.systems.reconstruction.PHOTO_CLASSES``."""


@dataclass
class NetworkPriors:
    """Optional trained networks feeding the fit (see the module docstring)."""

    coeffs: Callable[[torch.Tensor], torch.Tensor] | None = None
    labels: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class FaceReconstruction:
    """One reconstructed face.

    Attributes:
        face: the detection (box, score, 68 landmarks in photo pixels).
        aligned: the ``deep3d`` crop and its transforms (``aligned.to_photo``, ``aligned.paste``).
        fit: :class:`occrecon.faces.fit.FitResult` (coefficients, render, mask, metrics).
        labels: ``[S, S]`` parsing labels of the crop when a parsing prior was given.
    """

    face: Face
    aligned: AlignedFace
    fit: FitResult
    labels: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def reconstruct_photo(
    photo: np.ndarray,
    detector: FaceDetector,
    fitter: FaceFitter,
    priors: NetworkPriors | None = None,
    steps: int | None = None,
    landmark_steps: int | None = None,
    max_faces: int | None = None,
) -> list[FaceReconstruction]:
    """Reconstruct every face of ``photo`` (``[H, W, 3]`` uint8 RGB), largest first.

    ``steps``/``landmark_steps`` override the fitter's settings (``0, 0`` = the network prior
    alone). Returns ``[]`` when no face of at least ``detector.min_face_size`` is found.
    """
    priors = priors or NetworkPriors()
    faces = sorted(detector.detect(photo), key=lambda f: -f.size)[:max_faces]
    results = []
    for face in faces:
        aligned = align_face(photo, face.landmarks, "deep3d", fitter.image_size)
        landmarks = torch.from_numpy(aligned.landmarks)[None]
        y0 = visible = labels = None
        with torch.no_grad():
            if priors.coeffs is not None:
                y0 = priors.coeffs(aligned.image)
            if priors.labels is not None:
                labels = priors.labels(aligned.image)[0]
                visible = torch.isin(labels, torch.tensor(PHOTO_LABELS))[None, None].float()
        fit = fitter.fit(aligned.image, landmarks, y0=y0, visible=visible, steps=steps, landmark_steps=landmark_steps)
        results.append(FaceReconstruction(face, aligned, fit, labels))
    return results


# -- export -------------------------------------------------------------------------------------------
def photo_frame_vertices(fitter: FaceFitter, rec: FaceReconstruction) -> np.ndarray:
    """``[V, 3]`` posed mesh in photo pixels: ``x`` right, ``y`` down, ``z`` towards the camera
    (pixels, scaled like ``x``/``y``); overlays the photo when drawn orthographically."""
    y = rec.fit.coeffs
    c = fitter.layout.split(y)
    verts = fitter.face_model.shape(c.id, c.exp)
    from occrecon.render.face import camera_pose

    pose = camera_pose(c)
    view = fitter.camera.view_from_model(verts, pose)
    pixels = fitter.camera.pixels_from_view(view, pose)[0].numpy()
    scale = math.sqrt(abs(np.linalg.det(rec.aligned.inverse[:, :2])))
    depth_px = (view[0, :, 2] + fitter.camera.camera_distance).numpy()
    per_unit = float(fitter.camera.focal_px[0] / fitter.camera.camera_distance)  # pixels per model unit (f = 0)
    if fitter.layout.kind == "paper":
        per_unit *= 1.0 + float(c.scale[0, 0])
    return np.concatenate([apply(rec.aligned.inverse, pixels), (depth_px * per_unit * scale)[:, None]], 1)


def face_picture(fitter: FaceFitter, rec: FaceReconstruction, photo: np.ndarray, size: int = 256) -> np.ndarray:
    """``[size, k*size, 3]`` uint8: photo with box and landmarks | render overlay (photo frame) |
    mesh front | mesh 60° | parsing map (when available). Panels are a square photo window around the face."""
    from PIL import Image, ImageDraw

    from occrecon.evaluation.reconstruction import grey_views
    from occrecon.viz import colorize_labels, grid, image_to_uint8

    x0, y0, x1, y1 = rec.face.box
    half = 0.8 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    window = np.array([[size / (2 * half), 0, size / 2 - cx * size / (2 * half)],
                       [0, size / (2 * half), size / 2 - cy * size / (2 * half)]])  # fmt: skip
    from occrecon.faces.align import compose, warp

    photo_t = torch.from_numpy(np.ascontiguousarray(photo[..., :3])).permute(2, 0, 1)[None].float() / 255
    view = warp(photo_t, window, (size, size))
    crop_to_window = compose(window, rec.aligned.inverse)  # crop -> photo -> window, no full-size paste
    render = warp(rec.fit.render.image.clamp(0, 1), crop_to_window, (size, size))
    mask = warp(rec.fit.render.mask, crop_to_window, (size, size))
    overlay = view * (1 - mask) + render * mask

    panel = Image.fromarray(image_to_uint8(view[0]))
    draw = ImageDraw.Draw(panel)
    corners = apply(window, np.array([[x0, y0], [x1, y1]]))
    draw.rectangle([*corners[0], *corners[1]], outline=(255, 210, 0), width=2)
    for x, y in apply(window, rec.face.landmarks):
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(40, 230, 60))
    c = fitter.layout.split(rec.fit.coeffs)
    verts = fitter.face_model.shape(c.id, c.exp)
    holder = SimpleNamespace(hparams=SimpleNamespace(image_size=fitter.image_size), face_model=fitter.face_model,
                             renderer=fitter.renderer)  # fmt: skip
    front, side = grey_views(holder, verts)
    tiles = [np.asarray(panel), image_to_uint8(overlay[0]), image_to_uint8(front[0]), image_to_uint8(side[0])]
    if rec.labels is not None:
        tiles.append(colorize_labels(rec.labels))
    tiles = [np.asarray(Image.fromarray(t).resize((size, size), Image.BILINEAR)) for t in tiles]
    return grid([tiles])


def export_face(fitter: FaceFitter, rec: FaceReconstruction, photo: np.ndarray, out_dir: Path, stem: str) -> list[Path]:
    """Write ``<stem>.obj`` / ``<stem>.ply`` (model space, decimetres, albedo vertex colours),
    ``<stem>_photo.ply`` (posed, photo pixels), ``<stem>.npz`` (coefficients, start, landmarks,
    box, transforms), ``<stem>.json`` (box, score, landmarks, metrics) and ``<stem>.png``."""
    from PIL import Image

    from occrecon.mesh_io import write_obj, write_ply

    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        c = fitter.layout.split(rec.fit.coeffs)
        verts = fitter.face_model.shape(c.id, c.exp)[0]
        albedo = fitter.face_model.albedo(c.tex)[0].clamp(0, 1)
        tri = fitter.face_model.triangles
        paths = [
            write_obj(out_dir / f"{stem}.obj", verts, tri, albedo),
            write_ply(out_dir / f"{stem}.ply", verts, tri, albedo),
            write_ply(out_dir / f"{stem}_photo.ply", photo_frame_vertices(fitter, rec).astype(np.float32), tri, albedo),
        ]
        np.savez(
            out_dir / f"{stem}.npz", coeffs=rec.fit.coeffs[0].numpy(), initial=rec.fit.initial[0].numpy(),
            layout=fitter.layout.kind, landmarks68=rec.face.landmarks, box=np.asarray(rec.face.box),
            score=rec.face.score, crop_from_photo=rec.aligned.matrix, photo_from_crop=rec.aligned.inverse,
        )  # fmt: skip
        paths.append(out_dir / f"{stem}.npz")
        info = {"box_xyxy": [round(float(v), 2) for v in rec.face.box], "score": round(rec.face.score, 4),
                "landmarks68": np.round(rec.face.landmarks, 2).tolist(), "layout": fitter.layout.kind,
                "face_model": fitter.face_model.name, "metrics": {k: round(v, 4) for k, v in rec.fit.metrics.items()}}  # fmt: skip
        (out_dir / f"{stem}.json").write_text(json.dumps(info, indent=1))
        paths.append(out_dir / f"{stem}.json")
        Image.fromarray(face_picture(fitter, rec, photo)).save(out_dir / f"{stem}.png")
        paths.append(out_dir / f"{stem}.png")
    return paths
