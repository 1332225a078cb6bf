"""The per-sample fields of the synthetic data set: name, storage, dtype, shape and meaning.

One table serves the writer (what to store and how), the reader (what to expect and validate),
the manifest (``fields``, so a data set documents itself) and ``docs/synthetic.md``.
Shapes use ``H = W = size`` (the image side) and ``h = heatmap_size``; ``D`` = coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_NAME = "occrecon-synth"
FORMAT_VERSION = 2
"""Bump when the on-disk layout or a field's meaning changes; the reader refuses other versions.
2: ``l_``/``r_`` parsing labels follow the subject's side (format 1 had them mirrored)."""

OCCLUDER_CODES: dict[str, int] = {"none": 0, "glasses_frame": 1, "glasses_lens": 2, "hand": 3, "hair": 4}
"""Values of the ``occluders`` map (front-most occluder per pixel)."""

GLASSES_CODES: dict[str, int] = {"none": 0, "clear": 1, "tinted": 2, "sunglasses": 3}
"""Values of the per-sample ``glasses`` field."""


@dataclass(frozen=True)
class FieldSpec:
    """One stored field: ``storage`` is ``png`` (one file per sample) or ``npy`` (stacked per shard)."""

    name: str
    storage: str
    dtype: str
    shape: str
    doc: str


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("I_in", "png", "uint8", "[H, W, 3]", "RGB image with occluders (input of the pipeline)."),
    FieldSpec(
        "I_gt",
        "png",
        "uint8",
        "[H, W, 3]",
        "RGB image of the identical scene without occluders; equals I_in outside `occluders > 0`.",
    ),
    FieldSpec(
        "parsing_in",
        "png",
        "uint8",
        "[H, W]",
        "CelebAMask-HQ 19-class parsing of I_in: glasses = eye_g (3), hair strands = hair (13), hands = background (0); "
        "l_/r_ = the subject's side (l_eye on the image's right in a frontal face).",
    ),
    FieldSpec(
        "parsing_gt",
        "png",
        "uint8",
        "[H, W]",
        "CelebAMask-HQ 19-class parsing of I_gt (no occluders); > 0 exactly where the face mesh covers a pixel.",
    ),
    FieldSpec(
        "occluders",
        "png",
        "uint8",
        "[H, W]",
        "Front-most occluder per pixel: 0 none, 1 glasses frame, 2 glasses lens, 3 hand, 4 hair strand. Occluder mask = `occluders > 0`.",
    ),
    FieldSpec(
        "bump",
        "png",
        "uint8",
        "[H, W]",
        "Bump map Phi of Eq. 5: phi(d' - d) on the face, phi(0) = 128 elsewhere; phi(x) = clip(floor(127.5 + x / bump_range * 127.5 + 0.5), 0, 255).",
    ),
    FieldSpec(
        "depth_coarse",
        "npy",
        "float32",
        "[H, W]",
        "Depth d(b) = -z_view of the coarse shape (decimetres); 0 where the face does not project.",
    ),
    FieldSpec(
        "depth_detail",
        "npy",
        "float32",
        "[H, W]",
        "Depth d'(b) of the detailed shape (coarse + displacement along normals), decimetres; 0 off the face.",
    ),
    FieldSpec(
        "normals",
        "npy",
        "float16",
        "[H, W, 3]",
        "Unit normals of the detailed shape in view space (+z towards the camera); 0 off the face.",
    ),
    FieldSpec(
        "landmarks",
        "npy",
        "float32",
        "[68, 2]",
        "iBUG 68 landmarks (image-side), continuous pixels (x, y), origin top-left corner.",
    ),
    FieldSpec(
        "landmark_visible",
        "npy",
        "bool",
        "[68]",
        "Landmark not hidden by the face itself (depth test against the coarse face).",
    ),
    FieldSpec(
        "landmark_occluded",
        "npy",
        "bool",
        "[68]",
        "Landmark pixel covered by an occluder (glasses, hand, hair) in I_in.",
    ),
    FieldSpec(
        "edge_lines",
        "npy",
        "uint8",
        "[13, h, h]",
        "The 13 LAB face edge-line heatmaps (occrecon.landmarks.edge_line_heatmaps, sigma in the manifest) x 255, at heatmap_size.",
    ),
    FieldSpec(
        "coeffs",
        "npy",
        "float32",
        "[D]",
        "Coefficient vector y in the manifest's `coefficient_layout` (id | exp | tex | gamma | pose).",
    ),
    FieldSpec(
        "camera_pose",
        "npy",
        "float32",
        "[6]",
        "PerspectiveCamera pose (pitch, yaw, roll, tx, ty, tz), radians / decimetres; intrinsics in the manifest.",
    ),
    FieldSpec(
        "identity",
        "npy",
        "int64",
        "[]",
        "Identity id (same person = same id, coarse shape, albedo, wrinkle code and glasses style).",
    ),
    FieldSpec("image_index", "npy", "int64", "[]", "Index of this picture among its identity's pictures (0-based)."),
    FieldSpec("index", "npy", "int64", "[]", "Global sample index (sample i of the data set)."),
    FieldSpec("glasses", "npy", "uint8", "[]", "Glasses worn: 0 none, 1 clear, 2 tinted, 3 sunglasses."),
    FieldSpec("hand", "npy", "bool", "[]", "A hand occluder is drawn."),
    FieldSpec("hair", "npy", "bool", "[]", "Hair strands are drawn over the forehead."),
)

FIELD_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
PNG_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.storage == "png")
NPY_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.storage == "npy")

DERIVED_FIELDS: dict[str, str] = {
    "occluder_mask": "bool [H, W]: occluders > 0.",
    "face_mask": "bool [H, W]: parsing_gt > 0 (the face mesh covers the pixel).",
}
"""Fields the reader computes from stored ones (never stored)."""


def manifest_field_docs() -> dict[str, dict[str, str]]:
    """The field table as a JSON-able dict for the manifest."""
    docs = {f.name: {"storage": f.storage, "dtype": f.dtype, "shape": f.shape, "doc": f.doc} for f in FIELDS}
    for name, doc in DERIVED_FIELDS.items():
        docs[name] = {"storage": "derived", "doc": doc}
    return docs
