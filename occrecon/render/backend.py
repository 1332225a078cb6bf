"""Rasterizer backends behind one interface with nvdiffrast's semantics.

``backend.rasterize(pos [B, V, 4], tri [F, 3] int32, (H, W)) -> rast [B, H, W, 4]`` with
``(u, v, z/w, triangle_id + 1)`` (zero where empty, row 0 = ``y_ndc = -1``);
``backend.interpolate(attr, rast, tri) -> [B, H, W, C]``;
``backend.antialias(color, rast, pos, tri) -> [B, H, W, C]``.

Choose with :func:`get_backend`: ``"torch"`` (pure PyTorch, CPU/GPU), ``"nvdiffrast"`` (CUDA
rasterizer, ``RasterizeCudaContext`` only -- never OpenGL, whose EGL/GL context fails on many
headless machines), or ``"auto"`` (nvdiffrast when CUDA and ``nvdiffrast.torch`` import, else torch).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch

from occrecon.errors import ConfigError
from occrecon.render import torch_raster
from occrecon.render.antialias import antialias as torch_antialias
from occrecon.render.antialias import edge_topology
from occrecon.render.interpolate import interpolate as torch_interpolate

BACKENDS = ("auto", "torch", "nvdiffrast")


class RasterBackend(Protocol):
    """What :class:`~occrecon.render.mesh_renderer.MeshRenderer` needs from a backend."""

    name: str

    def rasterize(self, pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor: ...

    def interpolate(self, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor: ...

    def antialias(
        self, color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor
    ) -> torch.Tensor: ...


class TorchBackend:
    """Pure-PyTorch backend (see :mod:`occrecon.render.torch_raster` and :mod:`.antialias`)."""

    name = "torch"

    def __init__(self, chunk_elems: int = torch_raster.DEFAULT_CHUNK_ELEMS) -> None:
        self.chunk_elems = int(chunk_elems)
        self._topology: dict[tuple, torch.Tensor] = {}

    def rasterize(self, pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
        return torch_raster.rasterize(pos, tri, resolution, self.chunk_elems)

    def interpolate(self, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        return torch_interpolate(attr, rast, tri)

    def antialias(self, color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        return torch_antialias(color, rast, pos, tri, topology=self._topology_of(tri))

    def _topology_of(self, tri: torch.Tensor) -> torch.Tensor:
        # Meshes keep their triangle buffer for life, so (pointer, shape, version) identifies it.
        key = (tri.data_ptr(), tuple(tri.shape), tri.device, tri._version)
        if key not in self._topology:
            self._topology = {key: edge_topology(tri)}  # keep one entry: one mesh per renderer
        return self._topology[key]


def _import_nvdiffrast() -> Any | None:
    try:
        return importlib.import_module("nvdiffrast.torch")
    except ImportError:
        return None


def nvdiffrast_available() -> bool:
    """True when CUDA is usable and ``nvdiffrast.torch`` imports (PyPI: ``diffrp-nvdiffrast``)."""
    return torch.cuda.is_available() and _import_nvdiffrast() is not None


class NvdiffrastBackend:
    """nvdiffrast's CUDA rasterizer; one ``RasterizeCudaContext`` per device, made on first use."""

    name = "nvdiffrast"

    def __init__(self) -> None:
        dr = _import_nvdiffrast()
        if dr is None:
            raise ConfigError(
                "render backend 'nvdiffrast' needs the nvdiffrast.torch module: "
                "`pip install diffrp-nvdiffrast ninja` (or `pip install -e .[gpu]`), or use backend 'torch'"
            )
        if not torch.cuda.is_available():
            raise ConfigError("render backend 'nvdiffrast' needs CUDA; use backend 'torch' on CPU")
        self._dr = dr
        self._contexts: dict[torch.device, Any] = {}

    def _context(self, device: torch.device) -> Any:
        if device not in self._contexts:
            self._contexts[device] = self._dr.RasterizeCudaContext(device=device)
        return self._contexts[device]

    def rasterize(self, pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
        rast, _ = self._dr.rasterize(
            self._context(pos.device), pos.float().contiguous(), tri.int().contiguous(), resolution=list(resolution)
        )
        return rast

    def interpolate(self, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        if attr.dim() == 2:  # instanced mode wants [1, V, C] to broadcast over the batch
            attr = attr[None]
        return self._dr.interpolate(attr.float().contiguous(), rast, tri.int().contiguous())[0]

    def antialias(self, color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        return self._dr.antialias(color.float().contiguous(), rast, pos.float().contiguous(), tri.int().contiguous())


def get_backend(name: str = "auto") -> RasterBackend:
    """Backend by config string: ``"auto"``, ``"torch"`` or ``"nvdiffrast"``."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown render backend {name!r}; expected one of {BACKENDS}")
    if name == "nvdiffrast" or (name == "auto" and nvdiffrast_available()):
        return NvdiffrastBackend()
    return TorchBackend()
