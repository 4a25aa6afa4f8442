"""Split folders as data sets spell them: train/test, the brain-MRI set's Training/Testing, validation, any case."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdx.errors import DataError
from mdx.train.data import load_splits, split_folders

MRI = Path(__file__).resolve().parents[1] / "fixtures" / "brain_tumor_mri_subset"
MRI_CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")


def test_split_folders_mri_layout_as_published_found() -> None:
    assert split_folders(MRI) == {"train": MRI / "Training", "test": MRI / "Testing"}


@pytest.mark.parametrize(("names", "expected"), [
    (("train", "test"), {"train": "train", "test": "test"}),
    (("TRAIN", "Validation", "Test"), {"train": "TRAIN", "val": "Validation", "test": "Test"}),
    (("training", "valid", "testing", "notes"), {"train": "training", "val": "valid", "test": "testing"}),
])
def test_split_folders_common_spellings_any_case(tmp_path: Path, names: tuple[str, ...], expected: dict[str, str]) -> None:
    for name in names:
        (tmp_path / name).mkdir()
    assert split_folders(tmp_path) == {split: tmp_path / name for split, name in expected.items()}


def test_split_folders_two_spellings_of_one_split_refused(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "Training").mkdir()
    with pytest.raises(DataError, match=r"\['Training', 'train'\] all name the train split; keep one"):
        split_folders(tmp_path)


def test_load_splits_mri_training_testing_read_with_four_classes() -> None:
    splits = load_splits(MRI, size=64, val_fraction=0.25, seed=0)
    assert tuple(splits.class_names) == MRI_CLASSES
    assert splits.test is not None and len(splits.test) == 16  # 4 per class in Testing/
    assert len(splits.train) + len(splits.val) == 16
    assert splits.train_dir == MRI / "Training"


def test_load_splits_no_train_folder_names_the_spellings(tmp_path: Path) -> None:
    (tmp_path / "Testing").mkdir()
    with pytest.raises(DataError, match=r"no train/ folder; expected DATA/train/<class>/\*\.jpg, one sub-folder per "
                                        r"class \(Training/ and any case are accepted too\)"):
        load_splits(tmp_path, size=64, val_fraction=0.25, seed=0)


def test_load_splits_class_missing_from_test_named_with_the_fix(tmp_path: Path) -> None:
    import shutil

    for split in ("Training", "Testing"):
        shutil.copytree(MRI / split, tmp_path / split)
    shutil.rmtree(tmp_path / "Testing" / "no_tumor")
    with pytest.raises(DataError, match=r"Testing: class folders \['glioma_tumor', 'meningioma_tumor', 'pituitary_tumor'\] "
                                        r"differ from Training/'s .*; every split needs the same class folders: add .*Testing/no_tumor/ with images, or remove "
                                        r"that class from Training/"):
        load_splits(tmp_path, size=64, val_fraction=0.25, seed=0)


def test_load_splits_class_of_one_image_names_its_folder_and_the_fix(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(MRI / "Training", tmp_path / "Training")
    for extra in sorted((tmp_path / "Training" / "no_tumor").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DataError, match=r"Training/no_tumor: class 'no_tumor' has 1 image\(s\); at least 2 are needed to "
                                        r"carve a validation split: add images, or give a val/ folder"):
        load_splits(tmp_path, size=64, val_fraction=0.25, seed=0)
