"""Sparsity-preserving weight clustering after pruning (`mdx prune --clusters K`), with tfmot.

Why it exists: a 50%-sparse model of independent int8 weights cannot be stored in less than ~0.165x
the dense FP32 .tflite, whatever the coder (`benchmarks/size_bound.py`). tfmot's collaborative
optimization answers that with clustering: every pruned kernel keeps K shared values, zero one of
them (`preserve_sparsity=True` keeps the zeros zero during fine-tuning). BatchNorm folding and
per-channel int8 only rescale each output channel, so in the converted model every channel holds at
most K distinct values (zero is one of them), which gzip stores in about log2(K) bits each.

Like the zeros, the clusters are counted in the artifact, never assumed from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot  # it selects tf-keras itself, as the shim does

from mdx.train.fine_tune import fine_tune
from mdx.train.keras_shim import keras
from mdx.train.sparsity import Kernel, SparsityError

Log = Callable[[str], None]


@dataclass(frozen=True)
class ClusterCount:
    """The most distinct values (zero included) any output channel of one kernel holds."""

    layer: str
    max_per_channel: int
    channels: int

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "max_distinct_per_channel": self.max_per_channel,
                "channels": self.channels}


def wrap_for_clustering(flat: Any, names: list[str], clusters: int) -> Any:
    """A clone of `flat` whose named layers are wrapped by tfmot's ClusterWeights (sparsity preserved).

    Layers not named are reused as they are, so only the named kernels change.
    """
    def wrap(layer: Any) -> Any:
        if layer.name not in names:
            return layer
        return tfmot.clustering.keras.cluster_weights(
            layer, number_of_clusters=clusters,
            cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=True)

    return keras.models.clone_model(flat, clone_function=wrap)


def fine_tune_clustered(flat: Any, names: list[str], clusters: int, train_ds: Any, val_ds: Any, *, epochs: int,
                        steps: int, learning_rate: float, weights: dict[int, float] | None, log: Log) -> tuple[Any, int]:
    """Cluster the named kernels of a pruned model, fine-tune the centroids, strip: (model, epochs run)."""
    wrapped = wrap_for_clustering(flat, names, clusters)
    log(f"cluster: {len(names)} kernels to {clusters} values each (zeros kept), {epochs} epochs of {steps} steps")
    done = fine_tune(wrapped, train_ds, val_ds, epochs=epochs, steps=steps, learning_rate=learning_rate,
                     weights=weights, log=log)
    return tfmot.clustering.keras.strip_clustering(wrapped), done


def count_clusters(kernel: Kernel) -> ClusterCount:
    """Distinct values per output channel (axis 0 in TFLite layout) of one kernel, zero included."""
    values = np.asarray(kernel.values)
    rows = values.reshape(values.shape[0], -1)
    counts = [np.unique(row).size for row in rows]
    return ClusterCount(kernel.layer, int(max(counts, default=0)), int(rows.shape[0]))


def check_clusters(kernels: list[Kernel], names: list[str], clusters: int, where: str) -> list[ClusterCount]:
    """Count the clusters of every named kernel; refuse a kernel with more than `clusters` values per channel.

    Raises:
        SparsityError: a kernel was not clustered (the wrappers did not apply, or a converter rewrote it).
    """
    counts = [count_clusters(kernel) for kernel in kernels if kernel.layer in names]
    found = {count.layer for count in counts}
    missing = [name for name in names if name not in found]
    if missing:
        raise SparsityError(f"{where}: no kernel found for clustered layer(s) {missing[:5]}")
    for count in counts:
        if count.max_per_channel > clusters:
            raise SparsityError(f"{where}: layer {count.layer} holds {count.max_per_channel} distinct values in one "
                                f"output channel, more than --clusters {clusters}; the clustering did not apply")
    return counts
