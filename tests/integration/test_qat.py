"""`mdx convert --int8 --qat`: quantization-aware fine-tuning (mdx.quantize.qat) with real tfmot and TFLite.

The MRI figures it exists for are in benchmarks/ (mri_int8_parity.py, candidate `qat`); here: the
simulation matches what the converter builds (per-channel depthwise kernels, calibrated ranges), the
fine-tuned model converts to a full-integer .tflite that the runtime loads, and misuse is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.convert.convert import ConvertConfig
from mdx.errors import ConfigError
from mdx.records import read_record

pytestmark = pytest.mark.tf


def _depthwise_model():
    """Conv -> depthwise -> softmax whose depthwise channels differ 1000x in scale, as BatchNorm-folded
    ImageNet kernels do: a per-tensor range rounds the small channels to 0."""
    from mdx.train.keras_shim import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, use_bias=False, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="depthwise_bn")(x)  # as in MobileNetV2, which tfmot's patterns expect
    x = keras.layers.ReLU(6.0, name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probabilities")(x))
    (kernel,) = model.get_layer("depthwise").get_weights()
    kernel *= np.geomspace(1e-3, 1.0, kernel.shape[2])[None, None, :, None].astype(np.float32)
    model.get_layer("depthwise").set_weights([kernel])
    return model


def test_qat_simulates_depthwise_per_channel_and_calibrated_ranges():
    import tensorflow_model_optimization as tfmot

    from mdx.quantize.qat import calibrate_ranges, quantization_aware
    from mdx.train.flatten import flatten_checked

    model = _depthwise_model()
    images = np.random.default_rng(0).uniform(-1, 1, (64, 16, 16, 3)).astype(np.float32)
    reference = model.predict(images, verbose=0)
    flat = flatten_checked(model)
    ours = quantization_aware(flat)
    ranges = [w for w in ours.get_layer("quant_depthwise").non_trainable_weights if "depthwise_kernel_min" in w.name]
    assert [tuple(w.shape) for w in ranges] == [(8,)]  # one range per channel, as TFLite stores it
    assert calibrate_ranges(ours, flat, images) >= 3  # conv, relu, dense (pre- and post-activation)
    stock = tfmot.quantization.keras.quantize_model(flatten_checked(model))
    stock(images[:32], training=True)  # tfmot's own weight ranges, activation ranges as it starts them
    error_ours = np.abs(ours.predict(images, verbose=0) - reference).max()
    error_stock = np.abs(stock.predict(images, verbose=0) - reference).max()
    assert error_ours < 0.02, error_ours
    assert error_ours * 3 < error_stock, (error_ours, error_stock)


@pytest.fixture(scope="module")
def qat_run(tiny_pipeline, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the tiny pipeline's run (tests only read the shared one), converted with --qat."""
    run = tmp_path_factory.mktemp("qat") / "run"
    shutil.copytree(tiny_pipeline[1], run, ignore=shutil.ignore_patterns("convert", "bench", "evaluate"))
    result = CliRunner().invoke(app, ["convert", str(run), "--int8", "--qat", "--qat-epochs", "1",
                                      "--calibration-count", "16"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return run, result.output


def test_convert_qat_records_the_fine_tuning_and_skips_bias_correction(qat_run):
    run, output = qat_run
    record = read_record(run / "convert" / "int8")
    qat = record["qat"]
    assert qat["epochs"] == 1 and qat["kept_epoch"] in (0, 1)
    assert len(qat["val_agreement_by_epoch"]) == 2 and all(0 <= a <= 1 for a in qat["val_agreement_by_epoch"])
    assert record["bias_correction"] is None
    assert record["config"]["qat"] is True
    assert "qat: calibrated, validation agreement with FP32" in output


def test_convert_qat_model_is_full_integer_with_per_channel_depthwise_and_loads(qat_run):
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.interpreter import load_interpreter

    run, _ = qat_run
    path = run / "convert" / "int8" / "model.tflite"
    interpreter, _ = load_interpreter(path, threads=1)
    details = interpreter.get_tensor_details()
    int8_weights = [d for d in details if d["dtype"] == np.int8 and len(d["shape"]) == 4]
    assert int8_weights, "no int8 convolution weights: the QAT model did not convert to integer kernels"
    depthwise = [d for d in int8_weights if d["shape"][0] == 1 and len(d["quantization_parameters"]["scales"]) > 1]
    assert depthwise, "no per-channel depthwise kernel in the converted model"
    probabilities = TfliteClassifier(path, threads=1).predict_proba(np.zeros((2, 32, 32, 3), np.float32))
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=0.02)


@pytest.mark.parametrize("settings, message", [
    ({"variants": ("fp16",), "qat": True}, r"--qat fine-tunes the int8 variant; add --int8"),
    ({"variants": ("int8",), "qat": True, "auto_fallback": True}, r"--qat and --auto-fallback are two routes"),
    ({"variants": ("int8",), "qat_epochs": 2}, r"--qat-epochs sets how long --qat fine-tunes; add --qat"),
    ({"variants": ("int8",), "qat": True, "qat_epochs": 0}, r"--qat-epochs 0 must be from 1 to 100"),
])
def test_convert_config_qat_misuse_is_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(**settings)


def test_convert_qat_on_a_model_file_names_it_and_the_fix(tiny_pipeline, tmp_path):
    model = tiny_pipeline[1] / "train" / "model.keras"
    result = CliRunner().invoke(app, ["convert", str(model), "--int8", "--qat", "--size", "32", "--mean", "127.5",
                                      "--std", "127.5", "--labels", str(tiny_pipeline[1] / "train" / "labels.txt"),
                                      "--calibration-dir", str(tiny_pipeline[0] / "train"), "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "is a model file; pass the run folder" in result.output and str(model) in result.output
