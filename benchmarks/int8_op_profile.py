"""Where int8 time goes per op in a 224 px MobileNetV2, and what moves int8 against fp32 (issue 22, part 3).

The model is MobileNetV2 1.0 at 224 x 224 x 3 with a 2-class softmax head, random weights (timing does not
depend on weight values), as benchmarks/evaluate_scale.py builds it. It is converted to fp32 and to full-integer
int8 .tflite, calibrated on real chest X-ray test images resized to 224 and scaled to [-1, 1] (x / 127.5 - 1).

Per-op profile: each operator of the fp32 and the int8 model is cut out into a model of its own (the op, its
constant tensors with their quantization, its other inputs as graph inputs; the flatbuffer schema of
ai_edge_litert) and timed with ai_edge_litert's Interpreter (XNNPACK default delegate) at 1 and 2 threads. The
QUANTIZE / DEQUANTIZE ops at the I/O come from the float- and uint8-I/O variants. Ops are grouped by type and shape
(1x1 CONV_2D with and without ReLU6, DEPTHWISE_CONV_2D by stride, ADD, MEAN, ...); the sum of single-op medians
is set against the full model's median (one invoke per op adds Python dispatch overhead, so the sum is larger).

Tries, each timed as a whole model against fp32 in the same interleaved rounds: the I/O type (int8, uint8,
float32); converter options (per-tensor weights, the old quantizer); Interpreter options (no default delegate,
XNNPACK "latest features"); the head as AVERAGE_POOL_2D 7x7 + RESHAPE + FULLY_CONNECTED instead of MEAN; and LiteRT's
CompiledModel API (XNNPACK, XNNPACK flags, YNNPACK) against the Interpreter.

Every timing is the median over rounds of each round's median invoke (bare invoke(), input set once); every round
times every model once, so load drift hits all alike. The load average is kept with each block of figures.

    .venv/bin/python benchmarks/int8_op_profile.py
    -> benchmarks/results/<hostname>-<simd>/int8_op_profile.json      (about 5 minutes on 2 cores)

`--work DIR` keeps the converted models there and reuses them on the next run.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, load_average, save

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / "data" / "chest_xray" / "test", ROOT.parent / "shared" / "data" / "chest_xray" / "test")
SIZE = 224
THREADS = (1, 2)
PROFILED = ("fp32", "int8", "int8_per_tensor")  # cut into single-op models
# XNNPACK delegate flags (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h)
XNN_QS8, XNN_QU8, XNN_TRANSIENT_INDIRECTION, XNN_LATEST = 0x1, 0x2, 0x20, 0x40

# name -> how it is converted: head ("gap": GlobalAveragePooling2D -> MEAN; "avgpool": AveragePooling2D(7) +
# Reshape, batch 1 -> AVERAGE_POOL_2D + RESHAPE), precision, I/O type, converter attributes set on top of the project's recipe
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"head": "gap", "int8": False},
    "int8": {"head": "gap", "int8": True, "io": "int8"},
    "int8_uint8_io": {"head": "gap", "int8": True, "io": "uint8"},
    "int8_float_io": {"head": "gap", "int8": True, "io": "float32"},
    "int8_per_tensor": {"head": "gap", "int8": True, "io": "int8", "attrs": {"_experimental_disable_per_channel": True}},
    "int8_old_quantizer": {"head": "gap", "int8": True, "io": "int8", "attrs": {"experimental_new_quantizer": False}},
    "fp32_avgpool": {"head": "avgpool", "int8": False},
    "int8_avgpool": {"head": "avgpool", "int8": True, "io": "int8"},
}


# ---------------------------------------------------------------- models

def calibration_images(n: int, seed: int = 0) -> np.ndarray:
    """N real test images (both classes, evenly drawn), RGB, 224 px bilinear, scaled to [-1, 1] as make_model."""
    from PIL import Image

    folder = next((d for d in DATA if d.is_dir()), None)
    if folder is None:
        raise SystemExit(f"error: no chest X-ray test folder among {[str(d) for d in DATA]}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    rng = np.random.default_rng(seed)
    picked = [files[i] for i in sorted(rng.choice(len(files), size=min(n, len(files)), replace=False))]
    images = [np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
              for p in picked]
    return np.stack(images) / 127.5 - 1.0


def keras_models() -> dict[str, Any]:
    """The two heads on one random-init MobileNetV2 1.0 base, sharing the Dense layer's weights."""
    import tensorflow as tf

    base = tf.keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None, include_top=False)
    dense = tf.keras.layers.Dense(2, activation="softmax", name="predictions")
    gap = tf.keras.Model(base.input, dense(tf.keras.layers.GlobalAveragePooling2D()(base.output)))
    # batch fixed at 1: with a free batch, Flatten or Reshape after the pool lowers to SHAPE/STRIDED_SLICE/PACK
    # ops computing the shape at run time; with batch 1 the head is AVERAGE_POOL_2D + RESHAPE (constant shape)
    image = tf.keras.Input((SIZE, SIZE, 3), batch_size=1)
    pooled = tf.keras.layers.Reshape((1280,))(tf.keras.layers.AveragePooling2D(7)(base(image)))
    avgpool = tf.keras.Model(image, dense(pooled))
    return {"gap": gap, "avgpool": avgpool}


def convert(model: Any, spec: dict[str, Any], calibration: np.ndarray) -> bytes:
    """The project's full-integer recipe (evaluate_scale.make_model) with the variant's I/O type and attributes."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if spec["int8"]:
        def representative():
            for image in calibration:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[spec["io"]]
        converter.inference_input_type = io
        converter.inference_output_type = io
        for name, value in spec.get("attrs", {}).items():
            setattr(converter, name, value)
    return converter.convert()


def build_models(work: Path, n_calibration: int) -> dict[str, Path]:
    paths = {name: work / f"{name}.tflite" for name in VARIANTS}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        calibration = calibration_images(n_calibration)
        models = keras_models()
        for name in missing:
            started = time.perf_counter()
            paths[name].write_bytes(convert(models[VARIANTS[name]["head"]], VARIANTS[name], calibration))
            print(f"converted {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return paths


# ---------------------------------------------------------------- single-op models

def _schema():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def _op_names() -> dict[int, str]:
    schema, _ = _schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_label(model: Any, op: Any, names: dict[int, str]) -> tuple[str, str]:
    """(op type, group label): CONV_2D and DEPTHWISE_CONV_2D by kernel, stride and activation."""
    _, fu = _schema()
    kind = names[fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])]
    tensors = model.subgraphs[0].tensors
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kh, kw = (int(d) for d in tensors[op.inputs[1]].shape[1:3])
        stride = int(op.builtinOptions.strideH)
        act = "+relu6" if op.builtinOptions.fusedActivationFunction == 3 else (
            "+relu" if op.builtinOptions.fusedActivationFunction == 1 else "linear")
        if kind == "CONV_2D" and (kh, kw) == (1, 1):
            return kind, f"CONV_2D 1x1 {act}"
        return kind, f"{kind} {kh}x{kw} s{stride}"
    if kind == "AVERAGE_POOL_2D":
        return kind, f"AVERAGE_POOL_2D {op.builtinOptions.filterHeight}x{op.builtinOptions.filterWidth}"
    return kind, kind


def single_op_models(model_bytes: bytes) -> list[dict[str, Any]]:
    """One model per operator of subgraph 0: the op, its constant inputs (buffers and quantization kept), its
    other inputs as graph inputs and its outputs as graph outputs."""
    schema, fu = _schema()
    names = _op_names()
    model = fu.convert_bytearray_to_object(bytearray(model_bytes))
    graph = model.subgraphs[0]

    def constant(index: int) -> bool:
        data = model.buffers[graph.tensors[index].buffer].data
        return data is not None and len(data) > 0

    out = []
    for position, op in enumerate(graph.operators):
        tensors, buffers, remap = [], [schema.BufferT()], {}

        def take(index: int, tensors=tensors, buffers=buffers, remap=remap) -> int:
            if index < 0:
                return index
            if index not in remap:
                tensor = copy.copy(graph.tensors[index])
                if constant(index):
                    buffers.append(model.buffers[tensor.buffer])
                    tensor.buffer = len(buffers) - 1
                else:
                    tensor.buffer = 0
                remap[index] = len(tensors)
                tensors.append(tensor)
            return remap[index]

        new_op = copy.copy(op)
        new_op.inputs = [take(i) for i in op.inputs]
        new_op.outputs = [take(i) for i in op.outputs]
        if op.intermediates is not None and len(op.intermediates):
            new_op.intermediates = [take(i) for i in op.intermediates]
        sub = schema.SubGraphT()
        sub.tensors, sub.operators = tensors, [new_op]
        sub.inputs = [remap[i] for i in op.inputs if i >= 0 and not constant(i)]
        sub.outputs = list(new_op.outputs)
        sub.name = f"op{position}"
        single = schema.ModelT()
        single.version, single.description = model.version, b"single op"
        single.operatorCodes, single.subgraphs, single.buffers = model.operatorCodes, [sub], buffers
        kind, label = op_label(model, op, names)
        shape = [int(d) for d in graph.tensors[op.outputs[0]].shape]
        out.append({"index": position, "type": kind, "group": label, "output_shape": shape,
                    "content": bytes(fu.convert_object_to_bytearray(single))})
    return out


# ---------------------------------------------------------------- runners

def _fill(details: dict[str, Any], rng: np.random.Generator, image: np.ndarray | None) -> np.ndarray:
    dtype, shape = details["dtype"], tuple(details["shape"])
    if image is not None and tuple(image.shape) == shape:
        if np.issubdtype(dtype, np.floating):
            return image.astype(dtype)
        scale, zero = details["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(image / scale + zero), info.min, info.max).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.uniform(-1, 1, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


class InterpreterRunner:
    """A bare invoke() loop on ai_edge_litert's Interpreter, inputs set once."""

    def __init__(self, content: bytes, threads: int, image: np.ndarray | None = None, **options: Any) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content, num_threads=threads, **options)
        self.interpreter.allocate_tensors()
        rng = np.random.default_rng(0)
        for details in self.interpreter.get_input_details():
            self.interpreter.set_tensor(details["index"], _fill(details, rng, image))
        ops = [op["op_name"] for op in self.interpreter._get_ops_details()]
        self.delegated = "DELEGATE" in ops
        self.nodes = ops

    def run(self, n: int) -> list[float]:
        invoke, clock, ms = self.interpreter.invoke, time.perf_counter_ns, []
        for _ in range(n):
            start = clock()
            invoke()
            ms.append((clock() - start) / 1e6)
        return ms

    def output(self) -> np.ndarray:
        self.interpreter.invoke()
        details = self.interpreter.get_output_details()[0]
        return self.interpreter.get_tensor(details["index"])


class CompiledRunner:
    """A bare run_by_index() loop on ai_edge_litert's CompiledModel (CPU), input buffers written once."""

    def __init__(self, path: Path, threads: int, image: np.ndarray | None = None, **cpu: Any) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=threads, **cpu))
        self.model = CompiledModel.from_file(str(path), options=options)
        self.inputs = self.model.create_input_buffers(0)
        self.outputs = self.model.create_output_buffers(0)
        from ai_edge_litert.interpreter import Interpreter

        reference = Interpreter(model_path=str(path))
        rng = np.random.default_rng(0)
        for buffer, details in zip(self.inputs, reference.get_input_details()):
            buffer.write(_fill(details, rng, image))
        self.out_details = reference.get_output_details()[0]
        self.delegated = bool(self.model.is_fully_accelerated())

    def run(self, n: int) -> list[float]:
        run, inputs, outputs, clock, ms = self.model.run_by_index, self.inputs, self.outputs, time.perf_counter_ns, []
        for _ in range(n):
            start = clock()
            run(0, inputs, outputs)
            ms.append((clock() - start) / 1e6)
        return ms

    def output(self) -> np.ndarray:
        self.model.run_by_index(0, self.inputs, self.outputs)
        size = int(np.prod(self.out_details["shape"]))
        return np.asarray(self.outputs[0].read(size, self.out_details["dtype"])).reshape(self.out_details["shape"])


def interleaved(runners: dict[str, Any], rounds: int, per_round: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Median over rounds of each round's median invoke, per runner; every round runs every runner once."""
    for runner in runners.values():
        runner.run(warmup)
    got: dict[str, list[float]] = {name: [] for name in runners}
    mins: dict[str, float] = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            ms = runner.run(per_round)
            got[name].append(float(np.median(ms)))
            mins[name] = min(mins[name], min(ms))
    return {name: {"p50_ms": round(float(np.median(v)), 4), "min_ms": round(mins[name], 4),
                   "round_p50_ms": [round(x, 4) for x in v]} for name, v in got.items()}


# ---------------------------------------------------------------- profile

def profile(paths: dict[str, Path], image: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    models = {name: single_op_models(paths[name].read_bytes()) for name in PROFILED}
    # the I/O ops of the float- and uint8-I/O variants, the pooling op of the AVERAGE_POOL_2D head
    extra = {"int8_float_io": ("QUANTIZE", "DEQUANTIZE"), "int8_uint8_io": ("QUANTIZE",),
             "int8_avgpool": ("AVERAGE_POOL_2D",), "fp32_avgpool": ("AVERAGE_POOL_2D",)}
    io_ops = {name: [op for op in single_op_models(paths[name].read_bytes()) if op["type"] in kinds]
              for name, kinds in extra.items()}
    per_threads = {}
    for threads in THREADS:
        load_before = load_average()
        runners: dict[str, Any] = {}
        for name, ops in {**models, **io_ops}.items():
            for op in ops:
                runners[f"{name}/{op['index']}"] = InterpreterRunner(op["content"], threads)
        for name in PROFILED:
            runners[f"{name}/full"] = InterpreterRunner(paths[name].read_bytes(), threads, image)
        timed = interleaved(runners, args.op_rounds, args.op_runs, warmup=5)
        per_threads[threads] = {"timed": timed, "delegated": {k: r.delegated for k, r in runners.items()},
                                "loadavg_before": load_before, "loadavg_after": load_average()}
        del runners
        print(f"per-op profile at {threads} thread(s) done, load {load_average()}", flush=True)

    result: dict[str, Any] = {"threads": {}}
    for threads, got in per_threads.items():
        timed, delegated = got["timed"], got["delegated"]
        ops_out: dict[str, list[dict[str, Any]]] = {}
        for name, ops in {**models, **io_ops}.items():
            ops_out[name] = [{"index": op["index"], "type": op["type"], "group": op["group"],
                              "output_shape": op["output_shape"], "p50_ms": timed[f"{name}/{op['index']}"]["p50_ms"],
                              "delegated": delegated[f"{name}/{op['index']}"]} for op in ops]
        # the fastest single-op model (e.g. SOFTMAX of 1x2) is about the fixed cost of one invoke()
        overhead = min(op["p50_ms"] for op in ops_out["int8"] + ops_out["fp32"])
        groups: dict[str, dict[str, Any]] = {}
        for name in PROFILED:
            for op in ops_out[name]:
                if op["type"] in ("QUANTIZE", "DEQUANTIZE"):
                    continue
                row = groups.setdefault(op["group"], {"count": 0, **{f"{n}_ms": 0.0 for n in PROFILED}})
                row[f"{name}_ms"] += op["p50_ms"]
                if name == "int8":
                    row["count"] += 1
        for row in groups.values():
            for name in PROFILED:
                row[f"{name}_ms"] = round(row[f"{name}_ms"], 4)
            row["ratio"] = round(row["int8_ms"] / row["fp32_ms"], 3) if row["fp32_ms"] else None
            row["per_tensor_ratio"] = round(row["int8_per_tensor_ms"] / row["fp32_ms"], 3) if row["fp32_ms"] else None
            # what the group adds to int8 above half its fp32 time: > 0 holds the 0.5x target back
            row["over_half_fp32_ms"] = round(row["int8_ms"] - 0.5 * row["fp32_ms"], 4)
        io = {f"{name}/{op['index']}/{op['type']}": op["p50_ms"] for name, ops in io_ops.items() for op in ops_out[name]}
        full = {name: timed[f"{name}/full"]["p50_ms"] for name in PROFILED}
        sums = {name: round(sum(op["p50_ms"] for op in ops_out[name]), 4) for name in PROFILED}
        result["threads"][str(threads)] = {
            "full_model_p50_ms": full, "full_int8_over_fp32": round(full["int8"] / full["fp32"], 3),
            "sum_single_op_p50_ms": sums,
            "sum_over_full": {name: round(sums[name] / full[name], 3) for name in full},
            "invoke_overhead_estimate_ms": overhead,
            "sum_minus_overhead_over_full": {
                name: round((sums[name] - overhead * len(ops_out[name])) / full[name], 3) for name in full},
            "sum_int8_over_fp32": round(sums["int8"] / sums["fp32"], 3),
            "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1]["int8_ms"])),
            "extra_ops_ms": io, "ops": ops_out,
            "not_delegated": {name: [op["group"] for op in ops if not op["delegated"]] for name, ops in ops_out.items()},
            "loadavg_before": got["loadavg_before"], "loadavg_after": got["loadavg_after"]}
    result["op_counts"] = {name: len(ops) for name, ops in models.items()}
    return result


# ---------------------------------------------------------------- tries

def tries(paths: dict[str, Path], image: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from ai_edge_litert.interpreter import OpResolverType

    no_default = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    latest = {"experimental_default_delegate_latest_features": True}
    default_flags = XNN_QS8 | XNN_QU8
    # name -> (model, runner kind, options); every int8 figure is set against the fp32 row named in RATIO_TO
    configs: dict[str, tuple[str, str, dict[str, Any]]] = {
        **{f"interp/{name}": (name, "interp", {}) for name in VARIANTS},
        "interp_no_xnnpack/fp32": ("fp32", "interp", no_default),
        "interp_no_xnnpack/int8": ("int8", "interp", no_default),
        "interp_latest_features/fp32": ("fp32", "interp", latest),
        "interp_latest_features/int8": ("int8", "interp", latest),
        "compiled/fp32": ("fp32", "compiled", {}),
        "compiled/int8": ("int8", "compiled", {}),
        "compiled_xnn_transient_indirection/int8": ("int8", "compiled",
                                                    {"xnnpack_flags": default_flags | XNN_TRANSIENT_INDIRECTION}),
        "compiled_xnn_latest/fp32": ("fp32", "compiled", {"xnnpack_flags": default_flags | XNN_LATEST}),
        "compiled_xnn_latest/int8": ("int8", "compiled", {"xnnpack_flags": default_flags | XNN_LATEST}),
        "compiled_ynnpack/fp32": ("fp32", "compiled", {"enable_ynnpack": True}),
        "compiled_ynnpack/int8": ("int8", "compiled", {"enable_ynnpack": True}),
    }
    out: dict[str, Any] = {"threads": {}, "failed": {}}
    for threads in THREADS:
        load_before = load_average()
        runners: dict[str, Any] = {}
        for name, (model, kind, options) in configs.items():
            try:
                if kind == "interp":
                    runners[name] = InterpreterRunner(paths[model].read_bytes(), threads, image, **options)
                else:
                    runners[name] = CompiledRunner(paths[model], threads, image, **options)
            except Exception as error:  # noqa: BLE001 - a try that does not load is a finding, not a crash
                out["failed"][f"{name}@{threads}"] = repr(error)[:300]
        # the same image through each runtime: the int8 runners should agree with the Interpreter's int8 output
        agreement = {}
        for name, runner in runners.items():
            model = configs[name][0]
            base = runners.get(f"interp/{model}")
            if base is not None and base is not runner:
                a, b = runner.output().astype(np.float64), base.output().astype(np.float64)
                agreement[name] = round(float(np.max(np.abs(a - b))), 4)
        timed = interleaved(runners, args.try_rounds, args.try_runs, warmup=10)
        rows = {}
        for name, figure in timed.items():
            model = configs[name][0]
            fp32_same = f"{name.split('/')[0]}/fp32" if model.startswith("int8") else None
            reference = "interp/fp32_avgpool" if model == "int8_avgpool" else "interp/fp32"
            nodes = getattr(runners[name], "nodes", None)
            row = {**figure, "model": model, "delegated": runners[name].delegated,
                   "delegate_partitions": None if nodes is None else nodes.count("DELEGATE"),
                   "over_interp_fp32": round(figure["p50_ms"] / timed["interp/fp32"]["p50_ms"], 3),
                   "over_interp_int8": round(figure["p50_ms"] / timed["interp/int8"]["p50_ms"], 3)}
            if model.startswith("int8"):
                row["int8_over_fp32"] = round(figure["p50_ms"] / timed[reference]["p50_ms"], 3)
                if fp32_same in timed and fp32_same != "interp/fp32":
                    row["int8_over_same_runtime_fp32"] = round(figure["p50_ms"] / timed[fp32_same]["p50_ms"], 3)
            if name in agreement:
                row["max_abs_output_diff_vs_interp"] = agreement[name]
            rows[name] = row
        out["threads"][str(threads)] = {"rows": rows, "loadavg_before": load_before, "loadavg_after": load_average()}
        del runners
        print(f"tries at {threads} thread(s) done, load {load_average()}", flush=True)
    return out


def model_facts(paths: dict[str, Path]) -> dict[str, Any]:
    """Size, op-type counts and I/O dtypes of each variant."""
    from collections import Counter

    from ai_edge_litert.interpreter import Interpreter

    _, fu = _schema()
    names = _op_names()
    facts = {}
    for name, path in paths.items():
        model = fu.read_model(str(path))
        kinds = Counter(names[fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])]
                        for op in model.subgraphs[0].operators)
        interpreter = Interpreter(model_path=str(path))
        facts[name] = {"bytes": path.stat().st_size, "ops": dict(kinds), **VARIANTS[name],
                       "input_dtype": str(interpreter.get_input_details()[0]["dtype"].__name__),
                       "output_dtype": str(interpreter.get_output_details()[0]["dtype"].__name__)}
    return facts


def summary(payload: dict[str, Any]) -> None:
    """The per-group table and the tries, as plain text."""
    for threads, got in payload.get("profile", {}).get("threads", {}).items():
        print(f"\n{threads} thread(s): full int8/fp32 {got['full_int8_over_fp32']}, sum/full {got['sum_over_full']}, "
              f"load {got['loadavg_before']} -> {got['loadavg_after']}")
        for group, row in got["groups"].items():
            print(f"  {group:28s} n={row['count']:2d} fp32 {row['fp32_ms']:7.3f} int8 {row['int8_ms']:7.3f} "
                  f"ratio {row['ratio']} per-tensor {row['per_tensor_ratio']} over-half {row['over_half_fp32_ms']}")
        print(f"  I/O and pooling ops: {got['extra_ops_ms']}; not delegated: {got['not_delegated']}")
    for threads, got in payload.get("tries", {}).get("threads", {}).items():
        print(f"\ntries at {threads} thread(s), load {got['loadavg_before']} -> {got['loadavg_after']}")
        for name, row in got["rows"].items():
            print(f"  {name:42s} {row['p50_ms']:8.3f} ms  int8/fp32 {row.get('int8_over_fp32')}  "
                  f"/interp int8 {row['over_interp_int8']}  /interp fp32 {row['over_interp_fp32']}  "
                  f"partitions {row['delegate_partitions']}")
    if payload.get("tries", {}).get("failed"):
        print(f"failed: {payload['tries']['failed']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep the converted models here (reused when present)")
    parser.add_argument("--calibration", type=int, default=64, help="real images the int8 models are calibrated on")
    parser.add_argument("--op-rounds", type=int, default=15)
    parser.add_argument("--op-runs", type=int, default=40, help="invokes per single-op model per round")
    parser.add_argument("--try-rounds", type=int, default=21)
    parser.add_argument("--try-runs", type=int, default=30, help="invokes per model per round")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-tries", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    facts = context(("ai-edge-litert", "tensorflow", "tf-keras", "flatbuffers", "pillow"))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        paths = build_models(work, args.calibration)
        image = calibration_images(1, seed=1)[:1]
        payload: dict[str, Any] = {"models": model_facts(paths)}
        if not args.skip_profile:
            payload["profile"] = profile(paths, image, args)
        if not args.skip_tries:
            payload["tries"] = tries(paths, image, args)
        figures: dict[str, Any] = {}
        for threads in map(str, THREADS):
            if "profile" in payload:
                got = payload["profile"]["threads"][threads]
                figures[f"profile_{threads}t"] = {
                    "full_int8_over_fp32": got["full_int8_over_fp32"], "sum_over_full": got["sum_over_full"],
                    "group_ratio": {g: r["ratio"] for g, r in got["groups"].items()}}
            if "tries" in payload:
                rows = payload["tries"]["threads"][threads]["rows"]
                figures[f"tries_{threads}t"] = {name: row.get("int8_over_fp32", row["over_interp_fp32"])
                                                for name, row in rows.items()}
        settings = {"model": "MobileNetV2 1.0 224 px, random init, 2 softmax outputs (GAP head unless _avgpool)",
                    "calibration_images": args.calibration, "threads": list(THREADS),
                    "op_rounds": args.op_rounds, "op_runs": args.op_runs, "try_rounds": args.try_rounds,
                    "try_runs": args.try_runs, "seconds": round(time.perf_counter() - started, 1),
                    "omp_env": {k: v for k, v in os.environ.items() if "THREAD" in k}}
        summary(payload)
        path = save("int8_op_profile", {"figures": figures, **payload, "settings": settings, **facts}, args.out)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
