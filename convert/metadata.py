"""Labels and input normalization inside every .tflite, in the TFLite metadata format MediaPipe reads.

MediaPipe Tasks' ImageClassifier (and TFLite Support before it) reads a `ModelMetadata` flatbuffer
(tensorflow/lite/... metadata_schema.fbs, file identifier "M001") from the model buffer named
"TFLITE_METADATA" in `Model.metadata`, and the files it names (here labels.txt) from a zip archive
appended to the model. MediaPipe's own metadata writer needs a native module that its current wheel
lacks (and older wheels pin numpy<2), so the buffer is written here with `flatbuffers`, field by
field as the schema numbers them; tests/integration/test_mediapipe_metadata.py checks that MediaPipe
loads the result and agrees with this harness. `mdx.runtime.tflite_metadata` reads it back without
TensorFlow.

The schema has no place for a decision threshold, so the run's threshold goes into a second named
`Model.metadata` entry, "mdx_decision" (a UTF-8 JSON object), which MediaPipe and the interpreters
skip as they skip the converter's own "min_runtime_version".
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

from mdx.runtime.preprocess import Preprocessing
from mdx.runtime.tflite_metadata import DECISION_NAME

METADATA_NAME = b"TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # normalization, image properties and axis labels all date from 1.0
LABELS_FILE = "labels.txt"

# Union and enum values of metadata_schema.fbs.
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_RGB = 1  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def _strings(builder: Any, values: dict[str, str]) -> dict[str, int]:
    return {key: builder.CreateString(value) for key, value in values.items()}


def _floats(builder: Any, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _tables(builder: Any, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _table(builder: Any, fields: int, offsets: dict[int, int], bytes_: dict[int, int] | None = None,
           uints: dict[int, int] | None = None) -> int:
    """One table: `offsets` are slot -> offset fields, `bytes_` slot -> uint8, `uints` slot -> uint32."""
    builder.StartObject(fields)
    for slot, value in (uints or {}).items():
        builder.PrependUint32Slot(slot, value, 0)
    for slot, offset in offsets.items():
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in (bytes_ or {}).items():
        builder.PrependUint8Slot(slot, value, 0)
    return builder.EndObject()


def _input_metadata(builder: Any, pre: Preprocessing) -> int:
    text = _strings(builder, {"name": "image", "description": "Input image to be classified."})
    size = _table(builder, 2, {}, uints={0: pre.size, 1: pre.size})  # ImageSize(width, height)
    image = _table(builder, 2, {1: size}, bytes_={0: _RGB})  # ImageProperties(color_space, default_size)
    content = _table(builder, 3, {1: image}, bytes_={0: _IMAGE_PROPERTIES})  # Content(type, properties, range)
    normalization = _table(builder, 2, {0: _floats(builder, pre.mean), 1: _floats(builder, pre.std)})
    unit = _table(builder, 2, {1: normalization}, bytes_={0: _NORMALIZATION_OPTIONS})  # ProcessUnit(type, options)
    lows = [(0.0 - m) / s for m, s in zip(pre.mean, pre.std)]
    highs = [(255.0 - m) / s for m, s in zip(pre.mean, pre.std)]
    stats = _table(builder, 2, {0: _floats(builder, highs), 1: _floats(builder, lows)})  # Stats(max, min)
    # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5, files 6
    return _table(builder, 7, {0: text["name"], 1: text["description"], 3: content,
                               4: _tables(builder, [unit]), 5: stats})


def _output_metadata(builder: Any) -> int:
    text = _strings(builder, {"name": "probability", "description": "Probabilities of the labels respectively.",
                              "file": LABELS_FILE, "file_description": "Labels for the classes, one per line."})
    labels = _table(builder, 5, {0: text["file"], 1: text["file_description"]}, bytes_={2: _TENSOR_AXIS_LABELS})
    feature = _table(builder, 0, {})  # FeatureProperties has no fields
    content = _table(builder, 3, {1: feature}, bytes_={0: _FEATURE_PROPERTIES})
    stats = _table(builder, 2, {0: _floats(builder, [1.0]), 1: _floats(builder, [0.0])})
    return _table(builder, 7, {0: text["name"], 1: text["description"], 3: content, 5: stats,
                               6: _tables(builder, [labels])})


def metadata_buffer(pre: Preprocessing, *, name: str, description: str, version: str) -> bytes:
    """The ModelMetadata flatbuffer of a single-subgraph image classifier (labels in LABELS_FILE)."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    inputs = _tables(builder, [_input_metadata(builder, pre)])
    outputs = _tables(builder, [_output_metadata(builder)])
    subgraph = _table(builder, 10, {2: inputs, 3: outputs})  # SubGraphMetadata: input 2, output 3
    text = _strings(builder, {"name": name, "description": description, "version": version,
                              "parser": MIN_PARSER_VERSION})
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, ..., min_parser_version 7
    root = _table(builder, 8, {0: text["name"], 1: text["description"], 2: text["version"],
                               3: _tables(builder, [subgraph]), 7: text["parser"]})
    builder.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip header can hold


def embed_metadata(model: bytes, labels: Sequence[str], pre: Preprocessing, *, name: str, description: str,
                   version: str, decision: dict[str, Any] | None = None) -> bytes:
    """`model` with the metadata buffer, and `decision` as "mdx_decision" when given (each replacing an
    earlier one), and labels.txt zipped onto its end."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))  # reads the flatbuffer, not a zip
    entries = {METADATA_NAME: metadata_buffer(pre, name=name, description=description, version=version)}
    if decision is not None:
        entries[DECISION_NAME.encode()] = json.dumps(decision, sort_keys=True).encode("utf-8")
    tree.metadata = [m for m in (tree.metadata or []) if m.name not in entries]
    for entry_name, payload in entries.items():
        buffer = schema.BufferT()
        buffer.data = payload
        tree.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = entry_name, len(tree.buffers) - 1
        tree.metadata.append(entry)
    data = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(tree)))
    data.seek(0, io.SEEK_END)
    # Stored, not deflated: readers map the labels straight out of the model file.
    with zipfile.ZipFile(data, "a", compression=zipfile.ZIP_STORED) as archive:
        # A fixed timestamp: the zip header would otherwise carry the clock, and the same model must
        # convert to the same bytes.
        entry_info = zipfile.ZipInfo(LABELS_FILE, date_time=ZIP_EPOCH)
        archive.writestr(entry_info, "\n".join(labels) + "\n", compress_type=zipfile.ZIP_STORED)
    return data.getvalue()
