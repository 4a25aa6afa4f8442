"""What a model needs besides its weights: the preprocessing that makes its inputs, its class labels,
and (two classes) the decision threshold chosen in training.

Contract with the convert stage: each variant folder holds `model.tflite`, `labels.txt` (one label per
line) and `record.json` with `"preprocessing": {"size", "mean", "std"}`, `"labels": [...]` and
`"threshold"`, `"threshold_rule"`; the .tflite embeds the same as metadata. They are read from inside
and beside the model. Explicit arguments win over anything found; the sources found must agree with
each other; and when nothing is found the user is told which options to pass (a missing threshold is
not an error: 0.5 is the default). Nothing is guessed.
"""

from __future__ import annotations

import json
import warnings as warnings_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .decision import OVERRIDE, Decision, is_probability, parse_recorded
from .errors import HarnessWarning, ModelLoadError, UsageError
from .preprocess import Preprocessing, preset_mean_std
from .tflite_metadata import read_metadata

RECORD_NAME = "record.json"
LABELS_NAME = "labels.txt"
EMBEDDED = "model metadata"


@dataclass(frozen=True)
class ModelInfo:
    """Preprocessing (None only when not required), class labels, and where each came from.

    `decision` is the threshold passed or recorded with the model (its `source` says which), None when
    neither gives one; `mdx.runtime.decision.decide` turns it into the one to apply.
    """

    preprocessing: Preprocessing | None
    labels: tuple[str, ...]
    source: str
    labels_source: str = ""
    decision: Decision | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "preprocessing": None if self.preprocessing is None else self.preprocessing.to_dict(),
            "labels": list(self.labels),
            "source": self.source,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "warnings": list(self.warnings),
        }


def read_labels_file(path: Path) -> tuple[str, ...]:
    """Labels from a text file, one per line; blank lines and surrounding spaces are dropped.

    A name that repeats is kept apart by its class index (see `distinct_labels`).

    Raises:
        UsageError: the file is missing or holds no label.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: labels file not found; pass a text file with one label per line")
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return _check_labels(labels, str(path))


def distinct_labels(labels: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Labels with every repeated name suffixed by its class index, and the names that repeated.

    ImageNet has two classes called "crane" (the bird and the machine), so Google's own labels file and
    every model that embeds it repeat a name. Results are keyed by class index; the suffix only keeps
    the two apart wherever a name is shown or stored: ("crane", "crane") -> ("crane (0)", "crane (1)").
    """
    labels = tuple(str(label) for label in labels)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    repeated = tuple(sorted(label for label, count in counts.items() if count > 1))
    if not repeated:
        return labels, ()
    shown = tuple(f"{label} ({index})" if counts[label] > 1 else label for index, label in enumerate(labels))
    if len(set(shown)) != len(shown):  # a file that already holds "crane (135)" beside a repeated "crane"
        shown = tuple(f"{label} ({index})" if shown.count(label) > 1 else label for index, label in enumerate(shown))
    return shown, repeated


def _check_labels(labels: Sequence[str], where: str) -> tuple[str, ...]:
    labels = tuple(str(label) for label in labels)
    if not labels:
        raise UsageError(f"{where}: no labels found; expected one label per class")
    return labels


def _repeat_warning(labels: tuple[str, ...], where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`distinct_labels`, and the one-line warning naming the repeats and where they came from."""
    shown, repeated = distinct_labels(labels)
    if not repeated:
        return shown, ()
    examples = ", ".join(name for name in shown if any(name.startswith(f"{r} (") for r in repeated[:2]))
    warning = f"{where}: label(s) {list(repeated)} name more than one class; shown with their class index ({examples})"
    return shown, (warning,)


def read_embedded_metadata(model_path: Path) -> dict[str, Any] | None:
    """Preprocessing and labels stored inside the .tflite (TFLite metadata, as MediaPipe reads it), or None.

    Returns {"preprocessing": {"size", "mean", "std"}, "labels": [...], "decision": {...}}, each key optional.

    Raises:
        ModelLoadError: the metadata is corrupt or names a labels file the model lacks.
    """
    path = Path(model_path)
    if path.suffix.lower() != ".tflite" or not path.is_file():
        return None
    return read_metadata(path)


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc}); restore it or rerun the stage that wrote it") from None
    if not isinstance(record, dict):
        raise ModelLoadError(f"{path}: expected a JSON object; restore it or rerun the stage that wrote it")
    return record


def _found_sources(model_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(source name, {"preprocessing"?, "labels"?, "decision"?}) for every source beside or inside the model."""
    folder = Path(model_path).parent
    found: list[tuple[str, dict[str, Any]]] = []
    embedded = read_embedded_metadata(model_path)
    if embedded:
        found.append((EMBEDDED, embedded))
    record = _read_record(folder / RECORD_NAME)
    if record is not None:
        data = {k: record[k] for k in ("preprocessing", "labels") if k in record}
        if record.get("threshold") is not None:  # train and convert records: a threshold on P(labels[1])
            data["decision"] = {"threshold": record["threshold"], "positive_index": 1, "rule": record.get("threshold_rule")}
        found.append((str(folder / RECORD_NAME), data))
    if (folder / LABELS_NAME).is_file():
        found.append((str(folder / LABELS_NAME), {"labels": read_labels_file(folder / LABELS_NAME)}))
    return found


# what each agreed key is called in a disagreement, and the option that settles it
_DIFFER = {"labels": ("labels", "--labels"), "preprocessing": ("preprocessing", "--size/--mean/--std"),
           "decision": ("thresholds", "--threshold")}


def _agreed(found: list[tuple[str, dict[str, Any]]], key: str, parse, model_path: Path) -> tuple[Any, str] | None:
    """The value of `key` that every source holding it agrees on, with its source(s); None if none holds it."""
    values = [(source, parse(data[key], _file(source, model_path))) for source, data in found if data.get(key) is not None]
    if not values:
        return None
    first_source, first = values[0]
    what, option = _DIFFER[key]
    for source, value in values[1:]:
        if value != first:
            raise ModelLoadError(
                f"{what} differ: {_file(first_source, model_path)} says {_show(first)}, {_file(source, model_path)} "
                f"says {_show(value)}; fix the stale one (rerun mdx convert --overwrite), or pass {option} explicitly"
            )
    return first, " + ".join(source for source, _ in values)


def _file(source: str, model_path: Path) -> str:
    """A source (or "A + B") as an error names it: the metadata by its model file."""
    return " + ".join(f"{model_path} (metadata)" if one == EMBEDDED else one for one in source.split(" + "))


def _show(value: Any) -> str:
    if isinstance(value, Decision):
        return f"{value.threshold:g}" + ("" if value.positive_index == 1 else f" on class {value.positive_index}")
    return str(value.to_dict()) if isinstance(value, Preprocessing) else str(list(value))


def _parse_decision(data: Any, source: str) -> Decision:
    return parse_recorded(data, source, "rerun mdx convert --overwrite to rewrite it, or pass --threshold")


def _resolve_decision(found: list[tuple[str, dict[str, Any]]], threshold: float | None, labels: tuple[str, ...],
                      model_path: Path) -> Decision | None:
    """--threshold, else the threshold every source beside or inside the model agrees on, else None."""
    if threshold is not None:
        if not is_probability(threshold):
            raise UsageError(f"--threshold {threshold!r} is invalid; expected a probability in [0, 1]")
        return Decision(float(threshold), 1, OVERRIDE)
    agreed = _agreed(found, "decision", _parse_decision, model_path)
    if agreed is None:
        return None
    decision, where = agreed
    if len(labels) != 2:
        raise ModelLoadError(
            f"{_file(where, model_path)}: threshold {decision.threshold:g} is recorded for the {len(labels)} classes "
            f"{list(labels)}, but a threshold decides between 2 classes only (argmax is used): rerun mdx convert --overwrite"
        )
    return replace(decision, source=where)


def _parse_preprocessing(data: Any, source: str) -> Preprocessing:
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"{source}: preprocessing must be an object with size, mean, std; got {data!r}")
    missing = [key for key in ("size", "mean", "std") if key not in data]
    if missing:
        raise ModelLoadError(f"{source}: preprocessing lacks {missing}; expected size, mean and std")
    return Preprocessing.from_dict(dict(data))


def load_model_info(
    model_path: Path,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    *,
    need_preprocessing: bool = True,
    threshold: float | None = None,
    preset: str | None = None,
    input_size: int | None = None,
) -> ModelInfo:
    """Preprocessing, labels and threshold for `model_path`: explicit arguments, else what is found beside or in it.

    Args:
        model_path: the model (.tflite, or any model file whose folder follows the contract).
        preprocessing: a full Preprocessing (wins whole), or a partial mapping of size/mean/std
            overriding only those fields of what is found.
        labels: class labels (win over labels.txt / record.json).
        need_preprocessing: False when the inputs are already preprocessed (an .npz); then a missing
            preprocessing is None instead of an error.
        threshold: the binary decision threshold (wins over the model metadata and record.json).
        preset: the name of the normalization whose mean/std `preprocessing` carries; refused when the
            model records another one (a preset is for models that record none).
        input_size: the model's input side, the size when nothing records one and none is given.

    Raises:
        UsageError: nothing gives the preprocessing (or the labels); names the options to pass.
        ModelLoadError: a sidecar file is unreadable, two sources disagree, or a recorded threshold is
            out of [0, 1] or belongs to more than 2 classes.
    """
    found = _found_sources(Path(model_path))
    sources: list[str] = []
    if labels is not None:
        label_tuple = _check_labels(labels, "--labels")
        labels_source = "arguments"
    else:
        agreed = _agreed(found, "labels", lambda v, s: _check_labels(v, s), model_path)
        if agreed is None:
            raise UsageError(
                f"no labels for {model_path}: no {LABELS_NAME} or {RECORD_NAME} beside it; "
                "pass --labels (a file with one label per line, or NAME,NAME,...)"
            )
        label_tuple, labels_source = agreed
    sources.append(f"labels: {labels_source}")
    resolved: Preprocessing | None
    if isinstance(preprocessing, Preprocessing):
        resolved = preprocessing
        sources.append("preprocessing: arguments")
    else:
        overrides = {k: v for k, v in dict(preprocessing or {}).items() if v is not None}
        agreed = _agreed(found, "preprocessing", _parse_preprocessing, model_path)
        if agreed is not None:
            base, where = agreed
            _check_preset(preset, base, _file(where, Path(model_path)))
            resolved = Preprocessing.from_dict({**base.to_dict(), **overrides})
            sources.append(f"preprocessing: {where}" + (f" with {sorted(overrides)} from arguments" if overrides else ""))
        elif {"mean", "std"} <= set(overrides) and ("size" in overrides or input_size is not None):
            resolved = Preprocessing.from_dict({"size": input_size, **overrides})
            given = f"--preset {preset}" if preset is not None else "arguments"
            sources.append(f"preprocessing: {given}" + ("" if "size" in overrides else ", size from the model's input"))
        elif need_preprocessing or overrides:
            missing = [key for key in ("size", "mean", "std") if key not in overrides]
            if input_size is not None:
                missing = [m for m in missing if m != "size"]
            raise UsageError(
                f"no preprocessing for {model_path}: neither its metadata nor a {RECORD_NAME} beside it records "
                f"one; pass --preset tf|unit|imagenet or {' '.join('--' + m for m in missing)} "
                "(e.g. --mean 127.5,127.5,127.5 --std 127.5,127.5,127.5)"
            )
        else:
            resolved = None
    decision = _resolve_decision(found, threshold, label_tuple, Path(model_path))
    if decision is not None:
        sources.append(f"threshold: {decision.source}")
    label_tuple, warnings = _repeat_warning(
        label_tuple, "--labels" if labels is not None else _file(labels_source, Path(model_path)))
    for warning in warnings:
        warnings_module.warn(warning, HarnessWarning, stacklevel=2)
    return ModelInfo(preprocessing=resolved, labels=label_tuple, source="; ".join(sources), labels_source=labels_source,
                     decision=decision, warnings=warnings)


def _check_preset(preset: str | None, recorded: Preprocessing, where: str) -> None:
    """Refuse a --preset whose mean/std contradict what the model records."""
    if preset is None:
        return
    mean, std = preset_mean_std(preset)
    if not (np.allclose(mean, recorded.mean) and np.allclose(std, recorded.std)):
        raise UsageError(
            f"--preset {preset} (mean {list(mean)}, std {list(std)}) contradicts {where} (mean {list(recorded.mean)}, "
            f"std {list(recorded.std)}); drop --preset, or pass --mean/--std to override the record on purpose"
        )


def check_class_count(info: ModelInfo, num_classes: int, model_path: Path) -> None:
    """Refuse labels that do not match the model's number of outputs.

    Raises:
        UsageError: len(info.labels) differs from `num_classes`.
    """
    if len(info.labels) != num_classes:
        raise UsageError(
            f"{model_path} outputs {num_classes} classes but {len(info.labels)} labels were given "
            f"{list(info.labels)} (from {info.labels_source or info.source}); pass --labels with {num_classes} labels"
        )
