"""Data-loading throughput of every data module vs a coarse-3D training step (issue 6).

Each data module serves its training split (falling back to val/test for evaluation-only sets)
at the training resolution with augmentation and 2 workers, from tiny data sets in the official
on-disk formats written by ``tests/data_fixtures.py`` into a temporary folder (images at
``--source`` px so decoding costs are realistic) plus a freshly generated synthetic set. The
split is repeated (index modulo its length) behind one persistent loader so worker start-up is
paid once; the first batch is a warm-up. The reference is the time of one training step of the
coarse 3D stage (``bench/train_step.py``'s ``coarse_split``: network, renderer, Eq. 4, backward and
optimizer) at the same resolution and batch size.

    python bench/dataloading.py [--quick] [--size 128] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Repeat(Dataset):
    """``base`` repeated to ``length`` items (index modulo ``len(base)``)."""

    def __init__(self, base: Dataset, length: int) -> None:
        self.base, self.length = base, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):  # noqa: ANN204 - whatever the data set returns
        return self.base[index % len(self.base)]


def write_sources(root: Path, source: int, synth_size: int, synth_n: int) -> dict[str, tuple[str, Path, dict]]:
    """Write every fixture data set; returns name -> (data module ref, root, extra kwargs)."""
    import data_fixtures as fx

    from occrecon.synth.config import SynthConfig
    from occrecon.synth.dataset_writer import generate_dataset

    synth = generate_dataset(SynthConfig(n=synth_n, size=synth_size, seed=0), root / "synth", workers=1, progress=False)
    return {
        "synthetic": ("datamodules.synthetic:SyntheticDataModule", synth, {}),
        "helen": ("datamodules.helen:HelenDataModule", fx.write_helen(root / "helen", size=(source, source)), {}),
        "celebamask_hq": ("datamodules.celebamask_hq:CelebAMaskHQDataModule",
                          fx.write_celebamask(root / "celeba", image_size=source, mask_size=source), {}),
        "w300": ("datamodules.w300:W300DataModule", fx.write_300w(root / "300W", per_folder=2, size=source), {}),
        "aflw": ("datamodules.aflw:AFLWDataModule", fx.write_aflw(root / "AFLW", count=10, size=source), {"train_count": 6}),
        "lfw": ("datamodules.lfw:LFWDataModule", fx.write_lfw(root / "LFW", size=source), {}),
    }  # fmt: skip


def split_loader(datamodule) -> tuple[str, DataLoader]:  # noqa: ANN001
    """The first non-empty of the train, val, test loaders."""
    for stage, split, method in (
        ("fit", "train", "train_dataloader"),
        ("validate", "val", "val_dataloader"),
        ("test", "test", "test_dataloader"),
    ):
        try:
            datamodule.setup(stage)
            loader = getattr(datamodule, method)()
        except (NotImplementedError, AttributeError, FileNotFoundError, ValueError):
            continue
        if len(loader.dataset):
            return split, loader
    raise RuntimeError(f"{type(datamodule).__name__}: no non-empty split")


def _batch_len(batch) -> int:  # noqa: ANN001 - a collated batch of any structure
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    return next(_batch_len(v) for v in values if isinstance(v, (torch.Tensor, dict, list, tuple)))


def samples_per_second(loader: DataLoader, batch: int, workers: int, seconds: float) -> float:
    """Samples/s of ``loader``'s data set served by a persistent ``workers``-process loader."""
    repeated = DataLoader(
        Repeat(loader.dataset, 100_000), batch_size=batch, num_workers=workers, collate_fn=loader.collate_fn,
        worker_init_fn=loader.worker_init_fn, persistent_workers=workers > 0,
    )  # fmt: skip
    iterator = iter(repeated)
    next(iterator)  # warm-up: worker start-up, first decodes
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += _batch_len(next(iterator))
    rate = count / (time.perf_counter() - start)
    del iterator
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per data module, ResNet-50 width 16 step (< 60 s)")
    parser.add_argument("--size", type=int, default=None, help="training resolution (default 224; 128 with --quick)")
    parser.add_argument("--source", type=int, default=256, help="side of the written fixture images (px)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=None, help="per data module (default 8; 2 with --quick)")
    args = parser.parse_args()
    size = args.size or (128 if args.quick else 224)
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    from occrecon.registry import import_ref

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_sources(Path(tmp), args.source, synth_size=size, synth_n=12 if args.quick else 32)
        for name, (ref, root, extra) in sources.items():
            options = {"root": str(root), "batch_size": args.batch, "num_workers": args.workers, **extra}
            datamodule = import_ref(ref)(**options, **({} if name == "synthetic" else {"image_size": size}))
            split, loader = split_loader(datamodule)
            rows.append(
                (name, split, len(loader.dataset), samples_per_second(loader, args.batch, args.workers, seconds))
            )
    from train_step import coarse_split

    device = torch.device("cpu")
    step_args = argparse.Namespace(width=16 if args.quick else 64, batch=args.batch, size=size, warmup=1,
                                   steps=1 if args.quick else 3)  # fmt: skip
    step = sum(coarse_split(step_args, device).values())
    print(f"data loading at {size} px, batch {args.batch}, {args.workers} workers, {seconds:.0f} s per module; "
          f"coarse 3D training step ({'width 16' if args.quick else 'ResNet-50'}) {1000 * step:.0f} ms = {args.batch / step:.2f} img/s")  # fmt: skip
    print("data module | split | items | samples/s | ms per batch | x training speed")
    for name, split, items, rate in rows:
        print(
            f"{name} | {split} | {items} | {rate:.1f} | {1000 * args.batch / rate:.0f} | {rate * step / args.batch:.1f}"
        )
    slowest = min(rows, key=lambda r: r[3])
    print(f"summary: slowest loader {slowest[0]} {slowest[3]:.1f} samples/s = "
          f"{slowest[3] * step / args.batch:.1f}x the coarse-stage training rate ({args.batch / step:.2f} img/s at {size} px)")  # fmt: skip


if __name__ == "__main__":
    main()
