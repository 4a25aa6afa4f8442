"""`mdx bench --host`: the copied harness timed over SSH, against a real sshd on loopback (issue 6).

The fixture starts OpenSSH's sshd on 127.0.0.1 with its own host key, an authorized key made here
and no password login; the "board" is this machine, its Python the dev venv's. The test skips when
sshd is absent (`apt-get install openssh-server`; .ci/install-sshd.sh) and fails instead under
MDX_REQUIRE_SSHD=1, as CI sets it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.runtime.bench import BenchConfig
from mdx.runtime.errors import RemoteError, UsageError
from mdx.runtime.remote import RemoteConfig, bench_remote

SSHD = Path("/usr/sbin/sshd")
NO_NUMPY_PYTHON = "/usr/bin/python3"  # Debian's own Python: no numpy unless python3-numpy is installed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ssh_options(folder: Path, port: int) -> tuple[str, ...]:
    return ("-p", str(port), "-i", str(folder / "client_key"), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[tuple[str, ...]]:
    """ssh options that reach a private sshd on 127.0.0.1 as the current user."""
    if not SSHD.is_file() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        message = "sshd or ssh not found: apt-get install openssh-server openssh-client (or run .ci/install-sshd.sh)"
        if os.environ.get("MDX_REQUIRE_SSHD") == "1":
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = _free_port()
    (folder / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        f"PidFile {folder / 'sshd.pid'}", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")],
                              stderr=subprocess.PIPE, text=True)
    options = _ssh_options(folder, port)
    deadline = time.monotonic() + 20
    while subprocess.run(["ssh", *options, "-o", "BatchMode=yes", "127.0.0.1", "true"], capture_output=True,
                         check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"sshd did not come up on 127.0.0.1:{port}: {server.stderr.read()[-500:] if server.stderr else ''}")
        time.sleep(0.2)
    yield options
    server.terminate()
    server.wait(timeout=10)


def test_bench_remote_loopback_returns_harness_json_and_removes_its_folder(sshd, model_path) -> None:
    model = model_path("binary_int8")
    result = bench_remote(model, BenchConfig(threads=(1, 2), warmup=1, runs=5), RemoteConfig("127.0.0.1", sys.executable, sshd))
    assert [entry["threads"] for entry in result["timings"]] == [1, 2]
    assert all(entry["p50_ms"] > 0 and entry["runs"] >= 5 for entry in result["timings"])
    assert result["runtime"]["package"] == "ai-edge-litert"
    assert result["model"]["bytes"] == model.stat().st_size and result["model"]["path"] == str(model)
    assert result["remote"]["host"] == "127.0.0.1"
    assert not Path(result["remote"]["folder"]).exists()  # the host's working folder was removed


def test_cli_bench_host_prints_table_and_writes_json(sshd, model_path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", str(model_path("three_fp32")), "--host", "127.0.0.1", "--remote-python", sys.executable,
            "--runs", "5", "--warmup", "1", "--json", str(out)]
    for option in sshd:
        args += ["--ssh-option", option]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "on 127.0.0.1" in result.output
    assert json.loads(out.read_text())["remote"]["python"] == sys.executable


def test_bench_remote_python_without_numpy_names_host_step_and_fix(sshd, model_path) -> None:
    if subprocess.run([NO_NUMPY_PYTHON, "-c", "import numpy"], capture_output=True, check=False).returncode == 0:
        pytest.skip(f"{NO_NUMPY_PYTHON} has numpy here; this test needs a Python without it")
    with pytest.raises(RemoteError, match=r"^127\.0\.0\.1: running the harness with /usr/bin/python3 failed .*"
                                          r"install numpy and ai-edge-litert"):
        bench_remote(model_path("binary_int8"), BenchConfig(runs=2), RemoteConfig("127.0.0.1", NO_NUMPY_PYTHON, sshd))


def test_bench_remote_harness_error_on_host_is_quoted(sshd, tmp_path: Path) -> None:
    model = tmp_path / "random.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    with pytest.raises(RemoteError, match=rf"running the harness .* failed: {model}: ai-edge-litert .* cannot load this model"):
        bench_remote(model, BenchConfig(runs=2), RemoteConfig("127.0.0.1", sys.executable, sshd))


def test_cli_bench_host_unreachable_exits_1_one_line(model_path, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    result = CliRunner().invoke(app, ["bench", str(model_path("binary_int8")), "--host", "127.0.0.1", "--ssh-option",
                                      f"-p {port} -o ConnectTimeout=5 -o StrictHostKeyChecking=no"])
    assert result.exit_code == 1, result.output
    assert "127.0.0.1: making a working folder failed (ssh: connect to host 127.0.0.1 port" in result.output
    assert "Traceback" not in result.output


def test_remote_config_option_as_host_raises_usage_error() -> None:
    with pytest.raises(UsageError, match=r"--host '-p' is not a host; pass user@board"):
        RemoteConfig("-p")


# ---- mdx check --host ---------------------------------------------------------------------------------

def _check_args(sshd: tuple[str, ...]) -> list[str]:
    args = ["--host", "127.0.0.1", "--remote-python", sys.executable, "--n-boot", "0"]
    for option in sshd:
        args += ["--ssh-option", option]
    return args


def test_cli_check_host_int8_against_fp32_passes_on_the_host(sshd, model_path, golden_npz, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["check", str(model_path("binary_int8")), str(golden_npz), "--reference",
                                      str(model_path("binary_fp32")), "--json", str(out), *_check_args(sshd)])
    assert result.exit_code == 0, result.output
    assert "on 127.0.0.1" in result.output and "parity passed on 8 samples" in result.output
    saved = json.loads(out.read_text())
    assert saved["passed"] is True and saved["remote"]["host"] == "127.0.0.1"
    assert not Path(saved["remote"]["folder"]).exists()


def test_cli_check_host_broken_candidate_exits_3_with_the_hosts_figures(sshd, model_path, golden_npz) -> None:
    result = CliRunner().invoke(app, ["check", str(model_path("binary_swapped")), str(golden_npz), "--reference",
                                      str(model_path("binary_fp32")), *_check_args(sshd)])
    assert result.exit_code == 3, result.output
    assert "agreement" in result.output and "error: parity failed on 8 samples" in result.output


def test_cli_check_host_decides_at_candidate_threshold_naming_local_files(sshd, variant, add_to_record, golden_npz,
                                                                        tmp_path: Path) -> None:
    candidate, reference = variant("binary_int8"), variant("binary_fp32")
    record = add_to_record(candidate, threshold=0.55)  # at 0.55 (not 0.5) the two models part on one input
    add_to_record(reference, threshold=0.6)
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["check", str(candidate), str(golden_npz), "--reference", str(reference),
                                      "--json", str(out), "--min-agreement", "0.8", "--max-acc-drop", "20",
                                      *_check_args(sshd)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["parity"]["agreement"] == 7 / 8
    assert saved["decision"]["source"] == str(record)  # the board read candidate/record.json: named as here
    assert saved["warnings"][0].startswith(f"reference {reference} records threshold 0.6")
    assert f"threshold 0.55 ({record})" in result.output and "warning: reference" in result.output
    again = CliRunner().invoke(app, ["check", str(candidate), str(golden_npz), "--reference", str(reference),
                                     "--threshold", "0.5", *_check_args(sshd)])
    assert again.exit_code == 0 and "threshold 0.5 (--threshold)" in again.output, again.output


def test_cli_check_host_keras_reference_refused_before_ssh(model_path, golden_npz, tmp_path: Path) -> None:
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"not used")
    result = CliRunner().invoke(app, ["check", str(model_path("binary_int8")), str(golden_npz), "--reference",
                                      str(keras_file), "--host", "nowhere.invalid"])
    assert result.exit_code == 2, result.output
    assert "is a Keras model, which a board cannot run" in result.output
