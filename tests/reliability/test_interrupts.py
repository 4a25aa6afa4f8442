"""SIGINT and SIGTERM in the middle of train, convert and bench, sent to the real command line.

Each command runs as a subprocess through a small shim that slows `os.fsync` (every artifact write
goes through it) and announces the write, so the signal lands while the stage is writing. After the
signal: exit 130 and one `error: interrupted` line, no record.json of the unfinished stage, no
staging folder or temporary file; and the same command then runs to completion.

Each child is started with the signal dispositions its test is about, not the ones pytest inherited: a
suite started as `make test &`, under `nohup` or by a CI runner hands SIGINT down ignored, and a child
that inherits that keeps ignoring it (as mdx means to; tested below).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import REPO, TINY, copy_xrays, error_line, golden, leftovers, mdx

WRITING = "MDX-TEST-WRITING"
TIMING = "MDX-TEST-TIMING"
CONVERTING = "MDX-TEST-CONVERTING"
CONVERTED = "MDX-TEST-CONVERTED"
SHIM = f"""
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):
    sys.stderr.write("{WRITING}\\n"); sys.stderr.flush()
    # short sleeps: the kernel may hand the signal to one of TensorFlow's threads, and then one long sleep
    # of the main thread is not cut short and the handler runs only when it ends
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
    real_fsync(fd)
if os.environ.get("SLOW_WRITES"):
    os.fsync = slow_fsync
if os.environ.get("FIT_NOTHING"):
    import mdx.train.fit as fit
    fit._fit_phase = lambda *a, **k: {{m: [0.5] for m in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")}}
if os.environ.get("MARK_TIMING"):
    import mdx.runtime.bench as bench_module
    real_bench = bench_module.bench
    def marked_bench(*args, **kwargs):
        sys.stderr.write("{TIMING}\\n"); sys.stderr.flush()
        return real_bench(*args, **kwargs)
    bench_module.bench = marked_bench
if os.environ.get("MARK_CONVERTING"):  # announce each variant's conversion (TensorFlow tracing, calibration)
    import mdx.convert.convert as convert_module
    real_tflite_bytes = convert_module.tflite_bytes
    def marked_tflite_bytes(*args, **kwargs):
        sys.stderr.write("{CONVERTING}\\n"); sys.stderr.flush()
        data = real_tflite_bytes(*args, **kwargs)
        sys.stderr.write("{CONVERTED}\\n"); sys.stderr.flush()
        return data
    convert_module.tflite_bytes = marked_tflite_bytes
if os.environ.get("NO_SIGTERM_HANDLER"):  # the protection removed: SIGTERM kills at once
    import signal
    signal.signal = lambda *args: None
from mdx.cli import main
sys.argv = ["mdx", *sys.argv[1:]]
main()
"""


def _dispositions(*, sigint_ignored: bool = False) -> Callable[[], None]:
    """A `preexec_fn` that gives the child SIGINT ignored or default (Python then raises KeyboardInterrupt
    on it) and SIGTERM default, whatever the test process inherited."""
    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN if sigint_ignored else signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return preexec


def _start(args: list[object], cwd: Path, env: dict[str, str], *, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """`mdx ARGS` via the shim, in its own process, with stdout and stderr piped."""
    return subprocess.Popen([sys.executable, "-c", SHIM, *map(str, args)], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # no other Popen argument sets a signal disposition; the preexec only calls signal()
                            preexec_fn=_dispositions(sigint_ignored=sigint_ignored))  # noqa: PLW1509


def _run_and_signal(args: list[object], sig: signal.Signals, cwd: Path, *, ready: str, env: dict[str, str],
                    watch: Path | None = None, settle: float = 0.0, timeout: float = 180) -> tuple[int, str]:
    """Start `mdx ARGS` via the shim; send `sig` once stderr shows `ready` (or, with `watch`, once a
    staging folder appears under it); return (exit code, stderr)."""
    process = _start(args, cwd, env)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines: list[str] = []
    try:
        if watch is not None:  # signal during the stage's work, once its staging folder exists in `watch`
            while process.poll() is None and not _staging_in(watch):
                time.sleep(0.05)
            time.sleep(1.0)
        else:
            for line in process.stderr:  # type: ignore[union-attr]
                lines.append(line)
                if ready in line:
                    break
            time.sleep(settle)
        assert process.poll() is None, "".join(lines) + process.stderr.read()  # type: ignore[union-attr]
        process.send_signal(sig)
        rest = process.communicate()[1]
    finally:
        timer.cancel()
    return process.returncode, "".join(lines) + rest


def _staging_in(folder: Path) -> bool:
    try:
        return any(".partial-" in p.name for p in folder.iterdir())
    except FileNotFoundError:  # not made yet
        return False


def _assert_interrupted(code: int, stderr: str) -> None:
    assert code == 130, stderr[-3000:]
    assert "interrupted" in error_line(stderr)


TRAIN_FLAGS = ["--input-size", TINY["input_size"], "--alpha", TINY["alpha"], "--weights", TINY["weights"],
               "--epochs-frozen", TINY["epochs_frozen"], "--epochs-finetune", TINY["epochs_finetune"],
               "--batch-size", TINY["batch_size"], "--val-fraction", TINY["val_fraction"]]


@pytest.fixture
def train_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    copy_xrays(data / "train", per_class=4)
    copy_xrays(data / "test", per_class=2)
    return data


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("sig, moment", [(signal.SIGINT, "fitting"), (signal.SIGTERM, "writing")],
                         ids=["SIGINT-fitting", "SIGTERM-writing"])
def test_mdx_train_interrupted_leaves_no_train_folder_rerun_works(sig: signal.Signals, moment: str, tmp_path: Path,
                                                                  train_data: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    args = ["train", train_data, "--out", run, *TRAIN_FLAGS]
    if moment == "fitting":
        code, stderr = _run_and_signal(args, sig, tmp_path, ready="", env={}, watch=run)
    else:
        code, stderr = _run_and_signal(args, sig, tmp_path, ready=WRITING, env={"SLOW_WRITES": "1", "FIT_NOTHING": "1"})
    _assert_interrupted(code, stderr)
    assert not (run / "train").exists() and not leftovers(tmp_path)

    monkeypatch.setattr("mdx.train.fit._fit_phase", lambda *a, **k: {m: [0.5] for m in (
        "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")})
    again = mdx(*args)
    assert again.exit_code == 0, (again.output, again.exception)
    assert (run / "train" / "record.json").is_file() and not leftovers(tmp_path)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_mdx_convert_interrupted_mid_write_no_variant_folder_rerun_works(sig: signal.Signals, tmp_path: Path,
                                                                         micro_model: dict[str, Path]) -> None:
    out = tmp_path / "convert"
    args = ["convert", micro_model["model"], "--size", "16", "--mean", "127.5", "--std", "127.5", "--labels",
            micro_model["labels"], "--int8", "--calibration-dir", micro_model["calibration"],
            "--calibration-count", "4", "--out", out]
    code, stderr = _run_and_signal(args, sig, tmp_path, ready=WRITING, env={"SLOW_WRITES": "1"})
    _assert_interrupted(code, stderr)
    assert not list(out.glob("*/record.json")) and not leftovers(tmp_path)
    assert not (out / "fp32").exists() and not (out / "int8").exists()

    again = mdx(*args)
    assert again.exit_code == 0, again.output
    assert {p.parent.name for p in out.glob("*/record.json")} == {"fp32", "int8"} and not leftovers(tmp_path)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_mdx_convert_interrupted_while_converting_exits_130_at_a_safe_point_no_variant_folder(
        sig: signal.Signals, tmp_path: Path, micro_model: dict[str, Path]) -> None:
    """The signal lands while TensorFlow traces and calibrates the first variant: mdx defers it to the next safe
    point (a calibration image, the next variant, the end of the conversions; mdx.interrupts), where it unwinds
    as exit 130, not inside TensorFlow's tracing (where it surfaced as a segfault in `mdx train`)."""
    out = tmp_path / "convert"
    args = ["convert", micro_model["model"], "--size", "16", "--mean", "127.5", "--std", "127.5", "--labels",
            micro_model["labels"], "--int8", "--calibration-dir", micro_model["calibration"],
            "--calibration-count", "4", "--out", out]
    code, stderr = _run_and_signal(args, sig, tmp_path, ready=CONVERTING, env={"MARK_CONVERTING": "1"}, settle=0.05)
    _assert_interrupted(code, stderr)
    # the signal came early in fp32's conversion: that conversion ended, and mdx stopped before int8's
    assert (stderr.count(CONVERTING), stderr.count(CONVERTED)) == (1, 1), stderr[-3000:]
    assert "saved" not in stderr
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("sig, moment", [(signal.SIGINT, "timing"), (signal.SIGTERM, "writing")],
                         ids=["SIGINT-timing", "SIGTERM-writing"])
def test_mdx_bench_interrupted_writes_no_json(sig: signal.Signals, moment: str, tmp_path: Path) -> None:
    target = tmp_path / "bench.json"
    args = ["bench", golden(), "--json", target]
    if moment == "timing":  # after the probe, inside a 10-minute timing loop
        code, stderr = _run_and_signal([*args, "--min-seconds", "600"], sig, tmp_path, ready=TIMING,
                                       env={"MARK_TIMING": "1"}, settle=1.0)
    else:
        code, stderr = _run_and_signal(args, sig, tmp_path, ready=WRITING, env={"SLOW_WRITES": "1"})
    _assert_interrupted(code, stderr)
    assert not target.exists() and not leftovers(tmp_path)


def test_mdx_bench_started_with_sigint_ignored_keeps_ignoring_it_sigterm_exits_130(tmp_path: Path) -> None:
    """POSIX: a caller that ignores SIGINT (`&`, nohup) has its child ignore it too; SIGTERM still stops mdx."""
    target = tmp_path / "bench.json"
    process = _start(["bench", golden(), "--json", target, "--min-seconds", "600"], tmp_path, {"MARK_TIMING": "1"},
                     sigint_ignored=True)
    timer = threading.Timer(120, process.kill)
    timer.start()
    try:
        lines = []
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if TIMING in line:  # main() has set its handlers; the timing loop runs for 10 minutes
                break
        assert process.poll() is None, "".join(lines) + process.stderr.read()  # type: ignore[union-attr]
        assert _sigint_ignored(process.pid)
        process.send_signal(signal.SIGINT)
        time.sleep(2.0)  # the SigIgn mask above is the sharp check; this one shows mdx did not exit on SIGINT
        still_running = process.poll() is None
        process.send_signal(signal.SIGTERM)
        stderr = "".join(lines) + process.communicate()[1]
    finally:
        timer.cancel()
    assert still_running, stderr[-3000:]
    _assert_interrupted(process.returncode, stderr)
    assert not target.exists() and not leftovers(tmp_path)


def _sigint_ignored(pid: int) -> bool:
    """SIGINT's bit in the process's SigIgn mask in /proc; True where /proc is missing (the exit code decides)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return True
    ignored = next(line for line in status.read_text().splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (signal.SIGINT - 1)))


def test_python_m_runtime_bench_sigterm_exits_130_no_json(tmp_path: Path) -> None:
    target = tmp_path / "bench.json"
    process = subprocess.Popen([sys.executable, "-m", "runtime", "bench", str(golden()), "--min-seconds", "600",
                                "--json", str(target)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_dispositions())  # noqa: PLW1509 - as in _start
    _wait_for_sigterm_handler(process.pid)
    time.sleep(1.0)  # past the probe, into the timing loop
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 130, stderr
    assert error_line(stderr) == "error: interrupted" and not target.exists()


def _wait_for_sigterm_handler(pid: int, timeout: float = 60) -> None:
    """Until the process catches SIGTERM (its SigCgt mask in /proc); a fixed sleep where /proc is missing."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        time.sleep(5.0)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught = next(line for line in status.read_text().splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)
    raise AssertionError("python -m runtime never installed its SIGTERM handler")


def test_mdx_bench_without_sigterm_handler_leaves_temporary_file(tmp_path: Path) -> None:
    """Protection removed: SIGTERM without the handler kills mid-write and the temporary file stays."""
    target = tmp_path / "bench.json"
    code, _ = _run_and_signal(["bench", golden(), "--json", target], signal.SIGTERM, tmp_path, ready=WRITING,
                              env={"SLOW_WRITES": "1", "NO_SIGTERM_HANDLER": "1"})
    assert code == -signal.SIGTERM
    assert [p.name for p in leftovers(tmp_path)] and not target.exists()
