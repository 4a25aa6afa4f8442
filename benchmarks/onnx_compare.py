"""ONNX Runtime against LiteRT on the same model, images and machine, in one process.

The run's float Keras model is exported to ONNX with tf2onnx (`from_keras`, opset 17), then quantized
with onnxruntime's static int8 quantizer (QDQ, per-channel weights, MinMax ranges) on the same 200
calibration images the run's int8 .tflite was calibrated on (mdx.quantize.calibration, same count and
seed). All four models (TFLite fp32/int8 from the run, ONNX fp32/int8) are then timed on one image at
1 and 2 threads and scored on the whole test split with the run's threshold; the table prints each
figure and its ratio to the TFLite model of the same precision.

    .venv/bin/pip install -e '.[compare]'          # tf2onnx, onnx, onnxruntime (adds, pins nothing)
    python benchmarks/onnx_compare.py runs/demo
    -> benchmarks/results/<hostname>-<simd>/onnx_compare.json

Timing: LiteRT through mdx.runtime.bench (bare invoke()); ONNX Runtime as a bare `session.run` on a
preallocated input, which also copies the 0.6 MB input and allocates the output (microseconds against
milliseconds). Not run by the tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, load_test_split, percentiles, run_files, save

THREADS = (1, 2)
PACKAGES = ("tf2onnx", "onnx", "onnxruntime", "protobuf")


def export_onnx(keras_path: Path, size: int, out: Path) -> float:
    """Keras -> ONNX with tf2onnx; returns seconds. Input named "image", batch dimension free."""
    import tf2onnx

    from mdx.train.keras_load import load_model
    from mdx.train.keras_shim import tf

    model = load_model(keras_path)
    started = time.perf_counter()
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(out))
    return time.perf_counter() - started


def quantize_onnx(fp32: Path, calibration: np.ndarray, out: Path, activations: str = "int8") -> dict[str, Any]:
    """Static QDQ, per-channel int8 weights, MinMax, on `calibration` (N, S, S, 3) float inputs.

    `activations` "int8" is S8S8 (as TFLite's int8); "uint8" is U8S8, which onnxruntime's guide
    names as the faster choice on x86.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {"image": item}

    prepared = out.with_name(f"{out.stem}_prep.onnx")
    # shape inference + folding, as onnxruntime's guide advises; onnx's own shape inference suffices for a
    # static-shape CNN, so the symbolic pass (which needs sympy) is skipped
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    started = time.perf_counter()
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return {"format": "QDQ", "per_channel": True, "activations": activations, "weights": "int8", "calibration": "MinMax",
            "images": len(calibration), "seconds": round(time.perf_counter() - started, 1)}


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_round(session: Any, image: np.ndarray, runs: int) -> dict[str, float]:
    feed, clock, ms = {"image": image}, time.perf_counter_ns, []
    for _ in range(runs):
        start = clock()
        session.run(None, feed)
        ms.append((clock() - start) / 1e6)
    return percentiles(ms)


def tflite_round(path: Path, threads: int, warmup: int, runs: int) -> dict[str, float]:
    from mdx.runtime.bench import BenchConfig, bench

    timing = bench(path, BenchConfig(threads=(threads,), warmup=warmup, runs=runs)).timings[0]
    return {"p50_ms": timing.p50_ms, "min_ms": timing.min_ms}


def time_interleaved(models: dict[str, Path], threads: int, image: np.ndarray, args: argparse.Namespace
                     ) -> dict[str, dict[str, Any]]:
    """p50 per model, as the median over rounds of each round's p50; every round times every model once.

    On a shared machine the load drifts; interleaving lets the drift hit every model alike, so the
    ratios hold even when the absolute figures move.
    """
    sessions = {name: ort_session(path, threads) for name, path in models.items() if name.startswith("onnx")}
    for session in sessions.values():
        ort_round(session, image, args.warmup)
    per_round = max(1, args.runs // args.rounds)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, path in models.items():
            rounds[name].append(ort_round(sessions[name], image, per_round) if name in sessions
                                else tflite_round(path, threads, args.warmup, per_round))
    return {name: {"p50_ms": round(float(np.median([r["p50_ms"] for r in got])), 4),
                   "min_ms": round(min(r.get("min_ms", r["p50_ms"]) for r in got), 4),
                   "round_p50_ms": [round(r["p50_ms"], 3) for r in got], "runs": per_round * args.rounds}
            for name, got in rounds.items()}


def ort_probs(path: Path, inputs: np.ndarray) -> np.ndarray:
    session = ort_session(path, max(THREADS))
    return np.concatenate([session.run(None, {"image": inputs[i:i + 32]})[0] for i in range(0, len(inputs), 32)])


def score(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...], threshold: float | None) -> dict[str, Any]:
    from mdx.runtime.metrics import classification_metrics

    m = classification_metrics(labels, probs, names, threshold, None, 200, 0)
    return {k: {"value": m[k]["value"], "ci95": m[k]["ci95"]} for k in ("accuracy", "sensitivity", "specificity", "auc")}


def compare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from mdx.quantize.calibration import CalibrationConfig, sample_calibration
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.preprocess import Preprocessing

    files = run_files(args.run)
    record = files["record"]
    names, threshold = tuple(record["labels"]), record.get("threshold")
    preprocessing = Preprocessing.from_dict(record["preprocessing"])
    inputs, labels, _ = load_test_split(files, args.limit)
    print(f"test split: {len(labels)} images", flush=True)
    calibration = sample_calibration(Path(record["data"]["train_dir"]), preprocessing, names,
                                     CalibrationConfig(count=args.calibration_count, seed=0))
    models = {"tflite_fp32": files["models"]["fp32"], "tflite_int8": files["models"]["int8"],
              "onnx_fp32": work / "model.onnx", "onnx_int8": work / "model_int8.onnx",
              "onnx_int8_u8s8": work / "model_int8_u8s8.onnx"}
    export_seconds = export_onnx(files["keras"], preprocessing.size, models["onnx_fp32"])
    print(f"onnx: exported {models['onnx_fp32'].stat().st_size / 1e6:.2f} MB in {export_seconds:.1f} s", flush=True)
    quantization = {name: quantize_onnx(models["onnx_fp32"], calibration.inputs, models[name], activations)
                    for name, activations in (("onnx_int8", "int8"), ("onnx_int8_u8s8", "uint8"))}
    print(f"onnx: quantized in {quantization['onnx_int8']['seconds']} s (S8S8), "
          f"{quantization['onnx_int8_u8s8']['seconds']} s (U8S8)", flush=True)

    probs = {name: (TfliteClassifier(path, threads=max(THREADS)).predict_proba(inputs) if name.startswith("tflite")
                    else ort_probs(path, inputs)) for name, path in models.items()}
    image = inputs[:1].copy()
    timings = {threads: time_interleaved(models, threads, image, args) for threads in THREADS}
    figures: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        row: dict[str, Any] = {"bytes": path.stat().st_size, **score(probs[name], labels, names, threshold)}
        for threads in THREADS:
            row[f"latency_{threads}t"] = timings[threads][name]
        figures[name] = row
        print(f"{name}: {row['bytes'] / 1e6:.2f} MB  acc {row['accuracy']['value']:.4f}  "
              + "  ".join(f"p50 {row[f'latency_{t}t']['p50_ms']:.2f} ms @{t}t" for t in THREADS), flush=True)
    figures["ratios"] = ratios(figures)
    figures["parity"] = {
        "onnx_fp32_vs_tflite_fp32_max_abs_prob_diff": float(np.abs(probs["onnx_fp32"] - probs["tflite_fp32"]).max()),
        "onnx_int8_agreement_with_onnx_fp32": float(np.mean(probs["onnx_int8"].argmax(1) == probs["onnx_fp32"].argmax(1))),
        "onnx_int8_u8s8_agreement_with_onnx_fp32": float(np.mean(probs["onnx_int8_u8s8"].argmax(1)
                                                                 == probs["onnx_fp32"].argmax(1))),
        "tflite_int8_agreement_with_tflite_fp32": float(np.mean(probs["tflite_int8"].argmax(1) == probs["tflite_fp32"].argmax(1))),
    }
    return {"run": str(Path(args.run).resolve()), "figures": figures,
            "settings": {"threads": list(THREADS), "runs": args.runs, "rounds": args.rounds, "warmup": args.warmup,
                         "test_images": len(labels),
                         "threshold": threshold, "opset": 17, "export_seconds": round(export_seconds, 1),
                         "onnx_quantization": quantization, "calibration_count": len(calibration)}}


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each ONNX figure over the TFLite figure of the same precision (latency, size) or minus it (accuracy)."""
    out: dict[str, float] = {}
    for precision in ("fp32", "int8"):
        onnx, tflite = figures[f"onnx_{precision}"], figures[f"tflite_{precision}"]
        out[f"{precision}_bytes_onnx_over_tflite"] = round(onnx["bytes"] / tflite["bytes"], 3)
        for threads in THREADS:
            key = f"latency_{threads}t"
            out[f"{precision}_p50_{threads}t_onnx_over_tflite"] = round(onnx[key]["p50_ms"] / tflite[key]["p50_ms"], 3)
        out[f"{precision}_accuracy_onnx_minus_tflite"] = round(onnx["accuracy"]["value"] - tflite["accuracy"]["value"], 4)
    for threads in THREADS:
        key = f"latency_{threads}t"
        out[f"int8_u8s8_p50_{threads}t_onnx_over_tflite"] = round(
            figures["onnx_int8_u8s8"][key]["p50_ms"] / figures["tflite_int8"][key]["p50_ms"], 3)
        for engine, int8 in (("tflite", "tflite_int8"), ("onnx", "onnx_int8"), ("onnx_u8s8", "onnx_int8_u8s8")):
            fp32 = figures[f"{engine.split('_')[0]}_fp32"]
            out[f"{engine}_int8_over_fp32_p50_{threads}t"] = round(figures[int8][key]["p50_ms"] / fp32[key]["p50_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `mdx pipeline` run folder (train/ and convert/fp32, convert/int8)")
    parser.add_argument("--runs", type=int, default=100, help="timed single-image runs per model and thread count")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the runs are split into")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="score on N evenly spaced test images (default all)")
    parser.add_argument("--calibration-count", type=int, default=200, help="as mdx convert's default")
    parser.add_argument("--work", type=Path, default=None, help="keep the .onnx files here (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/<hostname>-<simd>/)")
    args = parser.parse_args(argv)

    from mdx.errors import MdxError

    facts = context(PACKAGES)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            result = compare(args, work)
    except MdxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    for key, value in result["figures"]["ratios"].items():
        print(f"{key:<40} {value}")
    print(f"saved {save('onnx_compare', {**facts, **result}, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
