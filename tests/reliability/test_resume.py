"""`mdx train --resume` after a SIGKILL: the resumed model is the uninterrupted one.

The child runs the real command line through a shim that, at the start of one epoch (after the
previous epoch's checkpoint is written), announces it and waits; the test then kills it with SIGKILL,
as the OOM killer or a reboot would, so no handler of mdx runs. The recipe is the full one: a frozen
phase, then fine-tuning with a cosine schedule and the mean of the last two epochs' weights, on the
bundled ImageNet weights (64 px: at 32 px the backbone's features are all zero, see
test_reproducibility.py), so the kill lands mid-phase with Adam's moments, the schedule's step, the
dropout stream, the shuffle order and, in epoch 4, the average's running sum all in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from reliability_support import assert_fails, leftovers, mdx

PAUSED = "MDX-TEST-PAUSED"
SHIM = f"""
import os, sys, time
import mdx.train.progress as progress
real_begin = progress.EpochProgress.on_epoch_begin
def paused_begin(self, epoch, logs=None):
    if epoch + 1 == int(os.environ["PAUSE_AT_EPOCH"]):
        sys.stderr.write("{PAUSED}\\n"); sys.stderr.flush()
        time.sleep(600)
    real_begin(self, epoch, logs)
progress.EpochProgress.on_epoch_begin = paused_begin
from mdx.cli import main
sys.argv = ["mdx", *sys.argv[1:]]
main()
"""
RECIPE = ["--input-size", 64, "--alpha", 1.0, "--weights", "bundled", "--epochs-frozen", 1, "--epochs-finetune", 3,
          "--batch-size", 4, "--val-fraction", 0.25, "--patience", 0, "--average-epochs", 2, "--lr-schedule", "cosine"]


@pytest.fixture(scope="module")
def data(xray_splits: Path) -> Path:
    return xray_splits


@pytest.fixture(scope="module")
def uninterrupted(data: Path) -> Path:
    """The reference: the same command, never killed."""
    run = data.parent / "uninterrupted"
    result = mdx("train", data, "--out", run, *RECIPE)
    assert result.exit_code == 0, result.output
    return run / "train"


def _kill_at_epoch(args: list[object], epoch: int, cwd: Path, timeout: float = 300) -> int:
    """Start `mdx ARGS` via the shim, SIGKILL it once epoch `epoch` begins; returns the dead child's pid."""
    process = subprocess.Popen([sys.executable, "-c", SHIM, *map(str, args)], cwd=cwd,
                               env={**os.environ, "PAUSE_AT_EPOCH": str(epoch)}, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines = []
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if PAUSED in line:
                break
        assert process.poll() is None, "".join(lines)
        process.send_signal(signal.SIGKILL)
        process.communicate()
    finally:
        timer.cancel()
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    return process.pid


def _weights(folder: Path) -> list[np.ndarray]:
    from mdx.train.keras_load import load_model

    return load_model(folder / "model.keras").get_weights()


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("killed_in", [3, 4], ids=["epoch3of4", "epoch4of4-averaging"])
def test_mdx_train_sigkill_then_resume_equals_uninterrupted_weights_and_record(killed_in: int, tmp_path: Path,
                                                                              data: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    args = ["train", data, "--out", run, *RECIPE]
    pid = _kill_at_epoch(args, killed_in, tmp_path)
    staging = run / f".train.partial-{pid}"
    assert not (run / "train").exists()
    assert sorted(p.name for p in (staging / "checkpoints").glob("epoch-*")) == [
        f"epoch-{e:04d}" for e in (killed_in - 2, killed_in - 1)]  # the last two complete epochs, nothing half-written

    resumed = mdx(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"continuing after epoch {killed_in - 1}/4" in resumed.output
    record = json.loads((run / "train" / "record.json").read_text())
    assert record["resumed_from_epoch"] == killed_in - 1 and record["epochs_run"] == 4
    assert json.loads((uninterrupted / "record.json").read_text())["resumed_from_epoch"] is None
    # bit-equal on CPU here (TF 2.21, deterministic kernels): the tolerance is float32's last bits only
    for resumed_weights, reference in zip(_weights(run / "train"), _weights(uninterrupted), strict=True):
        np.testing.assert_allclose(resumed_weights, reference, rtol=1e-6, atol=1e-7)
    assert (run / "train" / "history.json").read_text() == (uninterrupted / "history.json").read_text()
    assert json.loads((run / "train" / "metrics.json").read_text()) == json.loads(
        (uninterrupted / "metrics.json").read_text())
    assert not staging.exists() and not leftovers(run)
    assert not (run / "train" / "checkpoints").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_mdx_train_without_resume_after_sigkill_starts_over_and_removes_stale_checkpoints(tmp_path: Path,
                                                                                         data: Path) -> None:
    run = tmp_path / "run"
    args = ["train", data, "--out", run, *RECIPE[:8], "--epochs-frozen", 2, "--epochs-finetune", 0, "--batch-size", 4]
    pid = _kill_at_epoch(args, 2, tmp_path)
    assert (run / f".train.partial-{pid}" / "checkpoints" / "epoch-0001" / "state.json").is_file()

    again = mdx(*args)
    assert again.exit_code == 0, again.output
    assert "removed the checkpoints of an interrupted run" in again.output
    assert json.loads((run / "train" / "record.json").read_text())["resumed_from_epoch"] is None
    assert not leftovers(run)


@pytest.mark.tf
@pytest.mark.slow
def test_mdx_train_resume_with_other_options_one_line_error_naming_the_option(tmp_path: Path, data: Path) -> None:
    run = tmp_path / "run"
    args = ["train", data, "--out", run, *RECIPE[:8], "--epochs-frozen", 2, "--epochs-finetune", 0, "--batch-size", 4]
    pid = _kill_at_epoch(args, 2, tmp_path)

    other = mdx(*args, "--seed", 1, "--resume")
    assert_fails(other, 2, "--resume", "seed 0 there, 1 here", "drop --resume to start over")
    assert (run / f".train.partial-{pid}" / "checkpoints" / "epoch-0001").is_dir()  # untouched, for the right options
    assert not (run / "train").exists()
