"""Every notebook under notebooks/ runs top to bottom (code cells executed in order)."""

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    notebook = json.loads(path.read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).replace("/tmp/", f"{tmp_path}/")
            exec(compile(source, f"{path.name}", "exec"), namespace)
            assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code"), "commit notebooks without outputs"
