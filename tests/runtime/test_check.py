"""check: candidate vs reference on the same data, with the reference's own sidecars cross-checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdx.runtime.check import check
from mdx.runtime.errors import InputDataError, UsageError
from mdx.runtime.evaluate import EvaluateConfig
from mdx.runtime.parity import Tolerances

FAST = EvaluateConfig(n_boot=0)


def test_check_int8_against_fp32_passes(model_path, golden_npz, tmp_path) -> None:
    result = check(model_path("binary_int8"), model_path("binary_fp32"), golden_npz, FAST)
    assert result.passed and result.parity.agreement == 1.0
    assert 0 < result.parity.max_abs_prob_diff < 0.02  # int8 rounding, within a few output steps
    payload = result.to_dict()
    assert payload["reference"]["kind"] == "tflite" and payload["candidate"]["input"]["dtype"] == "int8"
    result.save(tmp_path / "check.json")
    assert json.loads((tmp_path / "check.json").read_text())["passed"] is True


def test_check_swapped_candidate_fails_agreement(model_path, golden_npz) -> None:
    result = check(model_path("binary_swapped"), model_path("binary_fp32"), golden_npz, FAST)
    assert not result.passed
    assert "agreement" in [f.name for f in result.parity.failures]
    assert result.parity.flips == {"PNEUMONIA": {"NORMAL": 8}}


def test_check_reference_callable_used_instead_of_tflite(model_path, golden_npz, golden) -> None:
    seen = []

    def reference(inputs: np.ndarray) -> np.ndarray:
        seen.append(inputs.shape)
        return golden["binary_fp32"]

    result = check(model_path("binary_fp32"), model_path("binary_fp32"), golden_npz, FAST, Tolerances(),
                   reference_predict=reference)
    assert seen == [(8, 16, 16, 3)] and result.parity.max_abs_prob_diff < 1e-6


def test_check_reference_with_other_classes_refused(model_path, golden_npz) -> None:
    with pytest.raises(UsageError, match=r"reference labels \['BACTERIAL', 'NORMAL', 'VIRAL'\] .* differ from the candidate's \['NORMAL', 'PNEUMONIA'\]"):
        check(model_path("binary_fp32"), model_path("three_fp32"), golden_npz, FAST)


def test_check_reference_with_other_preprocessing_refused(model_path, variant, xray_folder) -> None:
    reference = variant("binary_fp32")
    record = json.loads((reference.parent / "record.json").read_text())
    record["preprocessing"]["std"] = [1.0, 1.0, 1.0]
    (reference.parent / "record.json").write_text(json.dumps(record))
    with pytest.raises(UsageError, match=r"reference preprocessing .* differs from the candidate's .*; both models must see the same inputs"):
        check(model_path("binary_int8"), reference, xray_folder, FAST)


def test_check_reference_output_shape_mismatch_refused(model_path, golden_npz) -> None:
    with pytest.raises(InputDataError, match=r"reference outputs \(8, 3\) but candidate \(8, 2\)"):
        check(model_path("binary_fp32"), model_path("binary_fp32"), golden_npz, FAST,
              reference_predict=lambda inputs: np.full((len(inputs), 3), 1 / 3))
