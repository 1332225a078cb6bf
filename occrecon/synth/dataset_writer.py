"""Write the synthetic data set: shards in parallel, atomically, resumably, with a manifest.

Layout of a data set folder::

    manifest.json            format + versions + config + field docs + bump_range + camera + shard list
    shards/shard-00000.zip   samples [0, shard_size)  (see occrecon.synth.shards)
    shards/shard-00001.zip   ...

* **Atomic**: each shard is written to a temporary file and renamed (``occrecon.utils.io``); the
  manifest is rewritten (atomically) after every finished shard and lists only finished shards
  with their SHA-256, so a crash never leaves a shard that later loads half-written.
* **Resumable**: running again with the same config skips the shards the manifest lists (after
  checking their size and hash) and makes the others. A folder holding another config raises
  :class:`ConfigError` instead of mixing two data sets.
* **Deterministic**: sample ``i`` depends only on ``(config, i)`` (per-sample generators, one
  intra-op thread per sample), shards and the manifest are encoded byte-stably, so the same
  config gives byte-identical folders whatever the number of workers or the interruptions.
* **Parallel**: ``workers`` processes (default: all cores), one shard per task, tqdm progress.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import occrecon
from occrecon.errors import ConfigError
from occrecon.labels import CELEBAMASK_CLASSES
from occrecon.synth.config import SynthConfig
from occrecon.synth.fields import FORMAT_NAME, FORMAT_VERSION, GLASSES_CODES, OCCLUDER_CODES, manifest_field_docs
from occrecon.synth.shards import encode_shard, shard_name
from occrecon.utils.io import atomic_write_bytes, atomic_write_text

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(manifest: dict[str, Any]) -> str:
    """Byte-stable JSON of the manifest (sorted keys, fixed indentation, trailing newline)."""
    return json.dumps(manifest, sort_keys=True, indent=1) + "\n"


def _new_manifest(config: SynthConfig, scene_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "versions": {
            "occrecon": occrecon.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__.split("+")[0],
        },
        "config": config.as_dict(),
        "num_samples": config.n,
        "bump_range": config.bump_range,
        "heatmap_size": config.heatmap_size,
        "sigma": config.sigma,
        "label_classes": list(CELEBAMASK_CLASSES),
        "occluder_codes": OCCLUDER_CODES,
        "glasses_codes": GLASSES_CODES,
        "fields": manifest_field_docs(),
        **scene_info,
        "shards": [],
        "complete": False,
    }


# --------------------------------------------------------------------------- one shard (any process)

_CONTEXT: dict[str, Any] = {}


def _init_worker(config: SynthConfig) -> None:
    from occrecon.synth.scene import SceneContext

    torch.set_num_threads(1)  # per-sample results must not depend on the thread count
    _CONTEXT["scene"] = SceneContext.create(config)


def _make_shard(job: tuple[int, str]) -> tuple[int, str, int, int]:
    """Render shard ``shard``, write it atomically under ``root``; return (shard, sha256, bytes, count)."""
    shard, root = job
    scene = _CONTEXT["scene"]
    config = scene.config
    first = shard * config.shard_size
    indices = range(first, min(first + config.shard_size, config.n))
    data = encode_shard([scene.render_sample(i) for i in indices])
    atomic_write_bytes(Path(root) / shard_name(shard), data)
    return shard, hashlib.sha256(data).hexdigest(), len(data), len(indices)


# --------------------------------------------------------------------------- driver


def _resume_state(root: Path, config: SynthConfig) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("config") != config.as_dict():
        raise ConfigError(
            f"{path}: this folder holds another synthetic data set (format {manifest.get('format_version')}, "
            f"config {manifest.get('config')}); choose another --out or delete the folder to regenerate"
        )
    kept = []
    for entry in manifest["shards"]:  # keep only shards whose bytes are what the manifest recorded
        file = root / entry["file"]
        if file.is_file() and file.stat().st_size == entry["bytes"] and sha256_file(file) == entry["sha256"]:
            kept.append(entry)
    manifest["shards"] = kept
    return manifest


def generate_dataset(
    config: SynthConfig,
    out: str | os.PathLike[str],
    workers: int | None = None,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> Path:
    """Generate (or finish generating) the data set described by ``config`` in ``out``.

    Args:
        config: what to generate.
        out: data set folder (created; an interrupted generation there is resumed).
        workers: processes (``None`` = all cores; 1 = in this process).
        progress: show a tqdm bar (samples).
        on_shard: called with the shard number after each shard is recorded in the manifest
            (hook for progress reporting and for tests that interrupt a run).

    Returns:
        the folder.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    from occrecon.synth.scene import describe_scene

    manifest = _resume_state(root, config) or _new_manifest(config, describe_scene(config))
    done = {entry["file"] for entry in manifest["shards"]}
    todo = [s for s in range(config.num_shards) if shard_name(s) not in done]
    manifest["complete"] = False
    atomic_write_text(root / MANIFEST, manifest_text(manifest))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(
        total=config.n,
        initial=sum(e["count"] for e in manifest["shards"]),
        unit="sample",
        disable=not progress,
        desc="synth",
    )

    def record(result: tuple[int, str, int, int]) -> None:
        shard, digest, size, count = result
        manifest["shards"].append(
            {
                "file": shard_name(shard),
                "first": shard * config.shard_size,
                "count": count,
                "sha256": digest,
                "bytes": size,
            }
        )
        manifest["shards"].sort(key=lambda e: e["first"])
        atomic_write_text(root / MANIFEST, manifest_text(manifest))
        bar.update(count)
        if on_shard is not None:
            on_shard(shard)

    jobs = [(s, str(root)) for s in todo]
    try:
        if workers == 1:
            threads = torch.get_num_threads()
            try:
                _init_worker(config)
                for job in jobs:
                    record(_make_shard(job))
            finally:
                torch.set_num_threads(threads)
        else:
            with multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker, initargs=(config,)
            ) as pool:
                for result in pool.imap_unordered(_make_shard, jobs):
                    record(result)
    finally:
        bar.close()
    manifest["complete"] = True
    atomic_write_text(root / MANIFEST, manifest_text(manifest))
    return root
