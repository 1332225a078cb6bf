"""Semantic label spaces: CelebAMask-HQ (19 classes) and Helen (11 classes).

occrecon's canonical parsing label space is CelebAMask-HQ's 19 classes in the order of the
data set's own ``g_mask.py`` / EAGRNet (called order "A" in the reference notes); every other
order in circulation is reached through an explicit remap table in ``datamodules.celebamask_hq``.

Left/right conventions (each data set's own; ``CONVENTIONS.md`` "Labels"):

* CelebAMask-HQ ``l_`` / ``r_`` mean the **subject's own** side: in a frontal, unmirrored face
  ``l_eye`` lies on the image's **right** (measured on the four official label maps shipped with
  CelebAMask-HQ's MaskGAN demo, ``MaskGAN_demo/samples/{0..3}.png``: ``l_eye`` mean x 317-321 of
  512, ``r_eye`` 192-195; brows and ears alike). This is occrecon's canonical parsing space: the
  face models' region labels, the synthetic data and its exports, and the fusion rules use it.
* Helen ``lbl02`` / ``lbl04`` ("left eyebrow" / "left eye" in the SmithCVPR2013 README, which
  does not say whose left) are the **viewer's** left, i.e. the image-left brow/eye = the
  subject's right: the Relabeled-HELEN README (Lin et al., CVPR 2019, same values 2-5) reads
  "2: left brow (viewer side)". :data:`HELEN_CLASSES` keeps Helen's file order and names, so
  Helen's ``l_eye`` and CelebAMask-HQ's ``l_eye`` are **opposite** eyes;
  :data:`CELEBAMASK_TO_HELEN` crosses the sides and :func:`image_side` says which is which.
* The 68 iBUG landmarks keep their image-side order (points 36-41 = the eye on the image's left
  = the subject's right = CelebAMask-HQ ``r_eye``); see ``occrecon.landmarks``.

A horizontal flip mirrors the face, so under every one of these conventions it swaps each
``l_``/``r_`` pair (:data:`CELEBAMASK_FLIP`, :data:`HELEN_FLIP`) and the landmark order
(``FLIP_68``).

Hands and other occluders have no CelebAMask-HQ class: the data set leaves them unlabelled, i.e.
background (0). occrecon follows that convention and carries the occluder itself in a separate
occluder mask.
"""

from __future__ import annotations

from collections.abc import Sequence

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


SIDED_PARTS: tuple[str, ...] = ("brow", "eye", "ear")
"""Parts named ``l_<part>`` / ``r_<part>`` for a side (``l_lip`` is the *lower* lip, not a side)."""


def _mirrored(name: str) -> str:
    """``l_<part>`` <-> ``r_<part>`` for the :data:`SIDED_PARTS`; other names unchanged."""
    side, _, part = name.partition("_")
    if side in ("l", "r") and part in SIDED_PARTS:
        return {"l": "r", "r": "l"}[side] + "_" + part
    return name


def _flip_table(classes: tuple[str, ...]) -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(classes)}
    return tuple(index.get(_mirrored(name), i) for i, name in enumerate(classes))


CELEBAMASK_FLIP: tuple[int, ...] = _flip_table(CELEBAMASK_CLASSES)
"""``CELEBAMASK_FLIP[label]`` is the label after a horizontal flip of the image."""

HELEN_FLIP: tuple[int, ...] = _flip_table(HELEN_CLASSES)
"""``HELEN_FLIP[label]`` is the label after a horizontal flip of the image."""


def image_side(classes: Sequence[str]) -> dict[str, str]:
    """Image side (``"l"`` = the image's left, ``"r"`` = its right, frontal unmirrored face) that
    each label-name prefix ``l`` / ``r`` of a label space means: Helen's are the viewer's sides,
    CelebAMask-HQ's (and any other space's) the subject's own, i.e. mirrored."""
    return {"l": "l", "r": "r"} if tuple(classes) == HELEN_CLASSES else {"l": "r", "r": "l"}


CELEBAMASK_TO_HELEN: tuple[int, ...] = tuple(
    HELEN.get(_mirrored(name), HELEN["skin"] if name in ("l_ear", "r_ear") else 0) for name in CELEBAMASK_CLASSES
)
"""Map a CelebAMask-HQ label to Helen's 11 classes (ears count as skin; glasses, hat, earrings, neck, cloth
as background) — used to evaluate 19-class predictions with Helen's protocol. Sides cross:
CelebAMask-HQ ``l_eye`` (subject's left, image right) -> Helen ``r_eye`` (viewer's right)."""
