"""The explain stage of a run (mdx/explain_run.py) and its report section, on the golden models and real X-rays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mdx.errors import ArtifactError
from mdx.explain_run import ExplainRunConfig, explain_run, grid_picks
from mdx.report import ReportConfig, write_report

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
XRAYS = REPO / "data" / "chest_xray" / "test"
LABELS = ["NORMAL", "PNEUMONIA"]
PREPROCESSING = {"size": 16, "mean": [127.5] * 3, "std": [127.5] * 3}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder with convert/fp32, convert/int8 and evaluate/fp32, its test folder of 3 + 3 real X-rays)."""
    from mdx.records import write_record
    from mdx.runtime.evaluate import EvaluateConfig, evaluate

    base = tmp_path_factory.mktemp("explain_run")
    test = base / "test"
    for name in LABELS:
        (test / name).mkdir(parents=True)
        for image in sorted((XRAYS / name).iterdir())[:3]:
            shutil.copy(image, test / name / image.name)
    run = base / "run"
    for variant, golden in (("fp32", "binary_fp32"), ("int8", "binary_int8")):
        folder = run / "convert" / variant
        folder.mkdir(parents=True)
        shutil.copy(GOLDEN / golden / "model.tflite", folder / "model.tflite")
        (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
        write_record(folder, stage="convert", config={}, inputs=[], outputs=[folder / "model.tflite"],
                     extra={"variant": variant, "labels": LABELS, "preprocessing": PREPROCESSING})
        evaluate(folder / "model.tflite", test, EvaluateConfig(n_boot=0)).save(run / "evaluate" / variant)
    return run, test


def test_grid_picks_correct_and_wrong_per_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([0, 1, 0, 1, 1, 0])
    assert grid_picks(labels, predicted, 1) == [(0, True), (1, False), (3, True), (5, False)]


def test_explain_run_writes_grid_and_record_and_report_shows_them(run: tuple[Path, Path]) -> None:
    folder, test = run
    result = explain_run(folder, test, ExplainRunConfig(sample=4, per_outcome=1))
    record = json.loads((folder / "explain" / "record.json").read_text())
    explanation = record["metrics"]["explanation"]
    assert explanation["n"] == 4 and set(explanation["border_share"]["candidate_by_class"]) == set(LABELS)
    assert record["metrics"]["gradcam"] is None and record["gradcam_skipped"].endswith("train/model.keras not found: no Grad-CAM maps")
    assert result.grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(folder / "explain" / "maps.npz") as maps:
        assert maps["fp32"].shape == maps["int8"].shape == (len(record["grid"]), 16, 16)
    report = write_report(folder, ReportConfig(overwrite=True))
    markdown = report.markdown.read_text()
    assert "## Where the models look: occlusion maps of int8 against fp32 on 4 test images" in markdown
    assert f"| map Spearman, mean / median / min |  | {explanation['spearman']['mean']:.3f} / " in markdown
    assert "![Where the models look: FP32 beside INT8](report_figures/explain_grid.png)" in markdown
    assert 'id="explanation"' in report.html.read_text()
    assert "no Grad-CAM maps" in markdown and "Grad-CAM of the float Keras model" not in markdown


def test_explain_run_without_evaluation_one_line_error(run: tuple[Path, Path], tmp_path: Path) -> None:
    folder, test = run
    copy = tmp_path / "run"
    shutil.copytree(folder / "convert", copy / "convert")
    with pytest.raises(ArtifactError, match=r"evaluate/fp32/predictions.npz not found; run `mdx pipeline`"):
        explain_run(copy, test)


@pytest.mark.tf
def test_explain_run_with_keras_model_adds_gradcam_column_and_agreement(run: tuple[Path, Path], tmp_path: Path,
                                                                        load_script) -> None:
    """The golden binary_fp32 rebuilt as Keras (tests/fixtures/make_golden_models.py) stands for train/model.keras."""
    folder, test = run
    copy = tmp_path / "run"
    shutil.copytree(folder / "convert", copy / "convert")
    shutil.copytree(folder / "evaluate", copy / "evaluate")
    golden = load_script(REPO / "tests" / "fixtures" / "make_golden_models.py")
    model = golden.build(2, softmax=True)
    with np.load(GOLDEN / "golden.npz") as expected:  # the very model the fp32 .tflite was converted from
        np.testing.assert_allclose(model(expected["inputs"]).numpy(), expected["binary_fp32"], atol=1e-5)
    (copy / "train").mkdir()
    model.save(copy / "train" / "model.keras")
    result = explain_run(copy, test, ExplainRunConfig(sample=4, per_outcome=1))
    record = json.loads((copy / "explain" / "record.json").read_text())
    gradcam = record["metrics"]["gradcam"]
    assert result.gradcam == gradcam and record["gradcam_skipped"] is None
    assert gradcam["layer"] == "conv" and gradcam["n"] == len(record["grid"]) == len(gradcam["images"])
    assert [i["path"] for i in gradcam["images"]] == [g["path"] for g in record["grid"]]
    assert -1.0 <= gradcam["spearman"]["min"] <= gradcam["spearman"]["mean"] <= 1.0
    with np.load(copy / "explain" / "maps.npz") as maps:
        assert maps["gradcam"].shape == maps["fp32"].shape and float(maps["gradcam"].max()) <= 1.0
    from PIL import Image

    with Image.open(copy / "explain" / "grid.png") as grid:  # three overlays (256 px each) side by side
        assert grid.width == 3 * 256
    markdown = write_report(copy, ReportConfig(overwrite=True)).markdown.read_text()
    assert "![Where the models look: FP32 beside INT8 and Grad-CAM](report_figures/explain_grid.png)" in markdown
    assert "## Grad-CAM of the float Keras model (conv) against fp32's occlusion maps" in markdown
    assert f"| map Spearman, mean / median / min |  | {gradcam['spearman']['mean']:.3f} / " in markdown
