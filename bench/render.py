"""CPU rasterizer vs Embree, measured in the same run (issue 18), plus where the time goes.

For each scene -- the procedural face model, the Surrey Face Model (when
``../shared/facemodels/sfm`` exists) and a synthetic BFM-sized face-like height field with 69,938
triangles -- at 224x224 under small random head poses:

* ``torch``: :func:`occrecon.render.torch_raster.rasterize` (visibility + perspective-correct
  barycentrics + ``z/w``, differentiable), img/s at batch 1 and batch 32;
* ``embree``: Intel Embree primary-visibility ray casting through ``embreex`` (the ``bench`` extra:
  ``pip install -e .[bench]``), one ray per pixel centre along +z through the NDC mesh,
  non-differentiable, traced on the same number of threads (a thread pool over ray blocks; the
  binding releases the GIL). Two figures: ``trace`` with the BVH built beforehand (the fastest
  Embree can answer "which triangle is at each pixel" -- the peer the ratio is against) and
  ``build+trace`` (a posed face needs a new BVH per image, so this is what a renderer would pay).

``same id %`` is the fraction of pixels whose triangle id (or emptiness) agrees between the two.
The profile table splits the torch rasterizer's time into its phases (``torch.profiler`` ranges
``raster.setup`` / ``raster.binning`` / ``raster.zbuffer`` / ``raster.barycentrics``).

    python bench/render.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from occrecon.geometry.camera import PerspectiveCamera
from occrecon.render.torch_raster import rasterize

SIZE = 224
SFM_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "facemodels" / "sfm"
PHASES = ("raster.setup", "raster.binning", "raster.zbuffer", "raster.barycentrics")


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


class EmbreePeer:
    """Embree primary visibility of NDC meshes: one ray per pixel centre, along +z."""

    def __init__(self, size: int, threads: int) -> None:
        import embreex.mesh_construction as mc
        import embreex.rtcore_scene as rs

        self._rs, self._mc = rs, mc
        c = ((np.arange(size) * 2 + 1) / size - 1).astype(np.float32)
        py, px = np.meshgrid(c, c, indexing="ij")  # row i samples y_ndc of row i (nvdiffrast order)
        origins = np.stack([px.ravel(), py.ravel(), np.full(size * size, -2.0, np.float32)], -1)
        directions = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (size * size, 1))
        blocks = np.array_split(np.arange(size * size), threads)
        self._rays = [(np.ascontiguousarray(origins[b]), np.ascontiguousarray(directions[b])) for b in blocks]
        self._pool = ThreadPoolExecutor(threads)

    def build(self, pos: torch.Tensor, faces: np.ndarray):
        """BVH of one posed mesh ``pos [V, 4]`` (clip space) in NDC."""
        ndc = (pos[:, :3] / pos[:, 3:]).numpy().astype(np.float32)
        scene = self._rs.EmbreeScene()
        self._mc.TriangleMesh(scene, ndc, faces)
        scene.run(self._rays[0][0][:1], self._rays[0][1][:1])  # commit (BVH build) now
        return scene

    def trace(self, scene) -> np.ndarray:
        """Triangle id per pixel (``-1`` where empty), ``[H * W]``."""
        parts = self._pool.map(lambda r: scene.run(r[0], r[1], output=0), self._rays)
        return np.concatenate(list(parts))


def best_seconds(fn, reps: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def profile_table(pos: torch.Tensor, tri: torch.Tensor) -> list[tuple[str, float]]:
    """Milliseconds per image in each rasterizer phase (``torch.profiler`` ranges, one call)."""
    from torch.profiler import ProfilerActivity, profile

    rasterize(pos, tri, (SIZE, SIZE))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        rasterize(pos, tri, (SIZE, SIZE))
    totals = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in PHASES}
    return [(p, totals.get(p, 0.0) / 1e3 / pos.shape[0]) for p in PHASES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 60 s on 2 cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads = Embree trace threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    reps = 2 if args.quick else 5
    try:
        peer = EmbreePeer(SIZE, threads)
    except ImportError:
        peer = None
        print("embreex not installed (`pip install -e .[bench]`): Embree columns skipped")
    print(f"224x224, {threads} threads, best of {reps}; torch = rasterize (visibility + barycentrics + z/w)")
    head = f"{'scene':<14} {'tris':>6} {'batch':>5} {'torch img/s':>11}"
    if peer:
        head += f" {'embree trace':>12} {'ratio':>6} {'build+trace':>11} {'ratio':>6} {'same id %':>9}"
    print(head)
    summary = []
    scenes = meshes()
    for name, (verts, faces) in scenes.items():
        tri = faces.to(torch.int32)
        for batch in (1, 32):
            pos = clip_positions(verts, batch, "cpu")
            with torch.no_grad():
                ips = batch / best_seconds(lambda pos=pos, tri=tri: rasterize(pos, tri, (SIZE, SIZE)), reps)
            row = f"{name:<14} {tri.shape[0]:>6} {batch:>5} {ips:>11.1f}"
            if peer:
                f32 = faces.numpy().astype(np.int32)
                n_img = min(batch, 8)  # Embree runs per image: a few images give its rate
                scenes_e = [peer.build(pos[b], f32) for b in range(n_img)]
                trace_ips = n_img / best_seconds(lambda s=scenes_e: [peer.trace(x) for x in s], reps)
                build_ips = n_img / best_seconds(
                    lambda p=pos, n=n_img, f=f32: [peer.trace(peer.build(p[b], f)) for b in range(n)], reps
                )
                ids_t = rasterize(pos[:n_img], tri, (SIZE, SIZE))[..., 3].long().reshape(n_img, -1) - 1
                ids_e = torch.from_numpy(np.stack([peer.trace(s) for s in scenes_e])).long()
                same = (ids_t == ids_e).float().mean().item()
                row += f" {trace_ips:>12.1f} {ips / trace_ips:>5.2f}x {build_ips:>11.1f} {ips / build_ips:>5.1f}x {100 * same:>9.3f}"
                if batch == 32:
                    summary.append(f"{name} B=32 {ips:.0f} img/s = {ips / trace_ips:.2f}x Embree trace ({trace_ips:.0f}), {ips / build_ips:.1f}x Embree build+trace")
            elif batch == 32:
                summary.append(f"{name} B=32 {ips:.0f} img/s")
            print(row)
    verts, faces = scenes["synthetic-70k"]
    pos = clip_positions(verts, 8, "cpu")
    print("\nwhere the time goes (synthetic-70k, batch 8, torch.profiler ranges):")
    table = profile_table(pos, faces.to(torch.int32))
    total = sum(ms for _, ms in table)
    for phase, ms in table:
        print(f"  {phase:<22} {ms:7.2f} ms/img {100 * ms / max(total, 1e-9):5.1f} %")
    print(f"render bench ({threads} threads): " + "; ".join(summary))


if __name__ == "__main__":
    main()
