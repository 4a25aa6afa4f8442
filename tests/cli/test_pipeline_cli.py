"""`mdx pipeline` and `mdx train` end to end on a small real subset, and their one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.records import read_record

pytestmark = pytest.mark.tf
runner = CliRunner()

def _one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert "Traceback" not in output
    assert lines and lines[-1].startswith("error:") or any(l.startswith("error:") for l in lines)
    return " ".join(lines)


@pytest.fixture(scope="module")
def tiny_run(tiny_pipeline) -> tuple[Path, Path, str]:
    return tiny_pipeline  # tests/conftest.py: shared with test_report.py, built once per session


def test_pipeline_tiny_run_prints_table_with_fp32_and_int8(tiny_run) -> None:
    _, out, output = tiny_run
    assert "fp32" in output and "int8" in output, output
    assert re.search(r"int8\s.*0\.[0-9]{2}\s", output), output  # a size ratio below 1 next to int8
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["variant"]: row for row in summary["rows"]}
    assert set(rows) == {"fp32", "int8"}
    assert rows["int8"]["bytes"] < rows["fp32"]["bytes"]
    assert rows["fp32"]["p50_ms"] > 0 and 0.0 <= rows["int8"]["accuracy"] <= 1.0


def test_pipeline_tiny_run_every_stage_recorded_and_hash_checked(tiny_run) -> None:
    _, out, _ = tiny_run
    train = read_record(out / "train")
    assert train["stage"] == "train" and train["labels"] == ["NORMAL", "PNEUMONIA"]
    assert train["preprocessing"] == {"size": 32, "mean": [127.5] * 3, "std": [127.5] * 3}
    for variant in ("fp32", "int8"):
        record = read_record(out / "convert" / variant)
        assert record["outputs"][0]["sha256"]
        assert (out / "evaluate" / variant / "evaluation.json").is_file()
        assert (out / "bench" / f"{variant}.json").is_file()
    assert read_record(out)["stage"] == "pipeline"
    assert not list(out.rglob(".*partial*"))


def test_pipeline_tiny_run_evaluates_at_training_threshold_as_mdx_evaluate_does(tiny_run) -> None:
    data, out, _ = tiny_run
    threshold = read_record(out / "train")["threshold"]
    for variant in ("fp32", "int8"):
        assert read_record(out / "convert" / variant)["threshold"] == threshold
        evaluation = json.loads((out / "evaluate" / variant / "evaluation.json").read_text())
        assert evaluation["metrics"]["threshold"] == evaluation["decision"]["threshold"] == threshold
        assert evaluation["decision"]["source"].startswith("model metadata + ")
    model = out / "convert" / "int8" / "model.tflite"
    result = runner.invoke(app, ["evaluate", str(model), str(data / "test"), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    accuracy = json.loads((out / "summary.json").read_text())["rows"][1]["accuracy"]
    assert re.search(rf"accuracy\s+{accuracy:.4f}", result.output), (accuracy, result.output)
    assert f"threshold {threshold:g} (model metadata + " in result.output


def test_pipeline_existing_run_without_overwrite_refused(tiny_run) -> None:
    data, out, _ = tiny_run
    result = runner.invoke(app, ["pipeline", str(data), "--out", str(out)])
    assert result.exit_code == 1
    assert "already exists; pass --overwrite" in _one_line_error(result.output)


def test_train_missing_data_folder_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "nowhere: data folder not found" in _one_line_error(result.output)
    assert not (tmp_path / "run").exists()


def test_train_single_class_one_line_error(tmp_path: Path, xray_subset) -> None:
    data = tmp_path / "data"
    shutil.copytree(xray_subset(8), data)
    shutil.rmtree(data / "train" / "NORMAL")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "found 1 class folder(s) ['PNEUMONIA']; expected at least 2" in _one_line_error(result.output)


def test_train_classes_differ_between_splits_one_line_error(tmp_path: Path, xray_subset) -> None:
    data = tmp_path / "data"
    shutil.copytree(xray_subset(8), data)
    (data / "test" / "NORMAL").rename(data / "test" / "HEALTHY")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--weights", "none"])
    assert result.exit_code == 1
    assert "differ from train/'s ['NORMAL', 'PNEUMONIA']" in _one_line_error(result.output)


def test_train_bad_option_exit_code_two(tmp_path: Path, xray_subset) -> None:
    result = runner.invoke(app, ["train", str(xray_subset(8)), "--out", str(tmp_path / "r"), "--head", "mlp"])
    assert result.exit_code == 2
    assert "head 'mlp' is not one of" in _one_line_error(result.output)


def test_pipeline_mri_training_testing_layout_as_published_runs_end_to_end(tmp_path: Path, tiny_recipe) -> None:
    """The brain-MRI set as its authors ship it: Training/ and Testing/, four classes, mixed image sizes."""
    mri = Path(__file__).resolve().parents[1] / "fixtures" / "brain_tumor_mri_subset"
    config = tmp_path / "train.json"
    config.write_text(json.dumps(tiny_recipe))
    out = tmp_path / "mri"
    result = runner.invoke(app, ["pipeline", str(mri), "--out", str(out), "--train-config", str(config)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = read_record(out / "train")
    assert record["data"]["train_dir"].endswith("Training")
    evaluation = json.loads((out / "evaluate" / "int8" / "evaluation.json").read_text())
    assert evaluation["metrics"]["n"] == 16 and len(evaluation["metrics"]["classes"]) == 4


def test_pipeline_unsplit_class_folders_split_once_and_evaluated_on_manifest_test_rows(tmp_path: Path, tiny_recipe) -> None:
    """DATA/<class>/ as many sets are delivered: mdx splits it, writes the manifest, and every stage reads it."""
    mri = Path(__file__).resolve().parents[1] / "fixtures" / "brain_tumor_mri_subset"
    data = tmp_path / "data"
    for split in ("Training", "Testing"):
        for folder in (mri / split).iterdir():
            shutil.copytree(folder, data / folder.name, dirs_exist_ok=True)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({**tiny_recipe, "val_fraction": 0.2, "test_fraction": 0.25}))
    out = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", str(data), "--out", str(out), "--train-config", str(config)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = out / "train" / "split_manifest.csv"
    rows = [line.split(",") for line in manifest.read_text().splitlines()[1:]]
    test_rows = [row for row in rows if row[3] == "test"]
    assert len(rows) == 32
    # a quarter of each class, whole groups at a time (near-duplicates among these small scans join groups)
    assert {row[2] for row in test_rows} == {"glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"}
    assert 6 <= len(test_rows) <= 14
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row[4], set()).add(row[3])
    assert all(len(s) == 1 for s in sides.values())
    assert read_record(out / "train")["data"]["manifest"] == "split_manifest.csv"
    evaluation = json.loads((out / "evaluate" / "int8" / "evaluation.json").read_text())
    assert evaluation["metrics"]["n"] == len(test_rows)
    assert evaluation["data"]["kind"] == "manifest"
    calibration = read_record(out / "convert" / "int8")
    assert "split_manifest.csv" in json.dumps(calibration)  # int8 calibrated on the manifest's training rows
    # the Android export takes its golden images from the manifest's test rows (there is no test folder)
    android = shutil.copytree(Path(__file__).resolve().parents[2] / "android_demo", tmp_path / "android_demo",
                              ignore=shutil.ignore_patterns("build", ".gradle"))
    exported = runner.invoke(app, ["export", "android", str(out), "--variant", "int8", "--app", str(android)])
    assert exported.exit_code == 0, exported.output + repr(exported.exception)
    golden = json.loads((android / "app/src/test/resources/golden/golden.json").read_text())
    test_paths = {row[0] for row in test_rows}
    assert golden["images"] and {image["source"] for image in golden["images"]} <= test_paths
