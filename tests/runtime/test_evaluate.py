"""evaluate on an .npz and on real X-rays; results record runtime and hash; bad data refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mdx.runtime.errors import InputDataError, UsageError
from mdx.runtime.evaluate import EvaluateConfig, evaluate
from mdx.runtime.files import sha256_file

GOLDEN_LABELS = np.array([0, 1, 0, 1, 0, 1, 0, 1])
FAST = EvaluateConfig(n_boot=0)


def test_evaluate_npz_records_metrics_runtime_and_hash(model_path, golden_npz, golden) -> None:
    result = evaluate(model_path("binary_int8"), golden_npz, EvaluateConfig(n_boot=100))
    np.testing.assert_array_equal(result.probs, golden["binary_int8"])
    # every golden input is predicted PNEUMONIA: half right, all positives found, no negative found
    assert result.metrics["accuracy"]["value"] == 0.5
    assert (result.metrics["sensitivity"]["value"], result.metrics["specificity"]["value"]) == (1.0, 0.0)
    assert result.metrics["accuracy"]["ci95"] is not None
    assert result.runtime.package == "ai-edge-litert"
    payload = result.to_dict()
    assert payload["model"]["sha256"] == sha256_file(model_path("binary_int8"))
    assert payload["model"]["input"]["dtype"] == "int8"
    assert payload["runtime"] == {"name": "litert", "package": "ai-edge-litert", "version": result.runtime.version}
    assert payload["data"] == {"path": str(golden_npz), "kind": "npz", "n": 8, "skipped": []}
    assert payload["outputs"] == "probabilities"
    json.dumps(payload)  # JSON-safe throughout


def test_evaluate_xray_folder_decodes_and_scores(model_path, xray_folder) -> None:
    result = evaluate(model_path("binary_fp32"), xray_folder, FAST)
    assert result.metrics["n"] == 6 and result.metrics["classes"] == ["NORMAL", "PNEUMONIA"]
    assert len(result.paths) == 6 and result.data["kind"] == "folder"
    assert result.model_info.preprocessing is not None and result.model_info.preprocessing.size == 16
    assert sum(map(sum, result.metrics["confusion_matrix"])) == 6


def test_evaluate_workers_give_same_probabilities(model_path, xray_folder) -> None:
    one = evaluate(model_path("binary_int8"), xray_folder, FAST)
    two = evaluate(model_path("binary_int8"), xray_folder, EvaluateConfig(n_boot=0, workers=2, batch_size=2))
    np.testing.assert_array_equal(one.probs, two.probs)


def test_evaluate_save_writes_json_and_predictions_refuses_overwrite(model_path, golden_npz, tmp_path: Path) -> None:
    result = evaluate(model_path("three_int8"), golden_npz, FAST)
    out = tmp_path / "eval"
    result.save(out)
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["metrics"]["classes"] == ["BACTERIAL", "NORMAL", "VIRAL"]
    with np.load(out / "predictions.npz") as archive:
        np.testing.assert_array_equal(archive["probs"], result.probs)
        assert archive["class_names"].tolist() == ["BACTERIAL", "NORMAL", "VIRAL"]
    with pytest.raises(UsageError, match=r"evaluation\.json already exists; pass --overwrite to replace it"):
        result.save(out)
    result.save(out, overwrite=True)


def test_evaluate_classes_mismatching_model_labels_refused(model_path, xray_folder) -> None:
    with pytest.raises(InputDataError, match=r"class folders \['NORMAL', 'PNEUMONIA'\] differ from the model's classes \['BACTERIAL', 'NORMAL', 'VIRAL'\]"):
        evaluate(model_path("three_fp32"), xray_folder, FAST)


def test_evaluate_empty_data_folder_refused(model_path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match=r"empty: found 0 class folder\(s\) \[\]; expected at least 2"):
        evaluate(model_path("binary_fp32"), tmp_path / "empty", FAST)


def test_evaluate_empty_class_folder_refused(model_path, xray_folder) -> None:
    for image in (xray_folder / "NORMAL").iterdir():
        image.unlink()
    with pytest.raises(InputDataError, match=r"NORMAL: class folder holds no images"):
        evaluate(model_path("binary_fp32"), xray_folder, FAST)


def test_evaluate_missing_data_refused(model_path, tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"nowhere: data not found; expected a folder with one sub-folder per class, or an \.npz"):
        evaluate(model_path("binary_fp32"), tmp_path / "nowhere", FAST)


def test_evaluate_unreadable_image_skipped_and_recorded(model_path, xray_folder) -> None:
    (xray_folder / "NORMAL" / "broken.png").write_bytes(b"not a png")
    result = evaluate(model_path("binary_fp32"), xray_folder, FAST)
    assert result.metrics["n"] == 6
    assert [Path(s["path"]).name for s in result.data["skipped"]] == ["broken.png"]
    with pytest.raises(InputDataError, match=r"broken\.png: not a readable image"):
        evaluate(model_path("binary_fp32"), xray_folder, EvaluateConfig(n_boot=0, skip_unreadable=False))


def test_evaluate_npz_wrong_input_shape_names_both(model_path, tmp_path: Path) -> None:
    data = tmp_path / "big.npz"
    np.savez(data, inputs=np.zeros((2, 32, 32, 3), np.float32), labels=np.array([0, 1]))
    with pytest.raises(InputDataError, match=r"input shape \(2, 32, 32, 3\) does not match the model's input \(N, 16, 16, 3\)"):
        evaluate(model_path("binary_fp32"), data, FAST)


def test_evaluate_npz_missing_keys_or_bad_labels_refused(model_path, tmp_path: Path, golden) -> None:
    data = tmp_path / "bad.npz"
    np.savez(data, images=golden["inputs"])
    with pytest.raises(InputDataError, match=r"bad\.npz: lacks \['inputs', 'labels'\] \(holds \['images'\]\)"):
        evaluate(model_path("binary_fp32"), data, FAST)
    np.savez(data, inputs=golden["inputs"], labels=np.full(8, 5))
    with pytest.raises(InputDataError, match=r"bad\.npz: labels must be 0\.\.1 for classes \['NORMAL', 'PNEUMONIA'\]"):
        evaluate(model_path("binary_fp32"), data, FAST)
    np.savez(data, inputs=golden["inputs"], labels=GOLDEN_LABELS, class_names=np.array(["A", "B"]))
    with pytest.raises(InputDataError, match=r"class_names \['A', 'B'\] differ from the model's classes"):
        evaluate(model_path("binary_fp32"), data, FAST)


def test_evaluate_npz_string_labels_mapped_to_classes(model_path, tmp_path: Path, golden) -> None:
    data = tmp_path / "named.npz"
    np.savez(data, inputs=golden["inputs"], labels=np.array(["NORMAL", "PNEUMONIA"] * 4))
    result = evaluate(model_path("binary_fp32"), data, FAST)
    np.testing.assert_array_equal(result.labels, GOLDEN_LABELS)


def test_evaluate_labels_count_mismatch_refused(model_path, golden_npz) -> None:
    with pytest.raises(UsageError, match=r"outputs 2 classes but 3 labels were given \['a', 'b', 'c'\] \(from arguments\); pass --labels with 2 labels"):
        evaluate(model_path("binary_fp32"), golden_npz, EvaluateConfig(n_boot=0, labels=("a", "b", "c")))


def test_evaluate_preprocessing_size_differs_from_model_refused(model_path, xray_folder) -> None:
    with pytest.raises(UsageError, match=r"preprocessing size 224 .* differs from .*model\.tflite's input 16x16; pass --size 16"):
        evaluate(model_path("binary_fp32"), xray_folder, EvaluateConfig(n_boot=0, size=224))


def test_evaluate_positive_class_by_name(model_path, golden_npz) -> None:
    result = evaluate(model_path("binary_fp32"), golden_npz, EvaluateConfig(n_boot=0, positive_class="NORMAL"))
    assert result.metrics["positive_class"] == "NORMAL"
    with pytest.raises(UsageError, match=r"positive class 'COVID' is not one of the model's classes"):
        evaluate(model_path("binary_fp32"), golden_npz, EvaluateConfig(n_boot=0, positive_class="COVID"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runtime": "onnx"}, r"runtime 'onnx' is unknown"),
        ({"workers": 0}, r"workers=0 is invalid; expected a positive integer"),
        ({"threads": -2}, r"threads=-2 is invalid"),
        ({"n_boot": -5}, r"n_boot=-5 is invalid"),
        ({"threshold": 2.0}, r"threshold=2\.0 is invalid; expected a probability in \[0, 1\]"),
        ({"size": 3}, r"preprocessing size 3 is invalid; expected an integer from 16 to 4096"),
        ({"std": (0.0, 1.0, 1.0)}, r"preprocessing std \(0\.0, 1\.0, 1\.0\) must be positive"),
        ({"outputs": "raw"}, r"outputs='raw' is unknown"),
    ],
)
def test_evaluate_config_invalid_values_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        EvaluateConfig(**kwargs)


def test_evaluate_config_round_trips_json_and_rejects_unknown_keys() -> None:
    config = EvaluateConfig(labels=("a", "b"), mean=(1.0, 2.0, 3.0), workers=2)
    assert EvaluateConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(UsageError, match=r"unknown EvaluateConfig key\(s\) \['treshold'\]"):
        EvaluateConfig.from_dict({"treshold": 0.5})
