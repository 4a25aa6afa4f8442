"""`mdx train --strategy multiworker` with two worker processes on 127.0.0.1 (TF_CONFIG per worker).

Two workers of batch 4 train what one process of batch 8 trains (the same global batch, the same
seeded shuffle and augmentation of each global batch); SIGKILL of one worker mid-run ends the other
in one `error:` line naming the dead worker, and `--resume` on both continues from the last epoch.
On another machine each host runs the same command with its own TF_CONFIG (docs/training.md).

Kept small for CI: 8 training images at 64 px, two frozen-backbone epochs, on the bundled ImageNet
weights (at random init every output is 0.5 and equal metrics would prove nothing).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from reliability_support import error_line, leftovers, mdx
from test_resume import PAUSED, SHIM, _weights

RECIPE = ["--input-size", 64, "--alpha", 1.0, "--weights", "bundled", "--epochs-frozen", 2, "--epochs-finetune", 0,
          "--patience", 0, "--val-fraction", 0.25]
TIMEOUT = 400


@pytest.fixture(scope="module")
def data(xray_splits: Path) -> Path:
    return xray_splits


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(args: list[object], cwd: Path, *, pause: dict[int, int] | None = None) -> list[subprocess.Popen[str]]:
    """Two `mdx ARGS --strategy multiworker` processes, worker i with TF_CONFIG task index i; worker i
    waits at the start of epoch `pause[i]` (via the shim of test_resume.py)."""
    ports = _free_ports(2)
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                     "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PAUSE_AT_EPOCH": str((pause or {}).get(index, 0))}
        processes.append(subprocess.Popen([sys.executable, "-c", SHIM, *map(str, args), "--strategy", "multiworker"],
                                          cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def _finish(processes: list[subprocess.Popen[str]]) -> list[str]:
    """Wait for every worker (killed at TIMEOUT); returns their stderr."""
    timers = [threading.Timer(TIMEOUT, p.kill) for p in processes]
    for timer in timers:
        timer.start()
    try:
        return [p.communicate()[1] for p in processes]
    finally:
        for timer in timers:
            timer.cancel()


@pytest.mark.tf
@pytest.mark.slow
def test_mdx_train_two_workers_equal_one_worker_of_the_same_global_batch(tmp_path: Path, data: Path) -> None:
    # no dropout: each replica draws its own masks (by design), which the two runs cannot share
    two = tmp_path / "two"
    processes = _workers(["train", data, "--out", two, *RECIPE, "--batch-size", 4, "--dropout", 0], tmp_path)
    one = mdx("train", data, "--out", tmp_path / "one", *RECIPE, "--batch-size", 8, "--dropout", 0)
    logs = _finish(processes)
    assert one.exit_code == 0, one.output
    assert [p.returncode for p in processes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "the chief saves" in logs[1]

    record = json.loads((two / "train" / "record.json").read_text())
    assert record["replicas"] == 2 and record["config"]["strategy"] == "multiworker"
    reference = json.loads((tmp_path / "one" / "train" / "record.json").read_text())
    assert reference["replicas"] == 1
    # the same global batches, their loss summed in another order across two processes: float32 rounding only
    history = [json.loads((run / "train" / "history.json").read_text()) for run in (two, tmp_path / "one")]
    for name in ("loss", "val_loss", "val_auc"):
        np.testing.assert_allclose(history[0][name], history[1][name], rtol=1e-4, atol=1e-5, err_msg=name)
    # Adam divides by sqrt(v): where a gradient is ~0 the all-reduce's rounding moves a weight by a share of
    # the step (lr 1e-3); measured here: 1 weight of 163840 off by 1.3e-5, the rest within 1e-5
    for got, expected in zip(_weights(two / "train"), _weights(tmp_path / "one" / "train"), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert record["metrics"]["test"]["auc"]["value"] == pytest.approx(reference["metrics"]["test"]["auc"]["value"],
                                                                      abs=1e-6)
    assert not leftovers(tmp_path)  # worker 1 trained in a staging folder of its own and removed it


@pytest.mark.tf
@pytest.mark.slow
def test_mdx_train_worker_killed_mid_run_other_fails_naming_it_then_resume_on_both(tmp_path: Path, data: Path) -> None:
    run = tmp_path / "run"
    args = ["train", data, "--out", run, *RECIPE, "--batch-size", 4, "--resume"]
    processes = _workers(args, tmp_path, pause={1: 2})  # worker 1 waits at epoch 2; worker 0 waits for it
    for line in processes[1].stderr:  # type: ignore[union-attr]
        if PAUSED in line:
            break
    processes[1].send_signal(signal.SIGKILL)
    survivor = _finish(processes)[0]
    assert processes[1].returncode == -signal.SIGKILL
    assert processes[0].returncode == 1, survivor[-3000:]
    line = error_line(survivor)
    assert "worker 1 (127.0.0.1:" in line and "stopped answering" in line and "--resume" in line, line
    assert not (run / "train").exists()
    stagings = sorted(run.glob(".train.partial-*"))
    assert len(stagings) == 2  # worker 0 kept its checkpoint (--resume); worker 1 was killed with its own
    assert all((s / "checkpoints" / "epoch-0001" / "state.json").is_file() for s in stagings)

    again = _finish(_workers(args, tmp_path))
    assert "continuing after epoch 1/2" in again[0] and "continuing after epoch 1/2" in again[1], again[0][-3000:]
    record = json.loads((run / "train" / "record.json").read_text())
    assert record["resumed_from_epoch"] == 1 and record["epochs_run"] == 2
    assert not leftovers(tmp_path)
