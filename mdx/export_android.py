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
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase, require
from mdx.errors import ArtifactError, ConfigError, DataError
from mdx.records import RECORD_NAME, read_record, staged_dir, write_record
from mdx.runtime.decision import is_probability
from mdx.runtime.errors import UsageError
from mdx.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text, file_facts, sha256_file
from mdx.runtime.manifest import MANIFEST_NAME
from mdx.runtime.preprocess import Preprocessing
from mdx.variants import Quantization

ASSETS = Path("app/src/main/assets")
GOLDEN = Path("app/src/test/resources/golden")
MANIFEST = Path("app/src/main/AndroidManifest.xml")
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
CONFIG_NAME = "model_config.json"
SAMPLE_NAME = "sample.png"
CONFIG_FORMAT = 1  # ModelSpec.FORMAT in the app: bump both together
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
        try:
            object.__setattr__(self, "variant", Quantization(self.variant))
        except ValueError:
            names = ", ".join(q.value for q in Quantization)
            raise ConfigError(f"--variant {self.variant!r} is unknown; expected one of {names}") from None
        object.__setattr__(self, "app", Path(self.app))
        require(isinstance(self.golden_count, int) and not isinstance(self.golden_count, bool)
                and 1 <= self.golden_count <= 64,
                f"golden_count {self.golden_count!r} is invalid; expected an integer from 1 to 64")
        require(isinstance(self.overwrite, bool), f"overwrite {self.overwrite!r} must be true or false")


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


@dataclasses.dataclass(frozen=True)
class _Variant:
    """What the convert record of one variant promises about its model."""

    folder: Path
    record: dict[str, Any]
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    io: dict[str, Any]


def _read_variant(run: Path, variant: Quantization) -> _Variant:
    folder = run / "convert" / variant.value
    if not (folder / RECORD_NAME).is_file():
        built = sorted(p.name for p in (run / "convert").glob("*") if (p / RECORD_NAME).is_file())
        hint = f"built: {', '.join(built)}" if built else f"run `mdx convert {run} --{variant.value}` first"
        raise ArtifactError(f"{folder / RECORD_NAME} not found: {variant} was not converted ({hint})")
    record = read_record(folder)  # checks model.tflite and labels.txt against their sha256
    where = folder / RECORD_NAME
    if record.get("stage") != "convert" or record.get("variant") != variant.value:
        raise ArtifactError(f"{where} is a {record.get('stage')!r} record of variant {record.get('variant')!r}; "
                            f"expected convert {variant}: rerun mdx convert with --overwrite")
    try:
        preprocessing = Preprocessing.from_dict(record["preprocessing"])
        labels = tuple(str(label) for label in record["labels"])
        io_facts = {side: dict(record["io"][side]) for side in ("input", "output")}
    except KeyError as exc:
        raise ArtifactError(f"{where} has no {exc.args[0]!r}; rerun mdx convert with --overwrite") from None
    except (UsageError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{where}: invalid preprocessing, labels or io ({exc}); rerun mdx convert") from None
    for name in (MODEL_NAME, LABELS_NAME):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder / name} not found next to {where}; rerun mdx convert with --overwrite")
    on_disk = tuple(line.strip() for line in (folder / LABELS_NAME).read_text(encoding="utf-8").splitlines() if line.strip())
    if on_disk != labels:
        raise ArtifactError(f"{folder / LABELS_NAME} lists {list(on_disk)} but {where} says {list(labels)}; rerun mdx convert")
    return _Variant(folder, record, preprocessing, labels, io_facts)


def _read_train(run: Path, labels: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
    """The training record (for threshold and its rule) and the test folder the golden images come from."""
    train = run / "train"
    if not (train / RECORD_NAME).is_file():
        raise ArtifactError(f"{train / RECORD_NAME} not found: the export takes the decision threshold and test "
                            "images from the training run; pass a run folder made by mdx train and mdx convert")
    # verify=False: only the threshold and the test folder are read; the model came through convert's hashes
    record = read_record(train, verify=False)
    where = train / RECORD_NAME
    if list(record.get("labels") or []) != list(labels):
        raise ArtifactError(f"{where} labels {record.get('labels')} differ from the converted model's {list(labels)}; "
                            "reconvert the run with --overwrite")
    test_dir = (record.get("data") or {}).get("test_dir")
    if not test_dir and (train / MANIFEST_NAME).is_file():  # a split mdx carved: its test rows
        return record, train / MANIFEST_NAME
    if not test_dir:
        raise DataError(f"{where} names no data.test_dir; golden vectors need real test images (retrain with a test split)")
    path = Path(test_dir)
    if not path.is_absolute() and (run / path).is_dir():
        path = run / path  # a path relative to the run folder
    if not path.is_dir():
        raise DataError(f"test images {path} named in {where} not found; restore the data folder or rerun mdx train")
    return record, path


def _check_io(recorded: dict[str, Any], actual: dict[str, Any], variant: _Variant) -> None:
    """The convert record's io must describe the model file: the app is configured from it."""
    where = variant.folder / RECORD_NAME
    size = variant.preprocessing.size
    if tuple(actual["input"]["shape"][1:]) != (size, size, 3):
        raise ArtifactError(f"{variant.folder / MODEL_NAME} input {actual['input']['shape']} is not (N, {size}, {size}, 3) "
                            f"as the preprocessing in {where} says; rerun mdx convert")
    for side in ("input", "output"):
        want, got = recorded[side], actual[side]
        if got["dtype"] not in APP_DTYPES:
            raise ArtifactError(f"{variant.folder / MODEL_NAME} {side} is {got['dtype']}; the app feeds float32, int8 or uint8")
        for key in ("dtype", "scale", "zero_point"):
            if want.get(key) != got[key]:
                raise ArtifactError(f"{where} io.{side}.{key} is {want.get(key)!r} but the model's is {got[key]!r}; "
                                    "rerun mdx convert with --overwrite")
    if actual["output"]["classes"] != len(variant.labels):
        raise ArtifactError(f"{variant.folder / MODEL_NAME} has {actual['output']['classes']} classes for the "
                            f"{len(variant.labels)} labels in {where}; rerun mdx convert")


def _png(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # RGB without gAMA/iCCP chunks: Android decodes it to exactly these pixel values
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _model_config(variant: _Variant, config: ExportConfig, model_sha: str, model_bytes: int, actual: dict[str, Any],
                  decision: tuple[float | None, str | None], golden: Any, run: Path) -> dict[str, Any]:
    binary = len(variant.labels) == 2
    threshold, rule = decision
    return {
        "format": CONFIG_FORMAT,
        "variant": config.variant.value,
        "model": {"file": MODEL_NAME, "sha256": model_sha, "bytes": model_bytes},
        "labels": list(variant.labels),
        "input": {"size": variant.preprocessing.size, "channels": 3, "layout": "NHWC, RGB",
                  "mean": list(variant.preprocessing.mean), "std": list(variant.preprocessing.std),
                  "dtype": actual["input"]["dtype"], "scale": actual["input"]["scale"],
                  "zero_point": actual["input"]["zero_point"]},
        "output": {"dtype": actual["output"]["dtype"], "scale": actual["output"]["scale"],
                   "zero_point": actual["output"]["zero_point"], "columns": actual["output"]["columns"],
                   "kind": golden.output_kind},
        "decision": {"threshold": threshold, "positive_index": 1 if binary else None,
                     "rule": rule or ("0.5" if binary else "argmax")},
        "sample": {"file": SAMPLE_NAME, "source": golden.sources[0], "label": variant.labels[golden.labels[0]],
                   "probabilities": [float(v) for v in golden.probabilities[0]],
                   "class_index": int(golden.classes[0])},
        # the run's name only: this file ships in the APK, and a full path would name the user's folders
        "source": {"run": run.resolve().name, "convert_record_sha256": sha256_file(variant.folder / RECORD_NAME)},
    }


def _decision(variant: _Variant, train: dict[str, Any], run: Path) -> tuple[float | None, str | None]:
    """The threshold and rule the model itself carries (its convert record, as mdx evaluate reads it);
    the training record's for a conversion made before convert recorded them.

    Raises:
        ArtifactError: the threshold is not a probability, or the model has more than 2 classes.
    """
    own = "threshold" in variant.record
    source = variant.record if own else train
    threshold = source.get("threshold")
    if threshold is not None and (len(variant.labels) != 2 or not is_probability(threshold)):
        where = variant.folder / RECORD_NAME if own else run / "train" / RECORD_NAME
        raise ArtifactError(f"{where} threshold {threshold!r} needs 2 classes and a value from 0 to 1; "
                            f"rerun mdx {'convert --overwrite' if own else 'train'}")
    return threshold, source.get("threshold_rule")


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
    from mdx.runtime.classifier import TfliteClassifier

    started = time.perf_counter()
    run, app = Path(run), config.app
    if not (app / MANIFEST).is_file():
        raise ArtifactError(f"{app} is not the Android demo app (no {MANIFEST}); pass --app android_demo")
    variant = _read_variant(run, config.variant)
    train, test_dir = _read_train(run, variant.labels)
    model = variant.folder / MODEL_NAME
    classifier = TfliteClassifier(model, threads=1)
    actual = classifier.describe()
    _check_io(variant.io, actual, variant)
    images = gold.pick_images(test_dir, variant.labels, config.golden_count)
    decision = _decision(variant, train, run)
    golden = gold.compute_golden(classifier, variant.preprocessing, images, gold.test_images_root(test_dir), decision[0])
    model_sha, model_bytes = sha256_file(model), model.stat().st_size
    model_config = _model_config(variant, config, model_sha, model_bytes, actual, decision, golden, run)

    with staged_dir(app / ASSETS, overwrite=config.overwrite) as assets, \
            staged_dir(app / GOLDEN, overwrite=config.overwrite) as golden_dir:
        asset_files = [
            atomic_write_bytes(assets / MODEL_NAME, model.read_bytes()),
            atomic_write_text(assets / LABELS_NAME, "\n".join(variant.labels) + "\n"),
            atomic_write_json(assets / CONFIG_NAME, model_config),
            atomic_write_bytes(assets / SAMPLE_NAME, _png(golden.pixels[0])),
        ]
        written = {name: atomic_write_bytes(golden_dir / name, data) for name, data in gold.golden_files(golden).items()}
        facts = {name: {"path": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
                 for name, path in written.items()}
        index = gold.golden_index(golden, facts, model_sha, actual["input"]["dtype"], actual["output"]["dtype"])
        index_file = atomic_write_json(golden_dir / gold.INDEX_NAME, index)
        write_record(
            golden_dir, stage="export-android", config=config.to_dict(),
            inputs=[model, variant.folder / RECORD_NAME, run / "train" / RECORD_NAME, *(p for p, _ in images)],
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

