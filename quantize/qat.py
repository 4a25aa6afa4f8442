"""Quantization-aware fine-tuning: tfmot's `quantize_apply`, set up so that it simulates what the TFLite
converter will build, then distilled from the float model.

Three things in tfmot's default 8-bit scheme keep it from working on an mdx model as it comes
(`benchmarks/README.md`, "Quantization-aware fine-tuning"):

- DepthwiseConv2D kernels (kh, kw, C, 1) are fake-quantized "per axis" over their last axis, of size 1:
  one scale for the whole kernel, while the converter quantizes depthwise kernels per channel. With
  ImageNet weights whose BatchNorm is folded into the kernels the per-tensor simulation is far off
  (0.11 agreement with FP32 before any training on the MRI model). Here they are quantized per channel.
- Weight ranges are the last training batch's and activation ranges an EMA (decay 0.999, hard-coded) from
  [-6, 6]: a few hundred fine-tuning steps never reach the data's ranges. Here they start from one
  calibration pass of the float model (min/max, as the post-training converter takes them).
- The loss is a distillation from the float model's probabilities (softened by a temperature), since
  the aim is to agree with FP32, and the kept epoch is the one that agrees best on validation.

TensorFlow and tfmot are imported inside the functions: `mdx.quantize` stays importable without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from mdx import interrupts
from mdx.config import ConfigBase, require

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class QatConfig(ConfigBase):
    """How long and how gently the quantized model is fine-tuned."""

    epochs: int = 3
    learning_rate: float = 1e-5
    batch_size: int = 32
    # distillation temperature: the float model's probabilities are softened, so that an image near a
    # decision boundary teaches more than a confident one
    temperature: float = 4.0
    calibration_images: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        require(isinstance(self.epochs, int) and 1 <= self.epochs <= 100, f"--qat-epochs {self.epochs!r} must be from 1 to 100")
        require(0.0 < self.learning_rate < 1.0, f"qat learning_rate={self.learning_rate} must be in (0, 1)")
        require(self.batch_size >= 1, f"qat batch_size={self.batch_size} must be at least 1")
        require(0.5 <= self.temperature <= 20.0, f"qat temperature={self.temperature} must be from 0.5 to 20")
        require(self.calibration_images >= 1, f"qat calibration_images={self.calibration_images} must be at least 1")


@dataclasses.dataclass(frozen=True)
class QatResult:
    """The fine-tuned fake-quantized Keras model, ready for the int8 converter recipe."""

    model: Any
    kept_epoch: int  # 0: calibration only (no epoch agreed better on validation)
    val_agreement: tuple[float, ...]  # after calibration, then after each epoch (Keras fake-quant model)

    def to_dict(self) -> dict[str, Any]:
        return {"kept_epoch": self.kept_epoch, "val_agreement_by_epoch": [round(a, 5) for a in self.val_agreement]}


def _scheme() -> Any:
    """tfmot's default 8-bit scheme with depthwise kernels fake-quantized per channel."""
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_scheme as scheme,
    )

    from mdx.train.keras_shim import keras, tf

    class DepthwisePerChannel(quantizers.LastValueQuantizer):
        """(kh, kw, C, M) quantized per output channel C*M, as TFLite stores a depthwise kernel."""

        def __init__(self) -> None:
            super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

        def build(self, tensor_shape: Any, name: str, layer: Any) -> dict[str, Any]:
            channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
            return {f"{end}_var": layer.add_weight(f"{name}_{end}", shape=(channels,), trainable=False,
                                                  initializer=keras.initializers.Constant(limit))
                    for end, limit in (("min", -6.0), ("max", 6.0))}

        def __call__(self, inputs: Any, training: Any, weights: Any, **kwargs: Any) -> Any:
            shape = tf.shape(inputs)  # tfmot's per-channel ops take 2-D or 4-D tensors, last axis the channel
            grouped = tf.reshape(inputs, (shape[0], shape[1], 1, -1))
            return tf.reshape(super().__call__(grouped, training, weights, **kwargs), shape)

    class DepthwiseConfig(registry.Default8BitQuantizeConfig):
        def __init__(self) -> None:
            super().__init__(["depthwise_kernel"], ["activation"], False)
            self.weight_quantizer = DepthwisePerChannel()

    class Registry(registry.Default8BitQuantizeRegistry):
        def get_quantize_config(self, layer: Any) -> Any:
            if isinstance(layer, registry.layers.DepthwiseConv2D):
                return DepthwiseConfig()
            return super().get_quantize_config(layer)

    class Scheme(scheme.Default8BitQuantizeScheme):
        def get_quantize_registry(self) -> Any:
            return Registry()

    return Scheme()


def quantization_aware(flat: Any) -> Any:
    """The fake-quantized copy of a flat model (mdx.train.flatten), ranges not yet set."""
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras
    return q.quantize_apply(q.quantize_annotate_model(flat), scheme=_scheme())


def calibrate_ranges(qat: Any, flat: Any, images: np.ndarray, batch_size: int = 32) -> int:
    """Weight ranges from one training-mode pass, activation ranges from the float model's min/max.

    Returns the number of activation ranges set (an untouched one keeps tfmot's [-6, 6]).
    """
    from mdx.train.keras_shim import keras, tf

    qat(tf.constant(images[:batch_size]), training=True)  # LastValueQuantizer reads the kernels' ranges
    wrapped = {layer.name: layer for layer in qat.layers}
    names = [layer.name for layer in flat.layers if "quant_" + layer.name in wrapped]
    dense_inputs = {n for n in names if isinstance(flat.get_layer(n), keras.layers.Dense)}
    probe = keras.Model(flat.inputs, [flat.get_layer(n).output for n in names]
                        + [flat.get_layer(n).input for n in sorted(dense_inputs)])
    low: dict[str, float] = {}
    high: dict[str, float] = {}

    def update(key: str, values: np.ndarray) -> None:
        low[key] = min(low.get(key, 0.0), float(values.min()))  # a range always holds 0, as TFLite's do
        high[key] = max(high.get(key, 0.0), float(values.max()))

    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        for name, value in zip(names, outputs[:len(names)]):
            update(name, value.numpy())
        for name, value in zip(sorted(dense_inputs), outputs[len(names):]):
            layer = flat.get_layer(name)  # a Dense's pre-activation (its logits, before a softmax)
            update(name + "/pre", value.numpy() @ layer.kernel.numpy() + layer.bias.numpy())
    count = 0
    for name in names:
        for weight in wrapped["quant_" + name].non_trainable_weights:
            short = weight.name.split("/")[-1].split(":")[0]
            key = name + "/pre" if short.startswith("pre_activation") else name
            if short in ("output_min", "post_activation_min", "pre_activation_min"):
                weight.assign(low[key])
                count += 1
            elif short in ("output_max", "post_activation_max", "pre_activation_max"):
                weight.assign(high[key])
                count += 1
    for weight in qat.layers[1].non_trainable_weights:  # the QuantizeLayer on the model's input
        short = weight.name.split(":")[0]
        if short.endswith("_min"):
            weight.assign(min(float(images.min()), 0.0))
        elif short.endswith("_max"):
            weight.assign(max(float(images.max()), 0.0))
    return count


def _distillation(temperature: float) -> Callable[[Any, Any], Any]:
    from mdx.train.keras_shim import tf

    def loss(teacher: Any, student: Any) -> Any:
        soft_teacher = tf.math.log(tf.clip_by_value(teacher, 1e-7, 1.0)) / temperature
        soft_student = tf.math.log(tf.clip_by_value(student, 1e-7, 1.0)) / temperature
        target = tf.nn.softmax(soft_teacher)
        kl = tf.reduce_sum(target * (tf.nn.log_softmax(soft_teacher) - tf.nn.log_softmax(soft_student)), axis=-1)
        return temperature * temperature * kl

    return loss


def fine_tune_quantized(model: Any, train: np.ndarray, val: np.ndarray, preprocessing: Any, config: QatConfig,
                        augmentation: Any = None, on_log: Log | None = None) -> QatResult:
    """Fake-quantize `model` (a classifier ending in softmax), calibrate, and fine-tune it to agree with itself.

    Each step shows the float model and its quantized copy the same augmented batch (the run's own
    augmentation): the float model's training images are fit almost one-hot, and augmented views carry
    the near-boundary cases the quantized copy must learn to decide as FP32 does.

    Args:
        model: the float Keras model (nested backbone allowed; it is flattened).
        train: training pixels (uint8, N x S x S x 3), the fine-tuning set (and the calibration sample).
        val: validation pixels: the epoch kept is the one that agrees best with FP32 here.
        preprocessing: the run's Preprocessing (mean, std).
        augmentation: an mdx.train.config.Augmentation, or None to fine-tune on the images as they are.
    """
    from mdx.train.augment import augment_batch
    from mdx.train.flatten import flatten_checked
    from mdx.train.keras_shim import keras, tf
    from mdx.train.pipeline_data import untuned

    log = on_log or (lambda line: None)
    keras.utils.set_random_seed(config.seed)
    # predict on numpy builds an autotuned tf.data pipeline that stalls when it ends (mdx.train.pipeline_data)
    val_inputs = untuned(tf.data.Dataset.from_tensor_slices(preprocessing.normalize(val)).batch(64))
    teacher_val = model.predict(val_inputs, verbose=0).argmax(axis=1)
    flat = flatten_checked(model)
    qat = quantization_aware(flat)
    rng = np.random.default_rng(config.seed)
    calibrate_ranges(qat, flat, preprocessing.normalize(train[rng.permutation(len(train))[:config.calibration_images]]),
                     config.batch_size)

    def agreement() -> float:
        return float(np.mean(qat.predict(val_inputs, verbose=0).argmax(axis=1) == teacher_val))

    history = [agreement()]
    log(f"qat: calibrated, validation agreement with FP32 {history[0]:.4f}")
    best_weights, kept = [w.numpy() for w in qat.weights], 0
    optimizer = keras.optimizers.Adam(config.learning_rate)
    loss_of = _distillation(config.temperature)
    mean = tf.constant(preprocessing.mean, tf.float32)
    std = tf.constant(preprocessing.std, tf.float32)

    @tf.function
    def step(pixels: Any, seed: Any) -> Any:
        if augmentation is not None:
            pixels = augment_batch(pixels, augmentation, seed)
        inputs = (tf.cast(pixels, tf.float32) - mean) / std
        target = model(inputs, training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_of(target, qat(inputs, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, qat.trainable_variables), qat.trainable_variables))
        return loss

    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(train))
        for index, start in enumerate(range(0, len(train), config.batch_size)):
            interrupts.safe_point()
            step(train[order[start:start + config.batch_size]], tf.constant([config.seed, epoch * 100_000 + index]))
        history.append(agreement())
        log(f"qat: epoch {epoch}/{config.epochs}, validation agreement with FP32 {history[-1]:.4f}")
        if history[-1] > max(history[:-1]):
            best_weights, kept = [w.numpy() for w in qat.weights], epoch
    for weight, value in zip(qat.weights, best_weights):
        weight.assign(value)
    return QatResult(qat, kept, tuple(history))
