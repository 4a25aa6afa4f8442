"""`mdx train`."""

from __future__ import annotations

from pathlib import Path

import typer

from mdx.cli.app import app, log
from mdx.cli.commands_audit import AUDIT_HELP, STRICT_AUDIT_HELP, audit_first
from mdx.train.config import KERMANY_PATIENT

DEFAULT_DATA = Path("data/chest_xray")


RECIPE_HELP = ("JSON or YAML recipe: TrainConfig's keys (a record.json's config) or these options' names; "
               "options given on the command line override it.")


def effective_config(ctx: typer.Context, recipe: Path | None):
    """The TrainConfig of the command's options, on top of the recipe file when there is one: an option
    overrides the file only when the user typed it (its default does not)."""
    from mdx.train.recipe import recipe_config, valid_keys

    keys = set(valid_keys())
    flags = {name: value for name, value in ctx.params.items() if name in keys}
    if recipe is None:
        return recipe_config(None, flags)
    typed = {name: value for name, value in flags.items()
             if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
    return recipe_config(recipe, typed)


def _is_chief() -> bool:
    """False on a multi-worker run's other workers (TF_CONFIG): only the chief audits, as only it saves."""
    import json
    import os

    try:
        spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        return True  # training reports the malformed TF_CONFIG
    task = spec.get("task") or {}
    if not task:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0
                                             and "chief" not in (spec.get("cluster") or {}))


@app.command("train")
def train_command(
    ctx: typer.Context,
    data_dir: Path = typer.Argument(DEFAULT_DATA, help="Folder with train/<class>/ and test/<class>/ (optional val/; Training/, Testing/, any case), or DATA/<class>/ to be split."),
    out: Path | None = typer.Option(None, "--out", help="Run folder; the model goes to OUT/train/. Default runs/<data name>."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT/train/."),
    config_file: Path | None = typer.Option(None, "--config", help=RECIPE_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run of the same options from its last complete epoch (else start; see docs/training.md)."),
    backbone: str = typer.Option("mobilenet_v2", help="mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large or efficientnet_b0."),
    weights: str = typer.Option("bundled", help="bundled (ImageNet .tflite in data/), imagenet (Keras download), none, or a .tflite/.keras/.h5 file."),
    head: str = typer.Option("gap", help="gap (GAP + Dense(128) + Dropout) or flatten (Flatten + Dense)."),
    input_size: int = typer.Option(224, help="Square input size in pixels."),
    alpha: float = typer.Option(1.0, help="Backbone width multiplier (the bundled weights are alpha 1.0)."),
    epochs_frozen: int = typer.Option(2, help="Epochs with the backbone frozen."),
    epochs_finetune: int | None = typer.Option(
        None, help="Epochs fine-tuning the top blocks (default: 3, or up to 12 to reach --min-finetune-steps)."),
    finetune_blocks: int = typer.Option(8, help="How many top backbone blocks fine-tune in phase 2."),
    min_finetune_steps: int = typer.Option(
        640, help="Phase 2's step budget when --epochs-finetune is not given: a small training split gets more epochs."),
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
    zoom: float = typer.Option(0.15),
    stretch: float = typer.Option(0.2, help="Scale x and y independently by 1 +/- this (changes the aspect ratio)."),
    shift: float = typer.Option(0.0, help="Move the image by up to this share of its side along x and y."),
    shear: float = typer.Option(0.1),
    rotation: float = typer.Option(10.0, help="Maximum rotation in degrees."),
    brightness: float = typer.Option(0.2),
    contrast: float = typer.Option(0.2),
    label_smoothing: float = typer.Option(0.1, help="Cross-entropy label smoothing."),
    dropout: float = typer.Option(0.3, help="Dropout rate before the classifier (gap head)."),
    patience: int = typer.Option(3, help="Early stopping patience on validation AUC (0 = train every epoch, keep the last)."),
    max_images_per_class: int = typer.Option(0, help="Use at most this many images per class and split (0 = all)."),
    strategy: str = typer.Option("default", help="default, mirrored or multiworker (tf.distribute; TF_CONFIG for workers)."),
    seed: int = typer.Option(0),
    audit: bool = typer.Option(True, "--audit/--no-audit", help=AUDIT_HELP),
    strict_audit: bool = typer.Option(False, "--strict-audit", help=STRICT_AUDIT_HELP),
) -> None:
    """Train a MobileNetV2 transfer-learning classifier on a folder-per-class data set."""
    config = effective_config(ctx, config_file)
    from mdx.train.fit import train

    run = out if out is not None else Path("runs") / data_dir.resolve().name
    audited = audit_first(data_dir, run, duplicate_distance=duplicate_distance, strict=strict_audit) \
        if audit and _is_chief() else None
    result = train(data_dir, config, run / "train", overwrite=overwrite, log=log, split_manifest=split_manifest,
                   resume=resume)
    if audited is not None:
        from mdx.train.audit import write_audit

        write_audit(*audited, run / "audit")
    if not result.saved:
        log(f"train: this worker is done in {result.wall_seconds:.0f} s; the chief saves {result.model_path}")
        return
    test = result.metrics.get("test")
    summary = (f"  test accuracy {test['accuracy']['value']:.3f}  AUC {test['auc']['value']:.3f}" if test else "")
    log(f"train: saved {result.model_path} in {result.wall_seconds:.0f} s{summary}")
