"""Read the labels, input normalization and decision threshold embedded in a .tflite, without TensorFlow.

The metadata is a `ModelMetadata` flatbuffer (metadata_schema.fbs, identifier "M001") in the model
buffer named "TFLITE_METADATA"; the labels file it names is in a zip archive appended to the model.
The decision threshold has no place in that schema, so mdx keeps it in a second named entry of
`Model.metadata`, "mdx_decision": a small UTF-8 JSON object {"threshold", "positive_index", "rule"}
that MediaPipe and the interpreters ignore, as they ignore the converter's own "min_runtime_version".
This reader walks only the fields it needs, so it runs wherever the runtime does (no TensorFlow,
no `flatbuffers` package). Field numbers follow schema.fbs and metadata_schema.fbs; a union takes two
slots (its type, then its value).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .flatbuffer_table import FlatTable, root_table

METADATA_NAME = "TFLITE_METADATA"
DECISION_NAME = "mdx_decision"
_IMAGE_PROPERTIES, _NORMALIZATION_OPTIONS, _TENSOR_AXIS_LABELS = 2, 1, 2


def _named_buffer(model: bytes, name: str) -> bytes | None:
    """The bytes of the buffer that the `Model.metadata` entry `name` points at, or None."""
    root = root_table(model)
    buffers = root.tables(4)  # Model: ..., buffers 4, metadata_buffer 5, metadata 6
    for entry in root.tables(6):  # Metadata: name 0, buffer 1
        if entry.string(0) == name:
            buffer = buffers[entry.scalar(1, "I", 0)]  # Buffer: data 0, offset 1, size 2
            offset, size = buffer.scalar(1, "Q", 0), buffer.scalar(2, "Q", 0)
            if offset > 1:  # stored after the flatbuffer (models over 2 GB)
                return model[offset:offset + size]
            at = buffer._indirect(0)
            return model[at + 4:at + 4 + struct.unpack_from("<I", model, at)[0]] if at else None
    return None


def _input_size(model: bytes) -> int | None:
    """The square spatial size of the first subgraph's input tensor (N, S, S, C), or None."""
    root = root_table(model)
    subgraph = root.tables(2)[0]  # SubGraph: tensors 0, inputs 1; Tensor: shape 0
    shape = subgraph.tables(0)[subgraph.vector(1, "i")[0]].vector(0, "i")
    return int(shape[1]) if len(shape) == 4 and shape[1] == shape[2] else None


def _labels(model: bytes, name: str, where: str) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            text = archive.read(name).decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelLoadError(f"{where}: its metadata names {name!r} but the model carries no such file ({exc}); "
                             "reconvert it with mdx convert") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_metadata(path: Path) -> dict[str, Any] | None:
    """{"preprocessing": {"size", "mean", "std"}, "labels": [...], "decision": {...}} from the model, or None.

    Each key is left out when the model lacks it; None when the model carries none of them. "decision"
    is the "mdx_decision" JSON object as stored (its values are checked by the caller, which knows
    the model's classes).

    Raises:
        ModelLoadError: the metadata is corrupt, or names a labels file the model does not carry.
    """
    model = Path(path).read_bytes()
    if len(model) < 8 or model[4:8] != b"TFL3":
        return None  # not a flatbuffer .tflite: the interpreter will say so with its own message
    try:
        found: dict[str, Any] = {}
        buffer = _named_buffer(model, METADATA_NAME)
        if buffer is not None:
            found.update(_model_metadata(buffer, model, str(path)))
        decision = _named_buffer(model, DECISION_NAME)
        if decision is not None:
            found["decision"] = _decision(decision, str(path))
        return found or None
    except (struct.error, IndexError) as exc:
        raise ModelLoadError(f"{path}: its TFLite metadata is truncated or corrupt ({exc}); reconvert it") from None


def _model_metadata(buffer: bytes, model: bytes, where: str) -> dict[str, Any]:
    """Preprocessing and labels from the ModelMetadata flatbuffer, each key only when present."""
    meta = root_table(buffer)
    subgraphs = meta.tables(3)  # ModelMetadata: subgraph_metadata 3
    if not subgraphs:
        return {}
    found: dict[str, Any] = {}
    inputs, outputs = subgraphs[0].tables(2), subgraphs[0].tables(3)  # input / output tensor metadata
    if inputs:
        found.update(_normalization(inputs[0], model))
    if outputs:
        for file in outputs[0].tables(6):  # AssociatedFile: name 0, description 1, type 2
            if file.scalar(2, "b", 0) == _TENSOR_AXIS_LABELS and file.string(0):
                found["labels"] = _labels(model, file.string(0) or "", where)
                break
    return found


def _decision(buffer: bytes, where: str) -> dict[str, Any]:
    try:
        decision = json.loads(buffer.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where}: its {DECISION_NAME} metadata is not valid JSON ({exc}); "
                             "reconvert it with mdx convert") from None
    if not isinstance(decision, dict):
        raise ModelLoadError(f"{where}: its {DECISION_NAME} metadata is {decision!r}, not a JSON object; "
                             "reconvert it with mdx convert")
    return decision


def _normalization(tensor: FlatTable, model: bytes) -> dict[str, Any]:
    """{"preprocessing": ...} from an input TensorMetadata's NormalizationOptions, or {}."""
    for unit in tensor.tables(4):  # TensorMetadata: process_units 4; ProcessUnit: options_type 0, options 1
        options = unit.table(1)
        if unit.scalar(0, "B", 0) == _NORMALIZATION_OPTIONS and options is not None:
            mean, std = options.vector(0, "f"), options.vector(1, "f")  # NormalizationOptions: mean 0, std 1
            size = _image_size(tensor) or _input_size(model)
            if not mean or not std or size is None:
                return {}
            return {"preprocessing": {"size": size, "mean": _per_channel(mean), "std": _per_channel(std)}}
    return {}


def _image_size(tensor: FlatTable) -> int | None:
    content = tensor.table(3)  # TensorMetadata: content 3; Content: properties_type 0, properties 1
    image = content.table(1) if content is not None and content.scalar(0, "B", 0) == _IMAGE_PROPERTIES else None
    size = image.table(1) if image is not None else None  # ImageProperties: color_space 0, default_size 1
    if size is None:
        return None
    width, height = size.scalar(0, "I", 0), size.scalar(1, "I", 0)  # ImageSize: width 0, height 1
    return int(width) if width and width == height else None


def _per_channel(values: tuple[float, ...]) -> list[float]:
    """One value for all three channels (MediaPipe's writer often stores one) or one per channel."""
    return [float(values[0])] * 3 if len(values) == 1 else [float(v) for v in values]
