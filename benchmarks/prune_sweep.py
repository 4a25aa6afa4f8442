"""Prune sweep: what pruning buys on this machine, against the dense model of one run.

For each sparsity: `mdx prune` the run, convert the pruned model to fp32, int8 and sparse-float
.tflite, count the zeros in each, evaluate each on the run's test split, and time it with
`mdx.runtime.bench`. The dense model is converted (fp32, int8) and measured the same way, and every
figure is reported with its ratio or delta to dense. Raw and gzip bytes are both reported: unstructured
pruning shrinks only the compressed size, unless the sparse-float encoding stores the zeros away.

    python benchmarks/prune_sweep.py runs/chest_xray --sparsities 0.5,0.75,0.9 [--clusters 16]
    -> benchmarks/results/<hostname>-<simd>/prune_sweep.json (and a table on stdout)

With `--clusters K`, each pruned model is also clustered to K values per kernel, zeros kept
(`mdx prune --clusters K` on the pruned folder: one more epoch at the same sparsity, then
`--cluster-epochs` of clustering), and measured the same way as `<sparsity>-c<K>`.

Not run by the tests: a full sweep fine-tunes MobileNetV2 three times.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_test_images, result_path


def _sizes(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def _test_split(parent: Any) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The run's test images, normalized with its preprocessing (the same decoder as training)."""
    from mdx.runtime.preprocess import Preprocessing

    preprocessing = Preprocessing.from_dict(parent.record["preprocessing"])
    labels = tuple(parent.record["labels"])
    images = load_test_images(parent.record, parent.folder, preprocessing.size)
    return preprocessing.normalize(images.images), images.labels, labels


def _measure(path: Path, inputs: np.ndarray, labels: np.ndarray, names: tuple[str, ...], threshold: float | None,
             args: argparse.Namespace) -> dict[str, Any]:
    """Sizes, test accuracy/AUC and latency of one .tflite."""
    from mdx.runtime.bench import BenchConfig, bench
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.metrics import classification_metrics

    probs = TfliteClassifier(path, threads=args.threads).predict_proba(inputs)
    metrics = classification_metrics(labels, probs, names, threshold=threshold, n_boot=0)
    timing = bench(path, BenchConfig(threads=(args.threads,), runs=args.runs, warmup=3)).timings[0]
    return {**_sizes(path), "accuracy": metrics["accuracy"]["value"], "auc": metrics["auc"]["value"],
            "p50_ms": round(timing.p50_ms, 3), "mean_ms": round(timing.mean_ms, 3)}


def _convert_all(source: Path, model: Any, folder: Path, calibration_count: int, sparse: bool) -> dict[str, Path]:
    """fp32 (and sparse-float) straight from the converter; int8 through `mdx convert` itself, so with the
    bias and output corrections users get (plain converter int8 lost 11 pt on a pruned model)."""
    from mdx.convert.convert import ConvertConfig, convert
    from mdx.convert.sparse import sparse_float, tflite_bytes
    from mdx.quantize import recipes

    folder.mkdir(parents=True, exist_ok=True)
    plan = {"fp32": recipes.fp32} | ({"sparse-float": sparse_float} if sparse else {})
    paths = {}
    for name, recipe in plan.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(tflite_bytes(model, recipe, None))
    converted = convert(source, ConvertConfig(variants=("int8",), calibration_count=calibration_count,
                                              out=folder / "mdx-convert", overwrite=True))
    paths["int8"] = folder / "int8.tflite"
    paths["int8"].write_bytes(converted["int8"].model_path.read_bytes())
    return paths


def _pruned(args: argparse.Namespace, config: Any, folder: Path, parent: Path | None = None) -> Any:
    """`mdx prune` (of the run, or of `parent`) into `folder`, or with --reuse the prune already there
    (re-measure without re-training)."""
    from types import SimpleNamespace

    from mdx.convert.sparse import tflite_bytes
    from mdx.records import read_record
    from mdx.train.keras_load import load_model
    from mdx.train.prune import prune
    from mdx.train.sparsity import measure_keras_sparsity

    if args.reuse and (folder / "record.json").is_file():
        record = read_record(folder)
        model = load_model(folder / "model.keras")
        kernels = measure_keras_sparsity(model).select(record["pruning"]["layers"])
        print(f"prune: reusing {folder} (pruned {record['created']})", flush=True)
        return SimpleNamespace(folder=folder, model_path=folder / "model.keras", threshold=record.get("threshold"),
                               keras_sparsity=kernels)
    return prune(parent or args.run, config, folder, fp32_tflite=tflite_bytes, overwrite=True, log=print)


def _deltas(row: dict[str, Any], dense: dict[str, Any]) -> dict[str, Any]:
    def diff(key: str) -> float | None:
        return None if row[key] is None or dense[key] is None else round(row[key] - dense[key], 4)

    return {"accuracy": diff("accuracy"), "auc": diff("auc"), "bytes_ratio": round(row["bytes"] / dense["bytes"], 3),
            "gzip_ratio": round(row["gzip_bytes"] / dense["gzip_bytes"], 3),
            "latency_ratio": round(row["p50_ms"] / dense["p50_ms"], 3)}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    from mdx.runtime.machine import RELEVANT_PACKAGES, machine_facts, package_versions
    from mdx.train.keras_load import load_model
    from mdx.train.prune_setup import PruneConfig, resolve_parent
    from mdx.train.sparsity import check_sparsity, measure_tflite_sparsity

    parent = resolve_parent(args.run)
    work = args.work or parent.run / "prune_sweep"
    inputs, labels, names = _test_split(parent)
    dense_paths = _convert_all(parent.run, load_model(parent.model), work / "dense",
                               args.calibration_count, False)
    dense = {name: _measure(path, inputs, labels, names, parent.record.get("threshold"), args)
             for name, path in dense_paths.items()}
    print(f"dense: fp32 {dense['fp32']}", flush=True)
    def measured(result: Any, config: Any, seconds: float) -> dict[str, Any]:
        paths = _convert_all(result.folder, load_model(result.model_path),
                             result.folder / "tflite", args.calibration_count, True)
        variants = {}
        layers = [k.layer for k in result.keras_sparsity.kernels]
        for name, path in paths.items():
            report = measure_tflite_sparsity(path).select(layers)
            check_sparsity(report, config.sparsity, tolerance=config.tolerance, allow_above=name == "int8", where=name)
            row = _measure(path, inputs, labels, names, result.threshold, args)
            row["sparsity"] = round(report.overall, 4)
            row["vs_dense"] = _deltas(row, dense["int8" if name == "int8" else "fp32"])
            variants[name] = row
            print(f"{config.folder_name()} {name}: {row}", flush=True)
        return {"sparsity": config.sparsity, "clusters": config.clusters, "prune_seconds": round(seconds, 1),
                "keras_sparsity": round(result.keras_sparsity.overall, 4), "variants": variants}

    rows = []
    for sparsity in args.sparsities:
        started = time.perf_counter()
        config = PruneConfig(sparsity=sparsity, schedule=args.schedule, epochs=args.epochs)
        result = _pruned(args, config, work / config.folder_name())
        rows.append(measured(result, config, time.perf_counter() - started))
        if args.clusters:
            started = time.perf_counter()
            clustered = PruneConfig(sparsity=sparsity, epochs=1, clusters=args.clusters,
                                    cluster_epochs=args.cluster_epochs)
            result = _pruned(args, clustered, work / clustered.folder_name(), parent=result.folder)
            rows.append(measured(result, clustered, time.perf_counter() - started))
    return {"benchmark": "prune_sweep", "run": str(Path(args.run).resolve()), "machine": machine_facts(),
            "settings": {"schedule": args.schedule, "epochs": args.epochs, "threads": args.threads, "runs": args.runs,
                         "test_images": len(labels), "calibration_count": args.calibration_count,
                         "int8": "mdx convert --int8 (bias and output corrections)", "reused_prune": args.reuse,
                         "clusters": args.clusters, "cluster_epochs": args.cluster_epochs},
            "versions": package_versions(RELEVANT_PACKAGES), "dense": dense, "pruned": rows,
            # what `mdx report --merge` tabulates
            "figures": {"dense": dense, **{_row_name(row): row["variants"] for row in rows}}}


def _row_name(row: dict[str, Any]) -> str:
    return f"pruned-{row['sparsity']:g}" + (f"-c{row['clusters']}" if row.get("clusters") else "")


def _table(result: dict[str, Any]) -> str:
    header = (f"{'variant':<22}{'MB':>7}{'gzip MB':>9}{'gzip x':>8}{'acc':>8}{'d acc':>8}{'AUC':>7}{'d AUC':>8}"
              f"{'p50 ms':>9}{'lat x':>7}")
    lines = [header]
    for name, row in result["dense"].items():
        lines.append(f"{'dense ' + name:<22}{row['bytes'] / 1e6:>7.2f}{row['gzip_bytes'] / 1e6:>9.2f}{1:>8.2f}"
                     f"{row['accuracy']:>8.3f}{0:>8.3f}{row['auc'] or 0:>7.3f}{0:>8.3f}{row['p50_ms']:>9.2f}{1:>7.2f}")
    for entry in result["pruned"]:
        for name, row in entry["variants"].items():
            d = row["vs_dense"]
            label = f"{_row_name(entry)[len('pruned-'):]} {name}"
            lines.append(f"{label:<22}{row['bytes'] / 1e6:>7.2f}{row['gzip_bytes'] / 1e6:>9.2f}"
                         f"{d['gzip_ratio']:>8.2f}{row['accuracy']:>8.3f}{d['accuracy'] or 0:>8.3f}"
                         f"{row['auc'] or 0:>7.3f}"
                         f"{d['auc'] or 0:>8.3f}{row['p50_ms']:>9.2f}{d['latency_ratio']:>7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (RUN/train/record.json) or its train/ folder")
    parser.add_argument("--sparsities", type=lambda s: [float(v) for v in s.split(",")], default=[0.5, 0.75, 0.9])
    parser.add_argument("--schedule", default="polynomial", choices=("constant", "polynomial"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50, help="timed invokes per model")
    parser.add_argument("--calibration-count", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None,
                        help="where pruned runs and .tflite go (default RUN/prune_sweep)")
    parser.add_argument("--clusters", type=int, default=None, help="also cluster each pruned model to K values")
    parser.add_argument("--cluster-epochs", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="measure prune folders already in --work instead of re-pruning")
    parser.add_argument("--out", type=Path, default=result_path("prune_sweep"))
    args = parser.parse_args(argv)

    from mdx.errors import MdxError
    from mdx.runtime.files import atomic_write_json

    try:
        result = sweep(args)
    except MdxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    atomic_write_json(args.out, result)
    print(_table(result))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
