"""``occrecon data check``: load every sample of a data set once and count what is wrong, per split.

Each split is indexed with the data module's own ``index`` (annotation syntax, listed files) and
every record is decoded with its ``load`` (images, masks, label ranges), so the check finds exactly
what training would trip over. Problems are counted per category: ``missing`` (absent file),
``corrupt`` (unreadable / truncated image or file), ``labels`` (label values out of range, mask
size mismatch), ``points`` (landmark files with a wrong point count or syntax), ``format`` (other
annotation syntax: split lists, pairs, attribute files). The synthetic set is checked by
:func:`check_synthetic` (manifest, shard hashes, every sample, NaN/inf values).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from occrecon.errors import DataFormatError

CATEGORIES: tuple[str, ...] = ("missing", "corrupt", "labels", "points", "format")

DATASETS: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]] = {
    "helen": ("datamodules.helen", "HelenDataModule", ("train", "val", "test"), {}),
    "celebamask_hq": ("datamodules.celebamask_hq", "CelebAMaskHQDataModule", ("train", "val", "test"), {}),
    "w300": (
        "datamodules.w300",
        "W300DataModule",
        ("train", "common", "challenging", "private_indoor", "private_outdoor"),
        {},
    ),
    "aflw": ("datamodules.aflw", "AFLWDataModule", ("train", "test", "frontal"), {}),
    "lfw": ("datamodules.lfw", "LFWDataModule", ("pairs",), {}),
    "synthetic": ("datamodules.synthetic", "SyntheticDataModule", ("manifest", "train", "val", "test"), {}),
}
"""``name -> (module, class, splits checked, extra constructor kwargs)``."""

OPTIONAL_SPLITS = {("w300", "private_indoor"), ("w300", "private_outdoor")}
"""Splits from separate downloads: an absent folder is reported as absent, not as a problem."""


@dataclass
class SplitReport:
    """Counts of one split and the messages of its problems."""

    split: str
    samples: int = 0
    ok: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    problems: list[str] = field(default_factory=list)
    absent: bool = False
    findings: dict[str, int] = field(default_factory=dict)  # tolerated oddities (the module's index_findings)

    def add(self, err: BaseException) -> None:
        from datamodules.common import error_kind

        kind = error_kind(err)
        self.counts[kind if kind in self.counts else "corrupt"] += 1
        self.problems.append(f"[{kind}] {err}")

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def make_datamodule(dataset: str, root: str | None, **overrides: Any) -> Any:
    """Instantiate the data module of ``dataset`` (a key of :data:`DATASETS`)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; choose from {sorted(DATASETS)}")
    module, cls, _, extra = DATASETS[dataset]
    return getattr(importlib.import_module(module), cls)(root=root, **{**extra, **overrides})


def check_split(datamodule: Any, split: str, progress: Callable[[int], None] | None = None) -> SplitReport:
    """Index ``split`` collecting errors, then decode every record."""
    report = SplitReport(split)
    try:
        records = datamodule.index(split, on_error=report.add)
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        report.add(err)
        return report
    report.samples = len(records) + len(report.problems)
    report.findings = dict(getattr(datamodule, "index_findings", {}))
    for record in records:
        try:
            datamodule.load(record)
            report.ok += 1
        except (DataFormatError, FileNotFoundError) as err:
            report.add(err)
        if progress is not None:
            progress(1)
    return report


def check_synthetic(root: str | None) -> list[SplitReport]:
    """Check a synthetic data set: manifest and every shard's SHA-256 (a ``manifest`` row), then
    every sample of every field, per identity split (NaN/inf values name the sample)."""
    from datamodules.synthetic import default_root
    from occrecon.synth.reader import SPLITS, SyntheticDataset, identity_splits

    manifest = SplitReport("manifest")
    try:
        data = SyntheticDataset(default_root() if root is None else root, verify=True)
    except DataFormatError as err:
        manifest.add(err)
        return [manifest]
    manifest.samples = manifest.ok = 1
    identities = data.identities.tolist()
    assignment = identity_splits(identities)
    reports = {split: SplitReport(split) for split in SPLITS}
    for index, identity in enumerate(identities):
        report = reports[assignment[identity]]
        report.samples += 1
        try:
            data[index]
            report.ok += 1
        except (DataFormatError, FileNotFoundError) as err:
            report.add(err)
    return [manifest, *reports.values()]


def check_dataset(dataset: str, root: str | None) -> list[SplitReport]:
    """Check every split of ``dataset`` under ``root`` (the root itself must exist).

    For CelebAMask-HQ, pre-merged maps (``CelebAMask-HQ-mask/``, order "A") are checked too when
    present, as extra rows ``<split> (merged)``.
    """
    if dataset == "synthetic":
        return check_synthetic(root)
    datamodule = make_datamodule(dataset, root)
    variants = [("", datamodule)]
    if dataset == "celebamask_hq" and (datamodule.root / "CelebAMask-HQ-mask").is_dir():
        variants.append((" (merged)", make_datamodule(dataset, root, label_source="merged")))
    reports = []
    for suffix, module in variants:
        for split in DATASETS[dataset][2]:
            report = check_split(module, split)
            only_missing_folder = report.samples == 0 and report.counts["missing"] == len(report.problems) == 1
            if (dataset, split) in OPTIONAL_SPLITS and only_missing_folder:
                report = SplitReport(split, absent=True)
            report.split += suffix
            reports.append(report)
    return reports


def format_table(reports: list[SplitReport]) -> str:
    """The per-split table printed by the command."""
    header = ["split", "samples", "ok", *CATEGORIES]
    rows = [header]
    for r in reports:
        rows.append(
            [r.split, "absent" if r.absent else str(r.samples), str(r.ok), *(str(r.counts[c]) for c in CATEGORIES)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{r.split}: {n} x {what}" for r in reports for what, n in r.findings.items()]
    return "\n".join(lines)


def format_problems(reports: list[SplitReport], limit: int = 50) -> str:
    """The first ``limit`` problem messages, one per line, prefixed with their split."""
    messages = [f"{r.split}: {m}" for r in reports for m in r.problems]
    more = len(messages) - limit
    return "\n".join(messages[:limit] + ([f"... and {more} more"] if more > 0 else []))
