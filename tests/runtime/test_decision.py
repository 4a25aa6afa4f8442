"""The decision threshold recorded with a model: found in record.json, used by evaluate/check/predict,
reported with its source, overridden by --threshold, refused when bad. (The .tflite-embedded copy is
made by mdx convert: tests/integration/test_convert.py covers it with real converted models.)

binary_fp32 gives P(PNEUMONIA) 0.547, 0.572, 0.557, 0.603, 0.608, 0.605, 0.529, 0.607 on the golden
inputs (labels alternate NORMAL, PNEUMONIA): at 0.5 all are PNEUMONIA (accuracy 0.5), at 0.58 six of
eight are right (0.75). binary_int8 gives 0.562 where binary_fp32 gives 0.547, so at 0.55 (not at 0.5)
the two part on one input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.runtime.check import check
from mdx.runtime.cli import main
from mdx.runtime.decision import Decision, decide
from mdx.runtime.errors import ModelLoadError, UsageError
from mdx.runtime.evaluate import EvaluateConfig, evaluate
from mdx.runtime.model_info import load_model_info
from mdx.runtime.predict import predict_images

FAST = EvaluateConfig(n_boot=0)
RULE = "Youden's J on validation, one-standard-error rule toward 0.5"


def test_load_model_info_record_threshold_read_with_its_source(variant, add_to_record) -> None:
    model = variant("binary_fp32")
    record = add_to_record(model, threshold=0.44, threshold_rule=RULE)
    info = load_model_info(model)
    assert info.decision == Decision(0.44, 1)
    assert (info.decision.source, info.decision.rule) == (str(record), RULE)
    assert info.source.endswith(f"threshold: {record}")
    assert info.to_dict()["decision"]["threshold"] == 0.44


def test_evaluate_recorded_threshold_decides_and_is_reported(variant, add_to_record, golden_npz) -> None:
    model = variant("binary_fp32")
    record = add_to_record(model, threshold=0.58, threshold_rule=RULE)
    result = evaluate(model, golden_npz, FAST)
    assert result.metrics["threshold"] == 0.58
    assert result.metrics["accuracy"]["value"] == 0.75  # 0.5 at the default: the threshold really decided
    assert result.metrics["confusion_matrix"] == [[3, 1], [1, 3]]
    assert result.decision.describe() == f"threshold 0.58 ({record})"
    assert result.to_dict()["decision"] == {"threshold": 0.58, "positive_index": 1, "source": str(record), "rule": RULE}


def test_evaluate_threshold_option_overrides_recorded_one(variant, add_to_record, golden_npz) -> None:
    model = variant("binary_fp32")
    add_to_record(model, threshold=0.58)
    result = evaluate(model, golden_npz, EvaluateConfig(n_boot=0, threshold=0.5))
    assert result.metrics["threshold"] == 0.5 and result.metrics["accuracy"]["value"] == 0.5
    assert result.decision.describe() == "threshold 0.5 (--threshold)"


def test_evaluate_no_recorded_threshold_defaults_to_half(model_path, golden_npz) -> None:
    result = evaluate(model_path("binary_fp32"), golden_npz, FAST)
    assert result.metrics["threshold"] == 0.5 and result.decision.describe() == "threshold 0.5 (default)"
    assert result.to_dict()["decision"]["source"] == "default"


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", True, [0.4]])
def test_load_model_info_recorded_threshold_out_of_range_refused_naming_file(variant, add_to_record, bad) -> None:
    model = variant("binary_fp32")
    record = add_to_record(model, threshold=bad)
    with pytest.raises(ModelLoadError) as raised:
        load_model_info(model)
    message = str(raised.value)
    assert message.startswith(f"{record}: threshold {bad!r} is invalid; expected a probability in [0, 1]; ")
    assert "rerun mdx convert --overwrite to rewrite it, or pass --threshold" in message and "\n" not in message


def test_evaluate_recorded_threshold_out_of_range_overridden_by_option(variant, add_to_record, golden_npz) -> None:
    model = variant("binary_fp32")
    add_to_record(model, threshold=1.5)
    assert evaluate(model, golden_npz, EvaluateConfig(n_boot=0, threshold=0.58)).metrics["accuracy"]["value"] == 0.75


def test_load_model_info_threshold_for_three_classes_refused(variant, add_to_record) -> None:
    model = variant("three_fp32")
    record = add_to_record(model, threshold=0.4)
    with pytest.raises(ModelLoadError, match=rf"^{record}: threshold 0\.4 is recorded for the 3 classes "
                                             r"\['BACTERIAL', 'NORMAL', 'VIRAL'\], but a threshold decides between 2 classes only"):
        load_model_info(model)


def test_evaluate_three_classes_null_threshold_uses_argmax(variant, add_to_record, golden_npz) -> None:
    model = variant("three_fp32")
    add_to_record(model, threshold=None, threshold_rule="argmax")  # what mdx train records for 3 classes
    result = evaluate(model, golden_npz, FAST)
    assert result.metrics["threshold"] is None and result.decision.describe() == "argmax"
    with pytest.raises(UsageError, match=r"a threshold applies to 2 classes only; --threshold gives 0\.5 for the 3 classes"):
        evaluate(model, golden_npz, EvaluateConfig(n_boot=0, threshold=0.5))


def test_decide_positive_class_other_than_recorded_one_refused() -> None:
    recorded = Decision(0.44, 1, "record.json")
    labels = ("NORMAL", "PNEUMONIA")
    with pytest.raises(UsageError, match=r"threshold 0\.44 from record\.json applies to P\(PNEUMONIA\), not P\(NORMAL\); "
                                         r"pass --threshold too when choosing --positive-class NORMAL"):
        decide(recorded, labels, positive_index=0)
    assert decide(recorded, labels, positive_index=1) is recorded
    assert decide(Decision(0.3, 1, "--threshold"), labels, positive_index=0) == Decision(0.3, 0)


def test_check_candidate_threshold_decides_both_models(variant, add_to_record, model_path, golden_npz) -> None:
    candidate = variant("binary_int8")
    record = add_to_record(candidate, threshold=0.55)
    result = check(candidate, model_path("binary_fp32"), golden_npz, FAST)
    assert result.parity.reference["threshold"] == result.parity.candidate["threshold"] == 0.55
    assert result.parity.agreement == 7 / 8  # 1.0 at 0.5: the threshold decided the flip
    assert result.parity.flips == {"NORMAL": {"PNEUMONIA": 1}}
    assert result.to_dict()["decision"]["source"] == str(record)
    assert result.warnings == ()  # the reference records no threshold: nothing to warn about


def test_check_reference_recording_another_threshold_warns_not_fails(variant, add_to_record, golden_npz) -> None:
    candidate = variant("binary_int8")
    add_to_record(candidate, threshold=0.55)
    reference = variant("binary_fp32")
    reference_record = add_to_record(reference, threshold=0.6)
    result = check(candidate, reference, golden_npz, FAST)
    assert result.parity.reference["threshold"] == 0.55
    expected = (f"reference {reference} records threshold 0.6 ({reference_record}); both models are "
                f"decided at threshold 0.55 ({candidate.parent / 'record.json'})")
    assert result.warnings == (expected,)
    assert result.to_dict()["warnings"] == list(result.warnings)


def test_predict_class_at_recorded_threshold_may_differ_from_top1(variant, add_to_record, xray_folder) -> None:
    model = variant("binary_fp32")
    add_to_record(model, threshold=0.99)
    image = next((xray_folder / "NORMAL").iterdir())
    result = predict_images(model, [image], FAST, 2)
    assert result.top[0][0][0] == "PNEUMONIA"  # the top-1 ...
    assert result.classes == ("NORMAL",)  # ... is not the class at 0.99
    payload = result.to_dict()
    assert payload["predictions"][0]["class"] == "NORMAL" and payload["decision"]["threshold"] == 0.99
    assert predict_images(model, [image], EvaluateConfig(threshold=0.5), 2).classes == ("PNEUMONIA",)


def test_cli_evaluate_prints_threshold_and_its_source(variant, add_to_record, golden_npz, tmp_path: Path, capsys) -> None:
    model = variant("binary_fp32")
    record = add_to_record(model, threshold=0.58)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(model), str(golden_npz), "--n-boot", "0", "--json", str(out)]) == 0
    assert f"threshold 0.58 ({record}), positive PNEUMONIA" in capsys.readouterr().out
    assert json.loads(out.read_text())["decision"]["source"] == str(record)
    assert main(["evaluate", str(model), str(golden_npz), "--n-boot", "0", "--threshold", "0.5"]) == 0
    assert "threshold 0.5 (--threshold)" in capsys.readouterr().out


def test_cli_check_prints_threshold_and_reference_warning(variant, add_to_record, golden_npz, capsys) -> None:
    candidate, reference = variant("binary_int8"), variant("binary_fp32")
    add_to_record(candidate, threshold=0.55)
    add_to_record(reference, threshold=0.6)
    code = main(["check", str(candidate), str(golden_npz), "--reference", str(reference), "--n-boot", "0",
                 "--min-agreement", "0.8", "--max-acc-drop", "20"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"threshold 0.55 ({candidate.parent / 'record.json'})" in captured.out.splitlines()[0]
    assert captured.err.startswith(f"warning: reference {reference} records threshold 0.6")


def test_mdx_evaluate_check_predict_report_threshold_source(variant, add_to_record, golden_npz, xray_folder,
                                                            tmp_path: Path) -> None:
    runner = CliRunner()
    candidate, reference = variant("binary_int8"), variant("binary_fp32")
    add_to_record(candidate, threshold=0.55)
    add_to_record(reference, threshold=0.6)
    evaluated = runner.invoke(app, ["evaluate", str(candidate), str(golden_npz), "--n-boot", "0"])
    assert evaluated.exit_code == 0 and "threshold 0.55 (" in evaluated.output, evaluated.output
    checked = runner.invoke(app, ["check", str(candidate), str(golden_npz), "--reference", str(reference),
                                  "--n-boot", "0", "--threshold", "0.5"])
    assert checked.exit_code == 0, checked.output
    assert "threshold 0.5 (--threshold)" in checked.output
    assert "warning: reference" in checked.output and "both models are decided at threshold 0.5 (--threshold)" in checked.output
    image = next((xray_folder / "NORMAL").iterdir())
    out = tmp_path / "predict.json"
    predicted = runner.invoke(app, ["predict", str(reference), str(image), "--threshold", "0.99", "--json", str(out)])
    assert predicted.exit_code == 0 and "threshold 0.99 (--threshold)" in predicted.output, predicted.output
    assert json.loads(out.read_text())["predictions"][0]["class"] == "NORMAL"
