"""Frozen dataclass configs that validate in `__post_init__` and round-trip to JSON.

Loading rejects unknown keys, so a typo in a config file fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from mdx.errors import ConfigError

C = TypeVar("C", bound="ConfigBase")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class ConfigBase:
    """Mixin for frozen dataclass configs: `to_dict`, `from_dict` (strict), `to_json`."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; known keys are {sorted(known)}")
        values = {}
        for name, value in data.items():
            if isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return cls(**values)


def require(condition: bool, message: str) -> None:
    """Raise ConfigError with `message` unless `condition` holds (configs validate with this, never assert)."""
    if not condition:
        raise ConfigError(message)
