"""``occrecon.nets.norm.InstanceNorm2d`` (group norm with one group per channel) against a float64
computation from the definition and against ``torch.nn.InstanceNorm2d``; the synthesis generator's
once-per-resolution guide resize against the per-block resize."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from occrecon.nets.norm import InstanceNorm2d
from occrecon.nets.synthesis import SPADE, resize_guide


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_matches_the_definition(channels_last, affine):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 6, generator=gen) * 3 + 1
    norm = InstanceNorm2d(5, affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(torch.rand(5, generator=gen) + 0.5)
            norm.bias.copy_(torch.randn(5, generator=gen))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = norm(x.contiguous(memory_format=fmt))
    xd = x.double()
    mean = xd.mean(dim=(2, 3), keepdim=True)
    var = ((xd - mean) ** 2).mean(dim=(2, 3), keepdim=True)  # biased, as InstanceNorm
    want = (xd - mean) / torch.sqrt(var + 1e-5)
    if affine:
        want = want * norm.weight.double().view(1, -1, 1, 1) + norm.bias.double().view(1, -1, 1, 1)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    assert out.is_contiguous(memory_format=fmt)


def test_instance_norm_is_a_drop_in_for_torch():
    ours, theirs = InstanceNorm2d(4, affine=True), nn.InstanceNorm2d(4, affine=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 4, 9, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g = torch.randn(3, 4, 9, 8, generator=torch.Generator().manual_seed(2))
    grads = [torch.autograd.grad((m(x) * g).sum(), [x, m.weight, m.bias]) for m in (ours, theirs)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_guide_resized_once_equals_resized_per_block():
    gen = torch.Generator().manual_seed(0)
    guide = (torch.rand(2, 6, 32, 32, generator=gen) > 0.5).float()
    x = torch.randn(2, 8, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last)
    small = resize_guide(guide, x)
    assert torch.equal(small, F.interpolate(guide, size=(8, 8), mode="nearest"))
    assert small.is_contiguous(memory_format=torch.channels_last)
    spade = SPADE(8, 6, 4).eval()
    with torch.no_grad():
        torch.testing.assert_close(spade(x, small), spade(x, guide), rtol=0, atol=0)
