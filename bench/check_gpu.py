"""Do the nvdiffrast and torch backends agree? One short run for a session with a GPU (issue 3).

Renders the same scenes (procedural face batch, a 70k-triangle face-like mesh, overlapping
triangle soup) with every available backend, asserts >= 99.9 % identical triangle ids and
relative ``z/w`` differences < 1e-5 where the ids agree (against the reference backend), and
prints timings. Reference: nvdiffrast when CUDA and ``nvdiffrast.torch`` are available. Without
them it says so and still checks the torch backend: CPU against CUDA when there is a GPU,
otherwise the default chunking against a tiny chunk size (binning/chunking must not change the
result), so the script itself never rots. Imports: torch and occrecon only.

    python bench/check_gpu.py
"""

from __future__ import annotations

import math
import sys
import time

import torch

from occrecon.geometry.camera import PerspectiveCamera
from occrecon.render.backend import TorchBackend, get_backend, nvdiffrast_available

SIZE = 224


def _face_mesh() -> tuple[torch.Tensor, torch.Tensor] | None:
    try:
        from occrecon.facemodel.factory import load_face_model
    except ImportError:
        return None
    model = load_face_model("procedural")
    return model.mean_shape, model.triangles


def _grid_mesh(n_tri: int = 70_000) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(math.sqrt(n_tri / 2)) + 1
    t = torch.linspace(-1, 1, n)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    z = 0.6 * torch.sqrt(1 - (xx**2 + yy**2).clamp(max=1)) + 0.05 * torch.sin(9 * xx) * torch.cos(7 * yy)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return torch.stack([0.75 * xx, 0.95 * yy, z], -1).reshape(-1, 3), faces


def _posed(verts: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pose = torch.zeros(batch, 6)
    pose[:, :3] = (torch.rand(batch, 3, generator=gen) - 0.5) * 0.6
    pose[:, 3:5] = (torch.rand(batch, 2, generator=gen) - 0.5) * 0.4
    cam = PerspectiveCamera(SIZE)
    return cam.clip_from_view(cam.view_from_model(verts[None].expand(batch, -1, -1).float(), pose))


def _soup(n: int = 3000, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, n, 1, 3, generator=gen) * 2 - 1
    p = centre + 0.08 * torch.randn(batch, n, 3, 3, generator=gen)
    w = 2.0 + torch.tanh(p[..., 2:3])
    zw = 0.55 + 0.3 * torch.tanh(p[..., 2:3])
    pos = torch.cat([p[..., :2] * w * 0.9, zw * w, w], -1).reshape(batch, -1, 4)
    return pos, torch.arange(3 * n).reshape(n, 3)


def scenes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out = {}
    face = _face_mesh()
    if face is not None:
        out["procedural B=8"] = (_posed(face[0], 8, 0), face[1])
    else:
        print("(face models not importable: procedural scene skipped)")
    verts, faces = _grid_mesh()
    out["grid-70k B=4"] = (_posed(verts, 4, 1), faces)
    out["soup-3k B=4"] = _soup()
    return out


def _timed(backend, pos, tri, reps=3):
    best, rast = math.inf, None
    for _ in range(reps):
        if pos.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            rast = backend.rasterize(pos, tri, (SIZE, SIZE))
        if pos.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return rast.float().cpu(), best


def compare(ref: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    """(fraction of identical triangle ids, max relative z/w difference where ids agree)."""
    same = ref[..., 3] == got[..., 3]
    both = same & (ref[..., 3] > 0)
    rel = (ref[..., 2] - got[..., 2]).abs() / ref[..., 2].abs().clamp(min=1e-6)
    return same.float().mean().item(), (rel[both].max().item() if both.any() else 0.0)


def main() -> int:
    if nvdiffrast_available():
        ref_name, ref, ref_dev = "nvdiffrast/cuda", get_backend("nvdiffrast"), "cuda"
        others = [("torch/cuda", TorchBackend(), "cuda"), ("torch/cpu", TorchBackend(), "cpu")]
    else:
        print(
            "nvdiffrast not available (needs CUDA and `pip install diffrp-nvdiffrast`): checking the torch backend only"
        )
        ref_name, ref, ref_dev = "torch/cpu", TorchBackend(), "cpu"
        if torch.cuda.is_available():
            others = [("torch/cuda", TorchBackend(), "cuda")]
        else:
            others = [("torch/cpu chunk=4096", TorchBackend(chunk_elems=4096), "cpu")]
    print(f"{'scene':<16} {'backend':<22} {'ms':>9} {'same id %':>10} {'max rel dz':>11}")
    ok = True
    for name, (pos, tri) in scenes().items():
        tri = tri.to(torch.int32)
        r_ref, t_ref = _timed(ref, pos.to(ref_dev), tri.to(ref_dev))
        print(f"{name:<16} {ref_name:<22} {t_ref * 1e3:>9.1f} {'(ref)':>10} {'':>11}")
        for oname, backend, dev in others:
            r, t = _timed(backend, pos.to(dev), tri.to(dev))
            same, dz = compare(r_ref, r)
            good = same >= 0.999 and dz < 1e-5
            ok &= good
            print(f"{'':<16} {oname:<22} {t * 1e3:>9.1f} {same * 100:>10.3f} {dz:>11.2e} {'' if good else 'FAIL'}")
    print("check_gpu:", "PASS" if ok else "FAIL", f"(reference {ref_name})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
