"""Geometry of the procedural (synthetic) face: a parametric surface with analytic features.

The surface is a grid of rows x columns. A row is a horizontal cross-section at parameter ``t``
along a hand-designed mid-line profile (throat -> under-chin -> chin -> lips -> nose -> eyes ->
brow -> forehead -> crown), with front point ``(y(t), z_front(t))``, half-width ``W(t)`` and depth
``D(t)``. A column is an azimuth ``phi``; the cross-section is a superellipse
``x = W S(phi), z = z_front - D (1 - C(phi))``. Facial features (eye sockets with eyeballs, lids,
brow ridge, nose, lips, chin, cheekbones) are smooth analytic bumps and dents added in ``z`` on
the front, functions of the construction coordinates ``(x0, y0)``. Three rows are packed tightly
at the mouth line (upper inner lip, inner mouth, lower inner lip) so "jaw open" can split the lips.

Every feature position is a named parameter (:data:`DEFAULTS`): identity modes are central
finite differences of :func:`construct` w.r.t. these parameters, so the modes are exactly the
construction's own degrees of freedom. Numbers are decimetres, placed where Deep3D's BFM puts its
5 alignment landmarks (eyes ``(+-0.31, 0.29)``, nose tip ``(0, -0.05, 0.55)``, mouth corners
``(+-0.25, -0.38)``) so that Deep3D's camera frames this face as it frames BFM. Synthetic: it
looks like a face, it is not a statistical model of real faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

# Mid-line profile control points, bottom (throat) to top (crown): y, z_front, half-width W, depth D.
PROFILE = np.array([
    [-0.58, -0.40, 0.42, 0.30],
    [-0.81, -0.12, 0.40, 0.42],
    [-0.89, 0.10, 0.33, 0.52],
    [-0.80, 0.22, 0.40, 0.62],
    [-0.58, 0.25, 0.57, 0.74],
    [-0.38, 0.27, 0.68, 0.80],
    [-0.05, 0.31, 0.74, 0.85],
    [0.30, 0.30, 0.77, 0.86],
    [0.48, 0.31, 0.77, 0.86],
    [0.75, 0.24, 0.74, 0.86],
    [0.95, 0.05, 0.64, 0.80],
    [1.06, -0.22, 0.48, 0.66],
])  # fmt: skip
CHIN_BOTTOM_INDEX = 2  # profile rows below this point form the under-chin (labelled neck)

DEFAULTS: dict[str, float] = {
    "width": 0.0, "length": 0.0, "depth": 0.0, "jaw_width": 0.0, "chin": 0.0,
    "nose_size": 0.0, "nose_length": 0.0, "eye_spacing": 0.0, "eye_height": 0.0, "brow_height": 0.0,
    "lip_fullness": 0.0, "cheek_fullness": 0.0, "mouth_width": 0.0, "forehead": 0.0,
    "jaw_open": 0.0, "smile": 0.0, "brow_raise": 0.0, "eye_close": 0.0, "pucker": 0.0, "frown": 0.0,
}  # fmt: skip
"""Named shape parameters; one unit = one standard deviation of the corresponding mode."""

IDENTITY_PARAMS: tuple[str, ...] = (
    "width", "length", "nose_size", "nose_length", "jaw_width", "eye_spacing", "brow_height",
    "lip_fullness", "cheek_fullness", "depth", "chin", "eye_height", "mouth_width", "forehead",
)  # fmt: skip
EXPRESSION_PARAMS: tuple[str, ...] = ("jaw_open", "smile", "brow_raise", "eye_close", "pucker", "frown")

EYE_X, EYE_Y, EYE_HALF_WIDTH = 0.31, 0.29, 0.145
EYE_UPPER, EYE_LOWER = 0.055, 0.040  # opening heights above/below the eye centre line
MOUTH_Y, MOUTH_HALF_WIDTH, UPPER_LIP_HEIGHT, LOWER_LIP_HEIGHT = -0.38, 0.25, 0.085, 0.10
NOSE_ROOT_Y, NOSE_TIP_Y = 0.33, -0.05
BROW_Y = 0.45
MOUTH_GAP = 0.004  # rest spacing of the three mouth rows (closed lips)


@dataclass(frozen=True)
class Grid:
    """Construction grid: ``phi [C]`` azimuths, ``t [R]`` profile parameters, ``mouth_row`` index."""

    phi: np.ndarray
    t: np.ndarray
    mouth_row: int
    chin_row: int

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.t), len(self.phi)


def _profile() -> tuple[PchipInterpolator, np.ndarray]:
    knots = np.arange(len(PROFILE), dtype=np.float64)
    return PchipInterpolator(knots, PROFILE, axis=0), knots


def make_grid(n_cols: int = 73, row_spacing: float = 0.028, phi_max: float = 1.85) -> Grid:
    """Rows spaced ~``row_spacing`` dm along the profile arc, with three tight mouth rows."""
    if n_cols % 2 == 0:
        n_cols += 1  # odd: a centre column on the mid-line makes the mirror map exact
    half = (n_cols - 1) // 2
    s = (np.arange(n_cols) - half) / half  # exactly antisymmetric in [-1, 1]
    warp = 1.2  # denser columns on the front of the face
    phi = phi_max * (s + warp * s**3) / (1.0 + warp)
    spline, knots = _profile()
    dense_t = np.linspace(knots[0], knots[-1], 4001)
    yz = spline(dense_t)[:, :2]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(yz, axis=0), axis=1))])
    mouth_knot = float(np.flatnonzero(PROFILE[:, 0] == MOUTH_Y)[0])
    arc_m = np.interp(mouth_knot, dense_t, arc)
    below = np.arange(arc_m - 1.5 * row_spacing, 0.0, -row_spacing)[::-1]
    above = np.arange(arc_m + 1.5 * row_spacing, arc[-1], row_spacing)
    arcs = np.concatenate([below, [arc_m - MOUTH_GAP, arc_m, arc_m + MOUTH_GAP], above])
    t = np.interp(arcs, arc, dense_t)
    mouth_row = len(below) + 1
    chin_row = int(np.searchsorted(t, CHIN_BOTTOM_INDEX))
    return Grid(phi=phi, t=t, mouth_row=mouth_row, chin_row=chin_row)


def _superellipse(phi: np.ndarray, n: float = 2.6) -> tuple[np.ndarray, np.ndarray]:
    s, c = np.sin(phi), np.cos(phi)
    return np.sign(s) * np.abs(s) ** (2.0 / n), np.sign(c) * np.abs(c) ** (2.0 / n)


def _gauss(dx: np.ndarray, dy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    u = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


@dataclass(frozen=True)
class Construction:
    """Per-vertex construction data: ``x0, y0`` base coordinates, ``front`` weight, row/col index."""

    base: np.ndarray  # [V, 3] undecorated surface
    x0: np.ndarray
    y0: np.ndarray
    front: np.ndarray  # clip(C(phi), 0)**2: 1 on the mid-line front, 0 at the sides and back
    row: np.ndarray
    col: np.ndarray
    grid: Grid


def base_surface(grid: Grid) -> Construction:
    """The undecorated head surface and the construction coordinates of every vertex."""
    spline, _ = _profile()
    prof = spline(grid.t)  # [R, 4]
    y, zf, w, d = (prof[:, k][:, None] for k in range(4))
    sx, cz = _superellipse(grid.phi)
    x = w * sx[None, :]
    z = zf - d * (1.0 - cz[None, :])
    rows, cols = grid.shape
    row, col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    base = np.stack([x, np.broadcast_to(y, x.shape), z], axis=-1).reshape(-1, 3)
    front = np.broadcast_to(np.clip(cz, 0.0, None)[None, :] ** 2, x.shape).reshape(-1)
    return Construction(
        base, base[:, 0].copy(), base[:, 1].copy(), front.copy(), row.reshape(-1), col.reshape(-1), grid
    )


def eye_frame(c: Construction, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eye coordinates: ``ex`` in [-1, 1] across the opening (+ = lateral), ``dy`` above the eye
    line, and the upper/lower lid heights ``hu, hl`` (>= 0, 0 outside the opening)."""
    cx = EYE_X + 0.02 * p["eye_spacing"]
    cy = EYE_Y + 0.02 * p["eye_height"]
    ex = (np.abs(c.x0) - cx) / EYE_HALF_WIDTH
    dy = c.y0 - cy - 0.008 * ex  # outer corner a little higher than the inner one
    lens = np.clip(1.0 - ex**2, 0.0, None)
    return ex, dy, EYE_UPPER * lens**0.8, EYE_LOWER * lens**0.9


def lip_heights(c: Construction, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Upper/lower lip heights above/below the mouth line at ``x0`` (0 beyond the corners)."""
    half = MOUTH_HALF_WIDTH * (1.0 + 0.06 * p["mouth_width"])
    mx = np.clip(1.0 - (c.x0 / half) ** 2, 0.0, None)
    full = 1.0 + 0.2 * p["lip_fullness"]
    bow = 1.0 - 0.25 * np.exp(-0.5 * (c.x0 / 0.025) ** 2)  # cupid's bow dip on the mid-line
    return UPPER_LIP_HEIGHT * full * mx**0.6 * bow, LOWER_LIP_HEIGHT * full * mx**0.5


def _features(c: Construction, p: dict[str, float]) -> np.ndarray:
    """Relief ``dz`` of the face features at rest (identity-dependent, expression-free)."""
    x, y, ax = c.x0, c.y0, np.abs(c.x0)
    ex, dy, hu, hl = eye_frame(c, p)
    ey_x = EYE_X + 0.02 * p["eye_spacing"]
    dz = -0.11 * _gauss(ax - ey_x, dy + 0.01, 0.17, 0.11)  # eye socket
    ball = np.clip(1.0 - (ex / 1.05) ** 2 - (dy / 0.11) ** 2, 0.0, None)
    dz += 0.075 * np.sqrt(ball)  # eyeball bulging inside the socket
    lid = np.clip(1.0 - ex**2, 0.0, None) * _gauss(0.0, dy - hu - 0.02, 1.0, 0.025)
    dz += 0.012 * lid  # upper-lid fold
    brow_y = BROW_Y + 0.025 * p["brow_height"]
    dz += 0.05 * _gauss(ax - 0.3, y - brow_y, 0.2, 0.07)  # brow ridge
    dz += -0.03 * _gauss(ax - 0.64, y - 0.45, 0.1, 0.16)  # temples
    dz += (0.04 + 0.02 * p["cheek_fullness"]) * _gauss(ax - 0.45, y - 0.08, 0.15, 0.13)  # cheekbones
    dz += 0.01 * p["cheek_fullness"] * _gauss(ax - 0.42, y + 0.25, 0.15, 0.15)
    dz += 0.02 * p["forehead"] * _gauss(x, y - 0.75, 0.4, 0.15)
    dz += nose_relief(c, p)
    dz += _mouth_relief(c, p)
    dz += (0.05 + 0.02 * p["chin"]) * _gauss(x, y + 0.73, 0.15, 0.09)  # chin
    dz += -0.025 * _gauss(x, y + 0.56, 0.15, 0.035)  # labiomental fold
    return dz


def nose_relief(c: Construction, p: dict[str, float]) -> np.ndarray:
    """Nose height ``dz [V]``: a ridge from the root to the tip, a rounded tip and underside, alae."""
    x, y = c.x0, c.y0
    size = 1.0 + 0.15 * p["nose_size"]
    tip_y = NOSE_TIP_Y - 0.03 * p["nose_length"]
    u = np.clip((NOSE_ROOT_Y - y) / (NOSE_ROOT_Y - tip_y), 0.0, 1.0)  # 0 at the root, 1 at the tip
    height = 0.05 + 0.15 * u**1.1
    sigma = (0.045 + 0.035 * u) * size
    s = np.clip((tip_y - y) / 0.1, 0.0, 1.0)
    under = np.where(y < tip_y, np.sqrt(1.0 - s**2), 1.0)  # rounded underside, flat at the tip
    above = np.where(y > NOSE_ROOT_Y, np.exp(-(((y - NOSE_ROOT_Y) / 0.06) ** 2)), 1.0)
    ridge = size * height * np.exp(-0.5 * (x / sigma) ** 2) * under * above
    tip = 0.06 * size * _gauss(x, y - tip_y, 0.07 * size, 0.06)
    alae = 0.07 * size * _gauss(np.abs(x) - 0.105 * size, y - tip_y + 0.055, 0.045, 0.045)
    return ridge + tip + alae


def _mouth_relief(c: Construction, p: dict[str, float]) -> np.ndarray:
    x, y = c.x0, c.y0
    hu, hl = lip_heights(c, p)
    full = 1.0 + 0.3 * p["lip_fullness"]
    dz = 0.06 * _gauss(x, y - MOUTH_Y, 0.24, 0.14)  # the muzzle: lips sit on a forward bulge
    upper = (c.row > c.grid.mouth_row) & (hu > 0)
    lower = (c.row < c.grid.mouth_row) & (hl > 0)
    du = np.where(upper, np.clip(1.0 - ((y - MOUTH_Y - 0.5 * hu) / (0.5 * hu + 1e-9)) ** 2, 0, None), 0.0)
    dl = np.where(lower, np.clip(1.0 - ((MOUTH_Y - y - 0.5 * hl) / (0.5 * hl + 1e-9)) ** 2, 0, None), 0.0)
    dz += full * (0.022 * np.sqrt(du) + 0.026 * np.sqrt(dl))
    dz += -0.012 * (c.row == c.grid.mouth_row) * (hu > 0)  # the line where the lips meet
    dz += 0.012 * _gauss(np.abs(x) - 0.035, y - MOUTH_Y - 0.14, 0.012, 0.04)  # philtrum columns
    return dz


def _expression(c: Construction, p: dict[str, float], v: np.ndarray) -> np.ndarray:
    """Add the expression displacements (linear in each expression weight) to ``v [V, 3]``."""
    x, y, ax = c.x0, c.y0, np.abs(c.x0)
    out = v.copy()
    # jaw open: everything below the mouth line drops; inside the mouth the lips split apart
    lens = np.clip(1.0 - (x / MOUTH_HALF_WIDTH) ** 2, 0.0, None) ** 0.5
    split = np.where(c.row < c.grid.mouth_row, 1.0, np.where(c.row == c.grid.mouth_row, 0.5, 0.0))
    ramp = _smoothstep(MOUTH_Y, MOUTH_Y - 0.3, y) * (c.row <= c.grid.mouth_row)
    jaw = (lens * split + (1.0 - lens) * ramp) * (1.0 - 0.6 * _smoothstep(0.35, 0.8, ax))
    out[:, 1] -= 0.12 * p["jaw_open"] * jaw * c.front**0.25
    mouth = (c.row == c.grid.mouth_row) * lens
    out[:, 2] -= 0.10 * p["jaw_open"] * mouth
    # smile: mouth corners up and out, cheeks up and forward
    corners = _gauss(ax - MOUTH_HALF_WIDTH, y - MOUTH_Y, 0.11, 0.09)
    out[:, 1] += 0.045 * p["smile"] * corners
    out[:, 0] += 0.03 * p["smile"] * np.sign(x) * corners
    out[:, 2] += 0.02 * p["smile"] * _gauss(ax - 0.4, y + 0.12, 0.12, 0.1)
    # pucker: lips forward and towards the mid-line
    lips = _gauss(x, y - MOUTH_Y, 0.2, 0.1)
    out[:, 2] += 0.04 * p["pucker"] * lips
    out[:, 0] -= 0.04 * p["pucker"] * x * lips / MOUTH_HALF_WIDTH
    # brow raise: brows and the lower forehead move up
    brows = _gauss(0.0, y - BROW_Y, 1.0, 0.14) * (1.0 - _smoothstep(0.55, 0.75, ax))
    out[:, 1] += 0.045 * p["brow_raise"] * brows
    # frown: inner brows down and together
    inner = _gauss(ax - 0.15, y - BROW_Y, 0.12, 0.07)
    out[:, 1] -= 0.025 * p["frown"] * inner
    out[:, 0] -= 0.02 * p["frown"] * np.sign(x) * inner
    out[:, 2] -= 0.01 * p["frown"] * _gauss(x, y - 0.38, 0.06, 0.05)
    # eye close: the opening collapses onto the lower lid, the upper lid slides down over it
    ex, dy, hu, hl = eye_frame(c, p)
    above_lower = dy + hl  # height above the lower lid
    opening = hu + hl
    drop = np.where(
        above_lower <= 0,
        0.0,
        np.where(above_lower <= opening, above_lower, opening * np.exp(-(((above_lower - opening) / 0.08) ** 2))),
    )
    out[:, 1] -= 0.6 * p["eye_close"] * drop
    out[:, 2] += 0.01 * p["eye_close"] * drop / EYE_UPPER  # the lid sits in front of the eyeball
    return out


def construct(params: dict[str, float] | None = None, grid: Grid | None = None) -> np.ndarray:
    """Vertices ``[V, 3]`` (dm) of the procedural face for the named parameters (default: mean)."""
    p = dict(DEFAULTS)
    p.update(params or {})
    c = base_surface(grid or make_grid())
    v = c.base.copy()
    v[:, 2] += c.front * _features(c, p)
    v = _expression(c, p, v)
    jaw = _smoothstep(0.0, -0.6, c.y0)
    v[:, 0] *= 1.0 + 0.05 * p["width"] + 0.07 * p["jaw_width"] * jaw
    v[:, 1] *= 1.0 + 0.045 * p["length"]
    v[:, 2] = (v[:, 2] + 0.55) * (1.0 + 0.05 * p["depth"]) - 0.55  # about the head centre
    v[:, 2] += 0.03 * p["chin"] * _smoothstep(-0.5, -0.85, c.y0) * c.front
    return v


def triangulate(grid: Grid) -> np.ndarray:
    """Two triangles per grid quad, counter-clockwise seen from outside (x right, y up, +z front).

    Diagonals are mirrored about the centre column so the triangulation itself is symmetric.
    """
    rows, cols = grid.shape
    r, k = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = r * cols + k
    b, c_, d = a + 1, a + cols + 1, a + cols  # right, upper right, up
    left = (k < (cols - 1) // 2).reshape(-1)
    a, b, c_, d = (q.reshape(-1) for q in (a, b, c_, d))
    # left half: diagonal a-c; right half: diagonal b-d (the mirror image of a-c)
    t1 = np.where(left[:, None], np.stack([a, b, c_], 1), np.stack([a, b, d], 1))
    t2 = np.where(left[:, None], np.stack([a, c_, d], 1), np.stack([b, c_, d], 1))
    return np.concatenate([t1, t2], axis=0).astype(np.int64)
