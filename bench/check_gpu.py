"""One prepared GPU check (issue 18): backends agree, and how fast every stage trains and infers.

Sections (``--all`` runs every one; without it only ``backends``):

1. ``backends``: the same scenes (procedural face batch, a 70k-triangle face-like mesh,
   overlapping triangle soup) rendered by nvdiffrast and the torch backend: >= 99.9 % identical
   triangle ids, relative ``z/w`` differences < 1e-5 where the ids agree, and the gradients of an
   antialiased, interpolated image w.r.t. vertex colours and positions (cosine similarity
   >= 0.99 for colours, >= 0.9 for positions: the two antialias filters differ in detail).
   Without nvdiffrast the torch backend is checked against itself (CUDA vs CPU, or a tiny
   chunk size on the CPU) so the script never rots.
2. ``train``: each stage's training img/s at 224 px (``bench/train_step.py``'s Lightning loop on
   a synthetic set), bf16 autocast (``bf16-mixed``) and channels-last on CUDA; for the coarse stage
   also with its regressor under ``torch.compile`` (measured, compile time excluded); the data
   loader's samples/s per worker on the GPU box's CPU and the loader workers that rate needs.
3. ``pipeline``: full-pipeline inference (``bench/pipeline.py``): batch-1 latency and batch-64
   throughput, bf16 autocast, per stage.
4. peak GPU memory of every section (``torch.cuda.max_memory_allocated``).

Under 8 minutes on one H200. ``--cpu-smoke`` runs every section on the CPU at toy sizes
(128 px, width 8, batch 2, 1 step) to prove the script works where no GPU is
(``tests/test_bench_check_gpu.py``). With the device tool (README "Benchmarks"):

    python bench/check_gpu.py --all [--cpu-smoke] [--out results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render import clip_positions, synthetic_face  # noqa: E402 - bench/ sibling

from occrecon.render.backend import TorchBackend, get_backend, nvdiffrast_available  # noqa: E402

SIZE = 224


def _soup(n: int = 3000, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, n, 1, 3, generator=gen) * 2 - 1
    p = centre + 0.08 * torch.randn(batch, n, 3, 3, generator=gen)
    w = 2.0 + torch.tanh(p[..., 2:3])
    zw = 0.55 + 0.3 * torch.tanh(p[..., 2:3])
    pos = torch.cat([p[..., :2] * w * 0.9, zw * w, w], -1).reshape(batch, -1, 4)
    return pos, torch.arange(3 * n).reshape(n, 3)


def scenes(size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from occrecon.facemodel.factory import load_face_model

    out = {}
    model = load_face_model("procedural")
    out["procedural B=8"] = (clip_positions(model.mean_shape, 8, "cpu", seed=0), model.triangles)
    verts, faces = synthetic_face()
    out["grid-70k B=4"] = (clip_positions(verts, 4, "cpu", seed=1), faces)
    out["soup-3k B=4"] = _soup()
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _render(backend, pos, tri, colour, size):
    rast = backend.rasterize(pos, tri, (size, size))
    return rast, backend.antialias(backend.interpolate(colour, rast, tri), rast, pos, tri)


def image_and_grads(backend, pos, tri, size, device):
    """``rast``, seconds, and the gradients of a fixed weighting of the antialiased image."""
    pos = pos.to(device).float().requires_grad_(True)
    tri = tri.to(device).to(torch.int32)
    gen = torch.Generator().manual_seed(1)
    colour = torch.rand(pos.shape[0], pos.shape[1], 3, generator=gen).to(device).requires_grad_(True)
    weight = torch.rand(pos.shape[0], size, size, 3, generator=gen).to(device)
    _render(backend, pos.detach(), tri, colour.detach(), size)  # warm-up (contexts, allocator)
    _sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        rast, _ = _render(backend, pos, tri, colour, size)
    _sync()
    seconds = time.perf_counter() - t0
    _, image = _render(backend, pos, tri, colour, size)
    (image * weight).sum().backward()
    return rast.detach().float().cpu(), seconds, colour.grad.cpu(), pos.grad.cpu()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.reshape(1, -1).double(), b.reshape(1, -1).double()).item()


def check_backends(size: int) -> tuple[bool, list[dict]]:
    if nvdiffrast_available():
        ref_name, ref, ref_dev = "nvdiffrast/cuda", get_backend("nvdiffrast"), "cuda"
        others = [("torch/cuda", TorchBackend(), "cuda"), ("torch/cpu", TorchBackend(), "cpu")]
    else:
        print("nvdiffrast not available (needs CUDA and `pip install diffrp-nvdiffrast`): torch backend only")
        ref_name, ref, ref_dev = "torch/cpu", TorchBackend(), "cpu"
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        others = [(f"torch/{dev}" + ("" if dev == "cuda" else " chunk=4096"), TorchBackend(chunk_elems=4096), dev)]
    print(f"{'scene':<16} {'backend':<22} {'ms':>8} {'same id %':>10} {'max rel dz':>11} {'cos dcolour':>11} {'cos dpos':>9}")
    ok, rows = True, []
    for name, (pos, tri) in scenes(size).items():
        r_ref, t_ref, gc_ref, gp_ref = image_and_grads(ref, pos, tri, size, ref_dev)
        print(f"{name:<16} {ref_name:<22} {t_ref * 1e3:>8.1f} {'(ref)':>10}")
        for oname, backend, dev in others:
            r, t, gc, gp = image_and_grads(backend, pos, tri, size, dev)
            same = (r_ref[..., 3] == r[..., 3]).float().mean().item()
            both = (r_ref[..., 3] == r[..., 3]) & (r_ref[..., 3] > 0)
            rel = (r_ref[..., 2] - r[..., 2]).abs() / r_ref[..., 2].abs().clamp(min=1e-6)
            dz = rel[both].max().item() if both.any() else 0.0
            cc, cp = _cos(gc_ref, gc), _cos(gp_ref, gp)
            good = same >= 0.999 and dz < 1e-5 and cc >= 0.99 and cp >= 0.9
            ok &= good
            rows.append({"scene": name, "backend": oname, "ms": t * 1e3, "same_id": same, "dz": dz, "cos_colour": cc, "cos_pos": cp})
            print(f"{'':<16} {oname:<22} {t * 1e3:>8.1f} {same * 100:>10.3f} {dz:>11.2e} {cc:>11.5f} {cp:>9.5f} {'' if good else 'FAIL'}")
    print("backends:", "PASS" if ok else "FAIL", f"(reference {ref_name})")
    return ok, rows


@contextlib.contextmanager
def peak_memory(label: str, record: dict):
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    yield
    if torch.cuda.is_available():
        record[label] = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory, {label}: {record[label]:.2f} GiB")


def check_training(args: argparse.Namespace, device: torch.device) -> list[dict]:
    import train_step

    ns = argparse.Namespace(size=args.size, batch=args.train_batch, width=args.width, synth_n=max(16, 4 * args.train_batch),
                            warmup=args.warmup, steps=args.steps, bf16=device.type == "cuda",
                            channels_last=device.type == "cuda")  # fmt: skip
    rows = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for stage in train_step.STAGES:
            compile_too = stage == "reconstruction" and device.type == "cuda"  # CPU inductor: minutes on 2 cores
            variants = [("eager", False)] + ([("compiled regressor", True)] if compile_too else [])
            for label, compiled in variants:
                try:
                    r = train_step.time_stage(stage, Path(tmp) / "synth", ns, device, compile_regressor=compiled)
                except Exception as err:  # noqa: BLE001 - report and carry on: one stage must not hide the others
                    print(f"  {stage} ({label}): skipped, {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                    continue
                ips = args.train_batch / r["step"]
                per_worker = args.train_batch / r["loader"] if r["loader"] > 0 else float("nan")
                workers = math.ceil(ips / per_worker) if math.isfinite(per_worker) else None
                rows.append({"stage": stage, "variant": label, "img_s": ips, "loader_per_worker": per_worker,
                             "workers_needed": workers, **r})  # fmt: skip
                print(f"  {stage:<15} {label:<19} {ips:>9.1f} img/s  step {1e3 * r['step']:.1f} ms, "
                      f"render {100 * r['render'] / r['step']:.0f}%, losses {100 * r['losses'] / r['step']:.0f}%, "
                      f"loader {per_worker:.0f} img/s per worker on this CPU -> {workers} workers")  # fmt: skip
    return rows


def check_pipeline(args: argparse.Namespace, device: torch.device) -> dict:
    import numpy as np
    import pipeline as pl
    from skimage.data import astronaut

    pl.SIZE = args.size
    systems, skipped = pl.build_stages(args.width)
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}")
    try:
        from occrecon.faces.detect import FaceDetector

        detector = FaceDetector(device=device)
    except Exception as err:  # noqa: BLE001
        print(f"  detector unavailable ({type(err).__name__}): fixed landmarks")
        detector = None
        pl.FALLBACK_LANDMARKS = np.random.default_rng(0).uniform(180, 330, (68, 2)).astype(np.float32)
    pipe = pl.Pipeline(systems, detector, "on" if device.type == "cuda" else "off", device)
    photo = astronaut()
    full = ("detect", "align", *[s for s in pl.STAGES if s in systems or (s == "fusion" and "fusion" not in skipped)], "mesh")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    result = {}
    with autocast:
        for batch in (1, args.infer_batch):
            pipe.calibrate(photo, full, batch)  # on CUDA the layout is forced: channels-last
            pipe.run([photo] * batch, full)
            times = pl.best_of(pipe, [photo] * batch, full, args.reps)
            total = sum(times.values())
            result[batch] = {"total_s": total, **times}
            print(f"  batch {batch}: {1e3 * total:.1f} ms = {batch / total:.1f} img/s; "
                  + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in times.items()))  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="every section (else the backend check alone)")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU: proves the script runs")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    device = torch.device("cpu" if args.cpu_smoke or not torch.cuda.is_available() else "cuda")
    smoke = args.cpu_smoke or device.type == "cpu"
    args.size, args.width = (128, 8) if smoke else (SIZE, 64)
    args.train_batch, args.infer_batch = (2, 2) if smoke else (64, 64)
    args.warmup, args.steps, args.reps = (1, 1, 1) if smoke else (3, 10, 3)
    t_start = time.perf_counter()
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"check_gpu: {card}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          + (" (CPU smoke run: toy sizes)" if smoke else ""))  # fmt: skip
    results: dict = {"device": card, "torch": torch.__version__, "smoke": smoke, "memory_gib": {}}
    with peak_memory("backends", results["memory_gib"]):
        ok, results["backends"] = check_backends(args.size if smoke else SIZE)
    if args.all:
        print(f"\ntraining, {args.size} px, batch {args.train_batch}, width {args.width}"
              + (", bf16-mixed, channels-last" if device.type == "cuda" else ""))  # fmt: skip
        with peak_memory("training", results["memory_gib"]):
            results["train"] = check_training(args, device)
        print(f"\nfull-pipeline inference, {args.size} px, width {args.width}")
        with peak_memory("pipeline", results["memory_gib"]):
            results["pipeline"] = check_pipeline(args, device)
    results["seconds"] = time.perf_counter() - t_start
    print(f"check_gpu: {'PASS' if ok else 'FAIL'} in {results['seconds']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
