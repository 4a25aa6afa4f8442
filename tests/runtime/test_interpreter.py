"""Loading models: runtime selection, refusing bad files before the interpreter, probing in a subprocess."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mdx.runtime import interpreter as interp
from mdx.runtime.errors import ModelLoadError, UsageError
from mdx.runtime.interpreter import RuntimeInfo, load_interpreter, probe_loadable, validate_model_file


def test_load_interpreter_auto_picks_litert_first(model_path) -> None:
    interpreter, info = load_interpreter(model_path("binary_fp32"))
    assert info.name == "litert" and info.package == "ai-edge-litert" and info.version[0].isdigit()
    assert interpreter.get_input_details()[0]["shape"].tolist() == [1, 16, 16, 3]


def test_load_interpreter_no_xnnpack_still_runs(model_path, golden) -> None:
    interpreter, _ = load_interpreter(model_path("binary_fp32"), "litert", threads=1, xnnpack=False)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], golden["inputs"][:1])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, golden["binary_fp32"][:1], atol=1e-6)


def test_load_interpreter_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"nothere\.tflite: model file not found; check the path"):
        load_interpreter(tmp_path / "nothere.tflite")


def test_load_interpreter_folder_points_to_model_inside(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"is a folder; pass the \.tflite file inside it"):
        load_interpreter(tmp_path)


def test_load_interpreter_zero_bytes_says_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.tflite: model file is empty \(0 bytes\); re-export or copy it again"):
        load_interpreter(empty)


def test_load_interpreter_random_bytes_says_not_tflite(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelLoadError, match=r"junk\.tflite: not a TFLite model \(bytes 4\.\.8 are .*expected b'TFL3'\)"):
        load_interpreter(junk)


def test_load_interpreter_random_bytes_behind_header_refused_by_runtime(tmp_path: Path, model_path) -> None:
    header = model_path("binary_fp32").read_bytes()[:8]
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(header + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelLoadError, match=r"junk\.tflite: ai-edge-litert .* cannot load this model .*re-export it"):
        load_interpreter(junk)


@pytest.mark.parametrize("keep", [6, 12, 1000, 2300])
def test_load_interpreter_truncated_file_refused_in_one_line(tmp_path: Path, model_path, keep: int) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(model_path("binary_fp32").read_bytes()[:keep])
    with pytest.raises(ModelLoadError, match=r"cut\.tflite: ") as caught:
        load_interpreter(cut)
    assert "\n" not in str(caught.value)


def test_validate_model_file_good_model_returns_path(model_path) -> None:
    assert validate_model_file(model_path("three_int8")) == model_path("three_int8")


def test_load_interpreter_unknown_runtime_lists_choices(model_path) -> None:
    with pytest.raises(UsageError, match=r"runtime 'onnx' is unknown; choose one of auto, litert, tflite-runtime, tf"):
        load_interpreter(model_path("binary_fp32"), "onnx")


def test_load_interpreter_zero_threads_refused(model_path) -> None:
    with pytest.raises(UsageError, match=r"threads=0 is invalid; expected a positive integer"):
        load_interpreter(model_path("binary_fp32"), threads=0)


def test_load_interpreter_absent_runtime_says_how_to_install(model_path, monkeypatch) -> None:
    def missing(name: str):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(interp, "_import_runtime", missing)
    with pytest.raises(ModelLoadError, match=r"runtime 'tflite-runtime' is not usable .*numpy<2 environment, or use --runtime auto"):
        load_interpreter(model_path("binary_fp32"), "tflite-runtime")
    with pytest.raises(ModelLoadError, match=r"no TFLite interpreter is installed \(tried ai-edge-litert: .*\); pip install ai-edge-litert"):
        load_interpreter(model_path("binary_fp32"))


def test_load_interpreter_no_op_resolver_refuses_no_xnnpack(model_path, monkeypatch) -> None:
    real = interp._import_runtime
    monkeypatch.setattr(interp, "_import_runtime", lambda name: (*real(name)[:1], None, real(name)[2]))
    with pytest.raises(UsageError, match=r"cannot disable XNNPACK \(no OpResolverType\); drop --no-xnnpack"):
        load_interpreter(model_path("binary_fp32"), xnnpack=False)


@pytest.mark.tf
def test_load_interpreter_tf_runtime_reports_tensorflow(model_path) -> None:
    _, info = load_interpreter(model_path("binary_int8"), "tf", xnnpack=False)
    assert (info.name, info.package) == ("tf", "tensorflow")


def test_probe_loadable_good_model_returns_runtime(model_path) -> None:
    info = probe_loadable(model_path("binary_uint8"))
    assert info == RuntimeInfo("litert", "ai-edge-litert", info.version)


def test_probe_loadable_corrupt_model_raises_child_message(tmp_path: Path, model_path) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(model_path("binary_fp32").read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"cut\.tflite: ai-edge-litert .* cannot load this model"):
        probe_loadable(cut)


def test_probe_loadable_crashing_interpreter_reports_signal(model_path, monkeypatch) -> None:
    crashed = subprocess.CompletedProcess(args=[], returncode=-11, stdout="", stderr="")
    monkeypatch.setattr(interp.subprocess, "run", lambda *a, **k: crashed)
    with pytest.raises(ModelLoadError, match=r"the interpreter crashed \(SIGSEGV\) loading or running this model"):
        probe_loadable(model_path("binary_fp32"))


def test_probe_loadable_hanging_interpreter_reports_timeout(model_path, monkeypatch) -> None:
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(cmd="python", timeout=kwargs["timeout"])

    monkeypatch.setattr(interp.subprocess, "run", hang)
    with pytest.raises(ModelLoadError, match=r"loading and one invoke took over 5 s; the model or runtime hangs"):
        probe_loadable(model_path("binary_fp32"), timeout=5)
