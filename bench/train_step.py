"""Training throughput of the coarse 3D stage (issue 5) and the renderer's share of it.

One training step of :class:`occrecon.systems.reconstruction.ReconstructionSystem` (ResNet ->
``y`` -> render -> Eq. 4 -> backward -> Adam) on a batch of 8, at 128 and 224 px, timed part by
part with explicit timers (``torch.cuda.synchronize`` on GPU):

- ``net fwd`` / ``net bwd``: the regressor forward, and its backward from ``dL/dy``;
- ``render``: ``render_face`` forward; ``loss+bwd``: the Eq. 4 terms and their backward down to
  ``y`` (through the renderer; this is where the rasterizer's gradients are computed);
- ``opt``: the Adam step.

The renderer share is ``(render + loss+bwd) / step`` (the loss terms themselves are a few
element-wise ops; ``L_feat`` is off here because its weights are a user download). The batch is
built by rendering random faces of the same face model (image, parsing labels, landmarks), so
masks and landmark counts match a synthetic batch without generating a data set.

    python bench/train_step.py [--quick] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from occrecon.render.face import render_face
from occrecon.systems.reconstruction import ReconstructionSystem

PARTS = ("net fwd", "render", "loss+bwd", "net bwd", "opt")


def make_batch(system: ReconstructionSystem, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A synthetic-like batch from renders of random coefficients (no occluders)."""
    g = torch.Generator().manual_seed(seed)
    layout = system.layout
    y = torch.zeros(batch, layout.size)
    for name in ("id", "exp", "tex"):
        sl = layout.slices[name]
        y[:, sl] = 0.8 * torch.randn(batch, sl.stop - sl.start, generator=g)
    y = y.to(system.device)
    with torch.no_grad():
        out = render_face(system.face_model, y, system.renderer, system.camera)
    background = torch.rand(batch, 3, 1, 1, generator=g).to(system.device)
    image = out.image.clamp(0, 1) * out.mask + background * (1 - out.mask)
    return {
        "I_in": image, "I_gt": image, "parsing_gt": out.labels, "occluder_mask": torch.zeros_like(out.mask),
        "landmarks": out.landmarks, "landmark_visible": out.landmark_visible,
    }  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    system: ReconstructionSystem, batch: dict[str, torch.Tensor], warmup: int, steps: int
) -> dict[str, float]:
    """Seconds per part: the minimum over ``steps`` timed training steps (after ``warmup`` untimed
    ones) -- on a shared machine the least-disturbed run is the best estimate of the cost."""
    optimizer = torch.optim.Adam(system.regressor.parameters(), lr=1e-4)
    device = system.device
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    system.train()
    for step in range(warmup + steps):
        marks = [time.perf_counter()]

        def mark(marks: list[float] = marks) -> None:
            _sync(device)
            marks.append(time.perf_counter())

        prepared = system.prepare(batch)
        y = system(prepared["image"])
        mark()
        y_leaf = y.detach().requires_grad_(True)  # splits the backward at y: renderer+loss | network
        out = system.render(y_leaf)
        mark()
        loss, _ = system.losses(prepared, y_leaf, out)
        loss.backward()
        mark()
        optimizer.zero_grad(set_to_none=True)
        y.backward(y_leaf.grad)
        mark()
        optimizer.step()
        mark()
        if step >= warmup:
            for name, start, end in zip(PARTS, marks[:-1], marks[1:], strict=True):
                best[name] = min(best[name], end - start)
    return dict(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 16, 1 warm-up + 3 timed steps (< 60 s on 2 idle cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--width", type=int, default=None, help="ResNet-50 stem width (default 64; 16 with --quick)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width = args.width or (16 if args.quick else 64)
    warmup, steps = (1, 3) if args.quick else (2, 6)
    device = torch.device(args.device)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        torch.manual_seed(0)
        system = ReconstructionSystem(width=width, depth=50, image_size=size, renderer="auto", identity="none").to(
            device
        )
        backend = type(system.renderer.backend).__name__
        times = time_steps(system, make_batch(system, args.batch), warmup, steps)
        step = sum(times.values())
        share = (times["render"] + times["loss+bwd"]) / step
        rows.append((size, backend, times, step, args.batch / step, share))
    print(f"coarse 3D stage training step: ResNet-50 width {width}, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, {warmup} warm-up + {steps} timed steps (per-part minimum)")  # fmt: skip
    header = ["px", "backend", *(f"{p} (ms)" for p in PARTS), "step (ms)", "images/s", "renderer share"]
    print(" | ".join(header))
    for size, backend, times, step, ips, share in rows:
        cells = [
            str(size),
            backend,
            *(f"{1000 * times[p]:.0f}" for p in PARTS),
            f"{1000 * step:.0f}",
            f"{ips:.2f}",
            f"{100 * share:.0f}%",
        ]
        print(" | ".join(cells))
    summary = ", ".join(f"{s} px {ips:.2f} img/s (renderer {100 * sh:.0f}%)" for s, _, _, _, ips, sh in rows)
    print(f"summary: {device.type} training throughput {summary}")


if __name__ == "__main__":
    main()
