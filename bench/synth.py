"""Throughput of the synthetic data set generator (issue 4): samples/s at 128 and 224 px.

Two numbers per size:

* ``render``: one process, one thread, model already loaded — the cost of one sample (draw,
  3 rasterizations with glasses, detail, encoding excluded);
* ``end-to-end``: ``generate_dataset`` with all cores (process start-up, model loading, PNG/NPY
  encoding, shard and manifest writes included), the rate a user sees from ``occrecon data synth``.

    python bench/synth.py [--quick] [--workers K]

``--quick`` finishes in under a minute on 2 cores. The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from occrecon.synth.config import SynthConfig
from occrecon.synth.dataset_writer import generate_dataset
from occrecon.synth.scene import SceneContext


def render_rate(size: int, count: int) -> float:
    """Samples/s of :meth:`SceneContext.render_sample` in this process (1 thread, after a warm-up)."""
    torch.set_num_threads(1)
    context = SceneContext.create(SynthConfig(n=count + 1, size=size, seed=0))
    context.render_sample(count)  # warm-up: first-call allocations
    start = time.perf_counter()
    for i in range(count):
        context.render_sample(i)
    return count / (time.perf_counter() - start)


def end_to_end_rate(size: int, count: int, workers: int) -> float:
    """Samples/s of a full ``generate_dataset`` run into a temporary folder."""
    config = SynthConfig(n=count, size=size, seed=0, shard_size=max(1, count // (2 * workers)))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_dataset(config, folder, workers=workers, progress=False)
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (< 60 s on 2 cores)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the end-to-end run")
    args = parser.parse_args()
    counts = {128: (10, 16), 224: (4, 8)} if args.quick else {128: (40, 128), 224: (20, 64)}
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, torch {torch.__version__}")
    summary = []
    for size, (n_render, n_e2e) in counts.items():
        single = render_rate(size, n_render)
        full = end_to_end_rate(size, n_e2e, args.workers)
        print(
            f"{size:4d} px  render {single:6.2f} samples/s (1 thread)   end-to-end {full:6.2f} samples/s ({args.workers} workers, {n_e2e} samples)"
        )
        summary.append(f"{size}px {full:.2f}/s e2e, {single:.2f}/s/thread")
    print("synth bench: " + "; ".join(summary))


if __name__ == "__main__":
    main()
