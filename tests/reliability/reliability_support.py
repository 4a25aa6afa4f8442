"""Helpers of the reliability suite: run both command lines, assert one-line errors, find leftovers.

Imported by the test modules as `reliability_support` (conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from typer.testing import CliRunner, Result

from mdx.cli import app
from mdx.runtime.images import MAX_PIXELS

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
XRAYS = REPO / "data" / "chest_xray" / "test"
# The tiny training settings of every TF test here (issue 9); only the seed test swaps in real weights.
TINY = {"input_size": 32, "alpha": 0.35, "weights": "none", "epochs_frozen": 1, "epochs_finetune": 0,
        "batch_size": 8, "bootstrap": 0, "val_fraction": 0.25}
LEFTOVER_MARKS = (".partial", ".tmp", ".old-")


def mdx(*args: object) -> Result:
    """`mdx ARGS` in this process (typer's CliRunner)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def python_m_runtime(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m runtime ARGS` from the repository root, as on a board with the copied folder."""
    return subprocess.run([sys.executable, "-m", "runtime", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def error_line(output: str) -> str:
    """The one `error: …` line of a failed command; fails on a traceback or on zero or several error lines."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def assert_fails(result: Result | subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit `code`, exactly one `error:` line holding every fragment, no traceback; returns that line."""
    if isinstance(result, subprocess.CompletedProcess):
        output, exit_code = result.stdout + result.stderr, result.returncode
    else:
        # an uncaught exception inside CliRunner also exits 1, silently: insist on a deliberate exit
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        output, exit_code = result.output, result.exit_code
    assert exit_code == code, output
    line = error_line(output)
    for fragment in fragments:
        assert fragment in line, line
    return line


def leftovers(root: Path) -> list[Path]:
    """Staging folders and temporary files under `root`: anything a finished or failed command left half-done."""
    return [p for p in Path(root).rglob("*") if any(mark in p.name for mark in LEFTOVER_MARKS)]


def golden(name: str = "binary_fp32") -> Path:
    return GOLDEN / name / "model.tflite"


def copy_xrays(root: Path, per_class: int = 2, classes: tuple[str, ...] = ("NORMAL", "PNEUMONIA")) -> Path:
    """`root/<class>/` with the first `per_class` real test X-rays of each class."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for image in sorted((XRAYS / name).iterdir())[:per_class]:
            shutil.copy(image, root / name / image.name)
    return root


def real_jpeg_bytes() -> bytes:
    """The smallest real chest X-ray JPEG of the bundled test split (a few KB)."""
    return min((p for p in XRAYS.rglob("*.jpeg")), key=lambda p: p.stat().st_size).read_bytes()


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def fill_disk(folder: Path, name: str = "filler") -> None:
    """Write until the file system refuses (ENOSPC), so not one more byte fits."""
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:  # the last partial page
            os.write(fd, b"\0")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


# ---- the unusable image files, shared by the harness and the stage tests ------------------------------

JPEG = real_jpeg_bytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a decompression bomb's header) with a token IDAT: the size
    check must refuse it before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def dicom_bytes() -> bytes:
    """The start of a DICOM Part 10 file: a 128-byte preamble, then "DICM"."""
    return b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\0" * 64


@dataclass(frozen=True)
class BadImage:
    name: str  # file name: the suffix is part of the case
    content: Callable[[], bytes]
    says: str  # in the error (predict) and in the warning (evaluate)


BAD_IMAGES = {
    "corrupt": BadImage("corrupt.jpg", lambda: JPEG[:200] + rng(0).bytes(4000), "not a readable image"),
    "truncated": BadImage("truncated.jpeg", lambda: JPEG[: len(JPEG) // 3], "image file is truncated"),
    "zero_bytes": BadImage("zero.png", lambda: b"", "not a readable image"),
    "not_an_image": BadImage("notes.jpg", lambda: b"patient notes, not pixels\n", "not a readable image"),
    "bomb_over_2x_limit": BadImage("bomb.png", lambda: png_header_only(30_000, 30_000),
                                   f"image is larger than {MAX_PIXELS} pixels; downscale it first"),
    "bomb_just_over_limit": BadImage("big.png", lambda: png_header_only(12_000, 9_000),
                                     f"image is larger than {MAX_PIXELS} pixels; downscale it first"),
    "dicom": BadImage("scan.dcm", dicom_bytes, "DICOM is not supported by this build; export the image as PNG"),
    "dicom_named_png": BadImage("scan.png", dicom_bytes, "DICOM is not supported by this build; export the image as PNG"),
}
