"""bench: a bare timing loop per thread count, with sizes, peak RSS, machine and runtime recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdx.runtime.bench import BenchConfig, bench
from mdx.runtime.errors import ModelLoadError, UsageError


def test_bench_two_thread_counts_report_ordered_percentiles(model_path, tmp_path: Path) -> None:
    result = bench(model_path("binary_int8"), BenchConfig(threads=(1, 2), warmup=1, runs=20))
    assert [t.threads for t in result.timings] == [1, 2]
    for timing in result.timings:
        assert timing.runs == 20
        assert 0 < timing.min_ms <= timing.p50_ms <= timing.p90_ms <= timing.p99_ms <= timing.max_ms
        assert timing.init_ms > 0 and timing.first_invoke_ms > 0
    payload = result.to_dict()
    assert payload["model"]["bytes"] == model_path("binary_int8").stat().st_size
    assert 0 < payload["model"]["gzip_bytes"] < payload["model"]["bytes"]
    assert payload["runtime"]["package"] == "ai-edge-litert"
    assert payload["peak_rss_mb"] > 0 and payload["machine"]["cores"] >= 1
    result.save(tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text())["config"]["threads"] == [1, 2]


def test_bench_min_seconds_keeps_timing_past_runs(model_path) -> None:
    result = bench(model_path("binary_fp32"), BenchConfig(warmup=0, runs=1, min_seconds=0.05, xnnpack=False))
    assert result.timings[0].runs > 1


def test_bench_bad_model_refused(tmp_path: Path) -> None:
    (tmp_path / "x.tflite").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"x\.tflite: model file is empty"):
        bench(tmp_path / "x.tflite", BenchConfig())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": ()}, r"threads is empty; give at least one thread count"),
        ({"threads": (1, 0)}, r"threads=0 is invalid; expected a positive integer"),
        ({"runs": 0}, r"runs=0 is invalid; expected an integer >= 1"),
        ({"warmup": -1}, r"warmup=-1 is invalid"),
        ({"min_seconds": -1.0}, r"min_seconds=-1\.0 is invalid"),
        ({"runtime": "gpu"}, r"runtime 'gpu' is unknown"),
    ],
)
def test_bench_config_invalid_values_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BenchConfig(**kwargs)
