"""Will this .tflite load on that runtime? Compare its op versions with op_versions.json.

A runtime refuses a model whose op code is newer than its op resolver registers
(`Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'`), and it does so on the device,
after the model has shipped. This check runs at conversion time, without TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mdx.convert.flatbuffer import TfliteFacts, read_tflite
from mdx.errors import ConfigError


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("mdx.convert").joinpath("op_versions.json").read_text(encoding="utf-8")
    return json.loads(text)


def runtimes() -> tuple[str, ...]:
    """Names of the runtimes in op_versions.json, e.g. 'ai-edge-litert', 'tflite-runtime-2.14', 'tf.lite'."""
    return tuple(_table()["runtimes"])


def runtime_info(runtime: str) -> dict[str, Any]:
    """The table entry of one runtime: description, version, source, max_versions.

    Raises:
        ConfigError: `runtime` is not in the table.
    """
    table = _table()["runtimes"]
    if runtime not in table:
        raise ConfigError(f"unknown target runtime {runtime!r}; expected one of {', '.join(table)}")
    return dict(table[runtime])


@dataclass(frozen=True)
class OpProblem:
    """One op code that `runtime` would refuse (or that the table cannot vouch for)."""

    runtime: str
    op: str
    version: int
    max_supported: int | None  # None: the op is not in the runtime's table (or is a custom op)

    def __str__(self) -> str:
        if self.op.startswith("CUSTOM:"):
            return (
                f"{self.op} is a custom op: {self.runtime} loads it only if the app registers it; "
                "convert without custom ops"
            )
        if self.max_supported is None:
            return (
                f"{self.op} v{self.version} is not in op_versions.json for {self.runtime}, so loading there is "
                "unverified; load it on the device, then add the op to convert/op_versions.json"
            )
        return (
            f"{self.op} v{self.version} is newer than {self.runtime} supports (up to v{self.max_supported}); "
            "choose another variant or upgrade the runtime"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "version": self.version, "max_supported": self.max_supported, "message": str(self)}


def problems_for(facts: TfliteFacts, runtime: str) -> list[OpProblem]:
    """Op codes of an already-read model that `runtime` would not load (empty list: it loads)."""
    limits = runtime_info(runtime)["max_versions"]
    problems = []
    for code in facts.op_codes:
        limit = limits.get(code.name)
        if limit is None or code.version > limit:
            problems.append(OpProblem(runtime, code.name, code.version, limit))
    return problems


def check_compatibility(model_path: Path | bytes, runtime: str) -> list[OpProblem]:
    """Problems that would stop `runtime` from loading the .tflite at `model_path` (empty: it loads).

    Args:
        model_path: a .tflite file, or its bytes.
        runtime: a name from `runtimes()`.

    Raises:
        ConfigError: unknown runtime.
        ArtifactError: not a readable .tflite.
    """
    runtime_info(runtime)  # refuse an unknown runtime before reading the model
    return problems_for(read_tflite(model_path), runtime)


def compatibility_report(facts: TfliteFacts, target: str | None = None) -> dict[str, Any]:
    """Record form: for every runtime in the table, whether the model loads and, if not, why."""
    report: dict[str, Any] = {"target": target, "min_runtime_version": facts.min_runtime_version, "runtimes": {}}
    for name in runtimes():
        found = problems_for(facts, name)
        report["runtimes"][name] = {"loads": not found, "problems": [p.to_dict() for p in found]}
    return report
