"""Same inputs, same bytes and numbers: conversion, evaluation, training with a seed; versions recorded.

Training is bit-deterministic on CPU here (TF 2.21) once `keras.utils.set_random_seed` has run, so
`tf.config.experimental.enable_op_determinism()` is not needed; the training test would catch a
change. It trains on the bundled ImageNet weights because the tiny random-init model's features are
~1e-12 (every output 0.5): equal results there would prove nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from reliability_support import TINY, copy_xrays, golden, mdx

from mdx.runtime.evaluate import EvaluateConfig, evaluate
from mdx.runtime.files import file_facts

VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8-fallback")


@pytest.mark.tf
def test_convert_same_keras_model_twice_identical_bytes_every_variant(tmp_path: Path,
                                                                      micro_model: dict[str, Path]) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        result = mdx("convert", micro_model["model"], "--size", "16", "--mean", "127.5", "--std", "127.5", "--labels",
                     micro_model["labels"], "--all", "--calibration-dir", micro_model["calibration"],
                     "--calibration-count", "6", "--out", out)
        assert result.exit_code == 0, result.output
    for variant in VARIANTS:
        first, second = ((out / variant / "model.tflite").read_bytes() for out in outs)
        assert first == second, variant
        records = [json.loads((out / variant / "record.json").read_text()) for out in outs]
        assert records[0]["outputs"] == records[1]["outputs"]  # same sha256 and sizes on record
        assert records[0]["versions"]["tensorflow"] and records[0]["versions"]["tf-keras"]
        assert records[0]["machine"]["cpu"] and records[0]["machine"]["python"]


def test_evaluate_same_model_twice_identical_metrics_and_probabilities(tmp_path: Path) -> None:
    data = copy_xrays(tmp_path / "xrays", per_class=4)
    for name in ("binary_fp32", "binary_int8"):
        runs = [evaluate(golden(name), data, EvaluateConfig(n_boot=200, workers=workers)) for workers in (1, 1, 2)]
        for other in runs[1:]:
            assert other.metrics == runs[0].metrics, name  # bootstrap CIs included: they are seeded
            np.testing.assert_array_equal(other.probs, runs[0].probs)
        record = runs[0].to_dict()
        assert record["runtime"]["package"] == "ai-edge-litert" and record["runtime"]["version"][0].isdigit()
        assert record["model"]["sha256"] and record["machine"]["cores"]


def test_mdx_bench_json_records_runtime_version_and_machine(tmp_path: Path, no_probe: None) -> None:
    result = mdx("bench", golden(), "--runs", "3", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["runtime"]["version"][0].isdigit() and record["machine"]["python"]
    assert record["model"]["sha256"] == file_facts(golden())["sha256"]


@pytest.mark.tf
@pytest.mark.slow
def test_train_same_seed_twice_identical_metrics_history_and_weights(tmp_path: Path) -> None:
    from mdx.train.config import TrainConfig
    from mdx.train.fit import train
    from mdx.train.keras_load import load_model
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier

    data = tmp_path / "data"
    copy_xrays(data / "train", per_class=4)
    copy_xrays(data / "test", per_class=2)
    # 64 px: at TINY's 32 px the bundled backbone's features are all zero on these X-rays (Conv_1's folded
    # bias is about -4.8), so the head's kernel gets no gradient and the check below would be vacuous
    config = TrainConfig(**{**TINY, "weights": "bundled", "alpha": 1.0, "input_size": 64})
    runs = [train(data, config, tmp_path / name / "train") for name in ("a", "b")]
    folders = [run.folder for run in runs]
    for name in ("metrics.json", "history.json", "labels.txt", "preprocessing.json"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    weights = [load_model(folder / "model.keras").get_weights() for folder in folders]
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)

    # not vacuous: training moved the head away from its seeded initial weights
    keras.utils.set_random_seed(config.seed)
    backbone, _ = build_backbone(config, data)
    initial = build_classifier(config, 2, backbone).get_layer("probabilities").get_weights()[0]
    trained = load_model(folders[0] / "model.keras").get_layer("probabilities")
    assert not np.array_equal(initial, trained.get_weights()[0])

    record = json.loads((folders[0] / "record.json").read_text())
    assert record["config"]["seed"] == 0
    assert record["versions"]["tensorflow"] and record["versions"]["tf-keras"] and record["versions"]["numpy"]
    assert record["machine"]["cpu"]
