"""CONVENTIONS.md "Randomness": per-sample generators ``torch_generator(seed, sample_index)``, never
the global RNG, so a sample does not depend on the order (or the worker) in which it is made."""

from __future__ import annotations

import torch

from occrecon.facemodel.layout import CoefficientLayout
from occrecon.facemodel.sampling import random_coefficients
from occrecon.utils.seeding import numpy_generator, torch_generator


def draw(seed: int, index: int) -> torch.Tensor:
    return random_coefficients(CoefficientLayout.paper(6, 4, 5), 1, torch_generator(seed, index))


def test_a_sample_is_the_same_in_any_order_and_whatever_the_global_rng() -> None:
    forward = [draw(0, i) for i in range(4)]
    torch.manual_seed(123)
    torch.rand(1000)  # disturb the global RNG
    backward = [draw(0, i) for i in reversed(range(4))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(forward[0], forward[1])  # samples differ from each other
    assert not torch.equal(draw(0, 2), draw(1, 2))  # and the seed matters


def test_keys_are_not_merely_concatenated() -> None:
    """(1, 23) and (12, 3) are different keys; so are int 5 and str "5"."""
    assert not torch.equal(torch.rand(4, generator=torch_generator(1, 23)), torch.rand(4, generator=torch_generator(12, 3)))
    assert numpy_generator(0, 5).random() != numpy_generator(0, "5").random()
