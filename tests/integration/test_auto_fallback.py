"""`--int8 --auto-fallback` and bias correction on a tiny classifier with one layer int8 cannot hold.

The sabotaged layer: every output channel of the hidden Dense carries one weight of 1000 on an input
that is always 0 (a dead ReLU channel). The float model ignores it; per-channel int8 gives that
channel a scale of 1000 / 127, so every real weight rounds to 0 and the int8 model predicts one
class. The debugger must rank that layer worst, and keeping it in float must restore parity.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mdx.convert.convert import ConvertConfig, convert
from mdx.errors import ConfigError, ParityError
from mdx.records import read_record, write_record
from mdx.runtime.parity import Tolerances
from mdx.runtime.preprocess import Preprocessing

pytestmark = pytest.mark.tf

SIZE = 32
CLASSES = ("NORMAL", "PNEUMONIA")
PRE = Preprocessing(size=SIZE, mean=(127.5,) * 3, std=(127.5,) * 3)
# A tiny validation split judges coarsely: these catch a broken int8 layer (agreement ~0.5), not noise.
LOOSE = Tolerances(max_acc_drop_pt=15.0, max_auc_drop=0.15, min_agreement=0.85)


def _sabotaged_model(images: np.ndarray, labels: np.ndarray):
    from mdx.train.keras_shim import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(PRE.normalize(images), labels, epochs=30, batch_size=8, verbose=0)
    kernel, bias = model.get_layer("features").get_weights()
    kernel[..., 5], bias[5] = 0.0, -1.0  # channel 5 is dead: ReLU(-1) = 0 everywhere
    model.get_layer("features").set_weights([kernel, bias])
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[5, :] = 1000.0  # multiplies the dead channel: no effect in float, ruins every int8 scale
    model.get_layer("hidden").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, xray_subset) -> SimpleNamespace:
    """A run folder (train record with data root, val_fraction, seed) around the sabotaged model."""
    from mdx.runtime.images import load_folder

    data = xray_subset(16)
    train = load_folder(data / "train", SIZE, CLASSES)
    model = _sabotaged_model(train.images, train.labels)
    run = tmp_path_factory.mktemp("fallback") / "run"
    (run / "train").mkdir(parents=True)
    model.save(run / "train" / "model.keras")
    (run / "train" / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    write_record(run / "train", stage="train", config={"val_fraction": 0.5, "seed": 0, "max_images_per_class": 0},
                 inputs=[], outputs=[run / "train" / "model.keras", run / "train" / "labels.txt"],
                 extra={"preprocessing": PRE.to_dict(), "labels": list(CLASSES), "threshold": 0.45,
                        "data": {"root": str(data), "train_dir": str(data / "train")}})
    return SimpleNamespace(run=run, model=model, data=data)


@pytest.fixture(scope="module")
def converted(tiny) -> Path:
    lines: list[str] = []
    config = ConvertConfig(variants=("int8",), calibration_count=16, auto_fallback=True,
                           fallback_min_agreement=LOOSE.min_agreement, fallback_max_acc_drop_pt=LOOSE.max_acc_drop_pt,
                           fallback_max_auc_drop=LOOSE.max_auc_drop)
    convert(tiny.run, config, on_log=lines.append)
    return tiny.run / "convert"


def test_auto_fallback_broken_layer_is_kept_float_and_recorded_with_its_cost(converted):
    record = read_record(converted / "int8")
    fallback = record["auto_fallback"]
    assert len(fallback["float_layers"]) == 1 and "hidden" in fallback["float_layers"][0]
    first, last = fallback["steps"][0], fallback["steps"][-1]
    assert first["float_layer"] is None and not first["passed"]  # plain int8 fails on validation
    assert last["passed"] and last["bytes_added"] > 0 and last["latency_added_ms"] is not None
    assert fallback["ranking"][0]["tensor"] == fallback["float_layers"][0]  # ranked worst by the debugger
    assert fallback["validation"]["n"] == 16 and fallback["validation"]["seed"] == 0
    assert fallback["validation"]["threshold"] == 0.45  # the train record's
    assert fallback["tolerances"]["min_agreement"] == LOOSE.min_agreement  # the config's, not mdx check's 0.98
    assert any("kept in float" in s for s in record["bias_correction"]["skipped"])


def test_auto_fallback_model_has_default_float32_io_and_a_float_layer(converted):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(converted / "int8" / "model.tflite"))
    assert np.dtype(interpreter.get_input_details()[0]["dtype"]) == np.float32
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("DEQUANTIZE") >= 2  # the float output's, and the float layer's dequantized activations


def test_auto_fallback_impossible_tolerance_raises_parity_error(tiny):
    from mdx.convert.keras_converter import keras_converter, tflite_bytes
    from mdx.quantize.auto_fallback import Validation, auto_fallback
    from mdx.quantize.calibration import sample_calibration
    from mdx.quantize.recipes import fp32
    from mdx.train.data import load_splits

    splits = load_splits(tiny.data, size=SIZE, val_fraction=0.5, seed=0)
    validation = Validation(PRE.normalize(splits.val.images), splits.val.labels, CLASSES, {})
    calibration = sample_calibration(tiny.data / "train", PRE, CLASSES).inputs[:8]
    reference = tflite_bytes(tiny.model, fp32)
    never = Tolerances(max_prob_diff=0.0)  # no int8 model matches float probabilities exactly
    with pytest.raises(ParityError, match=r"^int8 auto-fallback: parity still fails on validation with \d+ ops"):
        # int8 io: its quantized input and output keep even an all-float body off exact float probabilities
        auto_fallback(tiny.model, calibration, validation, reference, tolerances=never, io_type="int8",
                      make_converter=keras_converter)


def test_auto_fallback_decides_parity_at_the_runs_threshold(tiny):
    from mdx.convert.keras_converter import keras_converter, tflite_bytes
    from mdx.quantize.auto_fallback import Validation, auto_fallback
    from mdx.quantize.calibration import sample_calibration
    from mdx.quantize.recipes import fp32
    from mdx.train.data import load_splits

    splits = load_splits(tiny.data, size=SIZE, val_fraction=0.5, seed=0)
    # at threshold 0 both models call every image positive: they agree on all, whatever int8 did
    validation = Validation(PRE.normalize(splits.val.images), splits.val.labels, CLASSES, {}, threshold=0.0)
    calibration = sample_calibration(tiny.data / "train", PRE, CLASSES).inputs[:8]
    agree_only = Tolerances(max_acc_drop_pt=100.0, max_auc_drop=1.0, min_agreement=1.0)
    result = auto_fallback(tiny.model, calibration, validation, tflite_bytes(tiny.model, fp32), tolerances=agree_only,
                           make_converter=keras_converter)
    assert len(result.steps) == 1 and result.steps[0].parity.agreement == 1.0
    assert result.steps[0].parity.reference["threshold"] == 0.0


def test_convert_config_auto_fallback_without_int8_raises_config_error():
    with pytest.raises(ConfigError, match=r"--auto-fallback keeps layers of the int8 variant in float; add --int8"):
        ConvertConfig(variants=("int8-fallback",), auto_fallback=True)


@pytest.mark.parametrize(("settings", "message"), [
    ({"fallback_min_agreement": 0.99}, r"^--fallback-min-agreement set where --auto-fallback stops; add --auto-fallback"),
    ({"auto_fallback": True, "fallback_max_auc_drop": 2.0}, r"^--auto-fallback: tolerances max_auc_drop=2.0"),
    ({"auto_fallback": True, "fallback_max_acc_drop_pt": -1}, r"^--auto-fallback: tolerance max_acc_drop_pt=-1 is invalid"),
])
def test_convert_config_fallback_tolerances_are_checked(settings, message):
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(variants=("int8",), **settings)


def test_convert_config_fallback_tolerances_default_to_mdx_checks():
    config = ConvertConfig(variants=("int8",), auto_fallback=True, fallback_min_agreement=0.99)
    assert config.fallback_tolerances() == Tolerances(min_agreement=0.99)


def test_convert_auto_fallback_on_model_file_raises_config_error(tiny, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("NORMAL\nPNEUMONIA\n")
    config = ConvertConfig(variants=("int8",), auto_fallback=True, size=SIZE, mean=(127.5,), std=(127.5,),
                           labels_file=labels, calibration_dir=tiny.data / "train", out=tmp_path / "out")
    with pytest.raises(ConfigError, match=r"--auto-fallback checks parity on the run's validation split, but"):
        convert(tiny.run / "train" / "model.keras", config)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("io", [None, "int8", "uint8"])  # the int8 softmax is (de)quantized to each io type
def test_bias_correction_plain_int8_records_corrected_layers_and_output_offset(tiny, tmp_path, io):
    convert(tiny.run, ConvertConfig(variants=("int8",), io=io, calibration_count=16, out=tmp_path / "out"))
    record = read_record(tmp_path / "out" / "int8")
    assert record["bias_correction"]["layers_corrected"] == 3  # features, hidden, probabilities
    assert record["bias_correction"]["largest"][0]["layer"] == "hidden"
    assert record["output_offset"]["applied"] is True
    offset = record["output_offset"]
    assert offset["centered_rms_after"] <= offset["centered_rms_before"]  # least squares cannot do worse than a=1, b=0
    assert offset["slope_trusted"] and offset["softmax_beta"] == offset["slope"]
