"""The demo report: sections of measured numbers and pictures, written as Markdown.

Each stage contributes a :class:`ReportSection` (built by its system module's
``demo_section(...)`` function); :func:`write_report` assembles them into ``report.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from occrecon.utils.io import atomic_write_text


@dataclasses.dataclass
class ReportSection:
    """One block of the report.

    Attributes:
        title: section heading.
        text: Markdown paragraph(s) explaining what was run and how to reproduce it.
        metrics: metric name -> measured value (a table; values are formatted with 4 significant digits).
        tables: extra Markdown tables (already formatted).
        figures: ``(caption, path)`` of PNGs; paths relative to the report directory.
    """

    title: str
    text: str = ""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    tables: list[str] = dataclasses.field(default_factory=list)
    figures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def format_value(value: float) -> str:
    """Format a measured number for a table (NaN shown as 'n/a')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; floats are formatted with :func:`format_value`."""
    cells = [[format_value(c) if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def render_section(section: ReportSection) -> str:
    """Markdown text of one section."""
    parts = [f"## {section.title}", ""]
    if section.text:
        parts += [section.text.strip(), ""]
    if section.metrics:
        parts += [markdown_table(["metric", "value"], [(k, v) for k, v in section.metrics.items()]), ""]
    for table in section.tables:
        parts += [table.strip(), ""]
    for caption, path in section.figures:
        parts += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: Sequence[ReportSection], preamble: str = "") -> Path:
    """Write ``report.md`` (atomically) from the sections, in order."""
    text = "\n".join([f"# {title}", "", preamble.strip(), ""] + [render_section(s) for s in sections])
    atomic_write_text(path, text)
    return Path(path)
