"""`mdx report`: one Markdown and one self-contained HTML page per run, built only from the run's files.

Variants are discovered, not assumed: every RUN/convert/<variant>/record.json, and every
RUN/prune-*/convert/<variant>/record.json (a pruned model is named `prune-0.5/int8`). Each variant's
evaluation (ROOT/evaluate/<variant>/evaluation.json + predictions.npz) and timing
(ROOT/bench/<variant>.json) are read from beside its convert folder, and kept only when their sha256
is the converted model's: a figure measured on another file is not this variant's figure. Anything
missing is listed in the report's notes and shown as a dash, never filled in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase
from mdx.errors import ArtifactError
from mdx.records import RECORD_NAME, read_record
from mdx.report_facts import MODEL_NAME, RunFacts, Variant
from mdx.runtime.files import atomic_write_json, atomic_write_text

REFERENCE = "fp32"  # ratios and deltas are to the run's dense float model
METRICS = ("accuracy", "sensitivity", "specificity", "auc")
OUTPUT_NAMES = ("report.md", "report.html", "report.json")


@dataclass(frozen=True)
class ReportConfig(ConfigBase):
    """Where the report goes (default: the run folder) and whether existing report files may be replaced."""

    out: Path | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class ReportResult:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    notes: tuple[str, ...]
    seconds: float = 0.0
    rows: tuple[dict[str, Any], ...] = field(default=(), repr=False)


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        notes.append(f"{path}: unreadable ({exc}); its figures are left out")
        return None


def _checked(kind: str, path: Path, data: dict[str, Any] | None, sha: str, notes: list[str]) -> dict[str, Any] | None:
    """Keep a measurement only if it was made on this variant's model file."""
    if data is None:
        return None
    measured = (data.get("model") or {}).get("sha256")
    if measured != sha:
        notes.append(f"{path}: {kind} of a different model file (sha256 {str(measured)[:12]} != {sha[:12]}); "
                     f"left out, rerun the {kind} stage")
        return None
    return data


def _variant(name: str, folder: Path, root: Path, run: Path, notes: list[str]) -> Variant | None:
    try:
        record = read_record(folder)  # checks model.tflite against its sha256: a changed file is not reported
        sha = Variant(name, folder, record).model["sha256"]
    except ArtifactError as exc:
        notes.append(f"{name}: left out ({exc})")
        return None
    short = folder.name
    eval_path = root / "evaluate" / short / "evaluation.json"
    evaluation = _checked("evaluation", eval_path, _read_json(eval_path, notes), sha, notes)
    if evaluation is None and not eval_path.exists():
        notes.append(f"{name}: no {eval_path.relative_to(run)} -- accuracy not measured "
                     f"(run `mdx evaluate {folder / MODEL_NAME} DATA/test --json {eval_path}`)")
    predictions = eval_path.with_name("predictions.npz")
    bench_path = root / "bench" / f"{short}.json"
    bench = _checked("bench", bench_path, _read_json(bench_path, notes), sha, notes)
    if bench is None and not bench_path.exists():
        notes.append(f"{name}: no {bench_path.relative_to(run)} -- latency not measured "
                     f"(run `mdx bench {folder / MODEL_NAME} --json {bench_path}`)")
    return Variant(name, folder, record, evaluation,
                   predictions if evaluation is not None and predictions.is_file() else None, bench)


def collect(run: Path) -> RunFacts:
    """Read the run's records, evaluations, timings and histories.

    Raises:
        ArtifactError: `run` is not a folder or holds no converted model (convert/<variant>/record.json).
    """
    if not Path(run).is_dir():
        raise ArtifactError(f"{run}: run folder not found; pass the --out folder of `mdx pipeline`")
    run = Path(run).resolve()  # the report names the folder it describes, wherever it was run from
    notes: list[str] = []
    roots = [run] + sorted(p for p in run.glob("prune-*") if p.is_dir())
    variants: list[Variant] = []
    records: dict[str, dict[str, Any]] = {}
    histories: dict[str, dict[str, list[float]]] = {}
    for root in roots:
        prefix = "" if root == run else f"{root.name}/"
        for folder in sorted(p.parent for p in root.glob(f"convert/*/{RECORD_NAME}")):
            found = _variant(prefix + folder.name, folder, root, run, notes)
            if found is not None:
                variants.append(found)
        stage_dir = run / "train" if root == run else root
        key = "train" if root == run else root.name
        record = _read_json(stage_dir / RECORD_NAME, notes)
        if record is not None:
            records[key] = record
        history = _read_json(stage_dir / "history.json", notes)
        if history:
            histories[key] = history
    if not variants:
        raise ArtifactError(f"{run}: no converted model (convert/<variant>/{RECORD_NAME}); pass the --out folder "
                            f"of `mdx pipeline`, or run `mdx convert {run}` first")
    explained = _read_json(run / "explain" / RECORD_NAME, notes)
    if explained is not None:
        records["explain"] = explained
    pipeline = _read_json(run / RECORD_NAME, notes)
    if pipeline is not None:
        records["pipeline"] = pipeline
    if "train" not in records:
        notes.append("no train/record.json: training facts and curves are not shown")
    order = {q: i for i, q in enumerate(("fp32", "fp16", "dynamic", "int8", "int8-fallback"))}
    variants.sort(key=lambda v: (v.name.rpartition("/")[0], order.get(v.folder.name, 99), v.name))
    return RunFacts(run, tuple(variants), records, histories, tuple(notes))


def _metric(evaluation: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if evaluation is None:
        return None
    entry = evaluation["metrics"].get(name)
    return entry if isinstance(entry, dict) and entry.get("value") is not None else None


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def variant_rows(facts: RunFacts) -> list[dict[str, Any]]:
    """One plain row per variant: sizes, ratios, latency per thread count, metrics and deltas, runtimes."""
    reference = next((v for v in facts.variants if v.name == REFERENCE), None)
    ref_model = reference.model if reference else {}
    ref_timings = {t["threads"]: t for t in (reference.bench or {}).get("timings", [])} if reference else {}
    rows = []
    for v in facts.variants:
        model = v.model
        row: dict[str, Any] = {
            "variant": v.name, "folder": str(v.folder), "bytes": model["bytes"], "gzip_bytes": model.get("gzip_bytes"),
            "bytes_ratio": _ratio(model["bytes"], ref_model.get("bytes")),
            "gzip_ratio": _ratio(model.get("gzip_bytes"), ref_model.get("gzip_bytes")),
            "latency": [], "metrics": {}, "runtimes": (v.convert.get("compatibility") or {}).get("runtimes"),
            "min_runtime_version": (v.convert.get("compatibility") or {}).get("min_runtime_version"),
            "bench_runtime": None if v.bench is None else v.bench.get("runtime"),
            "n": None if v.evaluation is None else v.evaluation["metrics"].get("n"),
            "threshold": None if v.evaluation is None else v.evaluation["metrics"].get("threshold"),
        }
        for timing in (v.bench or {}).get("timings", []):
            ref = ref_timings.get(timing["threads"])
            row["latency"].append({"threads": timing["threads"], "p50_ms": timing["p50_ms"], "p90_ms": timing["p90_ms"],
                                   "p50_ratio": _ratio(timing["p50_ms"], ref and ref["p50_ms"])})
        for name in METRICS:
            entry, ref_entry = _metric(v.evaluation, name), _metric(reference and reference.evaluation, name)
            row["metrics"][name] = None if entry is None else {
                "value": entry["value"], "ci95": entry.get("ci95"),
                "delta": None if ref_entry is None else entry["value"] - ref_entry["value"]}
        rows.append(row)
    return rows


def _reference_notes(facts: RunFacts) -> list[str]:
    reference = next((v for v in facts.variants if v.name == REFERENCE), None)
    if reference is None:
        return [f"no {REFERENCE} variant (convert/{REFERENCE}): size and latency ratios and accuracy deltas are not shown"]
    notes = []
    if reference.bench is None:
        notes.append(f"{REFERENCE} was not timed: latency ratios are not shown")
    if reference.evaluation is None:
        notes.append(f"{REFERENCE} was not evaluated: accuracy deltas are not shown")
    return notes


def _refuse_overwrite(out: Path, overwrite: bool) -> None:
    if overwrite:
        return
    for name in OUTPUT_NAMES:
        if (out / name).exists():
            raise ArtifactError(f"{out / name} already exists; pass --overwrite to replace it, or choose another --out")


def write_report(run: Path, config: ReportConfig = ReportConfig()) -> ReportResult:
    """Write report.md, report.html (figures embedded) and report.json for the run; PNGs go to report_figures/.

    Raises:
        ArtifactError: `run` is not a run folder, or the report exists and `config.overwrite` is false.
        ConfigError: matplotlib is not installed.
    """
    from mdx.report_explain import explain_figures
    from mdx.report_plots import make_figures
    from mdx.report_render import render_html, render_markdown

    started = time.perf_counter()
    facts = collect(run)
    out = Path(config.out) if config.out is not None else Path(run)
    _refuse_overwrite(out, config.overwrite)
    rows = variant_rows(facts)
    notes = list(facts.notes) + _reference_notes(facts)
    figures = make_figures(facts, rows, out / "report_figures", notes) + explain_figures(facts, out / "report_figures", notes)
    for stale in set((out / "report_figures").glob("*.png")) - {f.path for f in figures}:
        stale.unlink()  # a figure of a variant that is gone must not be linked by accident
    markdown = atomic_write_text(out / "report.md", render_markdown(facts, rows, figures, notes))
    html = atomic_write_text(out / "report.html", render_html(facts, rows, figures, notes))
    atomic_write_json(out / "report.json", {"run": str(facts.run), "variants": rows, "notes": notes,
                                            "figures": [str(f.path.relative_to(out)) for f in figures]})
    return ReportResult(markdown, html, tuple(f.path for f in figures), tuple(notes),
                        time.perf_counter() - started, tuple(rows))
