"""Outputs that cannot be written: a read-only folder and a full disk, for the harness commands.

The write fails in one line naming the file and the fix (exit 1), and leaves no temporary file and
no truncated result behind. The stage folders of convert and train are covered in test_stages_tf.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import assert_fails, fill_disk, golden, leftovers, mdx, python_m_runtime

from mdx.errors import MdxError, OutputError
from mdx.runtime.files import atomic_write_bytes


def test_mdx_bench_json_in_read_only_folder_exits_1_naming_file(read_only_dir: Path, no_probe: None) -> None:
    target = read_only_dir / "bench.json"
    assert_fails(mdx("bench", golden(), "--runs", "2", "--json", target), 1,
                 f"{target}: cannot write", "make the folder writable or choose another --out")
    assert not list(read_only_dir.iterdir())


def test_mdx_evaluate_json_in_missing_folder_under_read_only_exits_1(read_only_dir: Path, xray_dir: Path,
                                                                     no_probe: None) -> None:
    target = read_only_dir / "new" / "evaluation.json"  # the folder must be made first: that fails
    assert_fails(mdx("evaluate", golden(), xray_dir, "--n-boot", "0", "--json", target), 1,
                 f"{target}: cannot write", "choose another --out")


def test_python_m_runtime_evaluate_out_read_only_exits_1_one_line(read_only_dir: Path, xray_dir: Path) -> None:
    result = python_m_runtime("evaluate", golden(), xray_dir, "--n-boot", "0", "--out", read_only_dir / "eval")
    assert_fails(result, 1, "cannot write", "choose another --out")
    assert not list(read_only_dir.iterdir())


def test_mdx_bench_json_on_full_disk_exits_1_nothing_half_written(full_disk: Path, no_probe: None) -> None:
    target = full_disk / "bench.json"
    assert_fails(mdx("bench", golden(), "--runs", "2", "--json", target), 1,
                 f"{target}: cannot write (No space left on device); free space on that disk or choose another --out")
    assert not target.exists() and not leftovers(full_disk)


def test_mdx_evaluate_json_on_full_disk_exits_1_nothing_half_written(full_disk: Path, xray_dir: Path,
                                                                    no_probe: None) -> None:
    target = full_disk / "evaluation.json"
    assert_fails(mdx("evaluate", golden(), xray_dir, "--n-boot", "0", "--json", target), 1,
                 "No space left on device", "free space")
    assert not target.exists() and not leftovers(full_disk)


def test_atomic_write_bytes_full_disk_raises_output_error_keeps_old_file(full_disk: Path) -> None:
    target = full_disk / "result.json"
    if (full_disk / "filler").exists():  # the tmpfs: make room for the old result, then fill it up again
        (full_disk / "filler").unlink()
        target.write_bytes(b"{}")
        fill_disk(full_disk)
    else:
        target.write_bytes(b"{}")  # os.fsync is what fails here; plain writes still work
    with pytest.raises(OutputError, match=r"result\.json: cannot write \(No space left on device\); free space"):
        atomic_write_bytes(target, b"x" * 100_000)
    assert target.read_bytes() == b"{}" and not leftovers(full_disk)
    assert issubclass(OutputError, MdxError)  # so the CLI's one `except MdxError` reports it
