"""Differentiable 5-point similarity alignment of face crops (input of the identity networks).

The feature loss of paper Eq. 4 (``L_feat``) compares identity embeddings of the input photo and
of the render; both are first warped to the canonical crop of the identity network by the
similarity transform that maps their 5 points (image-left eye centre, image-right eye centre,
nose tip, image-left mouth corner, image-right mouth corner; :func:`occrecon.landmarks.five_points`)
onto a template. The transform is solved in closed form in torch (no SVD, no CPU round trip) so
gradients flow to both the image and the landmarks.

Coordinates. Landmarks follow ``CONVENTIONS.md`` (pixel ``(row i, col j)`` centred at
``(j + 0.5, i + 0.5)``). kornia's ``warp_affine`` (like OpenCV, and like the published templates
below) puts pixel centres at integer coordinates, so landmarks are shifted by ``-0.5`` before the
transform is estimated, and the returned matrix is in that integer-centre convention.

Templates (integer-centre pixel coordinates, same point order as ``five_points``):

- ``"arcface"`` (112x112): insightface's ``arcface_dst``, used by Deep3DFaceRecon's
  ``estimate_norm`` for the ArcFace feature loss.
- ``"dlib"`` (150x150): derived from dlib's ``get_face_chip_details(shape, 150, 0.25)`` -- the
  chip the dlib face recogniser was trained on. dlib places its 68-point mean face shape
  (normalised coordinates ``m`` in ``[0, 1]``) at ``(padding + m) / (1 + 2 padding) * size``;
  the 5 points here are the means of that mean shape's eye points (36-41, 42-47), its nose tip
  (30) and its mouth corners (48, 54), i.e. the same reduction :func:`five_points` applies to
  detected landmarks. (dlib itself fits 28 points; fitting 5 is a documented approximation.)
"""

from __future__ import annotations

import torch
from kornia.geometry.transform import warp_affine

from occrecon.errors import ConfigError
from occrecon.utils.checks import check_shape

ARCFACE_TEMPLATE_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)

# dlib's mean face shape (dlib/image_transforms/interpolation.h, points 17-67), only the points
# the 5-point reduction uses: {68-layout index: (x, y)} in normalised chip coordinates.
_DLIB_MEAN_FACE: dict[int, tuple[float, float]] = {
    30: (0.490127, 0.515625),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.79751, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
}  # fmt: skip
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25


def dlib_template(size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> torch.Tensor:
    """5-point template of dlib's face chip, ``[5, 2]`` integer-centre pixel coordinates."""
    groups = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))
    mean = torch.tensor(
        [[sum(_DLIB_MEAN_FACE[i][k] for i in g) / len(g) for k in (0, 1)] for g in groups], dtype=torch.float64
    )
    return ((padding + mean) / (1.0 + 2.0 * padding) * size).float()


TEMPLATES: dict[str, tuple[int, torch.Tensor]] = {
    "arcface": (112, torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float32)),
    "dlib": (DLIB_CHIP_SIZE, dlib_template()),
}
"""Name -> (crop size, ``[5, 2]`` template in integer-centre pixel coordinates)."""


def estimate_similarity(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares 2D similarity ``dst ~ s R src + t`` (Umeyama 1991, reflection excluded).

    Parametrised as ``[[a, -b, tx], [b, a, ty]]``; the normal equations have the closed form
    ``a = sum(src_c . dst_c) / sum|src_c|^2``, ``b = sum(src_c x dst_c) / sum|src_c|^2`` on
    centred points, which equals Umeyama's solution in 2D and is differentiable everywhere the
    source points are not all coincident.

    Args:
        src: ``[B, N, 2]`` source points.
        dst: ``[B, N, 2]`` or ``[N, 2]`` target points.
        weights: optional ``[B, N]`` or ``[N]`` non-negative point weights.

    Returns:
        ``[B, 2, 3]`` affine matrices mapping ``src`` to ``dst``.
    """
    check_shape(src, ["B", "N", 2], "src")
    dst = dst.to(src).expand_as(src)
    w = (
        torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
        if weights is None
        else weights.to(src).expand(src.shape[:2])
    )
    w = (w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)).unsqueeze(-1)  # [B, N, 1]
    src_mean, dst_mean = (w * src).sum(1, keepdim=True), (w * dst).sum(1, keepdim=True)
    s, d = src - src_mean, dst - dst_mean
    norm = (w * s * s).sum(dim=(1, 2)).clamp_min(1e-12)
    a = (w[..., 0] * (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1])).sum(1) / norm
    b = (w[..., 0] * (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0])).sum(1) / norm
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], dim=-2)  # [B, 2, 2]
    trans = dst_mean.squeeze(1).unsqueeze(-1) - rot @ src_mean.squeeze(1).unsqueeze(-1)  # [B, 2, 1]
    return torch.cat([rot, trans], dim=-1)


def alignment_matrix(points5: torch.Tensor, template: str | torch.Tensor = "arcface") -> torch.Tensor:
    """Similarity matrix taking image pixels to the template crop (kornia/OpenCV convention).

    Args:
        points5: ``[B, 5, 2]`` landmarks in ``CONVENTIONS.md`` pixel coordinates.
        template: a name of :data:`TEMPLATES` or a ``[5, 2]`` integer-centre template.

    Returns:
        ``[B, 2, 3]`` matrix for ``kornia.geometry.warp_affine``.
    """
    check_shape(points5, ["B", 5, 2], "points5")
    dst = TEMPLATES[template][1] if isinstance(template, str) else template
    check_shape(dst, [5, 2], "template")
    return estimate_similarity(points5 - 0.5, dst)


def align_faces(
    images: torch.Tensor,
    points5: torch.Tensor,
    template: str | torch.Tensor = "arcface",
    size: int | None = None,
) -> torch.Tensor:
    """Warp faces to a canonical crop by the 5-point similarity (differentiable in both inputs).

    Args:
        images: ``[B, C, H, W]``.
        points5: ``[B, 5, 2]`` landmarks in ``CONVENTIONS.md`` pixel coordinates of ``images``.
        template: ``"arcface"`` (112 px), ``"dlib"`` (150 px) or a ``[5, 2]`` tensor (then ``size``
            is required).
        size: output side; defaults to the named template's size.

    Returns:
        ``[B, C, size, size]`` crops (zeros outside the source image).
    """
    check_shape(images, ["B", "C", "H", "W"], "images")
    if size is None:
        if not isinstance(template, str):
            raise ConfigError("align_faces: a custom template tensor needs size= (the crop side in pixels)")
        size = TEMPLATES[template][0]
    matrix = alignment_matrix(points5.to(images.dtype), template)
    return warp_affine(images, matrix, dsize=(size, size), align_corners=True)
