"""Output offset correction: make the quantized model's mean logits equal the float model's.

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
    """(the SOFTMAX op writing the model output, the op computing its input), or None."""
    ops = interpreter._get_ops_details()  # the only API listing ops with their tensors (tf.lite and litert)
    output = interpreter.get_output_details()[0]["index"]
    producers = {out: op for op in ops if op["op_name"] != "DELEGATE" for out in op["outputs"]}
    softmax = producers.get(output)
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


def correct_output_offset(data: bytes, reference: np.ndarray, inputs: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Shift the final FULLY_CONNECTED bias of `data` so its mean logits on `inputs` match `reference`.

    Args:
        data: a .tflite whose output is SOFTMAX(FULLY_CONNECTED(...)).
        reference: the float model's logits on `inputs` (N, classes).
        inputs: the calibration inputs, preprocessed float32.

    Returns:
        The patched model and a record entry (offset per class, before and after); the model is
        returned unchanged, with the reason, when it does not end in FULLY_CONNECTED + SOFTMAX.

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
    offset = (np.asarray(reference, np.float64) - _tflite_logits(interpreter, logits_tensor, inputs)).mean(axis=0)
    patched = _patch_bias(data, bias_tensor, offset)
    after = (np.asarray(reference, np.float64) - _tflite_logits(_interpreter(patched), logits_tensor, inputs)).mean(0)
    return patched, {"applied": True, "tensor": bias_tensor["name"], "samples": len(inputs),
                     "offset_before": [round(float(v), 5) for v in offset],
                     "offset_after": [round(float(v), 5) for v in after]}


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
