"""Wavefront OBJ export/import of triangle meshes (one file per reconstructed face).

Written: ``v x y z [r g b]`` lines (colours in ``[0, 1]``, the common vertex-colour extension
that MeshLab, Blender and trimesh read), then ``f i j k`` lines with 1-based indices. Vertex
order is never changed, so a written mesh keeps the face model's topology and vertex indices
(peers' pitfall: loaders that "process" meshes reorder vertices). Coordinates are written as
given (occrecon model space: decimetres, ``CONVENTIONS.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from occrecon.errors import DataFormatError, ShapeError
from occrecon.utils.io import atomic_write_text


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def write_obj(
    path: str | Path,
    vertices: np.ndarray | torch.Tensor,
    triangles: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor | None = None,
    precision: int = 6,
) -> Path:
    """Write a mesh as OBJ (atomically).

    Args:
        path: output file.
        vertices: ``[V, 3]`` positions.
        triangles: ``[F, 3]`` 0-based vertex indices.
        colors: optional ``[V, 3]`` RGB in ``[0, 1]`` (clamped).
        precision: decimals of the written numbers.

    Returns:
        ``path``.
    """
    verts = _numpy(vertices).astype(np.float64)
    faces = _numpy(triangles).astype(np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ShapeError("vertices", "[V, 3]", tuple(verts.shape))
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ShapeError("triangles", "[F, 3]", tuple(faces.shape))
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        # an out-of-range index would write a file every reader rejects; say so here instead
        raise ValueError(f"triangles index vertices 0..{len(verts) - 1}, got {faces.min()}..{faces.max()}")
    columns = verts
    if colors is not None:
        rgb = np.clip(_numpy(colors).astype(np.float64), 0.0, 1.0)
        if rgb.shape != verts.shape:
            raise ShapeError("colors", f"[{len(verts)}, 3]", tuple(rgb.shape))
        columns = np.concatenate([verts, rgb], axis=1)
    fmt = " ".join([f"%.{precision}f"] * columns.shape[1])
    lines = ["# occrecon mesh", *("v " + fmt % tuple(row) for row in columns)]
    lines += [f"f {a} {b} {c}" for a, b, c in (faces + 1)]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return Path(path)


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read ``v`` and triangular ``f`` lines of an OBJ (``f a/b/c`` forms accepted; negative indices too).

    Returns:
        ``vertices [V, 3]`` float64, ``triangles [F, 3]`` int64 (0-based), ``colors [V, 3]`` or
        None when not every vertex has a colour.

    Raises:
        DataFormatError: a malformed line or a non-triangular face (names file and line).
    """
    path = Path(path)
    verts: list[list[float]] = []
    colors: list[list[float]] = []
    faces: list[list[int]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] not in ("v", "f"):
            continue
        try:
            if parts[0] == "v":
                values = [float(p) for p in parts[1:]]
                if len(values) not in (3, 4, 6):
                    raise ValueError(f"{len(values)} numbers")
                verts.append(values[:3])
                if len(values) == 6:
                    colors.append(values[3:])
            else:
                if len(parts) != 4:
                    raise ValueError(f"{len(parts) - 1} corners (only triangles are supported)")
                idx = [int(p.split("/")[0]) for p in parts[1:]]
                faces.append([i - 1 if i > 0 else len(verts) + i for i in idx])
        except ValueError as err:
            raise DataFormatError(path, "'v x y z [r g b]' or 'f i j k'", line=number, got=f"{line!r} ({err})") from err
    vertices = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    triangles = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    rgb = np.asarray(colors, dtype=np.float64) if colors and len(colors) == len(verts) else None
    return vertices, triangles, rgb
