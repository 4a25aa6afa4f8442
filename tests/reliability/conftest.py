"""Fixtures of the reliability suite: small data, and the hostile places an output can land in (a
read-only folder, a full disk). Plain helpers live in reliability_support.py."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test modules import reliability_support

from reliability_support import copy_xrays, fill_disk


@pytest.fixture
def xray_dir(tmp_path: Path) -> Path:
    """2 NORMAL + 2 PNEUMONIA real X-rays in a folder-per-class tree."""
    return copy_xrays(tmp_path / "xrays")


@pytest.fixture(scope="session")
def xray_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA/train/ with 6 real X-rays per class, DATA/test/ with 2: the data of the training-run tests."""
    root = tmp_path_factory.mktemp("xray-splits") / "data"
    copy_xrays(root / "train", per_class=6)
    copy_xrays(root / "test", per_class=2)
    return root


@pytest.fixture
def no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the subprocess probe (1 s per command) where the model is a known-good golden one and the
    case is about the data; the probe has its own tests in test_fuzz.py."""
    monkeypatch.setattr("mdx.runtime.cli.probe_models", lambda *models, runtime: None)


# ---- hostile output places -------------------------------------------------------------------------

def _mount(*args: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write into: chmod 555 for a normal user, a read-only bind mount for root
    (root ignores permissions); skipped where neither works (e.g. root in an unprivileged container)."""
    folder = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,bind,ro", str(folder))):
        _umount(folder)
        pytest.skip("root without mount rights: cannot make a folder read-only for root")
    yield folder
    _umount(folder)


@pytest.fixture(params=["patched", "tmpfs"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on a full disk. `patched`: os.fsync raises ENOSPC in this process (works anywhere, as
    NFS and delayed allocation report a full disk at fsync); `tmpfs`: a real 1 MB tmpfs filled to the
    last byte (root with mount rights only)."""
    folder = tmp_path / f"full-{request.param}"
    folder.mkdir()
    if request.param == "patched":
        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        yield folder
        return
    if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)):
        pytest.skip("no mount rights for a tmpfs; the patched variant covers the full disk")
    try:
        fill_disk(folder)
        yield folder
    finally:
        _umount(folder)


# ---- a micro Keras classifier: converts in about a second ----------------------------------------------

@pytest.fixture(scope="session")
def micro_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 16x16 two-class tf-keras classifier (.keras), its labels, and calibration X-rays.

    Its Dense layer has 2048 weights, so the dynamic-range variant quantizes it (FULLY_CONNECTED v12,
    newer than tflite-runtime 2.14 loads). Returns {"model", "labels", "calibration"}.
    """
    from mdx.train.keras_shim import keras

    root = tmp_path_factory.mktemp("micro")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(root / "micro.keras")
    (root / "labels.txt").write_text("NORMAL\nPNEUMONIA\n")
    return {"model": root / "micro.keras", "labels": root / "labels.txt",
            "calibration": copy_xrays(root / "calibration", per_class=4)}
