"""Bad inputs and unwritable outputs for the stages that need TensorFlow: `mdx convert` and `mdx train`.

Every case exits 1 or 2 with one line naming the file or value and the fix, and leaves no variant or
stage folder (complete-looking or staging) behind. Convert cases use a micro Keras model (about a
second per conversion); train cases fail before fitting, or fit nothing where the write is the point.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import BAD_IMAGES, TINY, assert_fails, copy_xrays, leftovers, mdx

pytestmark = pytest.mark.tf


def _convert_args(micro: dict[str, Path], out: Path, *extra: object) -> list[object]:
    return [micro["model"], "--size", "16", "--mean", "127.5", "--std", "127.5", "--labels", micro["labels"],
            "--out", out, *extra]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    assert not leftovers(out.parent)


# case -> (extra convert args built in tmp, exit code, fragments of the error line)
ConvertCase = Callable[[Path, dict[str, Path]], list[object]]


def _three_labels(tmp: Path, micro: dict[str, Path]) -> list[object]:
    (tmp / "three.txt").write_text("BACTERIAL\nNORMAL\nVIRAL\n")
    return ["--labels", tmp / "three.txt"]


def _calibration_other_classes(tmp: Path, micro: dict[str, Path]) -> list[object]:
    folder = copy_xrays(tmp / "calib", classes=("NORMAL", "PNEUMONIA"))
    (folder / "PNEUMONIA").rename(folder / "COVID")
    return ["--int8", "--calibration-dir", folder]


def _calibration_images_beside_class_folders(tmp: Path, micro: dict[str, Path]) -> list[object]:
    folder = copy_xrays(tmp / "calib", classes=("NORMAL", "PNEUMONIA"))
    stray = next((folder / "NORMAL").iterdir())
    stray.rename(folder / stray.name)  # one image at the top: flat (site) folder or class tree?
    return ["--int8", "--calibration-dir", folder]


def _not_keras(tmp: Path, micro: dict[str, Path]) -> list[object]:
    (tmp / "fake.keras").write_bytes(b"PK\x03\x04 not really a zip")
    return ["--labels", micro["labels"], "--size", "16"]  # the model argument is swapped below


CONVERT_CASES: dict[str, tuple[ConvertCase, int, tuple[str, ...]]] = {
    "calibration_not_given": (lambda t, m: ["--int8"], 2, ("--calibration-dir",)),
    "calibration_dir_missing": (lambda t, m: ["--int8", "--calibration-dir", t / "nowhere"], 1,
                                ("calibration folder", "nowhere not found", "pass --calibration-dir DIR")),
    "calibration_dir_empty": (lambda t, m: ["--int8", "--calibration-dir", (t / "empty").mkdir() or t / "empty"], 1,
                              ("holds no images", "pass --calibration-dir DIR")),
    "calibration_classes_differ": (_calibration_other_classes, 1, ("calib: class folders ['COVID', 'NORMAL'] differ from",)),
    "calibration_images_beside_class_folders": (_calibration_images_beside_class_folders, 1,
                                                ("calib holds both images and sub-folders", "use one flat folder")),
    "input_size_does_not_fit": (lambda t, m: ["--size", "24"], 1,
                                ("micro.keras input shape (None, 16, 16, 3) does not take (24, 24, 3) images",)),
    "labels_do_not_fit_outputs": (_three_labels, 1, ("output shape (None, 2) is not (batch, 3)",)),
    "op_version_target_lacks": (lambda t, m: ["--dynamic", "--target", "tflite-runtime-2.14"], 1,
                                ("dynamic would not load on tflite-runtime-2.14", "FULLY_CONNECTED v12",
                                 "(up to v10)")),
    "not_a_keras_model": (_not_keras, 1, ("fake.keras: cannot load the Keras model",)),
}


@pytest.mark.parametrize("case", list(CONVERT_CASES), ids=list(CONVERT_CASES))
def test_mdx_convert_bad_input_exits_one_line_writes_nothing(case: str, tmp_path: Path,
                                                             micro_model: dict[str, Path]) -> None:
    make, code, says = CONVERT_CASES[case]
    out = tmp_path / "convert"
    args = _convert_args(micro_model, out, *make(tmp_path, micro_model))
    if case == "not_a_keras_model":
        args[0] = tmp_path / "fake.keras"
    assert_fails(mdx("convert", *args), code, *says)
    _assert_nothing_written(out)


def _plant_bad_images(folder: Path) -> list[Path]:
    """Every unusable image kind of BAD_IMAGES, plus a text file, into `folder`; returns their paths."""
    planted = []
    for bad in BAD_IMAGES.values():
        (folder / bad.name).write_bytes(bad.content())
        planted.append(folder / bad.name)
    (folder / "notes.txt").write_text("not data")
    return [*planted, folder / "notes.txt"]


def test_mdx_convert_bad_calibration_images_skipped_with_warning_each(tmp_path: Path,
                                                                    micro_model: dict[str, Path]) -> None:
    calibration = copy_xrays(tmp_path / "calib", per_class=2)
    planted = _plant_bad_images(calibration / "NORMAL")
    out = tmp_path / "convert"
    result = mdx("convert", *_convert_args(micro_model, out, "--int8", "--calibration-dir", calibration))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: skipped calibration image")]
    for path in planted:
        assert any(str(path) in line for line in warnings), (path, result.output)
    assert (out / "int8" / "record.json").is_file()


def test_mdx_convert_out_read_only_exits_1_writes_nothing(read_only_dir: Path, micro_model: dict[str, Path]) -> None:
    out = read_only_dir / "convert"
    assert_fails(mdx("convert", *_convert_args(micro_model, out)), 1, f"{out / 'fp32'}: cannot write",
                 "choose another --out")
    assert not list(read_only_dir.iterdir())


def test_mdx_convert_full_disk_exits_1_no_variant_folder(full_disk: Path, micro_model: dict[str, Path]) -> None:
    out = full_disk / "convert"
    line = assert_fails(mdx("convert", *_convert_args(micro_model, out)), 1, "No space left on device",
                        "free space on that disk or choose another --out")
    assert str(out / "fp32") in line and ".partial" not in line  # names the folder the user asked for
    assert not (out / "fp32").exists() and not leftovers(full_disk)


# ---- train -----------------------------------------------------------------------------------------------

TRAIN_FLAGS = ("--input-size", TINY["input_size"], "--alpha", TINY["alpha"], "--weights", TINY["weights"],
               "--epochs-frozen", TINY["epochs_frozen"], "--epochs-finetune", TINY["epochs_finetune"],
               "--batch-size", TINY["batch_size"], "--val-fraction", TINY["val_fraction"])


def _data(tmp: Path, per_class: int = 2) -> Path:
    data = tmp / "data"
    copy_xrays(data / "train", per_class=per_class)
    copy_xrays(data / "test", per_class=1)
    return data


def _empty_class(data: Path) -> None:
    shutil.rmtree(data / "train" / "PNEUMONIA")
    (data / "train" / "PNEUMONIA").mkdir()


def _single_class(data: Path) -> None:
    shutil.rmtree(data / "train" / "PNEUMONIA")


def _splits_differ(data: Path) -> None:
    (data / "test" / "PNEUMONIA").rename(data / "test" / "COVID")


def _one_image_class(data: Path) -> None:
    for extra in sorted((data / "train" / "PNEUMONIA").iterdir())[1:]:
        extra.unlink()


def _only_dicom(data: Path) -> None:
    for image in (data / "train" / "NORMAL").iterdir():
        image.rename(image.with_suffix(".dcm"))


TRAIN_CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "no_train_split": (lambda d: shutil.rmtree(d / "train"), ("no train/ folder; expected DATA/train/<class>/",)),
    "empty_class_folder": (_empty_class, ("train/PNEUMONIA: class folder holds no images",)),
    "single_class": (_single_class, ("found 1 class folder(s) ['NORMAL']; expected at least 2",)),
    "class_folders_differ_between_splits": (_splits_differ, ("class folders ['COVID', 'NORMAL'] differ from train/'s",
                                                             "every split needs the same class folders")),
    "class_with_one_image": (_one_image_class, ("'PNEUMONIA' has 1 image(s); at least 2 are needed",)),
    "class_of_dicom_only": (_only_dicom, ("train/NORMAL: class folder holds no images",)),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES), ids=list(TRAIN_CASES))
def test_mdx_train_bad_data_exits_1_one_line_no_run_folder(case: str, tmp_path: Path) -> None:
    data = _data(tmp_path)
    spoil, says = TRAIN_CASES[case]
    spoil(data)
    assert_fails(mdx("train", data, "--out", tmp_path / "run", *TRAIN_FLAGS), 1, *says)
    assert not (tmp_path / "run").exists()


def test_mdx_train_bad_images_skipped_with_warning_naming_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.train.fit._fit_phase", _fit_nothing)
    data = _data(tmp_path, per_class=3)
    planted = _plant_bad_images(data / "train" / "NORMAL")
    result = mdx("train", data, "--out", tmp_path / "run", *TRAIN_FLAGS)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: skipped")]
    for path in planted:
        assert sum(str(path) in line for line in warnings) == 1, (path, result.output)
    assert (tmp_path / "run" / "train" / "record.json").is_file()


def test_mdx_train_missing_data_folder_exits_1(tmp_path: Path) -> None:
    assert_fails(mdx("train", tmp_path / "nowhere", "--out", tmp_path / "run", *TRAIN_FLAGS), 1,
                 "nowhere: data folder not found")


def test_mdx_train_out_read_only_exits_1_before_training(read_only_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.train.fit._fit_phase", _no_fit_allowed)
    out = read_only_dir / "run"
    assert_fails(mdx("train", _data(tmp_path), "--out", out, *TRAIN_FLAGS), 1, f"{out / 'train'}: cannot write",
                 "choose another --out")
    assert not list(read_only_dir.iterdir())


def _no_fit_allowed(*args: object, **kwargs: object) -> None:
    raise AssertionError("training started although the output folder cannot be written")


def _fit_nothing(*args: object, **kwargs: object) -> dict[str, list[float]]:
    """Stands in for model.fit where only the writes after training are under test (saves ~10 s)."""
    return {k: [0.5] for k in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")}


def test_mdx_train_full_disk_exits_1_no_train_folder(full_disk: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mdx.train.fit._fit_phase", _fit_nothing)
    out = full_disk / "run"
    line = assert_fails(mdx("train", _data(tmp_path), "--out", out, *TRAIN_FLAGS), 1, "No space left on device",
                        "free space on that disk or choose another --out")
    assert str(out / "train") in line, line
    assert not (out / "train").exists() and not leftovers(full_disk)
