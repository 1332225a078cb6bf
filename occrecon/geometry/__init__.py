"""occrecon.geometry: rotations, cameras (paper Eq. 7 and Deep3D's perspective) and SH lighting."""

from occrecon.geometry.camera import Camera, PerspectiveCamera, ScaledOrthographicCamera
from occrecon.geometry.lighting import sh_basis, sh_coefficients, sh_irradiance, shade, shade_pixels
from occrecon.geometry.rotation import rotate_points, rotation_from_euler

__all__ = [
    "Camera",
    "PerspectiveCamera",
    "ScaledOrthographicCamera",
    "rotate_points",
    "rotation_from_euler",
    "sh_basis",
    "sh_coefficients",
    "sh_irradiance",
    "shade",
    "shade_pixels",
]
