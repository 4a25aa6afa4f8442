"""The frozen phase on cached features: the backbone runs once over the images, the head trains on its output.

While the backbone is frozen (and its BatchNorm in inference mode) the head sees the same pooled
features every epoch for an un-augmented image, so they can be computed once, in inference mode,
and the head's epochs then cost almost nothing. The price is augmentation in that phase: the head
trains on the features of the images as they are; the fine-tuning phase still trains on augmented
images (benchmarks/train_speed.py measures both the speed-up and the accuracy it keeps).
"""

from __future__ import annotations

import numpy as np

from mdx.runtime.images import ImageSet
from mdx.runtime.preprocess import Preprocessing
from mdx.train.config import TrainConfig
from mdx.train.keras_shim import keras, tf
from mdx.train.pipeline_data import evaluation_dataset, untuned

# the head's layers after the pooled features, in order (mdx.train.model.build_classifier's "gap" head)
HEAD_LAYERS = ("dense", "dropout", "probabilities")


def supports(config: TrainConfig) -> bool:
    """Whether `config`'s frozen phase trains on cached features: asked for, and a pooled head (the flatten
    head's features are S/32 x S/32 x 1280 floats an image, 1.2 GB for the chest X-rays at 224 px)."""
    return config.frozen_features and config.head == "gap"


def head_model(model: keras.Model) -> keras.Model:
    """The classifier's layers after the pooled features, sharing their weights with `model`."""
    pooled = model.get_layer("gap").output
    features = keras.Input(pooled.shape[1:], name="features")
    x = features
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(features, x, name="head")


def pooled_features(model: keras.Model, images: np.ndarray, labels: np.ndarray, n_classes: int,
                    preprocessing: Preprocessing) -> np.ndarray:
    """The pooled backbone features of `images` (uint8), in inference mode: one pass, in file order."""
    extractor = keras.Model(model.input, model.get_layer("gap").output)
    dataset = evaluation_dataset(images, labels, n_classes, batch_size=64, preprocessing=preprocessing)
    return extractor.predict(dataset.map(lambda x, y: x), verbose=0).astype(np.float32)


def feature_dataset(features: np.ndarray, labels: np.ndarray, n_classes: int, *, batch_size: int,
                    seed: int | None) -> tf.data.Dataset:
    """Batches of (features, one-hot labels): reshuffled every epoch with `seed`, in order when it is None."""
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    dataset = tf.data.Dataset.from_tensor_slices((features, one_hot))
    if seed is not None:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return untuned(dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def frozen_inputs(model: keras.Model, train: ImageSet, val: ImageSet, *, batch_size: int,
                  preprocessing: Preprocessing, seed: int) -> tuple[keras.Model, tf.data.Dataset, tf.data.Dataset]:
    """The head and its (train, validation) feature datasets, for the frozen phase of `model`."""
    n_classes = len(train.class_names)
    train_features = pooled_features(model, train.images, train.labels, n_classes, preprocessing)
    val_features = pooled_features(model, val.images, val.labels, n_classes, preprocessing)
    return (head_model(model),
            feature_dataset(train_features, train.labels, n_classes, batch_size=batch_size, seed=seed),
            feature_dataset(val_features, val.labels, n_classes, batch_size=64, seed=None))
