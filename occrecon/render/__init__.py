"""occrecon.render: differentiable rasterization with nvdiffrast semantics (two backends) and the
:class:`MeshRenderer` that turns meshes into images, masks, depth/normal/label maps and landmarks.

Layouts and signs: ``CONVENTIONS.md``. Backends: :mod:`occrecon.render.backend`.
"""

from occrecon.render.antialias import antialias, edge_topology
from occrecon.render.backend import (
    BACKENDS,
    NvdiffrastBackend,
    RasterBackend,
    TorchBackend,
    get_backend,
    nvdiffrast_available,
)
from occrecon.render.face import camera_for_layout, camera_pose, render_face
from occrecon.render.interpolate import interpolate
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput
from occrecon.render.torch_raster import rasterize

__all__ = [
    "BACKENDS",
    "MeshRenderer",
    "NvdiffrastBackend",
    "RasterBackend",
    "RenderOutput",
    "TorchBackend",
    "antialias",
    "camera_for_layout",
    "camera_pose",
    "edge_topology",
    "get_backend",
    "interpolate",
    "nvdiffrast_available",
    "rasterize",
    "render_face",
]
