"""Quantization -> TFLiteConverter settings. A recipe only sets converter attributes.

`mdx.convert.convert` alone calls `converter.convert()`; keeping the recipes this small means a
variant's settings can be read in one place and compared with the TFLite documentation:
https://ai.google.dev/edge/litert/models/post_training_quantization
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from mdx.errors import ConfigError
from mdx.variants import Quantization

RepresentativeDataset = Callable[[], Iterator[list[np.ndarray]]]
Recipe = Callable[[Any, "RepresentativeDataset | None"], None]

# The int8 variant's input/output type. float32 puts QUANTIZE/DEQUANTIZE ops around the int8 body, so the
# model takes the same normalized floats as fp32 (MediaPipe Tasks loads uint8 or float32, never int8).
INT8_IO = ("int8", "uint8", "float32")
DEFAULT_INT8_IO = "float32"  # measured: benchmarks/README.md, "The int8 variant's input/output type"


def _tf() -> Any:
    # TensorFlow only when a recipe is applied: `import mdx.quantize.recipes` stays cheap.
    from mdx.train.keras_shim import tf

    return tf


def _no_dataset(variant: Quantization, representative_dataset: RepresentativeDataset | None) -> None:
    if representative_dataset is not None:
        # A representative dataset would silently turn these into (partly) integer models.
        raise ConfigError(f"{variant} takes no representative dataset; it is used only by int8 and int8-fallback")


def _need_dataset(variant: Quantization, representative_dataset: RepresentativeDataset | None) -> None:
    if representative_dataset is None:
        raise ConfigError(
            f"{variant} needs a representative dataset to calibrate activation ranges; "
            "pass --calibration-dir DIR (one sub-folder per class)"
        )


def fp32(converter: Any, representative_dataset: RepresentativeDataset | None = None) -> None:
    """No optimization: float32 weights and activations, the parity baseline."""
    _no_dataset(Quantization.FP32, representative_dataset)


def fp16(converter: Any, representative_dataset: RepresentativeDataset | None = None) -> None:
    """float16 weights, dequantized to float32 at load time; float32 input and output."""
    _no_dataset(Quantization.FP16, representative_dataset)
    tf = _tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def dynamic(converter: Any, representative_dataset: RepresentativeDataset | None = None) -> None:
    """Dynamic-range: int8 weights, activations quantized on the fly; float32 input and output."""
    _no_dataset(Quantization.DYNAMIC, representative_dataset)
    converter.optimizations = [_tf().lite.Optimize.DEFAULT]


def int8(converter: Any, representative_dataset: RepresentativeDataset | None, io: str = DEFAULT_INT8_IO) -> None:
    """Full-integer: int8 weights (per-channel) and activations; int8, uint8 or float32 input and output.

    Conversion fails rather than leave a float op behind (TFLITE_BUILTINS_INT8 only), so the model
    runs on integer-only accelerators.
    """
    _need_dataset(Quantization.INT8, representative_dataset)
    if io not in INT8_IO:
        raise ConfigError(f"int8 io {io!r} is invalid; expected one of {', '.join(INT8_IO)}")
    tf = _tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io]
    converter.inference_input_type = dtype
    converter.inference_output_type = dtype
    # Per-channel weights are TFLite's default; set it explicitly so a changed default cannot
    # silently fall back to per-tensor scales (which cost MobileNetV2 several points of accuracy).
    converter._experimental_disable_per_channel = False


def int8_fallback(converter: Any, representative_dataset: RepresentativeDataset | None = None) -> None:
    """Integer where possible, float kernels where an op has no int8 kernel; float32 input and output."""
    _need_dataset(Quantization.INT8_FALLBACK, representative_dataset)
    tf = _tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_disable_per_channel = False


RECIPES: dict[Quantization, Recipe] = {
    Quantization.FP32: fp32,
    Quantization.FP16: fp16,
    Quantization.DYNAMIC: dynamic,
    Quantization.INT8: int8,
    Quantization.INT8_FALLBACK: int8_fallback,
}

NEEDS_CALIBRATION = frozenset({Quantization.INT8, Quantization.INT8_FALLBACK})


def recipe_for(variant: Quantization, *, io: str | None = None) -> Recipe:
    """The recipe of `variant`; `io` ('int8', 'uint8' or 'float32') selects the int8 variant's input/output type.

    Raises:
        ConfigError: `io` given for a variant other than int8.
    """
    variant = Quantization(variant)
    if io is None:
        return RECIPES[variant]
    if variant is not Quantization.INT8:
        raise ConfigError(f"io {io!r} applies only to int8; {variant} keeps float32 input and output")
    if io not in INT8_IO:
        raise ConfigError(f"int8 io {io!r} is invalid; expected one of {', '.join(INT8_IO)}")
    return partial(int8, io=io)
