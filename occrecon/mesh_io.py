"""Triangle mesh export/import: Wavefront OBJ and Stanford PLY (one file per reconstructed face).

OBJ written: ``v x y z [r g b]`` lines (colours in ``[0, 1]``, the common vertex-colour extension
that MeshLab, Blender and trimesh read), then ``f i j k`` lines with 1-based indices. Vertex
order is never changed, so a written mesh keeps the face model's topology and vertex indices
(peers' pitfall: loaders that "process" meshes reorder vertices). Coordinates are written as
given (occrecon model space: decimetres, ``CONVENTIONS.md``).

PLY written (:func:`write_ply`): a ``binary_little_endian 1.0`` (or ``ascii``) file with
``element vertex`` (``float x, y, z`` and, with colours, ``uchar red, green, blue`` =
``round(255 * clamp(c, 0, 1))``) and ``element face`` (``list uchar int vertex_indices``, 0-based),
the layout MeshLab, Blender, Open3D and trimesh read. :func:`read_ply` reads ascii and binary
(both byte orders) files with any scalar property types, ignoring properties and elements it does
not need. :func:`write_mesh` / :func:`read_mesh` pick the format from the suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from occrecon.errors import DataFormatError, ShapeError
from occrecon.utils.io import atomic_write_bytes, atomic_write_text


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _checked_mesh(
    vertices: np.ndarray | torch.Tensor,
    triangles: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a mesh for writing: ``[V, 3]`` float64, ``[F, 3]`` int64 in range, ``[V, 3]`` colours in [0, 1]."""
    verts = _numpy(vertices).astype(np.float64)
    faces = _numpy(triangles).astype(np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ShapeError("vertices", "[V, 3]", tuple(verts.shape))
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ShapeError("triangles", "[F, 3]", tuple(faces.shape))
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        # an out-of-range index would write a file every reader rejects; say so here instead
        raise ValueError(f"triangles index vertices 0..{len(verts) - 1}, got {faces.min()}..{faces.max()}")
    rgb = None
    if colors is not None:
        rgb = np.clip(_numpy(colors).astype(np.float64), 0.0, 1.0)
        if rgb.shape != verts.shape:
            raise ShapeError("colors", f"[{len(verts)}, 3]", tuple(rgb.shape))
    return verts, faces, rgb


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
    verts, faces, rgb = _checked_mesh(vertices, triangles, colors)
    columns = verts if rgb is None else np.concatenate([verts, rgb], axis=1)
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


# PLY scalar types -> numpy dtypes (both the old and the sized names of the PLY spec)
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def write_ply(
    path: str | Path,
    vertices: np.ndarray | torch.Tensor,
    triangles: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor | None = None,
    binary: bool = True,
) -> Path:
    """Write a mesh as PLY (atomically), with optional per-vertex colours.

    Args:
        path: output file.
        vertices: ``[V, 3]`` positions (written as float32, as given: model space, decimetres).
        triangles: ``[F, 3]`` 0-based vertex indices.
        colors: optional ``[V, 3]`` RGB in ``[0, 1]`` (clamped, written as uchar ``round(255 c)``).
        binary: ``binary_little_endian`` (default) or ``ascii``.

    Returns:
        ``path``.
    """
    verts, faces, rgb = _checked_mesh(vertices, triangles, colors)
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment occrecon mesh"]
    header += [f"element vertex {len(verts)}", "property float x", "property float y", "property float z"]
    if rgb is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    head = ("\n".join(header) + "\n").encode("ascii")
    rgb8 = None if rgb is None else np.floor(rgb * 255.0 + 0.5).astype(np.uint8)
    if binary:
        vrec = np.empty(len(verts), dtype=vertex_fields)
        for i, axis in enumerate("xyz"):
            vrec[axis] = verts[:, i]
        if rgb8 is not None:
            for i, channel in enumerate(("red", "green", "blue")):
                vrec[channel] = rgb8[:, i]
        frec = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
        frec["n"] = 3
        frec["idx"] = faces
        atomic_write_bytes(Path(path), head + vrec.tobytes() + frec.tobytes())
    else:
        rows = [" ".join(f"{v:.7g}" for v in row) for row in verts.astype(np.float32)]
        if rgb8 is not None:
            rows = [f"{r} {a} {b} {c}" for r, (a, b, c) in zip(rows, rgb8, strict=True)]
        rows += [f"3 {a} {b} {c}" for a, b, c in faces]
        atomic_write_bytes(Path(path), head + ("\n".join(rows) + "\n").encode("ascii"))
    return Path(path)


def _ply_header(path: Path, data: bytes) -> tuple[str, list[tuple[str, int, list[tuple]]], int]:
    """Parse a PLY header: ``(format, [(element, count, [property, ...])], body offset)``.

    A property is ``(name, dtype)`` or ``(name, count dtype, item dtype)`` for a list.
    """
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise DataFormatError(path, "a PLY file ('ply' ... 'end_header')", line=1, got=repr(data[:20]))
    newline = data.find(b"\n", end)
    body = len(data) if newline < 0 else newline + 1
    fmt = ""
    elements: list[tuple[str, int, list[tuple]]] = []
    for number, line in enumerate(data[:end].decode("ascii", "replace").splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] in ("ply", "comment", "obj_info"):
            continue
        try:
            if parts[0] == "format":
                fmt = parts[1]
                if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    raise ValueError(f"unknown format {fmt}")
            elif parts[0] == "element":
                elements.append((parts[1], int(parts[2]), []))
            elif parts[0] == "property" and parts[1] == "list":
                elements[-1][2].append((parts[4], _PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]]))
            elif parts[0] == "property":
                elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
            else:
                raise ValueError("unknown header line")
        except (ValueError, KeyError, IndexError) as err:
            raise DataFormatError(path, "a PLY header line", line=number, got=f"{line!r} ({err!r})") from err
    if not fmt:
        raise DataFormatError(path, "a 'format ...' line in the PLY header")
    return fmt, elements, body


def _read_ply_binary(
    data: bytes, offset: int, count: int, props: list[tuple], order: str
) -> tuple[dict[str, np.ndarray], int]:
    """Read ``count`` binary records; fixed-size records at once, list records row by row."""
    if all(len(p) == 2 for p in props):
        dtype = np.dtype([(name, order + t) for name, t in props])
        rec = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return {name: rec[name] for name, _ in props}, offset + dtype.itemsize * count
    if len(props) == 1 and count:  # the usual face element: one list; fast path when every list has 3 items
        name, ct, it = props[0]
        n0 = int(np.frombuffer(data, dtype=order + ct, count=1, offset=offset)[0])
        dtype = np.dtype([("n", order + ct), ("v", order + it, (n0,))])
        if offset + dtype.itemsize * count <= len(data):
            rec = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            if (rec["n"] == n0).all():
                return {name: rec["v"]}, offset + dtype.itemsize * count
    columns: dict[str, list] = {p[0]: [] for p in props}
    for _ in range(count):
        for prop in props:
            if len(prop) == 2:
                dt = np.dtype(order + prop[1])
                columns[prop[0]].append(np.frombuffer(data, dtype=dt, count=1, offset=offset)[0])
                offset += dt.itemsize
            else:
                ct, it = np.dtype(order + prop[1]), np.dtype(order + prop[2])
                n = int(np.frombuffer(data, dtype=ct, count=1, offset=offset)[0])
                offset += ct.itemsize
                columns[prop[0]].append(np.frombuffer(data, dtype=it, count=n, offset=offset))
                offset += it.itemsize * n
    return {k: np.asarray(v) if v and np.ndim(v[0]) == 0 else v for k, v in columns.items()}, offset


def _read_ply_ascii(
    tokens: list[str], pos: int, count: int, props: list[tuple]
) -> tuple[dict[str, np.ndarray | list], int]:
    columns: dict[str, list] = {p[0]: [] for p in props}
    for _ in range(count):
        for prop in props:
            if len(prop) == 2:
                columns[prop[0]].append(float(tokens[pos]))
                pos += 1
            else:
                n = int(tokens[pos])
                columns[prop[0]].append(np.asarray(tokens[pos + 1 : pos + 1 + n], dtype=np.float64).astype(np.int64))
                pos += 1 + n
    return {p[0]: np.asarray(columns[p[0]]) if len(p) == 2 else columns[p[0]] for p in props}, pos


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read the vertices, triangles and vertex colours of a PLY file (ascii or binary).

    Returns:
        ``vertices [V, 3]`` float64, ``triangles [F, 3]`` int64 (0-based), ``colors [V, 3]`` in
        ``[0, 1]`` (uchar colours / 255, float colours as stored) or None without ``red green blue``.

    Raises:
        DataFormatError: not a PLY file, a bad header, a truncated body, no ``x y z``, or a face
            that is not a triangle (names the file and what was expected).
    """
    path = Path(path)
    data = path.read_bytes()
    fmt, elements, offset = _ply_header(path, data)
    parsed: dict[str, dict] = {}
    try:
        if fmt == "ascii":
            tokens, pos = data[offset:].decode("ascii").split(), 0
            for name, count, props in elements:
                parsed[name], pos = _read_ply_ascii(tokens, pos, count, props)
        else:
            order = "<" if fmt == "binary_little_endian" else ">"
            for name, count, props in elements:
                parsed[name], offset = _read_ply_binary(data, offset, count, props, order)
    except (ValueError, IndexError) as err:
        raise DataFormatError(
            path, f"{fmt} PLY body matching its header", got=f"a truncated or malformed body ({err})"
        ) from err
    vertex = parsed.get("vertex", {})
    if not all(k in vertex for k in "xyz"):
        raise DataFormatError(path, "an 'element vertex' with properties x, y, z", got=str(sorted(vertex)))
    vertices = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in "xyz"], axis=1).reshape(-1, 3)
    colors = None
    if all(k in vertex for k in ("red", "green", "blue")):
        kinds = {np.asarray(vertex[k]).dtype.kind for k in ("red", "green", "blue")}
        rgb = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in ("red", "green", "blue")], axis=1)
        is_int = fmt != "ascii" and kinds <= {"u", "i"}
        if fmt == "ascii":  # ascii values were parsed as floats: the header says whether they are uchar
            types = {p[0]: p[1] for p in next(e for e in elements if e[0] == "vertex")[2]}
            is_int = types["red"][0] in "ui"
        colors = rgb / 255.0 if is_int else rgb
    faces = parsed.get("face", {})
    lists = next((faces[k] for k in ("vertex_indices", "vertex_index") if k in faces), [])
    rows = (
        [np.asarray(r, dtype=np.int64) for r in lists] if isinstance(lists, list) else np.asarray(lists, dtype=np.int64)
    )
    if any(len(r) != 3 for r in rows):
        raise DataFormatError(path, "triangular faces (3 vertex indices)", got="a face with another vertex count")
    triangles = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return vertices, triangles, colors


def write_mesh(
    path: str | Path,
    vertices: np.ndarray | torch.Tensor,
    triangles: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor | None = None,
) -> Path:
    """Write an OBJ or PLY mesh, chosen by the suffix of ``path`` (``.obj`` / ``.ply``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".obj", ".ply"):
        raise DataFormatError(path, "a mesh file name ending in .obj or .ply", got=repr(suffix))
    writer = write_obj if suffix == ".obj" else write_ply
    return writer(path, vertices, triangles, colors)


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read an OBJ or PLY mesh by the suffix of ``path``: ``(vertices, triangles, colors | None)``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".obj":
        return read_obj(path)
    raise DataFormatError(path, "a mesh file ending in .obj or .ply", got=repr(suffix))
