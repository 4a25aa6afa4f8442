"""`mdx evaluate|predict|bench|check` through typer's CliRunner: exit codes and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from mdx.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_mdx_check_identical_exits_0(model_path, golden_npz, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = _run("check", model_path("binary_fp32"), golden_npz, "--reference", model_path("binary_fp32"),
                  "--n-boot", "0", "--json", out)
    assert result.exit_code == 0, result.output
    assert "parity passed on 8 samples" in result.output
    assert json.loads(out.read_text())["passed"] is True


def test_mdx_check_broken_candidate_exits_3_naming_tolerance(model_path, golden_npz, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = _run("check", model_path("binary_swapped"), golden_npz, "--reference", model_path("binary_fp32"),
                  "--n-boot", "0", "--json", out)
    assert result.exit_code == 3, result.output
    assert "error: parity failed on 8 samples: " in result.output
    assert "agreement 0 (limit 0.98, missed by 0.98)" in result.output
    assert "PNEUMONIA -> NORMAL: 8" in result.output
    assert json.loads(out.read_text())["passed"] is False  # the JSON is written before the exit


def test_mdx_check_int8_on_real_xrays_within_tolerances(model_path, xray_folder) -> None:
    result = _run("check", model_path("binary_int8"), xray_folder, "--reference", model_path("binary_fp32"),
                  "--n-boot", "0", "--max-auc-drop", "0.2")
    assert result.exit_code == 0, result.output


def test_mdx_check_tighter_accuracy_tolerance_is_named(model_path, golden_npz) -> None:
    result = _run("check", model_path("binary_swapped"), golden_npz, "--reference", model_path("binary_fp32"),
                  "--n-boot", "0", "--min-agreement", "0", "--max-auc-drop", "1")
    assert result.exit_code == 0, result.output  # accuracy is 50% for both: only agreement and AUC differ
    result = _run("check", model_path("binary_swapped"), golden_npz, "--reference", model_path("binary_fp32"),
                  "--n-boot", "0", "--min-agreement", "0", "--max-auc-drop", "0.01")
    assert result.exit_code == 3 and "AUC drop" in result.output


def test_mdx_evaluate_writes_json(model_path, golden_npz, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = _run("evaluate", model_path("three_int8"), golden_npz, "--n-boot", "20", "--json", out)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "BACTERIAL, NORMAL, VIRAL" in result.output
    assert json.loads(out.read_text())["model_info"]["labels"] == ["BACTERIAL", "NORMAL", "VIRAL"]


def test_mdx_evaluate_class_mismatch_exits_1_one_line(model_path, xray_folder) -> None:
    result = _run("evaluate", model_path("three_int8"), xray_folder)
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: ")
    assert "differ from the model's classes ['BACTERIAL', 'NORMAL', 'VIRAL']" in result.output
    assert "Traceback" not in result.output


def test_mdx_evaluate_missing_preprocessing_exits_2(variant, golden_npz, xray_folder) -> None:
    bare = variant("binary_fp32", record=False)
    result = _run("evaluate", bare, xray_folder)
    assert result.exit_code == 2
    assert "pass --preset tf|unit|imagenet or --mean --std" in result.output.replace("\n", "")
    ok = _run("evaluate", bare, xray_folder, "--size", "16", "--mean", "127.5", "--std", "127.5", "--n-boot", "0")
    assert ok.exit_code == 0, ok.output


def test_mdx_predict_tflite_top_k(model_path, xray_folder) -> None:
    images = sorted((xray_folder / "PNEUMONIA").iterdir())[:2]
    result = _run("predict", model_path("binary_uint8"), *images, "--top", "2")
    assert result.exit_code == 0, result.output
    assert "PNEUMONIA 0." in result.output and "NORMAL 0." in result.output


def test_mdx_predict_keras_without_predict_keras_module_says_so(tmp_path: Path, xray_folder, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mdx.train.predict_keras", None)  # as in a build without it
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    result = _run("predict", model, next((xray_folder / "NORMAL").iterdir()))
    assert result.exit_code == 1
    assert "error: running a .keras model needs mdx.train.predict_keras, which this build does not have" in result.output


def test_mdx_bench_json(model_path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = _run("bench", model_path("binary_int8"), "--threads", "1,2", "--runs", "5", "--warmup", "1",
                  "--no-xnnpack", "--json", out)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert [t["threads"] for t in saved["timings"]] == [1, 2] and saved["config"]["xnnpack"] is False


def test_mdx_bench_bad_threads_exits_2(model_path) -> None:
    result = _run("bench", model_path("binary_int8"), "--threads", "two")
    assert result.exit_code == 2
    assert "error: --threads 'two' is invalid" in result.output
