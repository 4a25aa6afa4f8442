"""Preprocessing and labels: read beside the model, explicit arguments win, disagreements and absence refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdx.runtime.errors import ModelLoadError, UsageError
from mdx.runtime.model_info import check_class_count, load_model_info, read_labels_file
from mdx.runtime.preprocess import Preprocessing

GOLDEN_PREPROCESSING = Preprocessing(size=16, mean=(127.5,) * 3, std=(127.5,) * 3)


def test_load_model_info_sidecars_read_beside_model(model_path) -> None:
    info = load_model_info(model_path("three_int8"))
    assert info.labels == ("BACTERIAL", "NORMAL", "VIRAL")
    assert info.preprocessing == GOLDEN_PREPROCESSING
    assert "record.json + " in info.source and "labels.txt" in info.source


def test_load_model_info_explicit_arguments_win(model_path) -> None:
    mine = Preprocessing(size=16, mean=(0, 0, 0), std=(255, 255, 255))
    info = load_model_info(model_path("binary_fp32"), mine, ["healthy", "sick"])
    assert (info.preprocessing, info.labels) == (mine, ("healthy", "sick"))
    assert info.source == "labels: arguments; preprocessing: arguments"


def test_load_model_info_partial_override_keeps_the_rest(model_path) -> None:
    info = load_model_info(model_path("binary_fp32"), {"std": (1.0, 1.0, 1.0), "size": None})
    assert info.preprocessing == Preprocessing(size=16, mean=(127.5,) * 3, std=(1.0,) * 3)
    assert "with ['std'] from arguments" in info.source


def test_load_model_info_nothing_found_tells_which_options(variant) -> None:
    bare = variant("binary_fp32", labels=False, record=False)
    with pytest.raises(UsageError, match=r"no labels for .*model\.tflite: no labels\.txt or record\.json beside it; pass --labels"):
        load_model_info(bare)
    with pytest.raises(UsageError, match=r"no preprocessing for .*: neither its metadata nor a record\.json beside it records one; "
                       r"pass --preset tf\|unit\|imagenet or --size --mean --std"):
        load_model_info(bare, labels=["a", "b"])
    with pytest.raises(UsageError, match=r"or --mean \(e\.g\."):
        load_model_info(bare, {"size": 16, "std": (1, 1, 1)}, labels=["a", "b"])


def test_load_model_info_all_three_options_without_record_accepted(variant) -> None:
    bare = variant("binary_fp32", labels=False, record=False)
    info = load_model_info(bare, {"size": 16, "mean": (0, 0, 0), "std": (1, 1, 1)}, ["a", "b"])
    assert info.preprocessing == Preprocessing(16, (0, 0, 0), (1, 1, 1))


def test_load_model_info_npz_needs_no_preprocessing(variant) -> None:
    labels_only = variant("binary_fp32", record=False)
    info = load_model_info(labels_only, need_preprocessing=False)
    assert info.preprocessing is None and info.labels == ("NORMAL", "PNEUMONIA")


def test_load_model_info_labels_txt_and_record_disagree_refused(variant) -> None:
    path = variant("binary_fp32")
    (path.parent / "labels.txt").write_text("PNEUMONIA\nNORMAL\n")
    with pytest.raises(ModelLoadError, match=r"labels differ: .*record\.json says \['NORMAL', 'PNEUMONIA'\], .*labels\.txt says \['PNEUMONIA', 'NORMAL'\]; fix the stale one"):
        load_model_info(path)


def test_load_model_info_bad_record_json_refused(variant) -> None:
    path = variant("binary_fp32")
    (path.parent / "record.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"record\.json: not valid JSON .*; restore it or rerun the stage"):
        load_model_info(path)


def test_load_model_info_record_preprocessing_incomplete_refused(variant) -> None:
    path = variant("binary_fp32")
    (path.parent / "record.json").write_text(json.dumps({"preprocessing": {"size": 16}}))
    with pytest.raises(ModelLoadError, match=r"preprocessing lacks \['mean', 'std'\]; expected size, mean and std"):
        load_model_info(path)


def test_read_labels_file_blank_lines_dropped_duplicates_kept(tmp_path: Path) -> None:
    good = tmp_path / "labels.txt"
    good.write_text(" NORMAL \n\nPNEUMONIA\n\n")
    assert read_labels_file(good) == ("NORMAL", "PNEUMONIA")
    twice = tmp_path / "twice.txt"
    twice.write_text("A\nB\nA\n")
    assert read_labels_file(twice) == ("A", "B", "A")  # shown apart by load_model_info (test_foreign_models.py)
    with pytest.raises(UsageError, match=r"missing\.txt: labels file not found"):
        read_labels_file(tmp_path / "missing.txt")


def test_check_class_count_mismatch_names_both_counts(model_path) -> None:
    info = load_model_info(model_path("binary_fp32"))
    with pytest.raises(UsageError, match=r"outputs 3 classes but 2 labels were given \['NORMAL', 'PNEUMONIA'\] .*pass --labels with 3 labels"):
        check_class_count(info, 3, model_path("binary_fp32"))
