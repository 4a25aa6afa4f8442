"""Shared fixtures: the golden models (tests/fixtures/golden, made by make_golden_models.py) and a
handful of real chest X-rays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
XRAYS = ROOT / "data" / "chest_xray" / "test"
BINARY_MODELS = ("binary_fp32", "binary_logits", "binary_int8", "binary_uint8", "binary_swapped")
ALL_MODELS = BINARY_MODELS + ("three_fp32", "three_int8")
# The golden inputs' labels: alternating, so both classes are present and AUC is defined.
GOLDEN_LABELS = np.array([0, 1, 0, 1, 0, 1, 0, 1])


@pytest.fixture(scope="session")
def model_path():
    """model_path("binary_int8") -> the golden model file."""
    return lambda name: GOLDEN / name / "model.tflite"


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "golden.npz") as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture
def golden_npz(tmp_path: Path, golden: dict[str, np.ndarray]) -> Path:
    """An evaluation .npz of the 8 golden inputs with GOLDEN_LABELS."""
    path = tmp_path / "golden_eval.npz"
    np.savez(path, inputs=golden["inputs"], labels=GOLDEN_LABELS)
    return path


@pytest.fixture
def xray_folder(tmp_path: Path) -> Path:
    """3 NORMAL + 3 PNEUMONIA real test X-rays in a folder-per-class tree."""
    root = tmp_path / "xrays"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
        for image in sorted((XRAYS / name).iterdir())[:3]:
            shutil.copy(image, root / name / image.name)
    return root


@pytest.fixture
def variant(tmp_path: Path):
    """Copy a golden variant folder into tmp_path (to edit its sidecars); returns the model path."""

    def make(name: str, *, labels: bool = True, record: bool = True) -> Path:
        folder = tmp_path / f"variant_{name}"
        folder.mkdir()
        shutil.copy(GOLDEN / name / "model.tflite", folder / "model.tflite")
        if labels:
            shutil.copy(GOLDEN / name / "labels.txt", folder / "labels.txt")
        if record:
            shutil.copy(GOLDEN / name / "record.json", folder / "record.json")
        return folder / "model.tflite"

    return make


@pytest.fixture
def add_to_record():
    """add_to_record(model, threshold=0.44, ...) adds keys to the record.json beside a `variant` copy; returns its path."""

    def add(model: Path, **keys) -> Path:
        path = model.parent / "record.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **keys}))
        return path

    return add
