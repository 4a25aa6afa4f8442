"""Latency of one .tflite model on this machine: init, first invoke, and steady-state invoke percentiles.

The timed loop is bare: the input is filled once, then `invoke()` alone is timed with perf_counter_ns,
so the figures are the interpreter's, not numpy's or Python's. Peak RSS is the whole process's
high-water mark (resource.getrusage), so it includes whatever the process imported before.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .configs import JsonConfig, check_threads
from .errors import UsageError
from .files import atomic_write_json, file_facts
from .interpreter import RUNTIMES, RuntimeInfo, load_interpreter, resolve_runtime, validate_model_file
from .machine import machine_facts


@dataclass(frozen=True)
class BenchConfig(JsonConfig):
    """Thread counts to time, warm-up invokes, and at least `runs` timed invokes lasting at least `min_seconds`."""

    threads: tuple[int, ...] = (1,)
    warmup: int = 5
    runs: int = 50
    min_seconds: float = 0.0
    xnnpack: bool = True
    runtime: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", tuple(self.threads))
        if not self.threads:
            raise UsageError("threads is empty; give at least one thread count, e.g. 1,2,4")
        for count in self.threads:
            check_threads(count)
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UsageError(f"warmup={self.warmup!r} is invalid; expected an integer >= 0")
        if not isinstance(self.runs, int) or self.runs < 1:
            raise UsageError(f"runs={self.runs!r} is invalid; expected an integer >= 1")
        if not isinstance(self.min_seconds, (int, float)) or not 0 <= self.min_seconds <= 3600:
            raise UsageError(f"min_seconds={self.min_seconds!r} is invalid; expected 0 to 3600 seconds")
        if self.runtime not in RUNTIMES:
            raise UsageError(f"runtime {self.runtime!r} is unknown; choose one of {', '.join(RUNTIMES)}")


@dataclass(frozen=True)
class ThreadTiming:
    """Timings (milliseconds) at one thread count."""

    threads: int
    init_ms: float
    first_invoke_ms: float
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BenchResult:
    """Per-thread timings plus the model's size, the runtime, peak RSS and the machine."""

    model: dict[str, Any]
    runtime: RuntimeInfo
    config: BenchConfig
    timings: tuple[ThreadTiming, ...]
    peak_rss_mb: float | None
    machine: dict[str, Any] = field(default_factory=machine_facts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": "bench",
            "model": self.model,
            "runtime": self.runtime.to_dict(),
            "config": self.config.to_dict(),
            "timings": [t.to_dict() for t in self.timings],
            "peak_rss_mb": self.peak_rss_mb,
            "machine": self.machine,
        }

    def save(self, path: Path) -> Path:
        """Write the result as JSON to `path`."""
        return atomic_write_json(Path(path), self.to_dict())


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MB, or None where `resource` is missing (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def _fill_inputs(interpreter: Any, rng: np.random.Generator) -> None:
    """Random inputs of the right dtype: timings must not depend on all-zero shortcuts."""
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(dtype)
        else:
            value = rng.uniform(-1.0, 1.0, size=detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)


def _time_threads(model_path: Path, threads: int, config: BenchConfig) -> tuple[ThreadTiming, RuntimeInfo]:
    clock = time.perf_counter_ns
    start = clock()
    interpreter, info = load_interpreter(model_path, config.runtime, threads, config.xnnpack)
    init_ns = clock() - start
    _fill_inputs(interpreter, np.random.default_rng(config.seed))
    invoke = interpreter.invoke
    start = clock()
    invoke()
    first_ns = clock() - start
    for _ in range(config.warmup):
        invoke()
    latencies: list[int] = []
    deadline = clock() + int(config.min_seconds * 1e9)
    while len(latencies) < config.runs or clock() < deadline:
        start = clock()
        invoke()
        latencies.append(clock() - start)
    ms = np.asarray(latencies, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    timing = ThreadTiming(
        threads=threads, init_ms=init_ns / 1e6, first_invoke_ms=first_ns / 1e6, runs=len(latencies),
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
        std_ms=float(ms.std()), min_ms=float(ms.min()), max_ms=float(ms.max()),
    )
    return timing, info


def bench(model_path: Path, config: BenchConfig = BenchConfig()) -> BenchResult:
    """Time `model_path` at each of `config.threads` (a fresh interpreter per thread count).

    Raises:
        ModelLoadError: the model cannot be loaded.
        UsageError: the config or runtime is invalid.
    """
    path = validate_model_file(model_path)
    resolve_runtime(config.runtime)  # import the package before timing: init_ms must not include the import
    runs = [_time_threads(path, threads, config) for threads in config.threads]
    return BenchResult(
        model=file_facts(path, with_gzip=True),
        runtime=runs[0][1],
        config=config,
        timings=tuple(timing for timing, _ in runs),
        peak_rss_mb=peak_rss_mb(),
    )
