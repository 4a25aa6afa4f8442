"""The prune stage: `prune(run, PruneConfig) -> PruneResult`.

Magnitude pruning with tensorflow-model-optimization, as its guide does it: flatten the model (tfmot
wraps only top-level layers; our backbone is one nested layer), wrap the chosen kernels with
`prune_low_magnitude`, fine-tune with `UpdatePruningStep`, `strip_pruning`, save. Then the zeros are
counted, never assumed: in the stripped Keras model and in its fp32 .tflite (BatchNorm folding
multiplies each output channel by a scale, so zeros must stay zeros), and the stage fails if any
pruned kernel misses the target by more than the tolerance. With `clusters`, the pruned kernels are
then clustered (train/cluster.py) and their distinct values counted the same way.

The output folder, RUN/prune-<sparsity>/, mirrors RUN/train/ (model.keras, labels.txt,
preprocessing.json, metrics.json, record.json with the same preprocessing/labels/threshold/data
keys), so the convert stage can read it the way it reads a train record.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot  # after keras_shim, see above

from mdx import interrupts
from mdx.errors import ArtifactError, DataError
from mdx.records import RECORD_NAME, staged_dir, write_record
from mdx.runtime.files import atomic_write_json, atomic_write_text, gzip_size
from mdx.runtime.images import ImageSet
from mdx.runtime.manifest import MANIFEST_NAME
from mdx.runtime.metrics import THRESHOLD_RULE, classification_metrics, youden_threshold
from mdx.train.cluster import ClusterCount, check_clusters, fine_tune_clustered
from mdx.train.data import class_weights, load_splits
from mdx.train.fine_tune import fine_tune
from mdx.train.flatten import flatten_checked
from mdx.train.keras_load import load_model
from mdx.train.keras_shim import keras  # before tfmot: the shim selects Keras 2 (tf-keras) for it
from mdx.train.model import preprocessing_for
from mdx.train.pipeline_data import evaluation_dataset, training_dataset
from mdx.train.prune_setup import (
    MODEL_NAME,
    Parent,
    PruneConfig,
    Schedule,
    check_m_by_n_fits,
    prunable_layers,
    pruning_schedule,
    resolve_parent,
    steps_for,
)
from mdx.train.sparsity import (
    Kernel,
    SparsityError,
    SparsityReport,
    check_sparsity,
    keras_kernels,
    m_by_n_violations,
    tflite_kernels,
)

Log = Callable[[str], None]
ToTflite = Callable[[Any], bytes]  # a Keras model -> its fp32 .tflite bytes


@dataclass(frozen=True)
class PruneResult:
    """A written prune folder and what was measured in it."""

    folder: Path
    model_path: Path
    target: float
    threshold: float | None  # re-chosen on validation (Youden's J, one-SE rule), as the train stage does
    keras_sparsity: SparsityReport  # pruned kernels of the stripped model
    tflite_sparsity: SparsityReport  # the same kernels in its fp32 .tflite
    metrics: dict[str, Any]
    size: dict[str, Any]
    wall_seconds: float
    clusters: tuple[ClusterCount, ...] = ()  # with --clusters: counted in the fp32 .tflite


class OnlyNamed(tfmot.sparsity.keras.PruningPolicy):
    """Wrap exactly the named layers (the model is already flat)."""

    def __init__(self, names: list[str]):
        self.names = set(names)

    def allow_pruning(self, layer: Any) -> bool:
        return layer.name in self.names

    def ensure_model_supports_pruning(self, model: Any) -> None:
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        if nested:  # tfmot would clone nested models and wrap nothing inside them
            raise ArtifactError(f"{model.name} still nests {nested}; flatten it before pruning")


def wrap_for_pruning(flat: Any, names: list[str], schedule: Schedule, m_by_n: tuple[int, int] | None) -> Any:
    """`flat` with the named layers wrapped by tfmot's PruneLowMagnitude.

    The wrappers hold the very layer objects of `flat`, so fine-tuning changes `flat`'s weights too.
    """
    return tfmot.sparsity.keras.prune_low_magnitude(flat, pruning_schedule=schedule.build(), sparsity_m_by_n=m_by_n,
                                                    pruning_policy=OnlyNamed(names))


def _verified(kernels: list[Kernel], source: str, names: list[str], config: PruneConfig, where: str) -> SparsityReport:
    report = SparsityReport(source, tuple(k.measure() for k in kernels)).select(names)
    hint = "check the pruning schedule"
    if config.clusters is not None:  # tfmot turns the smallest of the K centroids into 0
        hint = (f"clustering to {config.clusters} values zeroed more weights than pruning did; "
                "pass more --clusters (16 kept 0.5 within 1 pt on the chest X-ray model)")
    check_sparsity(report, config.sparsity, tolerance=config.tolerance, where=where, above_hint=hint)
    if config.m_by_n is not None:
        m, n = config.m_by_n
        for kernel in kernels:
            broken = m_by_n_violations(kernel, m, n) if kernel.layer in names else 0
            if broken:
                raise SparsityError(f"{where}: layer {kernel.layer} has {broken} groups of {n} input-channel weights "
                                    f"with fewer than {m} zeros; the {m}:{n} masks did not apply")
    return report


def verify_sparsity(stripped: Any, names: list[str], config: PruneConfig,
                    tflite_path: Path) -> tuple[SparsityReport, SparsityReport]:
    """Count the zeros of every pruned kernel after stripping and in the fp32 .tflite (and check m:n).

    Raises:
        SparsityError: a kernel misses the target by more than `config.tolerance`, or breaks m:n.
    """
    after = "strip_clustering" if config.clusters is not None else "strip_pruning"
    return (_verified(keras_kernels(stripped), f"Keras model {stripped.name}", names, config,
                      f"model.keras after {after}"),
            _verified(tflite_kernels(tflite_path), "fp32 .tflite of model.keras", names, config,
                      "fp32 .tflite (BatchNorm folded)"))


def _predict(model: Any, data: ImageSet, parent: Parent) -> np.ndarray:
    dataset = evaluation_dataset(data.images, data.labels, len(data.class_names), batch_size=64,
                                 preprocessing=preprocessing_for(parent.train_config))
    return model.predict(dataset.map(lambda x, y: x), verbose=0).astype(np.float32)


def _evaluate(model: Any, splits: Any, parent: Parent) -> tuple[dict[str, Any], float | None]:
    """Validation and test metrics; the threshold is re-chosen on validation by the train stage's rule."""
    tc = parent.train_config
    val_probs = _predict(model, splits.val, parent)
    threshold = youden_threshold(splits.val.labels, val_probs[:, 1]) if len(splits.class_names) == 2 else None
    metrics: dict[str, Any] = {"validation": classification_metrics(
        splits.val.labels, val_probs, splits.class_names, threshold=threshold, n_boot=tc.bootstrap, seed=tc.seed)}
    if splits.test is not None:
        probs = _predict(model, splits.test, parent)
        metrics["test"] = classification_metrics(splits.test.labels, probs, splits.class_names, threshold=threshold,
                                                 n_boot=tc.bootstrap, seed=tc.seed)
        metrics["test_at_argmax"] = classification_metrics(splits.test.labels, probs, splits.class_names, n_boot=0,
                                                           seed=tc.seed)
    dense = parent.record.get("metrics") or {}
    metrics["delta_vs_parent"] = {
        split: {name: round(metrics[split][name]["value"] - dense[split][name]["value"], 5)
                for name in ("accuracy", "auc")
                if (metrics[split].get(name) or {}).get("value") is not None
                and ((dense.get(split) or {}).get(name) or {}).get("value") is not None}
        for split in ("validation", "test") if split in metrics and split in dense}
    return metrics, threshold


def _sizes(path: Path) -> dict[str, int]:
    return {"bytes": path.stat().st_size, "gzip_bytes": gzip_size(path)}


def _bytes_sizes(data: bytes) -> dict[str, int]:
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def _load_splits(parent: Parent, log: Log) -> Any:
    """The parent's train/validation/test split: read from its split manifest (each file checked against
    its sha256), or, for a run from before manifests, re-made from its data folder with its seed.

    Raises:
        DataError: the data changed since the parent was trained (counts or classes differ), so the
            validation images could now overlap the ones the model was tuned on.
    """
    tc = parent.train_config
    manifest = parent.folder / MANIFEST_NAME
    splits = load_splits(parent.data_dir, size=tc.input_size, val_fraction=tc.val_fraction, seed=tc.seed,
                         max_images_per_class=tc.max_images_per_class, group_pattern=tc.val_group_pattern,
                         on_skip=lambda path, reason: log(f"warning: skipped {reason}"),
                         test_fraction=tc.test_fraction, duplicate_distance=tc.duplicate_distance,
                         split_manifest=manifest if manifest.is_file() else None)
    counts = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test) if splits.test else 0}
    recorded = (parent.record.get("data") or {}).get("counts")
    if list(splits.class_names) != list(parent.record["labels"]) or (recorded and recorded != counts):
        raise DataError(f"{parent.data_dir} now holds {counts} images of classes {list(splits.class_names)}, but "
                        f"{parent.folder / RECORD_NAME} was trained on {recorded} of {parent.record['labels']}; "
                        "restore the data folder or retrain")
    return splits


def _fine_tuned(flat: Any, names: list[str], skipped: list[str], splits: Any, parent: Parent, config: PruneConfig,
                log: Log) -> tuple[Any, Schedule, dict[str, int]]:
    """Wrap, fine-tune on the parent's training split, strip, and cluster with --clusters:
    (stripped model, schedule, epochs run per phase)."""
    tc = parent.train_config
    n_classes = len(splits.class_names)
    batch = config.batch_size or tc.batch_size
    preprocessing = preprocessing_for(tc)
    train_ds = training_dataset(splits.train.images, splits.train.labels, n_classes, batch_size=batch,
                                preprocessing=preprocessing, augmentation=tc.augmentation, seed=tc.seed)
    val_ds = evaluation_dataset(splits.val.images, splits.val.labels, n_classes, batch_size=64,
                                preprocessing=preprocessing)
    schedule = pruning_schedule(config, steps_for(len(splits.train), batch))
    log(f"prune: {len(names)} kernels to {config.sparsity:g} ({config.structured or config.schedule}), "
        f"{config.epochs} epochs of {schedule.steps_per_epoch} steps; left dense: {skipped or 'none'} + depthwise")
    wrapped = wrap_for_pruning(flat, names, schedule, config.m_by_n)
    weights = class_weights(splits.train.labels, n_classes) if tc.class_weights else None
    # without UpdatePruningStep tfmot's masks never change
    epochs = {"prune": fine_tune(wrapped, train_ds, val_ds, epochs=config.epochs, steps=schedule.steps_per_epoch,
                                 learning_rate=config.learning_rate or tc.lr_finetune, weights=weights, log=log,
                                 callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])}
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    if config.clusters is not None:
        stripped, epochs["cluster"] = fine_tune_clustered(
            stripped, names, config.clusters, train_ds, val_ds, epochs=config.cluster_epochs,
            steps=schedule.steps_per_epoch, learning_rate=config.cluster_learning_rate, weights=weights, log=log)
    return stripped, schedule, epochs


def prune(source: Path, config: PruneConfig, out: Path | None = None, *, fp32_tflite: ToTflite,
          overwrite: bool = False, log: Log = lambda message: None) -> PruneResult:
    """Prune a trained model to `config.sparsity`, fine-tune it, and prove the zeros are there.

    Writes `out` (default RUN/prune-<sparsity>/) with model.keras, labels.txt, preprocessing.json,
    metrics.json and record.json; nothing is left behind if a check fails.

    Args:
        fp32_tflite: the convert stage's fp32 conversion (`mdx.convert.sparse.tflite_bytes`), passed in
            because train/ never imports convert/ (tests/unit/test_import_contracts.py).

    Raises:
        ArtifactError: the parent is missing, changed, or not a train/prune stage; `out` exists.
        DataError: the parent's data folder is missing or changed.
        ConfigError: the options do not fit the model (e.g. m:n on 3 input channels).
        SparsityError: a pruned kernel missed the target, in Keras or in the fp32 .tflite, or (with
            `clusters`) holds more distinct values per output channel than clusters.
    """
    started = time.perf_counter()
    parent = resolve_parent(Path(source))
    out = Path(out) if out is not None else parent.run / config.folder_name()
    with staged_dir(out, overwrite=overwrite) as staging:
        keras.utils.set_random_seed(parent.train_config.seed)
        splits = _load_splits(parent, log)
        # TF traces functions from the load to the save: a signal waits for the end of a batch (mdx.interrupts)
        with interrupts.deferred():
            flat = flatten_checked(load_model(parent.model))
            names, skipped = prunable_layers(flat, config.skip_first_last)
            check_m_by_n_fits(flat, names, config.m_by_n)
            dense_tflite = _bytes_sizes(fp32_tflite(flat))  # now: the wrappers will prune flat's own weights
            batch = config.batch_size or parent.train_config.batch_size
            stripped, schedule, epochs_run = _fine_tuned(flat, names, skipped, splits, parent, config, log)
            fp32 = staging / ".fp32-check.tflite"  # in the staging folder: removed with it if a check fails
            fp32.write_bytes(fp32_tflite(stripped))
            keras_report, tflite_report = verify_sparsity(stripped, names, config, fp32)
            clusters: list[ClusterCount] = []
            if config.clusters is not None:
                check_clusters(keras_kernels(stripped), names, config.clusters, "model.keras after strip_clustering")
                clusters = check_clusters(tflite_kernels(fp32), names, config.clusters, "fp32 .tflite (BatchNorm folded)")
            metrics, threshold = _evaluate(stripped, splits, parent)
            metrics["sparsity"] = {"target": config.sparsity, "keras": keras_report.to_dict(),
                                   "tflite_fp32": tflite_report.to_dict()}
            if clusters:
                metrics["clusters"] = {"target": config.clusters, "max_per_channel": max(c.max_per_channel for c in clusters),
                                       "tflite_fp32": [c.to_dict() for c in clusters]}
            stripped.save(staging / MODEL_NAME)
        size = {"keras": {"parent": _sizes(parent.model), "pruned": _sizes(staging / MODEL_NAME)},
                "tflite_fp32": {"parent": dense_tflite, "pruned": _sizes(fp32)}}
        fp32.unlink()
        labels = list(parent.record["labels"])
        atomic_write_text(staging / "labels.txt", "\n".join(labels) + "\n")
        atomic_write_json(staging / "preprocessing.json", parent.record["preprocessing"])
        atomic_write_json(staging / "metrics.json", metrics)
        wall = time.perf_counter() - started
        write_record(
            staging, stage="prune", config=config.to_dict(), inputs=[parent.model, parent.folder / RECORD_NAME],
            outputs=sorted(p for p in staging.iterdir() if p.is_file()), metrics=metrics, wall_seconds=wall,
            extra={
                # the keys a train record has, so the convert stage reads this folder like a trained model
                "preprocessing": parent.record["preprocessing"],
                "labels": labels,
                "threshold": threshold,
                "threshold_rule": THRESHOLD_RULE if threshold is not None else "argmax",
                "data": parent.record["data"],
                "epochs_run": epochs_run["prune"],
                # what prune adds
                "parent_threshold": parent.record.get("threshold"),
                "train_config": parent.train_config_dict,
                "parent": {"folder": str(parent.folder.resolve()), "stage": parent.record["stage"]},
                "pruning": {"layers": names, "left_dense": skipped, "not_pruned": "DepthwiseConv2D kernels",
                            "schedule": schedule.to_dict(), "batch_size": batch},
                "size": size,
                **({"clustering": {"clusters": config.clusters, "epochs_run": epochs_run["cluster"],
                                   "learning_rate": config.cluster_learning_rate, "layers": names,
                                   "centroid_init": "kmeans++", "preserve_sparsity": True}}
                   if config.clusters is not None else {}),
            },
        )
    final = Path(out)
    return PruneResult(final, final / MODEL_NAME, config.sparsity, threshold, keras_report, tflite_report, metrics,
                       size, wall, tuple(clusters))
