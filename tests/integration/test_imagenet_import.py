"""ImageNet weights read out of the bundled int8 MobileNetV2 .tflite into tf-keras (`mdx import-weights`)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from mdx.errors import ArtifactError, ConfigError, DataError
from mdx.runtime.images import load_image
from mdx.runtime.preprocess import MOBILENET_V2

pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(find_spec("tf_keras") is None, reason="needs TensorFlow and tf-keras (the [train] extra)"),
]

DATA = Path(__file__).resolve().parents[2] / "data" / "imagenet_mobilenet_v2"
TFLITE = DATA / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
LABELS = DATA / "imagenet_labels.txt"
IMAGES = {"grace_hopper": "military uniform", "cat": "Egyptian cat", "bird": "chickadee"}
# Float weights against int8 weights *and* activations: probabilities differ by up to ~0.08 (cat).
PROBABILITY_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return LABELS.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """The three test images as MobileNetV2 inputs, (3, 224, 224, 3) float32 in [-1, 1]."""
    return MOBILENET_V2.normalize(np.stack([load_image(DATA / f"{name}.bmp", 224) for name in IMAGES]))


@pytest.fixture(scope="module")
def classifier():
    from mdx.train.imagenet_import import imagenet_classifier

    return imagenet_classifier(TFLITE)


@pytest.fixture(scope="module")
def float_probabilities(classifier, inputs) -> np.ndarray:
    return classifier(inputs, training=False).numpy()


@pytest.fixture(scope="module")
def int8_probabilities(inputs) -> np.ndarray:
    """The int8 .tflite itself, run by ai-edge-litert with its own input quantization."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(TFLITE), num_threads=1)
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = source["quantization"]
    out_scale, out_zero = sink["quantization"]
    rows = []
    for image in inputs:
        quantized = np.clip(np.round(image / in_scale + in_zero), 0, 255).astype(source["dtype"])
        interpreter.set_tensor(source["index"], quantized[np.newaxis])
        interpreter.invoke()
        rows.append((interpreter.get_tensor(sink["index"])[0].astype(np.float32) - out_zero) * out_scale)
    return np.stack(rows)


@pytest.fixture(scope="module")
def imported_file(tmp_path_factory) -> tuple[Path, object]:
    """`mdx import-weights TFLITE --out .../imagenet.keras --labels LABELS`, run once for several tests."""
    from typer.testing import CliRunner

    from mdx.cli import app

    out = tmp_path_factory.mktemp("import") / "imagenet.keras"
    result = CliRunner().invoke(app, ["import-weights", str(TFLITE), "--out", str(out), "--labels", str(LABELS)])
    return out, result


def test_classifier_grace_hopper_ranks_military_uniform_first(float_probabilities, labels):
    assert labels[int(np.argmax(float_probabilities[0]))] == "military uniform"


def test_classifier_three_images_top1_matches_int8_tflite(float_probabilities, int8_probabilities, labels):
    float_top1 = [labels[i] for i in np.argmax(float_probabilities, axis=1)]
    int8_top1 = [labels[i] for i in np.argmax(int8_probabilities, axis=1)]
    assert float_top1 == int8_top1 == list(IMAGES.values())
    assert np.abs(float_probabilities - int8_probabilities).max() < PROBABILITY_TOLERANCE
    np.testing.assert_allclose(float_probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_backbone_input_160_yields_features(inputs):
    from mdx.train.imagenet_import import imagenet_backbone

    backbone = imagenet_backbone(TFLITE, input_size=160)
    features = backbone(inputs[:1, :160, :160], training=False).numpy()
    assert features.shape == (1, 5, 5, 1280)
    assert np.isfinite(features).all() and features.std() > 0.1
    assert features.min() >= 0.0 and features.max() <= 6.0  # the last layer is ReLU6


def test_backbone_alpha_0_35_raises_config_error():
    from mdx.train.imagenet_import import imagenet_backbone

    with pytest.raises(ConfigError, match=r"alpha 0\.35 is not available: the bundled ImageNet weights are "
                                          r"MobileNetV2 alpha 1\.0"):
        imagenet_backbone(TFLITE, input_size=224, alpha=0.35)


def test_read_weights_tiny_conv_model_refused(tmp_path):
    from mdx.train.imagenet_import import read_mobilenet_v2_weights
    from mdx.train.keras_shim import keras, tf

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    tiny = tmp_path / "tiny.tflite"
    tiny.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(ArtifactError, match=r"tiny\.tflite: not a MobileNetV2 1\.0 \.tflite \(2 CONV_2D/"
                                            r"DEPTHWISE_CONV_2D/FULLY_CONNECTED layers, expected 52 backbone"):
        read_mobilenet_v2_weights(tiny)


def test_read_weights_truncated_file_refused(tmp_path):
    from mdx.train.imagenet_import import read_mobilenet_v2_weights

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(TFLITE.read_bytes()[:100_000])
    with pytest.raises(ArtifactError, match=r"truncated\.tflite: not a readable \.tflite flatbuffer .*copy it again"):
        read_mobilenet_v2_weights(truncated)


def test_read_weights_missing_file_refused(tmp_path):
    from mdx.train.imagenet_import import read_mobilenet_v2_weights

    with pytest.raises(ArtifactError, match=r"absent\.tflite: no such file; pass a MobileNetV2 1\.0"):
        read_mobilenet_v2_weights(tmp_path / "absent.tflite")


def test_import_config_labels_without_top_raises_config_error():
    from mdx.train.imagenet_import import ImportConfig

    with pytest.raises(ConfigError, match=r"drop --labels when saving the backbone only"):
        ImportConfig(include_top=False, input_size=160, labels=LABELS)


def test_import_weights_short_labels_file_raises_data_error(tmp_path):
    from mdx.train.imagenet_import import ImportConfig, import_weights

    short = tmp_path / "labels.txt"
    short.write_text("background\ncat\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.txt has 2 lines but the model has 1001 outputs"):
        import_weights(TFLITE, ImportConfig(labels=short), tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


def test_cli_import_weights_keras_out_writes_model_record_and_labels(imported_file):
    out, result = imported_file
    assert result.exit_code == 0, result.output
    assert "import-weights: saved" in result.output and "MB) in" in result.output
    record = json.loads((out.parent / "imagenet.record.json").read_text(encoding="utf-8"))
    assert record["stage"] == "import-weights" and record["metrics"]["classes"] == 1001
    assert [o["path"] for o in record["outputs"]] == ["imagenet.keras", "imagenet.labels.txt"]
    assert (out.parent / "imagenet.labels.txt").read_bytes() == LABELS.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["imagenet.keras", "imagenet.labels.txt", "imagenet.record.json"]


def test_cli_import_weights_existing_out_without_overwrite_exits_1(imported_file):
    from typer.testing import CliRunner

    from mdx.cli import app

    out, _ = imported_file
    before = out.stat().st_mtime_ns
    result = CliRunner().invoke(app, ["import-weights", str(TFLITE), "--out", str(out)])
    assert result.exit_code == 1
    assert "imagenet.keras already exists; pass --overwrite" in result.output
    assert out.stat().st_mtime_ns == before


def test_predict_proba_keras_imported_file_matches_classifier(imported_file, inputs, float_probabilities):
    from mdx.train.predict_keras import predict_proba_keras

    out, _ = imported_file
    np.testing.assert_allclose(predict_proba_keras(out, inputs), float_probabilities, atol=1e-5)
    with pytest.raises(DataError, match=r"inputs have shape \(3, 160, 160, 3\), expected \(N >= 1, 224, 224, 3\)"):
        predict_proba_keras(out, inputs[:, :160, :160])


def test_import_weights_folder_out_writes_verified_stage_folder(tmp_path):
    from mdx.records import read_record
    from mdx.train.imagenet_import import ImportConfig, import_weights

    out = tmp_path / "backbone"
    result = import_weights(TFLITE, ImportConfig(include_top=False, input_size=96), out)
    assert result.model_path == out / "model.keras" and result.labels_path is None
    record = read_record(out)  # checks every output's sha256
    assert record["config"] == {"include_top": False, "input_size": 96, "labels": None}
    assert record["preprocessing"]["size"] == 96
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "record.json"]


def test_bundled_weights_found_outside_a_checkout_in_the_installed_package(tmp_path, monkeypatch):
    """After `pip install mdx`, in any folder and with no data beside it, the default `--weights bundled` still works."""
    from mdx.runtime.files import sha256_file
    from mdx.train import model

    monkeypatch.delenv(model.WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    found = model.find_bundled_weights(tmp_path / "my_data")
    assert found.is_relative_to(Path(model.__file__).resolve().parent.parent), found  # the package's own copy
    assert sha256_file(found) == sha256_file(TFLITE)
