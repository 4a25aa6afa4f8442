"""`mdx report --merge`: one table of benchmark figures across machines.

Input is benchmarks/results/<machine>/*.json (one file per benchmark, as the scripts in benchmarks/
write them). A file's figures are the numbers under its "figures" key when it has one, otherwise
every number outside its machine/versions/settings/config (at any depth); nested keys are joined with dots. Machines are
columns, so the same figure from two boards sits on one row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdx.errors import ArtifactError

CONTEXT_KEYS = {"benchmark", "run", "created", "model", "runtime", "commands"}  # top level only
SETTINGS_KEYS = {"machine", "versions", "settings", "config", "env", "threadpools"}  # at any depth: inputs, not figures


@dataclass(frozen=True)
class MergedTable:
    """figure rows x machine columns; `machines` holds each column's machine facts and files."""

    machines: dict[str, dict[str, Any]]
    rows: dict[tuple[str, str], dict[str, float]]  # (benchmark, figure) -> machine -> value

    def to_dict(self) -> dict[str, Any]:
        return {"machines": self.machines,
                "rows": [{"benchmark": b, "figure": f, "values": v} for (b, f), v in self.rows.items()]}


def _flatten(value: Any, prefix: str, into: dict[str, float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        into[prefix] = float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in SETTINGS_KEYS:
                _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        # a list of rows: label each by its name when it has one, so keys survive a reordering; a list of
        # plain numbers is raw samples (per-round timings), not a figure to compare across machines
        for index, item in enumerate(value):
            label = item.get("name", index)
            _flatten(item, f"{prefix}.{label}" if prefix else str(label), into)


def figures_of(data: dict[str, Any]) -> dict[str, float]:
    """The numeric figures of one benchmark result, flattened to dotted keys."""
    found: dict[str, float] = {}
    if isinstance(data.get("figures"), dict):
        _flatten(data["figures"], "", found)
    else:
        _flatten({k: v for k, v in data.items() if k not in CONTEXT_KEYS}, "", found)
    return found


def _machine_dirs(dirs: Sequence[Path]) -> list[Path]:
    found = []
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: not a folder; pass benchmarks/results/<machine> folders or benchmarks/results")
        if any(folder.glob("*.json")):
            found.append(folder)
        else:
            found += sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json")))
    if not found:
        raise ArtifactError(f"no benchmark results (*.json) in {', '.join(map(str, dirs))}; "
                            "run a script in benchmarks/ first (see benchmarks/README.md)")
    return found


def merge_results(dirs: Sequence[Path]) -> MergedTable:
    """Read every benchmarks/results/<machine>/*.json under `dirs` into one table.

    Raises:
        ArtifactError: a folder is missing, holds no results, or a result is not valid JSON.
    """
    machines: dict[str, dict[str, Any]] = {}
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for folder in _machine_dirs(dirs):
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ArtifactError(f"{path} is not valid JSON ({exc}); rerun its benchmark or remove it") from None
            if not isinstance(data, dict):
                raise ArtifactError(f"{path} holds a {type(data).__name__}, not a benchmark result object")
            facts = data.get("machine") or {}
            # the folder names the machine: two different machines may share a hostname ("vm" here)
            column = folder.name
            entry = machines.setdefault(column, {"machine": facts, "files": []})
            entry["files"].append(str(path))
            benchmark = str(data.get("benchmark") or path.stem)
            for key, value in figures_of(data).items():
                rows.setdefault((benchmark, key), {})[column] = value
    return MergedTable(machines, dict(sorted(rows.items())))


def _format(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value == int(value) and abs(value) >= 1000 else f"{value:.4g}"


def merged_markdown(table: MergedTable) -> str:
    """The merged table as Markdown, with the machines described first."""
    names = list(table.machines)
    lines = ["# Benchmarks across machines", "", "| machine | cpu | cores | arch | os | files |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in table.machines.items():
        m = entry["machine"]
        files = ", ".join(Path(f).name for f in entry["files"])
        lines.append(f"| {name} | {m.get('cpu', '—')} | {m.get('cores', '—')} | {m.get('arch', '—')} | {m.get('os', '—')} | {files} |")
    lines += ["", "| benchmark | figure | " + " | ".join(names) + " |", "| --- | --- | " + " | ".join("---:" for _ in names) + " |"]
    for (benchmark, figure), values in table.rows.items():
        lines.append(f"| {benchmark} | {figure} | " + " | ".join(_format(values.get(n)) for n in names) + " |")
    return "\n".join(lines) + "\n"
