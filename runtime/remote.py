"""`mdx bench --host`: time a model on a board over SSH with the copied harness, and bring the JSON back.

Only `ssh` is needed at both ends: runtime/ and the model travel as one tar stream into a fresh
`mktemp -d` folder, `python -m runtime bench` runs there (the board needs numpy and an interpreter,
as in the README's Raspberry Pi section), its JSON comes back on stdout, and the folder is removed.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bench import BenchConfig
from .errors import RemoteError, UsageError
from .interpreter import validate_model_file

RUNTIME_DIR = Path(__file__).resolve().parent
REMOTE_MODEL = "model.tflite"
REMOTE_RESULT = "bench.json"


@dataclass(frozen=True)
class RemoteConfig:
    """Where to run: `host` as ssh takes it (user@board, or a Host of ~/.ssh/config), the board's python,
    extra ssh options (e.g. ("-p", "2222", "-i", "key")), and how long one ssh call may take."""

    host: str
    python: str = "python3"
    ssh_options: tuple[str, ...] = ()
    timeout: float = 900.0

    def __post_init__(self) -> None:
        if not self.host or self.host.startswith("-"):
            raise UsageError(f"--host {self.host!r} is not a host; pass user@board or a Host from ~/.ssh/config")
        if self.timeout <= 0:
            raise UsageError(f"timeout {self.timeout!r} must be positive (seconds)")


def _bundle(model: Path) -> bytes:
    """runtime/ (without caches) and the model as an uncompressed tar archive."""

    def no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(RUNTIME_DIR, arcname="runtime", filter=no_cache)
        archive.add(model, arcname=REMOTE_MODEL)
    return buffer.getvalue()


def _ssh(config: RemoteConfig, command: str, what: str, stdin: bytes | None = None,
         rename: dict[str, str] | None = None) -> str:
    """Run `command` on the host; its stdout, or a RemoteError naming the host, the step and ssh's last line."""
    argv = ["ssh", "-o", "BatchMode=yes", *config.ssh_options, config.host, command]
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=config.timeout, check=False)
    except FileNotFoundError:
        raise RemoteError("ssh not found on this machine; install the OpenSSH client (apt-get install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{config.host}: {what} took over {config.timeout:.0f} s; check the board, "
                          "or raise --remote-timeout") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]  # the harness's own one-line error
        if errors:  # it names the file and the fix already: say which file that is here
            detail = errors[-1].removeprefix("error:").strip()
            for remote, local in (rename or {}).items():
                detail = detail.replace(remote, local)
            raise RemoteError(f"{config.host}: {what} failed: {detail}")
        detail = (lines or [f"exit code {done.returncode}"])[-1].strip()
        fix = ("install numpy and ai-edge-litert (or tflite-runtime) there, or pass --remote-python"
               if "No module named" in detail else "check that `ssh HOST true` works without a password prompt")
        raise RemoteError(f"{config.host}: {what} failed ({detail}); {fix}")
    return done.stdout.decode(errors="replace")


def bench_remote(model_path: Path, bench: BenchConfig, config: RemoteConfig) -> dict[str, Any]:
    """Time `model_path` with `bench` settings on `config.host`; the harness's result dict plus a "remote" entry.

    Raises:
        ModelLoadError: the local model file is missing or not a .tflite.
        RemoteError: ssh failed, or the harness failed on the host (its error line is quoted).
    """
    model = validate_model_file(model_path)
    bundle = _bundle(model)
    folder = _ssh(config, "mktemp -d", "making a working folder").strip()
    if not folder.startswith("/"):
        raise RemoteError(f"{config.host}: `mktemp -d` printed {folder!r}, not a folder; is this a POSIX shell?")
    quoted = shlex.quote(folder)
    try:
        _ssh(config, f"tar -C {quoted} -xf -", "copying runtime/ and the model", stdin=bundle)
        python = " ".join(shlex.quote(word) for word in shlex.split(config.python))  # "python3 -I" is two words
        command = (f"cd {quoted} && {python} -m runtime bench {REMOTE_MODEL} "
                   f"{' '.join(shlex.quote(a) for a in bench_arguments(bench))} --json {REMOTE_RESULT} >&2 && cat {REMOTE_RESULT}")
        output = _ssh(config, command, f"running the harness with {config.python}",
                      rename={f"{folder}/{REMOTE_MODEL}": str(model)})
    finally:
        try:
            _ssh(config, f"rm -rf {quoted}", "removing the working folder")
        except RemoteError:
            pass  # an unreachable host already failed above with the useful message
    try:
        result: dict[str, Any] = json.loads(output)
    except json.JSONDecodeError:
        raise RemoteError(f"{config.host}: the harness printed no JSON result ({output[:80]!r})") from None
    result["model"]["path"] = str(model)
    result["remote"] = {"host": config.host, "python": config.python, "folder": folder,
                        "bundle_bytes": len(bundle)}
    return result


def bench_arguments(config: BenchConfig) -> list[str]:
    """The `python -m runtime bench` options that reproduce `config` on the host."""
    args = ["--threads", ",".join(map(str, config.threads)), "--warmup", str(config.warmup), "--runs",
            str(config.runs), "--min-seconds", str(config.min_seconds), "--runtime", config.runtime]
    return args + ([] if config.xnnpack else ["--no-xnnpack"])
