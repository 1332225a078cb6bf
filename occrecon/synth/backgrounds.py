"""Textured, seeded backgrounds for the synthetic data set (never flat).

A background is a blend of two random colours through multi-octave value noise, plus stripes
(a plane wave) and a few random shapes (rectangles, discs, lines) — enough structure that a
network cannot segment the face by colour alone. Everything comes from the ``numpy`` generator
passed in, so a background is a pure function of its generator state.
"""

from __future__ import annotations

import cv2
import numpy as np


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    """``[size, size]`` float noise in ``[0, 1]``: random grids of 2, 4, 8, ... cells upsampled bilinearly."""
    out = np.zeros((size, size), np.float32)
    total = 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        weight = 0.5**octave
        out += weight * cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR)
        total += weight
    return out / total


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3).astype(np.float32)


def _draw_shapes(canvas: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Draw ``count`` random filled rectangles, discs or thick lines onto ``canvas`` in place."""
    size = canvas.shape[0]
    for _ in range(count):
        colour = tuple(float(c) for c in _random_colour(rng))
        kind = int(rng.integers(0, 3))
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        if kind == 0:
            cv2.rectangle(canvas, p0, p1, colour, thickness=-1)
        elif kind == 1:
            cv2.circle(canvas, p0, int(rng.integers(max(2, size // 20), max(3, size // 4))), colour, thickness=-1)
        else:
            cv2.line(canvas, p0, p1, colour, thickness=int(rng.integers(1, max(2, size // 24))))


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured background.

    Args:
        rng: the sample's background generator.
        size: side in pixels.

    Returns:
        ``[size, size, 3]`` uint8 RGB.
    """
    noise = _value_noise(rng, size)[..., None]
    low, high = _random_colour(rng), _random_colour(rng)
    canvas = low * (1.0 - noise) + high * noise
    # stripes: a plane wave of random direction and period, modulating the brightness
    theta, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3) * size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = np.sin((xs * np.cos(theta) + ys * np.sin(theta)) * (2 * np.pi / period))
    canvas = canvas * (1.0 + rng.uniform(0.05, 0.25) * wave[..., None])
    canvas = np.ascontiguousarray(np.clip(canvas, 0, 255))
    _draw_shapes(canvas, rng, int(rng.integers(2, 7)))
    # a second, faint noise layer so shapes are not flat either
    grain = _value_noise(rng, size, octaves=3)[..., None] - 0.5
    return np.clip(canvas * (1.0 + 0.3 * grain), 0, 255).astype(np.uint8)
