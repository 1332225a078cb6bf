"""Backend selection and (on a GPU machine) agreement of the nvdiffrast and torch backends."""

import sys

import pytest
import torch

from occrecon.errors import ConfigError
from occrecon.render import backend as rb

needs_nvdiffrast = pytest.mark.skipif(
    not rb.nvdiffrast_available(), reason="needs CUDA and nvdiffrast.torch (pip install diffrp-nvdiffrast)"
)


def scene(device, n=400, batch=2, seed=0):
    """Random overlapping triangles in front of a perspective camera, clip space."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, n, 1, 3, generator=gen) * 2 - 1
    pos3 = centre + 0.15 * torch.randn(batch, n, 3, 3, generator=gen)
    w = 2.0 + torch.tanh(pos3[..., 2:3])
    zw = 0.55 + 0.3 * torch.tanh(pos3[..., 2:3])  # z/w in (0.25, 0.85): away from 0 and the clip planes
    pos = torch.cat([pos3[..., :2] * w * 0.9, zw * w, w], -1).reshape(batch, -1, 4)
    tri = torch.arange(3 * n, dtype=torch.int32).reshape(n, 3)
    return pos.to(device), tri.to(device)


def test_torch_and_auto_without_cuda_or_nvdiffrast():
    assert isinstance(rb.get_backend("torch"), rb.TorchBackend)
    if not rb.nvdiffrast_available():
        assert rb.get_backend("auto").name == "torch"
    with pytest.raises(ConfigError, match="unknown render backend"):
        rb.get_backend("opengl")


def test_import_is_lazy_and_missing_nvdiffrast_is_a_clear_error():
    assert "nvdiffrast.torch" not in sys.modules or rb.nvdiffrast_available()
    if not rb.nvdiffrast_available():
        with pytest.raises(ConfigError, match="nvdiffrast|CUDA"):
            rb.get_backend("nvdiffrast")


def test_torch_backend_topology_cache_reused_for_same_faces():
    backend = rb.TorchBackend()
    pos, tri = scene("cpu", n=20, batch=1)
    rast = backend.rasterize(pos, tri, (16, 16))
    color = backend.interpolate(torch.rand(1, pos.shape[1], 3), rast, tri)
    first = backend.antialias(color, rast, pos, tri)
    topo = next(iter(backend._topology.values()))
    torch.testing.assert_close(backend.antialias(color, rast, pos, tri), first)
    assert next(iter(backend._topology.values())) is topo


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_cpu():
    pos, tri = scene("cpu")
    cpu = rb.TorchBackend().rasterize(pos, tri, (64, 48))
    gpu = rb.TorchBackend().rasterize(pos.cuda(), tri.cuda(), (64, 48)).cpu()
    assert torch.equal(cpu[..., 3], gpu[..., 3])
    torch.testing.assert_close(cpu[..., :3], gpu[..., :3], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@needs_nvdiffrast
def test_nvdiffrast_and_torch_agree():
    pos, tri = scene("cuda")
    ref = rb.NvdiffrastBackend().rasterize(pos, tri, (96, 80))
    got = rb.TorchBackend().rasterize(pos, tri, (96, 80))
    same = (ref[..., 3] == got[..., 3]).float().mean().item()
    assert same >= 0.999
    both = (ref[..., 3] > 0) & (ref[..., 3] == got[..., 3])
    rel = ((ref[..., 2] - got[..., 2]).abs() / ref[..., 2].abs().clamp(min=1e-6))[both]
    assert rel.max().item() < 1e-5
    torch.testing.assert_close(got[..., :2][both], ref[..., :2][both], atol=1e-4, rtol=0)
