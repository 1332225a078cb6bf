"""bench/check_gpu.py runs on the CPU path (no GPU in CI): the backend section always, every
section at toy sizes as a slow test. What it measures on a GPU is in the README, not here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_backend_section_runs_and_agrees_on_cpu(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import check_gpu

    ok, rows = check_gpu.check_backends(48)
    assert ok
    assert {r["scene"] for r in rows} == {"procedural B=8", "grid-70k B=4", "soup-3k B=4"}
    for r in rows:  # torch CPU vs torch CPU at another chunk size: the same ids and gradients
        assert r["same_id"] == 1.0 and r["cos_colour"] > 0.999999 and r["cos_pos"] > 0.999999


@pytest.mark.slow
def test_cpu_smoke_runs_every_section(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "check_gpu.py"), "--all", "--cpu-smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] and results["device"] == "cpu"
    stages = {r["stage"] for r in results["train"]}
    assert {"reconstruction", "parsing"} <= stages, proc.stdout[-3000:]
    assert all(r["img_s"] > 0 for r in results["train"])
    assert {"1", "2"} <= set(results["pipeline"])  # batch 1 latency and the throughput batch
