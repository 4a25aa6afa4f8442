"""Malformed folder-per-class data through the harness (`mdx evaluate`, `python -m runtime evaluate`).

`mdx train` meets the same folders in test_stages_tf.py (it also checks that splits agree).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import assert_fails, golden, mdx, python_m_runtime


def _empty_class(data: Path) -> None:
    shutil.rmtree(data / "PNEUMONIA")
    (data / "PNEUMONIA").mkdir()


def _only_dicom(data: Path) -> None:
    for image in (data / "PNEUMONIA").iterdir():
        image.rename(image.with_suffix(".dcm"))


def _other_classes(data: Path) -> None:
    (data / "PNEUMONIA").rename(data / "COVID")


def _extra_class(data: Path) -> None:
    shutil.copytree(data / "NORMAL", data / "VIRAL")


FOLDER_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty_class_folder": (_empty_class, "PNEUMONIA: class folder holds no images"),
    "class_of_dicom_only": (_only_dicom, "PNEUMONIA: class folder holds no images"),
    "single_class": (lambda d: shutil.rmtree(d / "PNEUMONIA"), "found 1 class folder(s) ['NORMAL']; expected at least 2"),
    "classes_differ_from_model": (_other_classes,
                                  "class folders ['COVID', 'NORMAL'] differ from the model's classes ['NORMAL', 'PNEUMONIA']"),
    "extra_class_folder": (_extra_class, "class folders ['NORMAL', 'PNEUMONIA', 'VIRAL'] differ from the model's"),
    "missing_folder": (lambda d: shutil.rmtree(d), "data not found; expected a folder with one sub-folder per class"),
    "file_instead_of_folder": (lambda d: (shutil.rmtree(d), d.write_text("x")),
                               "expected a folder with one sub-folder per class, or an .npz file"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES), ids=list(FOLDER_CASES))
def test_mdx_evaluate_malformed_data_folder_exits_1_naming_it(case: str, xray_dir: Path, no_probe: None) -> None:
    spoil, says = FOLDER_CASES[case]
    spoil(xray_dir)
    assert_fails(mdx("evaluate", golden(), xray_dir, "--n-boot", "0"), 1, str(xray_dir), says)


def test_python_m_runtime_evaluate_empty_class_folder_exits_1_one_line(xray_dir: Path) -> None:
    _empty_class(xray_dir)
    assert_fails(python_m_runtime("evaluate", golden(), xray_dir), 1, "PNEUMONIA: class folder holds no images")
