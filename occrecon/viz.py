"""Pictures a person would rather look at than read: label maps, depth, heatmaps, landmarks, grids.

All functions take numpy arrays or tensors and return ``uint8`` RGB arrays ``[H, W, 3]``, except the
ones that write a PNG (``save_titled_grid``, the ablation bar chart ``metric_bars``), which return its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from occrecon.utils.io import write_png

# One distinct colour per CelebAMask-HQ class (background black).
LABEL_PALETTE = np.array(
    [
        (0, 0, 0), (204, 153, 119), (255, 178, 102), (60, 200, 255), (230, 40, 40), (40, 220, 60),
        (140, 50, 20), (90, 30, 160), (255, 140, 200), (200, 120, 255), (120, 0, 40), (255, 60, 110),
        (210, 30, 70), (70, 40, 20), (120, 120, 120), (255, 255, 0), (0, 130, 130), (230, 200, 170), (60, 80, 160),
    ],
    dtype=np.uint8,
)  # fmt: skip


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Detach a tensor to numpy (CPU); numpy passes through."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def image_to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` or ``[H, W, 3]`` float in ``[0, 1]`` (or uint8) -> ``[H, W, 3]`` uint8."""
    array = to_numpy(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype != np.uint8:
        array = np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def colorize_labels(labels: np.ndarray | torch.Tensor, palette: np.ndarray = LABEL_PALETTE) -> np.ndarray:
    """``[H, W]`` int label map -> ``[H, W, 3]`` uint8 with one colour per class."""
    return palette[np.clip(to_numpy(labels).astype(np.int64), 0, len(palette) - 1)]


def colorize_scalar(
    values: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> np.ndarray:
    """``[H, W]`` scalar field (depth, bump) -> ``[H, W, 3]`` uint8 via a matplotlib colour map.

    The range defaults to the min/max inside ``mask``; pixels outside ``mask`` are black.
    """
    from matplotlib import colormaps

    array = to_numpy(values).astype(np.float64).squeeze()
    valid = np.isfinite(array) if mask is None else (to_numpy(mask).squeeze() > 0) & np.isfinite(array)
    if not valid.any():
        return np.zeros((*array.shape, 3), np.uint8)
    lo = array[valid].min() if vmin is None else vmin
    hi = array[valid].max() if vmax is None else vmax
    scaled = np.clip((array - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def overlay_heatmaps(image: np.ndarray | torch.Tensor, heatmaps: np.ndarray | torch.Tensor, colour=(255, 40, 40)) -> np.ndarray:
    """Draw the max over ``[L, h, w]`` heatmaps (resized to the image) over an image."""
    base = image_to_uint8(image).astype(np.float64)
    heat = to_numpy(heatmaps).max(axis=0)
    heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(base.shape[1::-1], Image.BILINEAR)) / 255.0
    out = base * (1 - heat[..., None]) + np.array(colour, np.float64) * heat[..., None]
    return out.clip(0, 255).astype(np.uint8)


def draw_landmarks(
    image: np.ndarray | torch.Tensor,
    landmarks: np.ndarray | torch.Tensor,
    visibility: np.ndarray | torch.Tensor | None = None,
    radius: float = 1.5,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draw ``[N, 2]`` pixel landmarks (CONVENTIONS.md frame): visible green, hidden red, or all in ``colour``."""
    canvas = Image.fromarray(image_to_uint8(image))
    draw = ImageDraw.Draw(canvas)
    points = to_numpy(landmarks)
    visible = np.ones(len(points), bool) if visibility is None else to_numpy(visibility).astype(bool)
    for (x, y), vis in zip(points, visible, strict=True):
        fill = colour or ((40, 230, 60) if vis else (230, 40, 40))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    return np.asarray(canvas)


def grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile equally sized ``[H, W, 3]`` uint8 images into one array (rows x columns)."""
    height, width = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    out = np.full((len(rows) * (height + pad) + pad, ncols * (width + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            tile = np.asarray(Image.fromarray(tile).resize((width, height), Image.NEAREST)) if tile.shape[:2] != (height, width) else tile
            y, x = pad + i * (height + pad), pad + j * (width + pad)
            out[y : y + height, x : x + width] = tile
    return out


def save_titled_grid(path: str | Path, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], scale: int = 1) -> Path:
    """Save a grid PNG with one title per column (matplotlib), atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tiled = grid(rows)
    dpi = 100
    header = 24
    fig = plt.figure(figsize=(tiled.shape[1] * scale / dpi, (tiled.shape[0] * scale + header) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, tiled.shape[0] * scale / (tiled.shape[0] * scale + header)))
    ax.imshow(tiled, interpolation="nearest")
    ax.axis("off")
    ncols = max(len(r) for r in rows)
    for j, title in enumerate(titles[:ncols]):
        fig.text((j + 0.5) / ncols, 1 - 0.5 * header / (tiled.shape[0] * scale + header), title, ha="center", va="center", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    image = np.asarray(Image.open(buffer).convert("RGB"))
    write_png(path, image)
    return Path(path)


def metric_bars(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], path: Path, title: str = "") -> Path:
    """One horizontal bar chart per metric (a PNG at ``path``): for each row (``row["cell"]`` names it)
    ``row[f"{metric}_mean"]`` with ``row[f"{metric}_std"]`` error bars, e.g. an ablation's mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 0.5 + 0.35 * len(rows)), squeeze=False)
    names = [r["cell"] for r in rows]
    for ax, m in zip(axes[0], metrics, strict=True):
        means = [r.get(f"{m}_mean", math.nan) for r in rows]
        stds = [r.get(f"{m}_std", 0.0) for r in rows]
        ax.barh(range(len(rows)), means, xerr=stds, color="tab:blue", alpha=0.7, capsize=3)
        ax.set_yticks(range(len(rows)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(m, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
