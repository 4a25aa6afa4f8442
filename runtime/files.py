"""Hashing and atomic writes: a half-finished run never leaves a file that looks complete."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError

# errno values of a disk that takes no more bytes, and of a folder that takes no writes at all
NO_SPACE_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if e is not None)
NOT_WRITABLE_ERRNOS = frozenset((errno.EROFS, errno.EACCES, errno.EPERM))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gzip_size(path: Path) -> int:
    """Bytes after gzip -9: pruning shrinks only the compressed size, so both sizes are reported."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def file_facts(path: Path, *, with_gzip: bool = False) -> dict[str, Any]:
    """The facts a record keeps about one file: name, bytes, sha256 (and gzip bytes on request)."""
    path = Path(path)
    facts: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if with_gzip:
        facts["gzip_bytes"] = gzip_size(path)
    return facts


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(path: Path, exc: OSError) -> str:
    """One line for an OSError met writing `path`: the path, the reason, and the fix."""
    if exc.errno in NO_SPACE_ERRNOS:
        fix = "free space on that disk or choose another --out"
    elif exc.errno in NOT_WRITABLE_ERRNOS:
        fix = "make the folder writable or choose another --out"
    else:
        fix = "check the disk or choose another --out"
    return f"{path}: cannot write ({exc.strerror or exc}); {fix}"


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary name in the same folder, fsync, then rename over `path`.

    Raises:
        OutputError: the folder cannot be made or written (disk full, read-only); no temporary file is left.
    """
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> Path:
    """`atomic_write_bytes` for a writer that streams into the open file (nothing held whole in memory).

    Raises:
        OutputError: as `atomic_write_bytes`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(write_failure(path, exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes 0600 files; artifacts get the permissions an ordinary file would have
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(write_failure(path, exc)) from None
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
