"""Keras -> every .tflite variant on a tiny classifier and a small real subset of the chest X-rays."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mdx.convert.compat import check_compatibility
from mdx.convert.convert import ConvertConfig, convert
from mdx.convert.flatbuffer import read_tflite
from mdx.convert.source import resolve_source
from mdx.errors import ArtifactError, CompatibilityError, ConfigError, ConversionError, DataError
from mdx.quantize.calibration import CalibrationConfig, sample_calibration, stratified_quota
from mdx.records import read_record, write_record
from mdx.runtime.classifier import TfliteClassifier
from mdx.runtime.errors import ModelLoadError
from mdx.runtime.evaluate import EvaluateConfig, evaluate
from mdx.runtime.files import sha256_file
from mdx.runtime.images import load_folder
from mdx.runtime.model_info import load_model_info, read_embedded_metadata
from mdx.runtime.preprocess import Preprocessing

REPO = Path(__file__).resolve().parents[2]
CHEST_TRAIN = REPO / "data" / "chest_xray" / "train"
CLASSES = ("NORMAL", "PNEUMONIA")
PER_CLASS = 12
SIZE = 32
PRE = Preprocessing(size=SIZE, mean=(127.5,) * 3, std=(127.5,) * 3)
VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8-fallback")
IO_DTYPE = dict.fromkeys(VARIANTS, "float32")  # int8 too: float32 io around its int8 body by default
THRESHOLD = 0.4375  # as mdx train records it for two classes; not 0.5, so a dropped threshold shows
RULE = "Youden's J on validation, one-standard-error rule toward 0.5"


# --- fixtures ---------------------------------------------------------------------------------


def _keras():
    from mdx.train.keras_shim import keras

    return keras


def _make_run(run: Path, model_file: Path, train_dir: Path, **record: object) -> Path:
    """A run folder as `mdx train` leaves it: train/model.keras, labels.txt, record.json (`record` adds keys)."""
    train = run / "train"
    train.mkdir(parents=True)
    shutil.copy(model_file, train / "model.keras")
    (train / "labels.txt").write_text("\n".join(record.get("labels", CLASSES)) + "\n")  # type: ignore[arg-type]
    write_record(
        train,
        stage="train",
        config={},
        inputs=[],
        outputs=[train / "model.keras", train / "labels.txt"],
        extra={
            "preprocessing": PRE.to_dict(),
            "labels": list(CLASSES),
            "threshold": THRESHOLD,
            "threshold_rule": RULE,
            "data": {"train_dir": str(train_dir), "test_dir": str(train_dir)},
            **record,
        },
    )
    return run


@pytest.fixture(scope="module")
def xray_subset(tmp_path_factory) -> Path:
    """12 real chest X-rays per class, folder-per-class."""
    root = tmp_path_factory.mktemp("xray") / "train"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for image in sorted((CHEST_TRAIN / name).iterdir())[:PER_CLASS]:
            shutil.copy(image, root / name / image.name)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, xray_subset) -> Path:
    """A MobileNetV2-shaped classifier (conv, depthwise, 1x1 conv, GAP, Dense softmax), fit for a few seconds.

    The 640-wide head gives the Dense layer 1,280 weights: enough for dynamic-range quantization to
    quantize it (the converter skips tensors under 1,024 elements), as it does MobileNetV2's.
    """
    keras = _keras()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = layers.Conv2D(640, 1, activation="relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(len(CLASSES), activation="softmax")(x))
    data = load_folder(xray_subset, SIZE, CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(PRE.normalize(data.images), data.labels, epochs=40, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model, xray_subset) -> Path:
    return _make_run(tmp_path_factory.mktemp("runs") / "run", tiny_model, xray_subset)


@pytest.fixture(scope="module")
def converted(tiny_run):
    lines: list[str] = []
    result = convert(tiny_run, ConvertConfig(variants=VARIANTS[1:], calibration_count=16), on_log=lines.append)
    return SimpleNamespace(result=result, lines=lines, out=tiny_run / "convert")


def _interpreter(path: Path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    return litert.Interpreter(model_path=str(path))


def _predict(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Top-1 class per image, quantizing inputs with the model's own input scale and zero point."""
    interpreter = _interpreter(path)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    top1 = []
    for image in inputs:
        batch = image[None]
        if detail["dtype"] != np.float32:
            scale, zero_point = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            batch = np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        top1.append(int(np.argmax(interpreter.get_tensor(output["index"])[0])))
    return np.asarray(top1)


def _no_partials(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".partial-" in p.name] if folder.exists() else True


# --- conversion -------------------------------------------------------------------------------


@pytest.mark.tf
def test_convert_all_writes_five_variant_folders_with_records(converted, tiny_run):
    model_sha = sha256_file(tiny_run / "train" / "model.keras")
    for variant in VARIANTS:
        folder = converted.out / variant
        record = read_record(folder)  # also checks each output's sha256
        assert sorted(p.name for p in folder.iterdir()) == ["labels.txt", "model.tflite", "record.json"]
        assert record["stage"] == "convert" and record["variant"] == variant
        assert record["inputs"][0]["sha256"] == model_sha
        assert [o["path"] for o in record["outputs"]] == ["model.tflite", "labels.txt"]
        assert record["preprocessing"] == {"size": SIZE, "mean": [127.5] * 3, "std": [127.5] * 3}
        assert record["labels"] == list(CLASSES)
        assert (folder / "labels.txt").read_text().split() == list(CLASSES)
    assert read_record(converted.out / "int8")["calibration"]["per_class"] == {"NORMAL": 8, "PNEUMONIA": 8}
    assert _no_partials(converted.out)


@pytest.mark.tf
def test_convert_run_threshold_recorded_and_embedded_in_every_variant(converted):
    for variant in VARIANTS:
        record = read_record(converted.out / variant)
        assert (record["threshold"], record["threshold_rule"]) == (THRESHOLD, RULE)
        embedded = read_embedded_metadata(converted.out / variant / "model.tflite")
        assert embedded["decision"] == {"threshold": THRESHOLD, "positive_index": 1, "rule": RULE}
        assert embedded["labels"] == list(CLASSES)  # the TFLITE_METADATA entry beside it still reads


@pytest.mark.tf
def test_evaluate_converted_model_decides_at_run_threshold_alone_or_in_its_folder(converted, xray_subset, tmp_path):
    model = converted.out / "int8" / "model.tflite"
    in_folder = evaluate(model, xray_subset, EvaluateConfig(n_boot=0))
    assert in_folder.metrics["threshold"] == THRESHOLD
    assert in_folder.decision.source == f"model metadata + {converted.out / 'int8' / 'record.json'}"
    alone = tmp_path / "model.tflite"  # copied to a board without its folder: the .tflite still carries it
    shutil.copy(model, alone)
    result = evaluate(alone, xray_subset, EvaluateConfig(n_boot=0))
    assert result.decision.describe() == f"threshold {THRESHOLD} (model metadata)"
    assert result.metrics["confusion_matrix"] == in_folder.metrics["confusion_matrix"]


@pytest.mark.tf
def test_load_model_info_metadata_and_record_thresholds_differ_refused(converted, tmp_path):
    folder = tmp_path / "int8"
    shutil.copytree(converted.out / "int8", folder)
    record = json.loads((folder / "record.json").read_text())
    record["threshold"] = 0.6
    (folder / "record.json").write_text(json.dumps(record))
    with pytest.raises(ModelLoadError, match=(
            rf"^thresholds differ: {folder / 'model.tflite'} \(metadata\) says 0\.4375, {folder / 'record.json'} says 0\.6; "
            r"fix the stale one \(rerun mdx convert --overwrite\), or pass --threshold explicitly$")):
        load_model_info(folder / "model.tflite")
    assert load_model_info(folder / "model.tflite", threshold=0.5).decision.source == "--threshold"


@pytest.mark.tf
def test_convert_log_line_per_variant_names_size_ratio_and_time(converted):
    assert [line.split(":")[0] for line in converted.lines] == list(VARIANTS)
    assert converted.lines[3].startswith("int8: saved model.tflite (") and "x FP32) in " in converted.lines[3]


@pytest.mark.tf
@pytest.mark.parametrize("variant", VARIANTS)
def test_convert_variant_io_matches_record_and_interpreter(converted, variant):
    record = read_record(converted.out / variant)
    interpreter = _interpreter(converted.out / variant / "model.tflite")
    for side, details in (("input", interpreter.get_input_details()), ("output", interpreter.get_output_details())):
        io = record["io"][side]
        assert io["dtype"] == IO_DTYPE[variant] == np.dtype(details[0]["dtype"]).name
        assert io["shape"] == details[0]["shape"].tolist()
        assert (io["scale"], io["zero_point"]) == pytest.approx(details[0]["quantization"])
    if variant == "int8":  # the int8 body sits between a QUANTIZE of the input and a DEQUANTIZE of the output
        assert {"QUANTIZE", "DEQUANTIZE"} <= set(read_tflite(converted.out / variant / "model.tflite").operators)


@pytest.mark.tf
def test_classifier_int8_float_io_reads_its_dequantized_softmax_as_probabilities(converted):
    # The float32 output is a dequantized int8 softmax (steps of 1/256): rows may sum to 255/256. Taken for
    # logits, a second softmax squashed them toward 0.5 and flipped decisions at the run's threshold.
    classifier = TfliteClassifier(converted.out / "int8" / "model.tflite")
    assert classifier.output_quantization == (0.0, 0) and classifier.output_step == pytest.approx(1 / 256)
    rows = np.array([[0.5, 0.49609375], [0.99609375, 0.0]], np.float32)  # as a dequantized int8 softmax writes
    np.testing.assert_array_equal(classifier.to_probabilities(rows), rows)
    assert classifier.output_kind == "probabilities"


@pytest.mark.tf
def test_convert_int8_on_xray_subset_agrees_with_fp32(converted, xray_subset):
    inputs = PRE.normalize(load_folder(xray_subset, SIZE, CLASSES).images)
    reference = _predict(converted.out / "fp32" / "model.tflite", inputs)
    assert set(reference) == {0, 1}, "the tiny model must predict both classes for agreement to mean anything"
    agreement = float(np.mean(_predict(converted.out / "int8" / "model.tflite", inputs) == reference))
    assert agreement >= 0.9


@pytest.mark.tf
@pytest.mark.parametrize("variant", VARIANTS)
def test_ops_table_from_flatbuffer_matches_interpreter_ops(converted, variant):
    path = converted.out / variant / "model.tflite"
    facts = read_tflite(path)
    interpreter = _interpreter(path)  # before allocate_tensors: no delegate has replaced nodes yet
    assert Counter(facts.operators) == Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert read_record(converted.out / variant)["ops"] == facts.ops_table()


# --- compatibility ----------------------------------------------------------------------------


@pytest.mark.tf
def test_check_compatibility_dynamic_on_tflite_runtime_2_14_refuses_fully_connected_v12(converted):
    problems = check_compatibility(converted.out / "dynamic" / "model.tflite", "tflite-runtime-2.14")
    assert [(p.op, p.version, p.max_supported) for p in problems] == [("FULLY_CONNECTED", 12, 10)]
    record = read_record(converted.out / "dynamic")
    assert record["compatibility"]["runtimes"]["tflite-runtime-2.14"]["loads"] is False
    assert record["compatibility"]["runtimes"]["ai-edge-litert"]["loads"] is True


@pytest.mark.tf
@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8", "int8-fallback"])
def test_check_compatibility_other_variants_load_on_every_runtime(converted, variant):
    for runtime in ("ai-edge-litert", "tflite-runtime-2.14", "tf.lite"):
        assert check_compatibility(converted.out / variant / "model.tflite", runtime) == []


# The copied harness (runtime/ alone) loads each model in the tflite-runtime 2.14 venv.
LOAD_IN_EACH = """
import json, sys
sys.path.insert(0, sys.argv[1])
from runtime.errors import ModelLoadError
from runtime.interpreter import load_interpreter
from pathlib import Path
loads = {}
for model in sys.argv[3:]:
    try:
        load_interpreter(Path(model), sys.argv[2])[0].invoke()
        loads[model] = None
    except ModelLoadError as exc:
        loads[model] = str(exc)
print(json.dumps(loads))
"""


@pytest.mark.tf
def test_compatibility_record_agrees_with_real_loading_in_every_runtime(converted, side_python):
    """The op-version table predicts loading; here every variant is really loaded, so the table cannot drift."""
    python = side_python("MDX_TFLITE_RUNTIME_PYTHON", REPO / ".venv-tflite" / "bin" / "python",
                         "run .ci/install-side-runtimes.sh (builds .venv-tflite)")
    models = [str(converted.out / variant / "model.tflite") for variant in VARIANTS]
    observed: dict[str, dict[str, str | None]] = {}
    for table_name, runtime, interpreter in (("ai-edge-litert", "litert", sys.executable), ("tf.lite", "tf", sys.executable),
                                             ("tflite-runtime-2.14", "tflite-runtime", str(python))):
        done = subprocess.run([interpreter, "-c", LOAD_IN_EACH, str(REPO), runtime, *models], cwd=converted.out,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-1500:]
        observed[table_name] = json.loads(done.stdout.strip().splitlines()[-1])
    for variant, model in zip(VARIANTS, models):
        table = read_record(converted.out / variant)["compatibility"]["runtimes"]
        for runtime, loads in observed.items():
            assert table[runtime]["loads"] == (loads[model] is None), (variant, runtime, loads[model])
    assert "FULLY_CONNECTED" in observed["tflite-runtime-2.14"][models[VARIANTS.index("dynamic")]]


@pytest.mark.tf
def test_convert_target_tflite_runtime_2_14_refuses_dynamic_before_writing_anything(tiny_run, tmp_path):
    config = ConvertConfig(variants=("dynamic",), target="tflite-runtime-2.14", out=tmp_path / "out")
    with pytest.raises(
        CompatibilityError, match=r"^dynamic would not load on tflite-runtime-2.14: FULLY_CONNECTED v12 .*up to v10\)"
    ):
        convert(tiny_run, config)
    assert not (tmp_path / "out").exists()  # not even fp32: a rerun without --dynamic needs no --overwrite


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing", r"calibration folder .*missing not found .*--calibration-dir"),
        (lambda d: (d / "empty").mkdir() or d / "empty", r"calibration folder .*empty holds no images"),
    ],
)
def test_convert_int8_without_representative_data_raises_data_error(tiny_model, tmp_path, make, message):
    run = _make_run(tmp_path / "run", tiny_model, make(tmp_path))
    with pytest.raises(DataError, match=message):
        convert(run, ConvertConfig(variants=("int8",)))
    assert not (run / "convert").exists()


def _linear_head(keras):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(len(CLASSES))(x))


def _feature_map(keras):
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, keras.layers.Conv2D(len(CLASSES), 3, activation="softmax")(inputs))


@pytest.mark.tf
@pytest.mark.parametrize(
    "build, message",
    [
        (_linear_head, r"is not a classifier: its outputs are not softmax probabilities"),
        (_feature_map, r"is not a classifier: its output shape \(None, 30, 30, 2\) is not \(batch, 2\)"),
    ],
)
def test_convert_non_classifier_raises_artifact_error(xray_subset, tmp_path, build, message):
    model_file = tmp_path / "other.keras"
    build(_keras()).save(model_file)
    run = _make_run(tmp_path / "run", model_file, xray_subset)
    with pytest.raises(ArtifactError, match=message):
        convert(run, ConvertConfig())
    assert not (run / "convert").exists()


@pytest.mark.tf
def test_convert_existing_output_without_overwrite_raises_and_keeps_it(converted, tiny_run):
    before = sha256_file(converted.out / "fp32" / "model.tflite")
    with pytest.raises(ArtifactError, match=r"convert/fp32 already exists; pass --overwrite"):
        convert(tiny_run, ConvertConfig())
    assert sha256_file(converted.out / "fp32" / "model.tflite") == before
    assert _no_partials(converted.out)


@pytest.mark.tf
def test_convert_failure_while_writing_leaves_no_folder_and_no_partial(tiny_run, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mdx.convert.convert.write_record", disk_full)
    # a full disk is the user's to fix: an ArtifactError naming the folder, not a bare OSError (issue 9)
    with pytest.raises(ArtifactError, match=r"out/fp32: cannot write \(No space left on device\); free space"):
        convert(tiny_run, ConvertConfig(out=tmp_path / "out"))
    assert not (tmp_path / "out" / "fp32").exists()
    assert _no_partials(tmp_path / "out")


@pytest.mark.tf
def test_convert_tensorflow_failure_raises_conversion_error_with_first_line(tiny_run, tmp_path, monkeypatch):
    from mdx.convert import keras_converter

    def failing(model):
        def fail():
            raise RuntimeError("'tf.Foo' op is neither a custom op nor a flex op\n<300 lines of MLIR>")

        return SimpleNamespace(convert=fail)

    monkeypatch.setattr(keras_converter, "keras_converter", failing)
    with pytest.raises(
        ConversionError,
        match=r"^fp32: TensorFlow could not convert the model: 'tf.Foo' op is neither a custom op nor a flex op$",
    ):
        convert(tiny_run, ConvertConfig(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.tf
def test_convert_model_file_without_preprocessing_raises_config_error(tiny_model, tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"is a model file, not a run folder.*missing --size, --mean, --std, --labels, --calibration-dir",
    ):
        convert(tiny_model, ConvertConfig(variants=("int8",), out=tmp_path / "out"))


@pytest.mark.tf
def test_convert_model_file_with_preprocessing_and_labels_writes_fp32(tiny_model, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("NORMAL\nPNEUMONIA\n")
    config = ConvertConfig(size=SIZE, mean=(127.5,), std=(127.5,), labels_file=labels, out=tmp_path / "out")
    result = convert(tiny_model, config)
    record = read_record(result.out / "fp32")
    assert record["source"]["kind"] == "model" and record["preprocessing"]["mean"] == [127.5] * 3
    # a bare model has no validation split, so no threshold: the runtime then decides at 0.5
    assert record["threshold"] is None and "decision" not in read_embedded_metadata(result.out / "fp32" / "model.tflite")


@pytest.mark.parametrize("threshold, labels", [(1.5, CLASSES), ("0.4", CLASSES), (0.4, ("A", "B", "C"))])
def test_resolve_source_run_threshold_invalid_or_multiclass_raises_artifact_error(tmp_path, threshold, labels):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not loaded: the record is checked first")
    run = _make_run(tmp_path / "run", model, tmp_path, threshold=threshold, labels=list(labels))
    with pytest.raises(ArtifactError, match=rf"train/record\.json: threshold {threshold!r} is invalid for the "
                                            rf"{len(labels)} classes .*expected a probability in \[0, 1\] and 2 classes: rerun mdx train"):
        resolve_source(run, preprocessing=None, labels_file=None, calibration_dir=None, needs_calibration=False, given={})


def test_convert_run_with_model_file_options_raises_config_error(tmp_path):
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "record.json").write_text(json.dumps({"stage": "train"}))
    with pytest.raises(ConfigError, match=r"--size, --labels conflict with the preprocessing and labels recorded in"):
        convert(run, ConvertConfig(size=SIZE, labels_file=tmp_path / "labels.txt"))


# --- config and calibration (no TensorFlow) ---------------------------------------------------


def test_convert_config_round_trips_through_json():
    config = ConvertConfig(variants=("int8", "fp16"), io="uint8", calibration_count=50, target="tflite-runtime-2.14")
    again = ConvertConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    assert [v.value for v in again.planned] == ["fp32", "fp16", "int8"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"io": "uint8"}, r"--io sets the int8 variant's input/output type; add --int8"),
        ({"variants": ("int8",), "io": "int4"}, r"--io 'int4' is invalid; expected one of int8, uint8, float32"),
        ({"calibration_count": 10}, r"--calibration-count/--calibration-dir are used only by --int8"),
        ({"variants": ("int8",), "calibration_count": 0}, r"calibration count 0 is invalid"),
        ({"variants": ("int16",)}, r"unknown variant in \['int16'\]; expected some of fp32, fp16"),
        ({"target": "tflite-runtime-2.99"}, r"unknown target runtime 'tflite-runtime-2.99'; expected one of"),
        ({"mean": (1.0, 2.0)}, r"--mean \[1.0, 2.0\] must have 1 value or 3"),
    ],
)
def test_convert_config_conflicting_or_invalid_options_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(**kwargs)


def test_stratified_quota_proportional_with_one_per_class_minimum():
    assert stratified_quota([1341, 3875], 200) == [51, 149]  # 51.4 and 148.6, rounded by largest remainder
    assert stratified_quota([1, 99], 10) == [1, 9]
    assert stratified_quota([3, 4], 200) == [3, 4]


def test_sample_calibration_same_seed_same_images_other_seed_differs(xray_subset):
    first = sample_calibration(xray_subset, PRE, CLASSES, CalibrationConfig(count=6, seed=1))
    assert first.paths == sample_calibration(xray_subset, PRE, CLASSES, CalibrationConfig(count=6, seed=1)).paths
    assert first.paths != sample_calibration(xray_subset, PRE, CLASSES, CalibrationConfig(count=6, seed=2)).paths
    assert np.bincount(first.labels).tolist() == [3, 3]
    assert first.inputs.dtype == np.float32 and first.inputs.shape == (6, SIZE, SIZE, 3)
    assert first.inputs.min() >= -1.0 and first.inputs.max() <= 1.0


def _flat_site_folder(xray_subset: Path, target: Path) -> Path:
    """The subset's images in one folder without class sub-folders, as a deployment site has them."""
    target.mkdir()
    for index, image in enumerate(sorted(xray_subset.rglob("*.jpeg"))):
        shutil.copy(image, target / f"{index:03d}.jpeg")
    (target / "notes.txt").write_text("not an image")
    return target


def test_sample_calibration_flat_folder_draws_unlabelled_images_uniformly(xray_subset, tmp_path):
    site = _flat_site_folder(xray_subset, tmp_path / "site")
    drawn = sample_calibration(site, PRE, CLASSES, CalibrationConfig(count=10, seed=3))
    assert len(drawn) == 10 and len(set(drawn.paths)) == 10
    assert all(Path(path).parent == site for path in drawn.paths)
    assert drawn.paths == sample_calibration(site, PRE, CLASSES, CalibrationConfig(count=10, seed=3)).paths
    record = drawn.to_dict()
    assert record["labelled"] is False and record["per_class"] is None and record["used"] == 10
    assert any("notes.txt" in reason for reason in record["skipped"])
    every = sample_calibration(site, PRE, CLASSES, CalibrationConfig(count=1000))
    assert len(every) == 2 * PER_CLASS  # asking for more than there are takes them all, once each


def test_sample_calibration_folder_with_images_and_sub_folders_raises_data_error(xray_subset, tmp_path):
    mixed = _flat_site_folder(xray_subset, tmp_path / "mixed")
    (mixed / "NORMAL").mkdir()
    with pytest.raises(DataError, match=r"mixed holds both images and sub-folders \(NORMAL/\); use one flat folder"):
        sample_calibration(mixed, PRE, CLASSES)


@pytest.mark.tf
def test_convert_int8_calibrated_on_flat_site_folder_records_unlabelled_calibration(tiny_run, xray_subset, tmp_path):
    site = _flat_site_folder(xray_subset, tmp_path / "site")
    result = convert(tiny_run, ConvertConfig(variants=("int8",), calibration_count=8, calibration_dir=site,
                                             out=tmp_path / "out"))
    calibration = read_record(tmp_path / "out" / "int8")["calibration"]
    assert calibration["folder"] == str(site) and calibration["labelled"] is False and calibration["used"] == 8
    assert result["int8"].model_path.is_file()


def test_sample_calibration_classes_differ_from_labels_raises_data_error(xray_subset):
    with pytest.raises(DataError, match=r"calibration folder: .*differ from the model's classes \['CAT', 'DOG'\]"):
        sample_calibration(xray_subset, PRE, ("CAT", "DOG"))


# --- CLI --------------------------------------------------------------------------------------


def _cli(*args: str):
    from typer.testing import CliRunner

    from mdx.cli import app

    return CliRunner().invoke(app, ["convert", *map(str, args)])


@pytest.mark.tf
def test_cli_convert_int8_uint8_io_exits_0_and_records_uint8(tiny_run, tmp_path):
    result = _cli(tiny_run, "--int8", "--io", "uint8", "--calibration-count", "8", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "int8: saved model.tflite (" in result.output
    io = read_record(tmp_path / "out" / "int8")["io"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "uint8"


@pytest.mark.tf
def test_cli_convert_dynamic_for_tflite_runtime_2_14_exits_1_naming_the_op(tiny_run, tmp_path):
    result = _cli(tiny_run, "--dynamic", "--target", "tflite-runtime-2.14", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "error:" in result.output and "FULLY_CONNECTED v12" in result.output
    assert not (tmp_path / "out" / "dynamic").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--io", "uint8"), "add --int8 or drop --io"),
        (("--all", "--int8"), "--all already includes --int8"),
        (("--target", "coral"), "unknown target runtime 'coral'"),
    ],
)
def test_cli_convert_conflicting_options_exit_2(tmp_path, args, message):
    result = _cli(tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output
