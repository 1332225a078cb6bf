"""PyTorch ports of face-api's tiny face detector and 68-point landmark networks.

Both follow ``@vladmandic/face-api`` 1.7.15 (``src/tinyYolov2``, ``src/tinyFaceDetector``,
``src/faceFeatureExtractor``, ``src/faceLandmarkNet``) layer by layer, including TensorFlow's
``'same'`` padding (asymmetric: the extra row/column goes bottom/right) and tfjs'
``resizeBilinear(alignCorners=false, halfPixelCenters=false)`` input resize, so that the
converted weights (:mod:`occrecon.assets.face_api`) reproduce the original outputs.

State-dict keys are the tfjs weight names with ``/`` -> ``.`` and the leaf renamed
(``filters`` -> ``weight``, ``depthwise_filter`` -> ``depthwise.weight``, ``pointwise_filter`` ->
``pointwise.weight``, ``fc/weights`` -> ``fc.weight``); see :func:`occrecon.assets.face_api.torch_name`.

Inputs are float RGB images in ``[0, 255]``, ``[B, 3, H, W]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DETECTOR_MEAN_RGB = (117.001, 114.697, 97.404)
LANDMARK_MEAN_RGB = (122.782, 117.001, 104.298)
DETECTOR_ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061),
                    (4.266906, 5.178857), (9.041765, 10.66308))  # fmt: skip
"""Tiny face detector anchor (width, height) in grid cells (``tinyFaceDetector/const.ts``)."""


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow ``'same'`` padding for a square kernel: total ``max((ceil(n/s)-1)s + k - n, 0)``,
    ``total // 2`` before and the rest after (bottom/right)."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


def resize_bilinear_tf(x: torch.Tensor, size: int) -> torch.Tensor:
    """tfjs ``resizeBilinear(x, [size, size], alignCorners=false, halfPixelCenters=false)``.

    Output pixel ``i`` samples the input at ``i * n / size`` (the legacy asymmetric mapping),
    clamped to the last pixel. ``x``: ``[B, C, H, W]``.
    """
    out = x
    for dim, n in ((-2, x.shape[-2]), (-1, x.shape[-1])):
        src = torch.arange(size, dtype=torch.float64) * (n / size)
        lo = src.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        frac = (src - lo.double()).to(x.dtype).to(x.device)
        shape = [1] * out.dim()
        shape[dim] = size
        frac = frac.view(shape)
        out = out.index_select(dim, lo.to(x.device)) * (1 - frac) + out.index_select(dim, hi.to(x.device)) * frac
    return out


class SeparableConv(nn.Module):
    """tfjs ``separableConv2d`` (depthwise 3x3, pointwise 1x1, no biases) plus one bias."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, stride: int = 1, same: bool = True) -> torch.Tensor:
        x = pad_same(x, 3, stride) if same else F.pad(x, (1, 1, 1, 1))
        x = F.conv2d(x, self.depthwise.weight, stride=stride, groups=self.depthwise.groups)
        return self.pointwise(x) + self.bias.view(1, -1, 1, 1)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.10000000149011612)


class TinyFaceDetectorNet(nn.Module):
    """face-api's ``TinyFaceDetector`` (tiny-YOLOv2 with separable convolutions), 1 class.

    ``forward`` takes ``[B, 3, S, S]`` RGB in ``[0, 255]`` already padded/resized to the input size
    ``S`` (a multiple of 32) and returns the raw grid ``[B, S/32, S/32, 5 anchors, 5]``
    (``tx, ty, tw, th, objectness logit``), the tfjs output reshaped.
    """

    CHANNELS = (16, 32, 64, 128, 256, 512)

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 16, 3)
        for i in range(1, 6):
            setattr(self, f"conv{i}", SeparableConv(self.CHANNELS[i - 1], self.CHANNELS[i]))
        self.conv8 = nn.Conv2d(512, 25, 1)
        self.register_buffer("mean", torch.tensor(DETECTOR_MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _leaky(self.conv0((x - self.mean) / 255.0))
        for i in range(1, 6):
            out = F.max_pool2d(pad_same(out, 2, 2, float("-inf")), 2, 2)
            out = _leaky(getattr(self, f"conv{i}")(out, same=False))
        out = F.max_pool2d(pad_same(out, 2, 1, float("-inf")), 2, 1)
        out = self.conv8(out)  # [B, 25, S, S]
        b, _, h, w = out.shape
        return out.permute(0, 2, 3, 1).reshape(b, h, w, 5, 5)


class DenseBlock(nn.Module):
    """face-api ``denseBlock3`` / ``denseBlock4``: densely connected separable convolutions."""

    def __init__(self, c_in: int, c_out: int, depth: int, first: bool = False):
        super().__init__()
        self.first, self.depth = first, depth
        self.conv0 = nn.Conv2d(c_in, c_out, 3, stride=2) if first else SeparableConv(c_in, c_out)
        for i in range(1, depth):
            setattr(self, f"conv{i}", SeparableConv(c_out, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv0(pad_same(x, 3, 2)) if self.first else self.conv0(x, stride=2))
        outs = [out]
        for i in range(1, self.depth):
            inp = outs[0] if i == 1 else F.relu(sum(outs))
            outs.append(getattr(self, f"conv{i}")(inp))
        return F.relu(sum(outs))


class FaceLandmark68Net(nn.Module):
    """face-api ``FaceLandmark68Net`` (``tiny=False``, 4 dense blocks of 4, 256 features) or
    ``FaceLandmark68TinyNet`` (``tiny=True``, 3 dense blocks of 3, 128 features).

    ``forward``: ``[B, 3, 112, 112]`` RGB in ``[0, 255]`` (centre-padded to square and resized)
    -> ``[B, 68, 2]`` ``(x, y)`` as fractions of the 112 px input.
    """

    INPUT_SIZE = 112

    def __init__(self, tiny: bool = False):
        super().__init__()
        self.tiny = tiny
        channels = (32, 64, 128) if tiny else (32, 64, 128, 256)
        depth = 3 if tiny else 4
        c_in = 3
        for i, c in enumerate(channels):
            setattr(self, f"dense{i}", DenseBlock(c_in, c, depth, first=i == 0))
            c_in = c
        self.num_blocks = len(channels)
        self.fc = nn.Linear(c_in, 136)
        self.register_buffer("mean", torch.tensor(LANDMARK_MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x - self.mean) / 255.0
        for i in range(self.num_blocks):
            out = getattr(self, f"dense{i}")(out)
        pool = 14 if self.tiny else 7  # tf.avgPool(out, [k, k], [2, 2], 'valid') over the whole map
        out = F.avg_pool2d(out, pool, 2).flatten(1)
        return self.fc(out).view(-1, 68, 2)


# --- SSD MobileNet v1 (face-api ``ssdMobilenetv1``) --------------------------------------------------
SSD_INPUT_SIZE = 512
_SSD_PAIRS = ((32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512),
              (512, 512), (512, 512), (512, 512), (512, 1024), (1024, 1024))  # fmt: skip
_SSD_PREDICTION = ((1, 1024, 256), (3, 256, 512), (1, 512, 128), (3, 128, 256), (1, 256, 128), (3, 128, 256),
                   (1, 256, 64), (3, 64, 128))  # fmt: skip
_SSD_HEADS = ((512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6))  # (channels in, anchors per cell)


def ssd_weight_shapes() -> dict[str, tuple[int, ...]]:
    """tfjs names and shapes of the SSD weights this port uses (tfjs layouts, kept as they are)."""
    shapes: dict[str, tuple[int, ...]] = {
        "MobilenetV1/Conv2d_0_pointwise/weights": (3, 3, 3, 32),
        "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset": (32,),
    }
    for i, (c_in, c_out) in enumerate(_SSD_PAIRS, start=1):
        p = f"MobilenetV1/Conv2d_{i}_depthwise"
        shapes[f"{p}/depthwise_weights"] = (3, 3, c_in, 1)
        for leaf in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{p}/BatchNorm/{leaf}"] = (c_in,)
        shapes[f"MobilenetV1/Conv2d_{i}_pointwise/weights"] = (1, 1, c_in, c_out)
        shapes[f"MobilenetV1/Conv2d_{i}_pointwise/convolution_bn_offset"] = (c_out,)
    for i, (k, c_in, c_out) in enumerate(_SSD_PREDICTION):
        shapes[f"Prediction/Conv2d_{i}_pointwise/weights"] = (k, k, c_in, c_out)
        shapes[f"Prediction/Conv2d_{i}_pointwise/convolution_bn_offset"] = (c_out,)
    for i, (c_in, anchors) in enumerate(_SSD_HEADS):
        for head, per in (("BoxEncodingPredictor", 4), ("ClassPredictor", 3)):
            shapes[f"Prediction/BoxPredictor_{i}/{head}/weights"] = (1, 1, c_in, anchors * per)
            shapes[f"Prediction/BoxPredictor_{i}/{head}/biases"] = (anchors * per,)
    shapes["Output/extra_dim"] = (1, 5118, 4)
    return shapes


def _hwio(w: torch.Tensor) -> torch.Tensor:
    return w.permute(3, 2, 0, 1)


class SsdMobilenetV1Net(nn.Module):
    """face-api ``SsdMobilenetv1`` (MobileNet v1 + 6 SSD heads, 5118 anchors stored in the weights).

    Parameters keep face-api's names (``params["MobilenetV1/Conv2d_1_depthwise/depthwise_weights"]``)
    and tfjs layouts; ``forward`` permutes them. Input ``[B, 3, 512, 512]`` RGB in ``[0, 255]``
    (padded/resized like the tiny detector's input); output ``(boxes [B, 5118, 4]`` as
    ``(ymin, xmin, ymax, xmax)`` fractions of the padded square, ``scores [B, 5118])``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.params = nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(shape), requires_grad=False) for name, shape in ssd_weight_shapes().items()}
        )

    def _pointwise(self, x: torch.Tensor, prefix: str, stride: int) -> torch.Tensor:
        w = self.params[f"{prefix}/weights"]
        out = F.conv2d(pad_same(x, w.shape[0], stride), _hwio(w), stride=stride)
        return (out + self.params[f"{prefix}/convolution_bn_offset"].view(1, -1, 1, 1)).clamp(0, 6)

    def _depthwise(self, x: torch.Tensor, i: int, stride: int) -> torch.Tensor:
        p = f"MobilenetV1/Conv2d_{i}_depthwise"
        w = self.params[f"{p}/depthwise_weights"].permute(2, 3, 0, 1)  # [3, 3, C, 1] -> [C, 1, 3, 3]
        out = F.conv2d(pad_same(x, 3, stride), w, stride=stride, groups=w.shape[0])
        g = {k: self.params[f"{p}/BatchNorm/{k}"].view(1, -1, 1, 1) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
        out = (out - g["moving_mean"]) / torch.sqrt(g["moving_variance"] + 0.0010000000474974513) * g["gamma"] + g["beta"]
        return out.clamp(0, 6)

    def _head(self, x: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        outs = []
        for head, per in (("BoxEncodingPredictor", 4), ("ClassPredictor", 3)):
            p = f"Prediction/BoxPredictor_{i}/{head}"
            y = F.conv2d(x, _hwio(self.params[f"{p}/weights"]), self.params[f"{p}/biases"])
            outs.append(y.permute(0, 2, 3, 1).reshape(x.shape[0], -1, per))  # NHWC order, like tfjs' reshape
        return outs[0], outs[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._pointwise(x / 127.5 - 1.0, "MobilenetV1/Conv2d_0_pointwise", 2)
        conv11 = out
        for i in range(1, 14):
            out = self._depthwise(out, i, 2 if i in (2, 4, 6, 12) else 1)
            out = self._pointwise(out, f"MobilenetV1/Conv2d_{i}_pointwise", 1)
            if i == 11:
                conv11 = out
        feats, p = [conv11, out], out
        for i in range(8):
            p = self._pointwise(p, f"Prediction/Conv2d_{i}_pointwise", 2 if i % 2 else 1)
            if i % 2:
                feats.append(p)
        heads = [self._head(f, i) for i, f in enumerate(feats)]
        enc = torch.cat([h[0] for h in heads], 1)
        cls = torch.cat([h[1] for h in heads], 1)
        anchors = self.params["Output/extra_dim"][0]
        size = anchors[:, 2:] - anchors[:, :2]
        centre = anchors[:, :2] + size / 2
        half = torch.exp(enc[..., 2:] / 5) * size / 2
        mid = enc[..., :2] / 10 * size + centre
        return torch.cat([mid - half, mid + half], -1), torch.sigmoid(cls[..., 1])
