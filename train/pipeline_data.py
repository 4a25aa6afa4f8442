"""tf.data pipelines over decoded uint8 images: shuffle, batch, augment, normalize, prefetch."""

from __future__ import annotations

import numpy as np

from mdx.runtime.preprocess import Preprocessing
from mdx.train.augment import augment_batch
from mdx.train.config import Augmentation
from mdx.train.keras_shim import tf

# tf.data's autotuner starts a thread per iterator that sleeps for an optimization period doubling from
# 10 ms, and deleting the iterator waits out that sleep: every Keras epoch and validation pass ends one,
# so the end of an epoch stalled for 0 to ~half its length (up to 1.5 s after 20 batches, 13.9 s after
# the demo's 147 on vm-avx512_vnni; benchmarks/epoch_end_stall.py). Off, AUTOTUNE still means
# "as many as the CPU has" for a parallel map, and prefetch keeps its own buffer heuristic. The benchmarks
# set this to True to time the path before.
TF_DATA_AUTOTUNE = False


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuner as TF_DATA_AUTOTUNE says (off): no stall when its iterator ends."""
    options = tf.data.Options()
    options.autotune.enabled = TF_DATA_AUTOTUNE
    return dataset.with_options(options)


def _normalizer(preprocessing: Preprocessing):
    mean = tf.constant(preprocessing.mean, dtype=tf.float32)
    std = tf.constant(preprocessing.std, dtype=tf.float32)
    return lambda pixels: (tf.cast(pixels, tf.float32) - mean) / std


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    batch_size: int,
    preprocessing: Preprocessing,
    augmentation: Augmentation,
    seed: int,
) -> tf.data.Dataset:
    """Shuffled, augmented, normalized batches of (inputs, one-hot labels); reshuffled every epoch."""
    normalize = _normalizer(preprocessing)
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    # stateless ops with a per-batch seed: the same config and seed give the same augmentations
    dataset = dataset.enumerate().map(
        lambda step, batch: (
            normalize(augment_batch(batch[0], augmentation, tf.stack([tf.constant(seed, tf.int64), step]))),
            batch[1],
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return untuned(dataset.prefetch(tf.data.AUTOTUNE))


def evaluation_dataset(
    images: np.ndarray, labels: np.ndarray, n_classes: int, *, batch_size: int, preprocessing: Preprocessing
) -> tf.data.Dataset:
    """Normalized batches in file order, cached after the first pass (validation runs every epoch)."""
    normalize = _normalizer(preprocessing)
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot)).batch(batch_size)
    dataset = dataset.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return untuned(dataset.cache().prefetch(tf.data.AUTOTUNE))
