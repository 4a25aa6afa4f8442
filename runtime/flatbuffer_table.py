"""The one flatbuffer table reader that runtime/ (metadata) and mdx.convert (op versions) share.

Pure Python, no `flatbuffers` package: a .tflite is read where only numpy and an interpreter exist.
"""

from __future__ import annotations

import struct
from typing import Any


def root_table(buf: bytes) -> FlatTable:
    """The root table of a flatbuffer (its first 4 bytes are the root's offset)."""
    return FlatTable(buf, struct.unpack_from("<I", buf, 0)[0])


class FlatTable:
    """One flatbuffer table: `pos` is where the table starts, its vtable says where each field lives."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int:
        """Absolute position of field `index`, or 0 when the field is absent (default value)."""
        entry = 4 + 2 * index
        if entry >= self.vtable_size:
            return 0
        offset = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        return self.pos + offset if offset else 0

    def scalar(self, index: int, fmt: str, default: Any) -> Any:
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def _indirect(self, index: int) -> int:
        at = self._field(index)
        return at + struct.unpack_from("<I", self.buf, at)[0] if at else 0

    def table(self, index: int) -> FlatTable | None:
        at = self._indirect(index)
        return FlatTable(self.buf, at) if at else None

    def string(self, index: int) -> str | None:
        at = self._indirect(index)
        if not at:
            return None
        length = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + length].decode("utf-8", errors="replace")

    def vector(self, index: int, fmt: str) -> tuple[Any, ...]:
        at = self._indirect(index)
        if not at:
            return ()
        length = struct.unpack_from("<I", self.buf, at)[0]
        return struct.unpack_from(f"<{length}{fmt}", self.buf, at + 4)

    def vector_position(self, index: int) -> int:
        """Absolute position of vector field `index`'s length word (its items follow), or 0 when absent."""
        return self._indirect(index)

    def tables(self, index: int) -> list[FlatTable]:
        at = self._indirect(index)
        if not at:
            return []
        length = struct.unpack_from("<I", self.buf, at)[0]
        slots = (at + 4 + 4 * i for i in range(length))
        return [FlatTable(self.buf, slot + struct.unpack_from("<I", self.buf, slot)[0]) for slot in slots]

    def bytes_vector(self, index: int) -> bytes:
        at = self._indirect(index)
        if not at:
            return b""
        length = struct.unpack_from("<I", self.buf, at)[0]
        return bytes(self.buf[at + 4 : at + 4 + length])
