"""Keras model -> .tflite bytes: the one place that calls `converter.convert()`.

`TFLiteConverter.from_keras_model` exports a SavedModel first, which traces every tf-keras layer and
took ~45 s per variant for MobileNetV2 on a 2-core machine; converting the model's concrete inference
function gives the same graph in a few seconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from mdx.errors import ConversionError

Recipe = Callable[[Any, Any], None]


def keras_converter(model: Any) -> Any:
    """A TFLiteConverter over `model`'s inference function (batch dimension left dynamic)."""
    from mdx.train.keras_shim import tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype, name=model.input_names[0])
    function = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    holder = tf.Module()
    holder.variables_ = list(model.variables)  # keeps the captured variables reachable for export
    return tf.lite.TFLiteConverter.from_concrete_functions([function], holder)


def tflite_bytes(model: Any, recipe: Recipe, dataset: Any = None, *, what: str | None = None) -> bytes:
    """Convert `model` with one recipe (a function that only sets converter attributes).

    Raises:
        ConversionError: TensorFlow could not convert the model (its first message line is kept).
    """
    converter = keras_converter(model)
    recipe(converter, dataset)
    try:
        with warnings.catch_warnings():
            # Emitted for every representative-dataset conversion; it concerns the legacy path we do not use.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return bytes(converter.convert())
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ConversionError(f"{what or model.name}: TensorFlow could not convert the model: {first}") from exc
