"""Bounded fuzzing of the .tflite loader and the image decoder, and why models are probed first.

A mutated 2 KB model can segfault ai-edge-litert inside allocate_tensors (fixtures/segv_allocate.tflite,
found by this kind of fuzzing) or make it allocate 12 GB (fixtures/heap_bomb.tflite). No `except`
survives a segfault, so every command probes a model in a subprocess (with a capped heap) before
loading it in-process. Each fuzz test stays under ~20 s: max_examples is small and the deadline off.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_support import FIXTURES, GOLDEN, REPO, golden, real_jpeg_bytes

from mdx.runtime.errors import InputDataError, ModelLoadError
from mdx.runtime.images import load_image
from mdx.runtime.interpreter import RuntimeInfo, load_interpreter, probe_loadable

MODELS = ("binary_fp32", "binary_int8", "binary_uint8", "three_int8")
JPEG = real_jpeg_bytes()


def _png_of(jpeg: bytes) -> bytes:
    """The same X-ray as PNG bytes (written by Pillow's encoder, so a real PNG)."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("L").save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png_of(JPEG)

mutations = st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=4)), min_size=1, max_size=4)


def mutate(data: bytes, changes: list[tuple[int, bytes]], keep: int | None = None) -> bytes:
    """Overwrite bytes at (position mod length); then cut to `keep` bytes when given."""
    out = bytearray(data)
    for position, chunk in changes:
        at = position % len(out)
        out[at : at + len(chunk)] = chunk
    return bytes(out[:keep] if keep else out)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(MODELS), changes=mutations, keep=st.none() | st.integers(8, 4096))
@example(name="binary_uint8", changes=[(1257, b"\xff\xff\xff\xff")], keep=None)  # segfaulted litert 2.3.0
@example(name="binary_fp32", changes=[(1688, bytes([0o212, 0o202, 0o52, 0o60]))], keep=None)  # asked for 12 GB
def test_probe_then_load_mutated_tflite_never_crashes_caller(tmp_path: Path, name: str,
                                                             changes: list[tuple[int, bytes]], keep: int | None) -> None:
    """What every command does: probe in a subprocess; load in-process only what the probe ran."""
    model = tmp_path / "mutant.tflite"
    model.write_bytes(mutate((GOLDEN / name / "model.tflite").read_bytes(), changes, keep))
    try:
        info = probe_loadable(model, timeout=30)
    except ModelLoadError as exc:
        assert str(model) in str(exc) and "\n" not in str(exc)
        return
    assert isinstance(info, RuntimeInfo)
    interpreter, _ = load_interpreter(model)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()


@settings(max_examples=1000, deadline=None, database=None)
@given(base=st.sampled_from(["jpeg", "png"]), changes=mutations, keep=st.none() | st.integers(0, 6000))
def test_load_image_mutated_bytes_rgb_or_input_data_error(base: str, changes: list[tuple[int, bytes]],
                                                          keep: int | None) -> None:
    path = Path(f"/dev/shm/mdx-fuzz-{base}") if Path("/dev/shm").is_dir() else Path(f"mdx-fuzz-{base}")
    path.write_bytes(mutate(JPEG if base == "jpeg" else PNG, changes, keep))
    try:
        pixels = load_image(path, 32)
    except InputDataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    finally:
        path.unlink(missing_ok=True)


# ---- the protection, removed ------------------------------------------------------------------------------

def test_load_interpreter_in_process_segfault_model_kills_process(tmp_path: Path) -> None:
    """Without the probe: loading the fixture in-process kills the process; there is nothing to catch."""
    code = ("import sys; from pathlib import Path; from mdx.runtime.interpreter import load_interpreter; "
            "load_interpreter(Path(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "segv_allocate.tflite")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr[-500:])


def test_mdx_bench_without_probe_segfault_model_dies_without_message(tmp_path: Path) -> None:
    code = ("import sys, mdx.runtime.cli as c; c.probe_models = lambda *m, runtime: None; "
            "from mdx.cli import main; sys.argv = ['mdx', 'bench', sys.argv[1]]; main()")
    done = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "segv_allocate.tflite")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGSEGV
    assert "error:" not in done.stderr  # the user is told nothing: this is what the probe prevents


def test_probe_loadable_heap_bomb_refused_within_seconds() -> None:
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"heap_bomb\.tflite: ai-edge-litert .* cannot load this model"):
        probe_loadable(FIXTURES / "heap_bomb.tflite", timeout=60)
    assert time.perf_counter() - started < 30  # uncapped it allocates 12 GB and takes ~45 s here


def test_probe_loadable_good_model_in_copied_runtime_folder(tmp_path: Path) -> None:
    """The probe works from a bare `runtime/` folder too (as on a board), not only inside mdx."""
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from runtime.interpreter import probe_loadable; "
            "print(probe_loadable(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(golden()), str(REPO)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "ai-edge-litert" in done.stdout, done.stderr[-500:]
