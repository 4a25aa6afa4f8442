"""Evaluate a .tflite classifier on labelled data: metrics with CIs, and which runtime produced them.

DATA is a folder-per-class tree (decoded and preprocessed here, class folders must match the model's
labels) or an .npz with `inputs` (already preprocessed float32, N x H x W x C) and `labels` (class
indices, or class names), optionally `class_names`.
"""

from __future__ import annotations

import functools
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .classifier import OUTPUT_KINDS, TfliteClassifier
from .configs import JsonConfig, check_threads
from .decision import Decision, decide
from .errors import InputDataError, UsageError
from .files import atomic_write, atomic_write_json, file_facts
from .images import ImageChunk, iter_files, iter_folder
from .interpreter import RUNTIMES, RuntimeInfo, validate_model_file
from .machine import machine_facts
from .manifest import MANIFEST_SUFFIX, manifest_root, read_manifest, split_files
from .metrics import classification_metrics
from .model_info import ModelInfo, check_class_count, load_model_info
from .preprocess import Preprocessing, preset_mean_std

RESULT_NAME = "evaluation.json"
PREDICTIONS_NAME = "predictions.npz"


@dataclass(frozen=True)
class EvaluateConfig(JsonConfig):
    """How to run and score a model. `size`/`mean`/`std`/`labels`/`threshold` override what is found with the model.

    `threshold` None: the threshold recorded with the model (its metadata, record.json), else 0.5.

    `workers` > 1 runs that many interpreters in threads, each on a slice of the data (the
    interpreter releases the GIL while it invokes); `threads` is per interpreter.
    """

    runtime: str = "auto"
    threads: int | None = None
    xnnpack: bool = True
    # CPU per image by batch (benchmarks/harness_overhead.py): 224 px 4.6 / 5.1 / 6.3 ms at 1 / 8 / 32,
    # 128 px 3.4 / 2.8 / 3.2 ms; 8 is near the best of both, 32 lets activations spill out of cache.
    batch_size: int = 8
    workers: int = 1
    size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    threshold: float | None = None
    positive_class: str | None = None
    n_boot: int = 1000
    seed: int = 0
    skip_unreadable: bool = True
    outputs: str = "auto"
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise UsageError(f"runtime {self.runtime!r} is unknown; choose one of {', '.join(RUNTIMES)}")
        check_threads(self.threads)
        check_threads(self.batch_size, "batch_size")
        check_threads(self.workers, "workers")
        if self.outputs not in OUTPUT_KINDS:
            raise UsageError(f"outputs={self.outputs!r} is unknown; choose one of {', '.join(OUTPUT_KINDS)}")
        if not isinstance(self.n_boot, int) or self.n_boot < 0:
            raise UsageError(f"n_boot={self.n_boot!r} is invalid; expected an integer >= 0 (0 disables the CIs)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"threshold={self.threshold} is invalid; expected a probability in [0, 1]")
        if self.preset is not None:
            preset_mean_std(self.preset)
            if self.mean is not None or self.std is not None:
                raise UsageError(f"--preset {self.preset} sets the mean and std; drop --preset or --mean/--std")
        # validate size/mean/std now (defaults fill the ones not given): a bad value fails before any work
        Preprocessing.from_dict({"size": 224, "mean": (0.0,) * 3, "std": (1.0,) * 3, **self.preprocessing_overrides()})
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        for name in ("mean", "std"):  # lists from JSON or callers become tuples: the config stays hashable
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def preprocessing_overrides(self) -> dict[str, Any]:
        mean, std = preset_mean_std(self.preset) if self.preset is not None else (self.mean, self.std)
        return {k: v for k, v in (("size", self.size), ("mean", mean), ("std", std)) if v is not None}

    def classifier(self, model_path: Path) -> TfliteClassifier:
        return TfliteClassifier(model_path, runtime=self.runtime, threads=self.threads, xnnpack=self.xnnpack,
                                batch_size=self.batch_size, outputs=self.outputs)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Preprocessed float32 inputs, class indices, class names, and facts about where they came from."""

    inputs: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    facts: dict[str, Any]


def _load_npz(path: Path, class_names: tuple[str, ...]) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path}: not a readable .npz ({exc}); write it with numpy.savez") from None
    missing = [key for key in ("inputs", "labels") if key not in arrays]
    if missing:
        raise InputDataError(f"{path}: lacks {missing} (holds {sorted(arrays)}); expected 'inputs' and 'labels'")
    if "class_names" in arrays and tuple(str(c) for c in arrays["class_names"]) != class_names:
        raise InputDataError(
            f"{path}: class_names {[str(c) for c in arrays['class_names']]} differ from the model's classes "
            f"{list(class_names)}; pass matching --labels or rebuild the .npz"
        )
    labels = arrays["labels"]
    if labels.dtype.kind in "US":
        unknown = sorted(set(labels.tolist()) - set(class_names))
        if unknown:
            raise InputDataError(f"{path}: labels {unknown[:5]} are not among the model's classes {list(class_names)}")
        labels = np.asarray([class_names.index(str(v)) for v in labels], dtype=np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(arrays["inputs"]):
        raise InputDataError(
            f"{path}: labels {labels.shape} {labels.dtype} must be 1-D integers, one per input ({len(arrays['inputs'])} inputs)"
        )
    if len(labels) == 0:
        raise InputDataError(f"{path}: holds no samples; expected at least one input")
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise InputDataError(f"{path}: labels must be 0..{len(class_names) - 1} for classes {list(class_names)}")
    facts = {"path": str(path), "kind": "npz", "n": len(labels), "skipped": []}
    return Dataset(arrays["inputs"], labels.astype(np.int64), class_names, (), facts)


# Images decoded and preprocessed at once (a multiple of the default batch_size, so the invokes are
# those of one long array): 64 at 224 px are 9.6 MB of pixels and 38 MB of float32 inputs (9.6 MB of
# int8 inputs when the model's encoder maps the pixels straight to its quantized input).
CHUNK_SIZE = 64


@dataclass(frozen=True, eq=False)
class DataStream:
    """Preprocessed float32 chunks of DATA, in file order; `facts["n"]` and the skipped files are final
    once `chunks` is exhausted. `encoded`: the chunks hold a model's input tensor values instead (the
    images went through the `encode` given to `stream_data`)."""

    chunks: Iterator[tuple[np.ndarray, np.ndarray, tuple[str, ...]]]
    class_names: tuple[str, ...]
    facts: dict[str, Any]
    encoded: bool = False


def stream_data(data: Path, info: ModelInfo, *, skip_unreadable: bool = True,
                chunk_size: int = CHUNK_SIZE, encode: Callable[[np.ndarray], np.ndarray] | None = None) -> DataStream:
    """DATA (folder-per-class tree or .npz) as bounded chunks of (inputs, labels, paths) in the model's class order.

    A folder is decoded `chunk_size` images at a time, so memory does not grow with the number of
    images; an .npz is read whole (it already holds the inputs) and sliced.

    `encode` (a `TfliteClassifier.pixel_encoder`) maps decoded uint8 images to one model's input
    tensor values in place of the float32 normalization; the stream is then `encoded`. An .npz
    holds float32 inputs already: it is never encoded.

    Raises:
        InputDataError: DATA is missing, empty, unreadable, or its classes differ from `info.labels`
            (a bad image is met when its chunk is read, as `load_folder` meets it).
    """
    path = Path(data)
    if path.is_file() and is_npz(path):
        dataset = _load_npz(path, info.labels)
        chunks = ((dataset.inputs[i : i + chunk_size], dataset.labels[i : i + chunk_size], ())
                  for i in range(0, len(dataset.labels), chunk_size))
        return DataStream(chunks, dataset.class_names, dataset.facts)
    if not path.exists():
        raise InputDataError(f"{path}: data not found; expected a folder with one sub-folder per class, or an .npz")
    if path.name.endswith(MANIFEST_SUFFIX):
        return _stream_manifest_test(path, info, skip_unreadable, chunk_size, encode)
    if not path.is_dir():
        raise InputDataError(f"{path}: expected a folder with one sub-folder per class, or an .npz file")
    preprocessing = info.preprocessing
    if preprocessing is None:
        raise UsageError(f"{path}: decoding images needs the preprocessing; pass --size, --mean and --std")
    skipped: list[dict[str, str]] = []
    facts: dict[str, Any] = {"path": str(path), "kind": "folder", "n": 0, "skipped": skipped}
    images = iter_folder(path, preprocessing.size, info.labels, skip_unreadable=skip_unreadable, chunk_size=chunk_size,
                         on_skip=lambda p, reason: skipped.append({"path": str(p), "reason": reason}))

    return DataStream(_normalized(images, encode or preprocessing.normalize, facts), info.labels, facts,
                      encoded=encode is not None)


def _normalized(images: Iterator[ImageChunk], encode: Callable[[np.ndarray], np.ndarray],
                facts: dict[str, Any]) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """Decoded chunks as model inputs (`encode`d: normalized, or a model's encoder), counting the images
    into `facts["n"]` as they pass."""
    for chunk in images:
        facts["n"] += len(chunk.labels)
        yield encode(chunk.images), chunk.labels, chunk.paths


def load_data(data: Path, info: ModelInfo, *, skip_unreadable: bool = True) -> Dataset:
    """Read DATA (folder-per-class tree or .npz) whole into preprocessed inputs and labels in the model's class order.

    For callers that need every input at once; `evaluate`, `check` and `predict` use `stream_data`.

    Raises:
        InputDataError: as `stream_data`.
    """
    stream = stream_data(data, info, skip_unreadable=skip_unreadable)
    parts = list(stream.chunks)
    return Dataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   stream.class_names, tuple(path for p in parts for path in p[2]), stream.facts)


class ParallelRunner:
    """Raw outputs of chunks, each split over `config.workers` interpreters (one per thread, kept for every chunk)."""

    def __init__(self, first: TfliteClassifier, config: EvaluateConfig) -> None:
        self.first = first
        self.classifiers = [first] + [config.classifier(first.model_path) for _ in range(config.workers - 1)]
        self.pool = ThreadPoolExecutor(max_workers=config.workers) if config.workers > 1 else None
        self.seconds = 0.0

    def raw(self, inputs: np.ndarray, *, encoded: bool = False) -> np.ndarray:
        """`predict_raw` of `inputs` (`encoded`: as `TfliteClassifier.predict_raw`) over the workers."""
        started = time.perf_counter()
        options = {"encoded": True} if encoded else {}  # float inputs: the plain call, as before
        workers = min(len(self.classifiers), len(inputs))
        if workers <= 1 or self.pool is None:
            out = self.first.predict_raw(inputs, **options)
        else:
            slices = np.array_split(inputs, workers)
            out = np.concatenate(list(self.pool.map(lambda pair: pair[0].predict_raw(pair[1], **options),
                                                    zip(self.classifiers, slices))))
        self.seconds += time.perf_counter() - started
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _stream_manifest_test(path: Path, info: ModelInfo, skip_unreadable: bool, chunk_size: int,
                          encode: Callable[[np.ndarray], np.ndarray] | None = None) -> DataStream:
    """The test split a training run recorded in its split manifest (files checked against their sha256)."""
    preprocessing = info.preprocessing
    if preprocessing is None:
        raise UsageError(f"{path}: decoding images needs the preprocessing; pass --size, --mean and --std")
    root = manifest_root(path)
    files, labels = split_files(read_manifest(path, root), "test", root, info.labels)
    if not files:
        raise InputDataError(f"{path}: names no test image; evaluate on a folder or an .npz instead")
    skipped: list[dict[str, str]] = []
    facts: dict[str, Any] = {"path": str(path), "kind": "manifest", "split": "test", "n": 0, "skipped": skipped}
    images = iter_files(path, files, np.asarray(labels, dtype=np.int64), preprocessing.size,
                        skip_unreadable=skip_unreadable, chunk_size=chunk_size,
                        on_skip=lambda p, reason: skipped.append({"path": str(p), "reason": reason}))

    return DataStream(_normalized(images, encode or preprocessing.normalize, facts), info.labels, facts,
                      encoded=encode is not None)


def predict_parallel(first: TfliteClassifier, inputs: np.ndarray, config: EvaluateConfig) -> np.ndarray:
    """Probabilities for `inputs`, split over `config.workers` interpreters (one per thread)."""
    runner = ParallelRunner(first, config) if min(config.workers, len(inputs)) > 1 else None
    if runner is None:
        return first.predict_proba(inputs)
    try:
        return first.to_probabilities(runner.raw(inputs))
    finally:
        runner.close()


@dataclass(frozen=True, eq=False)
class StreamOutputs:
    """What a streamed run keeps: each model's raw outputs (N, columns), the labels and paths, and seconds of inference."""

    raw: tuple[np.ndarray, ...]
    labels: np.ndarray
    paths: tuple[str, ...]
    seconds: float


def run_stream(stream: DataStream, models: list[Callable[[np.ndarray], np.ndarray]]) -> StreamOutputs:
    """Feed every chunk of `stream` to each of `models` (inputs -> raw outputs); keep only the small outputs."""
    raw: list[list[np.ndarray]] = [[] for _ in models]
    labels: list[np.ndarray] = []
    paths: list[str] = []
    seconds = 0.0
    for inputs, chunk_labels, chunk_paths in stream.chunks:
        started = time.perf_counter()
        for kept, model in zip(raw, models):
            kept.append(np.asarray(model(inputs), dtype=np.float32))
        seconds += time.perf_counter() - started
        labels.append(chunk_labels)
        paths.extend(chunk_paths)
    return StreamOutputs(tuple(np.concatenate(r) for r in raw), np.concatenate(labels).astype(np.int64),
                         tuple(paths), seconds)


def resolve_model_info(model_path: Path, config: EvaluateConfig, classifier: TfliteClassifier, *,
                       need_preprocessing: bool = True) -> ModelInfo:
    """The model's labels and preprocessing, checked against its number of classes and input size.

    Raises:
        UsageError: labels or preprocessing are unknown, or do not fit the model.
        ModelLoadError: the files beside the model are unreadable or disagree.
    """
    size = classifier.input_shape[0]
    info = load_model_info(model_path, config.preprocessing_overrides(), config.labels,
                           need_preprocessing=need_preprocessing, threshold=config.threshold,
                           preset=config.preset, input_size=size)
    check_class_count(info, classifier.num_classes, model_path)
    if need_preprocessing and info.preprocessing is not None and info.preprocessing.size != size:
        raise UsageError(
            f"preprocessing size {info.preprocessing.size} ({info.source}) differs from {model_path}'s input "
            f"{size}x{classifier.input_shape[1]}; pass --size {size}"
        )
    return info


def is_npz(data: Path) -> bool:
    """An .npz holds preprocessed inputs: no preprocessing is needed to read it."""
    return Path(data).suffix == ".npz"


def positive_index(info: ModelInfo, config: EvaluateConfig) -> int | None:
    if config.positive_class is None:
        return None
    if config.positive_class not in info.labels:
        raise UsageError(f"positive class {config.positive_class!r} is not one of the model's classes {list(info.labels)}")
    return info.labels.index(config.positive_class)


def decision_for(info: ModelInfo, config: EvaluateConfig) -> Decision:
    """The threshold to decide at: --threshold, else the model's recorded one, else 0.5 (argmax for > 2 classes).

    Raises:
        UsageError: see `mdx.runtime.decision.decide`.
    """
    return decide(info.decision, info.labels, positive_index(info, config))


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Metrics of one model on one data set, with the model's hash, the runtime, and the probabilities."""

    model: dict[str, Any]
    runtime: RuntimeInfo
    data: dict[str, Any]
    model_info: ModelInfo
    config: EvaluateConfig
    metrics: dict[str, Any]
    output_kind: str
    seconds: float
    decision: Decision
    machine: dict[str, Any] = field(default_factory=machine_facts)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), repr=False)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": "evaluate",
            "model": self.model,
            "runtime": self.runtime.to_dict(),
            "data": self.data,
            "model_info": self.model_info.to_dict(),
            "config": self.config.to_dict(),
            "outputs": self.output_kind,
            "decision": self.decision.to_dict(),
            "metrics": self.metrics,
            "inference_seconds": round(self.seconds, 4),
            "machine": self.machine,
        }

    def save(self, folder: Path, *, overwrite: bool = False) -> Path:
        """Write `evaluation.json` and `predictions.npz` (probs, labels, paths, class_names) into `folder`.

        Raises:
            UsageError: the files exist and `overwrite` is false.
        """
        folder = Path(folder)
        target = folder / RESULT_NAME
        if target.exists() and not overwrite:
            raise UsageError(f"{target} already exists; pass --overwrite to replace it, or choose another folder")
        arrays = {"probs": self.probs, "labels": self.labels,
                  "class_names": np.asarray(self.model_info.labels, dtype=str)}
        atomic_write(folder / PREDICTIONS_NAME, functools.partial(write_predictions, arrays=arrays, paths=self.paths))
        return atomic_write_json(target, self.to_dict())


# paths turned into fixed-width text this many at a time: np.savez of all of them at once would hold
# 4 bytes per character of the longest path for every image (15 MB per 62,400 60-character paths)
_PATH_ROWS = 4096


def write_predictions(handle: BinaryIO, arrays: dict[str, np.ndarray], paths: tuple[str, ...]) -> None:
    """An .npz (as np.savez_compressed writes it, readable by np.load) of `arrays` plus `paths` as a
    str array, the paths encoded a block at a time."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        width = max((len(p) for p in paths), default=1) or 1
        with archive.open("paths.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": np.dtype(f"<U{width}").str,
                                                          "fortran_order": False, "shape": (len(paths),)})
            for start in range(0, len(paths), _PATH_ROWS):
                member.write(np.asarray(paths[start : start + _PATH_ROWS], dtype=f"<U{width}").tobytes())


def evaluate(model_path: Path, data: Path, config: EvaluateConfig = EvaluateConfig()) -> EvaluationResult:
    """Run `model_path` on DATA and score it.

    Raises:
        ModelLoadError: the model cannot be loaded.
        InputDataError: DATA is missing, empty, or its classes differ from the model's labels.
        UsageError: preprocessing or labels are unknown or inconsistent with the model.
    """
    model_path = validate_model_file(model_path)
    classifier = config.classifier(model_path)
    info = resolve_model_info(model_path, config, classifier, need_preprocessing=not is_npz(data))
    decision = decision_for(info, config)
    # a quantized model's inputs are looked up from the pixels (classifier.pixel_encoder): the same
    # integers as quantizing the normalized floats, at a fraction of the time and memory
    encode = classifier.pixel_encoder(info.preprocessing) if info.preprocessing is not None else None
    stream = stream_data(data, info, skip_unreadable=config.skip_unreadable, encode=encode)
    runner = ParallelRunner(classifier, config)
    try:
        outputs = run_stream(stream, [functools.partial(runner.raw, encoded=stream.encoded)])
    finally:
        runner.close()
    probs = classifier.to_probabilities(outputs.raw[0])  # the softmax rule is decided once, over all rows
    seconds = outputs.seconds
    metrics = classification_metrics(outputs.labels, probs, info.labels, decision.threshold,
                                     decision.positive_index, config.n_boot, config.seed)
    return EvaluationResult(
        model={**file_facts(model_path), **classifier.describe()},
        runtime=classifier.runtime,
        data=stream.facts,
        model_info=info,
        config=config,
        metrics=metrics,
        output_kind=str(classifier.output_kind),
        seconds=seconds,
        decision=decision,
        probs=probs,
        labels=outputs.labels,
        paths=outputs.paths,
    )
