"""How sparse a model really is: count the zeros of every convolution and dense kernel, in a Keras
model or in a .tflite, and refuse a model that missed its target.

Pruning fails silently: masks that never update, a schedule that never reaches its final step, or a
converter that rewrites weights all leave a model that is dense but otherwise fine. So the zeros are
counted in the artifact itself, never inferred from the configuration.

Kernels are compared in TFLite layout: Conv2D (O, H, W, I), DepthwiseConv2D (1, H, W, C), Dense
(out, in). Structured m:n sparsity groups n consecutive input channels (the last axis), as tfmot's
`sparsity_m_by_n` and TFLite's sparse kernels do.

This module imports no TensorFlow at import time: `measure_tflite_sparsity` needs only numpy and a
TFLite interpreter, so it can move to `runtime/` unchanged (swap the imports for relative ones).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx.runtime.errors import ModelLoadError, ToleranceError
from mdx.runtime.interpreter import resolve_runtime, validate_model_file

CONV, DEPTHWISE, DENSE = "conv", "depthwise", "dense"
_TFLITE_KINDS = {"CONV_2D": CONV, "DEPTHWISE_CONV_2D": DEPTHWISE, "FULLY_CONNECTED": DENSE}
# The op names TensorFlow gives a kernel's consumer; the path component before one names the layer.
_KERNEL_OPS = ("Conv2D", "MatMul", "depthwise", "BiasAdd", "Tensordot")
DEFAULT_TOLERANCE = 0.01  # 1 percentage point


class SparsityError(ToleranceError):
    """A pruned kernel is less sparse (or less structured) than its target (exit code 3)."""


@dataclass(frozen=True)
class KernelSparsity:
    """Zeros of one kernel. `layer` is the Keras layer name (for a .tflite, read from tensor names)."""

    layer: str
    kind: str  # CONV, DEPTHWISE or DENSE
    shape: tuple[int, ...]  # TFLite layout
    size: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "kind": self.kind, "shape": list(self.shape), "size": self.size,
                "zeros": self.zeros, "sparsity": round(self.sparsity, 5)}


@dataclass(frozen=True)
class SparsityReport:
    """Every kernel of one model, in graph order."""

    source: str
    kernels: tuple[KernelSparsity, ...]

    def select(self, layers: Iterable[str]) -> SparsityReport:
        """The kernels of `layers` only, in graph order.

        Raises:
            SparsityError: a layer has no kernel here (e.g. a converter renamed or dropped it).
        """
        wanted = list(layers)
        found = {k.layer: k for k in self.kernels}
        missing = [name for name in wanted if name not in found]
        if missing:
            raise SparsityError(f"{self.source}: no kernel found for pruned layer(s) {missing[:5]}; "
                                f"kernels here: {[k.layer for k in self.kernels][:8]}...")
        keep = set(wanted)
        return SparsityReport(self.source, tuple(k for k in self.kernels if k.layer in keep))

    @property
    def overall(self) -> float:
        """Zeros over weights, all selected kernels together."""
        size = sum(k.size for k in self.kernels)
        return sum(k.zeros for k in self.kernels) / size if size else 0.0

    @property
    def minimum(self) -> float:
        return min((k.sparsity for k in self.kernels), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "overall": round(self.overall, 5), "min": round(self.minimum, 5),
                "kernels": [k.to_dict() for k in self.kernels]}


@dataclass(frozen=True)
class Kernel:
    """One kernel's values in TFLite layout, and the stored value that means 0.0 (int8: the zero point)."""

    layer: str
    kind: str
    values: np.ndarray
    zero: Any = 0

    def zeros(self) -> np.ndarray:
        """Boolean mask of the weights that are exactly zero (after dequantization)."""
        return np.asarray(self.values == self.zero)

    def measure(self) -> KernelSparsity:
        return KernelSparsity(self.layer, self.kind, tuple(int(d) for d in self.values.shape), int(self.values.size),
                              int(np.count_nonzero(self.zeros())))


def keras_kernels(model: Any) -> list[Kernel]:
    """Every Conv2D, DepthwiseConv2D and Dense kernel of a Keras model, nested models included, in layer order."""
    from mdx.train.keras_shim import keras  # only here: the tflite half of this module needs no TensorFlow

    found: list[Kernel] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(keras_kernels(layer))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):  # before Conv2D: it subclasses Conv2D
            found.append(Kernel(layer.name, DEPTHWISE, np.transpose(layer.depthwise_kernel.numpy(), (3, 0, 1, 2))))
        elif isinstance(layer, keras.layers.Conv2D):
            found.append(Kernel(layer.name, CONV, np.transpose(layer.kernel.numpy(), (3, 0, 1, 2))))
        elif isinstance(layer, keras.layers.Dense):
            found.append(Kernel(layer.name, DENSE, layer.kernel.numpy().T))
    return found


def measure_keras_sparsity(model: Any) -> SparsityReport:
    """Zeros of every Conv2D, DepthwiseConv2D and Dense kernel of a Keras model (after `strip_pruning`)."""
    return SparsityReport(f"Keras model {model.name}", tuple(k.measure() for k in keras_kernels(model)))


def layer_from_tensor_name(name: str) -> str:
    """'model/block_1_expand/Conv2D' -> 'block_1_expand'; fused names ('a;b;c') are searched in turn."""
    for piece in name.split(";"):
        parts = piece.split("/")
        if len(parts) >= 2 and parts[-1].rstrip("0123456789") in _KERNEL_OPS:
            return parts[-2]
    return name


def _load(path: Path, runtime: str) -> Any:
    interpreter_class, resolver, info = resolve_runtime(runtime)
    # No XNNPACK: a delegated graph may not expose its weight tensors. All tensors kept: a weight that
    # a DENSIFY (sparse encoding) or DEQUANTIZE (fp16) op produces is readable only after an invoke.
    kwargs: dict[str, Any] = {"model_path": str(path), "experimental_preserve_all_tensors": True}
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = interpreter_class(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: {info} cannot load this model ({str(exc).splitlines()[0]})") from None
    return interpreter


def _zero_point(detail: dict[str, Any], values: np.ndarray) -> Any:
    """The stored value that dequantizes to 0.0 (per channel for per-channel int8 weights)."""
    if not np.issubdtype(values.dtype, np.integer):
        return 0
    params = detail.get("quantization_parameters") or {}
    points = np.asarray(params.get("zero_points", []), dtype=np.int64)
    if points.size <= 1:
        return int(points[0]) if points.size else 0
    shape = [1] * values.ndim
    shape[int(params.get("quantized_dimension", 0))] = points.size
    return points.reshape(shape)


def tflite_kernels(path: Path, runtime: str = "auto") -> list[Kernel]:
    """Every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weight of a .tflite, in op order.

    Sparse-encoded weights are read densified; int8 weights stay integers with their zero points.

    Raises:
        ModelLoadError: the file is not a loadable .tflite.
    """
    path = validate_model_file(path)
    interpreter = _load(path, runtime)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the public API lists tensors but not which op reads them
    producer = {out: op for op in ops for out in op["outputs"]}
    weights = [(op, op["inputs"][1]) for op in ops if op["op_name"] in _TFLITE_KINDS and len(op["inputs"]) > 1]
    if any(index in producer for _, index in weights):
        for detail in interpreter.get_input_details():  # run DENSIFY/DEQUANTIZE once
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
        interpreter.invoke()
    found: list[Kernel] = []
    for op, index in weights:
        root = index
        while root in producer and producer[root]["op_name"] in ("DENSIFY", "DEQUANTIZE"):
            root = producer[root]["inputs"][0]  # name the kernel after the stored constant
        values = np.array(interpreter.get_tensor(index))
        found.append(Kernel(layer_from_tensor_name(details[root]["name"]), _TFLITE_KINDS[op["op_name"]], values,
                            _zero_point(details[index], values)))
    return found


def measure_tflite_sparsity(path: Path, runtime: str = "auto") -> SparsityReport:
    """Zeros of every convolution and fully connected weight in a .tflite.

    An int8 weight counts as zero when it equals its zero point, i.e. when it dequantizes to exactly
    0.0. Quantization can only add zeros (small weights round to 0), never remove them.

    Raises:
        ModelLoadError: the file is not a loadable .tflite.
    """
    return SparsityReport(str(path), tuple(k.measure() for k in tflite_kernels(path, runtime)))


def m_by_n_violations(kernel: Kernel, m: int, n: int) -> int:
    """How many groups of n consecutive input-channel weights hold fewer than m zeros (a ragged last
    group is ignored)."""
    zeros = kernel.zeros()
    rows = zeros.reshape(-1, zeros.shape[-1])
    full = (rows.shape[1] // n) * n
    groups = rows[:, :full].reshape(rows.shape[0], -1, n)
    return int(np.count_nonzero(groups.sum(axis=-1) < m))


def check_sparsity(
    report: SparsityReport,
    target: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_above: bool = False,
    where: str = "",
    above_hint: str = "check the pruning schedule",
) -> None:
    """Refuse a report in which any kernel misses `target` by more than `tolerance`.

    Args:
        report: the pruned kernels only (see `SparsityReport.select`).
        allow_above: accept kernels sparser than the target (int8: rounding adds zeros).
        where: names the artifact in the message, e.g. 'int8 .tflite'.
        above_hint: the fix named when a kernel is sparser than the target.

    Raises:
        SparsityError: naming the first failing layer, its target and what it achieved.
    """
    if not report.kernels:
        raise SparsityError(f"{where or report.source}: no pruned kernels to check; nothing was pruned")
    for kernel in report.kernels:
        short = kernel.sparsity < target - tolerance
        if short or (not allow_above and kernel.sparsity > target + tolerance):
            hint = ("the pruning masks never updated (no UpdatePruningStep callback, or a schedule whose "
                    "pruning steps were never reached); rerun mdx prune") if short else above_hint
            raise SparsityError(
                f"{where or report.source}: layer {kernel.layer} is {kernel.sparsity:.3f} sparse, target "
                f"{target:.3f} +/- {tolerance:.3f} ({report.kernels.index(kernel) + 1} of {len(report.kernels)} "
                f"pruned kernels); {hint}"
            )
