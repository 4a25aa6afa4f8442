"""The training configuration: one frozen dataclass, validated on creation, stored in every record."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mdx.config import ConfigBase, require

BACKBONES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")
HEADS = ("gap", "flatten")
STRATEGIES = ("default", "mirrored", "multiworker")
# the fine-tuning learning rate: held, or decayed along a half cosine to 0 over the phase's epochs
LR_SCHEDULES = ("constant", "cosine")
# "bundled" = the ImageNet MobileNetV2 .tflite carried in data/; "imagenet" = Keras' own download.
WEIGHT_CHOICES = ("bundled", "imagenet", "none")
# Patient IDs in the Kermany chest X-ray file names (person123_bacteria_4.jpeg, IM-0115-0001.jpeg,
# NORMAL2-IM-1419-0001.jpeg); a file name without a match is a group of its own.
KERMANY_PATIENT = r"person\d+|(?:NORMAL2-)?IM-\d+"


@dataclass(frozen=True)
class Augmentation(ConfigBase):
    """Random training-time transforms as in the seed papers; 0 disables one."""

    horizontal_flip: bool = True
    zoom: float = 0.15
    # x and y scaled independently by 1 +/- stretch, as Keras' ImageDataGenerator zooms: the Kermany
    # images were resized to squares without keeping their aspect ratio, which should not be a cue.
    stretch: float = 0.2
    # content moved by up to shift x the image side along x and y, as ImageDataGenerator's width/height shift
    shift: float = 0.0
    shear: float = 0.1
    rotation_degrees: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2

    def __post_init__(self) -> None:
        for name in ("zoom", "stretch", "shift", "shear", "brightness", "contrast"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"augmentation {name}={value} must be in [0, 1)")
        require(0.0 <= self.rotation_degrees <= 180.0, f"augmentation rotation_degrees={self.rotation_degrees} must be in [0, 180]")


# phase 2's epochs when the recipe gives none and the step budget asks for no more (a large data set)
FINETUNE_EPOCHS = 3
# the step budget never stretches phase 2 past this many epochs
MAX_BUDGET_EPOCHS = 12


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Everything that decides a training run. `weights` is one of WEIGHT_CHOICES or a file path."""

    input_size: int = 224
    alpha: float = 1.0
    backbone: str = "mobilenet_v2"
    weights: str = "bundled"
    head: str = "gap"
    dense_units: int = 128
    dropout: float = 0.3
    batch_size: int = 32
    epochs_frozen: int = 2
    # None: FINETUNE_EPOCHS, or more to reach min_finetune_steps; a number: exactly that many epochs
    epochs_finetune: int | None = None
    finetune_blocks: int = 8
    lr_frozen: float = 1e-3
    lr_finetune: float = 1e-4
    lr_schedule: str = "constant"
    # phase 2's step budget when epochs_finetune is None: ceil(budget / steps per epoch) epochs, from
    # FINETUNE_EPOCHS to MAX_BUDGET_EPOCHS, so that a small data set gets as many updates as a large one.
    # 640 with 8 blocks, label smoothing 0.1 and the stronger augmentation: chosen on validation by
    # benchmarks/recipe_sweep.py on three data sets (benchmarks/README.md "recipe_sweep.py")
    min_finetune_steps: int = 640
    # the model kept is the mean of the weights of the last N fine-tuning epochs (0 = the last epoch's)
    average_epochs: int = 0
    val_fraction: float = 0.1
    # the share of a DATA/<class>/ tree (no split folders) held out as the test split
    test_fraction: float = 0.2
    # images whose 64-bit pHash differs in at most this many bits stay on one side of a split (-1: off);
    # 2 measured in benchmarks/near_duplicates.py
    duplicate_distance: int = 2
    val_group_pattern: str = KERMANY_PATIENT
    class_weights: bool = True
    label_smoothing: float = 0.1
    # epochs without a better validation AUC before a phase stops and restores its best epoch; 0 trains
    # every epoch and keeps the last, for a validation AUC too saturated (0.99) to pick an epoch by
    patience: int = 3
    seed: int = 0
    max_images_per_class: int = 0
    strategy: str = "default"
    augmentation: Augmentation = Augmentation()
    bootstrap: int = 1000
    # the frozen phase trains the head on backbone features computed once from the un-augmented images
    # (mdx.train.frozen_features; the "gap" head only): 2 frozen epochs cost one inference pass. Off by
    # default: 1.2-1.5x faster, but one seed on 540 X-rays scored 0.848 / AUC 0.924 on test against
    # 0.891 / 0.962 (benchmarks/results/vm-avx2/train_speed_accuracy.json)
    frozen_features: bool = False

    @classmethod
    def from_record(cls, stored: dict) -> TrainConfig:
        """The config a record stored, read so that it trains what that run trained: a field added since
        takes the value of the code of then (image-by-image validation before val_group_pattern, no stretch
        before stretch; fields whose default is "off", such as shift and frozen_features, need no rule)."""
        replayed = {"val_group_pattern": "", "duplicate_distance": -1, "min_finetune_steps": 0,
                    **{k: v for k, v in stored.items() if k != "data_dir"}}
        if isinstance(replayed.get("augmentation"), dict):
            replayed["augmentation"] = {"stretch": 0.0, **replayed["augmentation"]}
        return cls.from_dict(replayed)

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):
            object.__setattr__(self, "augmentation", Augmentation.from_dict(self.augmentation))
        require(32 <= self.input_size <= 1024, f"input_size={self.input_size} must be from 32 to 1024")
        require(self.backbone in BACKBONES, f"backbone {self.backbone!r} is not one of {list(BACKBONES)}")
        require(self.head in HEADS, f"head {self.head!r} is not one of {list(HEADS)}")
        require(self.lr_schedule in LR_SCHEDULES, f"lr_schedule {self.lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
        require(self.patience >= 0, f"patience={self.patience} must not be negative (0 = no early stopping)")
        require(self.epochs_finetune is None or (isinstance(self.epochs_finetune, int) and self.epochs_finetune >= 0),
                f"epochs_finetune={self.epochs_finetune!r} must be a whole number, 0 or more (or null: from the step budget)")
        least_finetune = FINETUNE_EPOCHS if self.epochs_finetune is None else self.epochs_finetune
        require(0 <= self.average_epochs <= least_finetune,
                f"average_epochs={self.average_epochs} must be from 0 to epochs_finetune={least_finetune}")
        require(not self.average_epochs or self.patience == 0,
                f"average_epochs={self.average_epochs} averages the last epochs of a fixed schedule; set patience 0 "
                f"(now {self.patience}), since early stopping would restore one epoch instead")
        require(not self.average_epochs or self.weights != "none",
                "average_epochs needs pretrained weights: with weights 'none' BatchNorm statistics train, and an "
                "average of weights would not match them")
        require(self.strategy in STRATEGIES, f"strategy {self.strategy!r} is not one of {list(STRATEGIES)}")
        require(0.0 < self.alpha <= 1.4, f"alpha={self.alpha} must be in (0, 1.4]")
        require(self.batch_size >= 1, f"batch_size={self.batch_size} must be at least 1")
        require(self.epochs_frozen >= 0, "epochs must not be negative")
        require(self.epochs_frozen + least_finetune >= 1, "train at least one epoch (epochs_frozen + epochs_finetune >= 1)")
        require(0.0 < self.val_fraction < 0.5, f"val_fraction={self.val_fraction} must be in (0, 0.5)")
        require(0.0 < self.test_fraction < 0.5, f"test_fraction={self.test_fraction} must be in (0, 0.5)")
        require(isinstance(self.duplicate_distance, int) and -1 <= self.duplicate_distance <= 32,
                f"duplicate_distance={self.duplicate_distance!r} must be an integer from -1 (off) to 32")
        require(isinstance(self.val_group_pattern, str),
                f"val_group_pattern {self.val_group_pattern!r} must be a string (a regular expression, or '' to split image by image)")
        try:
            re.compile(self.val_group_pattern)
        except re.error as exc:
            require(False, f"val_group_pattern {self.val_group_pattern!r} is not a regular expression ({exc}); pass '' to split image by image")
        require(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        require(isinstance(self.min_finetune_steps, int) and self.min_finetune_steps >= 0,
                f"min_finetune_steps={self.min_finetune_steps!r} must be a whole number of steps, 0 or more (0 = off)")
        require(self.finetune_blocks >= 0, f"finetune_blocks={self.finetune_blocks} must not be negative")
        require(self.max_images_per_class >= 0, "max_images_per_class must not be negative (0 = all)")
        require(self.bootstrap >= 0, "bootstrap must not be negative")
        require(isinstance(self.frozen_features, bool), f"frozen_features={self.frozen_features!r} must be true or false")
        require(0.0 <= self.label_smoothing < 0.5, f"label_smoothing={self.label_smoothing} must be in [0, 0.5)")


def finetune_epochs(config: TrainConfig, steps_per_epoch: int) -> int:
    """Phase 2's epoch count for a training split of `steps_per_epoch` batches: `epochs_finetune` when it is
    given, else enough epochs for `min_finetune_steps`, from FINETUNE_EPOCHS to MAX_BUDGET_EPOCHS."""
    if config.epochs_finetune is not None:
        return config.epochs_finetune
    if not config.min_finetune_steps or steps_per_epoch < 1:
        return FINETUNE_EPOCHS
    needed = -(-config.min_finetune_steps // steps_per_epoch)
    return max(FINETUNE_EPOCHS, min(needed, MAX_BUDGET_EPOCHS))
