"""Probabilities from a Keras model file, for `mdx predict` and `mdx check` with a .keras reference.

The .tflite side runs in `mdx.runtime`; this is its TensorFlow counterpart, with the same contract:
float32 inputs already preprocessed, float32 (N, classes) outputs.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import ArtifactError, DataError

MODEL_SUFFIXES = (".keras", ".h5")
FOLDER_MODEL_NAMES = ("model.keras", "model.h5")  # what stage folders (import-weights, train) hold
BATCH = 32  # bounds memory on large evaluation sets; MobileNetV2 at 224 needs ~0.5 GB per 32 images


def resolve_keras_model(model_path: Path) -> Path:
    """The model file for `model_path`: a .keras/.h5 file, or a stage folder holding model.keras.

    Raises:
        ArtifactError: no such file, an unsupported suffix, or a folder without a model.
    """
    path = Path(model_path)
    if path.is_dir():
        for name in FOLDER_MODEL_NAMES:
            if (path / name).is_file():
                return path / name
        raise ArtifactError(f"{path} holds none of {', '.join(FOLDER_MODEL_NAMES)}; pass the model file or its stage folder")
    if path.suffix not in MODEL_SUFFIXES:
        raise ArtifactError(f"{path}: expected a Keras model ({', '.join(MODEL_SUFFIXES)}); pass .tflite models to the runtime")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file; pass an existing .keras model (e.g. from `mdx import-weights`)")
    return path


def load_keras_model(model_path: Path) -> Any:
    """Load (and cache, by path, mtime and size) a Keras model without its optimizer state.

    Raises:
        ArtifactError: the file is missing or Keras cannot read it.
    """
    path = resolve_keras_model(model_path)
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load_cached(path_text: str, _mtime_ns: int, _size: int) -> Any:
    from mdx.train.keras_load import load_model

    try:
        return load_model(path_text)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ArtifactError(f"{path_text}: Keras cannot load it ({exc}); re-export the model with this tf-keras") from None


def predict_proba_keras(model_path: Path, inputs_float32: np.ndarray) -> np.ndarray:
    """Run a Keras model in inference mode on preprocessed inputs.

    Args:
        model_path: a .keras/.h5 file or a stage folder holding model.keras.
        inputs_float32: (N, H, W, C) float32, normalized as the model's record says.

    Returns:
        float32 array of the model's output, (N, classes) probabilities for a softmax classifier.

    Raises:
        ArtifactError: the model cannot be loaded.
        DataError: the inputs are empty, not float32, or their shape does not match the model's input.
    """
    model = load_keras_model(model_path)
    inputs = np.asarray(inputs_float32)
    expected = tuple(model.input_shape[1:])
    if inputs.dtype != np.float32:
        raise DataError(f"inputs are {inputs.dtype}, expected float32 after preprocessing (normalize the images first)")
    matches = inputs.ndim == len(expected) + 1 and all(e in (None, s) for e, s in zip(expected, inputs.shape[1:]))
    if not matches or len(inputs) == 0:
        want = ", ".join(map(str, expected))
        raise DataError(f"inputs have shape {inputs.shape}, expected (N >= 1, {want}) for {model_path}")
    # model(x, training=False) per batch: model.predict adds seconds of tf.data set-up for a few images
    batches = [np.asarray(model(inputs[i : i + BATCH], training=False)) for i in range(0, len(inputs), BATCH)]
    return np.concatenate(batches).astype(np.float32)
