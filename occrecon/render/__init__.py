"""occrecon.render: differentiable rasterization with nvdiffrast semantics (two backends) and the
:class:`MeshRenderer` that turns meshes into images, masks, depth/normal/label maps and landmarks.

Layouts and signs: ``CONVENTIONS.md``. Backends: :mod:`occrecon.render.backend`. The functional
torch ops live in their modules (not re-exported here, so the module names stay importable):
``torch_raster.rasterize``, ``interpolate.interpolate``, ``antialias.antialias``.
"""

from occrecon.render.backend import (
    BACKENDS,
    NvdiffrastBackend,
    RasterBackend,
    TorchBackend,
    get_backend,
    nvdiffrast_available,
)
from occrecon.render.face import camera_for_layout, camera_pose, render_face
from occrecon.render.mesh_renderer import MeshRenderer, RenderOutput

__all__ = [
    "BACKENDS",
    "MeshRenderer",
    "NvdiffrastBackend",
    "RasterBackend",
    "RenderOutput",
    "TorchBackend",
    "camera_for_layout",
    "camera_pose",
    "get_backend",
    "nvdiffrast_available",
    "render_face",
]
