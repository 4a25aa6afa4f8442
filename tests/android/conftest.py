"""Fixtures for the Android demo checks: contract-format runs, app copies, and the JVM toolchain.

Runs are made from the committed golden .tflite models (tests/fixtures/golden, 16x16 inputs) with
convert and train records in the format `mdx convert` and `mdx train` write, so these tests need no
TensorFlow; test_convert_contract.py does the same through the real `mdx convert`.

Debian's kotlin, junit4, aapt and android-framework-res packages (.ci/install-android-tools.sh) are
needed by the JVM and aapt2 tests. Without them those tests skip, naming the package; with
MDX_REQUIRE_ANDROID_TOOLS=1 (for CI after the installer) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mdx.convert.flatbuffer import read_tflite
from mdx.records import write_record

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "android_demo"
CORE_MAIN = APP / "app/src/main/java/org/mdx/demo/core"
CORE_TEST = APP / "app/src/test/java/org/mdx/demo/core"
GOLDEN_MODELS = ROOT / "tests" / "fixtures" / "golden"
XRAYS = ROOT / "data" / "chest_xray" / "test"
LABELS = ["NORMAL", "PNEUMONIA"]
FIXTURE_PREPROCESSING = {"size": 16, "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}
THRESHOLD = 0.55  # between the golden models' probabilities, so the rule decides, not the 0.5 default
JAVA_SHARE = Path("/usr/share/java")
FRAMEWORK_RES = Path("/usr/share/android-framework-res/framework-res.apk")
# tool -> (how it is found, the Debian package that installs it)
TOOLS = {
    "kotlinc": ("kotlinc", "kotlin"),
    "java": ("java", "openjdk-17-jdk-headless"),
    "junit4": (JAVA_SHARE / "junit4.jar", "junit4"),
    "hamcrest": (JAVA_SHARE / "hamcrest-core.jar", "junit4"),  # junit4 depends on libhamcrest-java
    "kotlin-stdlib": (JAVA_SHARE / "kotlin-stdlib.jar", "kotlin"),
    "aapt2": ("aapt2", "aapt"),
    "framework-res": (FRAMEWORK_RES, "android-framework-res"),
}


def tool(name: str) -> Path:
    """The tool's path, or skip (fail under MDX_REQUIRE_ANDROID_TOOLS=1) naming its Debian package."""
    where, package = TOOLS[name]
    found = where if isinstance(where, Path) and where.is_file() else None
    if isinstance(where, str) and shutil.which(where):
        found = Path(shutil.which(where))  # type: ignore[arg-type]
    if found is None:
        message = (f"{name} not found: apt-get install {package} "
                   f"(or run .ci/install-android-tools.sh, which installs every Android check tool)")
        if os.environ.get("MDX_REQUIRE_ANDROID_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def make_variant(run: Path, variant: str, model: Path, preprocessing: dict[str, Any], labels: list[str]) -> Path:
    """RUN/convert/<variant>/ as mdx convert writes it: model.tflite, labels.txt, record.json with io."""
    folder = run / "convert" / variant
    folder.mkdir(parents=True)
    shutil.copy(model, folder / "model.tflite")
    (folder / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    facts = read_tflite(folder / "model.tflite")
    write_record(folder, stage="convert", config={}, inputs=[model],
                 outputs=[folder / "model.tflite", folder / "labels.txt"],
                 extra={"variant": variant, "preprocessing": preprocessing, "labels": labels,
                        "io": {"input": facts.inputs[0].to_dict(), "output": facts.outputs[0].to_dict()}})
    return folder


def make_train_record(run: Path, preprocessing: dict[str, Any], labels: list[str], threshold: float | None,
                      test_dir: Path) -> Path:
    """RUN/train/record.json with the keys the export reads (as mdx train writes them)."""
    folder = run / "train"
    folder.mkdir(parents=True, exist_ok=True)
    write_record(folder, stage="train", config={}, inputs=[], outputs=[],
                 extra={"preprocessing": preprocessing, "labels": labels, "threshold": threshold,
                        "threshold_rule": "Youden's J on validation",
                        "data": {"train_dir": None, "test_dir": str(test_dir)}})
    return folder


@pytest.fixture(scope="session")
def android():
    """This module, so tests can use its constants and helpers (test modules cannot import a conftest)."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def fixture_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs over the golden models: 'main' has fp32 and int8 (int8 io); 'uint8' has int8 with uint8 io."""
    base = tmp_path_factory.mktemp("runs")
    runs = {"main": base / "main", "uint8": base / "uint8"}
    make_variant(runs["main"], "fp32", GOLDEN_MODELS / "binary_fp32" / "model.tflite", FIXTURE_PREPROCESSING, LABELS)
    make_variant(runs["main"], "int8", GOLDEN_MODELS / "binary_int8" / "model.tflite", FIXTURE_PREPROCESSING, LABELS)
    make_variant(runs["uint8"], "int8", GOLDEN_MODELS / "binary_uint8" / "model.tflite", FIXTURE_PREPROCESSING, LABELS)
    for run in runs.values():
        make_train_record(run, FIXTURE_PREPROCESSING, LABELS, THRESHOLD, XRAYS)
    return runs


def copy_app(dest: Path) -> Path:
    """The demo app's committed files (no exported assets, no build output) in `dest`."""
    ignore = shutil.ignore_patterns("assets", "golden", "build", ".gradle", ".idea")
    shutil.copytree(APP, dest, ignore=ignore)
    return dest


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    return copy_app(tmp_path / "android_demo")


@pytest.fixture(scope="session")
def exported_apps(tmp_path_factory: pytest.TempPathFactory, fixture_runs: dict[str, Path]) -> dict[str, Path]:
    """One exported app copy per model kind: fp32, int8 and uint8 (shared; tests must not modify them)."""
    from mdx.export_android import ExportConfig, export_android

    base = tmp_path_factory.mktemp("apps")
    apps = {}
    for name, run, variant in (("fp32", "main", "fp32"), ("int8", "main", "int8"), ("uint8", "uint8", "int8")):
        app = copy_app(base / name)
        export_android(fixture_runs[run], ExportConfig(variant=variant, app=app))
        apps[name] = app
    return apps


@pytest.fixture(scope="session")
def jvm_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's core package and its JUnit tests, compiled once per session (kotlinc takes ~10-20 s)."""
    kotlinc, junit = tool("kotlinc"), tool("junit4")
    tool("java")
    out = tmp_path_factory.mktemp("jvm") / "classes"
    sources = sorted(CORE_MAIN.glob("*.kt")) + sorted(CORE_TEST.glob("*.kt"))
    done = subprocess.run([str(kotlinc), *map(str, sources), "-cp", str(junit), "-d", str(out), "-nowarn"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"kotlinc failed:\n{done.stdout}\n{done.stderr}"
    return out


def run_junit(classes: Path, app: Path, *test_classes: str) -> subprocess.CompletedProcess:
    """JUnitCore on the compiled tests with `app`'s exported assets and golden vectors on the classpath."""
    classpath = [classes, tool("kotlin-stdlib"), tool("junit4"), tool("hamcrest"),
                 app / "app/src/main/assets", app / "app/src/test/resources"]
    command = [str(tool("java")), "-Xshare:auto", "-cp", os.pathsep.join(map(str, classpath)),
               "org.junit.runner.JUnitCore", *(f"org.mdx.demo.core.{name}" for name in test_classes)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
