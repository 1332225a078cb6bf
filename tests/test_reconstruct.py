"""`occrecon reconstruct` end to end on the public-domain astronaut photo, plus bad inputs."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from occrecon.commands import reconstruct as command
from occrecon.facemodel import load_face_model
from occrecon.mesh_io import read_obj, read_ply


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    pytest.importorskip("skimage", reason="scikit-image (the astronaut photo) not installed")
    if not command.ensure_face_networks(say=lambda m: None):
        pytest.skip("face-api networks not cached and not fetchable: run `occrecon assets fetch face-api`")
    from occrecon.faces.samples import astronaut

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(astronaut()).save(folder / "astronaut.png")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(folder / "flat.png")
    return folder


def _run(argv):
    parser = argparse.ArgumentParser(prog="occrecon")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reconstruct", *argv])
    return args.handler(args)


def test_reconstruct_astronaut_and_report_bad_files(photos, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _run([str(photos), "--out", str(out), "--fit-steps", "10", "--landmark-steps", "60", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1  # two of the three inputs failed
    assert "broken.jpg: unreadable image" in text and "flat.png: no face" in text
    assert "1/3 images reconstructed" in text
    model = load_face_model("procedural")
    n_v, n_f = model.num_vertices, model.triangles.shape[0]
    face = out / "astronaut"
    for path, reader in ((face / "face0.obj", read_obj), (face / "face0.ply", read_ply), (face / "face0_photo.ply", read_ply)):
        verts, tris, colours = reader(path)
        assert verts.shape == (n_v, 3) and tris.shape == (n_f, 3), path
        assert colours is not None and colours.shape == (n_v, 3)
        np.testing.assert_array_equal(tris, model.triangles.numpy())
    info = json.loads((face / "face0.json").read_text())
    assert len(info["landmarks68"]) == 68 and info["metrics"]["landmark_px_after"] < info["metrics"]["landmark_px_before"]
    saved = np.load(face / "face0.npz")
    assert saved["coeffs"].shape == (model.layout("paper").size,)
    # the posed mesh is exported in the photo's frame: its landmark vertices lie on the detected
    # landmarks (within the fit's residual), i.e. the inverse alignment was applied
    photo_verts, _, _ = read_ply(face / "face0_photo.ply")
    projected = photo_verts[model.landmark_indices.numpy(), :2]
    assert np.median(np.linalg.norm(projected - saved["landmarks68"], axis=1)) < 8.0
    x0, y0, x1, y1 = saved["box"]
    assert x0 < projected[:, 0].mean() < x1 and y0 < projected[:, 1].mean() < y1
    picture = np.asarray(Image.open(face / "face0.png"))
    assert picture.shape[0] == 256 + 4 and picture.shape[1] == 4 * 258 + 2  # 4 panels, no parsing map


def test_nothing_to_do_is_an_error(tmp_path, capsys):
    assert _run([str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no images" in capsys.readouterr().out


def test_missing_networks_say_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path / "cache"))
    from occrecon.assets import face_api

    def offline(*args, **kwargs):
        raise face_api.MissingAssetError("npm", "the npm client", face_api.HOW_TO_GET_FACES)

    monkeypatch.setattr(face_api, "npm_pack", offline)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    assert _run([str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]) == 2
    text = capsys.readouterr().out
    assert "occrecon assets fetch face-api" in text
    assert torch.get_num_threads() >= 1


def test_checkpoint_prediction_starts_the_fit(photos, tmp_path, capsys):
    """--ckpt of a coarse-stage run: its prediction is the start; --fit-steps 0 keeps it (network only)."""
    import lightning as L

    from occrecon.systems.reconstruction import ReconstructionSystem

    torch.manual_seed(0)
    system = ReconstructionSystem(depth=18, width=8, image_size=64, identity="none")
    ckpt = tmp_path / "coarse.ckpt"
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams),
                "pytorch-lightning_version": L.__version__}, ckpt)  # fmt: skip
    out = tmp_path / "out"
    assert _run([str(photos / "astronaut.png"), "--out", str(out), "--ckpt", str(ckpt), "--fit-steps", "0", "--quiet"]) == 0
    saved = np.load(out / "astronaut" / "face0.npz")
    from occrecon.faces.align import align_face
    from occrecon.faces.samples import astronaut

    photo = astronaut()
    crop = align_face(photo, saved["landmarks68"], "deep3d", 64).image
    with torch.no_grad():
        expected = system.eval()(crop)[0].numpy()  # the network on the same aligned crop
    np.testing.assert_allclose(saved["initial"], expected, atol=1e-4)
    np.testing.assert_array_equal(saved["coeffs"], saved["initial"])
    assert _run([str(photos / "astronaut.png"), "--out", str(out), "--ckpt", str(ckpt), "--fit-steps", "5",
                 "--landmark-steps", "20", "--quiet"]) == 0  # fmt: skip
    refined = np.load(out / "astronaut" / "face0.npz")
    np.testing.assert_allclose(refined["initial"], expected, atol=1e-4)
    assert np.abs(refined["coeffs"] - refined["initial"]).max() > 1e-3


def test_reconstruct_with_an_exported_chain(photos, tmp_path, capsys):
    """`--pipeline`: the chain's coarse prediction starts the fit and its M_fin is the photometric mask."""
    from occrecon.chain import export_checkpoint
    from occrecon.systems.pipeline import PipelineSystem

    torch.manual_seed(0)
    stages = {
        "parsing": {"model": {"depth": 18, "width": 8}},
        "edge_lines": {"model": {"num_stacks": 1, "hourglass_depth": 2, "width": 8}},
        "reconstruction": {"model": {"depth": 18, "width": 8, "image_size": 224, "identity": "none", "renderer": "torch"}},
    }
    chain = export_checkpoint(PipelineSystem(width=8, stages=stages).eval(), tmp_path / "chain.ckpt")
    priors, layout, size, face_model = command.pipeline_priors(str(chain))
    crop = torch.rand(1, 3, size, size)
    assert priors.coeffs(crop).shape == (1, face_model.layout(layout).size)
    assert priors.labels(crop).shape == (1, size, size) and priors.labels(crop).dtype == torch.int64
    single = tmp_path / "one"
    single.mkdir()
    (single / "astronaut.png").write_bytes((photos / "astronaut.png").read_bytes())
    rc = _run([str(single), "--out", str(tmp_path / "out"), "--pipeline", str(chain), "--fit-steps", "5",
               "--landmark-steps", "20", "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().out
    assert (tmp_path / "out" / "astronaut" / "face0.obj").is_file()
