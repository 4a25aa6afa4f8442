"""A .tflite image classifier: float32 preprocessed images in, class probabilities out.

Quantized models are fed and read with their own tensors' scale and zero point, so the caller never
handles int8. Outputs become probabilities by this rule (`outputs="auto"`):

* K >= 2 output columns: the model already ends in softmax when every value lies in [0, 1] and every
  row sums to 1, both within `tol = max(1e-3, K * output_scale)` (an int8 softmax rounds each value
  by up to half its scale, so its rows sum to 1 only within that); otherwise softmax is applied. The
  rule is decided once per `predict_proba` call over all rows, never row by row. `output_scale` is the
  step of the values the model computed: the output tensor's scale, or, for a float32 output that a
  DEQUANTIZE writes (an int8 body with float32 io), the scale of the int8 tensor it dequantizes; with
  0 there, a dequantized int8 softmax (rows summing to 255/256) would be taken for logits.
* 1 output column (a sigmoid head): values in [0, 1] are P(class 1), otherwise they are logits and
  the sigmoid is applied; the result is [1 - p, p].

Pass `outputs="probabilities"` or `outputs="logits"` to state it instead of inferring it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputDataError, ModelLoadError, UsageError
from .interpreter import RuntimeInfo, load_interpreter
from .preprocess import Preprocessing

OUTPUT_KINDS = ("auto", "probabilities", "logits")
_QUANTIZED = (np.dtype(np.int8), np.dtype(np.uint8))
_SUPPORTED = (np.dtype(np.float32),) + _QUANTIZED


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """float -> int8/uint8 as TFLite's reference QUANTIZE does: round(x / scale) half away from zero, + zero point, clamp.

    Two float32 temporaries, worked on in place (the plain formula made five): copysign(floor(|x| + 0.5), x)
    is sign(x) * floor(|x| + 0.5) but for the sign of a zero, which adding the zero point and the cast drop.
    """
    info = np.iinfo(dtype)
    scaled = np.asarray(values, dtype=np.float32) / np.float32(scale)
    if np.ndim(scaled) == 0:  # a scalar: nothing to work on in place
        return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5)) + zero_point,
                       info.min, info.max).astype(dtype)
    rounded = np.abs(scaled)
    rounded += np.float32(0.5)
    np.floor(rounded, out=rounded)
    np.copysign(rounded, scaled, out=rounded)
    del scaled
    rounded += np.float32(zero_point)
    np.clip(rounded, info.min, info.max, out=rounded)
    return rounded.astype(dtype)


def pixel_table(preprocessing: Preprocessing, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray | None:
    """(256, 3) table: entry [v, c] is what pixel value v of channel c becomes in a quantized input tensor.

    It is `quantize(preprocessing.normalize(v), scale, zero_point, dtype)` computed once per value: both are
    element-wise, so looking pixels up in it gives the same integers as normalizing and quantizing them.
    None when a normalized value is not finite (a std too small for float32): the float path refuses those.
    """
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    normalized = preprocessing.normalize(levels)
    if not np.isfinite(normalized).all():
        return None
    return quantize(normalized, scale, zero_point, dtype)


def encode_pixels(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (..., 3) -> quantized input values by a `pixel_table` lookup (one read of the pixels).

    Raises:
        InputDataError: the pixels are not uint8 RGB.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim < 1 or pixels.shape[-1] != table.shape[1]:
        raise InputDataError(f"pixels are {pixels.dtype} {pixels.shape}; expected uint8 RGB (..., {table.shape[1]})")
    if (table == table[:, :1]).all():  # one mean and std for every channel: one table
        return table[:, 0][pixels]
    out = np.empty(pixels.shape, dtype=table.dtype)
    for channel in range(table.shape[1]):
        out[..., channel] = table[:, channel][pixels[..., channel]]
    return out


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8/uint8 -> float32: (q - zero_point) * scale."""
    return (np.asarray(values).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so large logits do not overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def to_probabilities(raw: np.ndarray, outputs: str = "auto", output_scale: float = 0.0) -> tuple[np.ndarray, str]:
    """Model outputs (N, columns) -> (probabilities (N, classes) float32, "probabilities" or "logits").

    `outputs="auto"` applies the rule in the module docstring; `output_scale` is the output tensor's
    quantization scale (0 for float outputs).
    """
    raw = np.asarray(raw, dtype=np.float32)
    kind = outputs
    if raw.shape[1] == 1:
        column = raw[:, 0]
        if kind == "auto":
            kind = "probabilities" if bool(((column >= 0) & (column <= 1)).all()) else "logits"
        p = column if kind == "probabilities" else 1.0 / (1.0 + np.exp(-column))
        return np.stack([1.0 - p, p], axis=1).astype(np.float32), kind
    if kind == "auto":
        tol = max(1e-3, raw.shape[1] * output_scale)
        in_range = bool(((raw >= -tol) & (raw <= 1 + tol)).all())
        kind = "probabilities" if in_range and bool((np.abs(raw.sum(axis=1) - 1.0) <= tol).all()) else "logits"
    return (raw if kind == "probabilities" else softmax(raw)), kind


def _dequantized_scale(interpreter: Any, output_index: int) -> float:
    """The scale of the quantized tensor a DEQUANTIZE turns into the float output `output_index`, else 0.

    `_get_ops_details` is the one interpreter API that lists ops (ai-edge-litert and tflite-runtime have it);
    delegated ops stay listed beside the DELEGATE nodes that run them.
    """
    ops = getattr(interpreter, "_get_ops_details", None)
    if ops is None:
        return 0.0
    for op in ops():
        if op["op_name"] == "DEQUANTIZE" and output_index in [int(i) for i in op["outputs"]]:
            source = int(op["inputs"][0])
            for detail in interpreter.get_tensor_details():
                if int(detail["index"]) == source:
                    return float(detail.get("quantization", (0.0, 0))[0])
    return 0.0


def _quantization(detail: dict[str, Any], what: str, path: Path) -> tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    params = detail.get("quantization_parameters") or {}
    if len(params.get("scales", ())) > 1:
        raise ModelLoadError(f"{path}: the {what} tensor is quantized per channel; expected one scale (per tensor)")
    if np.dtype(detail["dtype"]) in _QUANTIZED and not scale:
        raise ModelLoadError(
            f"{path}: the {what} tensor is {np.dtype(detail['dtype'])} without a scale; re-convert with quantization parameters"
        )
    return float(scale), int(zero_point)


class TfliteClassifier:
    """One interpreter for one single-input, single-output image classifier. Not thread-safe: use one per thread.

    Args:
        model_path: a .tflite file.
        runtime, threads, xnnpack: as in `load_interpreter`.
        batch_size: images per invoke when the input's batch dimension can be resized.
        outputs: "auto" (the rule in the module docstring), "probabilities" or "logits".

    Raises:
        ModelLoadError: the model cannot be loaded or is not an image classifier this harness runs.
        UsageError: an option is invalid.
    """

    def __init__(
        self,
        model_path: Path,
        runtime: str = "auto",
        threads: int | None = None,
        xnnpack: bool = True,
        batch_size: int = 32,
        outputs: str = "auto",
    ) -> None:
        if outputs not in OUTPUT_KINDS:
            raise UsageError(f"outputs={outputs!r} is unknown; choose one of {', '.join(OUTPUT_KINDS)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size={batch_size!r} is invalid; expected a positive integer")
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self.outputs = outputs
        self.interpreter, info = load_interpreter(self.model_path, runtime, threads, xnnpack)
        self.runtime: RuntimeInfo = info
        inputs, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outs) != 1:
            raise ModelLoadError(
                f"{self.model_path}: has {len(inputs)} inputs and {len(outs)} outputs; expected an image classifier with one of each"
            )
        self._input, self._output = inputs[0], outs[0]
        shape, out_shape = tuple(int(v) for v in self._input["shape"]), tuple(int(v) for v in self._output["shape"])
        if len(shape) != 4 or len(out_shape) != 2:
            raise ModelLoadError(
                f"{self.model_path}: input shape {shape} / output shape {out_shape}; expected (N, H, W, C) in and (N, classes) out"
            )
        self.input_shape: tuple[int, int, int] = shape[1:]  # type: ignore[assignment]
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        for what, dtype in (("input", self.input_dtype), ("output", self.output_dtype)):
            if dtype not in _SUPPORTED:
                raise ModelLoadError(f"{self.model_path}: {what} tensor is {dtype}; this harness runs float32, int8 or uint8 models")
        self.input_quantization = _quantization(self._input, "input", self.model_path)
        self.output_quantization = _quantization(self._output, "output", self.model_path)
        # the step of the output values, for the softmax rule (module docstring)
        self.output_step = self.output_quantization[0] or _dequantized_scale(self.interpreter, int(self._output["index"]))
        self._output_columns = out_shape[1]
        self.num_classes = max(2, self._output_columns)
        signature = self._input.get("shape_signature")
        self._resizable = signature is not None and len(signature) == 4 and int(signature[0]) == -1
        self._batch = shape[0]
        self.output_kind: str | None = None  # "probabilities" or "logits", known after predict_proba

    def describe(self) -> dict[str, Any]:
        """Input and output tensors as recorded with every result."""
        return {
            "input": {"shape": [-1, *self.input_shape], "dtype": str(self.input_dtype),
                      "scale": self.input_quantization[0], "zero_point": self.input_quantization[1]},
            "output": {"classes": self.num_classes, "columns": self._output_columns, "dtype": str(self.output_dtype),
                       "scale": self.output_quantization[0], "zero_point": self.output_quantization[1]},
            "batching": "resized input" if self._resizable else "one image per invoke",
        }

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) float32 for preprocessed float32 images (N, H, W, C).

        Raises:
            InputDataError: the array is empty, not finite, or its shape differs from the model's input.
        """
        return self.to_probabilities(self.predict_raw(inputs))

    def predict_raw(self, inputs: np.ndarray, *, encoded: bool = False) -> np.ndarray:
        """The model's outputs (N, columns) as float32, dequantized but not turned into probabilities.

        Callers splitting one data set over several classifiers join these and call
        `to_probabilities` once, so the softmax rule is decided once for the whole set.

        `encoded`: `inputs` already hold the input tensor's values, as the `pixel_encoder` makes them
        (int8/uint8 for a quantized input); they are fed as they are.

        Raises:
            InputDataError: as `predict_proba`.
        """
        array = self._checked_encoded(inputs) if encoded else self._checked(inputs)
        step = self.batch_size if self._resizable else 1
        return np.concatenate([self._run(array[i : i + step], encoded) for i in range(0, len(array), step)])

    def pixel_encoder(self, preprocessing: Preprocessing) -> Callable[[np.ndarray], np.ndarray] | None:
        """uint8 pixels (N, H, W, 3) -> this model's quantized input values, for `predict_raw(..., encoded=True)`.

        A lookup in a `pixel_table`: the same integers as `quantize(preprocessing.normalize(pixels))`
        without the float32 array (4 bytes a pixel) or its passes. None for a float32 input, or when
        the table cannot be made: then normalize and call `predict_raw` on the floats.
        """
        if self.input_dtype not in _QUANTIZED:
            return None
        table = pixel_table(preprocessing, *self.input_quantization, self.input_dtype)
        if table is None:
            return None
        return lambda pixels: encode_pixels(table, pixels)

    def _checked_encoded(self, inputs: np.ndarray) -> np.ndarray:
        array = np.asarray(inputs)
        expected = "(N, {}, {}, {})".format(*self.input_shape)
        if array.ndim != 4 or tuple(array.shape[1:]) != self.input_shape or array.shape[0] == 0:
            raise InputDataError(f"encoded input shape {tuple(array.shape)} does not match the model's input {expected}")
        if array.dtype != self.input_dtype:
            raise InputDataError(f"encoded inputs are {array.dtype}; this model's input tensor is {self.input_dtype}")
        return array

    def _checked(self, inputs: np.ndarray) -> np.ndarray:
        array = np.asarray(inputs)
        expected = "(N, {}, {}, {})".format(*self.input_shape)
        if array.ndim != 4 or tuple(array.shape[1:]) != self.input_shape:
            raise InputDataError(
                f"input shape {tuple(array.shape)} does not match the model's input {expected}; "
                f"preprocess images to {self.input_shape[0]}x{self.input_shape[1]} with {self.input_shape[2]} channels"
            )
        if array.shape[0] == 0:
            raise InputDataError(f"no inputs given; expected an array of shape {expected} with N >= 1")
        if not np.issubdtype(array.dtype, np.floating):
            raise InputDataError(f"inputs are {array.dtype}; expected preprocessed float32 images (apply the preprocessing first)")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputDataError("inputs contain NaN or infinite values; check the preprocessing")
        return array

    def _run(self, chunk: np.ndarray, encoded: bool = False) -> np.ndarray:
        """One invoke on `chunk` (resizing the batch dimension when needed); float32 outputs."""
        if len(chunk) != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [len(chunk), *self.input_shape], strict=True)
            self.interpreter.allocate_tensors()
            self._batch = len(chunk)
        if self.input_dtype in _QUANTIZED and not encoded:
            chunk = quantize(chunk, *self.input_quantization, self.input_dtype)
        self.interpreter.set_tensor(self._input["index"], chunk)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if self.output_dtype in _QUANTIZED:
            return dequantize(out, *self.output_quantization)
        return out.astype(np.float32, copy=True)

    def to_probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs -> probabilities (N, classes) by the rule in the module docstring; sets `output_kind`."""
        probs, self.output_kind = to_probabilities(raw, self.outputs, self.output_step)
        return probs
