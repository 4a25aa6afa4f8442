"""Records and staged folders: nothing half-written, nothing overwritten silently, hashes checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdx.errors import ArtifactError
from mdx.records import read_record, staged_dir, write_record


def test_staged_dir_failure_inside_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "stage"
    with pytest.raises(RuntimeError, match="boom"), staged_dir(final, overwrite=False) as staging:
        (staging / "model.tflite").write_bytes(b"half")
        raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_existing_without_overwrite_is_refused(tmp_path: Path) -> None:
    final = tmp_path / "stage"
    final.mkdir()
    (final / "keep.txt").write_text("old")
    with pytest.raises(ArtifactError, match="already exists; pass --overwrite"), staged_dir(final, overwrite=False):
        pass
    assert (final / "keep.txt").read_text() == "old"


def test_staged_dir_overwrite_replaces_whole_folder(tmp_path: Path) -> None:
    final = tmp_path / "stage"
    final.mkdir()
    (final / "stale.txt").write_text("old")
    with staged_dir(final, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["stage"]


def test_staged_dir_adopt_continues_in_an_interrupted_folder_keep_leaves_it_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "stage"
    old = tmp_path / ".stage.partial-1"  # a killed run's staging folder, another pid
    (old / "checkpoints").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="boom"), staged_dir(final, overwrite=False, adopt=old,
                                                                keep=lambda: True) as staging:
        assert (staging / "checkpoints").is_dir() and not old.exists()
        raise RuntimeError("boom")
    assert (staging / "checkpoints").is_dir() and not final.exists()  # kept for the next --resume
    with staged_dir(final, overwrite=False, adopt=staging) as again:
        assert again == staging  # this process's own folder, adopted in place
        (again / "model.keras").write_bytes(b"k")
    assert sorted(p.name for p in final.iterdir()) == ["checkpoints", "model.keras"]


def test_staged_dir_publish_false_removes_the_folder_on_success(tmp_path: Path) -> None:
    final = tmp_path / "stage"
    with staged_dir(final, overwrite=False, publish=False) as staging:
        (staging / "model.keras").write_bytes(b"k")
    assert list(tmp_path.iterdir()) == []


def test_write_record_outputs_hashed_relative_and_verified(tmp_path: Path) -> None:
    (tmp_path / "model.tflite").write_bytes(b"TFL3-not-really")
    write_record(tmp_path, stage="convert", config={"a": 1}, inputs=[], outputs=[tmp_path / "model.tflite"],
                 metrics={"accuracy": 0.9}, wall_seconds=1.23456)
    record = read_record(tmp_path)
    assert record["outputs"][0]["path"] == "model.tflite"
    assert record["outputs"][0]["bytes"] == 15
    assert "gzip_bytes" in record["outputs"][0]
    assert record["wall_seconds"] == 1.235
    assert record["versions"]["numpy"]
    assert record["machine"]["cores"] >= 1
    assert oct((tmp_path / "record.json").stat().st_mode & 0o044) != "0o0"


def test_read_record_changed_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\nb\n")
    write_record(tmp_path, stage="train", config={}, inputs=[], outputs=[tmp_path / "labels.txt"])
    (tmp_path / "labels.txt").write_text("a\nc\n")
    with pytest.raises(ArtifactError, match=r"changed since .* \(sha256 differs\)"):
        read_record(tmp_path)


def test_read_record_missing_or_corrupt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not an mdx stage folder"):
        read_record(tmp_path)
    (tmp_path / "record.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_record(tmp_path)
    assert json.loads('{"ok": 1}')  # the JSON module itself is fine
