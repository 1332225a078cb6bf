"""CONVENTIONS.md "Bump maps (paper Eq. 5)": storage code
``phi(x) = clip(floor(127.5 + x / r * 127.5 + 0.5), 0, 255)`` (halves round up, ``phi(0) = 128``),
real-code inverse ``phi^{-1}(c) = (c - 127.5) / 127.5 * r`` with ``PHI_ZERO = 127.5`` -> 0,
round-trip error <= r / 255, ``d' = d + phi^{-1}(Phi)`` on the face only, and the sign: a code
below 127.5 is closer to the camera (a ridge). Values below are worked out by hand for r = 0.04 dm."""

from __future__ import annotations

import numpy as np
import torch

from occrecon.geometry.bump import PHI_ZERO, bump_offset, detailed_depth
from occrecon.synth.details import encode_bump

R = 0.04  # decimetres, the default bump_range


def test_storage_codes_by_hand() -> None:
    x = np.array([0.0, R, -R, 2 * R, -2 * R, 3 / 127.5 * R, -3 / 127.5 * R, 0.5 * R])
    # 127.5 + {0, 127.5, -127.5, clip, clip, 3 -> 130.5 half up, -3 -> 124.5 half up, 63.75 -> 191.25}
    assert encode_bump(x, R).tolist() == [128, 255, 0, 255, 0, 131, 125, 191]
    assert encode_bump(x, R).dtype == np.uint8


def test_decoding_by_hand_and_round_trip_bound() -> None:
    codes = torch.tensor([PHI_ZERO, 255.0, 0.0, 128.0, 191.25])
    torch.testing.assert_close(bump_offset(codes, R), torch.tensor([0.0, R, -R, R / 255, 0.5 * R]), atol=1e-7, rtol=0)
    x = torch.linspace(-R, R, 1001)
    decoded = bump_offset(torch.from_numpy(encode_bump(x, R)).float(), R)
    assert float((decoded - x).abs().max()) <= R / 255 + 1e-7


def test_detailed_depth_sign_and_face_mask() -> None:
    depth = torch.full((1, 1, 2, 2), 9.0)
    code = torch.tensor([[[[100.0, 200.0], [PHI_ZERO, 100.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    out = detailed_depth(depth, code, R, mask)
    assert out[0, 0, 0, 0] < 9.0  # code < 127.5: d' < d, closer to the camera (a ridge)
    assert out[0, 0, 0, 1] > 9.0  # code > 127.5: a furrow
    assert out[0, 0, 1, 0] == 9.0  # PHI_ZERO: d' = d exactly
    assert out[0, 0, 1, 1] == 9.0  # off the face: d' = d whatever the code
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(9.0 + (100.0 - 127.5) / 127.5 * R))
