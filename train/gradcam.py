"""Grad-CAM (Selvaraju et al. 2017) for the Keras models mdx trains, on the last convolutional block.

The map of class `t` is ReLU(sum_k w_k A_k), A the last 4-D activation (MobileNetV2's 4 x 4 x 1280 at
128 px), w_k the spatial mean of d(logit_t)/dA_k, resized bilinearly to the input. The logit is read
before the final softmax: a confident softmax has almost no gradient left. For comparison with the
occlusion maps of the converted float model (docs/explain.md), which need no TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mdx import interrupts
from mdx.errors import ConfigError
from mdx.train.keras_shim import keras, tf


def _chain(model: Any) -> list[Any]:
    """The layers after the input, refusing a model that is not one chain (Grad-CAM splits it in two)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if len(layer._inbound_nodes) > 1 and not isinstance(layer, keras.Model):
            raise ConfigError(f"layer {layer.name!r} is used more than once; Grad-CAM here needs a chain of layers")
    return layers


def _split(layers: list[Any], layer_name: str | None) -> int:
    """Index of the layer whose output is the feature map: `layer_name`, else the last with a 4-D output."""
    if layer_name is not None:
        names = [layer.name for layer in layers]
        if layer_name not in names:
            raise ConfigError(f"Grad-CAM layer {layer_name!r} is not in the model; choose one of {names}")
        return names.index(layer_name)
    found = [i for i, layer in enumerate(layers) if len(layer.output_shape) == 4]
    if not found:
        raise ConfigError("the model has no 4-D (convolutional) output to take Grad-CAM on")
    return found[-1]


def feature_layer(model: Any, layer_name: str | None = None) -> str:
    """The name of the layer `grad_cam` takes its feature map from (recorded beside the maps).

    Raises:
        ConfigError: as `grad_cam`.
    """
    layers = _chain(model)
    return str(layers[_split(layers, layer_name)].name)


def _logits(layer: Any, x: Any) -> Any:
    """The last layer's output before its softmax, if it is a Dense layer ending in one."""
    if isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax:
        return tf.matmul(x, layer.kernel) + (layer.bias if layer.use_bias else 0.0)
    return layer(x, training=False)


def grad_cam(model: Any, inputs: np.ndarray, targets: np.ndarray, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM maps (N, H, W) float32, each scaled to a maximum of 1 (all zeros when nothing is positive).

    Args:
        model: a Keras classifier built as one chain of layers (mdx's: image -> backbone -> head).
        inputs: preprocessed float32 images (N, H, W, C).
        targets: the class index of each image.
        layer_name: the layer whose output is used (default: the last with a 4-D output).

    Raises:
        ConfigError: the model is not a chain, or the layer is unknown or not 4-D.
    """
    layers = _chain(model)
    split = _split(layers, layer_name)
    with interrupts.deferred():  # a signal waits for the maps (mdx.interrupts)
        return _maps(layers, split, inputs, targets)


def _maps(layers: list[Any], split: int, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    x = tf.convert_to_tensor(np.asarray(inputs, dtype=np.float32))
    for layer in layers[: split + 1]:
        x = layer(x, training=False)
    features = x
    if len(features.shape) != 4:
        raise ConfigError(f"Grad-CAM layer {layers[split].name!r} outputs {tuple(features.shape)}; expected (N, H, W, C)")
    with tf.GradientTape() as tape:
        tape.watch(features)
        x = features
        for layer in layers[split + 1 : -1]:
            x = layer(x, training=False)
        scores = tf.gather(_logits(layers[-1], x), np.asarray(targets, dtype=np.int32), axis=1, batch_dims=1)
    grads = tape.gradient(scores, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, tuple(inputs.shape[1:3]), method="bilinear")[..., 0].numpy()
    top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(top > 0, cam / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)
