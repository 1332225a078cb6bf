"""Semantic label spaces: CelebAMask-HQ (19 classes) and Helen (11 classes).

occrecon's canonical parsing label space is CelebAMask-HQ's 19 classes in the order of the
data set's own ``g_mask.py`` / EAGRNet (called order "A" in the reference notes); every other
order in circulation is reached through an explicit remap table in ``datamodules.celebamask_hq``.

Left/right convention: ``l_`` / ``r_`` (and Helen's "left") mean the side of the **image** as the
viewer sees it, the same convention as iBUG's 68 landmarks (points 36-41 are the image-left
eye). Flipping an image horizontally therefore swaps every ``l_``/``r_`` pair, see
:data:`CELEBAMASK_FLIP` and :data:`HELEN_FLIP`.

Hands and other occluders have no CelebAMask-HQ class: the data set leaves them unlabelled, i.e.
background (0). occrecon follows that convention and carries the occluder itself in a separate
occluder mask.
"""

from __future__ import annotations

IGNORE_LABEL = 255
"""Label value of pixels without a label (outside the image after a crop/augmentation): skipped by
the parsing loss (``ignore_index``) and the metrics. The one home of this value."""

CELEBAMASK_CLASSES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
"""The 19 CelebAMask-HQ classes; the index is the label value. ``mouth`` is the inner mouth."""

CELEBAMASK: dict[str, int] = {name: i for i, name in enumerate(CELEBAMASK_CLASSES)}

HELEN_CLASSES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth", "l_lip", "hair",
)
"""The 11 Helen classes in the order of the ``lbl00``..``lbl10`` files (``mouth`` = inner mouth)."""

HELEN: dict[str, int] = {name: i for i, name in enumerate(HELEN_CLASSES)}

HELEN_OVERALL_F1_CLASSES: tuple[str, ...] = ("l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth", "l_lip")
"""Classes pooled into the Helen "overall" F1 of the literature (eyes, brows, nose, mouth)."""


def _flip_table(classes: tuple[str, ...]) -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(classes)}

    def mirrored(name: str) -> str:
        if name.startswith("l_"):
            return "r_" + name[2:]
        if name.startswith("r_") and name != "r_":
            return "l_" + name[2:]
        return name

    return tuple(index.get(mirrored(name), i) for i, name in enumerate(classes))


CELEBAMASK_FLIP: tuple[int, ...] = _flip_table(CELEBAMASK_CLASSES)
"""``CELEBAMASK_FLIP[label]`` is the label after a horizontal flip of the image."""

HELEN_FLIP: tuple[int, ...] = _flip_table(HELEN_CLASSES)
"""``HELEN_FLIP[label]`` is the label after a horizontal flip of the image."""

CELEBAMASK_TO_HELEN: tuple[int, ...] = tuple(
    HELEN.get(name, HELEN["skin"] if name in ("l_ear", "r_ear") else 0) for name in CELEBAMASK_CLASSES
)
"""Map a CelebAMask-HQ label to Helen's 11 classes (ears count as skin; glasses, hat, earrings, neck, cloth
as background) — used to evaluate 19-class predictions with Helen's protocol."""
