"""`mdx pipeline`, `mdx report`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mdx.cli.app import app, log
from mdx.cli.app import out as stdout
from mdx.cli.commands_audit import AUDIT_HELP, STRICT_AUDIT_HELP
from mdx.cli.commands_fit import DEFAULT_DATA, RECIPE_HELP


@app.command("pipeline")
def pipeline_command(
    data_dir: Path = typer.Argument(DEFAULT_DATA, help="Folder with train/<class>/ and test/<class>/ (Training/, Testing/, any case), or DATA/<class>/ to be split."),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder: train/, convert/<variant>/, evaluate/, bench/, summary."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    train_config: Path | None = typer.Option(None, "--config", "--train-config", help=RECIPE_HELP),
    epochs_frozen: int | None = typer.Option(None, help="Override the training config's epochs with the backbone frozen."),
    epochs_finetune: int | None = typer.Option(None, help="Override the training config's fine-tuning epochs."),
    max_images_per_class: int | None = typer.Option(None, help="Use at most this many images per class and split (quick runs)."),
    input_size: int | None = typer.Option(None, help="Override the input size."),
    variants: str = typer.Option("int8", help="Comma-separated variants besides fp32: fp16, dynamic, int8, int8-fallback."),
    threads: str = typer.Option("1", help="Thread counts to time, comma-separated."),
    split_manifest: Path | None = typer.Option(None, help="Reuse the split of an earlier run (its train/split_manifest.csv)."),
    audit: bool = typer.Option(True, "--audit/--no-audit", help=AUDIT_HELP),
    strict_audit: bool = typer.Option(False, "--strict-audit", help=STRICT_AUDIT_HELP),
) -> None:
    """Train, convert (fp32 + int8), evaluate and time on a data set, end to end; prints one table."""
    from mdx.errors import ConfigError
    from mdx.pipeline import PipelineConfig, run_pipeline
    from mdx.train.recipe import recipe_config

    overrides = {"epochs_frozen": epochs_frozen, "epochs_finetune": epochs_finetune,
                 "max_images_per_class": max_images_per_class, "input_size": input_size}
    config = recipe_config(train_config, {key: value for key, value in overrides.items() if value is not None})
    try:
        thread_counts = tuple(int(t) for t in threads.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--threads {threads!r} must be comma-separated integers, e.g. 1,2") from None
    pipeline = PipelineConfig(variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
                              bench_threads=thread_counts, audit=audit, strict_audit=strict_audit)
    result = run_pipeline(data_dir, config, pipeline, out, overwrite=overwrite, log=log, split_manifest=split_manifest)

    table = Table(title=f"mdx pipeline: {data_dir} -> {out}")
    for column in ("variant", "size (MB)", "x FP32", "p50 latency (ms)", "accuracy", "AUC", "agreement w/ FP32"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in result.rows:
        table.add_row(row.variant, f"{row.bytes / 1e6:.2f}", f"{row.ratio_to_fp32:.2f}", f"{row.p50_ms:.2f}",
                      f"{row.accuracy:.3f}", "-" if row.auc is None else f"{row.auc:.3f}", f"{row.agreement_with_fp32:.3f}")
    stdout.print(table)
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in result.stage_seconds.items())
    log(f"pipeline: done in {sum(result.stage_seconds.values()):.0f} s ({stages}); summary in {out / 'summary.md'}")


@app.command("report")
def report_command(
    paths: list[Path] = typer.Argument(..., metavar="RUN_DIR | DIR...", help="RUN_DIR (an `mdx pipeline` --out folder); with --merge: "
                                                 "benchmarks/results/<machine> folders (or benchmarks/results)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for report.md/report.html (default: RUN_DIR); "
                                                           "with --merge: where merged.md/merged.json go (default: print only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report."),
    merge: bool = typer.Option(False, "--merge", help="Merge benchmark results across machines into one table."),
) -> None:
    """Write report.md and report.html for a run: variant table, plots, versions and machine."""
    from mdx.errors import ArtifactError, ConfigError

    if merge:
        from mdx.report_merge import merge_results, merged_markdown
        from mdx.runtime.files import atomic_write_json, atomic_write_text

        table = merge_results(paths)
        text = merged_markdown(table)
        if out is None:
            stdout.print(text, markup=False, highlight=False, soft_wrap=True)
            return
        if (out / "merged.md").exists() and not overwrite:
            raise ArtifactError(f"{out / 'merged.md'} already exists; pass --overwrite to replace it, or choose another --out")
        atomic_write_json(out / "merged.json", table.to_dict())
        log(f"report: merged {len(table.rows)} figures from {len(table.machines)} machine(s) into "
            f"{atomic_write_text(out / 'merged.md', text)}")
        return
    if len(paths) != 1:
        raise ConfigError(f"mdx report takes one RUN_DIR, got {len(paths)}; pass --merge to combine benchmark folders")
    from mdx.report import ReportConfig, write_report

    result = write_report(paths[0], ReportConfig(out=out, overwrite=overwrite))
    for note in result.notes:
        log(f"report: {note}")
    log(f"report: saved {result.html} and {result.markdown.name} ({len(result.figures)} figures) in {result.seconds:.1f} s")
