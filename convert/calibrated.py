"""What the calibrated variants (int8, int8-fallback) add around `converter.convert()`.

Bias correction (mdx.quantize.bias_correction) is measured once on the calibration images and
applied to the model handed to the converter; the output offset (mdx.quantize.output_offset) then
patches the converted model's last bias. With `auto_fallback`, the int8 variant is instead chosen by
mdx.quantize.auto_fallback against FP32 on the run's validation split. quantize/README.md has the
measurements behind both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdx.convert.keras_converter import keras_converter
from mdx.convert.source import Source
from mdx.errors import ArtifactError, ConfigError
from mdx.quantize.auto_fallback import Validation, auto_fallback
from mdx.quantize.bias_correction import BiasPlan, apply_bias_correction, plan_bias_correction
from mdx.quantize.calibration import CalibrationSet
from mdx.quantize.output_offset import correct_output_offset, keras_logits
from mdx.quantize.qat import QatConfig, QatResult
from mdx.quantize.recipes import DEFAULT_INT8_IO
from mdx.records import read_record
from mdx.runtime.parity import Tolerances
from mdx.variants import Quantization

ToTflite = Callable[[Any, Quantization, "str | None", Any], bytes]
Log = Callable[[str], None]


@dataclasses.dataclass
class Int8Context:
    """Shared by the calibrated variants of one conversion; `fp32` is filled in once FP32 is built."""

    plan: BiasPlan | None
    reference_logits: np.ndarray | None
    validation: Validation | None
    fp32: bytes | None = None
    tolerances: Tolerances = dataclasses.field(default_factory=Tolerances)  # where auto-fallback stops
    qat: QatResult | None = None  # the fake-quantized model the int8 variant converts, with --qat
    qat_config: QatConfig | None = None


def prepare(model: Any, calibration: CalibrationSet, *, bias_correction: bool, validation: Validation | None,
            tolerances: Tolerances = Tolerances()) -> Int8Context:
    """Measure the bias correction (when asked) before any variant converts."""
    if not bias_correction:
        return Int8Context(None, None, validation, tolerances=tolerances)
    plan = plan_bias_correction(model, calibration.inputs)
    return Int8Context(plan, keras_logits(model, calibration.inputs), validation, tolerances=tolerances)


def load_validation(src: Source) -> Validation:
    """The run's validation split, carved exactly as `mdx train` carved it (or its val/ folder).

    Raises:
        ConfigError: the source is a model file, which has no run and so no validation split.
        ArtifactError: the train record does not say where the data is or how it was split.
    """
    from mdx.runtime.images import load_files
    from mdx.runtime.manifest import MANIFEST_NAME, read_manifest, split_files
    from mdx.train.data import load_splits

    if src.run is None or src.parent_record is None:
        raise ConfigError(f"--auto-fallback checks parity on the run's validation split, but {src.model} is a model "
                          "file; pass the run folder (RUN/train/record.json) instead")
    record = read_record(src.parent_record.parent)
    settings, data = record.get("config") or {}, record.get("data") or {}
    root = data.get("root") or settings.get("data_dir")
    if not root or "val_fraction" not in settings or "seed" not in settings:
        raise ArtifactError(f"{src.parent_record} lacks data.root, config.val_fraction or config.seed; "
                            "rerun mdx train to write a complete record")
    folder = Path(root)
    if not folder.is_absolute() and (src.run / folder).exists():
        folder = src.run / folder
    manifest = src.parent_record.parent / str(data.get("manifest") or MANIFEST_NAME)
    if data.get("manifest") and manifest.is_file():  # the split training recorded: read, not carved again
        files, labels = split_files(read_manifest(manifest, folder), "val", folder, src.labels)
        val = load_files(files, labels, src.labels, src.preprocessing.size, where=str(manifest))
        source = {"data": str(folder), "split": f"val rows of {manifest}", "seed": int(settings["seed"]),
                  "n": len(val.labels), "threshold": src.threshold}
        return Validation(src.preprocessing.normalize(val.images), val.labels, src.labels, source, src.threshold)
    splits = load_splits(folder, size=src.preprocessing.size, val_fraction=float(settings["val_fraction"]),
                         seed=int(settings["seed"]), max_images_per_class=int(settings.get("max_images_per_class", 0)),
                         group_pattern=str(settings.get("val_group_pattern", "")))
    if splits.class_names != src.labels:
        raise ArtifactError(f"{folder}: classes {list(splits.class_names)} differ from the run's labels "
                            f"{list(src.labels)}; restore the data set the run was trained on")
    source = {"data": str(folder), "split": "val/" if splits.val_dir else f"{settings['val_fraction']} of train/",
              "seed": int(settings["seed"]), "n": len(splits.val.labels), "threshold": src.threshold}
    return Validation(src.preprocessing.normalize(splits.val.images), splits.val.labels, src.labels, source,
                      src.threshold)


def load_manifest_split(src: Source, split: str, why: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of the run's split manifest (each file checked against its sha256): uint8 pixels, labels.

    Raises:
        ConfigError: the source is a model file, which has no run and so no split.
        ArtifactError: the run has no split manifest (trained before manifests existed).
    """
    from mdx.runtime.images import load_files
    from mdx.runtime.manifest import MANIFEST_NAME, read_manifest, split_files

    if src.run is None or src.parent_record is None:
        raise ConfigError(f"{why} uses the run's {split} split, but {src.model} is a model file; "
                          "pass the run folder (RUN/train/record.json) instead")
    record = read_record(src.parent_record.parent)
    data = record.get("data") or {}
    folder = Path(data.get("root") or (record.get("config") or {}).get("data_dir") or ".")
    if not folder.is_absolute() and (src.run / folder).exists():
        folder = src.run / folder
    manifest = src.parent_record.parent / str(data.get("manifest") or MANIFEST_NAME)
    if not manifest.is_file():
        raise ArtifactError(f"{why} reads the run's split from {manifest}, which is missing; retrain the run "
                            "with this mdx (it writes the manifest)")
    files, labels = split_files(read_manifest(manifest, folder), split, folder, src.labels)
    images = load_files(files, labels, src.labels, src.preprocessing.size, where=str(manifest))
    return images.images, images.labels


def build_calibrated(
    model: Any,
    variant: Quantization,
    io: str | None,
    calibration: CalibrationSet,
    context: Int8Context,
    to_tflite: ToTflite,
    on_log: Log | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Convert one calibrated variant; returns the model and its record entries.

    Raises:
        ConversionError: TensorFlow failed, or bias correction cannot handle the model.
        ParityError: auto-fallback found no model that passes parity on validation.
    """
    extra: dict[str, Any] = {"bias_correction": None}
    if variant is Quantization.INT8 and context.qat is not None:  # ranges from the fine-tuned fake quantizers
        extra["qat"] = {**(context.qat_config.to_dict() if context.qat_config else {}), **context.qat.to_dict()}
        return to_tflite(context.qat.model, variant, io, calibration.representative_dataset()), extra
    if variant is Quantization.INT8 and context.validation is not None:
        if context.fp32 is None:
            raise ArtifactError("auto-fallback needs the FP32 model first; this is a bug in mdx.convert")
        result = auto_fallback(model, calibration.inputs, context.validation, context.fp32, io_type=io or DEFAULT_INT8_IO,
                               plan=context.plan, reference_logits=context.reference_logits,
                               tolerances=context.tolerances, make_converter=keras_converter, on_log=on_log)
        if context.plan is not None:
            extra["bias_correction"] = apply_bias_correction(model, context.plan,
                                                             keep_float=result.float_layers)[1].to_dict()
        extra["auto_fallback"] = result.to_dict()
        return result.data, extra
    source = model
    if context.plan is not None:
        source, report = apply_bias_correction(model, context.plan)
        extra["bias_correction"] = report.to_dict()
    data = to_tflite(source, variant, io, calibration.representative_dataset())
    if context.plan is not None and context.reference_logits is not None:
        data, offset = correct_output_offset(data, context.reference_logits, calibration.inputs)
        extra["output_offset"] = offset
    return data, extra
