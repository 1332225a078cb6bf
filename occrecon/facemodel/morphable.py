"""The linear morphable face model shared by every source (procedural, SFM, BFM).

``S = S_mean + B_id alpha + B_exp beta`` and ``T = T_mean + B_tex delta`` (the 3DMM of the
paper's §3.4, Eq. 4's inputs, Deng et al. 2019 Eq. 1). Bases are pre-multiplied by their standard
deviations, so every coefficient has a unit Gaussian prior. Units and frames: ``CONVENTIONS.md``
(model space, decimetres, +x image right, +y up, +z towards the camera).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from occrecon.errors import ShapeError
from occrecon.facemodel.layout import CoefficientLayout, Coefficients, layout_of
from occrecon.utils.checks import check_shape

MM_PER_DECIMETRE = 100.0


class FaceGeometry(NamedTuple):
    """Output of :meth:`MorphableModel.forward` (model space)."""

    vertices: torch.Tensor  # [B, V, 3] decimetres
    normals: torch.Tensor  # [B, V, 3] unit, outward
    albedo: torch.Tensor  # [B, V, 3] RGB, nominally in [0, 1]


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted face normals ``(v1 - v0) x (v2 - v0)`` (length = 2 x area).

    Args:
        vertices: ``[B, V, 3]``.
        triangles: ``[F, 3]`` int64, counter-clockwise seen from outside.

    Returns:
        ``[B, F, 3]`` outward, not normalised.
    """
    v0, v1, v2 = (vertices[:, triangles[:, k]] for k in range(3))
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit vertex normals: the area-weighted sum of the one-ring's face normals.

    A scatter-add over the triangle list replaces Deep3D's padded ``point_buf`` table: it handles
    any valence, and zero-area triangles contribute nothing (no NaN from normalising them).

    Args:
        vertices: ``[B, V, 3]`` (any mesh; differentiable).
        triangles: ``[F, 3]`` int64, counter-clockwise seen from outside.
        eps: floor of the norm (an isolated vertex gets a zero normal instead of NaN).

    Returns:
        ``[B, V, 3]`` unit outward normals.
    """
    check_shape(vertices, ["B", "V", 3], "vertices")
    check_shape(triangles, ["F", 3], "triangles")
    fn = face_normals(vertices, triangles)  # [B, F, 3]
    acc = torch.zeros_like(vertices)
    for k in range(3):  # three vectorised scatters, one per triangle corner
        acc = acc.index_add(1, triangles[:, k], fn)
    return acc / acc.norm(dim=-1, keepdim=True).clamp_min(eps)


@dataclass
class FaceModelData:
    """Plain numpy arrays a source reader produces; :class:`MorphableModel` turns them into buffers.

    Shapes: ``mean_shape [V, 3]`` dm; ``id_basis [V, 3, K_id]``; ``exp_basis [V, 3, K_exp]``;
    ``albedo_mean [V, 3]`` in [0, 1]; ``albedo_basis [V, 3, K_tex]``; ``triangles [F, 3]``
    0-based CCW; ``landmark_indices [68]``; ``region_labels [V]`` CelebAMask-HQ indices;
    ``skin_mask [V]`` bool (reflectance / skin statistics); ``face_mask [V]`` bool (the photometric
    region, Deep3D's front mask); ``uv [V, 2]`` in [0, 1]; ``mirror_index [V]`` (-1 = unknown).
    """

    name: str
    mean_shape: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    albedo_mean: np.ndarray
    albedo_basis: np.ndarray
    triangles: np.ndarray
    landmark_indices: np.ndarray
    region_labels: np.ndarray
    skin_mask: np.ndarray
    face_mask: np.ndarray
    uv: np.ndarray
    mirror_index: np.ndarray
    mm_per_unit: float = MM_PER_DECIMETRE
    expression_names: tuple[str, ...] = ()
    identity_names: tuple[str, ...] = ()


class MorphableModel(nn.Module):
    """A linear 3D morphable face model held as buffers (moves with ``.to(device)``).

    Buffers: ``mean_shape [V, 3]``, ``id_basis [V, 3, K_id]``, ``exp_basis [V, 3, K_exp]``,
    ``albedo_mean [V, 3]``, ``albedo_basis [V, 3, K_tex]``, ``triangles [F, 3]`` (int64, CCW from
    outside), ``landmark_indices [68]`` (iBUG order, image side), ``region_labels [V]``
    (CelebAMask-HQ, ``occrecon.labels``), ``skin_mask [V]``, ``face_mask [V]`` (bool),
    ``uv [V, 2]``, ``mirror_index [V]`` (-1 where unknown).
    Attributes: ``name``, ``mm_per_unit`` (100: model units are decimetres),
    ``identity_names`` / ``expression_names`` (names of the leading named modes, if any).
    """

    mean_shape: torch.Tensor
    id_basis: torch.Tensor
    exp_basis: torch.Tensor
    albedo_mean: torch.Tensor
    albedo_basis: torch.Tensor
    triangles: torch.Tensor
    landmark_indices: torch.Tensor
    region_labels: torch.Tensor
    skin_mask: torch.Tensor
    face_mask: torch.Tensor
    uv: torch.Tensor
    mirror_index: torch.Tensor

    def __init__(self, data: FaceModelData) -> None:
        super().__init__()
        n = data.mean_shape.shape[0]
        _check_array(data.mean_shape, (n, 3), "mean_shape")
        _check_array(data.id_basis, (n, 3, None), "id_basis")
        _check_array(data.exp_basis, (n, 3, None), "exp_basis")
        _check_array(data.albedo_mean, (n, 3), "albedo_mean")
        _check_array(data.albedo_basis, (n, 3, None), "albedo_basis")
        _check_array(data.triangles, (None, 3), "triangles")
        for name in ("region_labels", "skin_mask", "face_mask", "mirror_index"):
            _check_array(getattr(data, name), (n,), name)
        _check_array(data.uv, (n, 2), "uv")
        self.name = data.name
        self.mm_per_unit = float(data.mm_per_unit)
        self.identity_names = tuple(data.identity_names)
        self.expression_names = tuple(data.expression_names)
        f32 = torch.float32
        for name in ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis", "uv"):
            self.register_buffer(name, torch.tensor(np.asarray(getattr(data, name)), dtype=f32))
        for name in ("triangles", "landmark_indices", "region_labels", "mirror_index"):
            self.register_buffer(name, torch.tensor(np.asarray(getattr(data, name)), dtype=torch.int64))
        for name in ("skin_mask", "face_mask"):
            self.register_buffer(name, torch.tensor(np.asarray(getattr(data, name)), dtype=torch.bool))

    # sizes ----------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def n_id(self) -> int:
        return self.id_basis.shape[2]

    @property
    def n_exp(self) -> int:
        return self.exp_basis.shape[2]

    @property
    def n_tex(self) -> int:
        return self.albedo_basis.shape[2]

    def layout(self, kind: str = "paper") -> CoefficientLayout:
        """The coefficient layout (``"paper"`` 9+6 or ``"deep3d"`` 3+27+3) sized for this model."""
        return CoefficientLayout.make(kind, self.n_id, self.n_exp, self.n_tex)

    # evaluation -----------------------------------------------------------------------------
    def shape(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """``S = S_mean + B_id alpha + B_exp beta``: ``[B, K_id], [B, K_exp] -> [B, V, 3]``."""
        check_shape(id_coeffs, ["B", self.n_id], "id_coeffs")
        check_shape(exp_coeffs, [id_coeffs.shape[0], self.n_exp], "exp_coeffs")
        offset = torch.einsum("vck,bk->bvc", self.id_basis, id_coeffs) + torch.einsum(
            "vck,bk->bvc", self.exp_basis, exp_coeffs
        )
        return self.mean_shape + offset

    def albedo(self, tex_coeffs: torch.Tensor) -> torch.Tensor:
        """``T = T_mean + B_tex delta``: ``[B, K_tex] -> [B, V, 3]`` RGB (not clamped)."""
        check_shape(tex_coeffs, ["B", self.n_tex], "tex_coeffs")
        return self.albedo_mean + torch.einsum("vck,bk->bvc", self.albedo_basis, tex_coeffs)

    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """Unit outward normals ``[B, V, 3]`` of this model's topology (see :func:`vertex_normals`)."""
        return vertex_normals(vertices, self.triangles)

    def landmarks_3d(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 landmark vertices ``[B, 68, 3]`` of ``vertices [B, V, 3]``."""
        return vertices[:, self.landmark_indices]

    def forward(self, coeffs: torch.Tensor | Coefficients) -> FaceGeometry:
        """Evaluate the model.

        Args:
            coeffs: a flat ``[B, size]`` vector in the paper or the deep3d layout (the two sizes
                always differ by 18, so the layout is recognised from the size), or
                :class:`Coefficients` from :meth:`CoefficientLayout.split`.

        Returns:
            :class:`FaceGeometry` with ``[B, V, 3]`` vertices, unit normals and albedo.
        """
        if isinstance(coeffs, torch.Tensor):
            coeffs = layout_of(self, coeffs).split(coeffs)
        vertices = self.shape(coeffs.id, coeffs.exp)
        return FaceGeometry(vertices, self.vertex_normals(vertices), self.albedo(coeffs.tex))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, V={self.num_vertices}, F={self.triangles.shape[0]}, id={self.n_id}, exp={self.n_exp}, tex={self.n_tex}"


def _check_array(array: np.ndarray, shape: tuple[int | None, ...], name: str) -> None:
    array = np.asarray(array)
    ok = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=True)
    )
    if not ok:
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ShapeError(name, expected, tuple(array.shape))
