"""CONVENTIONS.md points at real tests: every ``tests/...py`` it cites exists, and every
``tests/test_conventions_*.py`` is cited by it (a convention test belongs to a written rule)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cited(text: str) -> set[str]:
    return set(re.findall(r"`(tests/[\w/]+\.py)`", text))


def test_cited_tests_exist_and_convention_tests_are_cited() -> None:
    names = cited((REPO / "CONVENTIONS.md").read_text(encoding="utf-8"))
    assert {n for n in names if not (REPO / n).is_file()} == set()
    convention_tests = {f"tests/{p.name}" for p in (REPO / "tests").glob("test_conventions_*.py")}
    assert convention_tests - names <= {"tests/test_conventions_document.py"}


def test_the_citation_pattern() -> None:
    assert cited("see `tests/test_a.py` and `tests/sub/test_b.py`, not tests/test_c.py") == {
        "tests/test_a.py", "tests/sub/test_b.py"}  # fmt: skip
