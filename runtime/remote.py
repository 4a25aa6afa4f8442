"""`mdx bench --host` and `mdx check --host`: run the copied harness on a board over SSH, bring the JSON back.

Only `ssh` is needed at both ends: runtime/, the model(s) and the data travel as one tar stream into a fresh
`mktemp -d` folder, `python -m runtime bench` (or `check`) runs there (the board needs numpy and an interpreter,
as docs/board.md says), its JSON comes back on stdout, and the folder is removed.
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
from .errors import InputDataError, RemoteError, ToleranceError, UsageError
from .interpreter import validate_model_file
from .model_info import LABELS_NAME, RECORD_NAME

RUNTIME_DIR = Path(__file__).resolve().parent
REMOTE_MODEL = "model.tflite"
REMOTE_RESULT = "result.json"


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


def _bundle(files: dict[str, Path]) -> bytes:
    """runtime/ (without caches) and `files` (archive name -> local file or folder) as one uncompressed tar."""

    def no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(RUNTIME_DIR, arcname="runtime", filter=no_cache)
        for name, path in files.items():
            archive.add(path, arcname=name)
    return buffer.getvalue()


def _model_files(model: Path, folder: str) -> dict[str, Path]:
    """The model and what `load_model_info` reads beside it (record.json, labels.txt), under `folder/`."""
    model = validate_model_file(model)
    files = {f"{folder}/{REMOTE_MODEL}": model}
    for sidecar in (RECORD_NAME, LABELS_NAME):
        if (model.parent / sidecar).is_file():
            files[f"{folder}/{sidecar}"] = model.parent / sidecar
    return files


def _ssh(config: RemoteConfig, command: str, what: str, stdin: bytes | None = None,
         rename: dict[str, str] | None = None, accept: tuple[int, ...] = (0,)) -> tuple[str, int]:
    """Run `command` on the host: (stdout, exit code) when the code is in `accept`, else a RemoteError naming
    the host, the step and the harness's error line (or ssh's last line) and the fix."""
    argv = ["ssh", "-o", "BatchMode=yes", *config.ssh_options, config.host, command]
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=config.timeout, check=False)
    except FileNotFoundError:
        raise RemoteError("ssh not found on this machine; install the OpenSSH client (apt-get install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{config.host}: {what} took over {config.timeout:.0f} s; check the board, "
                          "or raise --remote-timeout") from None
    if done.returncode not in accept:
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
    return done.stdout.decode(errors="replace"), done.returncode


def _harness_on_host(files: dict[str, Path], harness_args: list[str], config: RemoteConfig,
                     accept: tuple[int, ...] = (0,)) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Copy runtime/ and `files` to a fresh folder on the host, run `python -m runtime *harness_args --json`
    there, remove the folder. Returns (the harness's JSON, its exit code, facts about the remote run)."""
    bundle = _bundle(files)
    folder = _ssh(config, "mktemp -d", "making a working folder")[0].strip()
    if not folder.startswith("/"):
        raise RemoteError(f"{config.host}: `mktemp -d` printed {folder!r}, not a folder; is this a POSIX shell?")
    quoted = shlex.quote(folder)
    rename = {f"{folder}/{name}": str(path) for name, path in files.items()}
    try:
        _ssh(config, f"tar -C {quoted} -xf -", "copying runtime/ and the files", stdin=bundle)
        python = " ".join(shlex.quote(word) for word in shlex.split(config.python))  # "python3 -I" is two words
        args = " ".join(shlex.quote(arg) for arg in harness_args)
        # the JSON comes back on stdout whatever the exit code: a failed parity gate (3) still has a result
        command = (f"cd {quoted} && {python} -m runtime {args} --json {REMOTE_RESULT} >&2; status=$?; "
                   f"[ -f {REMOTE_RESULT} ] && cat {REMOTE_RESULT}; exit $status")
        output, code = _ssh(config, command, f"running the harness with {config.python}", rename=rename,
                            accept=accept)
    finally:
        try:
            _ssh(config, f"rm -rf {quoted}", "removing the working folder")
        except RemoteError:
            pass  # an unreachable host already failed above with the useful message
    try:
        result: dict[str, Any] = json.loads(output)
    except json.JSONDecodeError:
        raise RemoteError(f"{config.host}: the harness printed no JSON result ({output[:80]!r})") from None
    return result, code, {"host": config.host, "python": config.python, "folder": folder, "bundle_bytes": len(bundle)}


def bench_remote(model_path: Path, bench: BenchConfig, config: RemoteConfig) -> dict[str, Any]:
    """Time `model_path` with `bench` settings on `config.host`; the harness's result dict plus a "remote" entry.

    Raises:
        ModelLoadError: the local model file is missing or not a .tflite.
        RemoteError: ssh failed, or the harness failed on the host (its error line is quoted).
    """
    files = _model_files(model_path, "model")
    result, _, remote = _harness_on_host(files, ["bench", f"model/{REMOTE_MODEL}", *bench_arguments(bench)], config)
    result["model"]["path"] = str(model_path)
    result["remote"] = remote
    return result


def check_remote(candidate: Path, reference: Path, data: Path, check_args: list[str],
                 config: RemoteConfig) -> dict[str, Any]:
    """`python -m runtime check` of `candidate` against `reference` on `data` (a class-folder tree or an .npz),
    run on `config.host`: int8 kernels differ between architectures, so parity is proven where the model runs.

    Returns:
        The harness's check result (its "passed" says whether every tolerance held) plus a "remote" entry.

    Raises:
        InputDataError: `data` does not exist.
        ModelLoadError, RemoteError: as bench_remote.
    """
    data = Path(data)
    if not data.exists():
        raise InputDataError(f"{data}: no such file or folder; pass a folder of class folders or an .npz")
    data_name = "data.npz" if data.is_file() else "data"
    models = {**_model_files(candidate, "candidate"), **_model_files(reference, "reference")}
    args = ["check", f"candidate/{REMOTE_MODEL}", data_name, "--reference", f"reference/{REMOTE_MODEL}", *check_args]
    result, _, remote = _harness_on_host({**models, data_name: data}, args, config, accept=(0, ToleranceError.exit_code))
    # the threshold's source and the warnings name the board's copies (candidate/record.json): say which files here
    for name, path in models.items():
        result["decision"]["source"] = result["decision"]["source"].replace(name, str(path))
        result["warnings"] = [warning.replace(name, str(path)) for warning in result["warnings"]]
    result["remote"] = remote
    return result


def bench_arguments(config: BenchConfig) -> list[str]:
    """The `python -m runtime bench` options that reproduce `config` on the host."""
    args = ["--threads", ",".join(map(str, config.threads)), "--warmup", str(config.warmup), "--runs",
            str(config.runs), "--min-seconds", str(config.min_seconds), "--runtime", config.runtime]
    return args + ([] if config.xnnpack else ["--no-xnnpack"])
