"""One fine-tuning loop for the stages that fine-tune a trained model (prune, cluster): Adam, the
training loss and metrics of `mdx train`, the class weights, and a line per epoch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mdx.train.keras_shim import keras
from mdx.train.progress import EpochProgress, InterruptBetweenBatches

Log = Callable[[str], None]


def fine_tune(model: Any, train_ds: Any, val_ds: Any, *, epochs: int, steps: int, learning_rate: float,
              weights: dict[int, float] | None, log: Log, callbacks: Sequence[Any] = ()) -> int:
    """Compile and fit `model`; returns the epochs run. Call it inside `mdx.interrupts.deferred()`: a signal
    then stops the fit at the end of a batch, not inside TensorFlow's tracing."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=weights,
                        callbacks=[*callbacks, EpochProgress(epochs, steps, log), InterruptBetweenBatches()], verbose=0)
    return len(history.history.get("loss", []))
