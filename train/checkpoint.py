"""Resumable training: a checkpoint at the end of every epoch in the train stage's staging folder.

`mdx train --resume` continues an interrupted run from its last complete epoch, and the result is the
one the uninterrupted run would have given (tests/reliability/test_resume.py compares the weights).
That needs everything the next epoch depends on, not only the weights Keras' `BackupAndRestore` keeps:

- the model's weights and the optimizer's variables (Adam's moments, and its step counter, which
  drives the cosine schedule);
- which phase (frozen head, fine-tuning) and where it started, since early stopping can end one early;
- early stopping's best value, wait count and best weights, and the weight average's running sums;
- the dropout generator's state (mdx.train.model gives Dropout a tf.random.Generator for this);
- how many times the training set was iterated: tf.data draws a new shuffle seed per iterator, so a
  resumed run first draws as many as the uninterrupted run had (`advance_shuffle`);
- the history so far, and a key of the config and data, so a checkpoint resumes only the run it was.

Each checkpoint is a folder `checkpoints/epoch-NNNN/` written under a temporary name and renamed, so
a kill (SIGKILL, a reboot, the OOM killer) leaves either the whole epoch or nothing. The last two are
kept: the workers of a multi-worker run can be one epoch apart when one dies, and all resume from the
oldest last epoch (`agreed_epoch`). A lock held while the run lives tells a live run's staging folder
from an interrupted one's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import ConfigError
from mdx.train.keras_shim import keras, tf

FOLDER = "checkpoints"
STATE = "state.json"
LOCK = "lock"
KEEP = 2
FORMAT = 1

Log = Callable[[str], None]


def run_key(config: dict[str, Any], arrays: Sequence[np.ndarray], task: str) -> dict[str, Any]:
    """What must match for a checkpoint to resume this run: the config, a digest of the training and
    validation pixels and labels (same data, same split), and the worker (multi-worker runs)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return {"config": config, "data_sha256": digest.hexdigest(), "task": task}


@dataclass(frozen=True)
class Saved:
    """One complete checkpoint: `epoch` epochs done, of phase `phase` (an index into the recipe's phases)."""

    folder: Path
    epoch: int
    phase: int
    phase_start: int
    draws: int
    stopped: bool
    history: dict[str, list[float]]
    early_stopping: dict[str, Any] | None
    average_epochs: list[int] = field(default_factory=list)

    def arrays(self, name: str) -> list[np.ndarray]:
        with np.load(self.folder / f"{name}.npz") as stored:
            return [stored[f"a{i}"] for i in range(len(stored.files))]


def _is_locked(lock: Path) -> bool:
    """True while a live process holds `lock` (the kernel drops an flock when its holder dies, SIGKILL too)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _pid_alive(staging: Path) -> bool:
    try:
        pid = int(staging.name.rsplit("-", 1)[1])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return pid != os.getpid()


def interrupted_stagings(final: Path) -> list[Path]:
    """The staging folders beside `final` that no live run uses, newest first.

    A folder with a checkpoint lock is in use while the lock is held; one without (killed before its
    first lock or after its last) while the process its name ends with lives.
    """
    final = Path(final)
    found = []
    for staging in final.parent.glob(f".{final.name}.partial-*"):
        lock = staging / FOLDER / LOCK
        if not (_is_locked(lock) if lock.exists() else _pid_alive(staging)):
            found.append(staging)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class Checkpoints:
    """The checkpoints of one training run in STAGING/checkpoints/, locked while the run lives."""

    def __init__(self, staging: Path, key: dict[str, Any]):
        self.folder = Path(staging) / FOLDER
        self.key = key
        self._lock_fd: int | None = None

    def lock(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Drop the checkpoints and the lock: the stage's own artifacts are written."""
        self.unlock()
        shutil.rmtree(self.folder, ignore_errors=True)

    def complete(self) -> list[int]:
        """Epochs with a complete checkpoint, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name.split("-")[1]) for p in self.folder.glob("epoch-*") if (p / STATE).is_file())

    def load(self, epoch: int) -> Saved:
        """The checkpoint of `epoch`.

        Raises:
            ConfigError: it was made by a run of another config, data or worker.
        """
        folder = self.folder / f"epoch-{epoch:04d}"
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        if state.get("format") != FORMAT or state["key"] != self.key:
            raise ConfigError(f"--resume: the checkpoint in {folder} is of another run ({_difference(state['key'], self.key)}); "
                              "pass the options of that run, or drop --resume to start over")
        return Saved(folder=folder, epoch=state["epoch"], phase=state["phase"], phase_start=state["phase_start"],
                     draws=state["draws"], stopped=state["stopped"], history=state["history"],
                     early_stopping=state["early_stopping"], average_epochs=state["average_epochs"])

    def save(self, state: dict[str, Any], arrays: dict[str, list[np.ndarray]]) -> None:
        """Write the checkpoint of `state["epoch"]` whole or not at all, and keep the last KEEP."""
        epoch = state["epoch"]
        final = self.folder / f"epoch-{epoch:04d}"
        temporary = self.folder / f".epoch-{epoch:04d}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        for name, values in arrays.items():
            with open(temporary / f"{name}.npz", "wb") as handle:
                np.savez(handle, **{f"a{i}": v for i, v in enumerate(values)})
                handle.flush()
                os.fsync(handle.fileno())  # the rename below must not outlive the data on a power loss
        (temporary / STATE).write_text(json.dumps({"format": FORMAT, "key": self.key, **state}), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        for old in self.complete()[:-KEEP]:
            shutil.rmtree(self.folder / f"epoch-{old:04d}", ignore_errors=True)


def _difference(stored: dict[str, Any], current: dict[str, Any]) -> str:
    if stored.get("task") != current["task"]:
        return f"worker {stored.get('task')!r} there, {current['task']!r} here"
    there, here = stored.get("config", {}), current["config"]
    name = next((k for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)), None)
    if name is None:  # the options match: the images changed
        return "other training or validation images"
    return f"{name} {there.get(name)!r} there, {here.get(name)!r} here"


def agreed_epoch(strategy: tf.distribute.Strategy, epochs: list[int]) -> int | None:
    """The newest epoch every worker has a checkpoint of (None: start over), the same on every worker."""
    mine = max(epochs) if epochs else -1
    if strategy.extended._in_multi_worker_mode():
        mine = int(np.min(strategy.gather(tf.constant([mine]), axis=0).numpy()))
    if mine < 0:
        return None
    if mine not in epochs:  # this worker is ahead of another one and its older checkpoint is gone
        raise ConfigError(f"--resume: the workers' last checkpoints are more than one epoch apart (epoch {mine} "
                          f"is gone here, {epochs} are kept); drop --resume to start over")
    return mine


def advance_shuffle(dataset: tf.data.Dataset, draws: int) -> None:
    """Draw `draws` shuffle seeds from `dataset`, as the uninterrupted run's iterators had.

    tf.data's seeded `shuffle(reshuffle_each_iteration=True)` takes a new seed from its generator
    each time an iterator is made, and Keras' fit makes one per epoch plus one at the start
    (tf_keras DataHandler.enumerate_epochs); making and dropping iterators replays the draws.
    """
    for _ in range(draws):
        iterator = iter(dataset)
        del iterator


def _generators(model: keras.Model) -> list[Any]:
    """The tf.random.Generator of every layer that draws random numbers in training (Dropout)."""
    found = []
    for layer in model.submodules:
        generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if generator is not None:
            found.append(generator)
    return found


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint after every epoch of a phase and, given one, restores it when the phase starts.

    Goes after EarlyStopping and WeightAverage in the callback list: it restores their state after
    their own on_train_begin resets it, and saves it after their on_epoch_end updated it.
    """

    def __init__(self, checkpoints: Checkpoints, *, phase: int, phase_start: int, draws: int,
                 history: dict[str, list[float]], early_stopping: Any = None, average: Any = None,
                 restore: Saved | None = None):
        super().__init__()
        self.checkpoints = checkpoints
        self.phase = phase
        self.phase_start = phase_start
        self.draws = draws  # shuffle draws before this phase's fit
        self.history = {k: list(v) for k, v in history.items()}
        self.early_stopping = early_stopping
        self.average = average
        self.restore = restore

    def on_train_begin(self, logs=None):
        saved = self.restore
        if saved is None:
            return
        self.model.set_weights(saved.arrays("weights"))
        self.model.optimizer.build(self.model.trainable_variables)
        for variable, value in zip(self.model.optimizer.variables, saved.arrays("optimizer"), strict=True):
            variable.assign(value)
        for generator, value in zip(_generators(self.model), saved.arrays("rng"), strict=True):
            generator.state.assign(value)
        if self.early_stopping is not None and saved.early_stopping is not None:
            stopping = self.early_stopping
            for name in ("wait", "stopped_epoch", "best", "best_epoch"):
                setattr(stopping, name, saved.early_stopping[name])
            stopping.best_weights = saved.arrays("best") if saved.early_stopping["has_best_weights"] else None
        if self.average is not None and saved.average_epochs:
            self.average._sums = saved.arrays("average")
            self.average._epochs = list(saved.average_epochs)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        arrays = {"weights": self.model.get_weights(),
                  "optimizer": [v.numpy() for v in self.model.optimizer.variables],
                  "rng": [g.state.numpy() for g in _generators(self.model)]}
        stopping = None
        if self.early_stopping is not None:
            es = self.early_stopping
            stopping = {"wait": int(es.wait), "stopped_epoch": int(es.stopped_epoch), "best": float(es.best),
                        "best_epoch": int(es.best_epoch), "has_best_weights": es.best_weights is not None}
            if es.best_weights is not None:
                arrays["best"] = es.best_weights
        average_epochs = list(getattr(self.average, "_epochs", []))
        if average_epochs:
            arrays["average"] = self.average._sums
        self.checkpoints.save({
            "epoch": epoch + 1, "phase": self.phase, "phase_start": self.phase_start,
            "draws": self.draws + 1 + (epoch + 1 - self.phase_start), "stopped": bool(self.model.stop_training),
            "history": self.history, "early_stopping": stopping, "average_epochs": average_epochs,
        }, arrays)


def finish_phase(model: keras.Model, callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """What fit does for a phase whose epochs all ran before the interruption: restore, then end it
    (early stopping's best weights, the weight average), without an epoch."""
    for callback in callbacks:
        callback.set_model(model)
    for callback in callbacks:
        callback.on_train_begin()
    for callback in callbacks:
        callback.on_train_end()


def _newest_key(staging: Path) -> dict[str, Any] | None:
    """The run key of the newest checkpoint in `staging` (None: it holds none)."""
    states = sorted((staging / FOLDER).glob(f"epoch-*/{STATE}"))
    if not states:
        return None
    try:
        return json.loads(states[-1].read_text(encoding="utf-8"))["key"]
    except (OSError, ValueError, KeyError):
        return None


def claim_interrupted(final: Path, key: dict[str, Any], *, resume: bool, log: Log) -> Path | None:
    """The staging folder an interrupted run of this worker left beside `final`, for --resume to adopt.

    Without --resume such folders are removed (the run starts over, as it did before --resume
    existed), and so are staging folders of killed runs that hold no checkpoint. Folders of another
    worker's checkpoints (a multi-worker run sharing this folder) are left to that worker.

    Raises:
        ConfigError: with --resume, the interrupted run had other options or data; nothing is removed.
    """
    mine, empty = [], []
    for staging in interrupted_stagings(final):
        stored = _newest_key(staging)
        if stored is None:
            empty.append(staging)
        elif stored.get("task") == key["task"]:
            mine.append((staging, stored))
    if resume and mine and mine[0][1] != key:
        raise ConfigError(f"--resume: the interrupted run in {mine[0][0]} is another run "
                          f"({_difference(mine[0][1], key)}); pass the options of that run, or drop --resume to start over")
    for staging in empty:
        shutil.rmtree(staging, ignore_errors=True)
    if resume and mine:
        for older, _ in mine[1:]:
            shutil.rmtree(older, ignore_errors=True)
        return mine[0][0]
    for staging, _ in mine:
        log(f"train: removed the checkpoints of an interrupted run in {staging} (--resume would continue it)")
        shutil.rmtree(staging, ignore_errors=True)
    return None
