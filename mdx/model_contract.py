"""The model contract that an export hands to an app: what a converted variant promises, checked.

`mdx export android` and `mdx export web` both read RUN/convert/<variant>/ and RUN/train/, check the
convert record against the model file, run real test images through the Python harness (golden
vectors), and write the same model_config.json: input size, mean/std, tensor types and quantization,
labels, threshold and its rule, positive class, model sha256. One builder, so the two apps cannot
drift apart.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

from mdx.config import require
from mdx.errors import ArtifactError, ConfigError, DataError
from mdx.records import RECORD_NAME, read_record
from mdx.runtime.decision import is_probability
from mdx.runtime.errors import UsageError
from mdx.runtime.files import sha256_file
from mdx.runtime.manifest import MANIFEST_NAME
from mdx.runtime.preprocess import Preprocessing
from mdx.variants import Quantization

MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
CONFIG_NAME = "model_config.json"
SAMPLE_NAME = "sample.png"
CONFIG_FORMAT = 1  # ModelSpec.FORMAT in the Android app and FORMAT in the web page: bump all together


@dataclasses.dataclass(frozen=True)
class Variant:
    """What the convert record of one variant promises about its model."""

    folder: Path
    record: dict[str, Any]
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    io: dict[str, Any]


def check_export_options(config: Any) -> None:
    """What both exports' configs share: `variant` made a Quantization, `golden_count` 1-64, `overwrite` a bool."""
    try:
        object.__setattr__(config, "variant", Quantization(config.variant))
    except ValueError:
        names = ", ".join(q.value for q in Quantization)
        raise ConfigError(f"--variant {config.variant!r} is unknown; expected one of {names}") from None
    require(isinstance(config.golden_count, int) and not isinstance(config.golden_count, bool)
            and 1 <= config.golden_count <= 64,
            f"golden_count {config.golden_count!r} is invalid; expected an integer from 1 to 64")
    require(isinstance(config.overwrite, bool), f"overwrite {config.overwrite!r} must be true or false")


def read_variant(run: Path, variant: Quantization) -> Variant:
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
    return Variant(folder, record, preprocessing, labels, io_facts)


def read_train(run: Path, labels: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
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


def check_io(recorded: dict[str, Any], actual: dict[str, Any], variant: Variant,
             dtypes: tuple[str, ...], consumer: str) -> None:
    """The convert record's io must describe the model file: the app is configured from it."""
    where = variant.folder / RECORD_NAME
    size = variant.preprocessing.size
    if tuple(actual["input"]["shape"][1:]) != (size, size, 3):
        raise ArtifactError(f"{variant.folder / MODEL_NAME} input {actual['input']['shape']} is not (N, {size}, {size}, 3) "
                            f"as the preprocessing in {where} says; rerun mdx convert")
    for side in ("input", "output"):
        want, got = recorded[side], actual[side]
        if got["dtype"] not in dtypes:
            raise ArtifactError(f"{variant.folder / MODEL_NAME} {side} is {got['dtype']}; {consumer}")
        for key in ("dtype", "scale", "zero_point"):
            if want.get(key) != got[key]:
                raise ArtifactError(f"{where} io.{side}.{key} is {want.get(key)!r} but the model's is {got[key]!r}; "
                                    "rerun mdx convert with --overwrite")
    if actual["output"]["classes"] != len(variant.labels):
        raise ArtifactError(f"{variant.folder / MODEL_NAME} has {actual['output']['classes']} classes for the "
                            f"{len(variant.labels)} labels in {where}; rerun mdx convert")


def png_bytes(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # RGB without gAMA/iCCP chunks: Android decodes it to exactly these pixel values
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def build_model_config(variant: Variant, variant_name: str, model_sha: str, model_bytes: int, actual: dict[str, Any],
                  decision: tuple[float | None, str | None], golden: Any, run: Path) -> dict[str, Any]:
    binary = len(variant.labels) == 2
    threshold, rule = decision
    return {
        "format": CONFIG_FORMAT,
        "variant": variant_name,
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


def read_decision(variant: Variant, train: dict[str, Any], run: Path) -> tuple[float | None, str | None]:
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


@dataclasses.dataclass(frozen=True)
class Contract:
    """Everything an export writes besides its own files: the checked variant, golden set and config."""

    variant: Variant
    model: Path
    images: list[tuple[Path, int]]
    golden: Any  # android_golden.GoldenSet
    model_sha256: str
    model_bytes: int
    input_dtype: str
    output_dtype: str
    config: dict[str, Any]
    train_record: Path


def prepare(run: Path, variant_name: Quantization, golden_count: int, *, dtypes: tuple[str, ...],
            consumer: str) -> Contract:
    """Read and check `run`'s variant, compute its golden vectors, and build model_config.json.

    Args:
        run: a run folder with convert/<variant>/ and train/record.json.
        variant_name: the variant to export.
        golden_count: how many test images become golden vectors.
        dtypes: tensor types the consuming app can feed and read.
        consumer: the end of the error message when a tensor type is not in `dtypes` (what it takes, the fix).

    Raises:
        ArtifactError: the run lacks the variant or its records disagree with the model.
        DataError: the test images named by the training record are missing or too few.
    """
    from mdx import android_golden as gold
    from mdx.runtime.classifier import TfliteClassifier

    variant = read_variant(run, variant_name)
    train, test_dir = read_train(run, variant.labels)
    model = variant.folder / MODEL_NAME
    classifier = TfliteClassifier(model, threads=1)
    actual = classifier.describe()
    check_io(variant.io, actual, variant, dtypes, consumer)
    images = gold.pick_images(test_dir, variant.labels, golden_count)
    decision = read_decision(variant, train, run)
    golden = gold.compute_golden(classifier, variant.preprocessing, images, gold.test_images_root(test_dir),
                                 decision[0])
    model_sha, model_bytes = sha256_file(model), model.stat().st_size
    config = build_model_config(variant, variant_name.value, model_sha, model_bytes, actual, decision, golden, run)
    return Contract(variant, model, images, golden, model_sha, model_bytes, actual["input"]["dtype"],
                    actual["output"]["dtype"], config, run / "train" / RECORD_NAME)
