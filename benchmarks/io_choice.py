"""The int8 variant's input/output type, side by side: int8, uint8 and float32 around an int8 body.

The run is converted to int8 once per io type (same calibration images, same seed). Each model is checked
against the run's FP32 on the test split at 0.5 (issue 4's gate) and at the run's threshold (`mdx check`'s
default), timed at 1 and 2 threads (rounds interleaved across the models, so a load change on a shared
machine hits all of them; the median of the rounds' p50s is kept), and sized. With --mediapipe PYTHON, MediaPipe Tasks'
ImageClassifier classifies the same test images (saved at the model's size, so neither side resizes) and
its top-1 is compared with the harness's, fed its own normalization and fed MediaPipe's
(benchmarks/mediapipe_classify.py, the helper tests/integration/test_mediapipe_metadata.py uses too).

    .venv/bin/python benchmarks/io_choice.py runs/demo [--mediapipe .venv-mediapipe/bin/python] [--work DIR]
    -> benchmarks/results/<hostname>-<simd>/io_choice.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ISSUE_4_GATE, check_figures, context, run_files, save
from mediapipe_classify import classify, mediapipe_float_input

IO_TYPES = ("int8", "uint8", "float32")
def timings(models: dict[str, Path], threads: tuple[int, ...], rounds: int, runs: int) -> dict[str, dict[str, Any]]:
    """Per model and thread count: the median over `rounds` interleaved rounds of each round's p50 and mean."""
    from mdx.runtime.bench import BenchConfig, bench

    seen: dict[str, dict[int, list[tuple[float, float]]]] = {name: {t: [] for t in threads} for name in models}
    for _ in range(rounds):
        for name, path in models.items():
            for timing in bench(path, BenchConfig(threads=threads, runs=runs, warmup=10)).timings:
                seen[name][timing.threads].append((timing.p50_ms, timing.mean_ms))
    return {name: {f"{t}t": {"p50_ms": round(float(np.median([p for p, _ in rows])), 4),
                             "mean_ms": round(float(np.median([m for _, m in rows])), 4),
                             "round_p50s_ms": [round(p, 4) for p, _ in rows]}
                   for t, rows in per.items()} for name, per in seen.items()}


def mediapipe_agreement(python: Path, models: dict[str, Path], test_dir: Path, record: dict[str, Any],
                        work: Path) -> dict[str, dict[str, Any]]:
    """MediaPipe's top-1 against the harness's, per model, on the test images saved at the model's size.

    Two harness inputs: its own normalization, (p - mean) / std, and the tensor MediaPipe itself feeds
    (`mediapipe_float_input`; raw pixels for a uint8 input), which isolates MediaPipe's arithmetic from
    everything else (labels, normalization constants, kernels).
    """
    from PIL import Image

    from mdx.runtime.classifier import TfliteClassifier, dequantize
    from mdx.runtime.images import load_folder
    from mdx.runtime.preprocess import Preprocessing

    labels = tuple(record["labels"])
    preprocessing = Preprocessing.from_dict(record["preprocessing"])
    images = load_folder(test_dir, preprocessing.size, labels)
    pngs = []
    (work / "png").mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images.images):  # the harness's decode and resize, so both see these pixels
        pngs.append(work / "png" / f"{index:04d}.png")
        Image.fromarray(image).save(pngs[-1])
    found = classify(python, list(models.values()), pngs)
    own = preprocessing.normalize(images.images)
    fed = mediapipe_float_input(images.images, preprocessing.mean[0], preprocessing.std[0])
    out: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        row = found[str(path)]
        if "error" in row:
            out[name] = {"loads": False, "error": row["error"]}
            continue
        scores = np.array([[image[label] for label in labels] for image in row["scores"]], np.float32)
        classifier = TfliteClassifier(path)
        if classifier.input_dtype == np.uint8:  # MediaPipe copies the pixels in as the quantized input
            fed_here = dequantize(images.images, *classifier.input_quantization)
        else:
            fed_here = fed
        harness_own = classifier.predict_proba(own)
        harness_fed = classifier.predict_proba(fed_here)
        n = len(scores)
        out[name] = {"loads": True, "n": n,
                     "same_top1_as_harness": int((scores.argmax(1) == harness_own.argmax(1)).sum()),
                     "same_top1_as_harness_fed_mediapipe_input": int((scores.argmax(1) == harness_fed.argmax(1)).sum()),
                     "max_score_diff_fed_mediapipe_input": float(np.abs(scores - harness_fed).max()),
                     **_ties(classifier, preprocessing.mean[0], preprocessing.std[0])}
    return out


def _ties(classifier: Any, mean: float, std: float) -> dict[str, Any]:
    """The model's input quantization and how many of the 256 pixel values normalize onto a rounding tie
    (half-way between two of its levels, within 1e-4 of a level), where the last float bit picks the level."""
    scale, zero_point = classifier.input_quantization
    if not scale:  # float io: the scale of the QUANTIZE that reads the input
        scale, zero_point = _input_quantize_scale(classifier.interpreter)
    if not scale:
        return {"input_scale": None}
    levels = (np.arange(256, dtype=np.float64) - mean) / std / scale
    ties = int((np.abs(levels - np.floor(levels) - 0.5) < 1e-4).sum())
    return {"input_scale": scale, "input_zero_point": zero_point, "pixel_values_on_a_tie": ties}


def _input_quantize_scale(interpreter: Any) -> tuple[float, int]:
    """(scale, zero point) of the QUANTIZE that reads the float model input, or (0, 0)."""
    source = interpreter.get_input_details()[0]["index"]
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "QUANTIZE" and int(op["inputs"][0]) == source:
            scale, zero_point = tensors[int(op["outputs"][0])]["quantization"]
            return float(scale), int(zero_point)
    return 0.0, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with train/ and convert/fp32/ (from `mdx pipeline`)")
    parser.add_argument("--work", type=Path, default=None, help="where the int8 models go (default: a temporary folder)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--mediapipe", type=Path, default=None, help="a Python with mediapipe (e.g. .venv-mediapipe/bin/python)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    threads = tuple(int(t) for t in args.threads.split(","))
    facts = context()

    from mdx.convert.convert import ConvertConfig, convert
    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.parity import Tolerances

    files = run_files(args.run)
    record = files["record"]
    test_dir = Path((record.get("data") or {}).get("test_dir") or "")
    if not test_dir.is_dir():
        raise SystemExit(f"error: the run's test split {str(test_dir)!r} is not on this machine")
    work = args.work or Path(tempfile.mkdtemp(prefix="mdx-io-choice-"))
    fp32 = files["models"]["fp32"]
    models = {"fp32": fp32}
    for io in IO_TYPES:
        config = ConvertConfig(variants=("int8",), io=io, out=work / f"io-{io}", overwrite=True)
        models[f"int8 {io} io"] = convert(args.run, config, on_log=print)["int8"].model_path
    gate = Tolerances(**ISSUE_4_GATE)
    figures: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        data = path.read_bytes()
        row: dict[str, Any] = {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, 9))}
        if name != "fp32":
            result = check(path, fp32, test_dir, EvaluateConfig(threshold=0.5, n_boot=0), gate)
            row.update(check_figures(result.parity))
            print(f"{name}: {result.parity.summary()}", flush=True)
            # `mdx check`'s own default: the run's threshold, from the model's metadata
            at_run = check_figures(check(path, fp32, test_dir, EvaluateConfig(n_boot=0), gate).parity)
            row["at_run_threshold"] = {"threshold": record.get("threshold"),
                                       **{k: at_run[k] for k in ("agreement", "flips", "accuracy_drop_pt")}}
            offset = json.loads((path.parent / "record.json").read_text(encoding="utf-8")).get("output_offset") or {}
            row["output_offset_applied"] = offset.get("applied")
        figures[name] = row
    for name, per in timings(models, threads, args.rounds, args.runs).items():
        figures[name]["latency"] = per
    mediapipe = mediapipe_agreement(args.mediapipe, models, test_dir, record, work) if args.mediapipe else None
    for name, row in figures.items():
        lat = ", ".join(f"{k} {v['p50_ms']:.3f} ms" for k, v in row["latency"].items())
        extra = "" if name == "fp32" else f", agreement {row['agreement']:.4f}, acc drop {row['accuracy_drop_pt']:.2f} pt"
        print(f"{name}: {row['bytes']} B{extra}, p50 {lat}" + (f", mediapipe {mediapipe[name]}" if mediapipe else ""))
    payload = {**facts, "command": " ".join(["benchmarks/io_choice.py", *(argv or sys.argv[1:])]),
               "run": str(args.run.resolve()), "test_dir": str(test_dir),
               "settings": {"threads": threads, "rounds": args.rounds, "runs": args.runs, "threshold": 0.5,
                            "gate": ISSUE_4_GATE},
               "figures": figures, "mediapipe": mediapipe}
    print(f"saved {save('io_choice', payload, args.out)}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
