"""SynthesisSystem: G/D step alternation as configured, toggling, DDP guard, frozen networks
switched off with their reason, EMA saved and used, one tiny CLI fit on a fresh tree."""

from __future__ import annotations

import types
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader

from occrecon.config.load import load_config
from occrecon.errors import ConfigError, MissingAssetError
from occrecon.evaluation.synthesis_steps import random_batch, train_step
from occrecon.systems.synthesis import SynthesisSystem
from occrecon.training import run_command
from tests.test_system_parsing import make_synth_root

REPO = Path(__file__).resolve().parents[1]
SMALL = {"width": 8, "num_blocks": 1, "identity": "none", "image_log_every_n_steps": 0,
         "discriminator": {"num_layers": 2, "num_scales": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth_root(tmp_path_factory)


def samples(count: int, size: int = 32) -> list[dict[str, torch.Tensor]]:
    batch = random_batch(count, size, seed=1)
    return [{k: v[i] for k, v in batch.items()} for i in range(count)]


def trainer(**kwargs: object) -> L.Trainer:
    options = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False, "limit_val_batches": 0, **kwargs}  # fmt: skip
    return L.Trainer(**options)


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"]) if optimizer.state else 0


@pytest.mark.parametrize(("g_every", "d_every", "g_steps", "d_steps"), [(1, 1, 6, 6), (1, 2, 6, 3), (3, 1, 2, 6)])
def test_generator_and_discriminator_steps_alternate_as_configured(
    g_every: int, d_every: int, g_steps: int, d_steps: int
) -> None:
    system = SynthesisSystem(**SMALL, generator_every=g_every, discriminator_every=d_every)
    fit = trainer(max_epochs=1)
    fit.fit(system, train_dataloaders=DataLoader(samples(6), batch_size=1))
    g_opt, d_opt = (o.optimizer for o in fit.optimizers) if hasattr(fit.optimizers[0], "optimizer") else fit.optimizers
    assert (adam_steps(g_opt), adam_steps(d_opt)) == (g_steps, d_steps)
    assert int(system.batches_seen) == 6
    assert fit.global_step == g_steps + d_steps  # Lightning counts every optimizer.step()
    assert int(system.generator_ema.n_averaged) == g_steps


def test_generator_step_leaves_the_discriminator_alone() -> None:
    """D's learning rate 0: any change of D would have come from G's loss leaking into D."""
    system = SynthesisSystem(**{**SMALL, "discriminator": {**SMALL["discriminator"], "optimizer": {"lr": 0.0}}})
    before_d = {k: v.clone() for k, v in system.discriminator.state_dict().items() if "original" in k}
    before_g = [p.detach().clone() for p in system.generator.parameters()]
    trainer(max_epochs=1).fit(system, train_dataloaders=DataLoader(samples(2), batch_size=1))
    after_d = {k: v for k, v in system.discriminator.state_dict().items() if "original" in k}
    assert before_d and all(torch.equal(before_d[k], after_d[k]) for k in before_d)
    assert sum(not torch.equal(a, b) for a, b in zip(before_g, system.generator.parameters(), strict=True)) > 0


def test_no_discriminator_steps_when_no_term_uses_it() -> None:
    system = SynthesisSystem(**SMALL, loss={"weights": {"adversarial": 0.0, "feature_matching": 0.0}})
    fit = trainer(max_epochs=1)
    fit.fit(system, train_dataloaders=DataLoader(samples(3), batch_size=1))
    assert fit.global_step == 3


def test_plain_ddp_is_refused_with_the_fix_in_the_message() -> None:
    system = SynthesisSystem(**SMALL)
    system.trainer = types.SimpleNamespace(strategy=DDPStrategy(), world_size=2)  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="ddp_find_unused_parameters_true"):
        system.setup("validate")


def test_unavailable_networks_switch_their_terms_off_with_the_reason() -> None:
    system = SynthesisSystem(**SMALL)
    weights = system.build_frozen_networks()
    assert weights["parsing"] == 0.0 and "parsing_ckpt" in system.disabled["parsing"]
    assert weights["identity"] == 0.0 and "none" in system.disabled["identity"]
    assert weights["perceptual"] == 0.0 and "VGG" in system.disabled["perceptual"]
    assert weights["l1"] == 1.0 and weights["adversarial"] == 0.1
    with pytest.raises(MissingAssetError, match="parsing_ckpt"):
        SynthesisSystem(**SMALL, parsing_ckpt="/nonexistent/last.ckpt").build_frozen_networks()


@pytest.fixture(scope="module")
def parsing_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny (untrained) parsing-stage checkpoint, saved the way ``occrecon fit`` saves one."""
    from occrecon.systems.parsing import ParsingSystem

    path = tmp_path_factory.mktemp("parsing") / "last.ckpt"
    system = ParsingSystem(width=8, depth=18, image_log_every_n_steps=0)
    fit = trainer(max_steps=0)
    fit.fit(system, train_dataloaders=DataLoader([{"image": torch.rand(3, 32, 32), "label_map": torch.zeros(32, 32).long()}]))
    fit.save_checkpoint(path)
    return path


def test_parsing_checkpoint_turns_on_parsing_consistency_and_perceptual_terms(parsing_ckpt: Path) -> None:
    system = SynthesisSystem(**SMALL, parsing_ckpt=str(parsing_ckpt))
    weights = system.build_frozen_networks()
    assert weights["parsing"] == 0.1 and weights["perceptual"] == 0.1 and system.perceptual_source == "parsing"
    batch = random_batch(2, 32)
    cond = system.conditions(batch)
    output = system(cond.image, cond.parsing, cond.edges, cond.mask)["output"]
    terms = system.generator_loss(cond, output)
    assert {"l1", "adversarial", "feature_matching", "parsing", "perceptual"} <= set(terms)
    terms["loss"].backward()
    assert all(p.grad is None for p in system._frozen["parsing"].parameters())  # frozen
    assert system.generator.head.weight.grad is not None
    # frozen networks are never saved with the synthesis weights
    assert not any("parsing" in k or "backbone" in k for k in system.state_dict())


def test_ema_follows_the_generator_and_is_used_for_evaluation() -> None:
    system = SynthesisSystem(**SMALL, ema={"decay": 0.5})
    system.build_frozen_networks()
    optimizers = [o["optimizer"] for o in system.configure_optimizers()]
    batch = random_batch(2, 32)
    train_step(system, batch, optimizers)  # first update copies G
    first = [p.detach().clone() for p in system.generator.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first, system.generator_ema.module.parameters(), strict=True))
    train_step(system, batch, optimizers)
    for ema, g_old, g_new in zip(system.generator_ema.module.parameters(), first, system.generator.parameters(), strict=True):
        assert torch.allclose(ema, 0.5 * g_old + 0.5 * g_new, atol=1e-7)
    assert system.eval_generator is system.generator_ema.module
    cond = system.conditions(batch)
    expected = system.generator_ema.module(cond.image, cond.parsing, cond.edges, cond.mask)["output"]
    assert torch.equal(system.synthesize(cond.image, cond.parsing, cond.edges, cond.mask), expected)
    no_ema = SynthesisSystem(**SMALL, ema={"enabled": False})
    assert no_ema.eval_generator is no_ema.generator and no_ema.generator_ema is None


def test_mask_comes_from_m_fa_when_the_batch_has_no_ground_truth_mask() -> None:
    system = SynthesisSystem(**SMALL)
    labels = torch.ones(1, 32, 32, dtype=torch.long)  # skin everywhere ...
    labels[0, 10:14, 6:26] = 3  # ... with glasses (eye_g)
    batch = {"I_in": torch.rand(1, 3, 32, 32), "label_map": labels, "parsing_gt": torch.ones(1, 32, 32).long(),
             "edge_lines": torch.zeros(1, 13, 8, 8)}  # fmt: skip
    mask = system.conditions(batch).mask
    assert torch.equal(mask[0, 0] > 0.5, labels[0] == 3)


def test_tiny_fit_of_the_synthetic_experiment_and_checkpoint_round_trip(synth_root: Path, tmp_path: Path) -> None:
    """``occrecon fit -c experiments/synthesis/synthetic.yaml -c experiments/debug/tiny.yaml`` (fresh
    tree: no checkpoints; the identity network only where its weights are cached)."""
    cfg = load_config(
        [REPO / "experiments/synthesis/synthetic.yaml", REPO / "experiments/debug/tiny.yaml"],
        [f"run.root={tmp_path}", "run.id=tiny", f"data.root={synth_root}", "trainer.limit_train_batches=2",
         "trainer.limit_val_batches=1", "model.image_log_every_n_steps=0",
         "model.identity=none"],  # as on a fresh clone (no identity weights cached), and fast
    )  # fmt: skip
    fit, paths = run_command("fit", cfg)
    assert fit.global_step == 4
    assert {"train/l1", "train/d_loss", "val/psnr_mask", "val/psnr_mask_input"} <= set(fit.callback_metrics)
    ckpt = paths.checkpoints / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["synthesis"]["effective_weights"]["parsing"] == 0.0 and "parsing" in state["synthesis"]["disabled"]
    assert any(k.startswith("generator_ema.") for k in state["state_dict"])
    loaded = SynthesisSystem.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    batch = random_batch(1, 64)
    cond = loaded.conditions(batch)
    trained = fit.lightning_module
    assert torch.equal(loaded.synthesize(cond.image, cond.parsing, cond.edges, cond.mask),
                       trained.synthesize(cond.image, cond.parsing, cond.edges, cond.mask))  # fmt: skip
