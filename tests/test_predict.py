"""`occrecon predict`: the prediction writer, the photo-folder data module, and end-to-end runs."""

import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.images import ImagesDataModule, square_resize
from occrecon.callbacks.predictions import PredictionWriter, _TestSplitAsPredict, prediction_setup
from occrecon.mesh_io import read_obj

REPO = Path(__file__).resolve().parents[1]


class _FaceModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("triangles", torch.tensor([[0, 1, 2], [0, 2, 3]]))


def test_writer_files_follow_the_shapes(tmp_path):
    module = L.LightningModule()
    module.face_model = _FaceModel()
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 19, (2, 16, 16), generator=g)
    rgb = torch.rand(2, 3, 16, 16, generator=g)
    heat = torch.rand(2, 5, 16, 16, generator=g)
    prediction = {
        "vertices": torch.rand(2, 4, 3, generator=g), "albedo": torch.rand(2, 4, 3, generator=g),
        "render": rgb, "heatmaps": heat, "parsing": labels, "coeffs": torch.arange(14.0).view(2, 7),
    }  # fmt: skip
    writer = PredictionWriter(tmp_path)
    crop = torch.tensor([[[2.0, 0, 5], [0, 2, 7]]]).expand(2, 2, 3)
    batch = {"name": ["a", "b"], "image": rgb, "crop_from_photo": crop}
    writer.write_on_batch_end(None, module, prediction, [10, 11], batch, 0)
    assert (tmp_path / "a_input.png").is_file()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["crop_from_photo"], crop[0].numpy())
    verts, tris, colours = read_obj(tmp_path / "b.obj")
    np.testing.assert_allclose(verts, prediction["vertices"][1].numpy(), atol=1e-5)
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_allclose(colours, prediction["albedo"][1].numpy(), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_parsing.png")), labels[0].numpy())
    assert (tmp_path / "a_parsing_colour.png").is_file()
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "b_render.png")), (rgb[1].permute(1, 2, 0) * 255).round().byte().numpy()
    )
    expected_heat = (heat[0].amax(0) * 255).round().byte().numpy()  # channel maximum, values already in [0, 1]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_heatmaps.png")), expected_heat)
    normals = torch.zeros(1, 3, 10, 10)
    normals[:, 2] = 1.0
    normals[:, 0] = -1.0
    writer.write_on_batch_end(None, module, {"normals": normals}, [0], {"name": ["n"]}, 2)
    assert np.asarray(Image.open(tmp_path / "n_normals.png"))[0, 0].tolist() == [0, 128, 255]  # (-1, 0, 1) -> (0, .5, 1)
    saved = np.load(tmp_path / "b.npz")
    assert set(saved) == {"coeffs", "crop_from_photo"}  # albedo went into the OBJ
    np.testing.assert_array_equal(saved["coeffs"], np.arange(7.0, 14.0))
    # without names: the sample indices of the prediction set
    writer.write_on_batch_end(None, module, labels, [3, 4], {"image": rgb}, 1)
    assert (tmp_path / "000004_labels.png").is_file()


def test_square_resize_pads_bottom_right():
    photo = np.full((20, 10, 3), 200, np.uint8)
    out = square_resize(photo, 20)
    assert out.shape == (3, 20, 20)
    assert out[:, :, :9].min() == pytest.approx(200 / 255) and out[:, :, 11:].max() == 0.0


def test_images_module_without_alignment_skips_bad_files(tmp_path):
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("not an image")
    dm = ImagesDataModule(str(tmp_path), image_size=32, align="none", batch_size=4)
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (1, 3, 32, 32) and batch["name"] == ["a"]
    assert len(dm.skipped) == 1 and "b.jpg" in dm.skipped[0]


def test_images_module_aligns_faces_to_the_stage_framing(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (the astronaut photo) not installed")
    from occrecon.assets.face_api import face_models_cached

    if not face_models_cached():
        pytest.skip("face-api networks not cached: run `occrecon assets fetch face-api`")
    from occrecon.faces.align import deep3d_template
    from occrecon.faces.samples import astronaut
    from occrecon.landmarks import five_points

    Image.fromarray(astronaut()).save(tmp_path / "astronaut.png")
    dm = ImagesDataModule(str(tmp_path), image_size=112, align="deep3d")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["name"] == ["astronaut_face0"] and batch["image"].shape == (1, 3, 112, 112)
    # the detected landmarks, mapped into the crop, sit on the framing's template (similarity residual)
    residual = (five_points(batch["landmarks"])[0] - torch.from_numpy(deep3d_template(112)).float()).norm(dim=-1)
    assert residual.max() < 5.0


def test_prediction_setup_picks_the_data(tmp_path):
    from omegaconf import OmegaConf

    class NoPredict(L.LightningDataModule):
        def test_dataloader(self):
            return [1]

    cfg = OmegaConf.create({"stage": "parsing", "data": {"image_size": 64, "batch_size": 2}, "predict": {}})
    dm, callbacks = prediction_setup(cfg, NoPredict(), tmp_path)
    assert isinstance(dm, _TestSplitAsPredict) and dm.predict_dataloader() == [1]
    assert callbacks[0].out_dir == tmp_path / "predictions"
    cfg.predict = {"images": str(tmp_path), "align": "auto", "out": str(tmp_path / "o")}
    dm, callbacks = prediction_setup(cfg, NoPredict(), tmp_path)
    assert isinstance(dm, ImagesDataModule) and dm.align == "celebahq" and dm.image_size == 64
    assert callbacks[0].out_dir == tmp_path / "o"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["reconstruction", "parsing"])
def test_fit_then_predict_on_the_stage_config(stage, tmp_path):
    """The stage's own synthetic config (whose data module has no predict loader) predicts its test split."""
    config, tiny = REPO / "experiments" / stage / "synthetic.yaml", REPO / "experiments" / "debug" / "tiny.yaml"
    common = ["-c", str(config), "-c", str(tiny), f"run.root={tmp_path}", "run.id=p", "model.identity=none"]
    if stage == "parsing":
        common = common[:-1]
    code = (f"import sys; from occrecon.cli import main; "
            f"sys.exit(main({['fit', *common]!r}) or main({['predict', *common]!r}))")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=600, capture_output=True)
    out = tmp_path / "p" / "predictions"
    files = sorted(p.name for p in out.iterdir())
    assert files, "no predictions written"
    if stage == "reconstruction":
        assert "000000.obj" in files and "000000_render.png" in files and "000000.npz" in files
        assert np.load(out / "000000.npz")["coeffs"].shape == (239,)
    else:
        labels = np.asarray(Image.open(out / "000000_labels.png"))
        assert labels.shape == (64, 64) and labels.max() < 19
