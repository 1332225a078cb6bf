"""The detail stage end to end (occrecon.systems.detail, occrecon.evaluation.detail, `occrecon eval detail`).

Independent truths: the synthetic generator's stored coarse depth, face mask, detailed normals and
image (the coarse maps re-rendered from the stored coefficients must reproduce them), the mirror
symmetry of the mean face, and mesh vertex counts = face pixel counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.synthetic import SyntheticDataModule
from occrecon.cli import main
from occrecon.commands.eval_detail import FIELDS, load_detail_system, synthetic_loader
from occrecon.config.load import load_config
from occrecon.evaluation.detail import DetailMetrics, detail_errors, eval_regions, write_detailed_mesh
from occrecon.geometry.bump import PHI_ZERO
from occrecon.losses.detail import shading_residual
from occrecon.mesh_io import read_obj, read_ply
from occrecon.systems.detail import DetailSystem
from occrecon.training import run_command

REPO = Path(__file__).resolve().parents[1]


def make_detail_root(tmp_path_factory: pytest.TempPathFactory, size: int = 64, n: int = 12) -> Path:
    """``n`` faces at ``size`` px, 4 per identity (train / val / test by identity)."""
    root = tmp_path_factory.mktemp("detail") / "set"
    SyntheticDataModule(root=str(root), synth_n=n, synth_size=size, synth_workers=1).prepare_data()
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_detail_root(tmp_path_factory)


def first_batch(root: Path, size: int = 64, batch_size: int = 4) -> dict[str, torch.Tensor]:
    return next(iter(synthetic_loader(root, size, "all", batch_size)))


def small_system(**kwargs: object) -> DetailSystem:
    options = {"width": 8, "levels": 3, "image_size": 64, "coarse_image_size": 64, **kwargs}
    return DetailSystem(**options).eval()


def test_ground_truth_coarse_maps_reproduce_the_generator(root: Path) -> None:
    """The maps re-rendered from the stored coefficients: depth and mask equal the stored ones, and
    the stored (detailed) normals shaded with the maps' albedo and light give back I_gt."""
    batch = first_batch(root)
    system = small_system()
    maps = system.coarse_from_coeffs(batch["coeffs"])
    face = batch["face_mask"]
    assert torch.equal(maps["mask"], face)
    torch.testing.assert_close(maps["depth"] * face, batch["depth_coarse"] * face, atol=1e-4, rtol=0)  # 0.01 mm
    residual = shading_residual(batch["normals"], maps["albedo"], maps["gamma"], batch["I_gt"])
    inside = face > 0
    assert float(residual[inside].mean()) < 0.004  # uint8 image and float16 normals
    assert float(residual[inside].max()) < 0.03


def test_mirror_map_of_a_frontal_mean_face(root: Path) -> None:
    """Zero coefficients: the mean face, frontal and centred. Its mirror points are the pixels mirrored
    about the image's vertical centre line (to a pixel, except where the mesh is not symmetric)."""
    system = small_system()
    coeffs = torch.zeros(1, system.layout.size)
    maps = system.coarse_from_coeffs(coeffs)
    grid, mask = maps["mirror"][0], maps["mask"][0, 0] > 0
    ok = (grid[..., 0] > -1.5) & mask
    assert ok.sum() > 0.8 * mask.sum()
    cols = torch.arange(64.0).expand(64, -1)
    mirrored_col = (grid[..., 0] + 1) / 2 * 64 - 0.5
    rows = torch.arange(64.0)[:, None].expand(-1, 64)
    mirrored_row = (grid[..., 1] + 1) / 2 * 64 - 0.5
    assert float((mirrored_col + cols - 63)[ok].abs().median()) < 0.5
    assert float((mirrored_row - rows)[ok].abs().median()) < 0.5


def test_untrained_network_is_exactly_coarse_only(root: Path) -> None:
    batch = first_batch(root)
    system = small_system()
    with torch.no_grad():
        out, coarse = system(batch)
        assert torch.equal(out.phi, torch.full_like(out.phi, PHI_ZERO))
        assert torch.equal(out.depth, coarse.depth)
        errors, regions = detail_errors(system, batch, out, coarse, ("detail", "coarse", "oracle"))
    metrics = DetailMetrics(("detail", "coarse", "oracle"))
    metrics.update(errors, regions)
    values = metrics.compute()
    for name in ("phi_l1", "depth_l1_mm", "normal_deg"):
        assert torch.equal(values[f"{name}_visible"], values[f"coarse/{name}_visible"])
    assert float(values["oracle/phi_l1_visible"]) == 0.0
    assert float(values["oracle/depth_l1_mm_visible"]) < 0.5 * float(values["coarse/depth_l1_mm_visible"])
    # the regions split the face: visible skin and occluded pixels never overlap
    both = eval_regions(batch, coarse.mask)
    assert float((both["visible"] * both["occluded"]).sum()) == 0.0


def test_training_losses_and_gradients(root: Path) -> None:
    batch = first_batch(root)
    weights = {"geo": 1.0, "shading": 1.0, "smooth": 0.1, "sym": 0.1, "conf": 0.05}
    system = small_system(loss={"weights": weights}).train()
    image = system.input_image(batch)
    coarse = system.coarse_maps(batch, image)
    out = system.detail(image, coarse)
    total, logs = system.losses(batch, image, out, coarse)
    for key in weights:
        assert key in logs and torch.isfinite(logs[key]), key
    assert float(logs["conf"]) == pytest.approx(float(np.log(2)), rel=0.05) or float(logs["conf"]) < 1.0
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in system.net.parameters())
    assert all(p.grad is None for n, p in system.named_parameters() if not n.startswith("net."))


def test_detailed_mesh_files_reread_with_the_right_counts(root: Path, tmp_path: Path) -> None:
    batch = first_batch(root, batch_size=1)
    system = small_system()
    with torch.no_grad():
        out, coarse = system(batch)
    obj, ply = write_detailed_mesh(tmp_path / "face", out.depth[0], coarse.mask[0], float(coarse.px_per_unit[0]),
                                   coarse.albedo[0])  # fmt: skip
    pixels = int(coarse.mask.sum())
    for reader, path in ((read_obj, obj), (read_ply, ply)):
        v, f, c = reader(path)
        assert v.shape == (pixels, 3) and c.shape == (pixels, 3)
        assert len(f) > pixels  # about two triangles per pixel
        assert f.max() < pixels
    # depth round trip through the OBJ: z = -d'
    v, _, _ = read_obj(obj)
    expected = -out.depth[0, 0][coarse.mask[0, 0] > 0].double().numpy()
    np.testing.assert_allclose(v[:, 2], expected, atol=1e-6)


def test_fit_on_a_fresh_clone_and_eval_cli(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`occrecon fit -c experiments/detail/synthetic.yaml -c experiments/debug/tiny.yaml` (no checkpoint
    needed: model.coarse=ground_truth), then `occrecon eval detail` on its checkpoint."""
    cfg = load_config(
        [REPO / "experiments/detail/synthetic.yaml", REPO / "experiments/debug/tiny.yaml"],
        [f"data.root={root}", "data.synth_size=64", f"run.root={tmp_path / 'runs'}", "trainer.limit_train_batches=1",
         "trainer.limit_val_batches=1", "model.levels=3"],
    )  # fmt: skip
    trainer, paths = run_command("fit", cfg)
    assert trainer.global_step == 1
    for key in ("train/loss/geo", "val/normal_deg_visible", "val/coarse/normal_deg_visible", "val/depth_l1_mm_visible"):
        assert key in trainer.callback_metrics, key
    ckpt = paths.checkpoints / "last.ckpt"
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert stored and all(k.startswith("net.") for k in stored)  # face model and coarse stage are not stored
    system = load_detail_system(ckpt)
    assert system.hparams.image_size == 64
    assert main(["eval", "detail", "--data", str(root), "--ckpt", str(ckpt), "--split", "all", "--max-batches", "1",
                 "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| detail network |" in printed and "| coarse only (Phi = phi(0)) |" in printed and "| oracle" in printed
    assert (tmp_path / "eval" / "detail.png").is_file()
    assert sorted(p.suffix for p in (tmp_path / "eval" / "meshes").iterdir())[:2] == [".obj", ".obj"]


def test_eval_cli_reports_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "detail", "--data", str(tmp_path), "--ckpt", str(tmp_path / "none.ckpt")]) == 1
    assert "occrecon fit -c experiments/detail/synthetic.yaml" in capsys.readouterr().out


def test_coarse_stage_from_a_reconstruction_checkpoint(root: Path, tmp_path: Path) -> None:
    """model.coarse=<reconstruction checkpoint>: the frozen network's render supplies d; its weights
    stay out of the detail stage's trainable set."""
    from occrecon.systems.reconstruction import ReconstructionSystem

    recon = ReconstructionSystem(width=8, depth=18, identity="none", image_size=64)
    ckpt = tmp_path / "recon.ckpt"
    torch.save({"state_dict": recon.state_dict(), "hyper_parameters": dict(recon.hparams)}, ckpt)
    system = small_system(coarse=str(ckpt)).train()
    assert not system.coarse_system.training
    assert all(not p.requires_grad for p in system.coarse_system.parameters())
    batch = {k: v for k, v in first_batch(root, batch_size=2).items() if k in ("I_in", "image")}
    out, coarse = system(batch)
    assert out.phi.shape == (2, 1, 64, 64) and coarse.mask.sum() > 0
    torch.testing.assert_close(out.depth, coarse.depth)  # untrained: d' = d


def test_fields_of_the_eval_loader_cover_the_experiment() -> None:
    from occrecon.config.load import read_yaml

    assert set(read_yaml(REPO / "experiments/detail/synthetic.yaml")["data"]["fields"]) <= set(FIELDS)


def test_coarse_cache_returns_the_computed_maps(root: Path) -> None:
    batch = first_batch(root, batch_size=3)
    plain, cached = small_system(), small_system(cache_coarse=2)
    first = cached.coarse_maps(batch)  # computes; caches samples 0 and 1 only (limit 2)
    assert len(cached._cache) == 2
    sub = {k: v[:2] for k, v in batch.items()}
    again = cached.coarse_maps(sub)  # served from the cache
    fresh = plain.coarse_maps(sub)
    for name in ("depth", "normal", "mask", "albedo", "mirror", "rendered", "px_per_unit", "gamma"):
        assert torch.equal(getattr(again, name), getattr(fresh, name)), name
        assert torch.equal(getattr(first, name)[:2], getattr(fresh, name)), name


def test_pipeline_call_from_coefficients(root: Path) -> None:
    """``detail_from_coeffs(image, y)`` (the composite pipeline's call) agrees with the training path,
    whose ground-truth coarse depth and mask come from the data set instead of the render."""
    batch = first_batch(root, batch_size=2)
    system = small_system()
    torch.nn.init.normal_(system.net.head.weight, std=0.1)  # a non-trivial network
    with torch.no_grad():
        out, coarse = system(batch)
        piped, maps = system.detail_from_coeffs(batch["I_in"], batch["coeffs"])
    assert torch.equal(maps.mask, coarse.mask)
    assert float(out.phi.std()) > 0.1
    torch.testing.assert_close(piped.phi, out.phi, atol=0.05, rtol=0)
    torch.testing.assert_close(piped.depth, out.depth, atol=1e-4, rtol=0)
    assert piped.confidence.shape == (2, 1, 64, 64) and piped.normals.shape == (2, 3, 64, 64)


def test_real_photos_train_with_the_self_supervised_terms(tmp_path: Path) -> None:
    """CelebAMask-HQ batches (image + label_map, no bump map, no coefficients): the coarse stage is a
    reconstruction checkpoint; geo is skipped, shading / smooth / sym / conf are computed and train."""
    from data_fixtures import write_celebamask

    from datamodules.celebamask_hq import CelebAMaskHQDataModule
    from occrecon.systems.reconstruction import ReconstructionSystem

    recon = ReconstructionSystem(width=8, depth=18, identity="none", image_size=32)
    ckpt = tmp_path / "recon.ckpt"
    torch.save({"state_dict": recon.state_dict(), "hyper_parameters": dict(recon.hparams)}, ckpt)
    root = write_celebamask(tmp_path / "CelebAMask-HQ", image_size=32, mask_size=32)
    dm = CelebAMaskHQDataModule(root=str(root), image_size=32, batch_size=2, num_workers=0, augment=False)
    dm.setup("fit")
    real = next(iter(dm.train_dataloader()))
    weights = {"geo": 1.0, "shading": 1.0, "smooth": 0.02, "sym": 0.1, "conf": 0.05}
    system = DetailSystem(width=8, levels=3, image_size=32, coarse=str(ckpt), loss={"weights": weights}).train()
    with pytest.raises(Exception, match="coeffs"):
        small_system().coarse_maps(real)  # ground_truth needs the synthetic coefficients
    image = system.input_image(real)
    coarse = system.coarse_maps(real, image)
    out = system.detail(image, coarse)
    total, logs = system.losses(real, image, out, coarse)
    assert "geo" not in logs and {"shading", "smooth", "sym", "conf"} <= set(logs)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.net.parameters())
