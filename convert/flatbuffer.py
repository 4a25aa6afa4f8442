"""A small pure-Python reader for the parts of a .tflite flatbuffer that mdx checks.

No TensorFlow, no `flatbuffers` package: operator codes and versions, the operators of the main
subgraph, the input/output tensors with their quantization, and the `min_runtime_version` metadata.
That is enough to check a model against a runtime's op table on any machine.

Field numbers follow tensorflow/lite/schema/schema.fbs (Model, OperatorCode, SubGraph, Operator,
Tensor, QuantizationParameters, Buffer, Metadata); a field missing from a table takes its schema
default, which is why every accessor below carries one.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mdx.errors import ArtifactError
from mdx.runtime.flatbuffer_table import FlatTable, root_table

FILE_IDENTIFIER = b"TFL3"

# TensorType enum of schema.fbs -> numpy-style names (as the interpreters report them).
TENSOR_TYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    8: "complex64",
    9: "int8",
    10: "float64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
}


@lru_cache(maxsize=1)
def builtin_operator_names() -> tuple[str, ...]:
    """BuiltinOperator names indexed by code, from the schema enum stored in op_versions.json."""
    data = json.loads(resources.files("mdx.convert").joinpath("op_versions.json").read_text(encoding="utf-8"))
    return tuple(data["builtin_operators"])


@dataclass(frozen=True)
class OpCode:
    """One entry of the model's operator-code table: a builtin op (or custom op) at one version."""

    name: str
    code: int
    version: int
    custom: str | None = None


@dataclass(frozen=True)
class TensorFacts:
    """An input or output tensor as a runtime sees it: dtype, shape and per-tensor quantization."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Record form; scale/zero_point are scalars like the interpreters' `quantization` (0.0, 0 for float)."""
        per_tensor = len(self.scale) <= 1
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "scale": (self.scale[0] if self.scale else 0.0) if per_tensor else list(self.scale),
            "zero_point": (self.zero_point[0] if self.zero_point else 0) if per_tensor else list(self.zero_point),
        }


@dataclass(frozen=True)
class TfliteFacts:
    """What mdx reads from a .tflite: op codes, the main subgraph's operators, its inputs and outputs."""

    op_codes: tuple[OpCode, ...]
    operator_codes: tuple[int, ...]  # op-code index of each operator of subgraph 0, in execution order
    inputs: tuple[TensorFacts, ...]
    outputs: tuple[TensorFacts, ...]
    min_runtime_version: str | None

    @property
    def operators(self) -> tuple[str, ...]:
        """Op name of each operator of the main subgraph, in execution order."""
        return tuple(self.op_codes[i].name for i in self.operator_codes)

    def ops_table(self) -> list[dict[str, Any]]:
        """[{op, version, count}] sorted by op name: each op code and how many operators use it."""
        counts = Counter(self.operator_codes)
        rows = [{"op": c.name, "version": c.version, "count": counts[i]} for i, c in enumerate(self.op_codes)]
        return sorted(rows, key=lambda row: (row["op"], row["version"]))


def _op_name(code: int, custom: str | None) -> str:
    if custom is not None and code == 32:  # BuiltinOperator.CUSTOM
        return f"CUSTOM:{custom}"
    names = builtin_operator_names()
    return names[code] if 0 <= code < len(names) else f"BUILTIN_{code}"


def _tensor(table: FlatTable) -> TensorFacts:
    quant = table.table(4)
    scale: tuple[float, ...] = quant.vector(2, "f") if quant else ()
    zero_point: tuple[int, ...] = quant.vector(3, "q") if quant else ()
    type_code = table.scalar(1, "b", 0)
    return TensorFacts(
        name=table.string(3) or "",
        dtype=TENSOR_TYPES.get(type_code, f"type_{type_code}"),
        shape=tuple(int(d) for d in table.vector(0, "i")),
        scale=tuple(float(s) for s in scale),
        zero_point=tuple(int(z) for z in zero_point),
    )


def _min_runtime_version(model: FlatTable) -> str | None:
    buffers = model.tables(4)
    for meta in model.tables(6):
        if meta.string(0) == "min_runtime_version":
            index = meta.scalar(1, "I", 0)
            if index < len(buffers):
                text = buffers[index].bytes_vector(0).split(b"\0", 1)[0].decode("ascii", errors="replace")
                return text or None
    return None


def read_tflite(model: Path | bytes) -> TfliteFacts:
    """Read op codes, operators, inputs and outputs of a .tflite file (or its bytes).

    Raises:
        ArtifactError: the file is missing or is not a TFLite flatbuffer.
    """
    label = "model bytes" if isinstance(model, (bytes, bytearray)) else str(model)
    if isinstance(model, (bytes, bytearray)):
        buf = bytes(model)
    else:
        try:
            buf = Path(model).read_bytes()
        except OSError as exc:
            raise ArtifactError(f"{model}: cannot read the .tflite file ({exc.strerror}); check the path") from None
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise ArtifactError(
            f"{label} is not a TFLite model (no 'TFL3' identifier); pass a .tflite file made by mdx convert"
        )
    try:
        root = root_table(buf)
        codes = []
        for entry in root.tables(1):
            # Codes < 127 live in the old int8 field, newer ones in the int32 field: the larger wins.
            code = max(entry.scalar(0, "b", 0), entry.scalar(3, "i", 0))
            custom = entry.string(1)
            codes.append(OpCode(_op_name(code, custom), code, entry.scalar(2, "i", 1), custom))
        subgraphs = root.tables(2)
        if not subgraphs:
            raise ArtifactError(f"{label}: the model has no subgraph; reconvert it")
        main = subgraphs[0]
        tensors = main.tables(0)
        operator_codes = tuple(op.scalar(0, "I", 0) for op in main.tables(3))
        if any(index >= len(codes) for index in operator_codes):
            raise IndexError("operator refers to a missing op code")
        return TfliteFacts(
            op_codes=tuple(codes),
            operator_codes=operator_codes,
            inputs=tuple(_tensor(tensors[i]) for i in main.vector(1, "i")),
            outputs=tuple(_tensor(tensors[i]) for i in main.vector(2, "i")),
            min_runtime_version=_min_runtime_version(root),
        )
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{label} is a truncated or corrupt TFLite flatbuffer ({exc}); reconvert it") from None
