"""Output correction: make the quantized model's logits match the float model's in offset and scale.

Bias correction (bias_correction.py) fixes each layer's mean error from its own int8 weights, one
layer at a time, with float inputs. What is left is the mean error that int8 *activations* add and
carry downstream (rounding of small ReLU6 outputs, clipped tails). On the chest X-ray MobileNetV2 it
adds up to +0.17 on the logit difference, always toward PNEUMONIA: every one of the int8 model's
flips on the test split went NORMAL -> PNEUMONIA. Measuring it at the last layer, on the model as
actually quantized, and subtracting it from that layer's bias is the last step of sequential
("empirical") bias correction, done once where it matters. The .tflite is patched in place: its
final FULLY_CONNECTED bias (int32 at scale input_scale * weight_scale, or float32) moves by the
offset, so no second conversion is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mdx.errors import ConversionError
from mdx.runtime.classifier import quantize


def keras_logits(model: Any, inputs: np.ndarray, *, batch_size: int = 32) -> np.ndarray | None:
    """The float pre-softmax outputs of a model that ends in Dense(softmax); None for any other ending."""
    from mdx.train.keras_shim import keras

    layer = model.outputs[0]._keras_history.layer
    if not isinstance(layer, keras.layers.Dense) or keras.activations.serialize(layer.activation) != "softmax":
        return None
    features = keras.Model(model.inputs, layer.input)
    kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
    chunks = [np.asarray(features(inputs[i:i + batch_size], training=False), np.float64) @ kernel + bias
              for i in range(0, len(inputs), batch_size)]
    return np.concatenate(chunks)


def _interpreter(data: bytes) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # the [train] extra has TensorFlow, whose tf.lite has the same API
        from mdx.train.keras_shim import tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    # No XNNPACK: a delegate computes its ops' intermediate tensors out of the interpreter's sight.
    interpreter = Interpreter(model_content=data, num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _logits_op(interpreter: Any) -> tuple[dict, dict] | None:
    """(the SOFTMAX op computing the model output, the op computing its input), or None."""
    ops = interpreter._get_ops_details()  # the only API listing ops with their tensors (tf.lite and litert)
    output = interpreter.get_output_details()[0]["index"]
    producers = {out: op for op in ops if op["op_name"] != "DELEGATE" for out in op["outputs"]}
    softmax = producers.get(output)
    # An int8 softmax reaches a float32 output through a DEQUANTIZE, a uint8 one through a QUANTIZE
    # (int8 -> uint8); missing the latter left uint8 io uncorrected (2 more flips than int8 io)
    if softmax is not None and softmax["op_name"] in ("DEQUANTIZE", "QUANTIZE"):
        softmax = producers.get(softmax["inputs"][0])
    if softmax is None or softmax["op_name"] != "SOFTMAX":
        return None
    logits_op = producers.get(softmax["inputs"][0])
    if logits_op is None or logits_op["op_name"] != "FULLY_CONNECTED" or len(logits_op["inputs"]) < 3:
        return None
    return softmax, logits_op


def _tflite_logits(interpreter: Any, tensor: dict, inputs: np.ndarray) -> np.ndarray:
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    rows = []
    for index in range(len(inputs)):
        x = inputs[index:index + 1].astype(np.float32)
        if np.dtype(detail["dtype"]) != np.float32:
            x = quantize(x, scale, zero_point, np.dtype(detail["dtype"]))
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        value = interpreter.get_tensor(tensor["index"]).astype(np.float64)
        out_scale, out_zero = tensor["quantization"]
        rows.append((value - out_zero) * out_scale if out_scale else value)
    return np.concatenate(rows)


def fit_logit_map(reference: np.ndarray, quantized: np.ndarray) -> tuple[float, np.ndarray]:
    """(a, b) with softmax(a * q + b) ~ softmax(reference): least squares on per-sample centered logits.

    Softmax ignores a constant added to every logit of a sample, so both sides are centered per sample;
    one slope `a` for all classes (what SOFTMAX's beta can carry) and one offset per class.
    """
    r = reference - reference.mean(axis=1, keepdims=True)
    q = quantized - quantized.mean(axis=1, keepdims=True)
    rq, qq = r - r.mean(axis=0), q - q.mean(axis=0)
    spread = float((qq * qq).sum())
    slope = float((qq * rq).sum() / spread) if spread > 0 else 1.0
    return slope, r.mean(axis=0) - slope * q.mean(axis=0)


def _centered_rms(reference: np.ndarray, logits: np.ndarray) -> float:
    diff = (reference - reference.mean(1, keepdims=True)) - (logits - logits.mean(1, keepdims=True))
    return float(np.sqrt(np.mean(diff * diff)))


def correct_output_offset(data: bytes, reference: np.ndarray, inputs: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Make the int8 model's logits on `inputs` match `reference` in scale and offset.

    int8 rounding does not only shift the logits: it also shrinks or stretches them. On the chest
    X-ray demo model the int8 logit difference was 0.91x the float one plus 0.2, so the error was
    +0.6 for confident NORMAL images, +0.35 near the decision threshold and ~0 for confident
    PNEUMONIA images: a mean offset measured on the mostly confident calibration images (+0.08)
    missed it, and every test-split flip went NORMAL -> PNEUMONIA. The fit (`fit_logit_map`) goes
    into the model where it costs nothing: the slope into SOFTMAX's beta, the offsets into the
    final FULLY_CONNECTED bias (softmax(a * (l + b / a)) = softmax(a * l + b)). A slope outside
    [0.5, 2] is not trusted (offset only).

    Args:
        data: a .tflite whose output is SOFTMAX(FULLY_CONNECTED(...)), maybe (de)quantized to the io type.
        reference: the float model's logits on `inputs` (N, classes).
        inputs: the calibration inputs, preprocessed float32.

    Returns:
        The patched model and a record entry (slope, offset per class, mean offsets and centered RMS
        logit error before and after); the model is returned unchanged, with the reason, when it does
        not end in FULLY_CONNECTED + SOFTMAX.

    Raises:
        ConversionError: the patched bias tensor is neither int32 nor float32.
    """
    interpreter = _interpreter(data)
    found = _logits_op(interpreter)
    if found is None:
        return data, {"applied": False, "reason": "the model output is not SOFTMAX(FULLY_CONNECTED)"}
    softmax, logits_op = found
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    logits_tensor, bias_tensor = details[softmax["inputs"][0]], details[logits_op["inputs"][2]]
    reference = np.asarray(reference, np.float64)
    before = _tflite_logits(interpreter, logits_tensor, inputs)
    slope, offset = fit_logit_map(reference, before)
    trusted = 0.5 <= slope <= 2.0
    if not trusted:
        slope, offset = 1.0, (reference - before).mean(axis=0)
    patched, beta = _scale_softmax_beta(_patch_bias(data, bias_tensor, offset / slope), softmax["index"], slope)
    after = _tflite_logits(_interpreter(patched), logits_tensor, inputs)
    return patched, {"applied": True, "tensor": bias_tensor["name"], "samples": len(inputs),
                     "slope": round(slope, 5), "slope_trusted": trusted, "softmax_beta": round(beta, 5),
                     "bias_shift": [round(float(v), 5) for v in offset / slope],
                     "offset_before": [round(float(v), 5) for v in (reference - before).mean(axis=0)],
                     "offset_after": [round(float(v), 5) for v in (reference - slope * after).mean(axis=0)],
                     "centered_rms_before": round(_centered_rms(reference, before), 5),
                     "centered_rms_after": round(_centered_rms(reference, slope * after), 5)}


def _scale_softmax_beta(data: bytes, op_index: int, factor: float) -> tuple[bytes, float]:
    """`data` with SOFTMAX operator `op_index`'s beta multiplied by `factor` (kernels read beta when they
    prepare), and the new beta."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    operator = model.subgraphs[0].operators[op_index]
    if not hasattr(operator.builtinOptions, "beta"):
        raise ConversionError(f"output correction: operator {op_index} is not the SOFTMAX it was found as; "
                              "pass --no-bias-correction")
    operator.builtinOptions.beta = float(operator.builtinOptions.beta * factor)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), float(operator.builtinOptions.beta)


def _patch_bias(data: bytes, bias: dict, offset: np.ndarray) -> bytes:
    """Add `offset` (float units) to the bias tensor's stored values; int32 biases in their own scale."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    tensor = model.subgraphs[0].tensors[bias["index"]]
    buffer = model.buffers[tensor.buffer]
    raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    dtype = np.dtype(bias["dtype"])
    if dtype == np.int32:
        scales = np.asarray(bias["quantization_parameters"]["scales"], np.float64)
        values = np.frombuffer(raw, np.int32).astype(np.int64) + np.round(offset / scales).astype(np.int64)
        stored = np.clip(values, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    elif dtype == np.float32:
        stored = (np.frombuffer(raw, np.float32).astype(np.float64) + offset).astype(np.float32)
    else:
        raise ConversionError(f"output offset: bias {bias['name']!r} is {dtype}; expected int32 or float32 "
                              "(pass --no-bias-correction)")
    buffer.data = np.frombuffer(stored.tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
