"""Training throughput of every stage, where the time goes, and the data loader it needs (issue 18).

Part 1, every stage (``parsing``, ``edge_lines``, ``synthesis``, ``reconstruction`` = the coarse
3D stage, ``detail``, ``pipeline`` -- those whose system imports in this checkout): the stage's
``experiments/<stage>/synthetic.yaml`` with ``data.image_size`` (224), ``data.batch_size`` and
``model.width`` overridden, trained for a few steps by a real Lightning ``Trainer`` on a small
synthetic set generated into a temporary folder, ``num_workers=0`` so that the data loader runs
in the main process and its time is measured too:

- ``step``: ``on_train_batch_start`` -> ``on_train_batch_end`` (forward, losses, backward,
  optimizer steps; CUDA synchronised); img/s = batch / step;
- ``render`` / ``losses``: forward time inside :meth:`MeshRenderer.render` and inside the stage's
  loss functions (their backward is in ``step`` but not attributed);
- ``loader``: the gap between one step's end and the next one's start = producing one batch in
  one process (its share of step + loading is printed), hence ``per worker`` samples/s, and the
  number of loader workers the step's rate (and the GPU target: 1,500 img/s for the coarse stage
  on an H200) needs.

Part 2, the coarse stage split exactly (renderer forward + backward): one training step of
:class:`ReconstructionSystem` split at the coefficients ``y`` (``render``, ``loss+bwd`` = Eq. 4
and its backward through the renderer down to ``y``, ``net fwd``/``net bwd``, ``opt``).

    python bench/train_step.py [--quick] [--device cpu|cuda] [--threads N] [--stages a,b]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
STAGES = ("parsing", "edge_lines", "synthesis", "reconstruction", "detail", "pipeline")
LOSS_ATTRS = {
    "parsing": ("criterion",),
    "edge_lines": ("g_loss", "d_loss"),
    "synthesis": ("generator_loss", "discriminator_loss"),
    "reconstruction": ("losses",),
    "detail": ("losses",),
    "pipeline": ("losses",),
}
GPU_TARGET = {"reconstruction": 1500.0}
"""img/s targets on one H200 (issue 18); other stages are sized against the same figure."""
PARTS = ("net fwd", "render", "loss+bwd", "net bwd", "opt")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Accumulates seconds spent inside wrapped callables, per label."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.spent = device, defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            _sync(self.device)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _sync(self.device)
                self.spent[label] += time.perf_counter() - t0

        return timed

    def hook_module(self, label: str, module: torch.nn.Module) -> None:
        start: list[float] = []

        def pre(*_: Any) -> None:
            _sync(self.device)
            start.append(time.perf_counter())

        def post(*_: Any) -> None:
            _sync(self.device)
            self.spent[label] += time.perf_counter() - start.pop()

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def step_timer(clock: Clock, warmup: int, steps: int) -> Any:
    """A Lightning callback recording per-step seconds, loader gaps and the clock's labels; it
    stops the fit after ``warmup + steps`` batches (``max_steps`` counts optimizer steps, two per
    batch for the GAN stages)."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []
            self.calls = 0
            self._end: float | None = None
            self._t0 = 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
            _sync(clock.device)
            now = time.perf_counter()
            self._gap = None if self._end is None else now - self._end
            clock.spent.clear()
            self._t0 = now

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            _sync(clock.device)
            self._end = time.perf_counter()
            self.calls += 1  # not batch_idx: an epoch of a tiny set can be one batch
            if self.calls > warmup:
                self.rows.append({"step": self._end - self._t0, "loader": self._gap or math.nan, **clock.spent})
            if self.calls >= warmup + steps:
                trainer.should_stop = True

    return StepTimer()


def stage_config(stage: str, root: Path, size: int, batch: int, width: int, synth_n: int) -> Any:
    from occrecon.config.load import load_config

    overrides = [f"data.root={root}", f"data.synth_n={synth_n}", "data.synth_size=128", f"data.image_size={size}",
                 f"data.batch_size={batch}", "data.num_workers=0", f"model.width={width}",
                 f"data.synth_workers={min(8, os.cpu_count() or 1)}"]  # fmt: skip
    if stage in ("synthesis", "reconstruction"):
        overrides.append("model.identity=none")  # L_feat/L_id need a user download; off for every run
    return load_config([REPO / "experiments" / stage / "synthetic.yaml"], overrides)


def time_stage(
    stage: str, root: Path, args: argparse.Namespace, device: torch.device, compile_regressor: bool = False
) -> dict[str, float]:
    """Median seconds per step part of ``stage`` (see the module docstring); ``compile_regressor``
    wraps the coarse stage's ResNet in ``torch.compile`` (compilation happens in the warm-up)."""
    import lightning as L

    from occrecon.render.mesh_renderer import MeshRenderer
    from occrecon.training import instantiate

    cfg = stage_config(stage, root, args.size, args.batch, args.width, args.synth_n)
    L.seed_everything(0, verbose=False)
    system, datamodule = instantiate(cfg)
    if args.channels_last:
        system = system.to(memory_format=torch.channels_last)
    if compile_regressor:
        system.regressor = torch.compile(system.regressor)
    clock = Clock(device)
    for name in LOSS_ATTRS[stage]:
        target = getattr(system, name, None)
        if isinstance(target, torch.nn.Module):
            clock.hook_module("losses", target)
        elif callable(target):
            setattr(system, name, clock.wrap("losses", target))
    timer = step_timer(clock, args.warmup, args.steps)
    original = MeshRenderer.render
    MeshRenderer.render = clock.wrap("render", original)
    try:
        trainer = L.Trainer(
            accelerator=device.type, devices=1, max_steps=10 * (args.warmup + args.steps), max_epochs=1000, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
            precision="bf16-mixed" if device.type == "cuda" and args.bf16 else "32-true",
        )  # fmt: skip
        trainer.fit(system, datamodule)
    finally:
        MeshRenderer.render = original
    rows = timer.rows
    return {k: sorted(r.get(k, 0.0) for r in rows)[len(rows) // 2] for k in ("step", "loader", "render", "losses")}


def coarse_split(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Part 2: the coarse stage's step split at ``y`` (minimum seconds per part)."""
    from occrecon.render.face import render_face
    from occrecon.systems.reconstruction import ReconstructionSystem

    torch.manual_seed(0)
    system = ReconstructionSystem(width=args.width, depth=50, image_size=args.size, renderer="auto", identity="none").to(device)
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(args.batch, system.layout.size)
    for name in ("id", "exp", "tex"):
        sl = system.layout.slices[name]
        y[:, sl] = 0.8 * torch.randn(args.batch, sl.stop - sl.start, generator=g)
    with torch.no_grad():
        out = render_face(system.face_model, y.to(device), system.renderer, system.camera)
    image = out.image.clamp(0, 1) * out.mask + 0.5 * (1 - out.mask)
    batch = {"I_in": image, "I_gt": image, "parsing_gt": out.labels, "occluder_mask": torch.zeros_like(out.mask),
             "landmarks": out.landmarks, "landmark_visible": out.landmark_visible}  # fmt: skip
    optimizer = torch.optim.Adam(system.regressor.parameters(), lr=1e-4)
    best: dict[str, float] = defaultdict(lambda: math.inf)
    system.train()
    for step in range(args.warmup + args.steps):
        marks = [time.perf_counter()]

        def mark(marks: list[float] = marks) -> None:
            _sync(device)
            marks.append(time.perf_counter())

        prepared = system.prepare(batch)
        y_net = system(prepared["image"])
        mark()
        y_leaf = y_net.detach().requires_grad_(True)  # splits the backward at y: renderer+loss | network
        rendered = system.render(y_leaf)
        mark()
        loss, _ = system.losses(prepared, y_leaf, rendered)
        loss.backward()
        mark()
        optimizer.zero_grad(set_to_none=True)
        y_net.backward(y_leaf.grad)
        mark()
        optimizer.step()
        mark()
        if step >= args.warmup:
            for name, start, end in zip(PARTS, marks[:-1], marks[1:], strict=True):
                best[name] = min(best[name], end - start)
    return dict(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 16, 1 warm-up + 2 timed steps per stage")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=int, default=None, help="network stem width (default 64; 16 with --quick)")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--synth-n", type=int, default=None, help="synthetic samples generated (default 4 batches)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 on CUDA (default bf16-mixed)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.width = args.width or (16 if args.quick else 64)
    args.warmup, args.steps = (1, 2) if args.quick else (2, 5)
    args.synth_n = args.synth_n or max(24, 4 * args.batch)
    device = torch.device(args.device)
    from occrecon.registry import STAGES as REGISTERED

    results, skipped = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages.split(","):
            if stage not in REGISTERED:
                skipped[stage] = "not in occrecon.registry"
                continue
            try:
                results[stage] = time_stage(stage, Path(tmp) / "synth", args, device)
            except Exception as err:  # noqa: BLE001 - a stage another helper is still writing
                skipped[stage] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    print(f"training step per stage: {args.size} px, batch {args.batch}, width {args.width}, {device}, "
          f"{torch.get_num_threads()} threads, {args.warmup} warm-up + {args.steps} timed steps (median), "
          f"data loader in-process (num_workers=0)")  # fmt: skip
    for stage, why in skipped.items():
        print(f"  skipped {stage}: {why}")
    print(f"{'stage':<15} {'step ms':>8} {'img/s':>7} {'render':>7} {'losses':>7} {'loader':>7} {'loader/worker':>14} "
          f"{'workers at step rate':>21} {'workers at 1,500 img/s':>23}")  # fmt: skip
    summary = []
    for stage, r in results.items():
        ips = args.batch / r["step"]
        per_worker = args.batch / r["loader"] if r["loader"] > 0 else math.nan
        need_now = math.ceil(ips / per_worker) if math.isfinite(per_worker) else "?"
        need_gpu = math.ceil(GPU_TARGET.get(stage, 1500.0) / per_worker) if math.isfinite(per_worker) else "?"
        loader_share = 100 * r["loader"] / (r["step"] + r["loader"])  # of step + loading, in-process loader
        print(f"{stage:<15} {1e3 * r['step']:>8.0f} {ips:>7.2f} {100 * r['render'] / r['step']:>6.0f}% "
              f"{100 * r['losses'] / r['step']:>6.0f}% {loader_share:>6.0f}% {per_worker:>9.1f} img/s {need_now!s:>21} "
              f"{need_gpu!s:>23}")  # fmt: skip
        summary.append(f"{stage} {ips:.2f} img/s")
    if "reconstruction" in results or "reconstruction" in args.stages.split(","):
        times = coarse_split(args, device)
        step = sum(times.values())
        share = (times["render"] + times["loss+bwd"]) / step
        print(f"\ncoarse stage split at y (ResNet-50 width {args.width}, batch {args.batch}, per-part minimum):")
        print(" | ".join(f"{p} {1e3 * times[p]:.0f} ms" for p in PARTS) + f" | step {1e3 * step:.0f} ms, "
              f"{args.batch / step:.2f} img/s, renderer fwd+bwd {100 * share:.0f}%")  # fmt: skip
        summary.append(f"coarse split: renderer fwd+bwd {100 * share:.0f}% of the step")
    print(f"summary ({device.type}): " + "; ".join(summary))


if __name__ == "__main__":
    main()
