"""JSON round-trip for the harness's frozen dataclass configs (mdx.config's ConfigBase, without the mdx import).

`from_dict` rejects unknown keys, so a typo in a config file fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import PurePath
from typing import Any, TypeVar

from .errors import UsageError

C = TypeVar("C", bound="JsonConfig")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class JsonConfig:
    """Mixin for frozen dataclass configs: `to_dict` (tuples become lists) and a strict `from_dict`."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown {cls.__name__} key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def check_threads(value: Any, name: str = "threads") -> None:
    """Refuse anything but None or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{name}={value!r} is invalid; expected a positive integer")
