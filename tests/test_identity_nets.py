"""Identity networks: dlib ResNet port, ArcFace IResNet, and the factory that may disable L_feat."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from occrecon.assets.face_api import default_weights_path
from occrecon.assets.identity import build_identity_network
from occrecon.errors import ConfigError, DataFormatError, MissingAssetError
from occrecon.nets.identity.arcface import iresnet, load_arcface
from occrecon.nets.identity.dlib_resnet import MEAN_RGB_255, DlibResNet, ResidualBlock


def test_dlib_resnet_shapes_and_parameter_count():
    net = DlibResNet().eval()
    sizes = {}
    net.conv256_down_out.register_forward_hook(lambda m, i, o: sizes.update(last=tuple(o.shape)))
    out = net(torch.rand(2, 3, 150, 150))
    assert out.shape == (2, 128)
    # 150 -7x7/2 valid-> 72 -pool 3/2-> 35 -down-> 17 -> 8 -> 4 (padded from 3) -> 2 (padded from 1)
    assert sizes["last"] == (2, 256, 2, 2)
    # 5.61 M parameters (face-api's 117 tensors): pretrained-assets.md
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(5.61e6, rel=2e-3)
    assert net(torch.rand(1, 3, 100, 100)).shape == (1, 128)  # resized to 150 first


def test_input_normalisation():
    net = DlibResNet().eval()
    seen = {}
    net.conv32_down.conv.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    image = torch.tensor([200.0, 100.0, 50.0]).view(1, 3, 1, 1).expand(1, 3, 150, 150) / 255
    net(image)
    expected = (torch.tensor([200.0, 100.0, 50.0]) - torch.tensor(MEAN_RGB_255)) / 256
    torch.testing.assert_close(seen["x"][0, :, 0, 0], expected)


def test_down_block_pads_branch_and_channels_like_face_api():
    block = ResidualBlock(1, 2, down=True)
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
        block.conv2.conv.bias.fill_(1.0)  # branch output is 1 wherever it exists
        block.conv2.scale.weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = block(x)  # branch: (4-3)//2+1 = 1 px, shortcut 2x2 average pool -> 2 px
    pooled = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
    expected_c0 = pooled + torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # zero row/column appended bottom/right
    expected_c1 = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # shortcut padded with zero channels
    torch.testing.assert_close(out[0], torch.stack([expected_c0, expected_c1]))


def test_iresnet50_shape_keys_and_round_trip(tmp_path):
    torch.manual_seed(0)
    net = iresnet("iresnet50").eval()
    keys = set(net.state_dict())
    for key in ("conv1.weight", "prelu.weight", "layer1.0.bn1.running_var", "layer1.0.downsample.0.weight",
                "layer3.13.conv2.weight", "layer4.2.bn3.weight", "bn2.weight", "fc.weight", "features.running_mean"):  # fmt: skip
        assert key in keys
    x = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 512)
    # insightface checkpoints saved from DDP carry a "module." prefix
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "backbone.pth")
    loaded = load_arcface(tmp_path / "backbone.pth", "iresnet50").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), out, rtol=0, atol=0)
    with pytest.raises(DataFormatError, match="iresnet100"):
        load_arcface(tmp_path / "backbone.pth", "iresnet100")
    with pytest.raises(MissingAssetError, match="insightface"):
        load_arcface(tmp_path / "absent.pth")


def test_iresnet100_depth():
    net = iresnet("iresnet100")
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 13, 30, 3]


def test_factory_disables_feat_loudly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OCCRECON_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        net, reason = build_identity_network("dlib")
    assert net is None and "occrecon assets fetch face-recognition" in reason
    assert "L_feat is disabled" in caplog.text
    net, reason = build_identity_network("arcface_r50")
    assert net is None and "backbone.pth" in reason
    assert build_identity_network("none")[0] is None
    with pytest.raises(ConfigError):
        build_identity_network("vggface")


def test_factory_returns_a_frozen_network(tmp_path):
    torch.save(iresnet("iresnet50").state_dict(), tmp_path / "backbone.pth")
    net, reason = build_identity_network("arcface_r50", tmp_path / "backbone.pth")
    assert reason == "" and not net.training
    assert not any(p.requires_grad for p in net.parameters())


def _cartoon_face(seed: int) -> torch.Tensor:
    """A synthetic 150 px face chip (eyes, brows, nose, mouth) with seed-dependent geometry."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (150, 150), tuple(int(v) for v in rng.integers(60, 200, 3)))
    d = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [240, 190, 160]))
    w, h = rng.integers(40, 60), rng.integers(55, 72)
    d.ellipse([75 - w, 80 - h, 75 + w, 80 + h], fill=skin)
    eye_y, sep = 47 + rng.integers(-4, 5), rng.integers(22, 30)
    for ex in (75 - sep, 75 + sep):
        d.ellipse([ex - 8, eye_y - 4, ex + 8, eye_y + 4], fill=(255, 255, 255))
        d.ellipse([ex - 3, eye_y - 3, ex + 3, eye_y + 3], fill=(40, 30, 20))
        d.line([ex - 12, eye_y - 12, ex + 12, eye_y - 13], fill=(60, 40, 30), width=3)
    d.polygon([(75, 60), (67, 78), (83, 78)], fill=tuple(max(0, c - 30) for c in skin))
    mouth_y = 103 + rng.integers(-4, 5)
    d.chord([52, mouth_y - 8, 98, mouth_y + 8], 0, 180, fill=(150, 50, 60))
    array = np.array(img.filter(ImageFilter.GaussianBlur(1.0)))
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


needs_real_weights = pytest.mark.skipif(
    not default_weights_path().is_file(),
    reason="real face-api weights not cached: run `occrecon assets fetch face-recognition`",
)


@pytest.mark.slow
@needs_real_weights
def test_real_weights_are_shift_invariant_but_tell_faces_apart():
    net, reason = build_identity_network("dlib")
    assert net is not None, reason
    faces = torch.stack([_cartoon_face(s) for s in range(6)])
    with torch.no_grad():
        base = net(faces)
        shifted = torch.cat([net(torch.roll(faces, shift, (2, 3))) for shift in [(0, 2), (2, 0), (1, -2)]])
    shift_distance = (shifted - base.repeat(3, 1)).norm(dim=1)
    cross = torch.cdist(base, base)[~torch.eye(6, dtype=torch.bool)]
    # a 2 px shift moves a descriptor less than the nearest other face is away
    assert shift_distance.max() < cross.min()
    assert shift_distance.max() < 0.6  # dlib's same-person threshold


@pytest.mark.slow
@needs_real_weights
def test_matches_dlib_itself():
    dlib = pytest.importorskip("dlib", reason="dlib-bin not installed in this environment")
    models = pytest.importorskip("face_recognition_models", reason="face-recognition-models not installed")
    reference = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    net, _ = build_identity_network("dlib")
    faces = torch.stack([_cartoon_face(s) for s in range(4)])
    chips = (faces * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    expected = torch.tensor(
        np.stack([np.array(reference.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips])
    )
    with torch.no_grad():
        ours = net(torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255).double()
    assert torch.nn.functional.cosine_similarity(ours, expected).min() >= 0.999


@pytest.mark.slow
@needs_real_weights
def test_feature_loss_pipeline_with_real_weights():
    """L_feat end to end: 5-point alignment to the dlib chip + frozen real network."""
    from occrecon.alignment import TEMPLATES
    from occrecon.losses.reconstruction import IdentityFeatureLoss

    net, _ = build_identity_network("dlib")
    loss = IdentityFeatureLoss(net)
    faces = torch.stack([_cartoon_face(s) for s in range(3)])
    points = (TEMPLATES["dlib"][1] + 0.5).expand(3, 5, 2)  # the chips are already aligned
    moved = torch.roll(faces, (2, 2), (2, 3))  # same faces, 2 px away, landmarks moved with them
    realigned = loss(faces, moved, points, points + 2.0)  # the alignment undoes the shift
    unaligned = loss(faces, moved, points, points)
    rendered = faces[[1, 2, 0]].clone().requires_grad_(True)
    different = loss(faces, rendered, points, points)
    different.backward()
    assert realigned.item() < 1e-4
    assert different.item() > 2 * unaligned.item() > 0  # measured: 0.035 vs 0.008
    assert rendered.grad.abs().sum() > 0
