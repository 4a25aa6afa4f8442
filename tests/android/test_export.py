"""`mdx export android`: what it writes into the app, and what it refuses (no JVM, no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdx.cli import app as cli
from mdx.errors import ArtifactError, ConfigError, DataError
from mdx.export_android import ASSETS, GOLDEN, ExportConfig, export_android
from mdx.records import read_record
from mdx.runtime.classifier import TfliteClassifier
from mdx.runtime.files import sha256_file
from mdx.runtime.images import load_image
from mdx.runtime.preprocess import Preprocessing

runner = CliRunner()


def _config(app: Path) -> dict:
    return json.loads((app / ASSETS / "model_config.json").read_text(encoding="utf-8"))


def _golden(app: Path) -> dict:
    return json.loads((app / GOLDEN / "golden.json").read_text(encoding="utf-8"))


def test_export_int8Run_writesModelConfigSampleAndGolden(exported_apps, fixture_runs, android):
    app = exported_apps["int8"]
    model = fixture_runs["main"] / "convert" / "int8" / "model.tflite"
    assert sorted(p.name for p in (app / ASSETS).iterdir()) == ["labels.txt", "model.tflite", "model_config.json", "sample.png"]
    assert (app / ASSETS / "model.tflite").read_bytes() == model.read_bytes()
    assert (app / ASSETS / "labels.txt").read_text() == "NORMAL\nPNEUMONIA\n"
    config = _config(app)
    classifier = TfliteClassifier(model)
    assert config["model"]["sha256"] == sha256_file(model)
    assert config["input"]["dtype"] == "int8"
    assert (config["input"]["scale"], config["input"]["zero_point"]) == classifier.input_quantization
    assert (config["output"]["scale"], config["output"]["zero_point"]) == classifier.output_quantization
    assert config["input"]["mean"] == android.FIXTURE_PREPROCESSING["mean"]
    assert config["decision"] == {"threshold": android.THRESHOLD, "positive_index": 1, "rule": "Youden's J on validation"}
    assert config["output"]["kind"] == "probabilities"
    record = read_record(app / GOLDEN)  # checks every golden file's sha256
    assert record["stage"] == "export-android"
    assert {a["path"] for a in record["assets"]} == {f"{ASSETS}/{n}" for n in ("model.tflite", "labels.txt", "model_config.json", "sample.png")}


def test_export_goldenVectors_areTheHarnessTensorsOfRealXrays(exported_apps, fixture_runs, android):
    app = exported_apps["int8"]
    golden = _golden(app)
    assert golden["count"] == 4
    # classes taken in turn: both present
    assert [Path(i["source"]).parts[0] for i in golden["images"]] == ["NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA"]
    preprocessing = Preprocessing.from_dict(android.FIXTURE_PREPROCESSING)
    pixels = np.stack([load_image(android.XRAYS / i["source"], 16) for i in golden["images"]])
    argb = np.frombuffer((app / GOLDEN / "pixels.bin").read_bytes(), dtype="<u4").reshape(4, 16 * 16)
    assert np.array_equal(argb >> 24, np.full_like(argb, 0xFF))
    assert np.array_equal((argb >> 16) & 0xFF, pixels[..., 0].reshape(4, -1))
    assert np.array_equal(argb & 0xFF, pixels[..., 2].reshape(4, -1))
    classifier = TfliteClassifier(fixture_runs["main"] / "convert" / "int8" / "model.tflite")
    probs = classifier.predict_proba(preprocessing.normalize(pixels))
    assert np.array_equal(np.array([i["probabilities"] for i in golden["images"]], dtype=np.float32), probs)
    inputs = np.frombuffer((app / GOLDEN / "input.bin").read_bytes(), dtype=np.int8)
    assert inputs.size == 4 * 16 * 16 * 3
    expected_classes = np.where(probs[:, 1] >= np.float32(android.THRESHOLD), 1, 0)
    assert [i["class_index"] for i in golden["images"]] == expected_classes.tolist()
    assert (expected_classes != probs.argmax(axis=1)).any(), "the fixture threshold should decide at least one image"


def test_export_sample_isGoldenImageZeroAtModelSize(exported_apps, android):
    from PIL import Image

    app = exported_apps["fp32"]
    config, golden = _config(app), _golden(app)
    with Image.open(app / ASSETS / "sample.png") as image:
        assert image.mode == "RGB" and image.size == (16, 16)
        pixels = np.asarray(image)
    assert np.array_equal(pixels, load_image(android.XRAYS / golden["images"][0]["source"], 16))
    assert config["sample"]["probabilities"] == golden["images"][0]["probabilities"]
    assert config["sample"]["source"] == golden["images"][0]["source"]


def test_export_fp32Input_isFloatLittleEndian(exported_apps):
    golden = _golden(exported_apps["fp32"])
    assert golden["input_dtype"] == "float32" and golden["byte_order"] == "little"
    values = np.frombuffer((exported_apps["fp32"] / GOLDEN / "input.bin").read_bytes(), dtype="<f4")
    assert values.size == 4 * 16 * 16 * 3 and values.min() >= -1.0 and values.max() <= 1.0


def test_export_existingAssets_refusedWithoutOverwrite(exported_apps, fixture_runs, tmp_path):
    app = exported_apps["int8"]
    before = sha256_file(app / ASSETS / "model_config.json")
    with pytest.raises(ArtifactError, match=r"assets already exists; pass --overwrite"):
        export_android(fixture_runs["main"], ExportConfig(variant="fp32", app=app))
    assert sha256_file(app / ASSETS / "model_config.json") == before
    assert not list(app.rglob(".*partial*"))


def test_export_overwrite_replacesVariant(app_copy, fixture_runs):
    export_android(fixture_runs["main"], ExportConfig(variant="int8", app=app_copy))
    export_android(fixture_runs["main"], ExportConfig(variant="fp32", app=app_copy, overwrite=True))
    assert _config(app_copy)["variant"] == "fp32" and _golden(app_copy)["input_dtype"] == "float32"


def test_export_variantNotConverted_namesBuiltVariants(app_copy, fixture_runs):
    with pytest.raises(ArtifactError, match=r"dynamic was not converted \(built: fp32, int8\)"):
        export_android(fixture_runs["main"], ExportConfig(variant="dynamic", app=app_copy))


def test_export_notTheApp_refused(tmp_path, fixture_runs):
    with pytest.raises(ArtifactError, match=r"is not the Android demo app .*pass --app android_demo"):
        export_android(fixture_runs["main"], ExportConfig(app=tmp_path))


def test_export_recordIoDisagreesWithModel_refused(app_copy, fixture_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"], run)
    path = run / "convert" / "int8" / "record.json"
    record = json.loads(path.read_text())
    record["io"]["input"]["zero_point"] = 5
    path.write_text(json.dumps(record))
    with pytest.raises(ArtifactError, match=r"io\.input\.zero_point is 5 but the model's is -1; rerun mdx convert"):
        export_android(run, ExportConfig(app=app_copy))


def test_export_decision_isTheOneTheConvertedModelCarries(app_copy, fixture_runs, tmp_path, android):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"], run)
    path = run / "convert" / "int8" / "record.json"
    record = json.loads(path.read_text())  # a pruned model re-chooses its threshold: its conversion records that one
    record.update(threshold=0.3, threshold_rule="chosen again after pruning")
    path.write_text(json.dumps(record))
    export_android(run, ExportConfig(app=app_copy))
    assert android.THRESHOLD != 0.3
    assert _config(app_copy)["decision"] == {"threshold": 0.3, "positive_index": 1, "rule": "chosen again after pruning"}
    golden = _golden(app_copy)
    probs = np.array([i["probabilities"] for i in golden["images"]], dtype=np.float32)
    assert [i["class_index"] for i in golden["images"]] == np.where(probs[:, 1] >= np.float32(0.3), 1, 0).tolist()


def test_export_badThresholdInConvertRecord_refusedNamingIt(app_copy, fixture_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"], run)
    path = run / "convert" / "int8" / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "threshold": 1.5}))
    with pytest.raises(ArtifactError, match=r"convert/int8/record\.json threshold 1\.5 needs 2 classes and a value "
                                            r"from 0 to 1; rerun mdx convert --overwrite"):
        export_android(run, ExportConfig(app=app_copy))


def test_export_modelChangedSinceConvert_refused(app_copy, fixture_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"], run)
    with open(run / "convert" / "int8" / "model.tflite", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match=r"model\.tflite changed since .* was written"):
        export_android(run, ExportConfig(app=app_copy))


def test_export_noTrainRecord_refused(app_copy, fixture_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"] / "convert", run / "convert")
    with pytest.raises(ArtifactError, match=r"train/record\.json not found: the export takes the decision threshold"):
        export_android(run, ExportConfig(app=app_copy))


def test_export_testImagesMissing_refused(app_copy, fixture_runs, tmp_path, android):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fixture_runs["main"] / "convert", run / "convert")
    android.make_train_record(run, android.FIXTURE_PREPROCESSING, android.LABELS, None, tmp_path / "gone")
    with pytest.raises(DataError, match=r"test images .*gone named in .* not found"):
        export_android(run, ExportConfig(app=app_copy))


def test_exportConfig_unknownVariant_rejected():
    with pytest.raises(ConfigError, match=r"--variant 'int4' is unknown; expected one of fp32, fp16"):
        ExportConfig(variant="int4")


def test_exportConfig_zeroGoldenImages_rejected():
    with pytest.raises(ConfigError, match=r"golden_count 0 is invalid"):
        ExportConfig(golden_count=0)


def test_cli_exportAndroid_exit0PrintsAssets(app_copy, fixture_runs):
    result = runner.invoke(cli, ["export", "android", str(fixture_runs["main"]), "--app", str(app_copy), "--variant", "fp32"])
    assert result.exit_code == 0, result.output
    assert str(app_copy / ASSETS) in result.stdout
    assert _config(app_copy)["variant"] == "fp32"


def test_cli_exportUnknownTarget_exit2(fixture_runs):
    result = runner.invoke(cli, ["export", "ios", str(fixture_runs["main"])])
    assert result.exit_code == 2
    assert "export target 'ios' is unknown" in result.output


def test_cli_exportExisting_exit1(exported_apps, fixture_runs):
    result = runner.invoke(cli, ["export", "android", str(fixture_runs["main"]), "--app", str(exported_apps["int8"])])
    assert result.exit_code == 1
    assert "already exists; pass --overwrite" in result.output
