"""The two write protections, removed: the bad outcome they prevent really happens without them.

Other protections are shown failing beside their own tests: the subprocess probe (test_fuzz.py),
the SIGTERM handler (test_interrupts.py) and EXIF transposition (test_bad_images.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import golden, leftovers, mdx


def _convert(micro: dict[str, Path], out: Path):
    return mdx("convert", micro["model"], "--size", "16", "--mean", "127.5", "--std", "127.5", "--labels",
               micro["labels"], "--out", out)


def _interrupt_record(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt  # Ctrl-C while the record is written: the model file is already there


@contextlib.contextmanager
def _plain_mkdir(final: Path, *, overwrite: bool) -> Iterator[Path]:
    """staged_dir without the staging: write straight into the final folder."""
    final.mkdir(parents=True, exist_ok=overwrite)
    yield final


@pytest.mark.tf
def test_convert_interrupted_writing_record_staged_dir_leaves_no_folder(tmp_path: Path, micro_model,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.convert.convert.write_record", _interrupt_record)
    result = _convert(micro_model, tmp_path / "convert")
    assert result.exit_code == 130, result.output
    assert not (tmp_path / "convert" / "fp32").exists() and not leftovers(tmp_path)


@pytest.mark.tf
def test_convert_interrupted_writing_record_plain_mkdir_leaves_half_folder(tmp_path: Path, micro_model,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.convert.convert.write_record", _interrupt_record)
    monkeypatch.setattr("mdx.convert.convert.staged_dir", _plain_mkdir)
    result = _convert(micro_model, tmp_path / "convert")
    assert result.exit_code == 130, result.output
    folder = tmp_path / "convert" / "fp32"
    assert (folder / "model.tflite").is_file() and not (folder / "record.json").exists()  # half-written
    again = _convert(micro_model, tmp_path / "convert")  # and the rerun is refused: the folder "exists"
    assert again.exit_code == 1 and "already exists" in again.output


def _write_in_place(path: Path, data: bytes) -> Path:
    """atomic_write_bytes without the temporary name and the error translation."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def test_bench_json_full_disk_without_atomic_write_leaves_file_and_traceback(full_disk: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.runtime.cli.probe_models", lambda *models, runtime: None)
    monkeypatch.setattr("mdx.runtime.files.atomic_write_bytes", _write_in_place)
    target = full_disk / "bench.json"
    result = mdx("bench", golden(), "--runs", "2", "--json", target)
    assert isinstance(result.exception, OSError)  # what the user would see as a traceback
    assert target.exists()  # a result file that is empty, cut short, or never flushed to disk
