"""``occrecon render``: a grid of random faces (shaded, labels, depth, landmarks) from a face model."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from occrecon.facemodel.sampling import random_coefficients
from occrecon.utils.seeding import torch_generator


def render_grid(model_name: str, model_dir: str | None, n: int, seed: int, size: int, backend: str, out: Path) -> Path:
    """Render ``n`` random faces and save rows of (shaded, labels, depth, landmarks) to ``out``."""
    from occrecon.facemodel import load_face_model
    from occrecon.render.face import render_face
    from occrecon.render.mesh_renderer import MeshRenderer
    from occrecon.viz import colorize_labels, colorize_scalar, draw_landmarks, image_to_uint8, save_titled_grid

    model = load_face_model(model_name, model_dir)
    layout = model.layout("paper")
    coeffs = random_coefficients(layout, n, torch_generator(seed, "render"))
    renderer = MeshRenderer(backend, size)
    with torch.no_grad():
        result = render_face(model, coeffs, renderer)
    rows = []
    for i in range(n):
        shaded = image_to_uint8(result.image[i])
        rows.append(
            [
                shaded,
                colorize_labels(result.labels[i]),
                colorize_scalar(result.depth[i, 0], result.mask[i, 0], cmap="magma_r"),
                draw_landmarks(shaded, result.landmarks[i], result.landmark_visible[i], radius=max(1.0, size / 150)),
            ]
        )
    # two faces (eight tiles) per grid row keeps the picture readable
    per_row = min(2, n)
    packed = [sum(rows[i : i + per_row], []) for i in range(0, n, per_row)]
    titles = ["shaded", "labels", "depth", "landmarks"] * per_row
    return save_titled_grid(out, packed, titles)


def run(args: argparse.Namespace) -> int:
    path = render_grid(args.model, args.model_dir, args.n, args.seed, args.size, args.backend, Path(args.out))
    print(f"wrote {path} ({args.n} faces, model {args.model}, seed {args.seed})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="render a grid of random faces from a face model", description=__doc__)
    parser.add_argument("--model", choices=("procedural", "sfm", "bfm"), default="procedural")
    parser.add_argument("--model-dir", default=None, help="folder holding the SFM/BFM files (see README)")
    parser.add_argument("--n", type=int, default=16, help="number of faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "nvdiffrast"))
    parser.add_argument("--out", default="grid.png")
    parser.set_defaults(handler=run)
