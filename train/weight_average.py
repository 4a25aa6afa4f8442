"""Stochastic weight averaging (Izmailov et al., 2018) over the last fine-tuning epochs.

The mean of the weights at the end of the last N epochs replaces the last epoch's weights when
training ends. A pretrained backbone runs its BatchNorm in inference mode (mdx.train.model), so its
statistics do not move and the average needs no BatchNorm recomputation, which SWA otherwise does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mdx.train.keras_shim import keras


class WeightAverage(keras.callbacks.Callback):
    """Averages the model's weights at the end of epochs `first_epoch` .. the last (0-based, as Keras counts)."""

    def __init__(self, first_epoch: int, log: Callable[[str], None]):
        super().__init__()
        self.first_epoch = first_epoch
        self.log = log
        self._sums: list[np.ndarray] | None = None
        self._epochs: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch:
            return
        weights = self.model.get_weights()
        if self._sums is None:
            self._sums = [w.astype(np.float64) for w in weights]
        else:
            for total, w in zip(self._sums, weights):
                total += w
        self._epochs.append(epoch + 1)

    def on_train_end(self, logs=None):
        if not self._epochs:
            return
        current = self.model.get_weights()
        self.model.set_weights([(total / len(self._epochs)).astype(w.dtype) for total, w in zip(self._sums, current)])
        self.log(f"train: kept the mean of the weights of epochs {self._epochs[0]}-{self._epochs[-1]}")
