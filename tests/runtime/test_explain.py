"""Occlusion maps: the pure core on a model whose answer is known, the map comparisons, and `explain` end to end
on the golden models (`python -m runtime explain`, `mdx explain`, `mdx predict --explain`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.runtime.errors import UsageError
from mdx.runtime.explain import ExplainConfig, explain_images, output_stems
from mdx.runtime.occlusion import (
    Occlusion,
    border_share,
    default_occlusion,
    occlusion_map,
    positions,
    spearman,
    top_iou,
    top_mask,
)

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
runner = CliRunner()


def _region_model(y0: int, x0: int, side: int):
    """P(class 1) = sigmoid of the mean of a side x side region at (y0, x0): only that region matters."""

    def predict(inputs: np.ndarray) -> np.ndarray:
        z = inputs[:, y0 : y0 + side, x0 : x0 + side].mean(axis=(1, 2, 3)) * 4.0
        p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)

    return predict


def test_occlusion_map_region_model_peaks_on_region_only() -> None:
    image = np.ones((32, 32, 3), dtype=np.float32)
    heatmap, base = occlusion_map(_region_model(8, 20, 6), image, 1, Occlusion(patch=4, stride=2, batch=7))
    assert heatmap.shape == (32, 32) and base == pytest.approx(1 / (1 + np.exp(-4.0)))
    y, x = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert 8 <= y < 14 and 20 <= x < 26
    far = np.ones((32, 32), dtype=bool)
    far[4:18, 16:30] = False  # no patch reaching the region covers these pixels
    assert np.all(heatmap[far] == 0.0) and heatmap.max() > 0.05


def test_occlusion_map_batch_size_does_not_change_map() -> None:
    image = np.random.default_rng(0).uniform(-1, 1, (20, 20, 3)).astype(np.float32)
    model = _region_model(3, 3, 9)
    maps = [occlusion_map(model, image, 0, Occlusion(patch=5, stride=3, batch=b))[0] for b in (1, 4, 64)]
    assert np.array_equal(maps[0], maps[1]) and np.array_equal(maps[0], maps[2])


def test_positions_last_patch_touches_the_edge() -> None:
    assert positions(10, 4, 4) == [0, 4, 6]
    assert positions(12, 4, 4) == [0, 4, 8]
    assert default_occlusion(224) == Occlusion(patch=32, stride=32)


@pytest.mark.parametrize("kwargs, message", [
    ({"patch": 0, "stride": 1}, "patch=0 is invalid"),
    ({"patch": 4, "stride": 5}, "stride 5 exceeds the patch 4"),
    ({"patch": 4, "stride": 2, "fill": float("nan")}, "fill nan is invalid"),
])
def test_occlusion_bad_settings_raise(kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        Occlusion(**kwargs)


def test_occlusion_patch_larger_than_image_raises() -> None:
    with pytest.raises(UsageError, match="patch 40 px is larger than the 32x32 input; pass a patch of at most 32"):
        occlusion_map(_region_model(0, 0, 4), np.zeros((32, 32, 3), np.float32), 1, Occlusion(40, 8))


def test_spearman_ties_reversal_and_constant() -> None:
    a = np.array([[1.0, 2.0], [2.0, 3.0]])
    assert spearman(a, a * 10 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
    assert spearman(a, np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.9486832980505138)
    assert spearman(np.zeros(4), np.zeros(4)) == 1.0 and spearman(np.zeros(4), np.arange(4.0)) == 0.0


def test_top_iou_same_disjoint_and_ties() -> None:
    a = np.arange(100.0).reshape(10, 10)
    assert top_iou(a, a) == 1.0 and top_iou(a, -a) == 0.0
    assert top_mask(np.zeros((10, 10))).sum() == 10  # ties: the first 10 pixels, never more


def test_border_share_uniform_corner_and_centre() -> None:
    assert border_share(np.ones((50, 50))) == pytest.approx(1 - 0.8 ** 2)
    corner, centre = np.zeros((50, 50)), np.zeros((50, 50))
    corner[:4, :4] = 1.0
    centre[20:30, 20:30] = 1.0
    assert border_share(corner) == 1.0 and border_share(centre) == 0.0
    assert np.isnan(border_share(-np.ones((50, 50))))


def test_explain_images_golden_int8_writes_overlays_and_maps(model_path, xray_folder, tmp_path: Path) -> None:
    images = sorted((xray_folder / "NORMAL").iterdir())[:2]
    result = explain_images(model_path("binary_int8"), images, explain=ExplainConfig(patch=4, stride=2))
    assert [e.heatmap.shape for e in result.explanations] == [(16, 16), (16, 16)]
    assert all(e.target in ("NORMAL", "PNEUMONIA") for e in result.explanations)
    assert any(np.abs(e.heatmap).max() > 0 for e in result.explanations)  # int8 steps are visible in the map
    written = result.save(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted([f"{i.stem}{s}" for i in images for s in (".png", ".npy")] + ["explain.json"])
    assert np.array_equal(np.load(tmp_path / "out" / f"{images[0].stem}.npy"), result.explanations[0].heatmap)
    from PIL import Image

    with Image.open(tmp_path / "out" / f"{images[0].stem}.png") as png:
        assert png.size == (256, 256 + 22)
    with pytest.raises(UsageError, match="explain.json already exists; pass --overwrite"):
        result.save(tmp_path / "out")


def test_explain_named_target_and_unknown_target(model_path, xray_folder) -> None:
    image = min((xray_folder / "NORMAL").iterdir())
    result = explain_images(model_path("binary_fp32"), [image], explain=ExplainConfig(target="NORMAL"))
    assert result.explanations[0].target == "NORMAL"
    with pytest.raises(UsageError, match=r"--target 'CAT' is not one of the model's classes \['NORMAL', 'PNEUMONIA'\]"):
        explain_images(model_path("binary_fp32"), [image], explain=ExplainConfig(target="CAT"))


def test_output_stems_numbered_only_on_collision() -> None:
    assert output_stems(["a/x.png", "b/y.png"]) == ["x", "y"]
    assert output_stems(["a/x.png", "b/x.jpeg"]) == ["000_x", "001_x"]


def test_python_m_runtime_explain_copied_folder(tmp_path: Path, model_path, xray_folder) -> None:
    """From a copied runtime/ with mdx blocked: overlays need Pillow only."""
    shutil.copytree(RUNTIME_DIR, tmp_path / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_path("binary_int8").parent, tmp_path / "model")
    image = min((xray_folder / "PNEUMONIA").iterdir())
    script = ("import sys, runpy; sys.path.insert(0, '.'); sys.modules['mdx'] = None; sys.modules['tensorflow'] = None; "
              f"sys.argv = ['runtime', 'explain', 'model/model.tflite', {str(image)!r}, '--out', 'maps']; "
              "runpy.run_module('runtime', run_name='__main__')")
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "maps" / f"{image.stem}.png").is_file() and (tmp_path / "maps" / f"{image.stem}.npy").is_file()
    assert json.loads((tmp_path / "maps" / "explain.json").read_text())["occlusion"]["patch"] == 2
    assert "border share" in done.stdout


def test_mdx_explain_and_predict_explain(model_path, xray_folder, tmp_path: Path) -> None:
    image = min((xray_folder / "NORMAL").iterdir())
    done = runner.invoke(app, ["explain", str(model_path("binary_int8")), str(image), "--out", str(tmp_path / "a"),
                               "--patch", "4", "--stride", "2", "--json", str(tmp_path / "a.json")])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "a.json").read_text())["occlusion"] == {"patch": 4, "stride": 2, "fill": 0.0, "batch": 32}
    done = runner.invoke(app, ["predict", str(model_path("binary_fp32")), str(image), "--explain", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    assert "top 1" in done.output and (tmp_path / "b" / f"{image.stem}.png").is_file()


@pytest.mark.parametrize("extra, code, message", [
    (["--patch", "40"], 2, "error: occlusion patch 40 px is larger than the 16x16 input"),
    (["--target", "CAT"], 2, "error: --target 'CAT' is not one of the model's classes"),
    (["--fill", "300"], 2, "error: --fill 300.0 is invalid; expected a pixel value from 0 to 255"),
])
def test_mdx_explain_bad_options_one_line(model_path, xray_folder, tmp_path: Path, extra, code, message) -> None:
    image = min((xray_folder / "NORMAL").iterdir())
    done = runner.invoke(app, ["explain", str(model_path("binary_int8")), str(image), "--out", str(tmp_path), *extra])
    assert done.exit_code == code, done.output
    assert done.output.strip().splitlines()[-1].startswith(message) and "Traceback" not in done.output


def test_mdx_explain_not_an_image_one_line(model_path, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    done = runner.invoke(app, ["explain", str(model_path("binary_int8")), str(text), "--out", str(tmp_path / "o")])
    assert done.exit_code == 1
    assert f"error: {text}: not a readable image" in done.output and "Traceback" not in done.output


@pytest.mark.parametrize("model, extra, message", [
    ("tflite", ["--method", "gradcam"], "error: --method gradcam needs a Keras model (.keras, or a run's train/ folder), not "),
    ("tflite", ["--method", "saliency"], "error: --method 'saliency' is unknown; expected one of occlusion, gradcam"),
    ("keras", ["--method", "gradcam", "--patch", "4", "--workers", "2"],
     "error: --patch, --workers set occlusion or the interpreter, which --method gradcam does not use"),
])
def test_mdx_explain_gradcam_bad_options_exit_2(model_path, xray_folder, tmp_path: Path, model, extra, message) -> None:
    image = min((xray_folder / "NORMAL").iterdir())
    path = model_path("binary_fp32") if model == "tflite" else tmp_path / "model.keras"
    done = runner.invoke(app, ["explain", str(path), str(image), "--out", str(tmp_path / "o"), *extra])
    assert done.exit_code == 2, done.output
    assert done.output.strip().splitlines()[-1].startswith(message) and "Traceback" not in done.output
    assert not (tmp_path / "o").exists()


def test_mdx_explain_gradcam_without_tensorflow_or_model_one_line(xray_folder, tmp_path: Path, monkeypatch) -> None:
    import mdx.explain_keras

    image = min((xray_folder / "NORMAL").iterdir())
    missing = tmp_path / "model.keras"
    done = runner.invoke(app, ["explain", str(missing), str(image), "--out", str(tmp_path / "o"), "--method", "gradcam"])
    assert done.exit_code == 1, done.output
    assert done.output.strip().splitlines()[-1] == (f"error: {missing}: no such file; pass an existing .keras model "
                                                     "(e.g. from `mdx import-weights`)")
    monkeypatch.setattr(mdx.explain_keras, "has_tensorflow", lambda: False)
    done = runner.invoke(app, ["explain", str(missing), str(image), "--out", str(tmp_path / "o"), "--method", "gradcam"])
    assert done.exit_code == 2, done.output
    assert done.output.strip().splitlines()[-1] == (
        f"error: --method gradcam on {missing} needs TensorFlow and tf-keras, which this install lacks; "
        "pip install 'mdx[train]', or explain the converted .tflite with --method occlusion")


def test_check_explanations_identical_models_agree(model_path, xray_folder) -> None:
    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.explain_parity import ExplanationCheck

    result = check(model_path("binary_fp32"), model_path("binary_fp32"), xray_folder, EvaluateConfig(n_boot=0),
                   explanations=ExplanationCheck(sample=4, patch=4, stride=2, min_agreement=0.99))
    explanation = result.to_dict()["explanation"]
    assert result.passed and explanation["n"] == 4
    assert [image["label"] for image in explanation["images"]] == ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
    assert explanation["spearman"]["min"] == 1.0 and explanation["top10_iou"]["min"] == 1.0
    assert explanation["border_share"]["candidate"] == explanation["border_share"]["reference"]
    assert set(explanation["border_share"]["candidate_by_class"]) == {"NORMAL", "PNEUMONIA"}


def test_mdx_check_explanation_gate_exits_3(model_path, xray_folder, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    done = runner.invoke(app, ["check", str(model_path("binary_swapped")), str(xray_folder), "--reference",
                               str(model_path("binary_fp32")), "--n-boot", "0", "--min-agreement", "0", "--max-acc-drop",
                               "100", "--max-auc-drop", "1", "--min-explanation-agreement", "0.5", "--json", str(out)])
    assert done.exit_code == 3, done.output
    assert "explanation agreement failed on 6 images: map Spearman mean -1.000 (limit 0.5, missed by 1.5" in done.output
    assert "map top-10% IoU" in done.output
    result = json.loads(out.read_text())
    assert result["passed"] is False and result["parity"]["passed"] is True and result["explanation"]["passed"] is False


@pytest.mark.parametrize("extra, message", [
    (["--min-explanation-agreement", "2"], "error: --min-explanation-agreement 2.0 is invalid"),
    (["--explain-sample", "2", "--patch", "17"], "error: occlusion patch 17 px is larger than the 16x16 input"),
])
def test_mdx_check_bad_explanation_options_exit_2(model_path, xray_folder, extra, message) -> None:
    done = runner.invoke(app, ["check", str(model_path("binary_int8")), str(xray_folder), "--reference",
                               str(model_path("binary_fp32")), "--n-boot", "0", *extra])
    assert done.exit_code == 2, done.output
    assert done.output.strip().splitlines()[-1].startswith(message)


def test_python_m_runtime_check_explanations(model_path, golden_npz, capsys) -> None:
    from mdx.runtime.cli import main

    code = main(["check", str(model_path("binary_int8")), str(golden_npz), "--reference", str(model_path("binary_fp32")),
                 "--n-boot", "0", "--explain-sample", "4", "--patch", "4", "--stride", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "map Spearman (n=4)" in captured.out and "explanation agreement measured on 4 images" in captured.out


def test_explanation_parity_one_class_above_border_limit_is_flagged() -> None:
    from mdx.runtime.explain_parity import ExplanationCheck, ExplanationParity
    from mdx.runtime.occlusion import Occlusion

    def parity(border: tuple[float, ...]) -> ExplanationParity:
        return ExplanationParity(config=ExplanationCheck(sample=4), occlusion=Occlusion(patch=4, stride=4),
                                 class_names=("A", "B"), paths=("a1", "a2", "b1", "b2"), labels=(0, 0, 1, 1),
                                 targets=(0, 0, 1, 1), spearman=(1.0,) * 4, iou=(1.0,) * 4, candidate_border=border,
                                 reference_border=(0.3,) * 4)

    flagged = parity((0.9, 0.8, 0.1, 0.1))  # overall 0.475 is under the 0.5 limit; class A's 0.85 is not
    assert flagged.shortcut and flagged.shortcut_classes() == ("A",)
    assert flagged.to_dict()["border_share"]["shortcut_classes"] == ["A"]
    assert "above the limit in A 0.85" in (flagged.shortcut_warning() or "")
    even = parity((0.4, 0.4, 0.3, 0.3))
    assert not even.shortcut and even.shortcut_warning() is None and even.shortcut_classes() == ()
