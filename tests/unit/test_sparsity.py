"""Zero counting and the sparsity check, on numpy kernels (no TensorFlow)."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from mdx.train.sparsity import (
    CONV,
    DENSE,
    Kernel,
    SparsityError,
    SparsityReport,
    _zero_point,
    check_sparsity,
    layer_from_tensor_name,
    m_by_n_violations,
)


def _kernel(name: str, sparsity: float, shape=(8, 1, 1, 16), seed: int = 0) -> Kernel:
    values = np.random.default_rng(seed).uniform(0.1, 1.0, shape).astype(np.float32)
    flat = values.reshape(-1)
    flat[: round(sparsity * flat.size)] = 0.0
    return Kernel(name, CONV, values)


def test_check_sparsity_on_target_passes():
    report = SparsityReport("m", (_kernel("a", 0.5).measure(), _kernel("b", 0.505).measure()))
    check_sparsity(report, 0.5)
    assert report.overall == pytest.approx(0.5, abs=0.005) and report.minimum == 0.5


def test_check_sparsity_dense_kernel_names_layer_target_and_achieved():
    report = SparsityReport("m", (_kernel("a", 0.5).measure(), _kernel("block_3_project", 0.0).measure()))
    with pytest.raises(SparsityError, match=r"fp32: layer block_3_project is 0\.000 sparse, target 0\.500 \+/- 0\.010 "
                                            r"\(2 of 2 pruned kernels\); the pruning masks never updated"):
        check_sparsity(report, 0.5, where="fp32")


def test_check_sparsity_above_target_refused_unless_allowed():
    report = SparsityReport("m", (_kernel("a", 0.6).measure(),))
    with pytest.raises(SparsityError, match=r"layer a is 0\.602 sparse, target 0\.500"):
        check_sparsity(report, 0.5)
    check_sparsity(report, 0.5, allow_above=True)  # int8: rounding adds zeros


def test_check_sparsity_exit_code_is_tolerance_failure():
    assert SparsityError("x").exit_code == 3


def test_report_select_missing_layer_raises_sparsity_error():
    report = SparsityReport("model.tflite", (_kernel("a", 0.5).measure(),))
    with pytest.raises(SparsityError, match=r"model\.tflite: no kernel found for pruned layer\(s\) \['b'\]"):
        report.select(["a", "b"])


def test_m_by_n_violations_counts_groups_with_too_few_zeros():
    values = np.ones((2, 8), dtype=np.float32)  # TFLite layout (out, in): groups run along the last axis
    values[:, [0, 1, 4, 6]] = 0.0
    assert m_by_n_violations(Kernel("d", DENSE, values), 2, 4) == 0
    values[1, 6] = 3.0
    assert m_by_n_violations(Kernel("d", DENSE, values), 2, 4) == 1


def test_kernel_int8_per_channel_zero_point_counts_dequantized_zeros():
    values = np.array([[3, 0, 3], [0, -1, 5]], dtype=np.int8)
    detail = {"quantization_parameters": {"zero_points": np.array([3, 0]), "quantized_dimension": 0}}
    kernel = Kernel("fc", DENSE, values, _zero_point(detail, values))
    assert kernel.measure().zeros == 3  # row 0: the two 3s; row 1: the 0


def test_layer_from_tensor_name_fused_names_find_the_kernel_layer():
    assert layer_from_tensor_name("model/block_1_expand/Conv2D") == "block_1_expand"
    assert layer_from_tensor_name("m/bn_Conv1/FusedBatchNormV3;m/Conv1/Conv2D1") == "Conv1"
    assert layer_from_tensor_name("m/dense/MatMul;m/dense/Relu") == "dense"
    assert layer_from_tensor_name("odd_name") == "odd_name"


@pytest.mark.skipif(find_spec("ai_edge_litert") is None, reason="needs ai-edge-litert")
def test_measure_tflite_sparsity_tensorflow_blocked_still_measures(tmp_path):
    """The .tflite half must run on a board without TensorFlow: importing it is made to fail here."""
    model = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "binary_int8" / "model.tflite"
    code = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "keras"):
            raise ImportError("blocked import of " + name)
sys.meta_path.insert(0, Blocker())
from mdx.train.sparsity import measure_tflite_sparsity
report = measure_tflite_sparsity({str(model)!r}, runtime="litert")
print(len(report.kernels), all(0.0 <= k.sparsity <= 1.0 for k in report.kernels))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    count, valid = done.stdout.split()
    assert int(count) >= 1 and valid == "True"
