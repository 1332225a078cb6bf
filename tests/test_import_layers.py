"""One-way dependencies: every ``import`` in ``occrecon/`` and ``datamodules/`` follows the layer
table of README "Import layers", and no module cycle exists, not even one dodged by an import
inside a function. The checker is itself tested on a small fake tree that breaks each rule."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("occrecon", "datamodules")


def read_layers(readme: Path) -> dict[str, int]:
    """``package -> row`` from the table under the "Import layers" heading of ``readme``."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("### Import layers", 1)[1]
    layers: dict[str, int] = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|(.*)\|\s*$", line)
        if match:
            for name in re.findall(r"`([\w.]+)`", match.group(2)):
                layers[name] = int(match.group(1))
        elif layers and not line.startswith("|"):
            break  # end of the table
    return layers


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, layers: dict[str, int] | None = None) -> str:
    """The table entry of ``module``: the longest dotted name of ``layers`` it lies in, else its package.

    ``occrecon.a.b`` -> ``a`` (or ``a.b`` when the table has a row for ``a.b``); ``occrecon`` ->
    ``occrecon``; ``datamodules.x`` -> ``datamodules``.
    """
    parts = module.split(".")
    if parts[0] == "datamodules" or len(parts) == 1:
        return parts[0]
    inner = parts[1:]
    for n in range(len(inner), 1, -1):
        if ".".join(inner[:n]) in (layers or {}):
            return ".".join(inner[:n])
    return inner[0]


@functools.cache
def imports(root: Path, roots: tuple[str, ...] = ROOTS) -> list[tuple[str, str, int, bool]]:
    """``(importer, imported module, line, inside a function)`` for every project import under ``root``."""
    files = {module_name(p, root): p for r in roots for p in sorted((root / r).rglob("*.py"))}
    found = []
    for importer, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_function = {id(inner) for f in functions for inner in ast.walk(f) if inner is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` names the submodule when pkg/sub.py exists
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]  # fmt: skip
            else:
                continue
            found += [(importer, t, node.lineno, id(node) in in_function) for t in targets if t.split(".")[0] in roots]
    return sorted(set(found))


def layer_violations(edges: list[tuple[str, str, int, bool]], layers: dict[str, int]) -> list[str]:
    """Imports of a package from its own or a higher row, and packages missing from the table."""
    problems = []
    for importer, target, line, _ in edges:
        a, b = package_of(importer, layers), package_of(target, layers)
        if a == b:
            continue
        missing = [p for p in (a, b) if p not in layers]
        if missing:
            problems.append(f"{importer}:{line}: package {missing[0]!r} has no row in README 'Import layers'")
        elif layers[b] >= layers[a]:
            problems.append(f"{importer}:{line} imports {target} (row {layers[b]} >= row {layers[a]} of {a!r})")
    return problems


def module_cycles(edges: list[tuple[str, str, int, bool]]) -> list[list[str]]:
    """Strongly connected components (> 1 module) of the import graph, in-function imports included."""
    graph: dict[str, set[str]] = {}
    for importer, target, _, _ in edges:
        if importer != target:
            graph.setdefault(importer, set()).add(target)
            graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph has a few hundred nodes, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_readme_table_names_every_package() -> None:
    layers = read_layers(REPO / "README.md")
    assert layers["errors"] == 0 and layers["cli"] > layers["commands"] > layers["systems"] > layers["evaluation"]
    packages = {package_of(importer, layers) for importer, *_ in imports(REPO)}
    assert packages <= set(layers), f"packages without a row: {sorted(packages - set(layers))}"


def test_every_import_goes_down_the_layers() -> None:
    problems = layer_violations(imports(REPO), read_layers(REPO / "README.md"))
    assert not problems, "\n".join(problems)


def test_no_import_cycle_not_even_inside_functions() -> None:
    cycles = module_cycles(imports(REPO))
    assert not cycles, f"import cycles (an import inside a function does not remove one): {cycles}"


# -- the checker itself, on a fake tree ------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_finds_a_cycle_dodged_inside_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "datamodules/__init__.py": "",
        "datamodules/common.py": "def make():\n    from datamodules.transforms import Augment\n",
        "datamodules/transforms.py": "from datamodules.common import IGNORE\n",
        "datamodules/other.py": "from datamodules import common\n",
    })  # fmt: skip
    edges = imports(root)
    assert ("datamodules.common", "datamodules.transforms", 2, True) in edges
    assert ("datamodules.other", "datamodules.common", 1, False) in edges  # `from pkg import module`
    assert module_cycles(edges) == [["datamodules.common", "datamodules.transforms"]]


def test_checker_finds_an_upward_import_and_an_unknown_package(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "occrecon/__init__.py": "",
        "occrecon/evaluation/__init__.py": "",
        "occrecon/evaluation/fusion.py": "def load():\n    from occrecon.systems.parsing import ParsingSystem\n",
        "occrecon/systems/__init__.py": "",
        "occrecon/systems/parsing.py": "from occrecon.evaluation.fusion import load\nimport occrecon.newpkg\n",
    })  # fmt: skip
    problems = layer_violations(imports(root), {"occrecon": 0, "evaluation": 6, "systems": 7})
    assert len(problems) == 2
    assert "occrecon.evaluation.fusion:2 imports occrecon.systems.parsing (row 7 >= row 6" in problems[0]
    assert "'newpkg' has no row" in problems[1]
    assert layer_violations(imports(root), {"occrecon": 0, "evaluation": 6, "systems": 7, "newpkg": 1}) == [
        problems[0]
    ]
    # a dotted row of its own: systems.parsing below evaluation makes its import of evaluation the violation
    dotted = layer_violations(imports(root), {"occrecon": 0, "evaluation": 6, "systems": 7, "systems.parsing": 2, "newpkg": 1})
    assert [p.split(" (")[0] for p in dotted] == ["occrecon.systems.parsing:1 imports occrecon.evaluation.fusion"]


@pytest.mark.parametrize("row", ["| 3 | `nets`, `faces` |", "| 3 | `nets` , `faces` |  "])
def test_table_rows_are_read(tmp_path: Path, row: str) -> None:
    (tmp_path / "README.md").write_text(f"# x\n\n### Import layers\n\n| row | packages |\n|---|---|\n{row}\n\nAfter.\n")
    assert read_layers(tmp_path / "README.md") == {"nets": 3, "faces": 3}
