"""Frozen dataclass configs that validate in `__post_init__` and round-trip to JSON.

The round-trip lives in `mdx.runtime.configs` (the runtime cannot import mdx); loading rejects unknown
keys, so a typo in a config file fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Any, TypeVar

from mdx.errors import ConfigError
from mdx.runtime.configs import JsonConfig
from mdx.runtime.errors import UsageError

__all__ = ["ConfigBase", "require"]

C = TypeVar("C", bound="ConfigBase")


class ConfigBase(JsonConfig):
    """JsonConfig whose loading errors are mdx ConfigErrors (exit code 2)."""

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        try:
            return super().from_dict(data)
        except UsageError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc)) from None


def require(condition: bool, message: str) -> None:
    """Raise ConfigError with `message` unless `condition` holds (configs validate with this, never assert)."""
    if not condition:
        raise ConfigError(message)
