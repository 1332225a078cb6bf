"""Every notebook under notebooks/ runs top to bottom (code cells executed in order) and is
committed without outputs (checked once per notebook, on every code cell, before anything runs)."""

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def cells_with_outputs(notebook: dict) -> list[int]:
    """Indices of the code cells that carry outputs or an execution count."""
    return [
        index
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def test_there_are_notebooks_with_code() -> None:
    assert NOTEBOOKS, "notebooks/ has no notebook"
    for path in NOTEBOOKS:
        assert any(c["cell_type"] == "code" for c in json.loads(path.read_text())["cells"]), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    dirty = cells_with_outputs(json.loads(path.read_text()))
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def test_the_output_check_sees_an_output_in_the_last_cell() -> None:
    clean = {"cells": [{"cell_type": "markdown", "source": []}, {"cell_type": "code", "outputs": []}]}
    assert cells_with_outputs(clean) == []
    last = {"cells": clean["cells"] + [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "x"}]}]}
    assert cells_with_outputs(last) == [2]
    counted = {"cells": [{"cell_type": "code", "outputs": [], "execution_count": 3}]}
    assert cells_with_outputs(counted) == [0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    notebook = json.loads(path.read_text())
    namespace: dict = {}
    executed = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).replace("/tmp/", f"{tmp_path}/")
            exec(compile(source, f"{path.name}", "exec"), namespace)
            executed += 1
    assert executed == sum(c["cell_type"] == "code" for c in notebook["cells"]) > 0
