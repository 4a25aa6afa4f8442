"""What every benchmark script shares: where results go, the facts saved with them, and the run's files.

A result is `benchmarks/results/<hostname>-<simd>/<name>.json` holding the benchmark's name, its "figures"
(what `mdx report --merge` tabulates across machines), its settings, the versions and the machine,
including the load average before and after: on a shared machine a figure measured under load is
slower, and the file must say so.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

# issue 4: int8 against FP32 on the same images
ISSUE_4_GATE = {"max_acc_drop_pt": 0.5, "max_auc_drop": 0.01, "min_agreement": 0.99}


# The widest SIMD level names the machine with its hostname: machines here share the hostname "vm" while
# one has AVX-512/VNNI and another only AVX2, and int8 latency differs between them by 5x.
SIMD_LEVELS = ("avx512_vnni", "avx512f", "avx2", "asimddp", "asimd", "neon")


def machine_label() -> str:
    """`<hostname>-<widest SIMD level>`, e.g. vm-avx2: the folder of this machine's results."""
    from mdx.runtime.machine import cpu_flags

    flags = cpu_flags()
    level = next((flag for flag in SIMD_LEVELS if flag in flags), platform.machine())
    return f"{platform.node()}-{level}"


def result_path(name: str) -> Path:
    return RESULTS / machine_label() / f"{name}.json"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return None


def context(extra_packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Versions and machine facts, as the stage records keep them, plus the load average now."""
    from mdx.runtime.machine import RELEVANT_PACKAGES, machine_facts, package_versions

    return {"versions": package_versions(RELEVANT_PACKAGES + extra_packages),
            "machine": {**machine_facts(), "loadavg_start": load_average()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    """Write the result (with the closing load average) to `out` or benchmarks/results/<hostname>-<simd>/<name>.json."""
    from mdx.runtime.files import atomic_write_json

    payload["machine"]["loadavg_end"] = load_average()
    return atomic_write_json(out or result_path(name), {"benchmark": name, **payload})


def run_files(run: Path) -> dict[str, Any]:
    """The train record and the fp32/int8 .tflite of a pipeline run.

    Raises:
        SystemExit: the run lacks them (a benchmark script, not library code: it may exit).
    """
    run = Path(run)
    record_path = run / "train" / "record.json"
    if not record_path.is_file():
        raise SystemExit(f"error: {record_path} not found; pass the --out folder of `mdx pipeline`")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    models = {v: run / "convert" / v / "model.tflite" for v in ("fp32", "int8")}
    for variant, path in models.items():
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; run `mdx convert {run} --variants {variant}`")
    return {"record": record, "models": models, "keras": run / "train" / "model.keras", "train": run / "train"}


def test_source(record: dict[str, Any], train_folder: Path) -> Path:
    """The run's test split: its test folder, or, for a split mdx carved, the split manifest (test rows)."""
    test_dir = (record.get("data") or {}).get("test_dir")
    manifest = Path(train_folder) / "split_manifest.csv"
    if not test_dir and manifest.is_file():
        return manifest
    if not test_dir or not Path(test_dir).is_dir():
        raise SystemExit(f"error: the run's test split {test_dir!r} is not on this machine")
    return Path(test_dir)


def load_test_images(record: dict[str, Any], train_folder: Path, size: int):
    """The run's test images (an ImageSet) decoded at `size`, from its test folder or its manifest's test rows."""
    from mdx.runtime.images import load_files, load_folder
    from mdx.runtime.manifest import manifest_root, read_manifest, split_files

    labels = tuple(record["labels"])
    source = test_source(record, train_folder)
    if source.is_dir():
        return load_folder(source, size, labels)
    root = manifest_root(source)
    files, targets = split_files(read_manifest(source, root), "test", root, labels)
    return load_files(files, targets, labels, size, where=str(source))


def load_test_split(files: dict[str, Any], limit: int | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The test images of a run (`run_files`) through its preprocessing (the decoder training used); `limit`: N
    evenly spaced."""
    from mdx.runtime.preprocess import Preprocessing

    record = files["record"]
    labels = tuple(record["labels"])
    preprocessing = Preprocessing.from_dict(record["preprocessing"])
    images = load_test_images(record, files["train"], preprocessing.size)
    inputs, targets = preprocessing.normalize(images.images), images.labels
    if limit and limit < len(targets):  # evenly spaced, so both classes stay in (folders are sorted by class)
        keep = np.linspace(0, len(targets) - 1, limit).astype(int)
        inputs, targets = inputs[keep], targets[keep]
    return inputs, targets, labels


def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50_ms": round(float(p50), 4), "p90_ms": round(float(p90), 4), "mean_ms": round(float(values.mean()), 4),
            "min_ms": round(float(values.min()), 4), "runs": int(values.size)}

def accuracy_auc(metrics: dict[str, Any]) -> dict[str, Any]:
    """A metrics.json split (or TrainResult.metrics[split]) as the result files keep it: accuracy and AUC,
    each with its bootstrap 95% CI (None without bootstrap)."""
    return {name: {"value": round(metrics[name]["value"], 4),
                   "ci95": [round(v, 4) for v in metrics[name]["ci95"]] if metrics[name].get("ci95") else None}
            for name in ("accuracy", "auc") if metrics.get(name)}


def _accuracy(metrics: dict[str, Any]) -> float:
    value = metrics["accuracy"]
    return float(value["value"] if isinstance(value, dict) else value)


def check_figures(parity: Any) -> dict[str, Any]:
    """An `mdx check` parity result as the figures a result file keeps: flips, accuracies, the gate's verdict."""
    flips = sum(n for row in parity.flips.values() for n in row.values())
    return {"n": parity.n, "agreement": round(parity.agreement, 5), "flips": flips, "flips_by_class": parity.flips,
            "fp32_accuracy": round(_accuracy(parity.reference), 5), "int8_accuracy": round(_accuracy(parity.candidate), 5),
            "accuracy_drop_pt": round(100 * (_accuracy(parity.reference) - _accuracy(parity.candidate)), 3),
            "auc_delta": parity.deltas.get("auc"), "passed_issue_4_gate": parity.passed}
