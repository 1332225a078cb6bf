"""Coefficient layouts: the one place where a flat coefficient vector ``y`` is cut into groups.

Two layouts (``CONVENTIONS.md``, "Coefficients"):

* ``paper`` — the target paper's ``y = (alpha_id, beta_exp, beta_tex, gamma, p)`` (§3.4, the text
  after Eq. 7): ``gamma`` is 9 monochrome SH coefficients and the pose
  ``p = (pitch, yaw, roll, f, tx, ty)`` feeds the scaled orthographic camera of Eq. 7.
  239 values for an 80/64/80 model.
* ``deep3d`` — Deep3DFaceRecon's ``id | exp | tex | angles 3 | gamma 27 (RGB SH) | trans 3`` (257).

Group sizes follow the loaded face model. Nothing else in occrecon slices ``y`` by hand: use
:meth:`CoefficientLayout.split` / :meth:`CoefficientLayout.join`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from occrecon.errors import ConfigError, ShapeError
from occrecon.utils.checks import check_shape

NUM_SH = 9
"""Real SH basis functions up to band 2 (Ramamoorthi-Hanrahan)."""
NUM_ANGLES = 3
"""pitch, yaw, roll in radians (``R = Rz(roll) Ry(yaw) Rx(pitch)``)."""
LAYOUT_KINDS: tuple[str, ...] = ("paper", "deep3d")


@dataclass(frozen=True)
class Coefficients:
    """A coefficient vector cut into named tensors (all ``[B, n]``).

    Attributes:
        id: identity ``alpha_id`` ``[B, n_id]`` (unit Gaussian prior).
        exp: expression ``beta_exp`` ``[B, n_exp]``.
        tex: albedo ``beta_tex`` ``[B, n_tex]``.
        gamma: SH lighting ``[B, 9]`` (paper, monochrome) or ``[B, 27]`` (deep3d, RGB channel-major).
        angles: ``[B, 3]`` pitch, yaw, roll (radians).
        scale: ``[B, 1]`` the paper's ``f`` (relative: ``f_px = f_default * (1 + scale)``). The
            deep3d layout has a fixed focal length; its ``scale`` is a zero tensor and
            :meth:`CoefficientLayout.join` rejects a non-zero one.
        translation: ``[B, 2]`` ``t_2d`` in pixels (paper) or ``[B, 3]`` ``(tx, ty, tz)`` in model
            units (deep3d).
    """

    id: torch.Tensor
    exp: torch.Tensor
    tex: torch.Tensor
    gamma: torch.Tensor
    angles: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.id.shape[0]

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CoefficientLayout:
    """Named, ordered coefficient groups and their slices.

    Build one with :meth:`paper` or :meth:`deep3d` (or ``MorphableModel.layout(kind)``).

    Example:
        >>> layout = CoefficientLayout.paper(80, 64, 80)
        >>> layout.size
        239
        >>> c = layout.split(layout.zeros(2))
        >>> tuple(c.translation.shape)
        (2, 2)
    """

    kind: str
    groups: tuple[tuple[str, int], ...]
    slices: dict[str, slice] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in LAYOUT_KINDS:
            raise ConfigError(f"coefficient layout kind must be one of {LAYOUT_KINDS}, got {self.kind!r}")
        slices, start = {}, 0
        for name, size in self.groups:
            if size < 0:
                raise ConfigError(f"coefficient group {name!r} has negative size {size}")
            slices[name] = slice(start, start + size)
            start += size
        object.__setattr__(self, "slices", slices)

    @classmethod
    def paper(cls, n_id: int, n_exp: int, n_tex: int) -> CoefficientLayout:
        """The paper's layout: ``id | exp | tex | gamma 9 | pose 6 (pitch, yaw, roll, f, tx, ty)``."""
        return cls("paper", (("id", n_id), ("exp", n_exp), ("tex", n_tex), ("gamma", NUM_SH), ("pose", NUM_ANGLES + 3)))

    @classmethod
    def deep3d(cls, n_id: int, n_exp: int, n_tex: int) -> CoefficientLayout:
        """Deep3DFaceRecon's layout: ``id | exp | tex | angles 3 | gamma 27 | trans 3``."""
        groups = (
            ("id", n_id),
            ("exp", n_exp),
            ("tex", n_tex),
            ("angles", NUM_ANGLES),
            ("gamma", 3 * NUM_SH),
            ("trans", 3),
        )
        return cls("deep3d", groups)

    @classmethod
    def make(cls, kind: str, n_id: int, n_exp: int, n_tex: int) -> CoefficientLayout:
        """Layout by name (``"paper"`` or ``"deep3d"``)."""
        if kind == "paper":
            return cls.paper(n_id, n_exp, n_tex)
        if kind == "deep3d":
            return cls.deep3d(n_id, n_exp, n_tex)
        raise ConfigError(f"coefficient layout kind must be one of {LAYOUT_KINDS}, got {kind!r}")

    @property
    def size(self) -> int:
        """Length of the flat coefficient vector."""
        return sum(size for _, size in self.groups)

    @property
    def gamma_channels(self) -> int:
        """1 for monochrome SH (paper), 3 for RGB SH (deep3d)."""
        return self.sizes["gamma"] // NUM_SH

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.groups)

    def group(self, y: torch.Tensor, name: str) -> torch.Tensor:
        """The raw group ``name`` of ``y`` ``[B, size]`` as ``[B, n]`` (a view)."""
        check_shape(y, ["B", self.size], "coefficients")
        if name not in self.slices:
            raise ConfigError(f"layout {self.kind!r} has no group {name!r}; groups: {list(self.slices)}")
        return y[:, self.slices[name]]

    def split(self, y: torch.Tensor) -> Coefficients:
        """Cut ``y`` ``[B, size]`` into :class:`Coefficients` (views into ``y``, gradients flow)."""
        check_shape(y, ["B", self.size], "coefficients")
        g = {name: y[:, s] for name, s in self.slices.items()}
        if self.kind == "paper":
            pose = g["pose"]
            angles, scale, translation = (
                pose[:, :NUM_ANGLES],
                pose[:, NUM_ANGLES : NUM_ANGLES + 1],
                pose[:, NUM_ANGLES + 1 :],
            )
        else:
            angles, translation = g["angles"], g["trans"]
            scale = y.new_zeros(y.shape[0], 1)
        return Coefficients(g["id"], g["exp"], g["tex"], g["gamma"], angles, scale, translation)

    def join(self, coefficients: Coefficients) -> torch.Tensor:
        """Inverse of :meth:`split`: concatenate the groups back into ``[B, size]``."""
        c = coefficients
        if self.kind == "paper":
            parts = {
                "id": c.id,
                "exp": c.exp,
                "tex": c.tex,
                "gamma": c.gamma,
                "pose": torch.cat([c.angles, c.scale, c.translation], 1),
            }
        else:
            if bool((c.scale != 0).any()):
                raise ConfigError("the deep3d layout has a fixed focal length: Coefficients.scale must be zero")
            parts = {
                "id": c.id,
                "exp": c.exp,
                "tex": c.tex,
                "angles": c.angles,
                "gamma": c.gamma,
                "trans": c.translation,
            }
        for name, size in self.groups:
            tensor = parts[name]
            if tensor.dim() != 2 or tensor.shape[1] != size:
                raise ShapeError(f"coefficients.{name}", f"[B, {size}]", tuple(tensor.shape))
        return torch.cat([parts[name] for name, _ in self.groups], dim=1)

    def zeros(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """``[batch, size]`` zeros: the mean face, frontal, centred, ambient light only."""
        return torch.zeros(batch, self.size, device=device, dtype=dtype)

    def zeros_like_split(self, batch: int, device: torch.device | str | None = None) -> Coefficients:
        """:class:`Coefficients` of zeros (convenient to fill groups by name, then :meth:`join`)."""
        return self.split(self.zeros(batch, device))


def layout_of(model: Any, y: torch.Tensor) -> CoefficientLayout:
    """The layout of ``model`` (``paper`` or ``deep3d``) whose size matches ``y`` ``[B, size]``.

    The two sizes of one model always differ by 18, so the size names the layout. ``model`` is
    anything with ``layout(kind)`` and ``name`` (a :class:`~occrecon.facemodel.morphable.MorphableModel`).
    Raises :class:`ShapeError` naming both sizes and the face model otherwise.
    """
    layouts = [model.layout(kind) for kind in LAYOUT_KINDS]
    for layout in layouts:
        if y.dim() == 2 and y.shape[1] == layout.size:
            return layout
    sizes = " or ".join(f"[B, {layout.size}] ({layout.kind})" for layout in layouts)
    name = getattr(model, "name", type(model).__name__)
    expected = f"{sizes} for face model {name!r} (the coefficients must come from this face model)"
    raise ShapeError("coefficients", expected, tuple(y.shape))

