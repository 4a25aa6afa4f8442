"""The classifier: an ImageNet backbone, one of the seed papers' heads, and which layers fine-tune."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mdx.errors import ConfigError
from mdx.runtime.preprocess import MOBILENET_V2, Preprocessing
from mdx.train.config import TrainConfig
from mdx.train.keras_shim import keras

BUNDLED_TFLITE = Path("imagenet_mobilenet_v2") / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
WEIGHTS_ENV = "MDX_IMAGENET_TFLITE"

# EfficientNet carries its own rescaling layers and expects raw [0, 255] pixels.
BACKBONE_PREPROCESSING = {
    "mobilenet_v2": MOBILENET_V2,
    "mobilenet_v3_small": MOBILENET_V2,
    "mobilenet_v3_large": MOBILENET_V2,
    "efficientnet_b0": Preprocessing(size=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
}


def preprocessing_for(config: TrainConfig) -> Preprocessing:
    base = BACKBONE_PREPROCESSING[config.backbone]
    return Preprocessing(size=config.input_size, mean=base.mean, std=base.std)


def find_bundled_weights(data_dir: Path | None) -> Path:
    """The bundled ImageNet .tflite: $MDX_IMAGENET_TFLITE, else data/ beside the data set, else ./data/,
    else the copy installed with the package (mdx/weights/).

    Raises:
        ConfigError: none of those exists.
    """
    candidates = []
    if os.environ.get(WEIGHTS_ENV):
        candidates.append(Path(os.environ[WEIGHTS_ENV]))
    if data_dir is not None:
        candidates.append(Path(data_dir).resolve().parent / BUNDLED_TFLITE)
    candidates.append(Path.cwd() / "data" / BUNDLED_TFLITE)
    package = Path(__file__).resolve().parent.parent  # the repository in a checkout, site-packages/mdx when installed
    candidates.append(package / "data" / BUNDLED_TFLITE)
    candidates.append(package / "weights" / BUNDLED_TFLITE.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"bundled ImageNet weights not found (looked for {', '.join(str(c) for c in candidates)}); "
        f"pass --weights FILE (.tflite/.keras/.h5), --weights none, or set {WEIGHTS_ENV}"
    )


RANDOM_INIT_BN_MOMENTUM = 0.9


def _keras_backbone(config: TrainConfig, weights: str | None) -> keras.Model:
    shape = (config.input_size, config.input_size, 3)
    apps = keras.applications
    if config.backbone == "mobilenet_v2":
        return apps.MobileNetV2(input_shape=shape, alpha=config.alpha, include_top=False, weights=weights)
    if config.backbone == "mobilenet_v3_small":
        return apps.MobileNetV3Small(input_shape=shape, alpha=config.alpha, include_top=False, weights=weights,
                                     include_preprocessing=False)
    if config.backbone == "mobilenet_v3_large":
        return apps.MobileNetV3Large(input_shape=shape, alpha=config.alpha, include_top=False, weights=weights,
                                     include_preprocessing=False)
    return apps.EfficientNetB0(input_shape=shape, include_top=False, weights=weights)


def build_backbone(config: TrainConfig, data_dir: Path | None = None) -> tuple[keras.Model, str]:
    """The backbone (include_top=False) and where its weights came from."""
    choice = config.weights
    if choice == "none":
        backbone = _keras_backbone(config, None)
        for layer in backbone.layers:
            # Keras' 0.999 averages BatchNorm statistics over ~1000 steps: a few epochs on a few
            # thousand images would evaluate with statistics still half at their initial values
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = RANDOM_INIT_BN_MOMENTUM
        return backbone, "none (random init)"
    if choice == "imagenet":
        try:
            return _keras_backbone(config, "imagenet"), "imagenet (Keras download)"
        except Exception as exc:  # noqa: BLE001 - keras.utils.get_file raises a bare Exception on a failed download
            raise ConfigError(
                f"--weights imagenet: Keras could not download ImageNet weights ({type(exc).__name__}); "
                "offline machines should use the default --weights bundled"
            ) from None
    if choice == "bundled" or choice.endswith(".tflite"):
        if config.backbone != "mobilenet_v2":
            raise ConfigError(
                f"--weights {choice} holds MobileNetV2 weights; backbone {config.backbone!r} needs --weights none or imagenet"
            )
        from mdx.train.imagenet_import import imagenet_backbone

        path = find_bundled_weights(data_dir) if choice == "bundled" else Path(choice)
        return imagenet_backbone(path, input_size=config.input_size, alpha=config.alpha), str(path)
    path = Path(choice)
    if not path.exists():
        raise ConfigError(f"--weights {choice}: no such file; expected bundled, imagenet, none, or a .tflite/.keras/.h5 path")
    backbone = _keras_backbone(config, None)
    try:
        backbone.load_weights(str(path), by_name=path.suffix == ".h5", skip_mismatch=path.suffix == ".h5")
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--weights {path}: cannot load into a {config.backbone} backbone ({exc})") from None
    return backbone, str(path)


def build_classifier(config: TrainConfig, n_classes: int, backbone: keras.Model) -> keras.Model:
    """Input -> backbone -> head -> softmax over `n_classes`.

    A pretrained backbone keeps its BatchNorm in inference mode: its statistics describe the features
    it learnt and must not drift on a small data set (Keras' transfer-learning guide). A randomly
    initialised one (`weights='none'`) has no statistics to keep, and frozen at their initial values
    they keep its training from starting.
    """
    inputs = keras.Input((config.input_size, config.input_size, 3), name="image")
    features = backbone(inputs, training=None if config.weights == "none" else False)
    if config.head == "flatten":
        x = keras.layers.Flatten(name="flatten")(features)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
        x = keras.layers.Dense(config.dense_units, activation="relu", name="dense")(x)
        # a tf.random.Generator, whose state a checkpoint saves (mdx.train.checkpoint): Keras' default
        # stateful op restarts its stream with every new train function, so a resumed run would drop others
        x = keras.layers.Dropout(config.dropout, seed=config.seed, rng_type="stateful", name="dropout")(x)
    # float32 whatever the dtype policy: a bf16 softmax rounds probabilities to 8 bits, ties AUC and thresholds
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{config.backbone}_{config.head}")


_BLOCK = re.compile(r"^(block_?\d+[a-z]?|expanded_conv(?:_\d+)?)(?:_|/|$)")


def unfreeze_top_blocks(backbone: keras.Model, blocks: int) -> int:
    """Make the last `blocks` blocks (and the layers after them) trainable; returns how many layers."""
    backbone.trainable = True
    starts: list[int] = []
    last = None
    for index, layer in enumerate(backbone.layers):
        match = _BLOCK.match(layer.name)
        if match and match.group(1) != last:
            last = match.group(1)
            starts.append(index)
    first = starts[-blocks] if 0 < blocks <= len(starts) else (0 if blocks > len(starts) else len(backbone.layers))
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= first
    return len(backbone.layers) - first
