"""The backbone without its explicit padding layers: the same function with fewer ops to run and train.

Keras' MobileNetV2 (and EfficientNet) pad before every stride-2 convolution with
`ZeroPadding2D(correct_pad(...))` and then convolve with `padding="valid"`. For a stride-2 convolution
with an odd kernel k, `correct_pad` pads (k//2 - 1, k//2) at even sizes and (k//2, k//2) at odd ones,
which is exactly what TensorFlow's `padding="same"` pads there (total max((ceil(n/2) - 1) * 2 + k - n, 0),
the smaller half before). So each pad + valid convolution is rewritten as one `same` convolution, with
the same weights and the same outputs. In training the `Pad` ops and their gradients were 7-8% of a
fine-tuning step's op time (benchmarks/train_op_profile.py); the .tflite loses its PAD ops as well.

Only a pad that feeds exactly one stride-2, undilated, `valid` Conv2D or DepthwiseConv2D and whose
padding equals `same`'s for its input is removed; any other layer graph is returned as it was.
"""

from __future__ import annotations

import copy
from typing import Any


def same_padding_for(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after): what TensorFlow's padding='same' adds along one axis of `size` pixels."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _replaceable(pad: Any, consumer: Any, keras: Any) -> bool:
    if not isinstance(consumer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
        return False
    if consumer.padding != "valid" or tuple(consumer.strides) != (2, 2) or tuple(consumer.dilation_rate) != (1, 1):
        return False
    if consumer.data_format != "channels_last":
        return False
    _, height, width, _ = pad.input.shape
    if height is None or width is None:
        return False
    wanted = (same_padding_for(height, consumer.kernel_size[0], 2), same_padding_for(width, consumer.kernel_size[1], 2))
    return tuple(tuple(side) for side in pad.padding) == wanted


def _is_reference(item: Any) -> bool:
    """An inbound reference of a functional config: [layer name, node index, tensor index, kwargs]."""
    return (isinstance(item, list) and len(item) in (3, 4) and isinstance(item[0], str)
            and isinstance(item[1], int) and isinstance(item[2], int))


def _references(item: Any) -> list[list[Any]]:
    """Every inbound reference nested in a layer's `inbound_nodes` (tf-keras nests them 3 or 4 deep)."""
    if _is_reference(item):
        return [item]
    if isinstance(item, list):
        return [ref for element in item for ref in _references(element)]
    if isinstance(item, dict):
        return [ref for element in item.values() for ref in _references(element)]
    return []


def _consumers(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Layer name -> the layer configs that take its output (once per reference)."""
    consumers: dict[str, list[dict[str, Any]]] = {}
    for layer in config["layers"]:
        for reference in _references(layer["inbound_nodes"]):
            consumers.setdefault(reference[0], []).append(layer)
    return consumers


def without_explicit_padding(model: Any) -> Any:
    """`model` with each replaceable ZeroPadding2D folded into its convolution as padding='same'.

    A functional model in, a new functional model with the same weights out (or `model` itself when
    nothing is replaceable). Layer names and the order of the weights are kept.
    """
    from mdx.train.keras_shim import keras

    config = copy.deepcopy(model.get_config())
    consumers = _consumers(config)
    dropped: dict[str, list[Any]] = {}  # pad name -> its own inbound entry, to rewire its consumer to
    for entry in config["layers"]:
        if entry["class_name"] != "ZeroPadding2D" or len(consumers.get(entry["name"], [])) != 1:
            continue
        pad = model.get_layer(entry["name"])
        consumer_entry = consumers[entry["name"]][0]
        inbound = _references(entry["inbound_nodes"])
        if len(inbound) != 1:
            continue
        if not _replaceable(pad, model.get_layer(consumer_entry["name"]), keras):
            continue
        dropped[entry["name"]] = inbound[0]
        consumer_entry["config"]["padding"] = "same"
    if not dropped:
        return model
    config["layers"] = [entry for entry in config["layers"] if entry["name"] not in dropped]
    for entry in config["layers"]:
        for reference in _references(entry["inbound_nodes"]):
            if reference[0] in dropped:
                reference[:] = dropped[reference[0]]
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
