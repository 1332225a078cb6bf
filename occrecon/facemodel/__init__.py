"""Morphable face models (procedural, Surrey Face Model, Basel Face Model) and coefficient layouts.

Model space: decimetres, +x image right (the subject's left), +y up, +z towards the camera
(``CONVENTIONS.md``).
"""

from occrecon.facemodel.factory import FACE_MODELS, load_face_model, load_face_model_data
from occrecon.facemodel.layout import CoefficientLayout, Coefficients
from occrecon.facemodel.morphable import FaceGeometry, FaceModelData, MorphableModel, face_normals, vertex_normals

__all__ = [
    "FACE_MODELS", "CoefficientLayout", "Coefficients", "FaceGeometry", "FaceModelData", "MorphableModel",
    "face_normals", "load_face_model", "load_face_model_data", "vertex_normals",
]  # fmt: skip
