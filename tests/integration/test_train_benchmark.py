"""benchmarks/train_chest_xray.py on a small real subset: arms and seeds trained in separate sittings share one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parent.parent.parent
# alpha 1.0: the bundled weights exist only at that width
TINY = {"input_size": 32, "epochs_frozen": 1, "epochs_finetune": 0, "batch_size": 8, "bootstrap": 20,
        "val_fraction": 0.25, "patience": 1}
TINY_RANDOM_INIT = {"epochs_frozen": 0, "epochs_finetune": 1, "finetune_blocks": 99}


@pytest.fixture(scope="module")
def benchmark(load_script):
    return load_script(REPO / "benchmarks" / "train_chest_xray.py")


def test_train_benchmark_second_sitting_keeps_first_arm_and_records_seed(tmp_path: Path, xray_subset, benchmark) -> None:
    config, random_init, out = tmp_path / "config.json", tmp_path / "random_init.json", tmp_path / "result.json"
    config.write_text(json.dumps(TINY))
    random_init.write_text(json.dumps(TINY_RANDOM_INIT))
    common = ["--data", str(xray_subset(8)), "--config", str(config), "--random-init-config", str(random_init),
              "--runs", str(tmp_path / "runs"), "--out", str(out)]

    assert benchmark.main([*common, "--arms", "bundled"]) == 0
    first = json.loads(out.read_text())["results"]["bundled"]
    older = json.loads(out.read_text())  # as a file written before rows kept their epochs
    del older["results"]["bundled"]["epochs"]
    out.write_text(json.dumps(older))
    assert benchmark.main([*common, "--arms", "none", "--seed", "1"]) == 0

    results = json.loads(out.read_text())["results"]
    assert set(results) == {"bundled", "none seed 1"}
    assert results["bundled"] == first  # the first sitting's row, its epochs read back from its run's history
    assert results["none seed 1"]["config"]["seed"] == 1 and results["none seed 1"]["config"]["weights"] == "none"
    assert results["none seed 1"]["config"]["finetune_blocks"] == 99
    assert "--seed 1" in results["none seed 1"]["command"]
    for row in results.values():
        assert set(row["test"]["accuracy"]) == {"value", "ci95"} and row["wall_seconds"] > 0
        assert row["epochs"]["run"] == 1 and len(row["epochs"]["val_auc"]) == 1
        assert row["versions"]["tensorflow"] and row["machine"]["cores"] >= 1
    assert (tmp_path / "runs" / "bench-train-none-seed-1" / "train" / "model.keras").is_file()

    # a sitting with another recipe drops the rows that recipe did not train, rather than tabulate them together
    config.write_text(json.dumps({**TINY, "dropout": 0.5}))
    assert benchmark.main([*common, "--arms", "bundled", "--seed", "2"]) == 0
    assert set(json.loads(out.read_text())["results"]) == {"bundled seed 2"}


def test_train_benchmark_unknown_arm_is_refused_by_name(tmp_path: Path, benchmark) -> None:
    with pytest.raises(SystemExit, match="unknown arm.*'imagenet'.*use bundled and/or none"):
        benchmark.main(["--arms", "bundled,imagenet", "--out", str(tmp_path / "result.json")])
    assert not (tmp_path / "result.json").exists()


def test_train_benchmark_set_overrides_every_arm_and_nests_augmentation(tmp_path: Path, xray_subset, benchmark) -> None:
    config, out = tmp_path / "config.json", tmp_path / "result.json"
    config.write_text(json.dumps({**TINY, "augmentation": {"zoom": 0.15, "stretch": 0.2}}))
    assert benchmark.main(["--data", str(xray_subset(8)), "--config", str(config), "--runs", str(tmp_path / "runs"),
                              "--out", str(out), "--set", "dropout=0.5", "--set", "augmentation.shift=0.1"]) == 0
    row = json.loads(out.read_text())["results"]["bundled"]
    assert row["config"]["dropout"] == 0.5
    augmentation = row["config"]["augmentation"]
    assert (augmentation["zoom"], augmentation["stretch"], augmentation["shift"]) == (0.15, 0.2, 0.1)


def test_train_benchmark_bad_set_is_refused_by_name(tmp_path: Path, benchmark) -> None:
    with pytest.raises(SystemExit, match=r"unknown TrainConfig key\(s\) \['dropuot'\]"):
        benchmark.main(["--set", "dropuot=0.5", "--out", str(tmp_path / "result.json")])
    with pytest.raises(SystemExit, match=r"--set 'dropout': expected KEY=VALUE"):
        benchmark.main(["--set", "dropout", "--out", str(tmp_path / "result.json")])
    assert not (tmp_path / "result.json").exists()
