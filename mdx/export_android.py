"""`mdx export android`: one converted variant, its labels and golden vectors into the Android demo app.

Writes two folders of the app, each built under a temporary name and renamed into place:

* `app/src/main/assets/` (shipped in the APK): model.tflite, labels.txt, model_config.json (input
  size, mean/std, tensor types and quantization, labels, threshold, model sha256) and sample.png (the
  first golden image at the model's size, so the app's sample needs no resize and must reproduce the
  harness's result on a phone).
* `app/src/test/resources/golden/` (JVM unit tests only): real test X-rays as ARGB pixels, the exact
  input tensors and raw outputs of the Python harness, golden.json, and this stage's record.json (kept
  out of the APK because a record names the machine).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase
from mdx.errors import ArtifactError
from mdx.model_contract import (
    CONFIG_NAME,
    LABELS_NAME,
    MODEL_NAME,
    SAMPLE_NAME,
    check_export_options,
    png_bytes,
    prepare,
)
from mdx.records import RECORD_NAME, staged_dir, write_record
from mdx.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text, file_facts, sha256_file
from mdx.variants import Quantization

ASSETS = Path("app/src/main/assets")
GOLDEN = Path("app/src/test/resources/golden")
MANIFEST = Path("app/src/main/AndroidManifest.xml")
APP_DTYPES = ("float32", "int8", "uint8")
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class ExportConfig(ConfigBase):
    """Which variant of the run to export, into which app folder, with how many golden images."""

    variant: Quantization = Quantization.INT8
    app: Path = Path("android_demo")
    golden_count: int = 4
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_export_options(self)
        object.__setattr__(self, "app", Path(self.app))


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where the export went and what it holds."""

    app: Path
    assets: Path
    golden: Path
    variant: Quantization
    model_bytes: int
    golden_count: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"app": str(self.app), "assets": str(self.assets), "golden": str(self.golden),
                "variant": self.variant.value, "model_bytes": self.model_bytes,
                "golden_count": self.golden_count, "seconds": round(self.seconds, 2)}


def export_android(run: Path, config: ExportConfig, *, on_log: Log | None = None) -> ExportResult:
    """Copy `run`'s converted variant into the app with its config, sample and golden vectors.

    Args:
        run: a run folder with convert/<variant>/ (from mdx convert) and train/record.json.
        config: variant, app folder, golden image count, overwrite.
        on_log: called with one summary line.

    Raises:
        ArtifactError: the run lacks the variant or its records disagree with the model, the app
            folder is not the demo app, or an output folder exists without overwrite.
        DataError: the test images named by the training record are missing or too few.
    """
    from mdx import android_golden as gold

    started = time.perf_counter()
    run, app = Path(run), config.app
    if not (app / MANIFEST).is_file():
        raise ArtifactError(f"{app} is not the Android demo app (no {MANIFEST}); pass --app android_demo")
    contract = prepare(run, config.variant, config.golden_count, dtypes=APP_DTYPES,
                       consumer="the app feeds float32, int8 or uint8")
    variant, model, golden, images = contract.variant, contract.model, contract.golden, contract.images
    model_sha, model_bytes, model_config = contract.model_sha256, contract.model_bytes, contract.config

    with staged_dir(app / ASSETS, overwrite=config.overwrite) as assets, \
            staged_dir(app / GOLDEN, overwrite=config.overwrite) as golden_dir:
        asset_files = [
            atomic_write_bytes(assets / MODEL_NAME, model.read_bytes()),
            atomic_write_text(assets / LABELS_NAME, "\n".join(variant.labels) + "\n"),
            atomic_write_json(assets / CONFIG_NAME, model_config),
            atomic_write_bytes(assets / SAMPLE_NAME, png_bytes(golden.pixels[0])),
        ]
        written = {name: atomic_write_bytes(golden_dir / name, data) for name, data in gold.golden_files(golden).items()}
        facts = {name: {"path": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
                 for name, path in written.items()}
        index = gold.golden_index(golden, facts, model_sha, contract.input_dtype, contract.output_dtype)
        index_file = atomic_write_json(golden_dir / gold.INDEX_NAME, index)
        write_record(
            golden_dir, stage="export-android", config=config.to_dict(),
            inputs=[model, variant.folder / RECORD_NAME, contract.train_record, *(p for p, _ in images)],
            outputs=[*written.values(), index_file], wall_seconds=time.perf_counter() - started,
            extra={"variant": config.variant.value, "run": str(run.resolve()),
                   "assets": [{**file_facts(p), "path": str(ASSETS / p.name)} for p in asset_files],
                   "model_config": model_config},
        )
    seconds = time.perf_counter() - started
    if on_log is not None:
        size = f"{model_bytes / 1e6:.1f} MB" if model_bytes >= 1e6 else f"{model_bytes / 1e3:.1f} KB"
        on_log(f"android: exported {config.variant} {MODEL_NAME} ({size}) and "
               f"{len(images)} golden vectors to {app} in {seconds:.1f} s")
    return ExportResult(app, app / ASSETS, app / GOLDEN, config.variant, model_bytes, len(images), seconds)

