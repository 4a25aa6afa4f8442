"""Every stage writes its own folder with a `record.json` that is never rewritten.

The folder is built under a temporary name and renamed into place when the stage succeeds, so an
interrupted stage leaves nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mdx.errors import ArtifactError, OutputError
from mdx.runtime.files import NO_SPACE_ERRNOS, atomic_write_json, file_facts, sha256_file, write_failure
from mdx.runtime.machine import RELEVANT_PACKAGES, machine_facts, package_versions

RECORD_NAME = "record.json"


@contextlib.contextmanager
def staged_dir(final: Path, *, overwrite: bool, adopt: Path | None = None, keep: Callable[[], bool] = lambda: False,
               publish: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; on success it replaces `final`.

    `adopt` is the staging folder of an interrupted run to continue in (`mdx train --resume`), renamed to
    this process's; `keep()` True on a failure leaves the staging folder for such a run; `publish` False
    removes it on success too (a multi-worker run's other workers: only the chief saves).

    Raises:
        ArtifactError: `final` exists and `overwrite` is false, or it cannot be written (read-only, disk full).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise ArtifactError(f"{final} already exists; pass --overwrite to replace it, or choose another --out")
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if adopt is None or Path(adopt) != staging:  # this process's own kept folder is adopted in place
            shutil.rmtree(staging, ignore_errors=True)
        if adopt is None:
            staging.mkdir()
        elif Path(adopt) != staging:
            os.replace(adopt, staging)
    except OSError as exc:
        raise ArtifactError(write_failure(final, exc)) from None
    try:
        yield staging
    except BaseException as exc:
        if not keep():
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OutputError):  # an atomic write inside the stage: report it as this stage's artifact
            raise ArtifactError(str(exc).replace(str(staging), str(final))) from None
        # a full disk met by a writer that is not ours (Keras, matplotlib) is a user problem, not a bug
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            raise ArtifactError(write_failure(final, exc)) from None
        raise
    if not publish:
        shutil.rmtree(staging, ignore_errors=True)
        return
    try:
        if final.exists():
            trash = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, trash)
            os.replace(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(write_failure(final, exc)) from None


def _relative_facts(path: Path, folder: Path, *, with_gzip: bool) -> dict[str, Any]:
    facts = file_facts(path, with_gzip=with_gzip)
    try:
        facts["path"] = str(Path(path).resolve().relative_to(Path(folder).resolve()))
    except ValueError:
        facts["path"] = str(Path(path).resolve())
    return facts


def write_record(
    folder: Path,
    *,
    stage: str,
    config: dict[str, Any],
    inputs: list[Path],
    outputs: list[Path],
    metrics: dict[str, Any] | None = None,
    wall_seconds: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `folder/record.json`: stage, config, hashed inputs and outputs, versions, machine, metrics.

    Output paths are stored relative to `folder`, so the folder can be renamed or moved.
    """
    folder = Path(folder)
    record = {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "inputs": [file_facts(p) for p in inputs],
        "outputs": [_relative_facts(p, folder, with_gzip=Path(p).suffix == ".tflite") for p in outputs],
        "metrics": metrics or {},
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 3),
        "versions": package_versions(RELEVANT_PACKAGES),
        "machine": machine_facts(),
        **(extra or {}),
    }
    return atomic_write_json(folder / RECORD_NAME, record)


def read_record(folder: Path, *, verify: bool = True) -> dict[str, Any]:
    """Read a stage's record and, by default, check that its outputs still match their sha256.

    Raises:
        ArtifactError: the record is missing, unreadable, or an output changed since it was written.
    """
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise ArtifactError(f"{path} not found: {folder} is not an mdx stage folder (run the stage that makes it)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); rerun the stage with --overwrite") from None
    if verify:
        for output in record.get("outputs", []):
            target = Path(folder) / output["path"]
            if not target.is_file():
                raise ArtifactError(f"{target} listed in {path} is missing; rerun the stage with --overwrite")
            if sha256_file(target) != output["sha256"]:
                raise ArtifactError(
                    f"{target} changed since {path} was written (sha256 differs); rerun the stage with --overwrite"
                )
    return record
