"""The benchmark scripts still run (they are not imported by the package, so nothing else would
notice an API they call going away). Tiny sizes; what they measure is in the README, not here."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.slow
def test_dataloading_bench_runs_every_data_module():
    out = run(str(BENCH / "dataloading.py"), "--quick", "--size", "64", "--source", "64", "--workers", "1",
              "--batch", "2", "--seconds", "0.2")  # fmt: skip
    for name in ("synthetic", "helen", "celebamask_hq", "w300", "aflw", "lfw"):
        assert f"\n{name} | " in out
    assert "summary: slowest loader" in out


def test_norm_bench_prints_its_ratio():
    out = run(str(BENCH / "norm.py"), "--quick")
    assert "summary: InstanceNorm2d" in out
