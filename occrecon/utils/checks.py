"""Shape guards for public functions (kornia's ``KORNIA_CHECK_SHAPE`` idea, typed errors)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from occrecon.errors import ShapeError


def check_shape(tensor: torch.Tensor, dims: Sequence[int | str], name: str = "tensor") -> None:
    """Raise :class:`ShapeError` unless ``tensor`` matches the symbolic shape ``dims``.

    ``dims`` holds ints (exact sizes), names (any size, e.g. ``"B"``) and at most one ``"*"``
    (any number of leading dimensions).

    Example:
        >>> check_shape(torch.zeros(2, 5, 3), ["B", "V", 3], "vertices")
        >>> check_shape(torch.zeros(4, 3), ["*", 3], "points")
    """
    shape = tuple(tensor.shape)
    dims = list(dims)
    expected = "[" + ", ".join(str(d) for d in dims) + "]"
    if "*" in dims:
        star = dims.index("*")
        head, tail = dims[:star], dims[star + 1 :]
        if len(shape) < len(head) + len(tail):
            raise ShapeError(name, expected, shape)
        pairs = list(zip(head, shape[: len(head)], strict=True)) + list(zip(tail, shape[len(shape) - len(tail) :], strict=True))
    else:
        if len(shape) != len(dims):
            raise ShapeError(name, expected, shape)
        pairs = list(zip(dims, shape, strict=True))
    for want, got in pairs:
        if isinstance(want, int) and want != got:
            raise ShapeError(name, expected, shape)
