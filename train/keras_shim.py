"""The one place that selects Keras 2 (tf-keras): tensorflow-model-optimization needs it.

`TF_USE_LEGACY_KERAS` must be set before TensorFlow is first imported; every other module takes
`keras` and `tf` from here.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import tensorflow as tf
    import tf_keras as keras
except ImportError as exc:  # pragma: no cover - depends on the environment
    from mdx.errors import ConfigError

    raise ConfigError(
        f"this command needs TensorFlow and tf-keras ({exc.name} is missing): pip install 'mdx[train]'"
    ) from None

__all__ = ["keras", "tf"]
