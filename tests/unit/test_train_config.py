"""TrainConfig validates on creation, round-trips to JSON, and rejects unknown keys (no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from mdx.errors import ConfigError
from mdx.train.config import Augmentation, TrainConfig


def test_train_config_round_trip_equal() -> None:
    config = TrainConfig(input_size=160, head="flatten", augmentation=Augmentation(zoom=0.2))
    again = TrainConfig.from_dict(json.loads(config.to_json()))
    assert again == config


def test_train_config_unknown_key_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown TrainConfig key\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backbone": "resnet50"}, "backbone 'resnet50' is not one of"),
        ({"head": "mlp"}, "head 'mlp' is not one of"),
        ({"val_fraction": 0.7}, r"val_fraction=0.7 must be in \(0, 0.5\)"),
        ({"epochs_frozen": 0, "epochs_finetune": 0}, "train at least one epoch"),
        ({"input_size": 8}, "input_size=8 must be from 32 to 1024"),
        ({"strategy": "tpu"}, "strategy 'tpu' is not one of"),
        ({"lr_schedule": "step"}, "lr_schedule 'step' is not one of"),
        ({"average_epochs": 4, "epochs_finetune": 3, "patience": 0}, "average_epochs=4 must be from 0 to epochs_finetune=3"),
        ({"average_epochs": 2}, "set patience 0 \\(now 3\\)"),
        ({"average_epochs": 2, "patience": 0, "weights": "none"}, "average_epochs needs pretrained weights"),
        ({"patience": -1}, r"patience=-1 must not be negative \(0 = no early stopping\)"),
        ({"epochs_finetune": -1}, r"epochs_finetune=-1 must be a whole number, 0 or more \(or null"),
        ({"average_epochs": 4, "patience": 0}, "average_epochs=4 must be from 0 to epochs_finetune=3"),
    ],
)
def test_train_config_bad_value_refused(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_augmentation_out_of_range_refused() -> None:
    with pytest.raises(ConfigError, match=r"augmentation zoom=1.5 must be in \[0, 1\)"):
        Augmentation(zoom=1.5)
    with pytest.raises(ConfigError, match=r"augmentation stretch=-0.1 must be in \[0, 1\)"):
        Augmentation(stretch=-0.1)


def test_augmentation_shift_out_of_range_is_refused_by_value() -> None:
    with pytest.raises(ConfigError, match=r"augmentation shift=1.5 must be in \[0, 1\)"):
        Augmentation(shift=1.5)


def test_augmentation_recorded_without_stretch_reads_the_default() -> None:
    # a record written before the field existed still loads (prune replays such records with stretch 0)
    assert Augmentation.from_dict({"zoom": 0.2}).stretch == Augmentation().stretch


def test_step_budget_raises_the_fine_tuning_epochs_of_a_small_split_only() -> None:
    from mdx.train.config import FINETUNE_EPOCHS, MAX_BUDGET_EPOCHS, finetune_epochs

    config = TrainConfig()  # epochs_finetune None: from the step budget of 640
    # 546 / 2,582 / 4,694 training images at batch 32: the small set hits the cap, the large one keeps 3
    assert [finetune_epochs(config, steps) for steps in (18, 81, 147, 400)] == [MAX_BUDGET_EPOCHS, 8, 5, FINETUNE_EPOCHS]
    assert finetune_epochs(TrainConfig(min_finetune_steps=0), 18) == FINETUNE_EPOCHS  # no budget
    assert finetune_epochs(TrainConfig(epochs_finetune=1), 18) == 1  # an epoch count given is kept
    assert finetune_epochs(TrainConfig(epochs_finetune=0), 18) == 0


@pytest.mark.parametrize("value", [-1, 2.5, "640"])
def test_step_budget_must_be_a_whole_number_of_steps(value) -> None:
    with pytest.raises(ConfigError, match="min_finetune_steps=.* must be a whole number of steps"):
        TrainConfig(min_finetune_steps=value)


def test_an_older_record_without_a_step_budget_replays_its_epochs() -> None:
    stored = {k: v for k, v in TrainConfig(min_finetune_steps=640).to_dict().items() if k != "min_finetune_steps"}
    assert TrainConfig.from_record(stored).min_finetune_steps == 0
