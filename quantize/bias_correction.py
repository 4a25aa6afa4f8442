"""Bias correction: give back, through the bias, the mean shift that int8 weight rounding causes.

Why this exists (see quantize/README.md for the numbers): the backbone is imported from an int8
.tflite, so its weights lie on an int8 grid, and fine-tuning with Adam at 1e-4 moves them by less
than half a quantization step. Rounding to int8 snaps them back toward the ImageNet grid and erases
the fine-tuning. The inputs of those convolutions come out of ReLU6, so they are non-negative, and
Adam moved all the weights of one output channel the same way: the erased update does not average
out over the 576-960 inputs of a 1x1 projection, it adds up to a per-channel offset (0.23 RMS, two
output quantization steps; 99.8 % of that layer's int8 error is this mean part). A constant offset
per channel is exactly what a bias can absorb.

For every Conv2D / DepthwiseConv2D / Dense: emulate the converter's per-channel symmetric int8
weights Q(W) of the folded kernel (BatchNorm folded in, as the converter does), measure on the
calibration images the mean of conv(x, W - Q(W)) per output channel, and add it to the bias (or to
the following BatchNorm's beta). Data-driven "empirical" bias correction as in Nagel et al. 2019,
"Data-Free Quantization Through Weight Equalization and Bias Correction", section 4.2, computed with
float activations. The float model changes only in its biases; fp32/fp16 variants never see it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mdx import interrupts
from mdx.errors import ConversionError

INT8_MAX = 127  # TFLite int8 weights are symmetric in [-127, 127] (narrow range), zero point 0


@dataclasses.dataclass(frozen=True)
class LayerCorrection:
    """One layer's bias shift: where it went and how large it was (float units of the layer's output)."""

    layer: str
    into: str
    max_abs_shift: float
    rms_shift: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "into": self.into, "max_abs_shift": round(self.max_abs_shift, 6),
                "rms_shift": round(self.rms_shift, 6)}


@dataclasses.dataclass(frozen=True)
class BiasCorrection:
    """What `correct_biases` changed, for the convert record."""

    samples: int
    layers: tuple[LayerCorrection, ...]
    skipped: tuple[str, ...]  # "layer: reason" for weighted layers left alone

    def to_dict(self) -> dict[str, Any]:
        worst = sorted(self.layers, key=lambda c: c.rms_shift, reverse=True)[:5]
        return {"method": "empirical bias correction (per-channel int8 weight error, float activations)",
                "samples": self.samples, "layers_corrected": len(self.layers), "skipped": list(self.skipped),
                "largest": [c.to_dict() for c in worst]}


def int8_per_channel(kernel: np.ndarray, axis: int) -> np.ndarray:
    """`kernel` as the converter stores it: per-channel symmetric int8 along `axis`, dequantized.

    scale = max|w| / 127 per channel, q = round(w / scale); an all-zero channel stays zero.
    """
    w = np.asarray(kernel, dtype=np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    scale = np.max(np.abs(w), axis=reduce, keepdims=True) / INT8_MAX
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, np.clip(np.round(w / safe), -INT8_MAX, INT8_MAX) * safe, 0.0)


@dataclasses.dataclass
class _Target:
    """A weighted layer, the tensor feeding it, and where its bias shift goes."""

    path: str
    layer: Any
    input_tensor: Any
    norm: Any | None  # the BatchNormalization folded into it, if any
    error: np.ndarray | None = None  # folded kernel minus its int8 version
    total: np.ndarray | None = None
    count: int = 0


def _keras() -> Any:
    from mdx.train.keras_shim import keras

    return keras


def _is_functional(layer: Any) -> bool:
    return isinstance(layer, _keras().Model) and getattr(layer, "_is_graph_network", False)


def _nodes(model: Any) -> list[Any]:
    return [node for depth in sorted(model._nodes_by_depth, reverse=True)
            for node in model._nodes_by_depth[depth] if not node.is_input]


def _single(tensors: Any) -> Any | None:
    from mdx.train.keras_shim import tf

    flat = tf.nest.flatten(tensors)
    return flat[0] if len(flat) == 1 else None


def _axis_and_fold(layer: Any, norm: Any | None) -> tuple[int, np.ndarray]:
    """The kernel's output-channel axis and the per-channel factor a folded BatchNorm multiplies it by."""
    keras = _keras()
    axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else -1  # depthwise HWC1: channel axis 2
    if norm is None:
        return axis, np.ones(1)
    gamma = norm.gamma.numpy() if norm.scale else np.ones(norm.moving_variance.shape)
    return axis, gamma.astype(np.float64) / np.sqrt(norm.moving_variance.numpy().astype(np.float64) + norm.epsilon)


def _skip_reason(layer: Any, norm: Any | None) -> str | None:
    keras = _keras()
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "channels_first"
    if isinstance(layer, keras.layers.DepthwiseConv2D) and layer.depth_multiplier != 1:
        return f"depth_multiplier {layer.depth_multiplier}"
    if getattr(layer, "groups", 1) != 1:  # a grouped Conv2D (DepthwiseConv2D has no groups)
        return f"groups {layer.groups}"
    if norm is not None and not norm.center:
        return "its BatchNormalization has no beta"
    if norm is None and not layer.use_bias:
        return "no bias and no BatchNormalization after it"
    return None


def _find_targets(model: Any, prefix: str, targets: list[_Target], skipped: list[str],
                  nested: dict[int, list[tuple[Any, Any]]]) -> None:
    """Collect the weighted layers of `model` and, recursively, of the functional models inside it."""
    keras = _keras()
    weighted = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    nodes = _nodes(model)
    calls: dict[int, int] = {}
    for node in nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    inner: list[tuple[Any, Any]] = []
    for node in nodes:
        layer, source = node.layer, _single(node.input_tensors)
        path = f"{prefix}{layer.name}"
        if _is_functional(layer) and source is not None:
            inner.append((layer, source))
            _find_targets(layer, f"{path}/", targets, skipped, nested)
            continue
        if not isinstance(layer, weighted):
            continue
        if calls[id(layer)] != 1 or source is None:
            skipped.append(f"{path}: called {calls[id(layer)]} times")  # one bias cannot fit two call sites
            continue
        output = _single(node.output_tensors)
        consumers = [n.layer for n in nodes if any(t is output for t in _flat(n.input_tensors))]
        norm = consumers[0] if len(consumers) == 1 and isinstance(consumers[0], keras.layers.BatchNormalization) \
            else None
        reason = _skip_reason(layer, norm)
        if reason:
            skipped.append(f"{path}: {reason}")
            continue
        targets.append(_Target(path, layer, source, norm))
    nested[id(model)] = inner


def _flat(tensors: Any) -> list[Any]:
    from mdx.train.keras_shim import tf

    return tf.nest.flatten(tensors)


def _shift(target: _Target, x: Any) -> tuple[np.ndarray, int]:
    """Sum over batch and positions of layer(x) computed with the kernel error, and how many positions."""
    from mdx.train.keras_shim import tf

    keras = _keras()
    layer, error = target.layer, tf.constant(target.error, dtype=tf.float32)
    if isinstance(layer, keras.layers.Dense):
        out = tf.tensordot(x, error, axes=1)
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        strides = (1, *layer.strides, 1)
        out = tf.nn.depthwise_conv2d(x, error, strides, layer.padding.upper(), dilations=layer.dilation_rate)
    else:
        out = tf.nn.conv2d(x, error, layer.strides, layer.padding.upper(), dilations=layer.dilation_rate)
    flat = tf.reshape(out, (-1, out.shape[-1]))
    return tf.reduce_sum(tf.cast(flat, tf.float64), axis=0).numpy(), int(flat.shape[0])


def _probe(model: Any, wanted: list[Any]) -> Any:
    """A model of `model`'s graph that outputs the tensors in `wanted` that are not its own input."""
    inner = [t for t in wanted if not any(t is i for i in model.inputs)]
    return _keras().Model(model.inputs, inner) if inner else None


def _accumulate(model: Any, batch: Any, by_model: dict[int, list[_Target]],
                nested: dict[int, list[tuple[Any, Any]]], probes: dict[int, Any]) -> None:
    """Run one batch through `model`, adding each target's shift sum; descend into nested models."""
    targets, inner = by_model.get(id(model), []), nested.get(id(model), [])
    wanted = [t.input_tensor for t in targets] + [source for _, source in inner]
    if id(model) not in probes:
        probes[id(model)] = _probe(model, wanted)
    probe = probes[id(model)]
    values = [] if probe is None else _flat(probe(batch, training=False))
    values_iter = iter(values)
    resolved = [batch if any(t is i for i in model.inputs) else next(values_iter) for t in wanted]
    for target, x in zip(targets, resolved[: len(targets)]):
        total, count = _shift(target, x)
        target.total = total if target.total is None else target.total + total
        target.count += count
    for (submodel, _), x in zip(inner, resolved[len(targets):]):
        _accumulate(submodel, x, by_model, nested, probes)


def _owner_map(model: Any, targets: list[_Target], nested: dict[int, list[tuple[Any, Any]]]) -> dict[int, list[_Target]]:
    """Targets grouped by the functional model whose graph holds their input tensor."""
    owners: dict[int, list[_Target]] = {}
    models = [model]
    while models:
        current = models.pop()
        node_layers = {id(n.layer) for n in _nodes(current)}
        owners[id(current)] = [t for t in targets if id(t.layer) in node_layers]
        models.extend(sub for sub, _ in nested.get(id(current), []))
    return owners


@dataclasses.dataclass(frozen=True)
class BiasPlan:
    """The measured shift of every correctable layer, applied by `apply_bias_correction`."""

    samples: int
    shifts: tuple[tuple[str, np.ndarray], ...]  # (layer path, shift per output channel)
    into: tuple[str, ...]  # per shift: the variable it goes into, "<layer>.bias" or "<batchnorm>.beta"
    skipped: tuple[str, ...]


def plan_bias_correction(model: Any, inputs: np.ndarray, *, batch_size: int = 16) -> BiasPlan:
    """Measure, on the calibration inputs, each layer's mean output error from int8 weights.

    Args:
        model: a functional tf-keras model (nested functional models are handled); left unchanged.
        inputs: preprocessed calibration inputs (N, ...), float32, as the representative dataset.
        batch_size: images per forward pass (memory, not results).

    Raises:
        ConversionError: `model` is not a functional model with one input, or `inputs` is empty.
    """
    if not _is_functional(model) or len(model.inputs) != 1:
        raise ConversionError(f"bias correction needs a functional model with one input; {model.name} is not one "
                              "(convert a model saved by mdx train, or pass --no-bias-correction)")
    if len(inputs) == 0:
        raise ConversionError("bias correction got no calibration images; pass --calibration-dir with images")
    targets, skipped, nested = _targets_with_errors(model)
    by_model = _owner_map(model, targets, nested)
    probes: dict[int, Any] = {}
    for start in range(0, len(inputs), batch_size):
        interrupts.safe_point()
        _accumulate(model, np.asarray(inputs[start:start + batch_size], np.float32), by_model, nested, probes)
    shifts, into = [], []
    for target in targets:
        if target.total is None or not target.count:
            raise ConversionError(f"bias correction: no activations reached {target.path}; the model graph is not "
                                  "connected to its input (pass --no-bias-correction)")
        shifts.append((target.path, target.total / target.count))
        into.append(f"{target.norm.name}.beta" if target.norm is not None else f"{target.layer.name}.bias")
    return BiasPlan(len(inputs), tuple(shifts), tuple(into), tuple(skipped))


def _targets_with_errors(model: Any) -> tuple[list[_Target], list[str], dict[int, list[tuple[Any, Any]]]]:
    keras = _keras()
    targets: list[_Target] = []
    skipped: list[str] = []
    nested: dict[int, list[tuple[Any, Any]]] = {}
    _find_targets(model, "", targets, skipped, nested)
    for target in targets:
        axis, fold = _axis_and_fold(target.layer, target.norm)
        depthwise = isinstance(target.layer, keras.layers.DepthwiseConv2D)
        kernel = (target.layer.depthwise_kernel if depthwise else target.layer.kernel).numpy().astype(np.float64)
        shape = [1] * kernel.ndim
        shape[axis] = -1
        folded = kernel * fold.reshape(shape)
        target.error = folded - int8_per_channel(folded, axis)
    return targets, skipped, nested


def _segments(node_names: Any) -> set[str]:
    """Every path segment of TFLite tensor names such as 'model/block_1_project_BN/ReadVariableOp;model/x'."""
    return {part for name in node_names for alternative in str(name).split(";") for part in alternative.split("/")}


def apply_bias_correction(model: Any, plan: BiasPlan, *, keep_float: Any = ()) -> tuple[Any, BiasCorrection]:
    """A copy of `model` with the planned shifts added, except to layers that will stay float.

    Args:
        model: the model `plan` was measured on; left unchanged.
        plan: from `plan_bias_correction`.
        keep_float: TFLite tensor names of ops kept in float (QuantizationDebugOptions.denylisted_nodes):
            a float layer has no int8 weight error, so its shift would be an error of its own.

    Returns:
        The corrected copy and what was changed.
    """
    copy = _keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    floating = _segments(keep_float)
    changes: list[LayerCorrection] = []
    skipped = list(plan.skipped)
    for (path, shift), into in zip(plan.shifts, plan.into):
        owner_name, variable_name = into.rsplit(".", 1)
        if owner_name in floating:
            skipped.append(f"{path}: kept in float")
            continue
        owner = _layer_at(copy, path.rpartition("/")[0], owner_name)
        variable = getattr(owner, variable_name)
        variable.assign((variable.numpy().astype(np.float64) + shift).astype(np.float32))
        changes.append(LayerCorrection(path, into, float(np.max(np.abs(shift))), float(np.sqrt(np.mean(shift ** 2)))))
    return copy, BiasCorrection(samples=plan.samples, layers=tuple(changes), skipped=tuple(skipped))


def _layer_at(model: Any, parent_path: str, name: str) -> Any:
    """The layer `name` inside the nested model at `parent_path` ('' for the top level)."""
    current = model
    for part in filter(None, parent_path.split("/")):
        current = current.get_layer(part)
    return current.get_layer(name)


def correct_biases(model: Any, inputs: np.ndarray, *, batch_size: int = 16) -> tuple[Any, BiasCorrection]:
    """`plan_bias_correction` then `apply_bias_correction` to every layer: the int8 variants' path."""
    return apply_bias_correction(model, plan_bias_correction(model, inputs, batch_size=batch_size))
