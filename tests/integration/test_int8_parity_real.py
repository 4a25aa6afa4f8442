"""INT8 against FP32 on a model trained well enough to mean something, on real chest X-rays (issue 4).

A tiny random-init model proves nothing here: its outputs hug 0.5 or saturate. This one starts from the
bundled ImageNet MobileNetV2, fine-tunes its top blocks (the layers int8 rounding hurts most, see
quantize/README.md) on 160 real X-rays per class at 96 px, and is judged on 100 test X-rays per class
that it never saw, with the same parity gate users put in CI.
"""

from __future__ import annotations

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
def parity(trained, tmp_path_factory) -> ParityResult:
    """int8 against fp32 of the trained model on 100 unseen test X-rays per class."""
    result = convert(trained.run, ConvertConfig(variants=("int8",), calibration_count=100))
    test = _test_images(tmp_path_factory.mktemp("test"), 100)
    return check(result["int8"].model_path, result["fp32"].model_path, test, EvaluateConfig(n_boot=0),
                 ISSUE_4_GATE).parity


def _accuracy(metrics: dict) -> float:
    value = metrics["accuracy"]
    return value["value"] if isinstance(value, dict) else value


def test_int8_real_xrays_float_model_worth_matching_and_agreement_at_least_95pct(parity: ParityResult) -> None:
    # Guards against a regression to plain int8 (agreement 0.954 on the full model before bias correction).
    assert _accuracy(parity.reference) >= 0.75, f"the float model must be worth matching ({parity.reference})"
    assert parity.agreement >= 0.95, parity.summary()


# Measured here (TF 2.21, ai-edge-litert 2.3.0): agreement 0.98 (4 flips in 200) and an accuracy drop of
# 1.5 pt, with bias correction on. Strict: the day int8 meets the gate this test says so and must be un-marked.
@pytest.mark.xfail(strict=True, reason="issue 4 gate not met yet at 96 px: int8 agreement 0.98 < 0.99, accuracy drop 1.5 pt > 0.5")
def test_int8_real_xrays_agreement_and_accuracy_within_issue_4_gate(parity: ParityResult) -> None:
    assert parity.passed, parity.summary()
