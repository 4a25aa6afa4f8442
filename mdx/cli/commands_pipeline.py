"""`mdx pipeline`, `mdx report`."""

from __future__ import annotations

from mdx.cli.app import app, not_built


@app.command("pipeline")
def pipeline_command() -> None:
    """Train, convert (fp32 + int8), evaluate and time on a data set, end to end; prints one table."""
    not_built("pipeline", "issue 2")


@app.command("report")
def report_command() -> None:
    """Write report.md and report.html for a run: variant table, plots, versions and machine."""
    not_built("report", "issue 7")
