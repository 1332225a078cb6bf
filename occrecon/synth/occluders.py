"""Occluders of the synthetic data set.

* **Eyeglasses** are real 3D geometry in model space (decimetres), fitted to each face: two rims
  (tubes along superellipses) around the eyes, a lens (triangle fan) inside each rim, an arched
  bridge, and two temples running back along the side of the head over the ears. The mesh is
  rendered in the same rasterization as the face (one combined mesh, see ``occrecon.synth.scene``).
  The lens plane sits in front of every face vertex inside the lens outline, so the frame never
  cuts into the face. Styles: thin or thick frames; clear, tinted or sunglass lenses.
* **Hands** (palm-like blobs with fingers) and **hair strands** over the forehead are image-space
  layers drawn over the render, placed from the projected landmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from occrecon.utils.checks import check_shape

LENS_KINDS: tuple[str, ...] = ("clear", "tinted", "sunglasses")
"""Index + 1 of a kind is the ``glasses`` code stored per sample (0 = no glasses)."""


@dataclass(frozen=True)
class GlassesStyle:
    """How one pair of glasses looks (sizes relative to the eye width ``w``, colours in ``[0, 1]``)."""

    kind: str
    frame_radius: float  # tube radius, decimetres
    frame_colour: tuple[float, float, float]
    lens_colour: tuple[float, float, float]
    lens_alpha: float  # opacity of the lens over what is behind it
    half_width: float  # lens half width / w
    aspect: float  # lens half height / half width
    roundness: float  # superellipse exponent (2 = ellipse, larger = squarer)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def sample_glasses_style(gen: torch.Generator) -> GlassesStyle:
    """Draw a glasses style: frame thickness/colour, lens kind/tint, lens shape."""
    kind = LENS_KINDS[int(torch.randint(0, len(LENS_KINDS), (), generator=gen))]
    thick = bool(torch.rand((), generator=gen) < 0.5)
    palette = (
        (0.05, 0.05, 0.05),
        (0.35, 0.2, 0.1),
        (0.75, 0.6, 0.3),
        (0.7, 0.7, 0.72),
        (0.5, 0.1, 0.12),
        (0.1, 0.15, 0.4),
    )
    frame = palette[int(torch.randint(0, len(palette), (), generator=gen))]
    if kind == "clear":
        lens, alpha = (0.9, 0.95, 1.0), _uniform(gen, 0.08, 0.18)
    elif kind == "tinted":
        tint = torch.rand(3, generator=gen) * 0.6 + 0.2
        lens, alpha = tuple(float(t) for t in tint), _uniform(gen, 0.35, 0.6)
    else:
        lens, alpha = (0.04, 0.04, 0.05), _uniform(gen, 0.85, 0.95)
    return GlassesStyle(
        kind=kind,
        frame_radius=_uniform(gen, 0.022, 0.035) if thick else _uniform(gen, 0.008, 0.014),
        frame_colour=frame,  # type: ignore[arg-type]
        lens_colour=lens,  # type: ignore[arg-type]
        lens_alpha=alpha,
        half_width=_uniform(gen, 0.8, 0.95),
        aspect=_uniform(gen, 0.6, 0.85),
        roundness=_uniform(gen, 2.0, 4.0),
    )


@dataclass
class GlassesMesh:
    """Triangle mesh of a pair of glasses in model space.

    Attributes:
        vertices: ``[G, 3]`` decimetres.
        faces: ``[F, 3]`` int64, counter-clockwise seen from outside.
        normals: ``[G, 3]`` unit normals.
        colours: ``[G, 3]`` albedo in ``[0, 1]``.
        lens_faces: ``[F]`` bool, True for lens triangles (blended with what is behind them).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor
    colours: torch.Tensor
    lens_faces: torch.Tensor


def _tube(path: np.ndarray, radius: float, closed: bool, sides: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tube of ``radius`` along the polyline ``path`` ``[K, 3]``: vertices, normals ``[K*sides, 3]``, faces."""
    tangent = np.roll(path, -1, 0) - np.roll(path, 1, 0) if closed else np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
    ref = np.where(np.abs(tangent[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    side = np.cross(tangent, ref)
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    up = np.cross(tangent, side)
    theta = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    radial = np.cos(theta)[None, :, None] * side[:, None] + np.sin(theta)[None, :, None] * up[:, None]  # [K, S, 3]
    verts = (path[:, None] + radius * radial).reshape(-1, 3)
    rings = len(path) if closed else len(path) - 1
    faces = []
    for k in range(rings):
        k2 = (k + 1) % len(path)
        for s in range(sides):
            s2 = (s + 1) % sides
            a, b, c, d = k * sides + s, k * sides + s2, k2 * sides + s, k2 * sides + s2
            faces += [(a, c, b), (b, c, d)]
    return verts, radial.reshape(-1, 3), np.asarray(faces, np.int64)


def _superellipse(centre: np.ndarray, a: float, b: float, power: float, count: int = 32) -> np.ndarray:
    """``[count, 3]`` points of ``|x/a|^p + |y/b|^p = 1`` around ``centre`` in the plane ``z = centre_z``."""
    t = np.linspace(0, 2 * math.pi, count, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2.0 / power)
    y = b * np.sign(s) * np.abs(s) ** (2.0 / power)
    return centre[None] + np.stack([x, y, np.zeros_like(x)], axis=1)


def _inside_superellipse(points: np.ndarray, centre: np.ndarray, a: float, b: float, power: float) -> np.ndarray:
    rel = points[:, :2] - centre[None, :2]
    return (np.abs(rel[:, 0] / a) ** power + np.abs(rel[:, 1] / b) ** power) <= 1.0


class _MeshBuilder:
    """Accumulates parts (vertices, normals, faces, colour, lens flag) into one mesh."""

    def __init__(self) -> None:
        self.verts, self.normals, self.faces, self.colours, self.lens = [], [], [], [], []  # type: ignore[var-annotated]
        self.count = 0

    def add(
        self, verts: np.ndarray, normals: np.ndarray, faces: np.ndarray, colour: tuple[float, ...], lens: bool
    ) -> None:
        self.verts.append(verts)
        self.normals.append(normals)
        self.faces.append(faces + self.count)
        self.colours.append(np.tile(np.asarray(colour, np.float64), (len(verts), 1)))
        self.lens.append(np.full(len(faces), lens))
        self.count += len(verts)

    def build(self) -> GlassesMesh:
        cat = np.concatenate
        return GlassesMesh(
            vertices=torch.from_numpy(cat(self.verts)).float(),
            faces=torch.from_numpy(cat(self.faces)).long(),
            normals=torch.from_numpy(cat(self.normals)).float(),
            colours=torch.from_numpy(cat(self.colours)).float(),
            lens_faces=torch.from_numpy(cat(self.lens)),
        )


def build_glasses(vertices: torch.Tensor, landmark_indices: torch.Tensor, style: GlassesStyle) -> GlassesMesh:
    """Fit a pair of glasses of ``style`` to one face.

    Args:
        vertices: ``[V, 3]`` the face's model-space vertices (decimetres, +z towards the camera).
        landmark_indices: ``[68]`` vertex index of each iBUG landmark (points 36-41 / 42-47 are the
            eyes on the image-left (-x) / image-right (+x) side of a frontal face).
        style: frame and lens parameters.

    Returns:
        the :class:`GlassesMesh`.
    """
    check_shape(vertices, ["V", 3], "vertices")
    check_shape(landmark_indices, [68], "landmark_indices")
    verts = vertices.detach().double().cpu().numpy()
    marks = verts[landmark_indices.cpu().numpy()]
    eyes = [marks[36:42], marks[42:48]]
    width = float(np.mean([np.linalg.norm(e[3] - e[0]) for e in eyes]))
    a, b = style.half_width * width, style.half_width * width * style.aspect
    centres = []
    for eye, outward in zip(eyes, (-1.0, 1.0), strict=True):
        c = eye.mean(0)
        centres.append(np.array([c[0] + outward * 0.1 * width, c[1] + 0.1 * width, 0.0]))
    # lens plane: in front of every face vertex under either lens (brows, cheeks, nose sides)
    grow = a + 2 * style.frame_radius
    under = np.zeros(len(verts), bool)
    for c in centres:
        under |= _inside_superellipse(verts, c, grow, grow * style.aspect, style.roundness)
    plane_z = float(verts[under, 2].max()) + 0.05 + style.frame_radius
    for c in centres:
        c[2] = plane_z

    mesh = _MeshBuilder()
    r = style.frame_radius
    for c in centres:
        rim = _superellipse(c, a, b, style.roundness)
        mesh.add(*_tube(rim, r, closed=True), colour=style.frame_colour, lens=False)
        lens_pts = _superellipse(c, a - 0.5 * r, b - 0.5 * r, style.roundness) + np.array([0, 0, 0.2 * r])
        fan_v = np.concatenate([c[None] + np.array([[0, 0, 0.2 * r]]), lens_pts])
        n = len(lens_pts)
        fan_f = np.asarray([(0, 1 + i, 1 + (i + 1) % n) for i in range(n)], np.int64)  # CCW seen from +z
        mesh.add(fan_v, np.tile([0.0, 0.0, 1.0], (len(fan_v), 1)), fan_f, colour=style.lens_colour, lens=True)

    # bridge: an arch between the inner rim points, over the nose
    inner = [c + np.array([outward * a, 0.25 * b, 0.0]) for c, outward in zip(centres, (1.0, -1.0), strict=True)]
    top = 0.5 * (inner[0] + inner[1]) + np.array([0.0, 0.2 * b, 0.01])
    t = np.linspace(0, 1, 9)[:, None]
    bridge = (1 - t) ** 2 * inner[0] + 2 * (1 - t) * t * top + t**2 * inner[1]
    mesh.add(*_tube(bridge, 0.8 * r, closed=False), colour=style.frame_colour, lens=False)

    for c, outward in zip(centres, (-1.0, 1.0), strict=True):
        mesh.add(
            *_tube(_temple_path(verts, c, a, b, outward, plane_z, r), 0.8 * r, closed=False),
            colour=style.frame_colour,
            lens=False,
        )
    return mesh.build()


def _temple_path(
    verts: np.ndarray, centre: np.ndarray, a: float, b: float, outward: float, plane_z: float, r: float
) -> np.ndarray:
    """Polyline of one temple: from the hinge on the outer rim, back along the head, down behind the ear."""
    hinge = centre + np.array([outward * a, 0.3 * b, 0.0])
    side = verts[(outward * verts[:, 0] > 0) & (np.abs(verts[:, 1] - hinge[1]) < 0.25)]
    if len(side) == 0:  # a face model cut off at the cheeks: run straight back
        side = verts[outward * verts[:, 0] > 0]
    half_width = float(np.max(outward * side[:, 0]))
    x = outward * max(half_width + 2 * r + 0.02, outward * hinge[0])
    back_z = float(side[:, 2].min()) - 0.1  # behind the rearmost point of the head side: past the ear
    ear_z = back_z + 0.25 * (plane_z - back_z)
    return np.array(
        [
            hinge,
            [hinge[0] + outward * 0.5 * r, hinge[1], plane_z - 0.03],
            [x, hinge[1], plane_z - 0.12],
            [x, hinge[1] - 0.02, 0.5 * (plane_z + ear_z)],
            [x, hinge[1] - 0.05, ear_z],
            [x - outward * 0.02, hinge[1] - 0.25, back_z],
        ]
    )


# --------------------------------------------------------------------------- image-space layers


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``[2]`` and width (pixels) of the face from its 68 projected landmarks ``[68, 2]``."""
    return landmarks.mean(0), float(np.ptp(landmarks[:, 0]) + 1e-6)


def hand_layer(rng: np.random.Generator, size: int, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A palm-like blob with fingers over the lower face or a cheek.

    Args:
        rng: the sample's occluder generator.
        size: image side.
        landmarks: ``[68, 2]`` projected landmarks (pixels) to place the hand.

    Returns:
        mask ``[size, size]`` bool and colour ``[size, size, 3]`` float in ``[0, 255]``.
    """
    _, face_w = _face_frame(landmarks)
    anchor = landmarks[int(rng.choice(np.r_[2:15, 31:36, 48:68]))]
    palm_r = face_w * rng.uniform(0.22, 0.32)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = anchor - direction * palm_r * rng.uniform(0.3, 0.9)
    mask = np.zeros((size, size), np.uint8)
    axes = (int(palm_r), int(palm_r * rng.uniform(0.75, 0.95)))
    cv2.ellipse(mask, tuple(int(v) for v in centre), axes, float(np.degrees(angle)), 0, 360, 1, thickness=-1)
    finger_w = max(1, int(palm_r * rng.uniform(0.3, 0.4)))
    for k, offset in enumerate(np.linspace(-0.6, 0.6, 4)):
        base = centre + direction * palm_r * 0.6 + normal * offset * palm_r
        tip = base + direction * palm_r * rng.uniform(0.7, 1.0) * (0.85 if k in (0, 3) else 1.0)
        cv2.line(mask, tuple(int(v) for v in base), tuple(int(v) for v in tip), 1, thickness=finger_w)
    thumb_side = rng.choice([-1.0, 1.0])
    thumb_base = centre + normal * thumb_side * palm_r * 0.7
    thumb_tip = thumb_base + (normal * thumb_side * 0.8 + direction * 0.5) * palm_r
    cv2.line(mask, tuple(int(v) for v in thumb_base), tuple(int(v) for v in thumb_tip), 1, thickness=finger_w)
    # rounded shading: brighter away from the outline (distance transform), warm skin tone
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    shade = 0.6 + 0.4 * np.clip(inside / max(finger_w * 0.5, 1.0), 0, 1)
    tone = np.array([rng.uniform(150, 235), rng.uniform(100, 180), rng.uniform(80, 150)])
    return mask.astype(bool), shade[..., None] * tone[None, None]


def hair_layer(rng: np.random.Generator, size: int, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strands of hair falling over the forehead (curves from above the brows down to eye level).

    Args / Returns: as :func:`hand_layer`.
    """
    _, face_w = _face_frame(landmarks)
    brows = landmarks[17:27]
    brow_y = float(brows[:, 1].min())
    eye_y = float(landmarks[36:48, 1].mean())
    x_lo, x_hi = float(brows[:, 0].min()), float(brows[:, 0].max())
    base = np.array([rng.uniform(150, 235), rng.uniform(100, 180), rng.uniform(60, 130)]) * rng.uniform(0.1, 1.0)
    mask = np.zeros((size, size), np.uint8)
    colour = np.zeros((size, size, 3), np.float64)
    sweep = rng.uniform(-0.4, 0.4) * face_w
    thickness_max = max(2, size // 48)
    for _ in range(int(rng.integers(6, 18))):
        start = np.array([rng.uniform(x_lo, x_hi), brow_y - rng.uniform(0.3, 0.6) * face_w])
        end = np.array([start[0] + sweep + rng.normal(0, 0.08) * face_w, rng.uniform(brow_y, eye_y)])
        ctrl = 0.5 * (start + end) + np.array([rng.normal(0, 0.15) * face_w, 0.0])
        t = np.linspace(0, 1, 16)[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * end
        strand = np.zeros_like(mask)
        cv2.polylines(
            strand, [np.round(curve).astype(np.int32)], False, 1, thickness=int(rng.integers(1, thickness_max + 1))
        )
        colour[strand > 0] = np.clip(base * rng.uniform(0.7, 1.3), 0, 255)
        mask |= strand
    return mask.astype(bool), colour
