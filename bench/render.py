"""Rasterize + interpolate throughput of the renderer backends (issue 3).

Images/s at 224x224 for three meshes -- the procedural face model, the Surrey Face Model (when
``../shared/facemodels/sfm`` exists) and a synthetic BFM-sized face-like height field with 70k
triangles -- at batch 1 and 32, with the CPU torch backend (and the GPU backends when CUDA is
available). The naive baseline, timed in the same run, is a straightforward vectorised dense
rasterizer: every pixel against every triangle (in chunks of triangles, running z-min), i.e.
what the torch backend does without binning. For big meshes the baseline is stopped after a time
budget and extrapolated linearly in the number of triangles (marked ``~``).

    python bench/render.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from occrecon.geometry.camera import PerspectiveCamera
from occrecon.render.backend import TorchBackend, get_backend, nvdiffrast_available

SIZE = 224
SFM_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "facemodels" / "sfm"


def synthetic_face(n_tri: int = 70_000) -> tuple[torch.Tensor, torch.Tensor]:
    """A face-sized ellipsoidal height field with ``~n_tri`` triangles: ``[V, 3]``, ``[F, 3]``."""
    n = int(math.sqrt(n_tri / 2)) + 1
    t = torch.linspace(-1, 1, n)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    r2 = (xx**2 + yy**2).clamp(max=1)
    verts = torch.stack(
        [0.75 * xx, 0.95 * yy, 0.6 * torch.sqrt(1 - r2) + 0.05 * torch.sin(9 * xx) * torch.cos(7 * yy)], -1
    )
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return verts.reshape(-1, 3), faces


def meshes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out = {}
    try:
        from occrecon.facemodel.factory import load_face_model

        model = load_face_model("procedural")
        out["procedural"] = (model.mean_shape, model.triangles)
        if SFM_DIR.is_dir():
            model = load_face_model("sfm", SFM_DIR)
            out["sfm"] = (model.mean_shape, model.triangles)
    except ImportError as err:  # face models not installed in this checkout
        print(f"(skipping face-model meshes: {err})")
    out["synthetic-70k"] = synthetic_face()
    return out


def clip_positions(verts: torch.Tensor, batch: int, device: str, seed: int = 0) -> torch.Tensor:
    """``[B, V, 4]`` clip positions of the mesh under small random head poses."""
    gen = torch.Generator().manual_seed(seed)
    pose = torch.zeros(batch, 6)
    pose[:, :3] = (torch.rand(batch, 3, generator=gen) - 0.5) * 0.4
    cam = PerspectiveCamera(SIZE)
    v = verts[None].expand(batch, -1, -1).float()
    return cam.clip_from_view(cam.view_from_model(v, pose)).to(device)


@torch.no_grad()
def naive_dense_ids(
    pos: torch.Tensor, tri: torch.Tensor, size: int, chunk: int = 256, budget_s: float | None = None
) -> float:
    """Dense baseline; returns seconds for the whole mesh (extrapolated if the budget ran out)."""
    t0 = time.perf_counter()
    c = (torch.arange(size, dtype=pos.dtype, device=pos.device) * 2 + 1) / size - 1
    py, px = torch.meshgrid(c, c, indexing="ij")
    px, py = px.reshape(1, -1), py.reshape(1, -1)
    for b in range(pos.shape[0]):
        ndc = pos[b, :, :3] / pos[b, :, 3:]
        zbuf = torch.full((size * size,), math.inf, device=pos.device)
        ids = torch.full((size * size,), -1, device=pos.device)
        for start in range(0, tri.shape[0], chunk):
            v = ndc[tri[start : start + chunk]]  # [T, 3, 3]
            (x0, x1, x2), (y0, y1, y2), z = v[..., 0].T[..., None], v[..., 1].T[..., None], v[..., 2]
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            l0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
            l1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
            l2 = 1 - l0 - l1
            zz = l0 * z[:, 0:1] + l1 * z[:, 1:2] + l2 * z[:, 2:3]
            zz = torch.where((l0 >= 0) & (l1 >= 0) & (l2 >= 0), zz, math.inf)
            zmin, arg = zz.min(0)
            better = zmin < zbuf
            zbuf, ids = torch.where(better, zmin, zbuf), torch.where(better, arg + start, ids)
            spent = time.perf_counter() - t0
            if budget_s is not None and spent > budget_s:
                done = b * tri.shape[0] + start + chunk
                return spent * pos.shape[0] * tri.shape[0] / done
    return time.perf_counter() - t0


def time_backend(backend, pos, tri, reps: int) -> float:
    """Best seconds per call of rasterize + interpolate (3 attributes)."""
    attr = torch.rand(pos.shape[0], pos.shape[1], 3, device=pos.device)
    best = math.inf
    for _ in range(reps + 1):  # first call warms up (contexts, allocator)
        if pos.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            backend.interpolate(attr, backend.rasterize(pos, tri, (SIZE, SIZE)), tri)
        if pos.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, capped baseline (< 60 s on 2 cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps, budget = (1, 4.0) if args.quick else (3, 30.0)
    backends = [("torch", "cpu", TorchBackend())]
    if torch.cuda.is_available():
        backends.append(("torch", "cuda", TorchBackend()))
        if nvdiffrast_available():
            backends.append(("nvdiffrast", "cuda", get_backend("nvdiffrast")))
    print(f"{'mesh':<14} {'tris':>6} {'backend':<16} {'batch':>5} {'img/s':>9} {'naive img/s':>12} {'speed-up':>9}")
    summary = None
    for name, (verts, faces) in meshes().items():
        tri = faces.to(torch.int32)
        naive_s = naive_dense_ids(clip_positions(verts, 1, "cpu"), faces.long(), SIZE, budget_s=budget)
        naive_ips = 1.0 / naive_s
        for bname, device, backend in backends:
            for batch in (1, 32):
                pos = clip_positions(verts, batch, device)
                ips = batch / time_backend(backend, pos, tri.to(device), reps)
                ratio = ips / naive_ips if device == "cpu" else float("nan")
                mark = "~" if naive_s > budget else " "
                print(
                    f"{name:<14} {tri.shape[0]:>6} {bname + '/' + device:<16} {batch:>5} {ips:>9.1f} {mark}{naive_ips:>11.3f} {ratio:>8.0f}x"
                )
                if device == "cpu" and batch == 32 and (summary is None or name == "procedural"):
                    summary = f"render bench ({torch.get_num_threads()} threads): torch CPU rasterize+interpolate {SIZE}px, {name} B=32: {ips:.1f} img/s = {ratio:.0f}x the naive dense rasterizer"
    print(summary)


if __name__ == "__main__":
    main()
