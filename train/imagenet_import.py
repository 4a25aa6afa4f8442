"""ImageNet weights for MobileNetV2 without a download: read them out of a MobileNetV2 .tflite.

Keras fetches `weights="imagenet"` from a hub that hospital networks and our CI cannot reach, but the
repository bundles an ImageNet MobileNetV2 1.0/224 as an int8 .tflite. Its 52 backbone convolutions
(35 CONV_2D + 17 DEPTHWISE_CONV_2D) appear in the same order as Keras' Conv2D/DepthwiseConv2D layers,
followed by a 1x1 logits conv (or a FULLY_CONNECTED layer, as in a .tflite converted from Keras).

The converter folded each BatchNorm into its convolution (kernel * gamma / sqrt(var + eps), bias =
beta - mean * gamma / sqrt(var + eps)), so gamma and the statistics cannot be recovered. Keras convs
have no bias, so each BatchNorm becomes identity plus the folded bias: gamma 1, beta = bias, moving
mean 0, moving variance 1 - epsilon. This reproduces the .tflite in inference mode. In training mode a
BatchNorm would renormalize with batch statistics, which the folded weights were not trained for:
fine-tune with the backbone called as `backbone(x, training=False)`, as Keras' transfer-learning guide
advises for BatchNorm anyway.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx.config import ConfigBase, require
from mdx.errors import ArtifactError, ConfigError, DataError

BUNDLED_HINT = "data/imagenet_mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite"
CONV, DEPTHWISE, DENSE = "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"
FEATURES = 1280  # channels of MobileNetV2 1.0's last conv, the input of the classifier
MIN_INPUT_SIZE = 32  # keras.applications.MobileNetV2 refuses smaller inputs

# Inverted residual blocks of MobileNetV2 (Sandler et al. 2018, table 2) at alpha 1.0:
# (expansion t, output channels c, repeats n). Strides do not change weight shapes.
_BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))


def expected_backbone() -> list[tuple[str, tuple[int, ...]]]:
    """TFLite op type and weight shape (OHWI, depthwise 1HWC) of the 52 backbone convs, in order."""
    spec: list[tuple[str, tuple[int, ...]]] = [(CONV, (32, 3, 3, 3))]
    channels = 32
    for expansion, out_channels, repeats in _BLOCKS:
        for _ in range(repeats):
            hidden = channels * expansion
            if expansion != 1:  # the first block has no expansion conv, in Keras as in the paper
                spec.append((CONV, (hidden, 1, 1, channels)))
            spec.append((DEPTHWISE, (1, 3, 3, hidden)))
            spec.append((CONV, (out_channels, 1, 1, hidden)))
            channels = out_channels
    spec.append((CONV, (FEATURES, 1, 1, channels)))
    return spec


@dataclass(frozen=True)
class LayerWeights:
    """One float layer in Keras layout: Conv2D HWIO, DepthwiseConv2D HWC1, Dense (in, out)."""

    op: str
    tensor: str  # the weight tensor's name in the .tflite, for messages
    kernel: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        for array in (self.kernel, self.bias):  # shared through the read cache: nobody may edit them
            array.setflags(write=False)


@dataclass(frozen=True)
class MobileNetV2Weights:
    """The dequantized weights of a MobileNetV2 1.0 .tflite: 52 backbone convs and the classifier."""

    source: Path
    backbone: tuple[LayerWeights, ...]
    classifier: LayerWeights

    @property
    def num_classes(self) -> int:
        return int(self.classifier.kernel.shape[1])


def _not_mobilenet(path: Path, detail: str) -> ArtifactError:
    return ArtifactError(
        f"{path}: not a MobileNetV2 1.0 .tflite ({detail}); pass a MobileNetV2 1.0 ImageNet model such as {BUNDLED_HINT}"
    )


def _interpreter(path: Path) -> Any:
    """A TFLite interpreter, only to read tensors: ai-edge-litert, else TensorFlow's tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the [train] extra has TensorFlow, whose tf.lite has the same API
        from mdx.train.keras_shim import tf

        Interpreter = tf.lite.Interpreter
    try:
        return Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(
            f"{path}: not a readable .tflite flatbuffer ({exc}); the file is truncated or not a model, "
            f"copy it again (e.g. {BUNDLED_HINT})"
        ) from None


def _constant(interpreter: Any, tensors: dict[int, dict], producers: dict[int, dict], index: int) -> tuple:
    """The stored array of a weight tensor and its details; follows DEQUANTIZE (fp16 models)."""
    producer = producers.get(index)
    if producer is not None and producer["op_name"] == "DEQUANTIZE":
        return _constant(interpreter, tensors, producers, producer["inputs"][0])
    if producer is not None:
        raise ValueError(f"tensor {tensors[index]['name']!r} is computed by {producer['op_name']}, not stored")
    return np.array(interpreter.get_tensor(index)), tensors[index]


def _dequantize(array: np.ndarray, details: dict, scale_override: np.ndarray | None = None) -> np.ndarray:
    """Integer weights -> float32 with per-channel (or per-tensor) scales and zero points."""
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    params = details["quantization_parameters"]
    scales = np.asarray(params["scales"], dtype=np.float64)
    if scale_override is not None and (scales.size == 0 or not np.any(scales)):
        scales = scale_override
    if scales.size == 0:
        raise ValueError(f"integer tensor {details['name']!r} has no quantization scales")
    zero_points = np.asarray(params["zero_points"], dtype=np.float64)
    shape = [1] * array.ndim
    if scales.size > 1:
        shape[params["quantized_dimension"]] = scales.size
    zero_points = zero_points.reshape(shape) if zero_points.size == scales.size else 0.0
    return ((array.astype(np.float64) - zero_points) * scales.reshape(shape)).astype(np.float32)


def _read_layer(interpreter: Any, tensors: dict, producers: dict, op: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """Float (kernel in TFLite layout, bias) of one CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op."""
    inputs = op["inputs"]
    weight, weight_details = _constant(interpreter, tensors, producers, inputs[1])
    kernel = _dequantize(weight, weight_details)
    out_channels = kernel.shape[-1] if op["op_name"] == DEPTHWISE else kernel.shape[0]
    if len(inputs) < 3 or inputs[2] < 0:
        return kernel, np.zeros(out_channels, np.float32), weight_details["name"]
    bias, bias_details = _constant(interpreter, tensors, producers, inputs[2])
    # int32 biases are stored with scale input_scale * weight_scale; use it if the file omits the scale
    input_scale = np.asarray(tensors[inputs[0]]["quantization_parameters"]["scales"], dtype=np.float64)
    weight_scale = np.asarray(weight_details["quantization_parameters"]["scales"], dtype=np.float64)
    fallback = input_scale * weight_scale if input_scale.size == 1 and weight_scale.size else None
    return kernel, _dequantize(bias, bias_details, fallback).reshape(-1), weight_details["name"]


def _to_keras(op_name: str, kernel: np.ndarray) -> np.ndarray:
    """TFLite layouts -> Keras: conv OHWI -> HWIO, depthwise 1HWC -> HWC1, dense (out, in) -> (in, out)."""
    if op_name == DEPTHWISE:
        return np.ascontiguousarray(kernel[0][..., np.newaxis])
    if op_name == CONV:
        return np.ascontiguousarray(kernel.transpose(1, 2, 3, 0))
    return np.ascontiguousarray(kernel.T)


def read_mobilenet_v2_weights(tflite_path: Path) -> MobileNetV2Weights:
    """Read and dequantize the convolutions of a MobileNetV2 1.0 .tflite (int8, fp16 or fp32).

    Raises:
        ArtifactError: the file is missing, not a flatbuffer, or not a MobileNetV2 1.0 classifier.
    """
    path = Path(tflite_path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file; pass a MobileNetV2 1.0 ImageNet .tflite such as {BUNDLED_HINT}")
    stat = path.stat()
    return _read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_cached(path_text: str, _mtime_ns: int, _size: int) -> MobileNetV2Weights:
    """Cached by path, mtime and size: the trainer and the CLI may ask for the same file twice."""
    path = Path(path_text)
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    # _get_ops_details is the only API that lists ops in execution order (stable in tf.lite and litert)
    ops = interpreter._get_ops_details()
    producers = {out: op for op in ops for out in op["outputs"]}
    weighted = [op for op in ops if op["op_name"] in (CONV, DEPTHWISE, DENSE)]
    spec = expected_backbone()
    if len(weighted) != len(spec) + 1:
        raise _not_mobilenet(path, f"{len(weighted)} CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED layers, expected "
                                   f"{len(spec)} backbone convolutions and one classifier")
    layers: list[LayerWeights] = []
    try:
        for number, (op, (want_type, want_shape)) in enumerate(zip(weighted, spec)):
            kernel, bias, name = _read_layer(interpreter, tensors, producers, op)
            want_bias = (want_shape[-1] if want_type == DEPTHWISE else want_shape[0],)
            if op["op_name"] != want_type or kernel.shape != want_shape or bias.shape != want_bias:
                raise _not_mobilenet(path, f"convolution {number} {name!r} is {op['op_name']} {kernel.shape}, "
                                           f"expected {want_type} {want_shape}")
            layers.append(LayerWeights(want_type, name, _to_keras(want_type, kernel), bias))
        head, head_bias, head_name = _read_layer(interpreter, tensors, producers, weighted[-1])
    except ValueError as exc:
        raise _not_mobilenet(path, str(exc)) from None
    classes = head.shape[0]
    if head.size != classes * FEATURES or weighted[-1]["op_name"] == DEPTHWISE or head_bias.shape != (classes,):
        raise _not_mobilenet(path, f"classifier {head_name!r} has weights {head.shape}, expected (classes, 1, 1, "
                                   f"{FEATURES}) or (classes, {FEATURES})")
    classifier = LayerWeights(DENSE, head_name, _to_keras(DENSE, head.reshape(classes, FEATURES)), head_bias)
    return MobileNetV2Weights(source=path, backbone=tuple(layers), classifier=classifier)


def _check_alpha_and_size(alpha: float, input_size: int) -> None:
    if alpha != 1.0:
        raise ConfigError(f"alpha {alpha} is not available: the bundled ImageNet weights are MobileNetV2 alpha 1.0; "
                          "use alpha 1.0, or train from scratch (no imported weights) for another width")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE:
        raise ConfigError(f"input size {input_size!r} is invalid; expected an integer of at least {MIN_INPUT_SIZE}")


def _load_backbone_weights(model: Any, weights: MobileNetV2Weights) -> None:
    """Set each Keras conv to the folded kernel and the BatchNorm after it to identity + folded bias."""
    from mdx.train.keras_shim import keras

    convs = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if len(convs) != len(weights.backbone) or len(norms) != len(convs):
        raise ConfigError(f"this Keras MobileNetV2 has {len(convs)} convs and {len(norms)} BatchNorms, expected "
                          f"{len(weights.backbone)} of each; install the tf-keras version pinned in pyproject.toml")
    for conv, norm, layer in zip(convs, norms, weights.backbone):
        conv.set_weights([layer.kernel])
        channels = layer.bias.shape[0]
        # moving variance 1 - eps makes the BatchNorm divide by sqrt(var + eps) = 1, i.e. x + beta
        variance = np.full(channels, 1.0 - norm.epsilon, np.float32)
        norm.set_weights([np.ones(channels, np.float32), layer.bias, np.zeros(channels, np.float32), variance])


def imagenet_classifier(tflite_path: Path) -> Any:
    """The full ImageNet MobileNetV2 1.0/224 (1001 classes, class 0 = background) from a .tflite.

    Input: (N, 224, 224, 3) float32 pixels in [-1, 1] (`mdx.runtime.preprocess.MOBILENET_V2`).
    Output: softmax probabilities (N, classes).

    Raises:
        ArtifactError: the .tflite is missing, unreadable, or not a MobileNetV2 1.0 classifier.
    """
    from mdx.train.keras_shim import keras

    weights = read_mobilenet_v2_weights(tflite_path)
    model = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=1.0, include_top=True, weights=None, classes=weights.num_classes
    )
    _load_backbone_weights(model, weights)
    model.get_layer("predictions").set_weights([weights.classifier.kernel, weights.classifier.bias])
    return model


def imagenet_backbone(tflite_path: Path, input_size: int = 224, alpha: float = 1.0) -> Any:
    """MobileNetV2 without its classifier (`include_top=False`), with ImageNet weights from a .tflite.

    Conv weights do not depend on the input size, so any square size >= 32 works. Output: the
    (N, ceil(size/32), ceil(size/32), 1280) feature map. Call it with `training=False` when fine-tuning.

    Raises:
        ConfigError: alpha is not 1.0 (the bundled weights are alpha 1.0) or the size is invalid.
        ArtifactError: the .tflite is missing, unreadable, or not a MobileNetV2 1.0.
    """
    _check_alpha_and_size(alpha, input_size)
    from mdx.train.keras_shim import keras

    weights = read_mobilenet_v2_weights(tflite_path)
    model = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3), alpha=1.0, include_top=False, weights=None
    )
    _load_backbone_weights(model, weights)
    return model


@dataclass(frozen=True)
class ImportConfig(ConfigBase):
    """What `mdx import-weights` saves: the classifier (default) or the backbone only, and its labels."""

    include_top: bool = True
    input_size: int = 224
    labels: Path | None = None  # one line per output; copied beside the model and named in the record

    def __post_init__(self) -> None:
        require(isinstance(self.include_top, bool), f"include_top {self.include_top!r} must be true or false")
        require(not isinstance(self.input_size, bool) and isinstance(self.input_size, int)
                and self.input_size >= MIN_INPUT_SIZE,
                f"input_size {self.input_size!r} is invalid; expected an integer of at least {MIN_INPUT_SIZE}")
        require(not self.include_top or self.input_size == 224,
                f"input_size {self.input_size} needs include_top false: the ImageNet classifier is 224x224")
        if self.labels is not None:
            object.__setattr__(self, "labels", Path(self.labels))
        require(self.labels is None or self.include_top,
                "labels name the classifier's outputs; drop --labels when saving the backbone only")


@dataclass(frozen=True)
class ImportResult:
    """Where the model and its record were written, and what they hold."""

    model_path: Path
    record_path: Path
    labels_path: Path | None
    num_classes: int
    model_bytes: int
    seconds: float


def _check_labels(labels: Path, num_classes: int) -> None:
    if not labels.is_file():
        raise DataError(f"{labels}: no such labels file; pass a text file with one class name per line")
    names = labels.read_text(encoding="utf-8").splitlines()
    if len(names) != num_classes:
        raise DataError(f"{labels} has {len(names)} lines but the model has {num_classes} outputs; pass the labels "
                        "file that came with the .tflite (one line per output, class 0 first)")


def import_weights(tflite_path: Path, config: ImportConfig, out: Path, overwrite: bool = False) -> ImportResult:
    """Save a Keras model with the .tflite's ImageNet weights, with its record.

    `out` ending in `.keras` writes that file plus `<stem>.record.json` (and `<stem>.labels.txt`) beside
    it, as in `mdx import-weights m.tflite --out imagenet.keras`; any other `out` is a stage folder with
    model.keras, labels.txt and record.json. Everything is written under a temporary name and renamed.

    Raises:
        ArtifactError: the .tflite is unusable, or an output exists and `overwrite` is false.
        DataError: the labels file is missing or its line count differs from the model's outputs.
    """
    from mdx.records import staged_dir

    started = time.perf_counter()
    out = Path(out)
    as_file = out.suffix == ".keras"
    names = _output_names(out, as_file)
    produced = [names["model"], names["record"], *([names["labels"]] if config.labels else [])]
    clashes = [p for p in (produced if as_file else [out]) if p.exists()]
    if clashes and not overwrite:  # checked before the slow part, so a clash fails at once
        raise ArtifactError(f"{clashes[0]} already exists; pass --overwrite to replace it, or choose another --out")
    weights = read_mobilenet_v2_weights(tflite_path)
    if config.labels is not None:
        _check_labels(config.labels, weights.num_classes)
    if config.include_top:
        model = imagenet_classifier(tflite_path)
    else:
        model = imagenet_backbone(tflite_path, input_size=config.input_size)
    write = functools.partial(_write_stage, model=model, weights=weights, config=config, names=names,
                              tflite_path=Path(tflite_path), started=started)
    if as_file:
        with _scratch_dir(out) as staging:
            write(staging)
            # the old record goes first and the new one comes last: a record beside a model vouches for it
            names["record"].unlink(missing_ok=True)
            for key in ("model", "labels", "record"):
                if (staging / names[key].name).exists():
                    os.replace(staging / names[key].name, names[key])
                elif key == "labels":
                    names[key].unlink(missing_ok=True)  # a stale labels file from an overwritten import
    else:
        with staged_dir(out, overwrite=overwrite) as staging:
            write(staging)
    return ImportResult(
        model_path=names["model"], record_path=names["record"],
        labels_path=names["labels"] if config.labels is not None else None,
        num_classes=weights.num_classes, model_bytes=names["model"].stat().st_size,
        seconds=time.perf_counter() - started,
    )


def _output_names(out: Path, as_file: bool) -> dict[str, Path]:
    if as_file:
        stem = out.with_suffix("").name
        return {"model": out, "labels": out.with_name(f"{stem}.labels.txt"),
                "record": out.with_name(f"{stem}.record.json")}
    return {"model": out / "model.keras", "labels": out / "labels.txt", "record": out / "record.json"}


@contextlib.contextmanager
def _scratch_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` (same file system, so os.replace is atomic), always removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_stage(staging: Path, *, model: Any, weights: MobileNetV2Weights, config: ImportConfig,
                 names: dict[str, Path], tflite_path: Path, started: float) -> None:
    """Save the model, copy the labels and write record.json into `staging` under their final names."""
    from mdx.records import write_record
    from mdx.runtime.preprocess import Preprocessing

    outputs = [staging / names["model"].name]
    model.save(outputs[0])
    if config.labels is not None:
        outputs.append(Path(shutil.copyfile(config.labels, staging / names["labels"].name)))
    write_record(
        staging, stage="import-weights", config=config.to_dict(), inputs=[tflite_path], outputs=outputs,
        metrics={"backbone_convolutions": len(weights.backbone), "classes": weights.num_classes,
                 "parameters": int(model.count_params())},
        wall_seconds=time.perf_counter() - started,
        extra={"preprocessing": Preprocessing(size=config.input_size).to_dict(),
               "labels": names["labels"].name if config.labels is not None else None},
    )
    if names["record"].name != "record.json":
        os.replace(staging / "record.json", staging / names["record"].name)
