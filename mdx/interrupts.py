"""SIGINT and SIGTERM as KeyboardInterrupt, raised where it is safe to unwind.

The handler raises at once, as Ctrl-C does, except inside `deferred()`: there a signal only marks itself
pending, and the interrupt is raised at the next `safe_point()` (between training batches) or when the
block ends. TensorFlow traces its functions in Python code that C++ calls back; an exception raised
asynchronously in there surfaced as `SystemError: bad argument to internal function` or a segfault
instead of a clean exit 130 (tests/reliability/test_interrupts.py, SIGINT during `mdx train`'s first epoch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_depth = 0
_pending = False


def handler(signum: int, frame: Any) -> None:
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


def safe_point() -> None:
    """Raise the interrupt a signal left pending (call only where unwinding is safe)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals inside the block wait for a `safe_point()` or its end."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth:
        safe_point()
