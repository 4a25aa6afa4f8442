"""The validation split carved from train/ takes whole patients, so validation cannot see a training patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mdx.errors import ConfigError
from mdx.runtime.images import ImageSet
from mdx.train.config import KERMANY_PATIENT, TrainConfig
from mdx.train.data import patient_groups, stratified_split

TRAIN = Path(__file__).resolve().parents[2] / "data" / "chest_xray" / "train"


def _kermany_names() -> ImageSet:
    """The real train/ file names (their patient IDs are what matters) over 1x1 placeholder pixels."""
    paths, labels = [], []
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        files = sorted(str(p) for p in (TRAIN / name).iterdir())
        paths += files
        labels += [label] * len(files)
    return ImageSet(np.zeros((len(paths), 1, 1, 3), np.uint8), np.asarray(labels), ("NORMAL", "PNEUMONIA"), tuple(paths))


def _patients(data: ImageSet) -> set[str]:
    return set(patient_groups(data.paths, KERMANY_PATIENT))


def test_kermany_names_map_to_patients() -> None:
    names = ("person1000_bacteria_2931.jpeg", "person1000_virus_1681.jpeg", "IM-0115-0001.jpeg", "NORMAL2-IM-1419-0001.jpeg",
             "scan.png")
    assert patient_groups(names, KERMANY_PATIENT) == ["person1000", "person1000", "IM-0115", "NORMAL2-IM-1419", "scan.png"]


def test_grouped_split_keeps_every_patient_on_one_side() -> None:
    data = _kermany_names()
    train, val = stratified_split(data, 0.1, seed=0, group_pattern=KERMANY_PATIENT)
    assert not _patients(train) & _patients(val)
    assert len(train) + len(val) == len(data)
    for label in (0, 1):
        held, total = int(np.sum(val.labels == label)), int(np.sum(data.labels == label))
        assert round(0.1 * total) <= held < 0.11 * total, (held, total)  # whole patients overshoot a little, never undershoot


def test_image_by_image_split_leaks_patients_into_validation() -> None:
    # what the grouped split prevents: the same split image by image puts ~ a hundred patients on both sides
    train, val = stratified_split(_kermany_names(), 0.1, seed=0, group_pattern="")
    assert len(_patients(train) & _patients(val)) > 50


def test_class_of_one_patient_is_split_image_by_image_with_a_warning() -> None:
    names = (*(f"person1_{i}.jpeg" for i in range(4)), *(f"person{i}_x.jpeg" for i in range(2, 6)))
    data = ImageSet(np.zeros((8, 1, 1, 3), np.uint8), np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), ("A", "B"), names)
    warnings: list[str] = []
    train, val = stratified_split(data, 0.25, seed=0, group_pattern=KERMANY_PATIENT, warn=warnings.append)
    assert warnings == [("class 'A': its 4 images cannot be split by patient under val_group_pattern "
                        f"{KERMANY_PATIENT!r} (one patient holds too many); split image by image")]
    assert np.bincount(val.labels).tolist() == [1, 1] and np.bincount(train.labels).tolist() == [3, 3]


def test_a_large_patient_never_empties_the_training_side() -> None:
    # person1 holds 9 of 10 images: taking it would leave one training image, so the quota comes from others
    names = (*(f"person1_{i}.jpeg" for i in range(9)), "person2_x.jpeg", *(f"person{i}_x.jpeg" for i in range(3, 7)))
    data = ImageSet(np.zeros((14, 1, 1, 3), np.uint8), np.asarray([0] * 10 + [1] * 4), ("A", "B"), names)
    for seed in range(5):
        train, val = stratified_split(data, 0.2, seed=seed, group_pattern=KERMANY_PATIENT)
        assert [Path(p).name for p in val.paths if "person1_" in p] == []
        assert np.sum(train.labels == 0) == 9


def test_bad_group_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"val_group_pattern '\(' is not a regular expression"):
        TrainConfig(val_group_pattern="(")


def test_group_pattern_that_is_not_a_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"val_group_pattern None must be a string"):
        TrainConfig.from_dict({"val_group_pattern": None})
