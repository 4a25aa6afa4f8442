"""What `mdx convert` converts: a run folder (read from its train record) or a bare model file.

A run carries its own preprocessing, labels and training split, so options that would restate them
are refused; a bare model carries none of them, so they must all be given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdx.errors import ArtifactError, ConfigError, DataError
from mdx.records import RECORD_NAME, read_record
from mdx.runtime.decision import is_probability
from mdx.runtime.errors import UsageError
from mdx.runtime.preprocess import Preprocessing

MODEL_SUFFIXES = (".keras", ".h5")
EXAMPLE = "e.g. --size 224 --mean 127.5 --std 127.5 --labels labels.txt --calibration-dir data/chest_xray/train"


@dataclass(frozen=True)
class Source:
    """The Keras model to convert and everything a .tflite must carry with it."""

    model: Path  # .keras, .h5 or a SavedModel folder
    hashed: Path  # the file whose sha256 the convert record keeps (SavedModel: saved_model.pb)
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    calibration_dir: Path | None
    run: Path | None
    parent_record: Path | None
    threshold: float | None = None  # binary: chosen on validation by mdx train; None for a model file
    threshold_rule: str | None = None

    def decision(self) -> dict[str, Any] | None:
        """What the .tflite embeds as its "mdx_decision" metadata; None when no threshold is recorded."""
        if self.threshold is None:
            return None
        return {"threshold": self.threshold, "positive_index": 1, "rule": self.threshold_rule}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "run" if self.run else "model",
            "model": str(self.model),
            "run": None if self.run is None else str(self.run),
            "parent_record": None if self.parent_record is None else str(self.parent_record),
            "calibration_dir": None if self.calibration_dir is None else str(self.calibration_dir),
        }


def read_labels(path: Path) -> tuple[str, ...]:
    """One class name per line; blank lines ignored.

    Raises:
        ArtifactError: the file is missing, or holds fewer than two names or a duplicate.
    """
    path = Path(path)
    try:
        labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as exc:
        raise ArtifactError(
            f"labels file {path}: {exc.strerror}; pass --labels FILE with one class name per line"
        ) from None
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ArtifactError(
            f"labels file {path} holds {list(labels)}; expected two or more distinct class names, one per line"
        )
    return labels


def resolve_source(
    source: Path,
    *,
    preprocessing: Preprocessing | None,
    labels_file: Path | None,
    calibration_dir: Path | None,
    needs_calibration: bool,
    given: dict[str, bool],
) -> Source:
    """Find the model and its preprocessing, labels and calibration folder.

    Args:
        given: which of --size, --mean, --std, --labels were passed (a run refuses all of them).

    Raises:
        ArtifactError: `source` is neither a run folder nor a model, or its train record is unusable.
        ConfigError: a run got options that restate its record, or a model file lacks them.
        DataError: calibration is needed and neither the record nor the options say where the images are.
    """
    source = Path(source)
    if not source.exists():
        raise ArtifactError(
            f"{source} not found; pass a run folder (RUN/train/record.json) or a .keras/.h5/SavedModel model"
        )
    train_dir = None
    if (source / "train" / RECORD_NAME).is_file():
        train_dir = source / "train"
    elif (source / RECORD_NAME).is_file() and not (source / "saved_model.pb").is_file():
        train_dir = source  # RUN/train itself
    if train_dir is not None:
        passed = [flag for flag, on in given.items() if on]
        if passed:
            raise ConfigError(
                f"{', '.join(passed)} conflict with the preprocessing and labels recorded in "
                f"{train_dir / RECORD_NAME}; drop them (a run carries its own)"
            )
        return _from_run(train_dir, calibration_dir, needs_calibration)
    if (source.is_dir() and (source / "saved_model.pb").is_file()) or (
        source.is_file() and source.suffix.lower() in MODEL_SUFFIXES
    ):
        return _from_model(source, preprocessing, labels_file, calibration_dir, needs_calibration, given)
    raise ArtifactError(
        f"{source} is neither a run folder (with train/{RECORD_NAME}) nor a model (.keras, .h5, SavedModel folder)"
    )


def _from_run(train_dir: Path, calibration_dir: Path | None, needs_calibration: bool) -> Source:
    record_path = train_dir / RECORD_NAME
    record = read_record(train_dir)
    if record.get("stage") not in ("train", "prune"):
        raise ArtifactError(
            f"{record_path} is a {record.get('stage')!r} record; convert takes a run folder made by mdx train or mdx prune"
        )
    try:
        preprocessing = Preprocessing.from_dict(record["preprocessing"])
        labels = tuple(str(label) for label in record["labels"])
    except KeyError as exc:
        raise ArtifactError(
            f"{record_path} has no {exc.args[0]!r}; rerun mdx train to write a complete record"
        ) from None
    except (UsageError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{record_path}: invalid preprocessing ({exc}); rerun mdx train") from None
    model = train_dir / "model.keras"
    if not model.is_file():
        raise ArtifactError(f"{model} not found next to {record_path}; rerun mdx train")
    labels_txt = train_dir / "labels.txt"
    if labels_txt.is_file() and read_labels(labels_txt) != labels:
        raise ArtifactError(f"{labels_txt} differs from the labels in {record_path}; rerun mdx train")
    data = record.get("data") or {}
    if calibration_dir is None and needs_calibration and data.get("test_dir") is None and data.get("manifest") \
            and (train_dir / data["manifest"]).is_file():
        # a data set split by mdx train (DATA/<class>/): its folder holds the test images too, so
        # calibration draws from the manifest's training rows
        calibration_dir = train_dir / data["manifest"]
    if calibration_dir is None and needs_calibration:
        train_data = data.get("train_dir")
        if not train_data:
            raise DataError(f"{record_path} names no data.train_dir for calibration; pass --calibration-dir DIR")
        calibration_dir = Path(train_data)
        if not calibration_dir.is_absolute() and (train_dir.parent / calibration_dir).exists():
            calibration_dir = train_dir.parent / calibration_dir  # a path relative to the run folder
    # a pruned model converts into its own folder, beside (not over) the dense model's conversions
    run_folder = train_dir if record["stage"] == "prune" else train_dir.parent
    return Source(model, model, preprocessing, labels, calibration_dir, run_folder, record_path,
                  _threshold(record, record_path, labels), record.get("threshold_rule"))


def _threshold(record: dict[str, Any], record_path: Path, labels: tuple[str, ...]) -> float | None:
    """The run's decision threshold, refused unless it is a probability for 2 classes.

    Raises:
        ArtifactError: naming the record, the value and the fix.
    """
    value = record.get("threshold")
    if value is None:
        return None
    if not is_probability(value) or len(labels) != 2:
        raise ArtifactError(f"{record_path}: threshold {value!r} is invalid for the {len(labels)} classes "
                            f"{list(labels)}; expected a probability in [0, 1] and 2 classes: rerun mdx train")
    return float(value)


def _from_model(
    model: Path,
    preprocessing: Preprocessing | None,
    labels_file: Path | None,
    calibration_dir: Path | None,
    needs_calibration: bool,
    given: dict[str, bool],
) -> Source:
    missing = [flag for flag in ("--size", "--mean", "--std", "--labels") if not given.get(flag)]
    if needs_calibration and calibration_dir is None:
        missing.append("--calibration-dir")
    if missing or preprocessing is None or labels_file is None:
        raise ConfigError(
            f"{model} is a model file, not a run folder, so its preprocessing, labels and calibration images "
            f"must be given: missing {', '.join(missing)} ({EXAMPLE})"
        )
    hashed = model / "saved_model.pb" if model.is_dir() else model
    return Source(model, hashed, preprocessing, read_labels(labels_file), calibration_dir, None, None)
