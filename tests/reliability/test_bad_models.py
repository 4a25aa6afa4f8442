"""Bad .tflite files and models that do not fit, through every command that loads a model.

Every model is probed in a subprocess before the command loads it (mdx evaluate/predict/bench/check
and `python -m runtime` alike), so even a model that segfaults the interpreter ends in one line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_support import (
    FIXTURES,
    GOLDEN,
    assert_fails,
    golden,
    mdx,
    python_m_runtime,
    real_jpeg_bytes,
    rng,
)

FP32 = golden("binary_fp32").read_bytes()


def _write(folder: Path, data: bytes, name: str = "model.tflite") -> Path:
    """A variant folder (model + the golden labels and record) holding `data` as its model."""
    folder.mkdir(parents=True, exist_ok=True)
    for sidecar in ("labels.txt", "record.json"):
        shutil.copy(GOLDEN / "binary_fp32" / sidecar, folder / sidecar)
    (folder / name).write_bytes(data)
    return folder / name


BAD_MODELS: dict[str, tuple[Callable[[], bytes], str]] = {
    "zero_bytes": (lambda: b"", "model file is empty (0 bytes); re-export or copy it again"),
    "truncated_to_6_bytes": (lambda: FP32[:6], "not a TFLite model"),
    "truncated_to_half": (lambda: FP32[: len(FP32) // 2], "cannot load this model"),
    "random_bytes": (lambda: rng(1).bytes(4096), "not a TFLite model (bytes 4..8 are"),
    "random_bytes_behind_header": (lambda: FP32[:8] + rng(2).bytes(4096), "cannot load this model"),
    "jpeg_named_tflite": (real_jpeg_bytes, "not a TFLite model"),
    "segfaults_interpreter": (lambda: (FIXTURES / "segv_allocate.tflite").read_bytes(),
                              "the interpreter crashed (SIGSEGV) loading or running this model"),
    "asks_for_12_gb": (lambda: (FIXTURES / "heap_bomb.tflite").read_bytes(), "cannot load this model"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS), ids=list(BAD_MODELS))
def test_mdx_bench_bad_model_exits_1_naming_file(case: str, tmp_path: Path) -> None:
    make, says = BAD_MODELS[case]
    model = _write(tmp_path / case, make())
    assert_fails(mdx("bench", model, "--runs", "2", "--warmup", "0"), 1, str(model), says)


def test_mdx_bench_folder_instead_of_model_points_inside(tmp_path: Path) -> None:
    assert_fails(mdx("bench", tmp_path), 1, f"{tmp_path}: is a folder; pass the .tflite file inside it")


# One crashing model through every entry point: each must probe before loading it in-process.
def _entry_points(model: Path, data: Path) -> dict[str, Callable[[], object]]:
    good = golden()
    return {
        "mdx_evaluate": lambda: mdx("evaluate", model, data, "--n-boot", "0"),
        "mdx_predict": lambda: mdx("predict", model, next((data / "NORMAL").iterdir())),
        "mdx_check_candidate": lambda: mdx("check", model, data, "--reference", good, "--n-boot", "0"),
        "mdx_check_reference": lambda: mdx("check", good, data, "--reference", model, "--n-boot", "0"),
        "runtime_evaluate": lambda: python_m_runtime("evaluate", model, data, "--n-boot", "0"),
        "runtime_bench": lambda: python_m_runtime("bench", model, "--runs", "2"),
    }


ENTRY_POINTS = list(_entry_points(Path(), Path()))


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_POINTS)
def test_entry_point_segfaulting_model_exits_1_one_line(entry: str, tmp_path: Path, xray_dir: Path) -> None:
    model = _write(tmp_path / "segv", (FIXTURES / "segv_allocate.tflite").read_bytes())
    result = _entry_points(model, xray_dir)[entry]()
    assert_fails(result, 1, str(model), "crashed (SIGSEGV)")  # type: ignore[arg-type]


# ---- models whose input does not fit the data --------------------------------------------------------

def test_mdx_evaluate_size_differs_from_model_input_exits_2_naming_size(xray_dir: Path, no_probe: None) -> None:
    assert_fails(mdx("evaluate", golden(), xray_dir, "--size", "32"), 2,
                 "preprocessing size 32", "input 16x16; pass --size 16")


def test_mdx_evaluate_npz_of_wrong_shape_exits_1_naming_shapes(tmp_path: Path, no_probe: None) -> None:
    data = tmp_path / "wrong.npz"
    np.savez(data, inputs=np.zeros((4, 32, 32, 3), np.float32), labels=np.array([0, 1, 0, 1]))
    assert_fails(mdx("evaluate", golden(), data, "--n-boot", "0"), 1,
                 "input shape (4, 32, 32, 3) does not match the model's input (N, 16, 16, 3)")


def test_mdx_check_reference_with_other_classes_exits_2_naming_both(xray_dir: Path, no_probe: None) -> None:
    result = mdx("check", golden(), xray_dir, "--reference", golden("three_fp32"), "--n-boot", "0")
    assert_fails(result, 2, "reference labels ['BACTERIAL', 'NORMAL', 'VIRAL']",
                 "differ from the candidate's ['NORMAL', 'PNEUMONIA']", "compare models of the same classes")
