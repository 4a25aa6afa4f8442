"""Load a `.keras` file 4x faster than tf-keras (3.0 s against 12.6 s for a run's MobileNetV2 on the AVX2
machine; benchmarks/keras_load.py).

tf-keras reads `model.weights.h5` through h5py straight out of the zip archive. h5py seeks back and
forth, and Python 3.11's zip member rewinds to its start and reads forward on every backward seek, so a
27 MB MobileNetV2 file costs about 8 s of re-reading (Keras 3 fixed the same code in
keras-team/keras#19852, for keras-team/keras#19793; tf-keras did not). Here the archive's members are
read once into memory and the weights are loaded from there, with tf-keras' own deserializer and state
loader, so the model is the one `keras.models.load_model(path, compile=False)` returns, weight for weight
(tests/integration/test_train.py). Anything other than a plain `.keras` archive of a modest size, and
any error on the fast path, goes to tf-keras' `load_model`, whose error messages callers report.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from mdx import interrupts

_CONFIG = "config.json"
_WEIGHTS = "model.weights.h5"
# Keras 3 loads in memory up to 512 MB of weights; beyond that a copy in memory is not worth the time saved
_MAX_IN_MEMORY = 512 * 2**20


class _MembersInMemory:
    """The one method of zipfile.ZipFile that tf-keras' H5IOStore calls, over bytes already read."""

    def __init__(self, members: dict[str, bytes]) -> None:
        self._members = members

    def open(self, name: str, mode: str = "r") -> io.BytesIO:
        return io.BytesIO(self._members[name])


def load_model(path: Path | str) -> Any:
    """The Keras model at `path` without its optimizer state (`compile=False`); .keras fast, any other format as Keras does."""
    from mdx.train.keras_shim import keras

    members = _archive_members(Path(path))
    # building the layers traces them in a Keras graph: a signal waits for the end (mdx.interrupts)
    with interrupts.deferred():
        if members is not None:
            # any surprise on the fast path: tf-keras' own loader decides, and words the error
            with contextlib.suppress(Exception):
                return _from_members(members)
        return keras.models.load_model(path, compile=False)


def _archive_members(path: Path) -> dict[str, bytes] | None:
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        # a third member beyond metadata.json means assets, which this path does not load
        if _CONFIG not in names or _WEIGHTS not in names or len(names) > 3:
            return None
        if archive.getinfo(_WEIGHTS).file_size > _MAX_IN_MEMORY:
            return None
        return {name: archive.read(name) for name in (_CONFIG, _WEIGHTS)}


def _from_members(members: dict[str, bytes]) -> Any:
    from tf_keras.src.saving import saving_lib

    config = json.loads(members[_CONFIG])
    config["compile_config"] = None  # compile=False: no optimizer, no loss
    enabled = getattr(saving_lib._SAVING_V3_ENABLED, "value", False)
    saving_lib._SAVING_V3_ENABLED.value = True  # as tf-keras' load_model sets it while it deserializes
    try:
        with saving_lib.ObjectSharingScope():
            model = saving_lib.deserialize_keras_object(config, None, safe_mode=True)
        store = saving_lib.H5IOStore(_WEIGHTS, archive=_MembersInMemory(members), mode="r")
        try:
            saving_lib._load_state(model, weights_store=store, assets_store=None, inner_path="",
                                   visited_trackables=set())
        finally:
            store.close()
    finally:
        saving_lib._SAVING_V3_ENABLED.value = enabled
    return model
