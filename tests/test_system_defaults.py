"""System defaults: a partial section given to a system keeps every other default (one merge,
:func:`occrecon.config.signature.merged_defaults`), and a misspelt key is a ConfigError."""

from __future__ import annotations

import pytest
import torch

from occrecon.config.schema import OptimizerConfig
from occrecon.config.signature import merged_defaults
from occrecon.errors import ConfigError
from occrecon.systems.edge_lines import EdgeLinesSystem
from occrecon.systems.parsing import ParsingSystem
from occrecon.systems.reconstruction import ReconstructionSystem

TINY = {
    "parsing": lambda **kw: ParsingSystem(width=4, depth=18, **kw),
    "edge_lines": lambda **kw: EdgeLinesSystem(width=8, num_stacks=1, hourglass_depth=1, message_kernel=3, **kw),
    "reconstruction": lambda **kw: ReconstructionSystem(width=4, depth=18, image_size=32, identity="none", **kw),
}


def test_merge_is_recursive_and_leaves_the_defaults_alone() -> None:
    defaults = OptimizerConfig()
    merged = merged_defaults(defaults, {"lr": 0.01, "betas": [0.5, 0.6]})
    assert merged == {"name": "adam", "lr": 0.01, "weight_decay": 0.0, "betas": [0.5, 0.6], "momentum": 0.9}
    assert defaults.lr == 1e-3 and defaults.betas == [0.9, 0.999]
    assert merged_defaults(defaults, None) == {"name": "adam", "lr": 1e-3, "weight_decay": 0.0,
                                               "betas": [0.9, 0.999], "momentum": 0.9}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(TINY))
def test_partial_optimizer_section_keeps_the_other_defaults(stage: str) -> None:
    system = TINY[stage](optimizer={"lr": 0.0123}, scheduler={"name": "none"})
    optimizer = system.configure_optimizers()
    first = optimizer[0] if isinstance(optimizer, list) else optimizer
    opt = first["optimizer"]
    assert isinstance(opt, torch.optim.Adam)  # the default name, not a KeyError
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0123)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert system.scheduler_cfg["interval"] == "epoch"


WEIGHTS = {  # (the weight set, the changed term, an untouched term and its documented default)
    "parsing": (lambda s: {"edge": s.criterion.edge_weight, "parse": s.criterion.parse_weight}, "edge", "parse", 1.0),
    "edge_lines": (lambda s: {"landmarks": s.g_loss.landmark_weight, "heatmap": s.heatmap_weight},
                   "landmarks", "heatmap", 10.0),
    "reconstruction": (lambda s: s.weights, "land", "phot", 1.4),  # lambda_phot of the paper
}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(TINY))
def test_partial_loss_weights_keep_the_other_weights(stage: str) -> None:
    read, term, other, default = WEIGHTS[stage]
    weights = read(TINY[stage](loss={"weights": {term: 0.25}}))
    assert weights[term] == 0.25
    assert weights[other] == default


def test_a_misspelt_key_names_itself() -> None:
    with pytest.raises(ConfigError, match=r"model\.optimizer\.lrr: unknown key"):
        TINY["parsing"](optimizer={"lrr": 0.1})
    with pytest.raises(ConfigError, match=r"model\.loss\.weights\.nope: unknown key"):
        TINY["edge_lines"](loss={"weights": {"nope": 1.0}})
