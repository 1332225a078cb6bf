"""Face detection and 68-point landmarks on ordinary photos (face-api ports, CPU or GPU).

Coordinates. Boxes ``(x0, y0, x1, y1)`` and landmarks ``(x, y)`` are in ``CONVENTIONS.md`` pixel
coordinates of the photo (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``). face-api resizes with
tfjs' legacy bilinear mapping (output pixel ``k`` samples input position ``k * n / size`` in
integer-centre coordinates), so its raw numbers are integer-centre coordinates: the ports convert
them by ``+0.5`` (:data:`FACE_API_TO_CONVENTIONS`). ``face_api_*`` functions return face-api's
own numbers (for comparison with the original).

Pipeline (as ``faceapi.detectAllFaces(img, new TinyFaceDetectorOptions()).withFaceLandmarks()``):
pad the photo to a square (bottom/right), resize to ``input_size``, run the detector, decode the
5 anchors per cell (sigmoid offsets, exp sizes), keep objectness ``> score_threshold``, greedy
NMS at IoU 0.4; then crop each box (clipped to the photo and floored, like
``extractFaceTensors``), centre-pad it to a square, resize to 112 px and regress 68 points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from occrecon.errors import ShapeError
from occrecon.faces.nets import (
    DETECTOR_ANCHORS,
    SSD_INPUT_SIZE,
    FaceLandmark68Net,
    TinyFaceDetectorNet,
    resize_bilinear_tf,
)

FACE_API_TO_CONVENTIONS = 0.5
"""Add to face-api's (integer-centre) coordinates to get ``CONVENTIONS.md`` coordinates."""
IOU_THRESHOLD = 0.4


@dataclass
class Face:
    """One detected face in photo coordinates (``CONVENTIONS.md``).

    Attributes:
        box: ``(x0, y0, x1, y1)`` float pixels.
        score: detector objectness in ``[0, 1]``.
        landmarks: ``[68, 2]`` float32 ``(x, y)`` (iBUG 68 order), or ``None`` before landmarking.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> float:
        """The box's shorter side in pixels (what ``min_face_size`` compares against)."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` uint8/float RGB in ``[0, 255]`` (numpy or torch) -> ``[1, 3, H, W]`` float32."""
    array = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if array.dim() == 2:
        array = array.unsqueeze(-1).expand(-1, -1, 3)
    if array.dim() != 3 or array.shape[-1] not in (3, 4):
        raise ShapeError("image", "[H, W, 3] RGB", tuple(array.shape))
    return array[..., :3].permute(2, 0, 1).unsqueeze(0).float()


def _square_pad(x: torch.Tensor, centre: bool) -> torch.Tensor:
    """face-api ``padToSquare``: zero-pad the shorter side; ``centre`` splits it (extra row first)."""
    h, w = x.shape[-2:]
    diff = abs(h - w)
    if diff == 0:
        return x
    after = math.floor(diff * 0.5 + 0.5) if centre else diff  # JS Math.round
    before = diff - after
    pads = (before, after, 0, 0) if h > w else (0, 0, before, after)
    return torch.nn.functional.pad(x, pads)


def _to_input(x: torch.Tensor, size: int, centre: bool) -> torch.Tensor:
    x = _square_pad(x, centre)
    return x if x.shape[-1] == size else resize_bilinear_tf(x, size)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = IOU_THRESHOLD) -> list[int]:
    """Greedy non-maximum suppression (face-api ``nonMaxSuppression``): indices, best first.

    ``boxes``: ``[N, 4]`` ``(x0, y0, x1, y1)``; a box is dropped when its IoU with a kept one is
    ``> iou_threshold``.
    """
    order = list(np.argsort(scores, kind="stable"))  # ascending; pop() takes the best
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order:
        best = order.pop()
        keep.append(int(best))
        rest = np.array(order, dtype=np.int64)
        if rest.size == 0:
            break
        w = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        iou = inter / (area[best] + area[rest] - inter)
        order = [int(i) for i, v in zip(rest, iou, strict=True) if v <= iou_threshold]
    return keep


class FaceDetector:
    """Tiny face detector + 68-point landmarks (converted face-api weights from the asset cache).

    Args:
        input_size: tiny detector input side (multiple of 32; face-api's default 416). Larger
            finds smaller faces, slower. The SSD detector always works at 512.
        score_threshold: minimum objectness (face-api default 0.5).
        min_face_size: faces whose box's shorter side is below this many photo pixels are dropped.
        landmark_model: ``"face_landmark_68"`` (default) or ``"face_landmark_68_tiny"``.
        device: torch device for both networks.
        detector, landmarker: already built networks (tests); default: loaded from the cache.
        kind: ``"tiny"`` (tiny face detector, 190 KB) or ``"ssd"`` (SSD MobileNet v1, 5.6 MB;
            face-api's ``ssdMobilenetv1``: NMS at IoU 0.5, at most 100 faces).

    Raises:
        MissingAssetError: the converted weights are not cached (the message says how to fetch them).
    """

    def __init__(
        self,
        input_size: int = 416,
        score_threshold: float = 0.5,
        min_face_size: float = 40.0,
        landmark_model: str = "face_landmark_68",
        device: str | torch.device = "cpu",
        detector: TinyFaceDetectorNet | None = None,
        landmarker: FaceLandmark68Net | None = None,
        kind: str = "tiny",
    ):
        from occrecon.assets.face_api import load_face_model

        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        if kind not in ("tiny", "ssd"):
            raise ValueError(f"detector kind must be 'tiny' or 'ssd', got {kind!r}")
        self.kind = kind
        self.input_size, self.score_threshold, self.min_face_size = input_size, score_threshold, min_face_size
        self.device = torch.device(device)
        name = "tiny_face_detector" if kind == "tiny" else "ssd_mobilenetv1"
        self.detector = (detector or load_face_model(name)).to(self.device).eval()
        self.landmarker = (landmarker or load_face_model(landmark_model)).to(self.device).eval()

    # -- face-api's own numbers -------------------------------------------------------------------
    @torch.no_grad()
    def face_api_raw(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The detector's raw output ``[S, S, 5, 5]`` (tfjs ``forward(img, inputSize)`` reshaped)."""
        x = _to_input(image_tensor(image).to(self.device), self.input_size, centre=False)
        return self.detector(x)[0].cpu()

    @torch.no_grad()
    def face_api_ssd(self, image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The SSD's raw ``(boxes [5118, 4] (ymin, xmin, ymax, xmax), scores [5118])`` (tfjs ``forward``)."""
        x = _to_input(image_tensor(image).to(self.device), SSD_INPUT_SIZE, centre=False)
        boxes, scores = self.detector(x)
        return boxes[0].double().cpu().numpy(), scores[0].double().cpu().numpy()

    def _ssd_detect(self, image: np.ndarray | torch.Tensor) -> list[tuple[tuple[float, float, float, float], float]]:
        h, w = np.asarray(image).shape[:2]
        boxes, scores = self.face_api_ssd(image)
        keep = np.nonzero(scores > self.score_threshold)[0]
        yx = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        xyxy = yx[keep][:, [1, 0, 3, 2]]
        picked = [int(keep[i]) for i in nms(xyxy, scores[keep], 0.5)][:100]
        scale = SSD_INPUT_SIZE / max(h, w)
        pad_x, pad_y = SSD_INPUT_SIZE / round(w * scale), SSD_INPUT_SIZE / round(h * scale)
        out = []
        for i in picked:
            top, bottom = max(0.0, boxes[i, 0]) * pad_y, min(1.0, boxes[i, 2]) * pad_y
            left, right = max(0.0, boxes[i, 1]) * pad_x, min(1.0, boxes[i, 3]) * pad_x
            out.append(((left * w, top * h, (right - left) * w, (bottom - top) * h), float(scores[i])))
        return out

    def face_api_detect(self, image: np.ndarray | torch.Tensor) -> list[tuple[tuple[float, float, float, float], float]]:
        """face-api ``detectAllFaces``: ``[((x, y, width, height), score)]`` in face-api coordinates."""
        if self.kind == "ssd":
            return self._ssd_detect(image)
        h, w = np.asarray(image).shape[:2]
        raw = self.face_api_raw(image).double()
        cells = raw.shape[0]
        scale = self.input_size / max(h, w)
        cx_f, cy_f = self.input_size / round(w * scale), self.input_size / round(h * scale)
        score = _sigmoid(raw[..., 4])
        rows, cols, anchors = torch.nonzero(score > self.score_threshold, as_tuple=True)
        if rows.numel() == 0:
            return []
        anchor_wh = torch.tensor(DETECTOR_ANCHORS, dtype=torch.float64)[anchors]
        t = raw[rows, cols, anchors]
        ctx = (cols + _sigmoid(t[:, 0])) / cells * cx_f
        cty = (rows + _sigmoid(t[:, 1])) / cells * cy_f
        bw = torch.exp(t[:, 2]) * anchor_wh[:, 0] / cells * cx_f
        bh = torch.exp(t[:, 3]) * anchor_wh[:, 1] / cells * cy_f
        rel = torch.stack([ctx - bw / 2, cty - bh / 2, ctx + bw / 2, cty + bh / 2], 1).numpy()
        scores = score[rows, cols, anchors].numpy()
        keep = nms(rel * self.input_size, scores)
        return [((rel[i, 0] * w, rel[i, 1] * h, (rel[i, 2] - rel[i, 0]) * w, (rel[i, 3] - rel[i, 1]) * h), float(scores[i]))
                for i in keep]  # fmt: skip

    @torch.no_grad()
    def face_api_landmarks(self, crops: list[torch.Tensor]) -> np.ndarray:
        """face-api ``detectLandmarks`` on crops ``[1, 3, h, w]``: ``[N, 68, 2]`` crop pixels (integer-centre)."""
        if not crops:
            return np.zeros((0, 68, 2), np.float32)
        size = FaceLandmark68Net.INPUT_SIZE
        batch = torch.cat([_to_input(c.to(self.device), size, centre=True) for c in crops])
        rel = self.landmarker(batch).double().cpu()  # fractions of the padded 112 px square
        out = []
        for crop, points in zip(crops, rel, strict=True):
            h, w = crop.shape[-2:]
            s = size / max(h, w)
            sw, sh = w * s, h * s
            pad = torch.tensor([abs(sw - sh) / 2 if sw < sh else 0.0, abs(sw - sh) / 2 if sh < sw else 0.0])
            out.append(((points * size - pad) / torch.tensor([sw, sh])) * torch.tensor([w, h], dtype=torch.float64))
        return torch.stack(out).numpy()

    # -- photo-frame API ----------------------------------------------------------------------------
    def crop_box(self, box_xywh: tuple[float, float, float, float], h: int, w: int) -> tuple[int, int, int, int]:
        """face-api ``Box.clipAtImageBorders`` (clip, then floor): integer ``(x, y, width, height)``."""
        x, y, bw, bh = box_xywh
        cx, cy = max(x, 0.0), max(y, 0.0)
        cw, ch = min(x + bw - cx, w - cx), min(y + bh - cy, h - cy)
        return math.floor(cx), math.floor(cy), math.floor(cw), math.floor(ch)

    def detect(self, image: np.ndarray | torch.Tensor, landmarks: bool = True) -> list[Face]:
        """All faces of ``image`` (``[H, W, 3]`` RGB, ``[0, 255]``), best score first.

        Faces smaller than ``min_face_size`` are dropped; with ``landmarks`` each face gets its 68
        points. Coordinates follow ``CONVENTIONS.md`` (see the module docstring).
        """
        h, w = np.asarray(image).shape[:2]
        found = [(b, s) for b, s in self.face_api_detect(image) if min(b[2], b[3]) >= self.min_face_size]
        faces = [Face((b[0] + 0.5, b[1] + 0.5, b[0] + b[2] + 0.5, b[1] + b[3] + 0.5), s) for b, s in found]
        if landmarks and faces:
            full = image_tensor(image)
            boxes = [self.crop_box(b, h, w) for b, _ in found]
            crops = [full[..., y : y + ch, x : x + cw] for x, y, cw, ch in boxes]
            points = self.face_api_landmarks(crops)
            for face, (x, y, _, _), p in zip(faces, boxes, points, strict=True):
                face.landmarks = (p + np.array([x, y]) + FACE_API_TO_CONVENTIONS).astype(np.float32)
        return faces
