"""The composite stage (occrecon.systems.pipeline, occrecon.chain): frozen stages stay frozen and in
eval mode, gradients reach exactly the trainable stages, stage checkpoints load by their own run's
config and a wrong architecture fails naming the stage and the key, the coarse losses reach an
upstream trainable stage through the chain, and the exported checkpoint is self-contained."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.synthetic import SyntheticDataModule
from occrecon.chain import LINKS, chain_order
from occrecon.errors import ConfigError
from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset
from occrecon.systems.pipeline import PipelineSystem
from occrecon.systems.reconstruction import ReconstructionSystem

FIELDS = ["I_in", "I_gt", "parsing_in", "parsing_gt", "occluder_mask", "landmarks", "landmark_visible",
          "edge_lines", "coeffs", "glasses"]  # fmt: skip
SIZE = 64
PARSING = {"depth": 18, "width": 8}
EDGES = {"num_stacks": 1, "hourglass_depth": 2, "width": 8}
COARSE = {"depth": 18, "width": 8, "image_size": SIZE, "renderer": "torch", "identity": "none"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(n=8, size=SIZE, seed=3, images_per_identity=1, shard_size=8, p_glasses=0.7)
    return generate_dataset(config, tmp_path_factory.mktemp("pipe") / "ds", workers=1, progress=False)


@pytest.fixture(scope="module")
def batch(dataset: Path) -> dict:
    dm = SyntheticDataModule(image_size=SIZE, root=str(dataset), fields=FIELDS, augment=False, batch_size=4,
                             generate=False, val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    dm.setup()
    torch.manual_seed(0)
    return next(iter(dm.train_dataloader()))


def _pipeline(trainable: tuple[str, ...] = ("reconstruction",), **entries: dict) -> PipelineSystem:
    torch.manual_seed(0)
    stages = {
        "parsing": {"model": PARSING},
        "edge_lines": {"model": EDGES},
        "reconstruction": {"model": COARSE},
    }
    for name, entry in entries.items():
        stages[name] = {**stages.get(name, {}), **entry}
    for name in stages:
        stages[name]["trainable"] = name in trainable
    return PipelineSystem(width=8, stages=stages, optimizer={"name": "adam", "lr": 1e-3})


def test_chain_order_is_the_papers_and_fusion_joins_the_two_2d_stages() -> None:
    assert chain_order(["reconstruction", "edge_lines", "parsing"]) == ["parsing", "edge_lines", "fusion", "reconstruction"]
    assert chain_order(["reconstruction"]) == ["reconstruction"]
    with pytest.raises(ConfigError, match="unknown stage 'depth'"):
        chain_order(["depth"])


def test_chain_state_has_every_intermediate_map(batch: dict) -> None:
    system = _pipeline().eval()
    with torch.no_grad():
        state = system(batch["image"])
    b = batch["image"].shape[0]
    assert state["M_fa"].shape == (b, SIZE, SIZE) and state["M_fa"].dtype == torch.int64
    assert state["M_fin"].shape == (b, SIZE, SIZE) and state["M_edge"].shape[:2] == (b, 13)
    assert state["coeffs"].shape == (b, system.stages["reconstruction"].layout.size)
    # M_fin equals M_fa outside the occluder mask the fusion estimated (occrecon.fusion, step 4)
    outside = state["O"][:, 0] < 0.5
    assert torch.equal(state["M_fin"][outside], state["M_fa"][outside])


def _fit(system: PipelineSystem, batch: dict, steps: int) -> None:
    """``steps`` optimizer steps through Lightning (which calls ``train()`` and the hooks)."""
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)  # the same batch each step
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(system, train_dataloaders=loader)


def test_frozen_stages_are_bit_identical_and_stay_in_eval_mode(batch: dict) -> None:
    system = _pipeline().train()  # as any loop or user may call it: frozen stages must ignore it
    before = {k: v.clone() for k, v in system.state_dict().items()}
    _fit(system, batch, steps=3)
    changed = {k for k, v in system.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, "the trainable stage did not move"
    assert all(k.startswith("stages.reconstruction.") for k in changed), sorted(changed)[:5]
    # BatchNorm running statistics of the frozen stages are untouched (eval mode the whole time)
    assert not any(k.endswith("running_mean") and not k.startswith("stages.reconstruction.") for k in changed)
    assert not system.stages["parsing"].training and not system.stages["edge_lines"].training
    assert all(not p.requires_grad for p in system.stages["parsing"].parameters())


def test_gradients_reach_exactly_the_trainable_stages(batch: dict) -> None:
    system = _pipeline(trainable=("parsing", "reconstruction")).train()
    state = system(batch["image"])
    total, logs = system.losses(state, batch)
    assert {"parsing", "reconstruction"} <= set(logs)
    total.backward()
    for name, stage in system.stages.items():
        grads = [p.grad for p in stage.parameters() if p.grad is not None]
        if name in ("parsing", "reconstruction"):
            assert grads and any(g.abs().sum() > 0 for g in grads), name
        else:
            assert not grads, name
    # only trainable parameters reach the optimizer
    optimizer = system.configure_optimizers()["optimizer"]
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert ids == {id(p) for n in ("parsing", "reconstruction") for p in system.stages[n].parameters()}


def test_coarse_losses_flow_back_through_the_image_the_chain_hands_on(batch: dict) -> None:
    """With a stage in front of the coarse one (here: an image-producing stand-in for synthesis),
    the Eq. 4 losses have a gradient w.r.t. that stage's output image: the chain keeps the graph."""
    system = _pipeline(trainable=("reconstruction",)).train()
    image = batch["image"].clone().requires_grad_(True)
    state = {"I_in": batch["image"], "I_out": image}
    coarse = system.stages["reconstruction"]
    LINKS["reconstruction"].run(coarse, state)
    total, _ = LINKS["reconstruction"].loss(coarse, state, batch)
    (grad,) = torch.autograd.grad(total, image)
    assert grad.abs().sum() > 0


def _save_stage(system: torch.nn.Module, path: Path) -> Path:
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, path)
    return path


def test_stage_checkpoint_is_loaded_with_its_own_config(tmp_path: Path, batch: dict) -> None:
    torch.manual_seed(5)
    coarse = ReconstructionSystem(**COARSE)
    with torch.no_grad():
        for p in coarse.regressor.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = _save_stage(coarse, tmp_path / "coarse.ckpt")
    system = _pipeline(reconstruction={"ckpt": str(ckpt), "model": {}})
    loaded = system.stages["reconstruction"].regressor.state_dict()
    assert all(torch.equal(v, coarse.regressor.state_dict()[k]) for k, v in loaded.items())


def test_wrong_architecture_fails_naming_the_stage_and_the_key(tmp_path: Path) -> None:
    wide = ReconstructionSystem(**{**COARSE, "width": 16})
    ckpt = tmp_path / "wide.ckpt"
    torch.save({"state_dict": wide.state_dict(), "hyper_parameters": {**COARSE}}, ckpt)  # config says width 8
    with pytest.raises(ConfigError, match=r"stage 'reconstruction' key 'regressor\..*' has shape"):
        _pipeline(reconstruction={"ckpt": str(ckpt), "model": {}})
    deeper = ReconstructionSystem(**{**COARSE, "depth": 34})
    torch.save({"state_dict": deeper.state_dict(), "hyper_parameters": {**COARSE}}, ckpt)
    with pytest.raises(ConfigError, match=r"stage 'reconstruction' .*unexpected key 'regressor\."):
        _pipeline(reconstruction={"ckpt": str(ckpt), "model": {}})


def test_pipeline_checkpoint_is_self_contained(tmp_path: Path, batch: dict) -> None:
    system = _pipeline().eval()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(system)
    path = tmp_path / "pipeline.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    # the fixed assets the coarse stage leaves out of its checkpoints stay out here too
    assert not any(k.startswith("stages.reconstruction.face_model.") for k in raw["state_dict"])
    reloaded = PipelineSystem.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        a, b = system(batch["image"]), reloaded(batch["image"])
    assert torch.equal(a["coeffs"], b["coeffs"]) and torch.equal(a["M_fin"], b["M_fin"])


def test_export_pipeline_command_writes_a_checkpoint_that_needs_no_stage_file(tmp_path: Path, batch: dict) -> None:
    from occrecon.cli import main

    torch.manual_seed(5)
    coarse = ReconstructionSystem(**COARSE)
    stage_ckpt = _save_stage(coarse, tmp_path / "coarse.ckpt")
    config = tmp_path / "pipe.yaml"
    config.write_text(
        "stage: pipeline\nmodel:\n  width: 8\n  stages:\n"
        f"    reconstruction: {{ckpt: {stage_ckpt}, trainable: false}}\n"
        "data:\n  dataset: synthetic\n"
    )
    out = tmp_path / "exported.ckpt"
    assert main(["export-pipeline", "-c", str(config), "--out", str(out)]) == 0
    stage_ckpt.unlink()  # the exported file must not need it
    reloaded = PipelineSystem.load_from_checkpoint(out, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        expected = coarse.eval()(batch["image"])
        got = reloaded(batch["image"])["coeffs"]
    assert torch.equal(got, expected)
    assert main(["export-pipeline", "-c", str(config), "--out", str(tmp_path / "x.ckpt")]) == 2  # stage file gone
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "x.ckpt.partial").exists()


def test_synthesis_in_the_chain_keeps_unoccluded_pixels_and_receives_the_coarse_gradient(batch: dict) -> None:
    """Synthesis between fusion and the coarse stage: I_out equals I_in outside the estimated occluder
    mask O, and with both stages trainable the coarse Eq. 4 losses reach the generator through I_out."""
    synthesis = {"model": {"width": 8, "num_blocks": 1, "identity": "none"}}
    system = _pipeline(trainable=("synthesis", "reconstruction"), synthesis=synthesis).train()
    assert system.order == ["parsing", "edge_lines", "fusion", "synthesis", "reconstruction"]
    # the 2D maps from the ground truth (M_fa with occluders, true edge lines): a known occluder mask
    state = {"I_in": batch["image"], "M_fa": batch["label_map"], "M_edge": batch["edge_lines"]}
    for name in ("fusion", "synthesis", "reconstruction"):
        LINKS[name].run(system.stages[name] if name in system.stages else None, state)
    outside = (state["O"] < 0.5).expand_as(state["I_in"])
    assert torch.equal(state["I_out"][outside], state["I_in"][outside])
    system.weights["synthesis"] = 0.0  # only the coarse stage's loss: its gradient must reach G
    total, logs = system.losses(state, batch)
    total.backward()
    generator_grads = [p.grad for p in system.stages["synthesis"].generator.parameters() if p.grad is not None]
    assert bool((state["O"] > 0.5).any()), "no occluder estimated: the test would prove nothing"
    assert generator_grads and any(g.abs().sum() > 0 for g in generator_grads)
    assert all(p.grad is None for p in system.stages["synthesis"].discriminator.parameters())


def test_demo_section_draws_every_map_and_compares_with_the_coarse_stage_alone(dataset: Path, tmp_path: Path) -> None:
    from occrecon.evaluation.pipeline import demo_section

    synthesis = {"model": {"width": 8, "num_blocks": 1, "identity": "none"}}
    system = _pipeline(trainable=(), synthesis=synthesis)
    dm = SyntheticDataModule(image_size=SIZE, root=str(dataset), fields=FIELDS, augment=False, batch_size=4,
                             generate=False, val_fraction=0.25, test_fraction=0.25)  # fmt: skip
    section = demo_section(system, dm, tmp_path, max_batches=1)
    assert (tmp_path / "pipeline.png").is_file()
    assert "coarse alone (on I_in)" in section.tables[0]
    assert "| 3D rigid (mm) |" in section.tables[0]


def _table_row(table: str, label: str) -> list[float]:
    row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [float(cell) for cell in row.strip("|").split("|")[1:]]


def test_demo_section_numbers_match_a_direct_computation(dataset: Path, tmp_path: Path) -> None:
    """The report's NME columns and the PSNR inside the occluders, recomputed here with numpy from
    the chain's outputs on the same test batch (inter-ocular NME over visible points; PSNR of the
    occluder pixels of each image, then the mean)."""
    from occrecon.evaluation.pipeline import demo_section

    synthesis = {"model": {"width": 8, "num_blocks": 1, "identity": "none"}}
    system = _pipeline(trainable=(), synthesis=synthesis).eval()
    dm = SyntheticDataModule(image_size=SIZE, root=str(dataset), fields=FIELDS, augment=False, batch_size=4,
                             generate=False, val_fraction=0.25, test_fraction=0.25)  # fmt: skip
    section = demo_section(system, dm, tmp_path, max_batches=1)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        chain = system(batch["image"])
        alone = {k: v for k, v in chain.items() if k not in ("I_out", "coeffs", "render")}
        LINKS["reconstruction"].run(system.stages["reconstruction"], alone)  # the same coarse stage on I_in

    gt = batch["landmarks"].numpy()
    vis = batch["landmark_visible"].numpy() > 0
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)

    def nme(state: dict) -> float:
        err = np.linalg.norm(state["render"].landmarks.numpy() - gt, axis=-1)
        return float(np.mean((err * vis).sum(1) / np.maximum(vis.sum(1), 1) / iod))

    chain_nme, alone_nme = _table_row(section.tables[0], "NME")
    assert chain_nme == pytest.approx(nme(chain), rel=1e-3)
    assert alone_nme == pytest.approx(nme(alone), rel=1e-3)

    mask = batch["occluder_mask"].numpy() > 0.5
    i_in, i_gt = batch["image"].numpy(), batch["I_gt"].numpy()
    psnr = [10 * np.log10(1.0 / np.mean((i_in[b] - i_gt[b])[np.broadcast_to(mask[b], i_in[b].shape)] ** 2))
            for b in range(len(mask)) if mask[b].any()]  # fmt: skip
    assert section.metrics["inside occluders: I_in psnr"] == pytest.approx(float(np.mean(psnr)), rel=1e-4)


def test_detail_closes_the_chain_on_the_coarse_prediction(dataset: Path) -> None:
    fields = [*FIELDS, "depth_coarse", "face_mask", "bump", "normals"]
    dm = SyntheticDataModule(image_size=SIZE, root=str(dataset), fields=fields, augment=False, batch_size=2,
                             generate=False, val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    detail = {"model": {"width": 8, "levels": 2, "image_size": SIZE, "renderer": "torch"}}
    system = _pipeline(trainable=("detail",), detail=detail)
    assert system.order[-1] == "detail"
    assert system.stages["detail"].hparams.coarse_image_size == SIZE  # rendered where y was predicted
    state = system(batch["image"])
    assert state["depth_detail"].shape == (2, 1, SIZE, SIZE) and state["bump"].shape == (2, 1, SIZE, SIZE)
    total, logs = system.losses(state, batch)
    assert "detail" in logs and "detail/geo" in logs  # Eq. 6 against the synthetic Phi
    total.backward()
    assert all(p.grad is None for p in system.stages["reconstruction"].parameters())
    assert any(p.grad is not None for p in system.stages["detail"].net.parameters())


def test_frozen_batchnorm_keeps_running_statistics_of_trainable_stages(batch: dict) -> None:
    system = _pipeline()
    system.frozen_batchnorm = True
    system.train()
    coarse = system.stages["reconstruction"]
    norms = [m for m in coarse.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms) and coarse.regressor.training
    before = [m.running_mean.clone() for m in norms]
    system.losses(system(batch["image"]), batch)[0].backward()
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))


def test_a_disabled_stage_leaves_the_chain() -> None:
    system = _pipeline(synthesis={"enabled": False, "model": {"width": 8}})
    assert system.order == ["parsing", "edge_lines", "fusion", "reconstruction"]
    assert "synthesis" not in system.stages
