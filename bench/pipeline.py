"""End-to-end inference: photo -> detection -> alignment -> every stage -> mesh (issue 18).

One public-domain photo (``skimage.data.astronaut()``, 512x512) goes through

* ``detect``: :class:`occrecon.faces.detect.FaceDetector` (tiny face detector + 68 landmarks,
  face-api weights from the asset cache; one call per photo: its API takes one photo);
* ``align``: :func:`occrecon.faces.align.align_face` to the 224 px ``deep3d`` crop;
* the chain of :mod:`occrecon.chain` on the batch of crops: ``parsing``, ``edge_lines``
  (fed a 256 px resize: its hourglass needs multiples of 64), ``fusion``, ``synthesis``,
  ``reconstruction`` (the coarse stage: ResNet-50 -> coefficients -> rendered face), ``detail``
  (bump U-Net on the coarse maps) -- each included when it imports and builds, else reported
  as skipped with the reason;
* ``mesh``: model-space vertices of the coefficients (what ``occrecon reconstruct`` exports).

Networks are freshly initialised (the cost of a forward pass does not depend on the weights),
run under ``torch.inference_mode`` with the memory format that measured faster for each stage
(``channels_last`` or contiguous, decided at each batch size on a warm-up run; ``--channels-last
on|off`` forces it). Reported: latency at batch 1 and throughput at batch 32 (``--batch``), per stage, and the
ratio against Deep3D's pipeline (detect + align + coarse stage alone) measured in the same run.
Each network stage's GFLOP per photo (``torch.utils.flop_counter``) and the rate it reaches at
batch 1 are set against the rate of one large 3x3 convolution measured in the same run
(:func:`conv_gflops`): a stage near that rate is bound by its arithmetic, not by overheads.

    python bench/pipeline.py [--quick] [--threads N] [--width W] [--batch 32] [--set parsing.output_stride=16]

``--quick`` uses width-16 networks (the layer structure, depths and resolutions of the real ones;
about 1/16 of their multiply-adds), batch 8 for the throughput and no memory-format calibration,
so that it finishes in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

SIZE = 224
STAGES = ("parsing", "edge_lines", "fusion", "synthesis", "reconstruction", "detail")
COARSE_ONLY = ("detect", "align", "reconstruction", "mesh")  # Deep3D's pipeline


def build_stages(
    width: int, overrides: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``name -> system`` for every stage that builds (eval mode), and ``name -> reason`` skipped.
    ``overrides``: ``stage -> {key: value}`` model settings on top of the defaults below."""
    from occrecon.chain import build_stage

    configs = {
        "parsing": {"width": width},
        "edge_lines": {"width": width},
        "synthesis": {"width": width, "identity": "none"},
        "reconstruction": {"width": width, "identity": "none", "image_size": SIZE, "renderer": "auto"},
        "detail": {"width": max(8, width // 2), "image_size": SIZE, "coarse_image_size": SIZE, "renderer": "auto"},
    }
    systems, skipped = {}, {}
    for name, config in configs.items():
        try:
            systems[name] = build_stage(name, {**config, **(overrides or {}).get(name, {})}).eval()
        except Exception as err:  # noqa: BLE001 - any failure means "not available in this checkout"
            skipped[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
    if "parsing" not in systems or "edge_lines" not in systems:
        skipped["fusion"] = "needs parsing and edge_lines"
    return systems, skipped


def _run_edge_lines(system: Any, state: dict[str, Any]) -> None:
    from occrecon.chain import LINKS

    image = state["I_in"]
    size = -(-image.shape[-1] // 64) * 64
    if size == image.shape[-1]:
        LINKS["edge_lines"].run(system, state)
        return
    sub = {"I_in": F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)}
    LINKS["edge_lines"].run(system, sub)
    state["M_edge"], state["landmarks_2d"] = sub["M_edge"], sub["landmarks_2d"] * (image.shape[-1] / size)


def stage_runner(name: str) -> Callable[[Any, dict[str, Any]], None]:
    from occrecon.chain import LINKS

    return {"edge_lines": _run_edge_lines}.get(name) or LINKS[name].run


class Pipeline:
    """Photo batch -> per-stage seconds. ``stages``: the chain links to run, in order."""

    def __init__(
        self, systems: dict[str, Any], detector: Any | None, channels_last: str, device: str | torch.device = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.systems = {k: v.to(self.device) for k, v in systems.items()}
        self.detector, self.channels_last = detector, channels_last
        self.layout: dict[str, bool] = {}

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _set_layout(self, name: str, on: bool) -> None:
        if name in self.systems:
            self.systems[name].to(memory_format=torch.channels_last if on else torch.contiguous_format)
        self.layout[name] = on

    def calibrate(self, photo: np.ndarray, stages: tuple[str, ...], batch: int) -> None:
        """Pick each network stage's memory format: the whole chain runs once contiguous and once
        channels-last (each after a warm-up in that format) and every stage keeps its faster one."""
        forced = {"on": True, "off": False}.get(self.channels_last)
        names = [n for n in stages if n in self.systems]
        if forced is not None:
            for name in names:
                self._set_layout(name, forced)
            return
        timed = {}
        for on in (False, True):
            for name in names:
                self._set_layout(name, on)
            self.run([photo] * batch, stages)  # warm-up in this format
            timed[on] = self.run([photo] * batch, stages)
        for name in names:
            self._set_layout(name, timed[True][name] < timed[False][name])

    @torch.inference_mode()
    def run(
        self, photos: list[np.ndarray], stages: tuple[str, ...], flops: dict[str, float] | None = None
    ) -> dict[str, float]:
        """Seconds per stage; ``flops`` (when given) receives each network stage's FLOP count."""
        from occrecon.faces.align import align_face

        times: dict[str, float] = {}
        t0 = self._now()
        if self.detector is not None:
            marks = [max(self.detector.detect(p), key=lambda f: f.size).landmarks for p in photos]
        else:  # no detector weights: a fixed landmark set (detection is reported as skipped)
            marks = [FALLBACK_LANDMARKS] * len(photos)
        times["detect"] = self._now() - t0
        t0 = self._now()
        crops = torch.cat([align_face(p, m, "deep3d", SIZE).image for p, m in zip(photos, marks, strict=True)])
        state: dict[str, Any] = {"I_in": crops.to(self.device)}
        times["align"] = self._now() - t0
        for name in stages:
            if name in ("detect", "align", "mesh") or (name != "fusion" and name not in self.systems):
                continue
            if name == "fusion" and not {"M_fa", "M_edge"} <= set(state):
                continue
            counter = FlopCounterMode(display=False) if flops is not None else contextlib.nullcontext()
            t0 = self._now()
            with counter:
                stage_runner(name)(self.systems.get(name), state)
            times[name] = self._now() - t0
            if flops is not None:
                flops[name] = counter.get_total_flops()
        if "mesh" in stages and "coeffs" in state:
            t0 = self._now()
            state["mesh"] = self.systems["reconstruction"].vertices(state["coeffs"])
            times["mesh"] = self._now() - t0
        return times


FALLBACK_LANDMARKS = None  # set in main() from the deep3d template when the detector is missing


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["parsing.output_stride=16"]`` -> ``{"parsing": {"output_stride": 16}}`` (values as YAML)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, name = key.partition(".")
        if not (sep and dot and stage in STAGES and name):
            raise SystemExit(f"--set {item!r}: expected <stage>.<key>=<value> with a stage of {STAGES}")
        out.setdefault(stage, {})[name] = yaml.safe_load(value)
    return out


def stage_gflops(pipe: Pipeline, photo: np.ndarray, stages: tuple[str, ...]) -> dict[str, float]:
    """GFLOP per photo of each network stage (``torch.utils.flop_counter``: 2 per multiply-add;
    convolutions, matrix products and attention), from one batch-1 pass."""
    flops: dict[str, float] = {}
    pipe.run([photo], stages, flops=flops)
    return {name: value / 1e9 for name, value in flops.items()}


def conv_gflops(reps: int = 8) -> float:
    """GFLOP/s of one large 3x3 convolution (256 -> 256 channels on 56x56, channels-last, the
    synthesis bottleneck's shape) in this process: about the best rate the machine's convolution
    library reaches, the ceiling a convolution-bound stage is measured against. (FLOPs as
    ``torch.utils.flop_counter`` counts them; the library may use fewer multiplications, e.g.
    Winograd, so this can exceed the float32 matrix-product rate.)"""
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 256, 56, 56).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            conv(x)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t0)
    return counter.get_total_flops() / best / 1e9


def best_of(pipe: Pipeline, photos: list[np.ndarray], stages: tuple[str, ...], reps: int) -> dict[str, float]:
    """Per-stage minimum over ``reps`` runs (the least-disturbed run on a shared machine)."""
    best: dict[str, float] = {}
    for _ in range(reps):
        for k, v in pipe.run(photos, stages).items():
            best[k] = min(best.get(k, float("inf")), v)
    return best


def main() -> None:
    global FALLBACK_LANDMARKS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="width-16 networks, batch 8, 1 timed run each")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--width", type=int, default=None, help="stem width of every network (default 64; 16 with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="throughput batch (default 32; 8 with --quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="model setting of one stage, e.g. parsing.output_stride=16 (repeatable)")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default=None,
                        help="memory format of the networks (default auto = measured per stage; off with --quick)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width = args.width or (16 if args.quick else 64)
    args.batch = args.batch or (8 if args.quick else 32)
    args.channels_last = args.channels_last or ("off" if args.quick else "auto")
    reps = 1 if args.quick else 3
    from skimage.data import astronaut

    photo = astronaut()
    systems, skipped = build_stages(width, parse_overrides(args.overrides))
    try:
        from occrecon.faces.detect import FaceDetector

        detector = FaceDetector()
    except Exception as err:  # noqa: BLE001 - weights not cached, module missing, ...
        detector, skipped["detect"] = None, f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
        FALLBACK_LANDMARKS = np.random.default_rng(0).uniform(180, 330, (68, 2)).astype(np.float32)
    full = ("detect", "align", *[s for s in STAGES if s in systems or (s == "fusion" and "fusion" not in skipped)], "mesh")
    coarse = tuple(s for s in COARSE_ONLY if s in full)
    pipe = Pipeline(systems, detector, args.channels_last)
    print(f"pipeline bench: {SIZE} px, width {width}, {torch.get_num_threads()} threads, inference_mode; "
          f"best of {reps} after a warm-up")  # fmt: skip
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}")
    rows = {}
    for batch in (1, args.batch):
        photos = [photo] * batch
        pipe.calibrate(photo, full, batch)  # the faster memory format differs between batch sizes
        print(f"  memory format at batch {batch}: "
              + ", ".join(f"{n} {'channels_last' if on else 'contiguous'}" for n, on in pipe.layout.items()))  # fmt: skip
        if not args.quick or batch == 1:
            pipe.run(photos, full)  # warm-up at this batch size
        rows[batch] = (best_of(pipe, photos, full, reps), best_of(pipe, photos, coarse, reps))
    names = [s for s in full if s in rows[1][0]]
    gflop = stage_gflops(pipe, photo, full)
    peak = conv_gflops()
    print(f"{'stage':<16} {'B=1 ms':>9} {f'B={args.batch} ms/img':>14} {'share':>6} {'GFLOP':>7} {'GFLOP/s':>8} {'of conv':>8}")
    for name in names:
        b1, bn = rows[1][0][name], rows[args.batch][0][name] / args.batch
        share = 100 * bn / (sum(rows[args.batch][0].values()) / args.batch)
        rate = f"{gflop[name]:>7.1f} {gflop[name] / b1:>8.0f} {100 * gflop[name] / b1 / peak:>8.0f}%" if gflop.get(name) else ""
        print(f"{name:<16} {1e3 * b1:>9.1f} {1e3 * bn:>14.1f} {share:>5.0f}% {rate}")
    full1, coarse1 = sum(rows[1][0].values()), sum(rows[1][1].values())
    fulln, coarsen = sum(rows[args.batch][0].values()), sum(rows[args.batch][1].values())
    total = sum(gflop.values())
    print(f"{'full chain':<16} {1e3 * full1:>9.1f} {1e3 * fulln / args.batch:>14.1f} {'':>6} {total:>7.1f}")
    print(f"{'Deep3D (coarse)':<16} {1e3 * coarse1:>9.1f} {1e3 * coarsen / args.batch:>14.1f}")
    print(f"a large 3x3 convolution (same run): {peak:.0f} GFLOP/s; the chain's {total:.0f} GFLOP at that rate: "
          f"{1e3 * total / peak:.0f} ms")  # fmt: skip
    print(f"summary: full chain ({len(names)} steps) latency {1e3 * full1:.0f} ms/photo at batch 1 "
          f"({full1 / coarse1:.1f}x Deep3D's coarse-only pipeline, {1e3 * coarse1:.0f} ms), throughput "
          f"{args.batch / fulln:.2f} photos/s at batch {args.batch} ({fulln / coarsen:.1f}x Deep3D's "
          f"{args.batch / coarsen:.2f}); {total:.0f} GFLOP/photo = {1e3 * total / peak:.0f} ms at a large "
          f"convolution's rate ({peak:.0f} GFLOP/s); width {width}")  # fmt: skip

if __name__ == "__main__":
    main()
