"""`python -m runtime`: plain tables, JSON, exit codes 0/1/2/3 with one `error:` line, and a copied folder that runs alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdx.runtime.cli import main, parse_floats, parse_labels, parse_threads
from mdx.runtime.errors import UsageError

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"


def test_cli_evaluate_prints_table_and_writes_json(model_path, golden_npz, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = main(["evaluate", str(model_path("binary_int8")), str(golden_npz), "--n-boot", "50", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "accuracy     0.5000" in printed and "95% CI" in printed
    assert json.loads(out.read_text())["metrics"]["n"] == 8


def test_cli_evaluate_out_folder_refuses_second_write(model_path, golden_npz, tmp_path: Path, capsys) -> None:
    args = ["evaluate", str(model_path("binary_fp32")), str(golden_npz), "--n-boot", "0", "--out", str(tmp_path / "e")]
    assert main(args) == 0
    assert main(args) == 2
    assert "error: " in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_cli_check_broken_candidate_exits_3_naming_tolerance(model_path, golden_npz, capsys) -> None:
    code = main(["check", str(model_path("binary_swapped")), str(golden_npz), "--reference",
                 str(model_path("binary_fp32")), "--n-boot", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1 and err[0].startswith("error: parity failed on 8 samples: ")
    assert "agreement 0 (limit 0.98, missed by 0.98)" in err[0]


def test_cli_check_identical_exits_0(model_path, golden_npz, capsys) -> None:
    code = main(["check", str(model_path("binary_fp32")), str(golden_npz), "--reference", str(model_path("binary_fp32")),
                 "--n-boot", "0"])
    assert code == 0
    assert "parity passed on 8 samples" in capsys.readouterr().out


def test_cli_predict_top_two(model_path, xray_folder, capsys) -> None:
    image = next((xray_folder / "NORMAL").iterdir())
    assert main(["predict", str(model_path("three_int8")), str(image), "--top", "2"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert image.name in row and row.count("0.") == 2


def test_cli_bench_two_threads(model_path, capsys) -> None:
    assert main(["bench", str(model_path("binary_fp32")), "--threads", "1,2", "--runs", "5", "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("1 ") and lines[-1].startswith("2 ")


def test_cli_bad_model_exits_1_one_line(tmp_path: Path, golden_npz, capsys) -> None:
    (tmp_path / "bad.tflite").write_bytes(b"\x00" * 64)
    assert main(["evaluate", str(tmp_path / "bad.tflite"), str(golden_npz)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a TFLite model" in err[0]


def test_cli_usage_errors_exit_2_one_line(model_path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["evaluate", str(model_path("binary_fp32"))])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the following arguments are required: data (see `python -m runtime evaluate --help`)"]
    assert main(["bench", str(model_path("binary_fp32")), "--threads", "1,x"]) == 2
    assert "error: --threads '1,x' is invalid" in capsys.readouterr().err


def test_cli_probe_reports_runtime(model_path, capsys) -> None:
    assert main(["probe", str(model_path("binary_uint8"))]) == 0
    assert "loads and runs with ai-edge-litert" in capsys.readouterr().out


def test_parse_options_helpers() -> None:
    assert parse_floats("127.5", "mean") == (127.5, 127.5, 127.5)
    assert parse_floats("1,2,3", "std") == (1.0, 2.0, 3.0)
    assert parse_threads("1,2,4") == (1, 2, 4)
    assert parse_labels("NORMAL, PNEUMONIA") == ("NORMAL", "PNEUMONIA")
    with pytest.raises(UsageError, match=r"--mean '1,2' has 2 values; expected 1 or 3 \(R,G,B\)"):
        parse_floats("1,2", "mean")
    with pytest.raises(UsageError, match=r"--std 'x' is invalid; expected 1 or 3 comma-separated numbers"):
        parse_floats("x", "std")
    with pytest.raises(UsageError, match=r"--threads '0' is invalid; thread counts must be >= 1"):
        parse_threads("0")
    with pytest.raises(UsageError, match=r"--labels 'labels\.txt': no such file"):
        parse_labels("labels.txt")


def test_python_m_runtime_copied_folder_evaluates_alone(tmp_path: Path, model_path, golden_npz) -> None:
    """What a user does on a board: copy runtime/ and run it, with no mdx package on the path."""
    shutil.copytree(RUNTIME_DIR, tmp_path / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_path("binary_int8").parent, tmp_path / "model")
    shutil.copy(golden_npz, tmp_path / "data.npz")
    # mdx is installed in this venv, so block it: any `import mdx…` in the copy would now fail.
    # -I (isolated) also drops PYTHONPATH and the script's folder from sys.path; '.' is the copy's parent.
    script = (
        "import sys, runpy; sys.path.insert(0, '.'); "
        "sys.modules['mdx'] = None; "
        "sys.argv = ['runtime', 'evaluate', 'model/model.tflite', 'data.npz', '--n-boot', '20', '--json', 'out.json']; "
        "runpy.run_module('runtime', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["metrics"]["n"] == 8 and result["runtime"]["package"] == "ai-edge-litert"
    assert "accuracy" in done.stdout
    broken = subprocess.run([sys.executable, "-m", "runtime", "evaluate", "nothere.tflite", "data.npz"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert broken.returncode == 1
    assert broken.stderr.strip() == "error: nothere.tflite: model file not found; check the path (expected a .tflite file)"
