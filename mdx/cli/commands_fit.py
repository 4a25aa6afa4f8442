"""`mdx train`."""

from __future__ import annotations

from pathlib import Path

import typer

from mdx.cli.app import app, log
from mdx.train.config import KERMANY_PATIENT

DEFAULT_DATA = Path("data/chest_xray")


@app.command("train")
def train_command(
    data_dir: Path = typer.Argument(DEFAULT_DATA, help="Folder with train/<class>/ and test/<class>/ (optional val/; Training/, Testing/, any case), or DATA/<class>/ to be split."),
    out: Path | None = typer.Option(None, "--out", help="Run folder; the model goes to OUT/train/. Default runs/<data name>."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT/train/."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run of the same options from its last complete epoch (else start; see docs/training.md)."),
    backbone: str = typer.Option("mobilenet_v2", help="mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large or efficientnet_b0."),
    weights: str = typer.Option("bundled", help="bundled (ImageNet .tflite in data/), imagenet (Keras download), none, or a .tflite/.keras/.h5 file."),
    head: str = typer.Option("gap", help="gap (GAP + Dense(128) + Dropout) or flatten (Flatten + Dense)."),
    input_size: int = typer.Option(224, help="Square input size in pixels."),
    alpha: float = typer.Option(1.0, help="Backbone width multiplier (the bundled weights are alpha 1.0)."),
    epochs_frozen: int = typer.Option(2, help="Epochs with the backbone frozen."),
    epochs_finetune: int = typer.Option(3, help="Epochs fine-tuning the top blocks."),
    finetune_blocks: int = typer.Option(4, help="How many top backbone blocks fine-tune in phase 2."),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-3, help="Adam learning rate, phase 1."),
    lr_finetune: float = typer.Option(1e-4, help="Adam learning rate, phase 2."),
    average_epochs: int = typer.Option(0, help="Keep the mean of the weights of the last N fine-tuning epochs (needs --patience 0)."),
    lr_schedule: str = typer.Option("constant", help="Phase 2's learning rate: constant, or cosine (decayed to 0 over its epochs)."),
    val_fraction: float = typer.Option(0.1, help="Share of train/ carved out for validation when there is no val/."),
    test_fraction: float = typer.Option(0.2, help="Share held out for test when DATA is DATA/<class>/ with no split folders."),
    split_manifest: Path | None = typer.Option(None, help="Reuse the split of an earlier run (its train/split_manifest.csv)."),
    duplicate_distance: int = typer.Option(2, help="Images whose pHash differs in at most this many of 64 bits stay on one side of a split (-1: off)."),
    val_group_pattern: str = typer.Option(
        KERMANY_PATIENT, help="Regex naming a file's patient: validation takes whole patients ('' = image by image)."),
    class_weights: bool = typer.Option(True, "--class-weights/--no-class-weights", help="Weight classes by inverse frequency."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Random horizontal flips."),
    zoom: float = typer.Option(0.1),
    stretch: float = typer.Option(0.2, help="Scale x and y independently by 1 +/- this (changes the aspect ratio)."),
    shift: float = typer.Option(0.0, help="Move the image by up to this share of its side along x and y."),
    shear: float = typer.Option(0.1),
    rotation: float = typer.Option(10.0, help="Maximum rotation in degrees."),
    brightness: float = typer.Option(0.1),
    contrast: float = typer.Option(0.0),
    label_smoothing: float = typer.Option(0.0, help="Cross-entropy label smoothing."),
    dropout: float = typer.Option(0.3, help="Dropout rate before the classifier (gap head)."),
    patience: int = typer.Option(3, help="Early stopping patience on validation AUC (0 = train every epoch, keep the last)."),
    max_images_per_class: int = typer.Option(0, help="Use at most this many images per class and split (0 = all)."),
    strategy: str = typer.Option("default", help="default, mirrored or multiworker (tf.distribute; TF_CONFIG for workers)."),
    seed: int = typer.Option(0),
) -> None:
    """Train a MobileNetV2 transfer-learning classifier on a folder-per-class data set."""
    from mdx.train.config import Augmentation, TrainConfig

    config = TrainConfig(
        input_size=input_size, alpha=alpha, backbone=backbone, weights=weights, head=head, batch_size=batch_size,
        epochs_frozen=epochs_frozen, epochs_finetune=epochs_finetune, finetune_blocks=finetune_blocks, lr_frozen=lr,
        lr_finetune=lr_finetune, lr_schedule=lr_schedule, average_epochs=average_epochs, val_fraction=val_fraction, test_fraction=test_fraction, duplicate_distance=duplicate_distance, val_group_pattern=val_group_pattern, class_weights=class_weights, patience=patience, seed=seed,
        max_images_per_class=max_images_per_class, strategy=strategy, label_smoothing=label_smoothing, dropout=dropout,
        augmentation=Augmentation(horizontal_flip=flip, zoom=zoom, stretch=stretch, shift=shift, shear=shear, rotation_degrees=rotation,
                                  brightness=brightness, contrast=contrast),
    )
    from mdx.train.fit import train

    run = out if out is not None else Path("runs") / data_dir.resolve().name
    result = train(data_dir, config, run / "train", overwrite=overwrite, log=log, split_manifest=split_manifest,
                   resume=resume)
    if not result.saved:
        log(f"train: this worker is done in {result.wall_seconds:.0f} s; the chief saves {result.model_path}")
        return
    test = result.metrics.get("test")
    summary = (f"  test accuracy {test['accuracy']['value']:.3f}  AUC {test['auc']['value']:.3f}" if test else "")
    log(f"train: saved {result.model_path} in {result.wall_seconds:.0f} s{summary}")
