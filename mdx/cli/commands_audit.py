"""`mdx audit DATA`: counts, formats, near-duplicates and shortcuts of a data folder, without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import typer

from mdx.cli.app import app, log

AUDIT_HELP = "Audit DATA first (mdx audit: counts, leakage, shortcuts) into OUT/audit/ and print its warnings."
STRICT_AUDIT_HELP = "Exit 1 when the audit finds near-duplicates straddling two splits (leakage)."
DUPLICATE_HELP = "Images whose pHash differs in at most this many of 64 bits are near-duplicates (-1: off)."


def default_run(data_dir: Path) -> Path:
    """runs/<data name>: where `mdx train DATA` puts its run, so the audit lands beside train/."""
    return Path("runs") / Path(data_dir).resolve().name


def run_audit(data_dir: Path, run: Path, *, duplicate_distance: int, strict: bool, labels_run: Path | None = None):
    """`mdx audit`: DATA into RUN/audit/, the tables and the warnings printed."""
    from mdx.train.audit import AuditConfig, audit_stage

    config = AuditConfig(duplicate_distance=duplicate_distance, labels_run=str(labels_run or ""))
    result = audit_stage(data_dir, config, Path(run) / "audit", strict=strict)
    _print(result)
    log(f"audit written to {Path(run) / 'audit' / 'audit.json'}")
    for warning in result.warnings:
        log(f"[yellow]warning:[/] {warning}")
    return result


def audit_first(data_dir: Path, run: Path, *, duplicate_distance: int, strict: bool):
    """Before training: audit DATA and print its warnings; leakage under `strict` stops here (report written).
    Returns what `write_audit` writes to RUN/audit/ once training has succeeded."""
    from mdx.train.audit import AuditConfig, audit, refuse_leakage

    config = AuditConfig(duplicate_distance=duplicate_distance)
    result = audit(data_dir, config)
    for warning in result.warnings:
        log(f"[yellow]warning:[/] {warning}")
    refuse_leakage(result, config, Path(run) / "audit", strict=strict)
    return result, config


def _print(result) -> None:
    from mdx.cli.commands_runtime import _print_table

    rows = []
    for split, by_class in result.properties.items():
        for label, facts in by_class.items():
            size = f"{_span(facts['width'])}x{_span(facts['height'])}"
            rows.append((split, label, str(result.splits[split][label]), size, _span(facts["aspect"], "{:.2f}"),
                         _kinds(facts["modes"]), _kinds(facts["formats"]),
                         f"{facts['brightness']['median']:.0f}"))
    _print_table(f"{result.data_dir}: {len(result.classes)} classes, {len(result.unreadable)} unreadable file(s)",
                 ["split", "class", "images", "size (w x h)", "aspect", "modes", "formats", "brightness"], rows)
    _print_table(f"near-duplicates: {result.duplicate_pairs} pair(s) within a split, {result.leakage_pairs} across "
                 "splits (leakage)", ["property alone", "balanced accuracy", "chance", "warn at", "shortcut?"],
                 [(s.description, f"{s.balanced_accuracy:.2f}", f"{s.chance:.2f}", f"{s.threshold:.2f}",
                   "yes" if s.flagged else "no") for s in result.shortcuts])
    if result.label_issues:
        _print_table(f"label issues (cleanlab, on the run's test split): {len(result.label_issues)}",
                     ["image", "given", "model says", "P(given)", "P(model's)"],
                     [(i.path, i.given, i.suggested, f"{i.p_given:.2f}", f"{i.p_suggested:.2f}")
                      for i in result.label_issues[:20]])


def _span(spread: dict, form: str = "{}") -> str:
    low, high = form.format(spread["min"]), form.format(spread["max"])
    return low if low == high else f"{low}-{high}"


def _kinds(counts: dict[str, int]) -> str:
    """'RGB' when every image is RGB, else 'RGB 120, L 3'."""
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{k} {v}" for k, v in counts.items())


@app.command("audit")
def audit_command(
    data_dir: Path = typer.Argument(..., help="Folder with split folders (train/, Testing/, ...) of class folders, or DATA/<class>/."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run folder; the audit goes to OUT/audit/. Default runs/<data name>."),
    duplicate_distance: int = typer.Option(2, help=DUPLICATE_HELP),
    strict: bool = typer.Option(False, "--strict", help=STRICT_AUDIT_HELP.replace("the audit finds ", "")),
    labels: Path | None = typer.Option(None, "--labels", help="A run (mdx pipeline, or train + convert): cleanlab lists the test images its FP32 model says carry the wrong class."),
) -> None:
    """Count, measure and compare a data set's images: sizes, modes, formats, near-duplicates across splits, shortcuts."""
    run_audit(data_dir, out_dir or default_run(data_dir), duplicate_distance=duplicate_distance, strict=strict,
              labels_run=labels)
