"""The real contract: a tiny Keras run through `mdx convert` (fp32 + int8), `mdx export android`, and
the app's JVM tests on both exports. Proves the export reads what convert actually writes."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdx.cli import app as cli
from mdx.export_android import ASSETS
from mdx.records import write_record
from mdx.runtime.files import sha256_file

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("tf_keras") is None, reason="needs TensorFlow and tf-keras (the [train] extra)"),
]

SIZE = 32
PREPROCESSING = {"size": SIZE, "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}
runner = CliRunner()


def _tiny_run(run: Path, data: Path, labels: list[str]) -> Path:
    """RUN/train as mdx train leaves it: model.keras, labels.txt and a record naming the data splits."""
    from mdx.train.keras_shim import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(labels), activation="softmax")(x))
    train = run / "train"
    train.mkdir(parents=True)
    model.save(train / "model.keras")
    (train / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    write_record(train, stage="train", config={}, inputs=[], outputs=[train / "model.keras", train / "labels.txt"],
                 extra={"preprocessing": PREPROCESSING, "labels": labels, "threshold": 0.5,
                        "threshold_rule": "Youden's J on validation",
                        "data": {"train_dir": str(data / "train"), "test_dir": str(data / "test")}})
    return run


def test_convertThenExport_fp32AndInt8_jvmGoldenTestsPass(tmp_path, xray_subset, android, request):
    run = _tiny_run(tmp_path / "run", xray_subset(4), android.LABELS)
    done = runner.invoke(cli, ["convert", str(run), "--int8", "--calibration-count", "8"])
    assert done.exit_code == 0, done.output
    apps = {}
    for variant in ("fp32", "int8"):
        apps[variant] = android.copy_app(tmp_path / f"app_{variant}")
        done = runner.invoke(cli, ["export", "android", str(run), "--variant", variant, "--app", str(apps[variant])])
        assert done.exit_code == 0, done.output
        config = json.loads((apps[variant] / ASSETS / "model_config.json").read_text(encoding="utf-8"))
        assert config["input"]["dtype"] == "float32"  # int8's default io: float32 around the int8 body
        # int8's float32 output is a dequantized int8 softmax: still probabilities, never softmaxed again
        assert config["output"]["kind"] == "probabilities"
        assert config["model"]["sha256"] == sha256_file(run / "convert" / variant / "model.tflite")
    # the export side of the contract is checked above even where the JVM tools are missing (this skips then)
    jvm_classes = request.getfixturevalue("jvm_classes")
    for app in apps.values():
        junit = android.run_junit(jvm_classes, app, "GoldenVectorsTest")
        assert junit.returncode == 0 and "OK (4 tests)" in junit.stdout, junit.stdout + junit.stderr
