"""`mdx audit`: a planted shortcut (a corner marker, a class-dependent size) is warned about, a data set
without one is not; near-duplicates across splits are listed and `--strict` refuses them. No TensorFlow."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mdx.cli import app
from mdx.train.audit import AuditConfig, audit
from mdx.train.shortcuts import cross_validated_balanced_accuracy

PER_CLASS = 20


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random grey image: no two alike, brightness and file size spread the same for every class."""
    coarse = rng.uniform(40, 215, size=(8, 8))
    image = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BILINEAR), dtype=np.float64)
    return np.clip(image + rng.normal(0, 12, size=(size, size)), 0, 255).astype(np.uint8)


def make_set(root: Path, *, marker: bool = False, sizes: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
    """root/{train,test}/{a,b}/; `marker` puts a white square in class b's top-left corner."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", PER_CLASS), ("test", 6)):
        for label, size in zip(("a", "b"), sizes):
            folder = root / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = texture(rng, size)
                if marker and label == "b":
                    pixels[2:9, 2:9] = 255
                Image.fromarray(pixels).save(folder / f"{label}{index}.png")
    return root


def flagged(result) -> set[str]:
    return {s.property for s in result.shortcuts if s.flagged}


def test_audit_without_a_shortcut_warns_of_none(tmp_path: Path) -> None:
    result = audit(make_set(tmp_path / "clean"), AuditConfig())
    assert flagged(result) == set(), [(s.property, s.balanced_accuracy) for s in result.shortcuts]
    assert result.splits == {"train": {"a": PER_CLASS, "b": PER_CLASS}, "test": {"a": 6, "b": 6}}
    assert result.leakage_pairs == 0 and not result.warnings


def test_audit_warns_of_a_corner_marker(tmp_path: Path) -> None:
    result = audit(make_set(tmp_path / "marked", marker=True), AuditConfig())
    assert "corner_highlights" in flagged(result)
    assert any("bright corner pixels" in warning for warning in result.warnings)


def test_audit_warns_of_a_class_dependent_size(tmp_path: Path) -> None:
    result = audit(make_set(tmp_path / "sized", sizes=(96, 128)), AuditConfig())
    assert {"width", "height"} <= flagged(result)
    assert result.properties["train"]["b"]["width"] == {"min": 128, "median": 128, "max": 128}


def test_one_feature_classifier_is_at_chance_on_noise_and_perfect_on_the_label() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 30)
    noise = cross_validated_balanced_accuracy(rng.normal(size=90), labels, categorical=False, seed=0)
    assert noise < 0.6
    assert cross_validated_balanced_accuracy(labels + rng.uniform(0, 0.5, 90), labels, False, 0) >= 0.95


def test_audit_lists_a_near_duplicate_across_splits_and_strict_refuses_it(tmp_path: Path) -> None:
    data = make_set(tmp_path / "leaky")
    copy = Image.open(data / "train" / "a" / "a3.png")
    copy.save(data / "test" / "a" / "copy_of_a3.jpg", quality=90)  # re-encoded: other bytes, same image
    result = audit(data, AuditConfig())
    crossing = [p for p in result.pairs if p.splits == ("train", "test")]
    assert result.leakage_pairs == 1 and crossing[0].first.endswith("a3.png")
    runner = CliRunner()
    done = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "run"), "--strict"])
    assert done.exit_code == 1, done.output
    error = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "copy_of_a3.jpg" in error[0] and "--strict" in error[0], done.output
    report = json.loads((tmp_path / "run" / "audit" / "audit.json").read_text())
    assert report["leakage_pairs"] == 1


def test_mdx_audit_writes_json_and_record_and_prints_the_table(tmp_path: Path) -> None:
    data = make_set(tmp_path / "data", sizes=(96, 128))
    done = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "run")], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "original width" in done.output and "warning: shortcut: the original width" in done.output
    record = json.loads((tmp_path / "run" / "audit" / "record.json").read_text())
    assert record["stage"] == "audit" and "width" in record["metrics"]["shortcuts"]


def test_audit_of_an_unsplit_folder_and_an_unreadable_file(tmp_path: Path) -> None:
    data = make_set(tmp_path / "flat") / "train"
    (data / "a" / "broken.png").write_bytes(b"not a png")
    result = audit(data, AuditConfig())
    assert set(result.splits) == {"all"}
    assert [path for path, _ in result.unreadable] == [str(data / "a" / "broken.png")]
    assert "broken.png: not a readable image" in result.unreadable[0][1]


def test_audit_runs_without_tensorflow() -> None:
    assert "tensorflow" not in sys.modules, "importing mdx.train.audit pulled in TensorFlow"


@pytest.mark.parametrize("distance", [-2, 65])
def test_audit_refuses_a_duplicate_distance_out_of_range(tmp_path: Path, distance: int) -> None:
    done = CliRunner().invoke(app, ["audit", str(tmp_path), "--duplicate-distance", str(distance)])
    assert done.exit_code == 2 and "--duplicate-distance" in done.output


def test_audit_warns_when_a_class_of_test_comes_from_elsewhere(tmp_path: Path) -> None:
    """Train's class b is 96 px, test's class b 128 px (as the MRI set's glioma images: 512 px in
    Training/, 175-640 px in Testing/): a split shift, not a shortcut inside train."""
    data = make_set(tmp_path / "shifted")
    for index, file in enumerate(sorted((data / "test" / "b").iterdir())):
        Image.open(file).resize((128, 128)).save(file)
    result = audit(data, AuditConfig())
    shifted = {(s.label, s.property) for s in result.shifts if s.flagged}
    assert ("b", "width") in shifted and not any(label == "a" for label, _ in shifted), shifted
    assert any(w.startswith("split shift: b's original width (train 96-96") for w in result.warnings)
    assert not any(s.flagged for s in audit(make_set(tmp_path / "same", seed=3), AuditConfig()).shifts)


def test_audit_labels_lists_the_planted_label_errors_by_cleanlab(tmp_path: Path) -> None:
    """A run's FP32 model (the golden binary model) on random images; each image filed under the class
    the model gives it, except four confident ones filed under the other class: cleanlab names those four."""
    pytest.importorskip("cleanlab")
    from mdx.runtime.evaluate import EvaluateConfig, evaluate

    golden = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "binary_fp32"
    run = tmp_path / "run"
    shutil.copytree(golden, run / "convert" / "fp32")
    rng = np.random.default_rng(5)
    pool = tmp_path / "pool" / "NORMAL"
    pool.mkdir(parents=True)
    (tmp_path / "pool" / "PNEUMONIA").mkdir()
    for index in range(120):  # solid colours: the model splits them about 50:70; the folders here are arbitrary
        folder = pool if index % 2 else tmp_path / "pool" / "PNEUMONIA"
        colour = rng.integers(0, 256, size=(1, 1, 3), dtype=np.uint8)
        Image.fromarray(np.broadcast_to(colour, (16, 16, 3)).copy()).save(folder / f"img{index:03d}.png")
    scored = evaluate(run / "convert" / "fp32" / "model.tflite", tmp_path / "pool", EvaluateConfig())
    predicted = scored.probs.argmax(axis=1)
    confidence = scored.probs.max(axis=1)
    planted = set(np.argsort(-confidence)[:4].tolist())
    classes = ("NORMAL", "PNEUMONIA")
    for index, path in enumerate(scored.paths):
        label = classes[1 - predicted[index]] if index in planted else classes[predicted[index]]
        target = tmp_path / "data" / "test" / label / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert len(set(predicted)) == 2, "the golden model gives one class to every image; choose other images"
    result = audit(tmp_path / "data", AuditConfig(labels_run=str(run), duplicate_distance=-1))
    found = {Path(issue.path).name for issue in result.label_issues}
    assert found == {Path(scored.paths[i]).name for i in planted}, (found, result.label_issues)
    assert any("may carry the wrong class (cleanlab)" in w for w in result.warnings)


def test_audit_labels_without_a_converted_run_says_what_to_run(tmp_path: Path) -> None:
    data = make_set(tmp_path / "data")
    done = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "o"), "--labels", str(tmp_path / "nope")])
    assert done.exit_code == 1 and "mdx convert RUN" in done.output, done.output


def test_audit_reports_a_class_missing_from_a_split_instead_of_stopping(tmp_path: Path) -> None:
    data = make_set(tmp_path / "data")
    shutil.rmtree(data / "test" / "b")
    result = audit(data, AuditConfig(duplicate_distance=-1))
    assert result.splits["test"] == {"a": 6}
    assert any(w.endswith("test: no images of class b; every split needs every class") for w in result.warnings)


def test_audit_over_worker_processes_equals_the_serial_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mdx.train.audit as stage

    data = make_set(tmp_path / "data", marker=True)
    serial = audit(data, AuditConfig())
    monkeypatch.setattr(stage, "PARALLEL_FROM", 1)
    monkeypatch.setattr(stage.os, "cpu_count", lambda: 2)
    parallel = audit(data, AuditConfig())
    assert dataclasses.replace(parallel, seconds=0) == dataclasses.replace(serial, seconds=0)
