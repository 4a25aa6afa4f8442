"""The copied harness under tflite-runtime (numpy<2), in its own environment when one is present.

tflite-runtime's last wheels (2.14) need numpy 1.x, so it cannot live in the dev venv. Build one with
    python3.11 -m venv .venv-tflite && .venv-tflite/bin/pip install "tflite-runtime>=2.14" "numpy<2" pillow
(.ci/install-side-runtimes.sh does, and `make test` runs it) or point MDX_TFLITE_RUNTIME_PYTHON at
such an interpreter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tflite_python(side_python) -> Path:
    return side_python("MDX_TFLITE_RUNTIME_PYTHON", ROOT / ".venv-tflite" / "bin" / "python",
                       "run .ci/install-side-runtimes.sh (builds .venv-tflite)")


@pytest.mark.parametrize("name", ["binary_int8", "three_fp32"])
def test_tflite_runtime_copied_harness_matches_golden(tmp_path: Path, model_path, golden, name: str,
                                                      tflite_python: Path) -> None:
    shutil.copytree(ROOT / "runtime", tmp_path / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    labels = np.array([0, 1] * 4)
    np.savez(tmp_path / "data.npz", inputs=golden["inputs"], labels=labels)
    done = subprocess.run(
        [str(tflite_python), "-m", "runtime", "evaluate", str(model_path(name)), "data.npz", "--runtime", "tflite-runtime",
         "--n-boot", "0", "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert result["runtime"]["package"] == "tflite-runtime"
    # int8 kernels differ between runtime versions (and XNNPACK vs builtin) by up to one output step
    step = 1 / 256 if "int8" in name else 0.0
    with np.load(tmp_path / "out" / "predictions.npz") as saved:
        np.testing.assert_allclose(saved["probs"], golden[name], atol=step + 1e-6)
