"""Keras classifier -> .tflite variants, each in its own folder with labels and a record.

`convert` is the only place that calls `converter.convert()`; the settings of each variant come from
`mdx.quantize.recipes`. FP32 is always built: it is the parity baseline every other variant is
judged against.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdx import __version__, interrupts
from mdx.config import ConfigBase, require
from mdx.convert.calibrated import Int8Context, build_calibrated, load_manifest_split, load_validation, prepare
from mdx.convert.compat import compatibility_report, problems_for, runtime_info
from mdx.convert.flatbuffer import TfliteFacts, read_tflite
from mdx.convert.keras_converter import tflite_bytes
from mdx.convert.metadata import embed_metadata
from mdx.convert.source import Source, resolve_source
from mdx.errors import ArtifactError, CompatibilityError, ConfigError
from mdx.quantize.calibration import DEFAULT_COUNT, CalibrationConfig, CalibrationSet, sample_calibration
from mdx.quantize.qat import QatConfig, fine_tune_quantized
from mdx.quantize.recipes import INT8_IO, NEEDS_CALIBRATION, RepresentativeDataset, recipe_for
from mdx.records import read_record, staged_dir, write_record
from mdx.runtime.errors import UsageError
from mdx.runtime.files import atomic_write_bytes, atomic_write_text
from mdx.runtime.parity import Tolerances
from mdx.runtime.preprocess import Preprocessing
from mdx.variants import Quantization

MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
# ConvertConfig field -> its CLI flag: where --auto-fallback stops
FALLBACK_TOLERANCES = {"fallback_min_agreement": "fallback-min-agreement",
                       "fallback_max_acc_drop_pt": "fallback-max-acc-drop",
                       "fallback_max_auc_drop": "fallback-max-auc-drop"}
Log = Callable[[str], None]


def _as_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


@dataclasses.dataclass(frozen=True)
class ConvertConfig(ConfigBase):
    """Which variants to build and what a bare model file needs (a run folder brings its own).

    `variants` lists the variants besides fp32, which is always built. `io` sets the int8 variant's
    input/output type (DEFAULT_INT8_IO, 'float32', when None). size/mean/std/labels_file are for a model file only.
    `bias_correction` (int8 and int8-fallback) gives back through the biases the mean error of int8
    weights; `auto_fallback` keeps the int8 variant's worst layers in float until parity holds on the
    run's validation split (quantize/README.md), within the `fallback_*` tolerances (None: `mdx check`'s
    defaults, 0.98 agreement / 1 pt / 0.01 AUC).
    """

    variants: tuple[Quantization, ...] = ()
    io: str | None = None
    calibration_count: int | None = None
    calibration_seed: int = 0
    calibration_dir: Path | None = None
    size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels_file: Path | None = None
    target: str | None = None
    out: Path | None = None
    overwrite: bool = False
    bias_correction: bool = True
    auto_fallback: bool = False
    fallback_min_agreement: float | None = None
    fallback_max_acc_drop_pt: float | None = None
    fallback_max_auc_drop: float | None = None
    # quantization-aware fine-tuning (mdx.quantize.qat) of the int8 variant on the run's training split
    qat: bool = False
    qat_epochs: int | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.variants, (tuple, list)), f"variants {self.variants!r} must be a list of variant names")
        names = ", ".join(q.value for q in Quantization)
        try:
            variants = tuple(Quantization(v) for v in self.variants)
        except ValueError:
            raise ConfigError(f"unknown variant in {list(map(str, self.variants))}; expected some of {names}") from None
        require(len(set(variants)) == len(variants), f"variants {[v.value for v in variants]} list one twice")
        object.__setattr__(self, "variants", variants)
        for name in ("calibration_dir", "labels_file", "out"):
            object.__setattr__(self, name, _as_path(getattr(self, name)))
        require(
            self.io is None or self.io in INT8_IO, f"--io {self.io!r} is invalid; expected one of {', '.join(INT8_IO)}"
        )
        require(
            self.io is None or Quantization.INT8 in variants,
            "--io sets the int8 variant's input/output type; add --int8 or drop --io",
        )
        calibrated = any(v in NEEDS_CALIBRATION for v in variants)
        require(
            calibrated or (self.calibration_count is None and self.calibration_dir is None),
            "--calibration-count/--calibration-dir are used only by --int8 and --int8-fallback; add one or drop them",
        )
        count = DEFAULT_COUNT if self.calibration_count is None else self.calibration_count
        CalibrationConfig(count=count, seed=self.calibration_seed)  # validates both
        for name in ("mean", "std"):
            if getattr(self, name) is not None:
                values = tuple(getattr(self, name))
                require(len(values) in (1, 3), f"--{name} {list(values)} must have 1 value or 3 (R, G, B)")
                object.__setattr__(self, name, tuple(float(v) for v in values) * (3 if len(values) == 1 else 1))
        self.preprocessing()  # validates size/mean/std when given
        for name in ("overwrite", "bias_correction", "auto_fallback"):
            require(isinstance(getattr(self, name), bool), f"{name} {getattr(self, name)!r} must be true or false")
        require(
            not self.auto_fallback or Quantization.INT8 in variants,
            "--auto-fallback keeps layers of the int8 variant in float; add --int8 or drop --auto-fallback",
        )
        given = [name for name in FALLBACK_TOLERANCES if getattr(self, name) is not None]
        require(
            self.auto_fallback or not given,
            f"{', '.join('--' + FALLBACK_TOLERANCES[n] for n in given)} set where --auto-fallback stops; "
            "add --auto-fallback or drop them",
        )
        self.fallback_tolerances()  # validates them
        require(isinstance(self.qat, bool), f"qat {self.qat!r} must be true or false")
        require(not self.qat or Quantization.INT8 in variants,
                "--qat fine-tunes the int8 variant; add --int8 or drop --qat")
        require(not (self.qat and self.auto_fallback),
                "--qat and --auto-fallback are two routes to int8 parity; pass one (quantize/README.md compares them)")
        require(self.qat or self.qat_epochs is None, "--qat-epochs sets how long --qat fine-tunes; add --qat or drop it")
        self.qat_config()  # validates qat_epochs
        if self.target is not None:
            runtime_info(self.target)

    def fallback_tolerances(self) -> Tolerances:
        """The parity limits auto-fallback stops at: the fields given, `mdx check`'s defaults for the rest."""
        given = {name.removeprefix("fallback_"): getattr(self, name) for name in FALLBACK_TOLERANCES
                 if getattr(self, name) is not None}
        try:
            return Tolerances(**given)
        except UsageError as exc:
            raise ConfigError(f"--auto-fallback: {exc}") from None

    def qat_config(self) -> QatConfig:
        return QatConfig() if self.qat_epochs is None else QatConfig(epochs=self.qat_epochs)

    @property
    def planned(self) -> tuple[Quantization, ...]:
        """Variants in build order: fp32 first (the baseline), then the others in enum order."""
        return (Quantization.FP32,) + tuple(
            q for q in Quantization if q in self.variants and q is not Quantization.FP32
        )

    @property
    def needs_calibration(self) -> bool:
        return any(v in NEEDS_CALIBRATION for v in self.variants)

    def given(self) -> dict[str, bool]:
        """Which model-file options were passed, by CLI flag."""
        return {
            "--size": self.size is not None,
            "--mean": self.mean is not None,
            "--std": self.std is not None,
            "--labels": self.labels_file is not None,
        }

    def preprocessing(self) -> Preprocessing | None:
        """The preprocessing given for a model file, or None when size, mean and std are not all given."""
        if self.size is None or self.mean is None or self.std is None:
            return None
        try:
            return Preprocessing(size=self.size, mean=self.mean, std=self.std)  # type: ignore[arg-type]
        except UsageError as exc:
            raise ConfigError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class VariantResult:
    """One variant written to `folder`: its size, time, io, ops and compatibility."""

    variant: Quantization
    folder: Path
    bytes: int
    seconds: float
    io: dict[str, Any]
    ops: list[dict[str, Any]]
    compatibility: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_NAME


@dataclasses.dataclass(frozen=True)
class ConvertResult:
    """All variants of one conversion, fp32 first."""

    source: Path
    out: Path
    variants: tuple[VariantResult, ...]

    def __getitem__(self, variant: Quantization | str) -> VariantResult:
        wanted = Quantization(variant)
        for result in self.variants:
            if result.variant is wanted:
                return result
        raise KeyError(f"{wanted} was not built; built: {[r.variant.value for r in self.variants]}")

    def to_dict(self) -> dict[str, Any]:
        fp32 = self.variants[0].bytes
        return {
            "source": str(self.source),
            "out": str(self.out),
            "variants": [
                {
                    "variant": r.variant.value,
                    "folder": str(r.folder),
                    "bytes": r.bytes,
                    "ratio_to_fp32": round(r.bytes / fp32, 4),
                    "seconds": round(r.seconds, 2),
                }
                for r in self.variants
            ],
        }


def _run_augmentation(src: Source) -> Any:
    """The augmentation the run trained with (quantization-aware fine-tuning augments as training did)."""
    from mdx.train.config import TrainConfig

    record = read_record(src.parent_record.parent) if src.parent_record is not None else {}
    try:
        return TrainConfig.from_record(record.get("config") or {}).augmentation
    except ConfigError:  # a record of an older mdx with keys this one no longer knows: fine-tune unaugmented
        return None


def _human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} KB"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_keras(path: Path) -> Any:
    from mdx.train.keras_load import load_model

    try:
        return load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, OSError, TypeError...: one message for all
        raise ArtifactError(
            f"{path}: cannot load the Keras model ({_first_line(exc)}); pass a model saved by tf-keras"
        ) from None


def check_classifier(model: Any, path: Path, size: int, labels: tuple[str, ...]) -> None:
    """Refuse anything but one (N, S, S, 3) image in, one (N, classes) probability vector out.

    Raises:
        ArtifactError: naming what differs from a classifier and the fix.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ArtifactError(
            f"{path} is not a classifier: it has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; expected one image input and one probability output"
        )
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4 or in_shape[3] != 3 or in_shape[1:3] not in ((size, size), (None, None)):
        raise ArtifactError(
            f"{path} input shape {in_shape} does not take ({size}, {size}, 3) images; "
            "the preprocessing size must match the model's input"
        )
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] != len(labels):
        raise ArtifactError(
            f"{path} is not a classifier: its output shape {out_shape} is not (batch, {len(labels)}) "
            f"for the {len(labels)} labels {list(labels)}; end the model with Dense({len(labels)}, softmax)"
        )
    probe = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
    probs = np.asarray(model(probe, training=False), dtype=np.float64)
    if probs.min() < -1e-6 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ArtifactError(
            f"{path} is not a classifier: its outputs are not softmax probabilities (rows sum to "
            f"{np.round(probs.sum(axis=1), 3).tolist()}); end the model with a softmax activation"
        )


def _to_tflite(model: Any, variant: Quantization, io: str | None, dataset: RepresentativeDataset | None) -> bytes:
    recipe = recipe_for(variant, io=io if variant is Quantization.INT8 else None)
    return tflite_bytes(model, recipe, dataset, what=str(variant))


def _write_variant(
    folder: Path, data: bytes, source: Source, config: ConvertConfig, seconds: float, extra: dict[str, Any]
) -> None:
    with staged_dir(folder, overwrite=config.overwrite) as staging:
        model_file = atomic_write_bytes(staging / MODEL_NAME, data)
        labels_file = atomic_write_text(staging / LABELS_NAME, "\n".join(source.labels) + "\n")
        write_record(
            staging,
            stage="convert",
            config=config.to_dict(),
            inputs=[source.hashed],
            outputs=[model_file, labels_file],
            wall_seconds=seconds,
            extra=extra,
        )


@dataclasses.dataclass(frozen=True)
class _Built:
    """A converted variant held in memory until every variant has converted and passed the target check."""

    variant: Quantization
    data: bytes
    seconds: float
    facts: TfliteFacts
    extra: dict[str, Any]


def _build(model: Any, variant: Quantization, src: Source, config: ConvertConfig, calibration: CalibrationSet | None,
           context: Int8Context | None, on_log: Log | None) -> _Built:
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if calibration is not None and context is not None and variant in NEEDS_CALIBRATION:
        data, extra = build_calibrated(model, variant, config.io, calibration, context, _to_tflite, on_log)
    else:
        data = _to_tflite(model, variant, config.io, None)
    # Every variant carries its labels and normalization, as MediaPipe Tasks reads them (convert/metadata.py).
    # ... and the decision threshold of its run, so that a .tflite copied alone to a board decides as the app does.
    data = embed_metadata(data, src.labels, src.preprocessing, name=f"mdx {variant}",
                          description=f"{', '.join(src.labels)} classifier; input (pixel - mean) / std", version=__version__,
                          decision=src.decision())
    seconds = time.perf_counter() - started
    facts = read_tflite(data)
    if config.target is not None:
        problems = problems_for(facts, config.target)
        if problems:
            raise CompatibilityError(
                f"{variant} would not load on {config.target}: " + "; ".join(str(p) for p in problems)
            )
    return _Built(variant, data, seconds, facts, extra)


def _save(
    out: Path, built: _Built, src: Source, config: ConvertConfig, calibration: CalibrationSet | None, fp32_bytes: int
) -> VariantResult:
    facts, variant = built.facts, built.variant
    io = {"input": facts.inputs[0].to_dict(), "output": facts.outputs[0].to_dict()}
    ops = facts.ops_table()
    compatibility = compatibility_report(facts, config.target)
    extra = {
        "variant": variant.value,
        "source": src.to_dict(),
        "preprocessing": src.preprocessing.to_dict(),
        "labels": list(src.labels),
        "threshold": src.threshold,
        "threshold_rule": src.threshold_rule,
        "io": io,
        "ops": ops,
        "compatibility": compatibility,
        "calibration": calibration.to_dict() if calibration and variant in NEEDS_CALIBRATION else None,
        "size": {"bytes": len(built.data), "ratio_to_fp32": round(len(built.data) / fp32_bytes, 4)},
        **built.extra,
    }
    _write_variant(out / variant.value, built.data, src, config, built.seconds, extra)
    return VariantResult(variant, out / variant.value, len(built.data), built.seconds, io, ops, compatibility)


def convert(source: Path, config: ConvertConfig, *, on_log: Log | None = None) -> ConvertResult:
    """Convert a run's model (or a model file) to fp32 and every requested variant.

    Writes OUT/<variant>/{model.tflite, labels.txt, record.json}, each folder complete or absent.
    Nothing is written until every variant has converted and passed the target check, so a refused
    or failed variant leaves no other folder behind either.

    Args:
        source: a run folder (RUN/train/record.json) or a .keras/.h5/SavedModel model.
        config: variants and options; a model file needs size, mean, std, labels_file (and
            calibration_dir for int8 variants).
        on_log: called with one line per written variant.

    Raises:
        ConfigError: options missing or conflicting with the source.
        ArtifactError: unreadable source, not a classifier, or an output folder exists without overwrite.
        DataError: calibration images missing or unreadable.
        ConversionError: TensorFlow failed to convert a variant.
        CompatibilityError: a variant would not load on `config.target`.
        ParityError: with `auto_fallback`, no candidate passed parity on the validation split.
    """
    src = resolve_source(
        Path(source),
        preprocessing=config.preprocessing(),
        labels_file=config.labels_file,
        calibration_dir=config.calibration_dir,
        needs_calibration=config.needs_calibration,
        given=config.given(),
    )
    if config.out is not None:
        out = config.out
    elif src.run is not None:
        out = src.run / "convert"
    else:
        raise ConfigError(f"{source} is a model file with no run folder; pass --out DIR")
    for variant in config.planned:  # refuse before spending minutes converting
        if (out / variant.value).exists() and not config.overwrite:
            raise ArtifactError(
                f"{out / variant.value} already exists; pass --overwrite to replace it, or choose another --out"
            )
    calibration: CalibrationSet | None = None
    if config.needs_calibration and src.calibration_dir is not None:  # resolve_source refuses a missing dir
        count = DEFAULT_COUNT if config.calibration_count is None else config.calibration_count
        calibration = sample_calibration(
            src.calibration_dir,
            src.preprocessing,
            src.labels,
            CalibrationConfig(count=count, seed=config.calibration_seed),
        )
        for reason in calibration.skipped:  # named, as train names the images it skips
            if on_log is not None:
                on_log(f"warning: skipped calibration image {reason}")
    validation = load_validation(src) if config.auto_fallback else None  # refuses a model file before the slow part
    qat_splits = [load_manifest_split(src, split, "--qat") for split in ("train", "val")] if config.qat else None
    # TF traces functions from the model's load to the last conversion: a signal waits for a safe point
    # (between variants, calibration images and bias-correction batches; mdx.interrupts)
    with interrupts.deferred():
        model = _load_keras(src.model)
        check_classifier(model, src.model, src.preprocessing.size, src.labels)
        context = None
        if calibration is not None:
            # bias correction is a post-training fix; quantization-aware fine-tuning learns its own biases
            context = prepare(model, calibration, bias_correction=config.bias_correction and not config.qat,
                              validation=validation, tolerances=config.fallback_tolerances())
            if qat_splits is not None:
                context.qat_config = config.qat_config()
                context.qat = fine_tune_quantized(model, qat_splits[0][0], qat_splits[1][0], src.preprocessing,
                                                  context.qat_config, _run_augmentation(src), on_log)
        built: list[_Built] = []
        for variant in config.planned:  # fp32 first: auto-fallback checks the int8 candidates against it
            interrupts.safe_point()
            built.append(_build(model, variant, src, config, calibration, context, on_log))
            if context is not None and context.fp32 is None:
                context.fp32 = built[0].data
    fp32_bytes = len(built[0].data)
    results: list[VariantResult] = []
    for one in built:
        results.append(_save(out, one, src, config, calibration, fp32_bytes))
        if on_log is not None:
            size = len(one.data)
            ratio = "" if one.variant is Quantization.FP32 else f", {size / fp32_bytes:.2f}x FP32"
            on_log(f"{one.variant}: saved {MODEL_NAME} ({_human(size)}{ratio}) in {one.seconds:.1f} s")
    return ConvertResult(Path(source), out, tuple(results))
