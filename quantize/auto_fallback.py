"""`--int8 --auto-fallback`: keep the layers int8 hurts most in float until parity holds on validation.

TensorFlow's QuantizationDebugger measures every quantized op's own error (the op run in int8 vs the
same op in float on the same dequantized input) on a few calibration images; ops are ranked by
RMS error / output scale (0.29 is pure rounding of the output, more means the op itself loses
accuracy), with each channel's constant part removed: bias correction already compensates that.
Starting from the plain int8 model, the worst op is added to `denylisted_nodes` one at a time and
the model is quantized again (`mlir_quantize`, the converter's own second step), until the parity
tolerances (`mdx.runtime.parity.Tolerances`, defaults) hold against FP32 on the validation split.
Each step records what keeping that op in float cost in bytes and single-thread latency.

Two caveats quantize/README.md spells out: one float op alone rarely helps, because its output is quantized
again for the next int8 op (neighbouring ops have to go float together to remove an activation's
rounding); and bias correction is undone for a layer kept in float, whose weights are then exact.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdx import interrupts
from mdx.errors import ConversionError, ParityError
from mdx.quantize.bias_correction import BiasPlan, apply_bias_correction
from mdx.quantize.output_offset import correct_output_offset
from mdx.quantize.recipes import DEFAULT_INT8_IO, int8
from mdx.runtime.bench import BenchConfig, bench
from mdx.runtime.classifier import TfliteClassifier
from mdx.runtime.parity import ParityResult, Tolerances, compare

MAX_FLOAT_LAYERS = 12  # past this, keeping layers in float is a different model: use int8-fallback or QAT
DEBUG_SAMPLES = 16  # images the debugger runs; it averages per-op errors over positions too
LATENCY = BenchConfig(threads=(1,), warmup=2, runs=15)
Log = Callable[[str], None]
MakeConverter = Callable[[Any], Any]  # Keras model -> TFLiteConverter (mdx.convert.keras_converter)


@dataclasses.dataclass(frozen=True)
class Validation:
    """Preprocessed validation inputs with labels, and where they came from (for the record)."""

    inputs: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: dict[str, Any]
    threshold: float | None = None  # the run's decision threshold: parity decides as the deployed model will


@dataclasses.dataclass(frozen=True)
class Step:
    """One candidate: the ops kept in float so far, its size, latency and parity on validation."""

    float_layer: str | None  # the op added at this step (None: the plain int8 model)
    op: str | None
    error: float | None  # its RMSE / output scale in the debugger
    bytes: int
    latency_ms: float
    parity: ParityResult

    def to_dict(self, previous: Step | None) -> dict[str, Any]:
        return {
            "float_layer": self.float_layer,
            "op": self.op,
            "error_over_scale": None if self.error is None else round(self.error, 4),
            "bytes": self.bytes,
            "bytes_added": None if previous is None else self.bytes - previous.bytes,
            "latency_p50_ms": round(self.latency_ms, 3),
            "latency_added_ms": None if previous is None else round(self.latency_ms - previous.latency_ms, 3),
            "passed": self.parity.passed,
            "agreement": round(self.parity.agreement, 5),
            "summary": self.parity.summary(),
        }


@dataclasses.dataclass(frozen=True)
class FallbackResult:
    """The chosen model (the first candidate that passed), every step, and the debugger's ranking."""

    data: bytes
    steps: tuple[Step, ...]
    ranking: tuple[tuple[str, str, float], ...]  # (tensor name, op, RMSE / scale), worst first
    validation: dict[str, Any]
    tolerances: Tolerances

    @property
    def float_layers(self) -> tuple[str, ...]:
        return tuple(s.float_layer for s in self.steps if s.float_layer is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "float_layers": list(self.float_layers),
            "tolerances": self.tolerances.to_dict(),
            "validation": self.validation,
            "steps": [step.to_dict(self.steps[i - 1] if i else None) for i, step in enumerate(self.steps)],
            "ranking": [{"tensor": name, "op": op, "error_over_scale": round(error, 4)}
                        for name, op, error in self.ranking[:MAX_FLOAT_LAYERS * 2]],
        }


def rms_less_channel_mean(diff: np.ndarray) -> float:
    """RMS of one sample's int8-minus-float difference after removing each channel's mean over positions.

    A constant per-channel error is what bias correction compensates, and the debugger compares each
    op with its *corrected* float twin, so the plain RMSE of a corrected op counts the correction as
    error. Tensors without positions (Dense outputs) keep their plain RMS.
    """
    diff = np.asarray(diff, np.float64)
    if diff.ndim == 4:
        diff = diff - diff.mean(axis=(1, 2), keepdims=True)
    return float(np.sqrt(np.mean(diff ** 2)))


RANK_METRIC = "rms_less_channel_mean"


def rank_layers(debugger: Any) -> tuple[tuple[str, str, float], ...]:
    """(tensor name, op, RANK_METRIC / output scale) of every quantized op in a run debugger, worst first."""
    text = io.StringIO()
    debugger.layer_statistics_dump(text)  # the public form of the statistics, with each op's scale
    rows = []
    for row in csv.DictReader(io.StringIO(text.getvalue())):
        scale = float(row["scale"])
        if scale > 0:
            rows.append((row["tensor_name"], row["op_name"], float(row[RANK_METRIC]) / scale))
    return tuple(sorted(rows, key=lambda r: r[2], reverse=True))


def _from_keras(model: Any) -> Any:
    from mdx.train.keras_shim import tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def _converter(make: MakeConverter, model: Any, dataset: Any, io_type: str) -> Any:
    converter = make(model)
    int8(converter, dataset, io=io_type)
    return converter


def _calibrated(make: MakeConverter, model: Any, dataset: Any, io_type: str) -> bytes:
    """The float model with activation ranges attached: the converter's first step, done alone."""
    converter = _converter(make, model, dataset, io_type)
    converter._experimental_calibrate_only = True  # what QuantizationDebugger does; the ranges, not yet int8
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise ConversionError(f"int8 auto-fallback: calibration failed: {str(exc).strip().splitlines()[0]}") from exc


def _quantize(calibrated: bytes, denylist: list[str], io_type: str) -> bytes:
    from tensorflow.lite.python.convert import mlir_quantize

    from mdx.train.keras_shim import tf

    dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_type]
    try:  # the converter's own second step (lite.py _quantize) with the debugger's denylist
        return bytes(mlir_quantize(calibrated, disable_per_channel=False, input_data_type=dtype,
                                   output_data_type=dtype, denylisted_nodes=denylist or None))
    except Exception as exc:
        raise ConversionError(f"int8 auto-fallback: quantizing with {denylist} in float failed: "
                              f"{str(exc).strip().splitlines()[0]}") from exc


def _probabilities(data: bytes, inputs: np.ndarray, folder: Path, name: str) -> tuple[np.ndarray, float]:
    """Probabilities on `inputs` and the single-thread p50 latency, through the runtime harness."""
    path = folder / f"{name}.tflite"
    path.write_bytes(data)
    probs = TfliteClassifier(path, threads=1).predict_proba(inputs)
    return probs, bench(path, LATENCY).timings[0].p50_ms


def auto_fallback(
    model: Any,
    calibration_inputs: np.ndarray,
    validation: Validation,
    fp32: bytes,
    *,
    io_type: str = DEFAULT_INT8_IO,
    plan: BiasPlan | None = None,
    reference_logits: np.ndarray | None = None,
    tolerances: Tolerances = Tolerances(),
    make_converter: MakeConverter = _from_keras,
    on_log: Log | None = None,
) -> FallbackResult:
    """The int8 model with the fewest worst-ranked ops in float that passes parity on `validation`.

    Args:
        model: the float tf-keras classifier (not bias-corrected: `plan` is applied per candidate).
        calibration_inputs: preprocessed calibration images (the representative dataset).
        validation: the run's validation split, preprocessed.
        fp32: the FP32 .tflite, the parity reference.
        io_type: 'int8', 'uint8' or 'float32' model input/output.
        plan: bias correction to apply to the ops that stay int8 (None: none).
        reference_logits: the float logits on the calibration inputs, for the output offset (with `plan`).
        tolerances: parity limits (the defaults of `mdx check`).
        make_converter: builds the TFLiteConverter for a model, as the other variants are built.
        on_log: called with one line per step.

    Raises:
        ConversionError: TensorFlow failed to calibrate or quantize a candidate.
        ParityError: parity still fails with MAX_FLOAT_LAYERS ops in float.
    """
    from mdx.train.keras_shim import tf

    def dataset() -> Any:
        for i in range(len(calibration_inputs)):
            interrupts.safe_point()  # called from the converter's Python loop: a signal may stop it here
            yield [calibration_inputs[i:i + 1]]

    calibrated_plain: list[bytes] = []  # without bias correction every candidate shares one calibration

    def candidate(denylist: list[str]) -> bytes:
        if plan is None:
            if not calibrated_plain:
                calibrated_plain.append(_calibrated(make_converter, model, dataset, io_type))
            calibrated = calibrated_plain[0]
        else:  # the float ops lose their shift, so the float graph (and its ranges) differs per candidate
            corrected = apply_bias_correction(model, plan, keep_float=denylist)[0]
            calibrated = _calibrated(make_converter, corrected, dataset, io_type)
        data = _quantize(calibrated, denylist, io_type)
        if plan is not None and reference_logits is not None:
            data = correct_output_offset(data, reference_logits, calibration_inputs)[0]
        return data

    first = model if plan is None else apply_bias_correction(model, plan)[0]
    debug = calibration_inputs[:DEBUG_SAMPLES]
    options = tf.lite.experimental.QuantizationDebugOptions(layer_debug_metrics={RANK_METRIC: rms_less_channel_mean})
    with warnings.catch_warnings():  # the debugger runs TensorFlow's own (deprecated) interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_converter(make_converter, first, dataset, io_type),
            debug_dataset=lambda: ([debug[i:i + 1]] for i in range(len(debug))),
            debug_options=options,
        )
        debugger.run()
    ranking = rank_layers(debugger)
    steps: list[Step] = []
    denylist: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mdx-fallback-") as scratch:
        folder = Path(scratch)
        reference, _ = _probabilities(fp32, validation.inputs, folder, "fp32")
        queue = [None, *ranking[:MAX_FLOAT_LAYERS]]
        for entry in queue:
            interrupts.safe_point()
            if entry is not None:
                denylist.append(entry[0])
            data = candidate(denylist)
            probs, latency = _probabilities(data, validation.inputs, folder, f"step{len(steps)}")
            parity = compare(reference, probs, validation.labels, validation.class_names, tolerances,
                             threshold=validation.threshold)
            steps.append(Step(None if entry is None else entry[0], None if entry is None else entry[1],
                              None if entry is None else entry[2], len(data), latency, parity))
            if on_log is not None:
                added = "plain int8" if entry is None else f"+ {entry[1]} {entry[0]} in float"
                on_log(f"auto-fallback: {added}: {parity.summary()} ({len(data) / 1e6:.2f} MB, {latency:.1f} ms)")
            if parity.passed:
                return FallbackResult(data, tuple(steps), ranking, validation.source, tolerances)
    raise ParityError(
        f"int8 auto-fallback: parity still fails on validation with {len(denylist)} ops in float "
        f"({steps[-1].parity.summary()}); convert --int8-fallback, or fine-tune with quantization-aware training"
    )
