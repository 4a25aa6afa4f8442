"""Flatten a transfer-learning model into one level of layers, so tfmot can wrap them.

`build_classifier` nests the whole backbone as ONE layer; `prune_low_magnitude` wraps layers of the
model it is given and refuses (or silently skips) the layers of a nested model. Flattening replays
each nested model's graph on the outer tensors with a fresh copy of every layer (same config, same
weights), so the result computes the same function and shares no state with the original.

A nested model called with `training=False` (the backbone) keeps its BatchNorm layers in inference
mode; once flat, that call argument is gone, so every BatchNormalization is frozen instead
(tf-keras runs a non-trainable BatchNormalization in inference mode). Pruning fine-tunes with frozen
statistics anyway: the masks change the weights, not the activations' distribution much.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mdx.errors import ArtifactError
from mdx.train.keras_shim import keras, tf

# A flattened model must compute what the original did, up to float rounding.
FLATTEN_TOLERANCE = 1e-5


def _is_functional(layer: Any) -> bool:
    return isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False)


def _copy(layer: Any, copies: dict[str, Any]) -> Any:
    if layer.name in copies:
        raise ArtifactError(f"two layers are named {layer.name!r} (one inside a nested model); rename one and retrain")
    copy = layer.__class__.from_config(layer.get_config())
    copies[layer.name] = (copy, layer)
    return copy


def _replay(model: Any, inputs: list[Any], copies: dict[str, Any]) -> list[Any]:
    """Run `model`'s graph on `inputs`, copying each layer and descending into nested models.

    Mirrors tf-keras' Functional._run_internal_graph: nodes by decreasing depth, each tensor handed
    out as many times as the graph uses it.
    """
    computed: dict[str, list[Any]] = {}
    usage = model._tensor_usage_count
    for reference, tensor in zip(model.inputs, inputs):
        computed[str(id(reference))] = [tensor] * usage[str(id(reference))]
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = node.map_arguments(computed)
            if _is_functional(node.layer):  # its `training` argument is replaced by frozen BatchNorm layers
                tensors = tf.nest.flatten((args, {k: v for k, v in kwargs.items() if k != "training"}))
                outputs = _replay(node.layer, tensors, copies)
            else:
                outputs = _copy(node.layer, copies)(*args, **kwargs)
            for output_id, tensor in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                computed[output_id] = [tensor] * usage[output_id]
    return [computed[str(id(reference))].pop() for reference in model.outputs]


def flatten_model(model: Any) -> Any:
    """A single-level functional copy of `model` (nested functional models inlined), weights copied.

    Every BatchNormalization is frozen (inference mode); every other layer is trainable.

    Raises:
        ArtifactError: `model` is not a functional model, or inlining would duplicate a layer name.
    """
    if not _is_functional(model):
        raise ArtifactError(f"{model.name} is a subclassed model; "
                            "mdx prune needs a functional model (mdx train makes one)")
    if len(model.inputs) != 1:
        raise ArtifactError(f"{model.name} has {len(model.inputs)} inputs; mdx prune expects one image input")
    copies: dict[str, Any] = {}
    reference = model.inputs[0]
    inputs = keras.Input(shape=reference.shape[1:], dtype=reference.dtype, name=model.input_names[0])
    outputs = _replay(model, [inputs], copies)
    flat = keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=f"{model.name}_flat")
    for copy, original in copies.values():
        copy.set_weights(original.get_weights())
        copy.trainable = not isinstance(copy, keras.layers.BatchNormalization)
    return flat


def max_output_difference(first: Any, second: Any, seed: int = 0) -> float:
    """Largest absolute difference between two models' outputs on a few seeded random inputs."""
    shape = tuple(first.inputs[0].shape[1:])
    probe = np.random.default_rng(seed).uniform(-1.0, 1.0, (4, *shape)).astype(np.float32)
    return float(np.max(np.abs(first(probe, training=False).numpy() - second(probe, training=False).numpy())))


def flatten_checked(model: Any) -> Any:
    """`flatten_model`, refused unless the copy computes the same outputs.

    Raises:
        ArtifactError: the flattened model's outputs differ by more than FLATTEN_TOLERANCE.
    """
    flat = flatten_model(model)
    difference = max_output_difference(model, flat)
    if not difference <= FLATTEN_TOLERANCE:
        raise ArtifactError(f"flattening {model.name} changed its outputs by {difference:.2e} "
                            f"(> {FLATTEN_TOLERANCE:g}); the model has a layer that does not survive copying by config")
    return flat
