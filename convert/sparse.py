"""Pruned Keras model -> .tflite bytes, including the sparse-float variant XNNPACK can run sparsely.

`sparse_float` is a recipe in the shape of `mdx.quantize.recipes` (it only sets converter attributes),
so the convert stage can add it as one more variant; `sparse_float_tflite` converts with it. The prune
stage takes `tflite_bytes` as its fp32 conversion (`mdx prune` passes it: train/ imports no convert/).

Sparse inference, and whether our models get it. `Optimize.EXPERIMENTAL_SPARSITY` stores each
sufficiently sparse weight in TFLite's sparse format behind a DENSIFY op, so the file shrinks even
before gzip. XNNPACK runs 1x1 convolutions with sparse kernels only inside an NCHW subgraph that
(tensorflow/lite/delegates/xnnpack/README.md "Sparse Inference"; XNNPACK src/subgraph.c
`xnn_check_nchw_compatibility`):
  * starts with a 3x3 stride-2 CONV_2D with 3 input channels and explicit padding 1 on each side,
  * ends with a MEAN over the spatial axes of a 4-D tensor (GlobalAveragePooling2D),
  * holds only 1x1 convs (>= 2/3 of their weights zero overall), 3x3/5x5 depthwise convs with
    explicit symmetric padding (TFLite's SAME padding flag is refused), ADD/MUL and activations.
Our head, GlobalAveragePooling2D(keepdims=False) -> Dense, needs no change: XNNPACK accepts a MEAN
with or without keep_dims as the end of the subgraph (only tfmot's PruneForLatencyOnXNNPack policy
asks for keepdims=True). The blocker is the backbone: Keras' MobileNetV2 uses padding='same' for Conv1
and its stride-1 depthwise convs, and an asymmetric ZeroPadding2D((0, 1), (0, 1)) before its
stride-2 depthwise convs, so XNNPACK keeps the whole graph dense and NHWC. The sparse-float variant
is therefore smaller but not faster with this backbone (`benchmarks/prune_sweep.py` measures both);
a backbone rebuilt with ZeroPadding2D(1) + padding='valid' everywhere (as tfmot's XNNPACK guide
does) would be needed for the sparse kernels.
"""

from __future__ import annotations

from typing import Any

from mdx.convert.keras_converter import tflite_bytes as _tflite_bytes
from mdx.errors import ConfigError
from mdx.quantize.recipes import RepresentativeDataset, fp32
from mdx.train.keras_shim import keras, tf


def sparse_float(converter: Any, representative_dataset: RepresentativeDataset | None = None) -> None:
    """float32 weights and activations; weights that are sparse enough stored in sparse format."""
    if representative_dataset is not None:
        raise ConfigError("sparse-float takes no representative dataset; it is a float variant")
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]


def sparse_float_tflite(model: keras.Model) -> bytes:
    """The sparse-float .tflite of a pruned (stripped) Keras model.

    Raises:
        ConversionError: TensorFlow could not convert the model.
    """
    return tflite_bytes(model, sparse_float)


def tflite_bytes(model: keras.Model, recipe=fp32, dataset: RepresentativeDataset | None = None) -> bytes:
    """Convert `model` with one converter recipe (e.g. `mdx.quantize.recipes.int8`, `sparse_float`)."""
    return _tflite_bytes(model, recipe, dataset)
