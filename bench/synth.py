"""Throughput of the synthetic data set generator (issue 4): samples/s at 128 and 224 px.

Two numbers per size:

* ``render``: one process, one thread, model already loaded — the cost of one sample (draw,
  3 rasterizations with glasses, detail, encoding excluded);
* ``end-to-end``: ``generate_dataset`` with all cores (process start-up, model loading, PNG/NPY
  encoding, shard and manifest writes included), the rate a user sees from ``occrecon data synth``;
* the peer, measured in the same run: ``read``, the rate at which the training split of the set
  just written is read back and augmented by ``SyntheticDataModule`` (one process, the per-worker
  rate of a training loader). Their ratio says what generating on the fly would cost against
  generating once and reading every epoch.

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


def end_to_end_rate(size: int, count: int, workers: int) -> tuple[float, float]:
    """Samples/s of a full ``generate_dataset`` run into a temporary folder, and samples/s of
    reading its training split back through ``SyntheticDataModule`` in this process."""
    from datamodules.synthetic import SyntheticDataModule

    config = SynthConfig(n=count, size=size, seed=0, shard_size=max(1, count // (2 * workers)))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_dataset(config, folder, workers=workers, progress=False)
        generate = count / (time.perf_counter() - start)
        datamodule = SyntheticDataModule(root=folder, batch_size=1, num_workers=0)
        datamodule.setup("fit")
        dataset = datamodule.train_dataloader().dataset
        dataset[0]  # warm-up
        start = time.perf_counter()
        for _ in range(2):
            for i in range(len(dataset)):
                dataset[i]
        return generate, 2 * len(dataset) / (time.perf_counter() - start)


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
        full, read = end_to_end_rate(size, n_e2e, args.workers)
        print(f"{size:4d} px  render {single:6.2f} samples/s (1 thread)   end-to-end {full:6.2f} samples/s "
              f"({args.workers} workers, {n_e2e} samples)   read back {read:6.1f} samples/s (1 process) = "
              f"{read / single:.0f}x one thread's generation")  # fmt: skip
        summary.append(f"{size}px {full:.2f}/s e2e, {single:.2f}/s/thread, reading back {read / single:.0f}x faster")
    print("synth bench: " + "; ".join(summary))


if __name__ == "__main__":
    main()
