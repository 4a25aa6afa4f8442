"""Report text: the same tables rendered as Markdown and as one self-contained HTML page.

Numbers are printed from the run's JSON with fixed formats (MB to 3 decimals, ms to 3, metrics to 4),
so a test can recompute every cell from the files. A dash means the run has no such figure; the notes
at the end say why.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mdx.report_facts import RunFacts
    from mdx.report_plots import Figure

DASH = "—"
METRIC_TITLES = {"accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity", "auc": "AUC"}


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def mb(value: int | None) -> str:
    return DASH if value is None else f"{value / 1e6:.3f}"


def num(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def delta(value: float | None) -> str:
    return DASH if value is None else f"{value:+.4f}"


def with_ci(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return DASH
    ci = entry.get("ci95")
    return f"{entry['value']:.4f}" + ("" if not ci or None in ci else f" [{ci[0]:.4f}, {ci[1]:.4f}]")


def variant_table(rows: list[dict[str, Any]]) -> Table:
    headers = ["variant", "size (MB)", "gzip (MB)", "size x FP32", "gzip x FP32"]
    for name in METRIC_TITLES.values():
        headers += [f"{name} [95% CI]", f"Δ {name}"]
    body = []
    for r in rows:
        cells = [r["variant"], mb(r["bytes"]), mb(r["gzip_bytes"]), num(r["bytes_ratio"]), num(r["gzip_ratio"])]
        for name in METRIC_TITLES:
            entry = r["metrics"][name]
            cells += [with_ci(entry), delta(None if entry is None else entry["delta"])]
        body.append(tuple(cells))
    return Table("variants", "Variants (ratios and Δ to fp32)", tuple(headers), tuple(body))


def latency_table(rows: list[dict[str, Any]]) -> Table:
    body = []
    for r in rows:
        runtime = r["bench_runtime"] or {}
        label = f"{runtime.get('package', '?')} {runtime.get('version', '')}".strip()
        if not r["latency"]:
            body.append((r["variant"], DASH, DASH, DASH, DASH, "not timed"))
        for t in r["latency"]:
            body.append((r["variant"], str(t["threads"]), num(t["p50_ms"]), num(t["p90_ms"]), num(t["p50_ratio"]), label))
    return Table("latency", "Latency per thread count (ms; ratio of p50 to fp32 at the same thread count)",
                 ("variant", "threads", "p50 (ms)", "p90 (ms)", "p50 x FP32", "runtime"), tuple(body))


def compatibility_table(rows: list[dict[str, Any]]) -> Table:
    names = sorted({name for r in rows for name in (r["runtimes"] or {})})
    body = []
    for r in rows:
        runtimes = r["runtimes"] or {}
        cells = [r["variant"], r["min_runtime_version"] or DASH]
        for name in names:
            verdict = runtimes.get(name)
            cells.append(DASH if verdict is None else "yes" if verdict.get("loads") else
                         "no: " + "; ".join(str(p) for p in verdict.get("problems", [])))
        body.append(tuple(cells))
    return Table("compatibility", "Which runtimes can load each model (convert record's compatibility check)",
                 ("variant", "min runtime version", *names), tuple(body))


def _sources(facts: RunFacts) -> list[tuple[str, dict[str, Any]]]:
    """(where, record-like dict) for every file that carries versions, machine or runtime."""
    found = [(key, record) for key, record in facts.records.items()]
    for v in facts.variants:
        found.append((f"convert/{v.name}", v.convert))
        if v.evaluation is not None:
            found.append((f"evaluate/{v.name}", v.evaluation))
        if v.bench is not None:
            found.append((f"bench/{v.name}", v.bench))
    return found


def _grouped(pairs: list[tuple[str, str]], everyone: int) -> dict[str, str]:
    groups: dict[str, list[str]] = {}
    for value, where in pairs:
        groups.setdefault(value, []).append(where)
    return {value: "all records" if len(wheres) == everyone and len(groups) == 1 else ", ".join(wheres)
            for value, wheres in groups.items()}


def versions_table(facts: RunFacts) -> Table:
    sources = _sources(facts)
    packages: dict[str, list[tuple[str, str]]] = {}
    with_versions = [(w, s) for w, s in sources if s.get("versions")]
    for where, source in with_versions:
        for package, version in source["versions"].items():
            if version is not None:
                packages.setdefault(package, []).append((version, where))
    body = [(package, version, where) for package, pairs in packages.items()
            for version, where in _grouped(pairs, len(with_versions)).items()]
    runtimes = [(f"{s['runtime'].get('package')} {s['runtime'].get('version')}", w) for w, s in sources if s.get("runtime")]
    body += [("runtime used", value, where) for value, where in _grouped(runtimes, len(runtimes)).items()]
    return Table("versions", "Versions (from the records)", ("package", "version", "recorded in"), tuple(body))


def machine_table(facts: RunFacts) -> Table:
    keys = ("hostname", "cpu", "cores", "arch", "os", "python")
    pairs = [("\t".join(str(s["machine"].get(k)) for k in keys), w) for w, s in _sources(facts) if s.get("machine")]
    body = [tuple(value.split("\t")) + (where,) for value, where in _grouped(pairs, len(pairs)).items()]
    return Table("machine", "Machines (a figure is only comparable with figures from the same machine)",
                 (*keys, "recorded in"), tuple(body))


def summary_lines(facts: RunFacts) -> list[str]:
    pipeline = facts.records.get("pipeline", {})
    train = facts.records.get("train", {})
    lines = [f"Run folder: {facts.run}"]
    if pipeline:
        lines.append(f"Pipeline record created {pipeline.get('created')}; data {pipeline.get('config', {}).get('data_dir')}")
        seconds = (pipeline.get("metrics") or {}).get("stage_seconds")
        if seconds:
            lines.append("Stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    if train:
        config = train.get("config", {})
        counts = (train.get("data") or {}).get("counts")
        lines.append(f"Model: {config.get('backbone')} alpha {config.get('alpha')}, input {config.get('input_size')}, "
                     f"labels {train.get('labels')}, threshold {train.get('threshold')} ({train.get('threshold_rule')})")
        if counts:
            lines.append("Images: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return lines


def explanation_table(facts: RunFacts) -> Table | None:
    """Spearman, top-10% IoU and border share by class, or None when the run was not explained."""
    from mdx.report_explain import explanation_of

    found = explanation_of(facts)
    if found is None:
        return None
    config = facts.records["explain"].get("config", {})
    candidate, reference = config.get("candidate", "int8"), config.get("reference", "fp32")
    border = found["border_share"]
    rows = [("map Spearman, mean / median / min", "", " / ".join(num(found["spearman"][k]) for k in ("mean", "median", "min"))),
            ("top-10% IoU, mean / median / min", "", " / ".join(num(found["top10_iou"][k]) for k in ("mean", "median", "min"))),
            ("border share (outer 10%), all", num(border["reference"]), num(border["candidate"]))]
    flagged = border.get("shortcut_classes", [])  # records before per-class flags have none
    rows += [(f"border share, true {name}" + (" (shortcut)" if name in flagged else ""),
              num(border["reference_by_class"].get(name)), num(value))
             for name, value in border["candidate_by_class"].items()]
    verdict = ("yes" + (f" ({', '.join(flagged)})" if flagged else "")) if border["shortcut"] else "no"
    rows.append((f"shortcut flagged (border share, all or one class, above {border['limit']:g})", "", verdict))
    title = (f"Where the models look: occlusion maps of {candidate} against {reference} on {found['n']} test images "
             f"(patch {found['occlusion']['patch']}, stride {found['occlusion']['stride']}; an even map has border share 0.36)")
    return Table("explanation", title, ("measure", reference, candidate),
                 tuple(rows))


def gradcam_table(facts: RunFacts) -> Table | None:
    """Grad-CAM of the Keras model against the reference's occlusion maps on the grid, or None when not measured."""
    from mdx.report_explain import gradcam_of

    found = gradcam_of(facts)
    if found is None:
        return None
    reference = facts.records["explain"].get("config", {}).get("reference", "fp32")
    border = found["border_share"]
    rows = [("map Spearman, mean / median / min", "", " / ".join(num(found["spearman"][k]) for k in ("mean", "median", "min"))),
            ("top-10% IoU, mean / median / min", "", " / ".join(num(found["top10_iou"][k]) for k in ("mean", "median", "min"))),
            ("border share (outer 10%), all", num(border["occlusion"]), num(border["gradcam"]))]
    rows += [(f"border share, true {name}", num(border["occlusion_by_class"].get(name)), num(value))
             for name, value in border["gradcam_by_class"].items()]
    title = (f"Grad-CAM of the float Keras model ({found['layer']}) against {reference}'s occlusion maps on the "
             f"{found['n']} grid images, compared as int8 is with {reference}")
    return Table("gradcam", title, ("measure", f"{reference} occlusion", "Grad-CAM"), tuple(rows))


def tables(facts: RunFacts, rows: list[dict[str, Any]]) -> list[Table]:
    found = [variant_table(rows), latency_table(rows), compatibility_table(rows), explanation_table(facts),
             gradcam_table(facts)]
    return [t for t in found if t is not None] + [versions_table(facts), machine_table(facts)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(facts: RunFacts, rows: list[dict[str, Any]], figures: list[Figure], notes: list[str]) -> str:
    """The report as Markdown; figures are linked as report_figures/<name>.png beside report.md."""
    out = [f"# mdx report: {facts.run.name}", ""] + [f"- {line}" for line in summary_lines(facts)] + [""]
    for table in tables(facts, rows):
        out += [f"## {table.title}", "", "| " + " | ".join(table.headers) + " |",
                "| " + " | ".join("---" for _ in table.headers) + " |"]
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows] + [""]
    out += ["## Figures", ""]
    for figure in figures:
        out += [f"### {figure.title}", "", f"![{figure.title}]({figure.path.parent.name}/{figure.path.name})", "",
                figure.caption, ""]
    out += ["## Missing or left out", ""] + ([f"- {n}" for n in notes] or ["- nothing: every figure is present"])
    return "\n".join(out) + "\n"


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}"
         "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em;vertical-align:top}"
         "figcaption{font-size:0.8em;max-width:520px}img{max-width:640px}")


def render_html(facts: RunFacts, rows: list[dict[str, Any]], figures: list[Figure], notes: list[str]) -> str:
    """The report as one HTML page with every figure embedded as a base64 PNG data URI (no external files)."""
    e = html.escape
    title = f"mdx report: {facts.run.name}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{e(title)}</h1>", "<ul>"]
    out += [f"<li>{e(line)}</li>" for line in summary_lines(facts)] + ["</ul>"]
    for table in tables(facts, rows):
        out += [f"<h2>{e(table.title)}</h2>", f'<table id="{table.key}"><thead><tr>'
                + "".join(f"<th>{e(h)}</th>" for h in table.headers) + "</tr></thead><tbody>"]
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        out += ["</tbody></table>"]
    out += ["<h2>Figures</h2>"]
    for figure in figures:
        data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
        out += [f'<figure id="{e(figure.key)}"><h3>{e(figure.title)}</h3>',
                f'<img alt="{e(figure.title)}" src="data:image/png;base64,{data}">',
                f"<figcaption>{e(figure.caption)}</figcaption></figure>"]
    out += ["<h2>Missing or left out</h2>", '<ul id="notes">']
    out += [f"<li>{e(n)}</li>" for n in notes] or ["<li>nothing: every figure is present</li>"]
    out += ["</ul>", "</body></html>"]
    return "\n".join(out) + "\n"
