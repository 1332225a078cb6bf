"""tfjs manifest decoding and the face-api -> DlibResNet converter (occrecon.assets)."""

import argparse
import io
import json
import struct
import tarfile

import numpy as np
import pytest
import torch

from occrecon.assets import face_api
from occrecon.assets.cache import cache_dir
from occrecon.assets.tfjs import quantize_uint8, read_manifest, write_manifest
from occrecon.commands import assets as assets_command
from occrecon.errors import DataFormatError, MissingAssetError
from occrecon.nets.identity.dlib_resnet import DlibResNet


@pytest.fixture
def hand_manifest(tmp_path):
    """A manifest written by hand: 5 weights of 5 storage types over 2 shards."""
    entries = [
        {
            "name": "q8",
            "shape": [2, 2],
            "dtype": "float32",
            "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
        },
        {"name": "f32", "shape": [3], "dtype": "float32"},
        {"name": "i32", "shape": [2], "dtype": "int32"},
        {
            "name": "q16",
            "shape": [2],
            "dtype": "float32",
            "quantization": {"dtype": "uint16", "scale": 0.001, "min": 2.0},
        },
        {"name": "f16", "shape": [1, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
    ]
    data = bytes([0, 1, 2, 255])  # q8
    data += struct.pack("<3f", 1.5, -2.0, 3.25)  # f32
    data += struct.pack("<2i", 7, -9)  # i32
    data += struct.pack("<2H", 0, 1000)  # q16
    data += struct.pack("<2e", 0.5, -4.0)  # f16 (IEEE half, exactly representable)
    (tmp_path / "m-shard1").write_bytes(data[:6])  # the split falls inside "f32"
    (tmp_path / "m-shard2").write_bytes(data[6:])
    manifest = tmp_path / "m-weights_manifest.json"
    manifest.write_text(json.dumps([{"paths": ["m-shard1", "m-shard2"], "weights": entries}]))
    return manifest


def test_hand_written_manifest_decodes_exactly(hand_manifest):
    w = read_manifest(hand_manifest)
    # dequantised = q * scale + min, by hand
    np.testing.assert_array_equal(w["q8"], np.array([[-1.0, -0.5], [0.0, 126.5]], dtype=np.float32))
    assert w["q8"].dtype == np.float32
    np.testing.assert_array_equal(w["f32"], np.array([1.5, -2.0, 3.25], dtype=np.float32))
    np.testing.assert_array_equal(w["i32"], np.array([7, -9], dtype=np.int32))
    np.testing.assert_array_equal(w["q16"], np.array([2.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(w["f16"], np.array([[0.5, -4.0]], dtype=np.float32))


def test_truncated_or_oversized_shards_are_reported(hand_manifest, tmp_path):
    shard = tmp_path / "m-shard2"
    full = shard.read_bytes()
    shard.write_bytes(full[:-1])
    with pytest.raises(DataFormatError, match="f16"):
        read_manifest(hand_manifest)
    shard.write_bytes(full + b"\0")
    with pytest.raises(DataFormatError, match="bytes"):
        read_manifest(hand_manifest)
    shard.unlink()
    with pytest.raises(DataFormatError, match="m-shard2"):
        read_manifest(hand_manifest)


def test_unknown_quantization_dtype(tmp_path):
    (tmp_path / "s").write_bytes(b"\0\0")
    entry = {"name": "x", "shape": [2], "dtype": "float32", "quantization": {"dtype": "int4", "scale": 1, "min": 0}}
    (tmp_path / "m.json").write_text(json.dumps([{"paths": ["s"], "weights": [entry]}]))
    with pytest.raises(DataFormatError, match="int4"):
        read_manifest(tmp_path / "m.json")


def test_name_mapping():
    assert face_api.torch_name("conv32_down/conv/filters") == "conv32_down.conv.weight"
    assert face_api.torch_name("conv64_1/conv2/scale/weights") == "conv64_1.conv2.scale.weight"
    assert face_api.torch_name("conv64_1/conv2/scale/biases") == "conv64_1.conv2.scale.bias"
    assert face_api.torch_name("fc") == "fc.weight"
    for key in DlibResNet().state_dict():
        assert face_api.torch_name(face_api.tfjs_name(key)) == key


def _random_net(seed: int = 0) -> DlibResNet:
    torch.manual_seed(seed)
    net = DlibResNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.05)
        for name, p in net.named_parameters():
            if name.endswith("scale.weight"):
                p.uniform_(0.5, 1.5)  # keep activations in a sane range through 29 layers
    return net


def test_layouts_follow_tfjs():
    weights = face_api.state_dict_to_face_api(_random_net().state_dict())
    assert len(weights) == 117  # the count of face-api's manifest
    assert weights["conv32_down/conv/filters"].shape == (7, 7, 3, 32)  # HWIO
    assert weights["conv64_down/conv1/conv/filters"].shape == (3, 3, 32, 64)
    assert weights["fc"].shape == (256, 128)


def test_round_trip_float_is_exact(tmp_path):
    net = _random_net()
    manifest = write_manifest(
        face_api.state_dict_to_face_api(net.state_dict()), tmp_path, "face_recognition_model", shard_bytes=1 << 20
    )
    assert len(json.loads(manifest.read_text())[0]["paths"]) > 1  # several shards
    state = face_api.face_api_to_state_dict(read_manifest(manifest))
    for key, value in net.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    other = DlibResNet().eval()
    other.load_state_dict(state)
    x = torch.rand(2, 3, 150, 150)
    torch.testing.assert_close(other(x), net(x), rtol=0, atol=0)


def test_round_trip_quantised_within_half_a_step(tmp_path):
    net = _random_net(1)
    weights = face_api.state_dict_to_face_api(net.state_dict())
    state = face_api.face_api_to_state_dict(read_manifest(write_manifest(weights, tmp_path, "q", quantize=True)))
    for key, value in net.state_dict().items():
        step = (value.max() - value.min()) / 255
        assert (state[key] - value).abs().max() <= step / 2 + 1e-6, key


def _fake_tarball(path, net):
    """An npm-pack-like tarball holding a face-api manifest of ``net`` (uint8 quantised)."""
    folder = path.parent / "pkg"
    manifest = write_manifest(
        face_api.state_dict_to_face_api(net.state_dict()), folder, "face_recognition_model", quantize=True
    )
    with tarfile.open(path, "w:gz") as archive:
        archive.add(manifest, arcname=face_api.MANIFEST_MEMBER)
        for shard in json.loads(manifest.read_text())[0]["paths"]:
            archive.add(folder / shard, arcname=f"package/model/{shard}")
        info = tarfile.TarInfo("package/package.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    return read_manifest(manifest)


def test_fetch_from_tarball_caches_a_loadable_state_dict(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path / "cache"))
    net = _random_net(2)
    decoded = _fake_tarball(tmp_path / "face-api.tgz", net)
    path = face_api.fetch_face_recognition(tmp_path / "face-api.tgz")
    assert path == tmp_path / "cache" / face_api.CACHE_NAME and path.is_file()
    loaded = DlibResNet().eval()
    loaded.load_state_dict(face_api.load_face_recognition_state_dict())
    expected = face_api.face_api_to_state_dict(decoded)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_cli_fetch_with_tarball(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path / "cache"))
    _fake_tarball(tmp_path / "face-api.tgz", _random_net(3))
    parser = argparse.ArgumentParser(prog="occrecon")
    assets_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["assets", "fetch", "face-recognition", "--tarball", str(tmp_path / "face-api.tgz")])
    assert args.handler(args) == 0
    assert (tmp_path / "cache" / face_api.CACHE_NAME).is_file()
    args = parser.parse_args(
        ["assets", "fetch", "face-recognition", "--force", "--tarball", str(tmp_path / "absent.tgz")]
    )
    assert args.handler(args) == 1
    assert "absent.tgz" in capsys.readouterr().out


def test_missing_assets_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path))
    with pytest.raises(MissingAssetError, match="occrecon assets fetch face-recognition"):
        face_api.load_face_recognition_state_dict()
    with pytest.raises(MissingAssetError, match="tarball"):
        face_api.read_face_api_tarball(tmp_path / "nope.tgz")
    (tmp_path / "bad.tgz").write_bytes(b"not a tarball")
    with pytest.raises(DataFormatError, match="bad.tgz"):
        face_api.read_face_api_tarball(tmp_path / "bad.tgz")
    corrupt = tmp_path / face_api.CACHE_NAME
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="occrecon assets fetch"):
        face_api.load_face_recognition_state_dict()
    monkeypatch.setattr(face_api.shutil, "which", lambda name: None)
    with pytest.raises(MissingAssetError, match="npm"):
        face_api.npm_pack(tmp_path)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("OCCRECON_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(create=True) == tmp_path / "xdg" / "occrecon" and (tmp_path / "xdg" / "occrecon").is_dir()


def test_quantize_uint8_hand_values():
    q, meta = quantize_uint8(np.array([-1.0, 0.0, 1.55], dtype=np.float32))
    assert meta["min"] == -1.0 and meta["scale"] == pytest.approx(2.55 / 255)
    np.testing.assert_array_equal(q, [0, 100, 255])
