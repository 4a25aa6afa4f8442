"""The train stage: `train(data_dir, config, out) -> TrainResult`.

Phase 1 fits the head on a frozen backbone; phase 2 fine-tunes the top blocks at a lower learning
rate. Early stopping on validation AUC restores the best weights. The decision threshold is chosen
on validation data (Youden's J with the one-SE rule, for two classes) and evaluated, never tuned, on test/.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx import interrupts
from mdx.errors import ArtifactError, WorkerError
from mdx.records import staged_dir, write_record
from mdx.runtime.files import atomic_write_json, atomic_write_text
from mdx.runtime.images import ImageSet
from mdx.runtime.manifest import MANIFEST_NAME, write_manifest
from mdx.runtime.metrics import THRESHOLD_RULE, classification_metrics, roc_curve, youden_threshold
from mdx.train import frozen_features, plots
from mdx.train.checkpoint import FOLDER as CHECKPOINT_FOLDER
from mdx.train.checkpoint import (
    Checkpoints,
    EpochCheckpoint,
    Saved,
    advance_shuffle,
    agreed_epoch,
    claim_interrupted,
    finish_phase,
    run_key,
)
from mdx.train.config import FINETUNE_EPOCHS, TrainConfig, finetune_epochs
from mdx.train.data import class_weights, load_splits, manifest_rows
from mdx.train.keras_shim import keras, tf
from mdx.train.model import build_backbone, build_classifier, preprocessing_for, unfreeze_top_blocks
from mdx.train.pipeline_data import evaluation_dataset, training_dataset
from mdx.train.progress import EpochProgress, InterruptBetweenBatches
from mdx.train.weight_average import WeightAverage


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    model_path: Path
    metrics: dict[str, Any]
    threshold: float | None
    wall_seconds: float
    # False on a multi-worker run's other workers: they train, and only the chief saves
    saved: bool = True
    resumed_from_epoch: int | None = None


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _task(strategy: tf.distribute.Strategy) -> tuple[str, bool]:
    """This worker's name in a multi-worker run ('' alone) and whether it is the chief, which saves."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "", True
    chief = resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                               and "chief" not in resolver.cluster_spec().as_dict())
    return f"{resolver.task_type}:{resolver.task_id}", chief


@contextlib.contextmanager
def _worker_failures(strategy: tf.distribute.Strategy, resume: bool) -> Iterator[None]:
    """A multi-worker run whose peer died (its heartbeats stop; collectives then abort with UnavailableError,
    about 10 s later here) ends in one line naming that worker, not a TensorFlow traceback."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as exc:
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            raise
        found = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", exc.message or "")
        cluster = resolver.cluster_spec().as_dict()
        if found:
            kind, index = found.group(1), int(found.group(2))
            who = f"{kind} {index} ({cluster.get(kind, [])[index] if index < len(cluster.get(kind, [])) else '?'})"
        else:
            who = "another worker"
        then = ("rerun every worker with --resume to continue from the last checkpoint" if resume else
                "rerun every worker (with --resume to continue from the last epoch next time)")
        raise WorkerError(f"{who} of the multi-worker run stopped answering ({type(exc).__name__}); check its log, "
                          f"then {then}") from None


def _resume_point(checkpoints: Checkpoints, strategy: tf.distribute.Strategy, log: Callable[[str], None],
                  total: int) -> Saved | None:
    """The checkpoint to continue from (the same epoch on every worker), or None with a line that says so."""
    epoch = agreed_epoch(strategy, checkpoints.complete())
    if epoch is None:
        log(f"train: --resume: no checkpoint of an interrupted run of this config beside {checkpoints.folder.parent.parent}; "
            "starting from the first epoch")
        return None
    saved = checkpoints.load(epoch)
    log(f"train: --resume: continuing after epoch {epoch}/{total} (checkpoint in {saved.folder})")
    return saved


def _predict(model: keras.Model, data: ImageSet, config: TrainConfig) -> np.ndarray:
    dataset = evaluation_dataset(data.images, data.labels, len(data.class_names), batch_size=64,
                                 preprocessing=preprocessing_for(config))
    return model.predict(dataset.map(lambda x, y: x), verbose=0).astype(np.float32)


@dataclass(frozen=True)
class _Phase:
    """One phase of the recipe: `index` in it, the global epoch it starts at, and the shuffle draws before it."""

    index: int
    epochs: int
    learning_rate: Any
    average_epochs: int
    start: int
    draws: int


def _fit_phase(model, strategy, phase: _Phase, train_ds, val_ds, total, steps, weights, log, patience, label_smoothing,
               checkpoints: Checkpoints, history: dict[str, list[float]], restore: Saved | None = None):
    """Compile and fit one phase, from its start or from `restore`; returns the history of the epochs it ran."""
    with strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(phase.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
        )
    end = phase.start + phase.epochs
    average = WeightAverage(end - phase.average_epochs, log) if phase.average_epochs else None
    stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                             restore_best_weights=True) if patience else None
    saver = EpochCheckpoint(checkpoints, phase=phase.index, phase_start=phase.start, draws=phase.draws,
                            history=history, early_stopping=stopping, average=average, restore=restore)
    callbacks = [EpochProgress(total, steps, log), *(c for c in (average, stopping) if c is not None), saver,
                 InterruptBetweenBatches()]
    first = phase.start
    if restore is not None:
        if restore.stopped or restore.epoch >= end:  # its epochs all ran: end it as fit would have
            with strategy.scope():
                finish_phase(model, callbacks)
            advance_shuffle(train_ds, restore.draws)
            return {}
        advance_shuffle(train_ds, restore.draws - 1)  # fit itself makes the epoch's iterator
        first = restore.epoch
    history = model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=first,
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
    resume: bool = False,
) -> TrainResult:
    """Train a classifier on `data_dir/train`, choose its threshold on validation, evaluate on `data_dir/test`.

    Writes `out/` with model.keras, labels.txt, preprocessing.json, metrics.json, history.json, plots,
    split_manifest.csv (every image's split; `split_manifest` reuses an earlier one) and record.json;
    nothing is left behind if it fails. Every epoch leaves a checkpoint in the staging folder; `resume`
    continues the run a kill interrupted from its last one (mdx.train.checkpoint), and keeps the
    checkpoints if this run fails too.

    Raises:
        DataError: the data folder is missing or malformed.
        ConfigError: weights cannot be found or loaded.
        ArtifactError: `out` exists and `overwrite` is false.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    if Path(out).exists() and not overwrite:  # refuse before minutes of decoding, as staged_dir would after
        raise ArtifactError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    strategy = _strategy(config.strategy)  # first: a multi-worker strategy must come before other TF work
    task, chief = _task(strategy)
    splits = load_splits(data_dir, size=config.input_size, val_fraction=config.val_fraction, seed=config.seed,
                         max_images_per_class=config.max_images_per_class, group_pattern=config.val_group_pattern,
                         on_skip=lambda path, reason: log(f"warning: skipped {reason}"),
                         on_warning=lambda message: log(f"warning: {message}"), test_fraction=config.test_fraction,
                         split_manifest=split_manifest, duplicate_distance=config.duplicate_distance)
    key = run_key({**config.to_dict(), "split_manifest": str(split_manifest) if split_manifest else None},
                  [splits.train.images, splits.train.labels, splits.val.images, splits.val.labels], task)
    adopt = claim_interrupted(Path(out), key, resume=resume, log=log)
    checkpoints: Checkpoints | None = None

    def keep() -> bool:  # on a failure: with --resume, the checkpoints stay for the next one
        if checkpoints is None:
            return False
        checkpoints.unlock()
        kept = resume and bool(checkpoints.complete())
        if kept:
            log(f"train: kept the checkpoint of epoch {checkpoints.complete()[-1]} in {checkpoints.folder.parent}; "
                "rerun with --resume to continue")
        return kept

    with _worker_failures(strategy, resume), staged_dir(out, overwrite=overwrite, adopt=adopt, keep=keep,
                                                        publish=chief) as staging:
        checkpoints = Checkpoints(staging, key)
        checkpoints.lock()
        if adopt is not None:  # a fresh start for everything but the checkpoints
            for leftover in staging.iterdir():
                if leftover.name != CHECKPOINT_FOLDER:
                    leftover.unlink() if leftover.is_file() else shutil.rmtree(leftover, ignore_errors=True)
        keras.utils.set_random_seed(config.seed)
        preprocessing = preprocessing_for(config)
        n_classes = len(splits.class_names)
        log(f"train: {len(splits.train)} train / {len(splits.val)} validation / "
            f"{len(splits.test) if splits.test else 0} test images, classes {list(splits.class_names)}")
        # TF traces functions from here to the last prediction: a signal waits for the next batch (mdx.interrupts)
        with interrupts.deferred():
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
            epochs_finetune = finetune_epochs(config, steps)
            if config.epochs_finetune is None and epochs_finetune != FINETUNE_EPOCHS:
                log(f"train: {len(splits.train)} training images make {steps} steps an epoch: fine-tuning for "
                    f"{epochs_finetune} epochs instead of {FINETUNE_EPOCHS} to reach min_finetune_steps="
                    f"{config.min_finetune_steps}")
            total = config.epochs_frozen + epochs_finetune
            saved = _resume_point(checkpoints, strategy, log, total) if resume else None
            history: dict[str, list[float]] = {k: list(v) for k, v in saved.history.items()} if saved else {}
            phases = [(config.epochs_frozen, config.lr_frozen, None, 0),
                      (epochs_finetune, _learning_rate(config, epochs_finetune, steps), config.finetune_blocks,
                       config.average_epochs)]
            done = len(history.get("loss", []))
            draws = 0
            for index, (epochs, learning_rate, blocks, average_epochs) in enumerate(phases):
                if epochs == 0 or (saved is not None and index < saved.phase):
                    continue  # a phase before the checkpoint's: its weights are in the checkpoint
                if blocks is not None:
                    unfrozen = unfreeze_top_blocks(backbone, blocks)
                    log(f"train: fine-tuning the top {blocks} blocks ({unfrozen} layers) at lr {config.lr_finetune:g}"
                        + (", cosine decay to 0" if config.lr_schedule == "cosine" else ""))
                restore = saved if saved is not None and index == saved.phase else None
                start = restore.phase_start if restore else done
                draws = restore.draws - (restore.epoch - restore.phase_start) - 1 if restore else draws
                fitted, phase_train, phase_val = model, train_ds, val_ds
                if blocks is None and frozen_features.supports(config):
                    seconds = time.perf_counter()
                    with strategy.scope():
                        fitted, phase_train, phase_val = frozen_features.frozen_inputs(
                            model, splits.train, splits.val, batch_size=batch, preprocessing=preprocessing, seed=config.seed)
                    log(f"train: frozen phase on backbone features of the un-augmented images "
                        f"(computed in {time.perf_counter() - seconds:.0f} s)")
                phase = _fit_phase(fitted, strategy, _Phase(index, epochs, learning_rate, average_epochs, start, draws),
                                   phase_train, phase_val, total, steps, weights, log, config.patience,
                                   config.label_smoothing, checkpoints, history, restore)
                for key, values in phase.items():
                    history.setdefault(key, []).extend(float(v) for v in values)
                draws += 1 + len(history.get("loss", [])) - start  # fit's first iterator, then one per epoch
                done = len(history.get("loss", []))

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
        # without Adam's two moments of every trained weight (27 MB beside 9.5 MB of weights for the demo's
        # MobileNetV2): every later stage loads compile=False, and --resume keeps its own checkpoints
        optimizer, model.optimizer = model.optimizer, None
        try:
            model.save(model_path)
        finally:
            model.optimizer = optimizer
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
        checkpoints.remove()  # every artifact is written: nothing left to resume
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
                # phase 2's planned epochs after the step budget (config.min_finetune_steps), and its steps
                "schedule": {"epochs_frozen": config.epochs_frozen, "epochs_finetune": epochs_finetune,
                             "steps_per_epoch": steps},
                # None: trained from the first epoch; N: continued (--resume) after epoch N of an interrupted run
                "resumed_from_epoch": saved.epoch if saved else None,
                "replicas": strategy.num_replicas_in_sync,
            },
        )
    final = Path(out)
    return TrainResult(folder=final, model_path=final / "model.keras", metrics=json.loads(json.dumps(metrics)),
                       threshold=threshold, wall_seconds=wall, saved=chief, resumed_from_epoch=saved.epoch if saved else None)
