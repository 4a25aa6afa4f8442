"""The train stage on small real subsets: records, thresholds, backbones, bad images, MirroredStrategy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mdx.errors import ConfigError
from mdx.records import read_record
from mdx.runtime.metrics import THRESHOLD_RULE
from mdx.train.config import Augmentation, TrainConfig

pytestmark = pytest.mark.tf

TINY = {"input_size": 32, "alpha": 0.35, "weights": "none", "epochs_frozen": 1, "epochs_finetune": 1, "batch_size": 8,
        "bootstrap": 20, "val_fraction": 0.25}


def test_train_tiny_run_writes_model_labels_threshold_and_record(tmp_path: Path, xray_subset) -> None:
    from mdx.train.fit import train

    lines: list[str] = []
    result = train(xray_subset(8), TrainConfig(**TINY), tmp_path / "train", log=lines.append)
    record = read_record(tmp_path / "train")
    assert {p["path"] for p in record["outputs"]} >= {"model.keras", "labels.txt", "metrics.json", "history.json",
                                                      "training_curves.png", "roc.png", "confusion_matrix.png"}
    assert record["labels"] == ["NORMAL", "PNEUMONIA"]
    assert record["threshold_rule"] == THRESHOLD_RULE
    assert 0.0 <= result.threshold <= 1.0
    assert record["data"]["counts"] == {"train": 12, "val": 4, "test": 16}
    assert set(result.metrics["test"]["accuracy"]) == {"value", "ci95"}
    assert any(line.startswith("epoch 2/2  loss ") and "val_auc" in line for line in lines)
    with zipfile.ZipFile(tmp_path / "train" / "model.keras") as archive:  # no stage reads the optimizer's state
        assert b"optimizer" not in archive.read("model.weights.h5")


def test_cosine_schedule_decays_the_fine_tuning_rate_to_zero_over_the_phase() -> None:
    from mdx.train.fit import _learning_rate

    config = TrainConfig(lr_finetune=1e-4, lr_schedule="cosine")
    schedule = _learning_rate(config, epochs=4, steps=10)
    assert [round(float(schedule(step)), 9) for step in (0, 20, 40)] == [1e-4, 5e-5, 0.0]
    assert _learning_rate(TrainConfig(lr_finetune=1e-4), epochs=4, steps=10) == 1e-4


def test_train_without_early_stopping_runs_every_epoch_with_the_cosine_schedule_and_averages(tmp_path: Path,
                                                                                            xray_subset) -> None:
    from mdx.train.fit import train

    lines: list[str] = []
    config = TrainConfig(**{**TINY, "weights": "bundled", "alpha": 1.0, "epochs_finetune": 3, "patience": 0,
                            "lr_schedule": "cosine", "average_epochs": 2, "bootstrap": 0})
    train(xray_subset(8), config, tmp_path / "train", log=lines.append)
    record = read_record(tmp_path / "train")
    assert record["epochs_run"] == 4 and record["config"]["lr_schedule"] == "cosine"
    assert any("cosine decay to 0" in line for line in lines)
    assert "train: kept the mean of the weights of epochs 3-4" in lines


def test_step_budget_adds_fine_tuning_epochs_to_a_small_split_and_records_them(tmp_path: Path, xray_subset) -> None:
    from mdx.train.fit import train

    lines: list[str] = []
    # 12 training images at batch 8 are 2 steps an epoch: an 8-step budget needs 4 fine-tuning epochs, not 3,
    # and the weight average counts back from the phase's new end
    config = TrainConfig(**{**TINY, "weights": "bundled", "alpha": 1.0, "epochs_finetune": None, "min_finetune_steps": 8,
                            "patience": 0, "average_epochs": 2, "bootstrap": 0})
    train(xray_subset(8), config, tmp_path / "train", log=lines.append)
    record = read_record(tmp_path / "train")
    assert record["schedule"] == {"epochs_frozen": 1, "epochs_finetune": 4, "steps_per_epoch": 2}
    assert record["epochs_run"] == 5 and record["config"]["epochs_finetune"] is None
    assert any("fine-tuning for 4 epochs instead of 3 to reach min_finetune_steps=8" in line for line in lines)
    assert "train: kept the mean of the weights of epochs 4-5" in lines


def test_weight_average_keeps_the_mean_of_the_last_epochs_weights() -> None:
    from mdx.train.keras_shim import keras
    from mdx.train.weight_average import WeightAverage

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen: list[list[np.ndarray]] = []
    snapshot = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    x, y = np.random.default_rng(0).normal(size=(32, 4)), np.random.default_rng(1).normal(size=(32, 2))
    model.fit(x, y, epochs=4, verbose=0, callbacks=[snapshot, WeightAverage(2, lambda message: None)])
    expected = [np.mean([epoch[i] for epoch in seen[2:]], axis=0) for i in range(len(seen[0]))]
    assert not np.allclose(seen[-1][0], expected[0])  # the last epoch's weights are not the mean
    for kept, mean in zip(model.get_weights(), expected):
        np.testing.assert_allclose(kept, mean, rtol=1e-6)


def test_train_bundled_weights_start_from_imagenet(tmp_path: Path, xray_subset) -> None:
    from mdx.train.fit import train

    config = TrainConfig(**{**TINY, "weights": "bundled", "alpha": 1.0, "epochs_finetune": 0})
    train(xray_subset(8), config, tmp_path / "train")
    record = read_record(tmp_path / "train")
    assert record["weights_source"].endswith("tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert record["inputs"][0]["sha256"]


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "efficientnet_b0"])
def test_build_classifier_other_backbones_random_init_predict(backbone: str) -> None:
    from mdx.train.model import build_backbone, build_classifier

    config = TrainConfig(**{**TINY, "backbone": backbone, "alpha": 1.0})
    backbone_model, source = build_backbone(config)
    model = build_classifier(config, 3, backbone_model)
    probs = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert source == "none (random init)"


def test_build_classifier_probabilities_stay_float32_under_a_bfloat16_policy() -> None:
    """benchmarks/train_speed.py's mixed_bfloat16 lever: bf16 softmax outputs would tie AUC and thresholds."""
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        backbone_model, _ = build_backbone(TrainConfig(**TINY))
        model = build_classifier(TrainConfig(**TINY), 2, backbone_model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("dense").compute_dtype == "bfloat16"  # the policy did apply
    probs = model.predict(np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32), verbose=0)
    assert probs.dtype == np.float32 and model.get_layer("probabilities").compute_dtype == "float32"


def test_keras_load_fast_path_returns_the_model_tf_keras_loads_and_falls_back_for_other_formats(tmp_path: Path) -> None:
    """mdx.train.keras_load reads a .keras archive once into memory (tf-keras re-reads it on every seek):
    the same layers, weights and outputs as `keras.models.load_model(compile=False)`, for a compiled
    classifier whose archive holds the optimizer's state too, as a trained one's does."""
    from mdx.train.keras_load import load_model
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier

    config = TrainConfig(**TINY)
    model = build_classifier(config, 3, build_backbone(config)[0])
    rng = np.random.default_rng(0)  # every weight off its initial value, BatchNorm statistics included
    model.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    images = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    model.save(tmp_path / "model.h5")

    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        assert b"optimizer" in archive.read("model.weights.h5")  # the state compile=False leaves out
    stock = keras.models.load_model(tmp_path / "model.keras", compile=False)
    fast = load_model(tmp_path / "model.keras")
    assert fast.optimizer is None and fast.to_json() == stock.to_json()
    assert len(fast.weights) == len(stock.weights) == len(model.weights)
    for got, expected in zip(fast.weights, stock.weights, strict=True):
        assert got.name == expected.name
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    expected = model(images, training=False).numpy()
    np.testing.assert_array_equal(fast(images, training=False).numpy(), expected)
    h5 = load_model(tmp_path / "model.h5")  # not a .keras archive: tf-keras loads it
    np.testing.assert_array_equal(h5(images, training=False).numpy(), expected)
    (tmp_path / "broken.keras").write_bytes((tmp_path / "model.keras").read_bytes()[:5000])
    with pytest.raises(Exception, match=r"(?i)zip|file"):  # tf-keras' own error, which callers word
        load_model(tmp_path / "broken.keras")


@pytest.mark.parametrize(("weights", "updates"), [("none", True), ("bundled", False)])
def test_batchnorm_statistics_train_from_random_init_and_stay_with_pretrained_weights(weights: str, updates: bool,
                                                                                   xray_subset) -> None:
    """Random init: BatchNorm learns its statistics (with a momentum a short run can follow); ImageNet
    weights: its statistics describe the pretrained features and must not move."""
    from mdx.train.keras_shim import keras
    from mdx.train.model import RANDOM_INIT_BN_MOMENTUM, build_backbone, build_classifier, unfreeze_top_blocks

    config = TrainConfig(**{**TINY, "weights": weights, "alpha": 1.0 if weights == "bundled" else TINY["alpha"]})
    backbone, _ = build_backbone(config, xray_subset(8))
    unfreeze_top_blocks(backbone, 99)
    model = build_classifier(config, 2, backbone)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if updates:
        assert all(layer.momentum == RANDOM_INIT_BN_MOMENTUM for layer in norms)
    before = norms[-1].moving_mean.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32), np.eye(2)[rng.integers(0, 2, 8)], epochs=1,
              verbose=0)
    moved = not np.allclose(norms[-1].moving_mean.numpy(), before)
    assert moved is updates


def test_augment_batch_same_seed_same_pixels_other_seed_differs() -> None:
    from mdx.train.augment import augment_batch
    from mdx.train.keras_shim import tf

    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    aug = Augmentation(contrast=0.2)
    first = augment_batch(images, aug, tf.constant([1, 2], tf.int64)).numpy()
    again = augment_batch(images, aug, tf.constant([1, 2], tf.int64)).numpy()
    other = augment_batch(images, aug, tf.constant([1, 3], tf.int64)).numpy()
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.min() >= 0.0 and first.max() <= 255.0



def _box_aspect(image: np.ndarray) -> float:
    rows, cols = np.nonzero(image[..., 0] > 127)
    return float((cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1))


def test_augment_stretch_changes_the_aspect_ratio_and_zoom_alone_keeps_it() -> None:
    from mdx.train.augment import augment_batch
    from mdx.train.keras_shim import tf

    square = np.zeros((16, 64, 64, 3), np.uint8)
    square[:, 16:48, 16:48] = 255
    plain = {"horizontal_flip": False, "shear": 0.0, "rotation_degrees": 0.0, "brightness": 0.0}
    seed = tf.constant([5, 7], tf.int64)
    zoomed = augment_batch(square, Augmentation(zoom=0.3, stretch=0.0, **plain), seed).numpy()
    stretched = augment_batch(square, Augmentation(zoom=0.0, stretch=0.3, **plain), seed).numpy()
    zoom_aspects = [_box_aspect(image) for image in zoomed]
    stretch_aspects = [_box_aspect(image) for image in stretched]
    assert max(abs(aspect - 1.0) for aspect in zoom_aspects) < 0.1
    assert max(abs(aspect - 1.0) for aspect in stretch_aspects) > 0.2
    assert min(stretch_aspects) < 1.0 < max(stretch_aspects)  # both ways: x and y drawn independently

def _centre(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(image[..., 0] > 127)
    return np.array([cols.mean(), rows.mean()])


def test_augment_shift_moves_the_image_within_its_bound_and_leaves_older_draws_alone() -> None:
    from mdx.train.augment import augment_batch
    from mdx.train.keras_shim import tf

    square = np.zeros((32, 64, 64, 3), np.uint8)
    square[:, 24:40, 24:40] = 255
    plain = {"horizontal_flip": False, "shear": 0.0, "brightness": 0.0}
    seed = tf.constant([5, 7], tf.int64)
    centre = _centre(square[0])
    unshifted = augment_batch(square, Augmentation(**plain), seed).numpy()
    shifted = augment_batch(square, Augmentation(shift=0.2, **plain), seed).numpy()
    moved = np.array([_centre(image) - centre for image in shifted]) - np.array([_centre(image) - centre for image in unshifted])
    assert np.abs(moved).max() <= 0.2 * 64 + 1.0  # within the bound, one pixel for interpolation
    assert np.abs(moved).max() > 0.1 * 64  # and it does move
    assert (moved[:, 0] < -2).any() and (moved[:, 0] > 2).any() and (moved[:, 1] < -2).any() and (moved[:, 1] > 2).any()
    # shift has a seed of its own: with it at 0, training draws exactly what it drew before the field existed
    reference = augment_batch(square, Augmentation(shift=0.0, **plain), seed).numpy()
    np.testing.assert_array_equal(reference, unshifted)


def test_train_bad_and_odd_images_handled_or_skipped_with_warning(tmp_path: Path, xray_subset) -> None:
    from mdx.train.fit import train

    data = tmp_path / "data"
    shutil.copytree(xray_subset(8), data)
    normal = data / "train" / "NORMAL"
    source = Image.open(next(normal.iterdir())).convert("L")
    source.save(normal / "grey.png")
    source.convert("RGBA").save(normal / "rgba.png")
    Image.fromarray(np.asarray(source, np.uint16) * 257).save(normal / "sixteen.png")
    (normal / "notes.jpg").write_text("not an image")
    jpeg = next((data / "train" / "PNEUMONIA").iterdir()).read_bytes()
    (data / "train" / "PNEUMONIA" / "truncated.jpeg").write_bytes(jpeg[: len(jpeg) // 3])
    lines: list[str] = []
    train(data, TrainConfig(**{**TINY, "epochs_finetune": 0}), tmp_path / "train", log=lines.append)
    warnings = [line for line in lines if line.startswith("warning: skipped")]
    assert any("notes.jpg" in line for line in warnings)
    counts = read_record(tmp_path / "train")["data"]["counts"]
    assert counts["train"] + counts["val"] >= 16 + 3  # grey, RGBA and 16-bit PNGs were converted and kept


def test_train_mirrored_strategy_two_logical_cpus(tmp_path: Path, xray_subset) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        from mdx.train.keras_shim import tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from mdx.train.config import TrainConfig
        from mdx.train.fit import train
        config = TrainConfig(**json.loads({json.dumps(json.dumps({**TINY, "strategy": "mirrored", "epochs_finetune": 0}))}))
        train({str(xray_subset(8))!r}, config, {str(tmp_path / "train")!r})
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "train" / "record.json").read_text())
    assert record["replicas"] == 2 and record["config"]["strategy"] == "mirrored"


def test_frozen_features_head_on_pooled_features_predicts_as_the_whole_model() -> None:
    from mdx.train.frozen_features import head_model, pooled_features
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier, preprocessing_for

    config = TrainConfig(**TINY)
    keras.utils.set_random_seed(0)
    backbone, _ = build_backbone(config)
    backbone.trainable = False
    model = build_classifier(config, 2, backbone)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 0, 1])
    features = pooled_features(model, images, labels, 2, preprocessing_for(config))
    assert features.shape == (6, backbone.output_shape[-1]) and np.ptp(features) > 0
    whole = model.predict((images.astype(np.float32) - 127.5) / 127.5, verbose=0)
    np.testing.assert_allclose(head_model(model).predict(features, verbose=0), whole, rtol=1e-4, atol=1e-5)


def test_every_training_pipeline_runs_without_the_tf_data_autotuner() -> None:
    # the autotuner's thread makes the end of each epoch wait out its sleep (mdx.train.pipeline_data);
    # the options must survive the .map that Keras (class weights) and predict add on top
    from mdx.train.frozen_features import feature_dataset
    from mdx.train.model import preprocessing_for
    from mdx.train.pipeline_data import evaluation_dataset, training_dataset

    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1])
    preprocessing = preprocessing_for(TrainConfig(**TINY))
    pipelines = {
        "training": training_dataset(images, labels, 2, batch_size=2, preprocessing=preprocessing,
                                     augmentation=Augmentation(), seed=0),
        "evaluation": evaluation_dataset(images, labels, 2, batch_size=2, preprocessing=preprocessing),
        "features": feature_dataset(np.zeros((4, 8), np.float32), labels, 2, batch_size=2, seed=0),
    }
    tuned = [name for name, dataset in pipelines.items()
             if dataset.map(lambda x, y: x).options().autotune.enabled is not False]
    assert not tuned, f"tf.data's autotuner is on in the {tuned} pipelines"


@pytest.mark.parametrize("frozen_features", [True, False])
def test_train_frozen_phase_on_cached_features_or_augmented_images_trains_the_head(
        tmp_path: Path, xray_subset, frozen_features: bool) -> None:
    from mdx.train.fit import train
    from mdx.train.keras_shim import keras

    lines: list[str] = []
    config = TrainConfig(**{**TINY, "weights": "bundled", "alpha": 1.0, "input_size": 64, "epochs_finetune": 0,
                            "epochs_frozen": 2, "patience": 0, "frozen_features": frozen_features})
    train(xray_subset(8), config, tmp_path / "train", log=lines.append)
    assert any(line.startswith("train: frozen phase on backbone features") for line in lines) is frozen_features
    history = json.loads((tmp_path / "train" / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["val_auc"]) == 2
    model = keras.models.load_model(tmp_path / "train" / "model.keras", compile=False)
    assert [layer.name for layer in model.layers][-4:] == ["gap", "dense", "dropout", "probabilities"]


def test_train_config_from_an_older_record_replays_the_frozen_phase_on_images() -> None:
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "frozen_features"}
    assert TrainConfig.from_record(stored).frozen_features is False
    assert TrainConfig.from_record({**stored, "frozen_features": True}).frozen_features is True
    with pytest.raises(ConfigError, match="frozen_features='yes' must be true or false"):
        TrainConfig(frozen_features="yes")  # type: ignore[arg-type]
