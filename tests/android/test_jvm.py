"""The app's plain-Kotlin tensor code, compiled with Debian's kotlinc and run with JUnit on the JVM,
against golden vectors that `mdx export android` computed with the Python harness."""

from __future__ import annotations

import json
import shutil

import pytest

from mdx.export_android import ASSETS


def _passed(done) -> bool:
    return done.returncode == 0 and "\nOK (" in done.stdout


def test_jvm_coreUnitTests_pass(jvm_classes, exported_apps, android):
    done = android.run_junit(jvm_classes, exported_apps["int8"], "CoreTest")
    assert _passed(done), done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["fp32", "int8", "uint8"])
def test_jvm_goldenVectors_exportedModel_matchPythonHarness(jvm_classes, exported_apps, android, kind):
    done = android.run_junit(jvm_classes, exported_apps[kind], "GoldenVectorsTest")
    assert _passed(done), done.stdout + done.stderr
    assert "OK (4 tests)" in done.stdout


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_jvm_meanFlippedInExportedConfig_pixelTestFails(jvm_classes, exported_apps, android, tmp_path, kind):
    """One preprocessing constant off by one pixel level must fail the JVM test: the check is not vacuous."""
    app = tmp_path / "app"
    shutil.copytree(exported_apps[kind], app)
    path = app / ASSETS / "model_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["input"]["mean"][1] += 1.0  # green channel only: 127.5 -> 128.5
    path.write_text(json.dumps(config), encoding="utf-8")
    done = android.run_junit(jvm_classes, app, "GoldenVectorsTest")
    assert done.returncode != 0
    assert "Tests run: 4,  Failures: 1" in done.stdout, done.stdout
    assert "pixelsToInputTensor_realXrays_byteIdenticalToPythonHarness" in done.stdout
    assert "values differ from the Python harness" in done.stdout


def test_jvm_thresholdFlippedInExportedConfig_decisionTestFails(jvm_classes, exported_apps, android, tmp_path):
    """The decision rule is checked too: back to 0.5, the image with P(PNEUMONIA) = 0.52 changes class."""
    app = tmp_path / "app"
    shutil.copytree(exported_apps["int8"], app)
    path = app / ASSETS / "model_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["decision"]["threshold"] = 0.5
    path.write_text(json.dumps(config), encoding="utf-8")
    done = android.run_junit(jvm_classes, app, "GoldenVectorsTest")
    assert "Tests run: 4,  Failures: 1" in done.stdout, done.stdout
    assert "outputToDecision_realXrays_matchesPythonHarness" in done.stdout


def test_jvm_noExport_failsNamingTheCommand(jvm_classes, android, tmp_path):
    app = android.copy_app(tmp_path / "app")
    done = android.run_junit(jvm_classes, app, "GoldenVectorsTest")
    assert done.returncode != 0
    assert "no /model_config.json on the test classpath; run `mdx export android RUN --app android_demo` first" in done.stdout
