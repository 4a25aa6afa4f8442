"""`mdx prune`: flatten, tfmot pruning, and zeros counted in Keras, fp32, int8 and sparse-float .tflite.

Fake parent runs are made here in the train stage's layout (model.keras, labels.txt, record.json
written with `write_record`) on 12 real chest X-rays per class and split, at 32 px: a MobileNetV2
alpha 0.35 for the CLI run, and a three-kernel MobileNetV2-like backbone where only the behaviour
matters (fit time grows with the number of layers, not their size).
"""

from __future__ import annotations

import json
import re
import shutil
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from mdx.errors import ArtifactError, ConfigError, InputDataError
from mdx.train.config import TrainConfig  # no TensorFlow: importable without the [train] extra

pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(find_spec("tensorflow_model_optimization") is None, reason="needs the [train] extra"),
]

SIZE = 32
TOLERANCE = 0.01
TRAIN_CONFIG = TrainConfig(input_size=SIZE, alpha=0.35, weights="none", dense_units=16, batch_size=8,
                           val_fraction=0.25, epochs_frozen=1, epochs_finetune=0, bootstrap=0)


# ---- fixtures: a small real data set and fake parent runs --------------------------------------

@pytest.fixture(scope="module")
def data_dir(xray_subset) -> Path:
    """12 NORMAL + 12 PNEUMONIA X-rays in train/ and in test/ (tests/conftest.py)."""
    return xray_subset(12)


def tiny_backbone():
    """Conv1 3x3/2 -> depthwise -> 1x1 project (+ residual) -> 1x1 Conv_1: three Conv2D, one depthwise."""
    from mdx.train.keras_shim import keras

    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.ReLU(6.0, name="Conv1_relu")(layers.BatchNormalization(name="bn_Conv1")(
        layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="Conv1")(inputs)))
    y = layers.ReLU(6.0, name="block_1_relu")(layers.BatchNormalization(name="block_1_depthwise_BN")(
        layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="block_1_depthwise")(x)))
    y = layers.Conv2D(16, 1, use_bias=False, name="block_1_project")(y)
    y = layers.BatchNormalization(name="block_1_project_BN")(y)
    x = layers.Add(name="block_1_add")([x, y])
    x = layers.ReLU(6.0, name="out_relu")(layers.BatchNormalization(name="Conv_1_bn")(
        layers.Conv2D(32, 1, use_bias=False, name="Conv_1")(x)))
    return keras.Model(inputs, x, name="tiny_backbone")


def mobilenet_backbone():
    from mdx.train.keras_shim import keras

    return keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, include_top=False)


def classifier(backbone):
    """build_classifier's model around `backbone`, with random BatchNorm statistics so that outputs
    differ between inputs (a flattening bug must show)."""
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_classifier

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return build_classifier(TRAIN_CONFIG, 2, backbone)


def make_parent_run(run: Path, data_dir: Path, backbone) -> Path:
    """RUN/train/ as `mdx train` writes it (split manifest included), around an untrained `backbone`."""
    from mdx.records import write_record
    from mdx.runtime.manifest import MANIFEST_NAME, write_manifest
    from mdx.runtime.metrics import classification_metrics
    from mdx.train.data import load_splits, manifest_rows
    from mdx.train.model import preprocessing_for

    model = classifier(backbone)
    splits = load_splits(data_dir, size=SIZE, val_fraction=TRAIN_CONFIG.val_fraction, seed=TRAIN_CONFIG.seed,
                         duplicate_distance=TRAIN_CONFIG.duplicate_distance, group_pattern=TRAIN_CONFIG.val_group_pattern)
    preprocessing = preprocessing_for(TRAIN_CONFIG)
    folder = run / "train"
    folder.mkdir(parents=True)
    write_manifest(manifest_rows(splits, TRAIN_CONFIG.val_group_pattern, data_dir), folder / MANIFEST_NAME)
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(splits.class_names) + "\n")
    metrics = {}
    for split, part in (("validation", splits.val), ("test", splits.test)):
        probs = model.predict(preprocessing.normalize(part.images), verbose=0)
        metrics[split] = classification_metrics(part.labels, probs, splits.class_names, threshold=0.5, n_boot=0)
    data = {"root": str(data_dir.resolve()), "train_dir": str(splits.train_dir.resolve()), "val_dir": None,
            "test_dir": str(splits.test_dir.resolve()),
            "counts": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}}
    write_record(folder, stage="train", config={**TRAIN_CONFIG.to_dict(), "data_dir": str(data_dir)}, inputs=[],
                 outputs=[folder / "model.keras", folder / "labels.txt"], metrics=metrics,
                 extra={"preprocessing": preprocessing.to_dict(), "labels": list(splits.class_names), "threshold": 0.5,
                        "threshold_rule": "Youden's J on validation", "data": data})
    return run


def _prune(*args, **kwargs):
    """`mdx.train.prune.prune` with the convert stage's fp32 conversion, as `mdx prune` calls it."""
    import mdx.train.prune as stage  # looked up at call time: tests monkeypatch it
    from mdx.convert.sparse import tflite_bytes

    return stage.prune(*args, fp32_tflite=tflite_bytes, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    return make_parent_run(tmp_path_factory.mktemp("tiny") / "run", data_dir, tiny_backbone())


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir):
    """`mdx prune RUN --sparsity 0.5` on the MobileNetV2 run, once for several tests."""
    from typer.testing import CliRunner

    from mdx.cli import app

    run = make_parent_run(tmp_path_factory.mktemp("mnv2") / "run", data_dir, mobilenet_backbone())
    result = CliRunner().invoke(app, ["prune", str(run), "--sparsity", "0.5"])
    return run, result


@pytest.fixture(scope="module")
def pruned(cli_run):
    """(prune folder, its record, the stripped model)."""
    from mdx.train.keras_shim import keras

    run, result = cli_run
    assert result.exit_code == 0, result.output
    folder = run / "prune-0.5"
    return folder, json.loads((folder / "record.json").read_text()), keras.models.load_model(folder / "model.keras")


@pytest.fixture(scope="module")
def tflites(pruned, data_dir, tmp_path_factory) -> dict[str, Path]:
    """The pruned model as fp32, int8 (calibrated on the training X-rays) and sparse-float .tflite."""
    from mdx.convert.sparse import sparse_float_tflite, tflite_bytes
    from mdx.quantize import recipes
    from mdx.quantize.calibration import CalibrationConfig, sample_calibration
    from mdx.runtime.preprocess import Preprocessing

    _, record, model = pruned
    calibration = sample_calibration(data_dir / "train", Preprocessing.from_dict(record["preprocessing"]),
                                     tuple(record["labels"]), CalibrationConfig(count=16))
    out = tmp_path_factory.mktemp("tflite")
    files = {"fp32": tflite_bytes(model),
             "int8": tflite_bytes(model, recipes.int8, calibration.representative_dataset()),
             "sparse-float": sparse_float_tflite(model)}
    for name, data in files.items():
        (out / f"{name}.tflite").write_bytes(data)
    return {name: out / f"{name}.tflite" for name in files}


# ---- flattening ------------------------------------------------------------------------------

def test_flatten_nested_backbone_outputs_unchanged():
    from mdx.train.flatten import FLATTEN_TOLERANCE, flatten_model, max_output_difference
    from mdx.train.keras_shim import keras

    model = classifier(tiny_backbone())
    flat = flatten_model(model)
    probe = np.random.default_rng(1).uniform(-1, 1, (8, SIZE, SIZE, 3)).astype(np.float32)
    outputs = flat(probe, training=False).numpy()
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert outputs[:, 1].std() > 1e-3  # outputs vary, so equality below means something
    assert max_output_difference(model, flat) <= FLATTEN_TOLERANCE
    np.testing.assert_allclose(outputs, model(probe, training=False).numpy(), atol=1e-6)
    assert all(not layer.trainable for layer in flat.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_flatten_changed_copy_detected_by_output_check():
    from mdx.train.flatten import FLATTEN_TOLERANCE, flatten_model, max_output_difference

    model = classifier(tiny_backbone())
    flat = flatten_model(model)
    kernel = flat.get_layer("Conv_1").kernel
    kernel.assign(kernel.numpy() * 1.5)  # the copy owns its weights: the original is untouched
    assert max_output_difference(model, flat) > FLATTEN_TOLERANCE


# ---- the CLI run: sparsity in Keras and in every .tflite ------------------------------------

def test_prune_cli_mobilenet_logs_target_and_achieved(cli_run):
    _, result = cli_run
    assert result.exit_code == 0, result.output
    assert re.search(r"prune: 0\.50 target, 0\.5\d\d achieved \(min 0\.(4\d\d|5\d\d) over 35 kernels\), saved .*"
                     r"model\.keras in \d+ s", result.output), result.output


def test_prune_record_has_train_keys_copied_from_parent(pruned):
    from mdx.records import read_record

    folder, record, _ = pruned
    parent = read_record(folder.parent / "train")
    assert read_record(folder)["stage"] == "prune"  # outputs hash-check
    for key in ("preprocessing", "labels", "data"):
        assert record[key] == parent[key]
    assert set(record["data"]) >= {"train_dir", "val_dir", "test_dir"}
    assert 0.0 <= record["threshold"] <= 1.0
    assert (folder / "labels.txt").read_text().split() == parent["labels"]
    assert record["config"]["sparsity"] == 0.5 and record["train_config"] == parent["config"]


def test_prune_mobilenet_every_pruned_kernel_within_1pt_after_strip(pruned):
    from mdx.train.sparsity import measure_keras_sparsity

    _, record, model = pruned
    report = measure_keras_sparsity(model)
    layers = record["pruning"]["layers"]
    assert len(layers) == 35 and record["pruning"]["left_dense"] == ["Conv1", "probabilities"]
    by_layer = {k.layer: k for k in report.kernels}
    assert all(abs(by_layer[name].sparsity - 0.5) <= TOLERANCE for name in layers)
    # Not pruned, by design: first conv, classifier, and every depthwise kernel stay dense.
    assert by_layer["Conv1"].sparsity < 0.05 and by_layer["probabilities"].sparsity < 0.05
    assert all(k.sparsity < 0.05 for k in report.kernels if k.kind == "depthwise")


@pytest.mark.parametrize("variant", ["fp32", "int8", "sparse-float"])
def test_prune_tflite_variant_every_pruned_kernel_within_1pt(pruned, tflites, variant):
    from mdx.train.sparsity import check_sparsity, measure_tflite_sparsity

    _, record, _ = pruned
    report = measure_tflite_sparsity(tflites[variant]).select(record["pruning"]["layers"])
    assert len(report.kernels) == 35
    # BatchNorm folding must keep zeros zero; int8 rounding may only add zeros.
    check_sparsity(report, 0.5, tolerance=TOLERANCE, allow_above=variant == "int8", where=variant)


def test_prune_fp32_tflite_matches_pruned_keras(pruned, tflites):
    from ai_edge_litert.interpreter import Interpreter

    _, _, model = pruned
    probe = np.random.default_rng(2).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    for variant in ("fp32", "sparse-float"):
        interpreter = Interpreter(model_path=str(tflites[variant]))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], probe)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(output, model(probe, training=False).numpy(), atol=1e-5)


def test_prune_gzip_smaller_than_dense_raw_unchanged(pruned, tflites):
    _, record, _ = pruned
    fp32 = record["size"]["tflite_fp32"]
    assert fp32["pruned"]["gzip_bytes"] < 0.8 * fp32["parent"]["gzip_bytes"]
    assert abs(fp32["pruned"]["bytes"] - fp32["parent"]["bytes"]) < 0.01 * fp32["parent"]["bytes"]
    assert record["size"]["keras"]["pruned"]["gzip_bytes"] < 0.8 * record["size"]["keras"]["parent"]["gzip_bytes"]
    # the sparse encoding shrinks the file itself
    assert tflites["sparse-float"].stat().st_size < 0.85 * tflites["fp32"].stat().st_size


# ---- structured 2:4, polynomial, and a run whose masks never update --------------------------

def test_prune_structured_2of4_every_group_holds_two_zeros(tiny_run, tmp_path):
    from mdx.convert.sparse import tflite_bytes
    from mdx.train.keras_shim import keras
    from mdx.train.prune_setup import PruneConfig
    from mdx.train.sparsity import keras_kernels, m_by_n_violations, tflite_kernels

    result = _prune(tiny_run, PruneConfig(structured="2:4", epochs=1), tmp_path / "p24")
    assert result.folder.name == "p24" and len(result.keras_sparsity.kernels) == 3
    names = {k.layer for k in result.keras_sparsity.kernels}
    model = keras.models.load_model(result.model_path)
    kernels = [k for k in keras_kernels(model) if k.layer in names]
    assert len(kernels) == 3 and all(m_by_n_violations(k, 2, 4) == 0 for k in kernels)
    assert all(abs(k.measure().sparsity - 0.5) < 1e-9 for k in kernels)
    tflite = tmp_path / "fp32.tflite"
    tflite.write_bytes(tflite_bytes(model))
    converted = [k for k in tflite_kernels(tflite) if k.layer in names]
    assert len(converted) == 3 and all(m_by_n_violations(k, 2, 4) == 0 for k in converted)


def test_prune_polynomial_reaches_target_in_tflite(tiny_run, tmp_path):
    from mdx.train.prune_setup import PruneConfig

    result = _prune(tiny_run, PruneConfig(sparsity=0.75, schedule="polynomial", epochs=2), tmp_path / "poly")
    assert abs(result.tflite_sparsity.minimum - 0.75) <= TOLERANCE
    record = json.loads((result.folder / "record.json").read_text())
    schedule = record["pruning"]["schedule"]
    assert schedule["kind"] == "polynomial" and 0 < schedule["end_step"] <= schedule["total_steps"]
    assert schedule["end_step"] % schedule["frequency"] == 0


def test_prune_masks_never_update_refused_with_sparsity_error(tiny_run, tmp_path, monkeypatch):
    """tfmot only prunes at steps it reaches: a schedule that begins after the last step leaves the
    model dense and would pass silently without the zero count."""
    import mdx.train.prune as stage
    from mdx.train.prune_setup import PruneConfig, pruning_schedule
    from mdx.train.sparsity import SparsityError

    def never(config, steps_per_epoch):
        schedule = pruning_schedule(config, steps_per_epoch)
        return type(schedule)(**{**schedule.to_dict(), "begin_step": 10 * schedule.total_steps})

    monkeypatch.setattr(stage, "pruning_schedule", never)
    with pytest.raises(SparsityError, match=r"model\.keras after strip_pruning: layer block_1_project is 0\.000 "
                                            r"sparse, target 0\.500 \+/- 0\.010 .*masks never updated"):
        _prune(tiny_run, PruneConfig(epochs=1), tmp_path / "never")
    assert not (tmp_path / "never").exists()


# ---- sparsity-preserving clustering (--clusters) ---------------------------------------------

def test_prune_clusters_8_every_channel_at_most_8_values_in_keras_fp32_and_int8_zeros_kept(tiny_run, data_dir, tmp_path):
    from mdx.convert.sparse import tflite_bytes
    from mdx.quantize import recipes
    from mdx.quantize.calibration import CalibrationConfig, sample_calibration
    from mdx.runtime.preprocess import Preprocessing
    from mdx.train.cluster import count_clusters
    from mdx.train.keras_shim import keras
    from mdx.train.prune_setup import PruneConfig
    from mdx.train.sparsity import tflite_kernels

    result = _prune(tiny_run, PruneConfig(epochs=1, clusters=8), tmp_path / "c8")
    names = {k.layer for k in result.keras_sparsity.kernels}
    assert len(result.clusters) == 3 and {c.layer for c in result.clusters} == names
    assert all(2 <= c.max_per_channel <= 8 for c in result.clusters)  # 2: clustered, not collapsed to zero
    assert abs(result.tflite_sparsity.minimum - 0.5) <= TOLERANCE  # clustering kept the zeros
    record = json.loads((result.folder / "record.json").read_text())
    assert record["clustering"]["clusters"] == 8 and record["clustering"]["preserve_sparsity"] is True
    assert record["metrics"]["clusters"]["max_per_channel"] <= 8
    # per-channel int8 only rescales each channel: the clusters survive quantization
    pre = Preprocessing.from_dict(record["preprocessing"])
    calibration = sample_calibration(data_dir / "train", pre, tuple(record["labels"]), CalibrationConfig(count=8))
    int8 = tmp_path / "int8.tflite"
    int8.write_bytes(tflite_bytes(keras.models.load_model(result.model_path), recipes.int8,
                                  calibration.representative_dataset()))
    counts = [count_clusters(k) for k in tflite_kernels(int8) if k.layer in names]
    assert len(counts) == 3 and all(c.max_per_channel <= 8 for c in counts)


def test_prune_clusters_that_never_apply_refused_with_sparsity_error(tiny_run, tmp_path, monkeypatch):
    """A clustering step that leaves the kernels as they were (wrappers never applied) must not pass."""
    import mdx.train.prune as stage
    from mdx.train.prune_setup import PruneConfig
    from mdx.train.sparsity import SparsityError

    monkeypatch.setattr(stage, "fine_tune_clustered", lambda flat, *args, **kwargs: (flat, 1))
    with pytest.raises(SparsityError, match=r"model\.keras after strip_clustering: layer \w+ holds \d+ distinct "
                                            r"values in one output channel, more than --clusters 4"):
        _prune(tiny_run, PruneConfig(epochs=1, clusters=4), tmp_path / "unclustered")
    assert not (tmp_path / "unclustered").exists()


def test_pruning_schedule_small_epochs_prunes_within_first_epoch():
    from mdx.train.prune_setup import PruneConfig, pruning_schedule

    constant = pruning_schedule(PruneConfig(), steps_per_epoch=3)
    assert constant.frequency == 1 and constant.end_step == -1  # the default frequency (100) would never fire
    poly = pruning_schedule(PruneConfig(schedule="polynomial", epochs=3), steps_per_epoch=163)
    assert poly.frequency == 40 and poly.end_step == 320 and poly.end_step % poly.frequency == 0


# ---- bad input: one-line errors --------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sparsity": 1.5}, r"--sparsity 1\.5 is invalid; expected a fraction of weights to zero, greater than 0"),
    ({"sparsity": 0.0}, r"--sparsity 0\.0 is invalid"),
    ({"schedule": "cubic"}, r"--schedule 'cubic' is unknown; expected one of constant, polynomial"),
    ({"epochs": 0}, r"--epochs 0 is invalid; expected 1 to 1000"),
    ({"structured": "2-4"}, r"--structured '2-4' is invalid; expected M:N such as 2:4"),
    ({"structured": "4:2"}, r"--structured '4:2' is invalid; expected M:N with 0 < M < N"),
    ({"structured": "2:4", "sparsity": 0.75}, r"--structured 2:4 zeros 0\.5 of the weights but --sparsity is 0\.75"),
    ({"structured": "2:4", "schedule": "polynomial"}, r"--schedule polynomial has no effect with --structured 2:4"),
    ({"clusters": 2}, r"--clusters 2 is invalid; expected 3 to 256 values per kernel"),
    ({"clusters": True}, r"--clusters True is invalid"),
    ({"clusters": 16, "cluster_epochs": 0}, r"--cluster-epochs 0 is invalid; expected 1 to 1000"),
])
def test_prune_config_bad_value_raises_config_error(kwargs, message):
    from mdx.train.prune_setup import PruneConfig

    with pytest.raises(ConfigError, match=message):
        PruneConfig(**kwargs)


def test_prune_missing_run_raises_artifact_error(tmp_path):
    from mdx.train.prune_setup import PruneConfig

    with pytest.raises(ArtifactError, match=r"nope not found; pass a run folder \(RUN/train/record\.json\)"):
        _prune(tmp_path / "nope", PruneConfig())


def test_prune_reads_the_parents_split_manifest_and_refuses_a_changed_image(tiny_run, data_dir, tmp_path):
    """Prune fine-tunes on the parent's own split, read from its manifest: an image changed since then stops it."""
    from mdx.runtime.manifest import MANIFEST_NAME, read_manifest
    from mdx.train.prune_setup import PruneConfig

    data = shutil.copytree(data_dir, tmp_path / "data")
    copy = shutil.copytree(tiny_run, tmp_path / "run")
    record_path = copy / "train" / "record.json"
    record = json.loads(record_path.read_text())
    record["config"]["data_dir"] = str(data)
    record["data"]["root"] = str(data.resolve())
    record_path.write_text(json.dumps(record))
    first = read_manifest(copy / "train" / MANIFEST_NAME, data)[0]
    with open(data / first.path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputDataError, match=rf"{first.path} has changed \(sha256"):
        _prune(copy, PruneConfig())


def test_prune_changed_parent_model_raises_artifact_error(tiny_run, tmp_path):
    from mdx.train.prune_setup import PruneConfig

    copy = shutil.copytree(tiny_run, tmp_path / "run")
    with open(copy / "train" / "model.keras", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match=r"model\.keras changed since .*record\.json was written"):
        _prune(copy, PruneConfig())


def test_prune_2of4_on_first_conv_raises_config_error(tiny_run, tmp_path):
    from mdx.train.prune_setup import PruneConfig

    with pytest.raises(ConfigError, match=r"layer Conv1 has 3 input channels, not a multiple of 4: 2:4 pruning cannot "
                                          r"reach 0\.5 there; keep --skip-first-last"):
        _prune(tiny_run, PruneConfig(structured="2:4", skip_first_last=False), tmp_path / "p")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("args", "code", "message"), [
    (["MISSING"], 1, "error: MISSING not found; pass a run folder"),
    (["RUN", "--sparsity", "1.5"], 2, "error: --sparsity 1.5 is invalid"),
    (["RUN", "--schedule", "cubic"], 2, "error: --schedule 'cubic' is unknown"),
    (["RUN", "--clusters", "1"], 2, "error: --clusters 1 is invalid; expected 3 to 256 values per kernel"),
])
def test_prune_cli_bad_input_one_line_error(tiny_run, tmp_path, args, code, message):
    from typer.testing import CliRunner

    from mdx.cli import app

    args = [str(tiny_run) if a == "RUN" else str(tmp_path / a) if a == "MISSING" else a for a in args]
    message = message.replace("MISSING", str(tmp_path / "MISSING"))
    result = CliRunner().invoke(app, ["prune", *args])
    assert result.exit_code == code, result.output
    assert message in result.output and result.output.count("error:") == 1


def test_parent_recorded_before_stretch_existed_replays_without_stretch(tiny_run, tmp_path):
    from mdx.train.prune_setup import resolve_parent

    assert resolve_parent(tiny_run).train_config.augmentation.stretch == TRAIN_CONFIG.augmentation.stretch
    copy = shutil.copytree(tiny_run, tmp_path / "run")
    record_path = copy / "train" / "record.json"
    record = json.loads(record_path.read_text())
    del record["config"]["augmentation"]["stretch"]
    record_path.write_text(json.dumps(record))
    assert resolve_parent(copy).train_config.augmentation.stretch == 0.0
