"""INT8 against FP32 on a model trained well enough to mean something, on real chest X-rays (issue 4).

A tiny random-init model proves nothing here: its outputs hug 0.5 or saturate. This one starts from the
bundled ImageNet MobileNetV2, fine-tunes its top blocks (the layers int8 rounding hurts most, see
quantize/README.md) on 160 real X-rays per class at 96 px, and is judged on 100 test X-rays per class
that it never saw, with the same parity gate users put in CI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from mdx.convert.convert import ConvertConfig, convert
from mdx.runtime.check import check
from mdx.runtime.evaluate import EvaluateConfig
from mdx.runtime.parity import ParityResult, Tolerances

pytestmark = [pytest.mark.tf, pytest.mark.slow]

ISSUE_4_GATE = Tolerances(max_acc_drop_pt=0.5, max_auc_drop=0.01, min_agreement=0.99)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, xray_subset) -> SimpleNamespace:
    from mdx.train.config import TrainConfig
    from mdx.train.fit import train

    data = xray_subset(160)
    run = tmp_path_factory.mktemp("int8-real")
    config = TrainConfig(input_size=96, weights="bundled", epochs_frozen=2, epochs_finetune=2, finetune_blocks=2,
                         batch_size=32, bootstrap=0, val_fraction=0.15, seed=0)
    train(data, config, run / "train")
    return SimpleNamespace(run=run, data=data)


def _test_images(root: Path, per_class: int) -> Path:
    source = Path(__file__).resolve().parents[2] / "data" / "chest_xray" / "test"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
        for image in sorted((source / name).iterdir())[-per_class:]:
            shutil.copy2(image, root / name / image.name)
    return root


@pytest.fixture(scope="module")
def converted(trained, tmp_path_factory) -> SimpleNamespace:
    result = convert(trained.run, ConvertConfig(variants=("int8",), calibration_count=100))
    return SimpleNamespace(int8=result["int8"].model_path, fp32=result["fp32"].model_path,
                           test=_test_images(tmp_path_factory.mktemp("test"), 100))


@pytest.fixture(scope="module")
def parity(converted) -> ParityResult:
    """int8 against fp32 of the trained model on 100 unseen test X-rays per class."""
    return check(converted.int8, converted.fp32, converted.test, EvaluateConfig(n_boot=0), ISSUE_4_GATE).parity


def _accuracy(metrics: dict) -> float:
    value = metrics["accuracy"]
    return value["value"] if isinstance(value, dict) else value


def test_int8_real_xrays_float_model_worth_matching_and_agreement_at_least_95pct(parity: ParityResult) -> None:
    # Guards against a regression to plain int8 (agreement 0.954 on the full model before bias correction).
    assert _accuracy(parity.reference) >= 0.75, f"the float model must be worth matching ({parity.reference})"
    assert parity.agreement >= 0.95, parity.summary()


# Measured here (TF 2.21, ai-edge-litert 2.3.0), bias correction and the output slope/offset correction on:
# agreement 0.97 (6 flips in 200, both ways), accuracy drop within 0.5 pt (offset correction alone: 0.98,
# 1.5 pt). Strict: the day int8 meets the gate this test says so and must be un-marked.
@pytest.mark.xfail(strict=True, reason="issue 4 gate not met yet at 96 px: int8 agreement 0.97 < 0.99")
def test_int8_real_xrays_agreement_and_accuracy_within_issue_4_gate(parity: ParityResult) -> None:
    assert parity.passed, parity.summary()


def _int8_calibrated_on_raw_pixels(trained, out: Path) -> Path:
    """The classic int8 bug, made on purpose: calibration fed [0, 255] pixels, the model sees [-1, 1].

    The input scale then spends ~2 of its 256 steps on the real input range; everything converts and
    loads without a word, and only a parity check can tell.
    """
    import numpy as np

    from mdx.convert.keras_converter import tflite_bytes
    from mdx.convert.metadata import embed_metadata
    from mdx.quantize.calibration import CalibrationConfig, sample_calibration
    from mdx.quantize.recipes import recipe_for
    from mdx.runtime.preprocess import Preprocessing
    from mdx.train.keras_shim import keras
    from mdx.variants import Quantization

    train = trained.run / "train"
    model = keras.models.load_model(train / "model.keras", compile=False)
    pre = Preprocessing.from_dict(json.loads((train / "preprocessing.json").read_text()))
    labels = tuple((train / "labels.txt").read_text().split())
    calibration = sample_calibration(trained.data / "train", pre, labels, CalibrationConfig(count=100))
    raw = calibration.inputs * np.asarray(pre.std, np.float32) + np.asarray(pre.mean, np.float32)

    def wrong_scale():
        for index in range(raw.shape[0]):
            yield [raw[index : index + 1]]

    data = tflite_bytes(model, recipe_for(Quantization.INT8, io="int8"), wrong_scale, what="broken int8")
    out.write_bytes(embed_metadata(data, labels, pre, name="broken int8", description="calibrated on raw pixels",
                                   version="test"))
    return out


def test_mdx_check_exits_3_on_int8_calibrated_at_the_wrong_input_scale_and_0_on_the_real_one(
    trained, converted, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from mdx.cli import app

    broken = _int8_calibrated_on_raw_pixels(trained, tmp_path / "broken.tflite")
    # one gate for both, loose enough for the real int8 model (measured 1.5 pt, agreement 0.98)
    gate = ["--n-boot", "0", "--max-acc-drop", "4", "--max-auc-drop", "0.05", "--min-agreement", "0.95"]
    runner = CliRunner()
    real = runner.invoke(app, ["check", str(converted.int8), str(converted.test), "--reference", str(converted.fp32), *gate])
    assert real.exit_code == 0, real.output
    bad = runner.invoke(app, ["check", str(broken), str(converted.test), "--reference", str(converted.fp32), *gate])
    assert bad.exit_code == 3, bad.output
    assert "error: parity failed on 200 samples" in bad.output and "agreement" in bad.output
