"""The train stage: `train(data_dir, config, out) -> TrainResult`.

Phase 1 fits the head on a frozen backbone; phase 2 fine-tunes the top blocks at a lower learning
rate. Early stopping on validation AUC restores the best weights. The decision threshold is chosen
on validation data (Youden's J with the one-SE rule, for two classes) and evaluated, never tuned, on test/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import ArtifactError
from mdx.records import staged_dir, write_record
from mdx.runtime.files import atomic_write_json, atomic_write_text
from mdx.runtime.images import ImageSet
from mdx.runtime.manifest import MANIFEST_NAME, write_manifest
from mdx.runtime.metrics import THRESHOLD_RULE, classification_metrics, roc_curve, youden_threshold
from mdx.train import frozen_features, plots
from mdx.train.config import TrainConfig
from mdx.train.data import class_weights, load_splits, manifest_rows
from mdx.train.keras_shim import keras, tf
from mdx.train.model import build_backbone, build_classifier, preprocessing_for, unfreeze_top_blocks
from mdx.train.pipeline_data import evaluation_dataset, training_dataset
from mdx.train.progress import EpochProgress
from mdx.train.weight_average import WeightAverage


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    model_path: Path
    metrics: dict[str, Any]
    threshold: float | None
    wall_seconds: float


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _predict(model: keras.Model, data: ImageSet, config: TrainConfig) -> np.ndarray:
    dataset = evaluation_dataset(data.images, data.labels, len(data.class_names), batch_size=64,
                                 preprocessing=preprocessing_for(config))
    return model.predict(dataset.map(lambda x, y: x), verbose=0).astype(np.float32)


def _fit_phase(model, strategy, learning_rate, train_ds, val_ds, epochs, initial_epoch, total, steps, weights, log, patience,
               label_smoothing, average_epochs=0):
    with strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
        )
    callbacks = [EpochProgress(total, steps, log)]
    if average_epochs:
        callbacks.append(WeightAverage(initial_epoch + epochs - average_epochs, log))
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                                       restore_best_weights=True))
    history = model.fit(train_ds, validation_data=val_ds, epochs=initial_epoch + epochs, initial_epoch=initial_epoch,
                        class_weight=weights, callbacks=callbacks, verbose=0)
    return history.history


def _learning_rate(config: TrainConfig, epochs: int, steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Phase 2's learning rate: `lr_finetune`, held or decayed to 0 along a half cosine over the phase."""
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr_finetune, decay_steps=epochs * steps)
    return config.lr_finetune


def train(
    data_dir: Path,
    config: TrainConfig,
    out: Path,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
    split_manifest: Path | None = None,
) -> TrainResult:
    """Train a classifier on `data_dir/train`, choose its threshold on validation, evaluate on `data_dir/test`.

    Writes `out/` with model.keras, labels.txt, preprocessing.json, metrics.json, history.json, plots,
    split_manifest.csv (every image's split; `split_manifest` reuses an earlier one) and record.json;
    nothing is left behind if it fails.

    Raises:
        DataError: the data folder is missing or malformed.
        ConfigError: weights cannot be found or loaded.
        ArtifactError: `out` exists and `overwrite` is false.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    if Path(out).exists() and not overwrite:  # refuse before minutes of decoding, as staged_dir would after
        raise ArtifactError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    splits = load_splits(data_dir, size=config.input_size, val_fraction=config.val_fraction, seed=config.seed,
                         max_images_per_class=config.max_images_per_class, group_pattern=config.val_group_pattern,
                         on_skip=lambda path, reason: log(f"warning: skipped {reason}"),
                         on_warning=lambda message: log(f"warning: {message}"), test_fraction=config.test_fraction,
                         split_manifest=split_manifest, duplicate_distance=config.duplicate_distance)
    with staged_dir(out, overwrite=overwrite) as staging:
        keras.utils.set_random_seed(config.seed)
        preprocessing = preprocessing_for(config)
        n_classes = len(splits.class_names)
        log(f"train: {len(splits.train)} train / {len(splits.val)} validation / "
            f"{len(splits.test) if splits.test else 0} test images, classes {list(splits.class_names)}")
        strategy = _strategy(config.strategy)
        with strategy.scope():
            backbone, weights_source = build_backbone(config, data_dir)
            backbone.trainable = False
            model = build_classifier(config, n_classes, backbone)
        batch = config.batch_size * strategy.num_replicas_in_sync
        train_ds = training_dataset(splits.train.images, splits.train.labels, n_classes, batch_size=batch,
                                    preprocessing=preprocessing, augmentation=config.augmentation, seed=config.seed)
        val_ds = evaluation_dataset(splits.val.images, splits.val.labels, n_classes, batch_size=64,
                                    preprocessing=preprocessing)
        weights = class_weights(splits.train.labels, n_classes) if config.class_weights else None
        steps = int(np.ceil(len(splits.train) / batch))
        total = config.epochs_frozen + config.epochs_finetune
        history: dict[str, list[float]] = {}
        phases = [(config.epochs_frozen, config.lr_frozen, None, 0),
                  (config.epochs_finetune, _learning_rate(config, config.epochs_finetune, steps), config.finetune_blocks,
                   config.average_epochs)]
        done = 0
        for epochs, learning_rate, blocks, average_epochs in phases:
            if epochs == 0:
                continue
            if blocks is not None:
                unfrozen = unfreeze_top_blocks(backbone, blocks)
                log(f"train: fine-tuning the top {blocks} blocks ({unfrozen} layers) at lr {config.lr_finetune:g}"
                    + (", cosine decay to 0" if config.lr_schedule == "cosine" else ""))
            fitted, phase_train, phase_val = model, train_ds, val_ds
            if blocks is None and frozen_features.supports(config):
                seconds = time.perf_counter()
                with strategy.scope():
                    fitted, phase_train, phase_val = frozen_features.frozen_inputs(
                        model, splits.train, splits.val, batch_size=batch, preprocessing=preprocessing, seed=config.seed)
                log(f"train: frozen phase on backbone features of the un-augmented images "
                    f"(computed in {time.perf_counter() - seconds:.0f} s)")
            phase = _fit_phase(fitted, strategy, learning_rate, phase_train, phase_val, epochs, done, total, steps,
                               weights, log, config.patience, config.label_smoothing, average_epochs)
            for key, values in phase.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            done += len(phase.get("loss", []))

        val_probs = _predict(model, splits.val, config)
        threshold = youden_threshold(splits.val.labels, val_probs[:, 1]) if n_classes == 2 else None
        metrics: dict[str, Any] = {
            "validation": classification_metrics(splits.val.labels, val_probs, splits.class_names, threshold=threshold,
                                                 n_boot=config.bootstrap, seed=config.seed),
        }
        curves = {}
        if splits.test is not None:
            test_probs = _predict(model, splits.test, config)
            metrics["test"] = classification_metrics(splits.test.labels, test_probs, splits.class_names,
                                                     threshold=threshold, n_boot=config.bootstrap, seed=config.seed)
            metrics["test_at_argmax"] = classification_metrics(splits.test.labels, test_probs, splits.class_names,
                                                               n_boot=0, seed=config.seed)
            if n_classes == 2:
                fpr, tpr, _ = roc_curve(splits.test.labels, test_probs[:, 1])
                curves["test"] = (fpr, tpr, metrics["test"]["auc"]["value"])
            plots.confusion_plot(metrics["test"]["confusion_matrix"], splits.class_names, staging / "confusion_matrix.png")

        model_path = staging / "model.keras"
        model.save(model_path)
        atomic_write_text(staging / "labels.txt", "\n".join(splits.class_names) + "\n")
        write_manifest(manifest_rows(splits, config.val_group_pattern, data_dir), staging / MANIFEST_NAME)
        atomic_write_json(staging / "preprocessing.json", preprocessing.to_dict())
        atomic_write_json(staging / "metrics.json", metrics)
        atomic_write_json(staging / "history.json", history)
        plots.training_curves(history, staging / "training_curves.png")
        if n_classes == 2:
            fpr, tpr, _ = roc_curve(splits.val.labels, val_probs[:, 1])
            curves["validation"] = (fpr, tpr, metrics["validation"]["auc"]["value"])
            plots.roc_plot(curves, staging / "roc.png")
        wall = time.perf_counter() - started
        outputs = sorted(p for p in staging.iterdir() if p.is_file())
        weights_inputs = [Path(weights_source)] if Path(weights_source).is_file() else []
        write_record(
            staging, stage="train", config={**config.to_dict(), "data_dir": str(data_dir)}, inputs=weights_inputs,
            outputs=outputs, metrics=metrics, wall_seconds=wall,
            extra={
                "preprocessing": preprocessing.to_dict(),
                "labels": list(splits.class_names),
                "threshold": threshold,
                "threshold_rule": THRESHOLD_RULE if threshold is not None else "argmax",
                "weights_source": weights_source,
                "data": {
                    "root": str(data_dir.resolve()),
                    "train_dir": str(splits.train_dir.resolve()),
                    "val_dir": str(splits.val_dir.resolve()) if splits.val_dir else None,
                    "test_dir": str(splits.test_dir.resolve()) if splits.test_dir else None,
                    "counts": {"train": len(splits.train), "val": len(splits.val),
                               "test": len(splits.test) if splits.test else 0},
                    # every image's split; later stages read it rather than split again
                    "manifest": MANIFEST_NAME,
                    "split_from": str(split_manifest) if split_manifest else None,
                },
                "epochs_run": done,
                "replicas": strategy.num_replicas_in_sync,
            },
        )
    final = Path(out)
    return TrainResult(folder=final, model_path=final / "model.keras", metrics=json.loads((final / "metrics.json").read_text()),
                       threshold=threshold, wall_seconds=wall)
