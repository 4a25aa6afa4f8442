"""`mdx check` and `mdx predict` with a .keras model, run by mdx.train.predict_keras (needs TensorFlow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdx.cli import app

pytestmark = pytest.mark.tf
SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "make_golden_models.py"


@pytest.fixture(scope="module")
def keras_folder(tmp_path_factory: pytest.TempPathFactory, model_path, load_script) -> Path:
    """binary_fp32's Keras original (same seeded build as the golden script) saved as a stage folder."""
    script = load_script(SCRIPT)
    folder = tmp_path_factory.mktemp("keras_stage")
    script.build(2, softmax=True).save(folder / "model.keras")
    for name in ("labels.txt", "record.json"):
        shutil.copy(model_path("binary_fp32").parent / name, folder / name)
    return folder


def test_mdx_check_int8_against_keras_reference_passes(keras_folder: Path, model_path, golden_npz) -> None:
    result = CliRunner().invoke(app, ["check", str(model_path("binary_int8")), str(golden_npz),
                                      "--reference", str(keras_folder / "model.keras"), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    assert "parity passed on 8 samples (agreement 100.00%)" in result.output


def test_mdx_check_swapped_against_keras_stage_folder_exits_3(keras_folder: Path, model_path, golden_npz) -> None:
    result = CliRunner().invoke(app, ["check", str(model_path("binary_swapped")), str(golden_npz),
                                      "--reference", str(keras_folder), "--n-boot", "0"])
    assert result.exit_code == 3, result.output
    assert "error: parity failed on 8 samples: " in result.output and "agreement" in result.output


def test_mdx_predict_keras_model_uses_its_record(keras_folder: Path, xray_folder: Path) -> None:
    image = next((xray_folder / "NORMAL").iterdir())
    result = CliRunner().invoke(app, ["predict", str(keras_folder / "model.keras"), str(image), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "PNEUMONIA 0." in result.output and "NORMAL 0." in result.output
