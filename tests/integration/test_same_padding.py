"""mdx.train.same_padding: Keras' pad + valid stride-2 convolutions become `same` convolutions, and the
backbone computes what it computed before, on real images, at even and odd sizes, in training as in inference."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from mdx.runtime.images import load_image
from mdx.runtime.preprocess import MOBILENET_V2

pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(find_spec("tf_keras") is None, reason="needs TensorFlow and tf-keras (the [train] extra)"),
]

IMAGENET = Path(__file__).resolve().parents[2] / "data" / "imagenet_mobilenet_v2"


def _images(size: int) -> np.ndarray:
    return MOBILENET_V2.normalize(np.stack([load_image(IMAGENET / f"{name}.bmp", size)
                                            for name in ("grace_hopper", "cat", "bird")]))


@pytest.mark.parametrize(("size", "n"), [(4, 1), (5, 1), (6, 1), (7, 1), (224, 3), (225, 3), (5, 2), (6, 2)])
def test_same_padding_pads_what_keras_correct_pad_pads_before_a_stride_2_conv(size: int, n: int) -> None:
    from mdx.train.same_padding import same_padding_for

    kernel = 2 * n + 1
    # keras.applications' correct_pad: (k//2 - 1, k//2) at even sizes, (k//2, k//2) at odd ones
    assert same_padding_for(size, kernel, 2) == ((n - 1, n) if size % 2 == 0 else (n, n))


@pytest.mark.parametrize("size", [96, 97])
def test_bundled_backbone_loses_its_pad_layers_and_keeps_its_outputs_and_gradients(size: int) -> None:
    from mdx.train.config import TrainConfig
    from mdx.train.keras_shim import keras, tf
    from mdx.train.model import build_backbone

    config = TrainConfig(input_size=size)
    keras_built, _ = build_backbone(config, explicit_padding=True)
    rewritten, _ = build_backbone(config)
    pads = [layer.name for layer in keras_built.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    assert len(pads) == 4  # one before each stride-2 block of MobileNetV2
    assert not [layer for layer in rewritten.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    # layer 0 is the input, whose automatic name counts the models built so far
    assert [layer.name for layer in rewritten.layers[1:]] == [layer.name for layer in keras_built.layers[1:]
                                                              if layer.name not in pads]
    assert all(np.array_equal(a, b) for a, b in zip(keras_built.get_weights(), rewritten.get_weights(), strict=True))
    images = tf.constant(_images(size))
    outputs = []
    for model in (keras_built, rewritten):
        with tf.GradientTape() as tape:
            features = model(images, training=False)
            loss = tf.reduce_sum(features ** 2)
        grads = tape.gradient(loss, model.trainable_weights)
        outputs.append((features.numpy(), [g.numpy() for g in grads]))
    (features_before, grads_before), (features_after, grads_after) = outputs
    assert features_before.std() > 0.1  # real activations, not a dead network
    np.testing.assert_allclose(features_after, features_before, rtol=0, atol=1e-5)
    for before, after in zip(grads_before, grads_after, strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * float(np.abs(before).max()))


def test_a_pad_that_same_would_not_reproduce_or_with_two_consumers_stays() -> None:
    from mdx.train.keras_shim import keras
    from mdx.train.same_padding import without_explicit_padding

    inputs = keras.Input((8, 8, 3))
    symmetric = keras.layers.ZeroPadding2D(((1, 1), (1, 1)), name="symmetric")(inputs)  # same pads (0, 1) at 8 px
    x = keras.layers.Conv2D(4, 3, strides=2, padding="valid", name="conv_a")(symmetric)
    shared = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="shared")(x)
    a = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="depthwise_a")(shared)
    b = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="depthwise_b")(shared)
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    assert without_explicit_padding(model) is model


def test_the_converted_classifier_has_no_pad_op(tmp_path: Path) -> None:
    from mdx.convert.keras_converter import tflite_bytes
    from mdx.quantize.recipes import fp32
    from mdx.runtime.interpreter import load_interpreter
    from mdx.train.config import TrainConfig
    from mdx.train.model import build_backbone, build_classifier

    config = TrainConfig(input_size=96)
    model = build_classifier(config, 2, build_backbone(config)[0])
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite_bytes(model, fp32, None))
    interpreter, _ = load_interpreter(path, xnnpack=False)  # XNNPACK would list its own DELEGATE op instead
    ops = {detail["op_name"] for detail in interpreter._get_ops_details()}
    assert "DEPTHWISE_CONV_2D" in ops and "PAD" not in ops
