"""The end-to-end run behind `mdx pipeline`: train -> convert (fp32 + int8) -> evaluate -> bench -> table.

Each stage writes its own folder with its record; the pipeline adds `summary.json`, `summary.md` and
its own `record.json` that point at them. Every variant is evaluated as `mdx evaluate` would evaluate
it, at the threshold that training chose and convert recorded with the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase, require
from mdx.errors import ArtifactError
from mdx.records import write_record
from mdx.runtime.files import atomic_write_json, atomic_write_text
from mdx.variants import Quantization

Log = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig(ConfigBase):
    """Which variants beyond fp32, how to time them, and the bootstrap size of the CIs."""

    variants: tuple[str, ...] = (Quantization.INT8.value,)
    bench_threads: tuple[int, ...] = (1,)
    bench_runs: int = 50
    bench_warmup: int = 5
    bootstrap: int = 1000
    audit: bool = True  # mdx audit of DATA first, into OUT/audit/, its warnings logged
    strict_audit: bool = False  # leakage across splits is an error

    def __post_init__(self) -> None:
        names = [q.value for q in Quantization]
        for variant in self.variants:
            require(variant in names, f"variant {variant!r} is not one of {names}")
        require(all(t >= 1 for t in self.bench_threads), f"bench threads {list(self.bench_threads)} must be >= 1")
        require(self.bench_runs >= 1 and self.bench_warmup >= 0, "bench runs must be >= 1 and warmup >= 0")


@dataclass(frozen=True)
class VariantRow:
    variant: str
    bytes: int
    ratio_to_fp32: float
    p50_ms: float
    accuracy: float
    auc: float | None
    sensitivity: float | None
    specificity: float | None
    agreement_with_fp32: float


@dataclass(frozen=True)
class PipelineResult:
    folder: Path
    rows: tuple[VariantRow, ...]
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "rows": [row.__dict__ for row in self.rows],
                "stage_seconds": self.stage_seconds}


def _value(metrics: dict[str, Any], name: str) -> float | None:
    entry = metrics.get(name)
    return None if entry is None else float(entry["value"])


def agreement(probs: Any, reference_probs: Any, threshold: float | None) -> float:
    """Share of samples both models assign the same class, by the rule the accuracy uses (threshold for
    2 classes, else argmax). argmax would send an exact int8 tie (0.5, 0.5) to class 0 where
    `p >= 0.5` sends it to class 1, and the table's two columns would disagree on it."""
    import numpy as np

    from mdx.runtime.metrics import predict_classes

    return float(np.mean(predict_classes(probs, threshold) == predict_classes(reference_probs, threshold)))


def summary_markdown(result: PipelineResult) -> str:
    lines = ["| variant | size (MB) | x FP32 | p50 latency (ms) | accuracy | AUC | sensitivity | specificity | agreement with FP32 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result.rows:
        lines.append(f"| {r.variant} | {r.bytes / 1e6:.2f} | {r.ratio_to_fp32:.2f} | {r.p50_ms:.2f} | {r.accuracy:.3f} | "
                     f"{r.auc if r.auc is None else format(r.auc, '.3f')} | {r.sensitivity:.3f} | {r.specificity:.3f} | "
                     f"{r.agreement_with_fp32:.3f} |")
    return "\n".join(lines) + "\n"


def run_pipeline(data_dir: Path, train_config: Any, config: PipelineConfig, out: Path, *,
                 overwrite: bool = False, log: Log = lambda message: None,
                 split_manifest: Path | None = None, resume: bool = False) -> PipelineResult:
    """Train on `data_dir`, convert to fp32 and the requested variants, evaluate each on test/, time each.

    `resume` continues a training that was interrupted (mdx train --resume).

    Raises:
        ArtifactError: `out` exists and `overwrite` is false, or the data set has no test/ split.
        (and whatever the stages raise: DataError, ConfigError, ConversionError, ...)
    """
    from mdx.convert.convert import ConvertConfig, convert
    from mdx.runtime.bench import BenchConfig, bench
    from mdx.runtime.evaluate import EvaluateConfig, evaluate
    from mdx.runtime.manifest import MANIFEST_NAME
    from mdx.train.audit import AuditConfig, audit, refuse_leakage, write_audit
    from mdx.train.data import split_folders
    from mdx.train.fit import train

    out = Path(out)
    # an interrupted training's staging folder is no result: train removes it, or continues it (--resume);
    # nor is the audit, which a rerun writes anew before training
    results = [p for p in out.iterdir() if not p.name.startswith((".train.partial-", ".audit.")) and p.name != "audit"] \
        if out.exists() else []
    if results and not overwrite:
        raise ArtifactError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    folders = split_folders(data_dir)
    # DATA/<class>/ (no split folders) or a reused manifest: training carves or reads the test split, and
    # every variant is evaluated on the test rows of the manifest it wrote
    test_dir: Path | None = out / "train" / MANIFEST_NAME
    if folders and split_manifest is None:
        test_dir = folders.get("test")
    if test_dir is None:
        raise ArtifactError(f"{data_dir}: no test/ split (or Testing/); the pipeline evaluates every variant on "
                            "DATA/test/<class>/ (or give DATA/<class>/ alone, and it is split)")
    seconds: dict[str, float] = {}
    audited = None
    if config.audit:  # first, for its warnings; written once training has accepted the data
        started = time.perf_counter()
        audit_config = AuditConfig(duplicate_distance=train_config.duplicate_distance)
        audited = audit(data_dir, audit_config)
        for warning in audited.warnings:
            log(f"warning: {warning}")
        refuse_leakage(audited, audit_config, out / "audit", strict=config.strict_audit)
        seconds["audit"] = time.perf_counter() - started
    started = time.perf_counter()
    trained = train(data_dir, train_config, out / "train", overwrite=overwrite, log=log, split_manifest=split_manifest,
                    resume=resume)
    seconds["train"] = time.perf_counter() - started
    if audited is not None:
        write_audit(audited, audit_config, out / "audit")

    started = time.perf_counter()
    converted = convert(out, ConvertConfig(variants=tuple(Quantization(v) for v in config.variants), overwrite=overwrite),
                        on_log=log)
    seconds["convert"] = time.perf_counter() - started

    evaluations, timings = {}, {}
    started = time.perf_counter()
    for variant in converted.variants:
        name = variant.variant.value
        result = evaluate(variant.model_path, test_dir, EvaluateConfig(n_boot=config.bootstrap))
        if result.decision.threshold != trained.threshold:  # convert records the threshold; a miss is a bug
            raise ArtifactError(f"{variant.model_path} decides at {result.decision.describe()}, not at the "
                                f"threshold {trained.threshold} training chose; this is a bug in mdx convert")
        result.save(out / "evaluate" / name, overwrite=overwrite)
        evaluations[name] = result
        log(f"evaluate: {name} accuracy {result.metrics['accuracy']['value']:.3f}  AUC {result.metrics['auc']['value']:.3f}"
            f"  on {len(result.labels)} test images at {result.decision.describe()} "
            f"({result.runtime.package} {result.runtime.version})")
    seconds["evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    for variant in converted.variants:
        name = variant.variant.value
        timing = bench(variant.model_path, BenchConfig(threads=config.bench_threads, runs=config.bench_runs,
                                                       warmup=config.bench_warmup))
        timing.save(out / "bench" / f"{name}.json")
        timings[name] = timing
    seconds["bench"] = time.perf_counter() - started
    if Quantization.INT8.value in evaluations:  # where FP32 and INT8 look, for the report (mdx/explain_run.py)
        from mdx.explain_run import explain_run

        explained = explain_run(out, test_dir)
        seconds["explain"] = explained.seconds
        log(f"explain: {explained.explanation['summary']}; saved {explained.grid}")
        if explained.gradcam is not None:
            g = explained.gradcam
            log(f"explain: Grad-CAM of the Keras model against fp32 occlusion on {g['n']} grid images: map Spearman "
                f"mean {g['spearman']['mean']:.3f}, top-10% IoU mean {g['top10_iou']['mean']:.3f}")

    fp32_probs = evaluations[Quantization.FP32.value].probs
    fp32_bytes = converted.variants[0].bytes
    rows = []
    for variant in converted.variants:
        name = variant.variant.value
        metrics = evaluations[name].metrics
        rows.append(VariantRow(
            variant=name, bytes=variant.bytes, ratio_to_fp32=round(variant.bytes / fp32_bytes, 4),
            p50_ms=round(timings[name].timings[0].p50_ms, 3), accuracy=_value(metrics, "accuracy") or 0.0,
            auc=_value(metrics, "auc"), sensitivity=_value(metrics, "sensitivity"),
            specificity=_value(metrics, "specificity"),
            agreement_with_fp32=agreement(evaluations[name].probs, fp32_probs, evaluations[name].decision.threshold),
        ))
    result = PipelineResult(folder=out, rows=tuple(rows), stage_seconds={k: round(v, 1) for k, v in seconds.items()})
    atomic_write_json(out / "summary.json", result.to_dict())
    atomic_write_text(out / "summary.md", summary_markdown(result))
    outputs = [out / "summary.json", out / "summary.md"]
    write_record(out, stage="pipeline", config={"data_dir": str(data_dir), "train": train_config.to_dict(),
                                                 **config.to_dict()},
                 inputs=[], outputs=outputs, metrics=result.to_dict(), wall_seconds=sum(seconds.values()),
                 extra={"stages": {"train": "train/record.json",
                                   **{f"convert/{r.variant}": f"convert/{r.variant}/record.json" for r in rows}}})
    from mdx.report import ReportConfig, write_report  # last: the report reads every file written above

    report = write_report(out, ReportConfig(overwrite=overwrite))
    log(f"report: saved {report.html} and {report.markdown.name} ({len(report.figures)} figures)")
    return result
