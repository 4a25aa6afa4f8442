"""Models and labels that mdx did not make: Google's ImageNet MobileNetV2 and its label file (two classes
named "crane"), per-tensor uint8, int16x8, float models with no metadata (a --preset), logits outputs,
through predict, evaluate, check, bench and a copied `runtime/` folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.runtime.classifier import TfliteClassifier
from mdx.runtime.errors import HarnessWarning, UsageError
from mdx.runtime.model_info import distinct_labels, load_model_info, read_labels_file

ROOT = Path(__file__).resolve().parents[2]
IMAGENET = ROOT / "data" / "imagenet_mobilenet_v2"
IMAGENET_MODEL = IMAGENET / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
IMAGENET_LABELS = IMAGENET / "imagenet_labels.txt"
EXPECTED_TOP1 = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "bird.bmp": "chickadee"}
FOREIGN = ("foreign_uint8_pertensor", "foreign_float_bare", "foreign_int16x8")
runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_distinct_labels_repeated_names_get_their_class_index() -> None:
    assert distinct_labels(("crane", "cat", "crane")) == (("crane (0)", "cat", "crane (2)"), ("crane",))
    assert distinct_labels(("a", "b")) == (("a", "b"), ())
    # a name that already looks like a suffixed one stays apart too
    shown, _ = distinct_labels(("x (2)", "y", "x", "x"))
    assert len(set(shown)) == 4


def test_read_labels_file_imagenet_keeps_both_cranes() -> None:
    labels = read_labels_file(IMAGENET_LABELS)
    assert len(labels) == 1001 and labels.count("crane") == 2  # the file as Google ships it, background first


def test_load_model_info_repeated_labels_warned_once_and_shown_with_index(model_path) -> None:
    with pytest.warns(HarnessWarning, match=r"label\(s\) \['crane'\] name more than one class; shown with their "
                                            r"class index \(crane \(1\), crane \(2\)\)"):
        info = load_model_info(model_path("foreign_uint8_pertensor"))
    assert info.labels == ("cat", "crane (1)", "crane (2)")
    assert info.to_dict()["warnings"] == list(info.warnings) and len(info.warnings) == 1


def test_load_model_info_unique_labels_no_warning(model_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", HarnessWarning)
        assert load_model_info(model_path("three_int8")).warnings == ()


@pytest.mark.parametrize("name", FOREIGN)
def test_foreign_golden_model_outputs_equal_tf_interpreter(model_path, golden, name: str) -> None:
    classifier = TfliteClassifier(model_path(name), runtime="litert")
    probs = classifier.predict_proba(golden["inputs"])
    step = classifier.output_quantization[0] or 0.0
    # uint8: the same integer arithmetic as TF's interpreter, within one output step (XNNPACK rounds its own
    # way); int16x8 runs its reference kernels; float within float noise
    np.testing.assert_allclose(probs, golden[name], rtol=0, atol=max(step, 1e-5))
    assert classifier.output_kind == "probabilities"


def test_mdx_predict_imagenet_model_bundled_labels_expected_top1() -> None:
    images = [IMAGENET / name for name in EXPECTED_TOP1]
    result = _run("predict", IMAGENET_MODEL, *images, "--labels", IMAGENET_LABELS, "--json", "/dev/stdout")
    assert result.exit_code == 0, result.output
    assert "warning: --labels: label(s) ['crane'] name more than one class" in result.output
    for expected in EXPECTED_TOP1.values():
        assert expected in result.output


def test_runtime_module_from_copied_folder_imagenet_expected_top1(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "runtime", tmp_path / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    images = [str(IMAGENET / name) for name in EXPECTED_TOP1]
    done = subprocess.run([sys.executable, "-m", "runtime", "predict", str(IMAGENET_MODEL), *images,
                           "--labels", str(IMAGENET_LABELS)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.split("  ")[0] in images]
    assert [row.split("  ")[0] for row in rows] == images
    for row, expected in zip(rows, EXPECTED_TOP1.values()):
        assert f"  {expected}  " in row, row
    assert "warning: --labels: label(s) ['crane'] name more than one class" in done.stderr


def test_mdx_predict_float_model_without_metadata_needs_preset(model_path, xray_folder: Path) -> None:
    image = next((xray_folder / "NORMAL").iterdir())
    bare = model_path("foreign_float_bare")
    refused = _run("predict", bare, image, "--labels", "a,b,c")
    assert refused.exit_code == 2
    assert "neither its metadata nor a record.json beside it records one; pass --preset tf|unit|imagenet or " \
           "--mean --std" in refused.output
    done = _run("predict", bare, image, "--labels", "a,b,c", "--preset", "tf", "--top", "3", "--json", "/dev/stdout")
    assert done.exit_code == 0, done.output


def test_load_model_info_preset_size_from_the_model(model_path) -> None:
    info = load_model_info(model_path("foreign_float_bare"), {"mean": (0, 0, 0), "std": (255, 255, 255)}, ["a", "b", "c"],
                           preset="unit", input_size=16)
    assert info.preprocessing is not None and info.preprocessing.size == 16
    assert "preprocessing: --preset unit, size from the model's input" in info.source


def test_mdx_evaluate_check_bench_foreign_models(model_path, golden_npz: Path, xray_folder: Path) -> None:
    for name in FOREIGN:
        labels = [] if name == "foreign_uint8_pertensor" else ["--labels", "a,b,c" if "float" in name else "a,b"]
        evaluated = _run("evaluate", model_path(name), golden_npz, *labels, "--n-boot", "0")
        assert evaluated.exit_code == 0, (name, evaluated.output)
        bench = _run("bench", model_path(name), "--runs", "3", "--warmup", "1")
        assert bench.exit_code == 0, (name, bench.output)
    on_images = _run("evaluate", model_path("foreign_int16x8"), xray_folder, "--labels", "NORMAL,PNEUMONIA",
                     "--preset", "tf", "--n-boot", "0")
    assert on_images.exit_code == 0, on_images.output
    # the same Keras model twice: uint8 per-tensor against float; loose limits, the models are tiny
    checked = _run("check", model_path("foreign_uint8_pertensor"), golden_npz, "--reference",
                   model_path("foreign_float_bare"), "--n-boot", "0", "--min-agreement", "0.75",
                   "--max-acc-drop", "25", "--max-auc-drop", "0.5")
    assert checked.exit_code == 0, checked.output


def test_mdx_predict_logits_model_said(model_path, xray_folder: Path) -> None:
    image = next((xray_folder / "NORMAL").iterdir())
    result = _run("predict", model_path("binary_logits"), image)
    assert result.exit_code == 0, result.output
    assert "outputs logits (softmax applied)" in result.output
    assert "outputs logits" not in _run("predict", model_path("binary_fp32"), image).output


@pytest.mark.parametrize(("args", "message"), [
    (("--labels", "a,b"), r"outputs 3 classes but 2 labels were given"),
    (("--preset", "imagenet"), (r"--preset imagenet \(mean .*\) contradicts .*foreign_uint8_pertensor.*model\.tflite "
                                r"\(metadata\) \(mean \[127\.5, 127\.5, 127\.5\].*drop --preset")),
    (("--preset", "tf", "--mean", "0"), r"--preset tf sets the mean and std; drop --preset or --mean/--std"),
    (("--preset", "caffe"), r"--preset 'caffe' is unknown; choose one of tf, unit, imagenet"),
])
def test_mdx_predict_bad_combination_one_line_exit_2(model_path, xray_folder: Path, args, message: str) -> None:
    image = next((xray_folder / "NORMAL").iterdir())
    result = _run("predict", model_path("foreign_uint8_pertensor"), image, *args)
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in result.output
    assert re.search(message, result.output.replace("\n", "")), result.output


def test_preset_unknown_refused_by_config() -> None:
    from mdx.runtime.evaluate import EvaluateConfig

    with pytest.raises(UsageError, match=r"--preset 'x' is unknown"):
        EvaluateConfig(preset="x")
