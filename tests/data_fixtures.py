"""Writers of tiny data sets in exactly the official on-disk formats (and broken variants).

Every writer returns the root folder it filled. Images are small synthetic "faces" whose parts sit
where the annotations say, so tests can check geometry.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from datamodules.celebamask_hq import PARTS
from occrecon.labels import HELEN_CLASSES

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male "
    "Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()
LFW_ATTRIBUTES = (
    "Male|Asian|White|Black|Baby|Child|Youth|Middle Aged|Senior|Black Hair|Blond Hair|Brown Hair|Bald|No Eyewear|"
    "Eyeglasses|Sunglasses|Mustache|Smiling|Frowning|Chubby|Blurry|Harsh Lighting|Flash|Soft Lighting|Outdoor|"
    "Curly Hair|Wavy Hair|Straight Hair|Receding Hairline|Bangs|Sideburns|Fully Visible Forehead|Partially Visible "
    "Forehead|Obstructed Forehead|Bushy Eyebrows|Arched Eyebrows|Narrow Eyes|Eyes Open|Big Nose|Pointy Nose|Big Lips|"
    "Mouth Closed|Mouth Slightly Open|Mouth Wide Open|Teeth Not Visible|No Beard|Goatee|Round Jaw|Double Chin|"
    "Wearing Hat|Oval Face|Square Face|Round Face|Color Photo|Posed Photo|Attractive Man|Attractive Woman|Indian|"
    "Gray Hair|Bags Under Eyes|Heavy Makeup|Rosy Cheeks|Shiny Skin|Pale Skin|5 o' Clock Shadow|Strong Nose-Mouth "
    "Lines|Wearing Lipstick|Flushed Face|High Cheekbones|Brown Eyes|Wearing Earrings|Wearing Necktie|Wearing Necklace"
).split("|")


def save_image(path: Path, array: np.ndarray, fmt: str | None = None, **kwargs: object) -> Path:
    """Write ``array`` (uint8 ``[H, W, 3]``/``[H, W]`` or uint16 ``[H, W]``) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kwargs)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a truncated JPEG/PNG)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(16, int(len(data) * keep))])
    return path


def face_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random-coloured ``[H, W, 3]`` uint8 image."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    base = rng.uniform(60, 200, size=3)
    return np.clip(base + 40 * np.stack([xs, ys, xs * ys], -1), 0, 255).astype(np.uint8)


def landmarks68(center: tuple[float, float], radius: float) -> np.ndarray:
    """A plausible 68-point layout (jaw arc, brows, nose, eyes, mouth) in image-side order."""
    cx, cy = center
    t = np.linspace(np.pi, 0, 17)  # jaw from image-left to image-right
    jaw = np.stack([cx + radius * np.cos(t), cy + radius * 0.2 + radius * 0.8 * np.sin(t)], -1)
    brows = [
        (cx + radius * dx, cy - radius * 0.45) for dx in np.r_[np.linspace(-0.8, -0.2, 5), np.linspace(0.2, 0.8, 5)]
    ]
    bridge = [(cx, cy - radius * (0.3 - 0.12 * k)) for k in range(4)]
    nostrils = [(cx + radius * dx, cy + radius * 0.2) for dx in np.linspace(-0.2, 0.2, 5)]
    angles = np.array([np.pi, 2.3, 0.8, 0.0, -0.8, -2.3])

    def eye(ex: float) -> list[tuple[float, float]]:
        return [(ex + 0.18 * radius * np.cos(a), cy - 0.2 * radius - 0.08 * radius * np.sin(a)) for a in angles]

    mouth_angles = np.r_[np.linspace(np.pi, 0, 7), np.linspace(-0.5, -np.pi + 0.5, 5)]
    outer = [(cx + 0.4 * radius * np.cos(a), cy + 0.5 * radius - 0.15 * radius * np.sin(a)) for a in mouth_angles]
    inner_angles = np.r_[np.linspace(np.pi, 0, 5), np.linspace(-0.8, -np.pi + 0.8, 3)]
    inner = [(cx + 0.3 * radius * np.cos(a), cy + 0.5 * radius - 0.05 * radius * np.sin(a)) for a in inner_angles]
    points = np.concatenate(
        [jaw, brows, bridge, nostrils, eye(cx - 0.45 * radius), eye(cx + 0.45 * radius), outer, inner]
    )
    return points.astype(np.float64)


# --------------------------------------------------------------------------- Helen


def helen_labels(height: int, width: int) -> np.ndarray:
    """A label map with every Helen class in a block (Helen's "left" = the viewer's: on the image's left)."""
    labels = np.zeros((height, width), np.int64)
    labels[: height // 5] = 10  # hair
    labels[height // 5 :, width // 6 : 5 * width // 6] = 1  # skin
    h, w = height, width
    for name, (r0, c0) in {"l_brow": (0.3, 0.25), "r_brow": (0.3, 0.6), "l_eye": (0.4, 0.25), "r_eye": (0.4, 0.6),
                           "nose": (0.55, 0.45), "u_lip": (0.7, 0.4), "mouth": (0.75, 0.4), "l_lip": (0.8, 0.4)}.items():  # fmt: skip
        labels[int(r0 * h) : int(r0 * h) + max(1, h // 20), int(c0 * w) : int(c0 * w) + max(2, w // 8)] = (
            HELEN_CLASSES.index(name)
        )
    return labels


def write_helen(root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (24, 20)) -> Path:
    """``SmithCVPR2013_dataset_resized`` layout; names ``<9 digits>_<k>``; returns root."""
    counts = counts or {"exemplars.txt": 2, "tuning.txt": 1, "testing.txt": 1}
    number = 0
    for split_file, count in counts.items():
        lines = []
        for _ in range(count):
            number += 1
            name = f"{100000000 + number}_1"
            lines.append(f"{number} , {name}")
            save_image(root / "images" / f"{name}.jpg", face_image(*size, seed=number), quality=95)
            labels = helen_labels(*size)
            for k in range(len(HELEN_CLASSES)):
                soft = np.where(labels == k, 230, 10).astype(np.uint8)  # soft maps: never exactly 0/255
                save_image(root / "labels" / name / f"{name}_lbl{k:02d}.png", soft)
        (root / split_file).write_text("\n".join(lines) + "\n")
    return root


# --------------------------------------------------------------------------- CelebAMask-HQ

CELEBA_IDS = (0, 1, 2, 3, 2000, 2001)
CELEBA_ORIG = (100, 162769, 162770, 182636, 182637, 190000)  # train, train, val, val, test, test (0-based)


def celeba_parts(size: int) -> dict[str, np.ndarray]:
    """Binary masks (0/255) of a few parts; ``l_eye`` on the image's right (the subject's left, as in
    CelebAMask-HQ)."""
    parts = {name: np.zeros((size, size), np.uint8) for name in ("skin", "l_eye", "r_eye", "nose", "hair")}
    parts["skin"][size // 4 :, size // 5 : 4 * size // 5] = 255
    parts["r_eye"][size // 2 : size // 2 + 2, size // 4 : size // 4 + 3] = 255
    parts["l_eye"][size // 2 : size // 2 + 2, 3 * size // 4 - 3 : 3 * size // 4] = 255
    parts["nose"][5 * size // 8 : 5 * size // 8 + 2, size // 2 - 1 : size // 2 + 1] = 255
    parts["hair"][: size // 4] = 255
    return parts


def write_celebamask(
    root: Path, image_size: int = 32, mask_size: int = 16, glasses: tuple[int, ...] = (1, 2000)
) -> Path:
    """Official CelebAMask-HQ layout for :data:`CELEBA_IDS` (mapping + attributes); returns root."""
    mapping = ["idx orig_idx orig_file"]
    rows = [str(len(CELEBA_IDS)), " ".join(CELEBA_ATTRIBUTES)]
    for index, orig in zip(CELEBA_IDS, CELEBA_ORIG, strict=True):
        save_image(root / "CelebA-HQ-img" / f"{index}.jpg", face_image(image_size, image_size, seed=index), quality=95)
        for part, mask in celeba_parts(mask_size).items():
            save_image(root / "CelebAMask-HQ-mask-anno" / str(index // 2000) / f"{index:05d}_{part}.png", mask)
        mapping.append(f"{index} {orig} {orig + 1:06d}.jpg")
        values = ["1" if name == "Eyeglasses" and index in glasses else "-1" for name in CELEBA_ATTRIBUTES]
        rows.append(f"{index}.jpg  " + " ".join(values))
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(rows) + "\n")
    return root


def write_celeba_partition(root: Path, partitions: dict[str, int]) -> Path:
    """CelebA's ``list_eval_partition.txt`` for the given ``orig_file -> 0|1|2``."""
    path = root / "list_eval_partition.txt"
    path.write_text("".join(f"{name} {value}\n" for name, value in partitions.items()))
    return path


# --------------------------------------------------------------------------- 300W

W300_FOLDERS = (
    "afw",
    "helen/trainset",
    "lfpw/trainset",
    "helen/testset",
    "lfpw/testset",
    "ibug",
    "01_Indoor",
    "02_Outdoor",
)


def pts_text(points: np.ndarray) -> str:
    """A ``.pts`` file body (1-based Matlab convention: occrecon ``x + 0.5``)."""
    body = "\n".join(f"{x + 0.5:.3f} {y + 0.5:.3f}" for x, y in points)
    return f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n"


def write_300w(root: Path, per_folder: int = 1, size: int = 40) -> Path:
    """One image + ``.pts`` per 300W folder (png for the private set, jpg elsewhere); returns root."""
    for f, folder in enumerate(W300_FOLDERS):
        for k in range(per_folder):
            stem = {"01_Indoor": f"indoor_{k + 1:03d}", "02_Outdoor": f"outdoor_{k + 1:03d}"}.get(
                folder, f"image_{f}{k:03d}"
            )
            ext = ".png" if folder[0].isdigit() else ".jpg"
            save_image(root / folder / f"{stem}{ext}", face_image(size, size + 6, seed=f * 10 + k))
            points = landmarks68((size / 2 + 3, size / 2), size / 4)
            (root / folder / f"{stem}.pts").write_text(pts_text(points))
    return root


# --------------------------------------------------------------------------- AFLW


def write_aflw(root: Path, count: int = 10, size: int = 40, invisible: tuple[int, ...] = (1, 7)) -> Path:
    """``AFLWinfo_release.mat`` (data/mask_new/bbox/nameList/ra) + ``flickr/<k>/imageNNNNN.jpg``.

    Face ``i`` in ``invisible`` has point 18 (chin) not visible. ``ra`` is a fixed permutation.
    """
    data = np.zeros((count, 38))
    mask = np.ones((count, 19))
    bbox = np.zeros((count, 4))
    names = np.empty((count, 1), dtype=object)
    rng = np.random.default_rng(3)
    for i in range(count):
        points = rng.uniform(10, 30, size=(19, 2))
        data[i, :19], data[i, 19:] = points[:, 0] + 0.5, points[:, 1] + 0.5
        bbox[i] = [8, 32, 8, 32]
        name = f"{i % 3}/image{i:05d}.jpg"
        names[i, 0] = np.array([name])
        save_image(root / "flickr" / name, face_image(size, size, seed=i))
        if i in invisible:
            mask[i, 18] = 0
    ra = (np.arange(count)[::-1] + 1).reshape(1, count).astype(np.float64)  # 1-based, as stored by Matlab
    scipy.io.savemat(
        str(root / "AFLWinfo_release.mat"), {"data": data, "mask_new": mask, "bbox": bbox, "nameList": names, "ra": ra}
    )
    return root


# --------------------------------------------------------------------------- LFW

LFW_PEOPLE = ("Aaron_Eckhart", "Abel_Pacheco", "Ana_Guevara", "Zico")


def lfw_pair_lines(folds: int = 10, per_class: int = 2) -> list[str]:
    """``pairs.txt`` lines: header, then per fold ``per_class`` matched and mismatched lines."""
    lines = [f"{folds}\t{per_class}"]
    for fold in range(folds):
        for k in range(per_class):
            person = LFW_PEOPLE[(fold + k) % len(LFW_PEOPLE)]
            lines.append(f"{person}\t1\t2")
        for k in range(per_class):
            a, b = LFW_PEOPLE[(fold + k) % len(LFW_PEOPLE)], LFW_PEOPLE[(fold + k + 1) % len(LFW_PEOPLE)]
            lines.append(f"{a}\t{1 + k % 2}\t{b}\t{2 - k % 2}")
    return lines


def write_lfw(
    root: Path, folds: int = 10, per_class: int = 2, size: int = 25, eyeglasses: tuple[str, ...] = ("Abel_Pacheco",)
) -> Path:
    """``lfw/<Name>/<Name>_NNNN.jpg`` (2 images each), ``pairs.txt``, ``lfw_attributes.txt``.

    People in ``eyeglasses`` wear eyeglasses (image 1 and 2); ``Zico`` image 2 has no attribute row.
    """
    rows = ["# LFW attributes (Kumar et al.), tab separated", "\t".join(["#", "person", "imagenum", *LFW_ATTRIBUTES])]
    for p, person in enumerate(LFW_PEOPLE):
        for number in (1, 2):
            save_image(
                root / "lfw" / person / f"{person}_{number:04d}.jpg", face_image(size, size, seed=10 * p + number)
            )
            if person == "Zico" and number == 2:
                continue
            scores = {name: -1.0 for name in LFW_ATTRIBUTES}
            scores["Eyeglasses" if person in eyeglasses else "No Eyewear"] = 1.5
            rows.append(
                "\t".join([person.replace("_", " "), str(number), *(f"{scores[n]:.4f}" for n in LFW_ATTRIBUTES)])
            )
    (root / "pairs.txt").write_text("\n".join(lfw_pair_lines(folds, per_class)) + "\n")
    (root / "lfw_attributes.txt").write_text("\n".join(rows) + "\n")
    return root


def jpeg_with_exif_rotation(path: Path, array: np.ndarray, orientation: int = 6) -> Path:
    """Save a JPEG whose EXIF orientation tag asks viewers to rotate it (6 = 90 degrees clockwise)."""
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


__all__ = [name for name in dir() if not name.startswith("_")] + ["PARTS"]
