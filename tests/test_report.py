"""The Markdown report writer."""

from occrecon.report import ReportSection, markdown_table, write_report


def test_table_and_report(tmp_path):
    table = markdown_table(["a", "b"], [("x", 0.123456), ("y", 3)])
    assert table.splitlines()[2] == "| x | 0.1235 |" and table.splitlines()[3] == "| y | 3 |"
    path = write_report(
        tmp_path / "report.md",
        "Demo",
        [ReportSection("Stage", text="ran it", metrics={"miou": 0.5, "nan": float("nan")}, figures=[("grid", "grid.png")])],
    )
    text = path.read_text()
    assert "# Demo" in text and "## Stage" in text and "| miou | 0.5 |" in text and "| nan | n/a |" in text
    assert "![grid](grid.png)" in text
