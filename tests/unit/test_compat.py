"""The pure-Python .tflite reader and the op-version compatibility check; no TensorFlow needed."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mdx.convert.compat import OpProblem, check_compatibility, problems_for, runtime_info, runtimes
from mdx.convert.flatbuffer import OpCode, TfliteFacts, read_tflite
from mdx.errors import ArtifactError, ConfigError
from mdx.runtime.flatbuffer_table import root_table

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "imagenet_mobilenet_v2" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
# Committed .tflite fixtures (tests/fixtures/golden, made by make_golden_models.py) when present.
MODELS = [BUNDLED, *sorted((REPO / "tests" / "fixtures" / "golden").glob("*/model.tflite"))]
MOBILENET_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ADD",
    "MEAN",
    "AVERAGE_POOL_2D",
    "FULLY_CONNECTED",
    "SOFTMAX",
    "RESHAPE",
    "QUANTIZE",
    "DEQUANTIZE",
    "PAD",
    "RELU6",
    "HARD_SWISH",
    "MUL",
)


def _with_op_version(model: bytes, op: str, version: int) -> bytes:
    """The model with one op code's stored version rewritten in place (the field must be present)."""
    buf = bytearray(model)
    root = root_table(bytes(buf))
    for index, entry in enumerate(root.tables(1)):
        if read_tflite(model).op_codes[index].name == op:
            at = entry._field(2)
            assert at, f"{op}'s version is not stored (it is the default, 1); pick an op above v1"
            struct.pack_into("<i", buf, at, version)
            return bytes(buf)
    raise LookupError(op)


def test_read_tflite_bundled_mobilenet_lists_op_codes_versions_and_counts():
    assert read_tflite(BUNDLED).ops_table() == [
        {"op": "ADD", "version": 2, "count": 10},
        {"op": "CONV_2D", "version": 3, "count": 36},
        {"op": "DEPTHWISE_CONV_2D", "version": 3, "count": 17},
        {"op": "MEAN", "version": 2, "count": 1},
        {"op": "QUANTIZE", "version": 1, "count": 2},
        {"op": "RESHAPE", "version": 1, "count": 1},
        {"op": "SOFTMAX", "version": 2, "count": 1},
    ]


def test_read_tflite_bundled_mobilenet_io_is_uint8_with_its_quantization():
    facts = read_tflite(BUNDLED)
    assert facts.inputs[0].to_dict() == {
        "name": "input",
        "dtype": "uint8",
        "shape": [1, 224, 224, 3],
        "scale": pytest.approx(1 / 127.5),
        "zero_point": 127,
    }
    assert facts.outputs[0].to_dict() == {
        "name": "Identity",
        "dtype": "uint8",
        "shape": [1, 1001],
        "scale": 1 / 256,
        "zero_point": 0,
    }
    assert facts.min_runtime_version == "1.14.0"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.parent.name)
def test_read_tflite_matches_the_official_flatbuffers_schema(path):
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    data = path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    facts = read_tflite(data)
    assert [(c.name, c.version) for c in facts.op_codes] == [
        (names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())], c.Version()) for c in codes
    ]
    graph = model.Subgraphs(0)
    assert facts.operator_codes == tuple(graph.Operators(i).OpcodeIndex() for i in range(graph.OperatorsLength()))
    for ours, indices in ((facts.inputs, graph.InputsAsNumpy()), (facts.outputs, graph.OutputsAsNumpy())):
        for tensor_facts, index in zip(ours, indices.tolist(), strict=True):
            tensor = graph.Tensors(index)
            quant = tensor.Quantization()
            assert tensor_facts.shape == tuple(tensor.ShapeAsNumpy().tolist())
            assert tensor_facts.scale == tuple(quant.ScaleAsNumpy().tolist() if quant and quant.ScaleLength() else ())
            assert tensor_facts.zero_point == tuple(
                quant.ZeroPointAsNumpy().tolist() if quant and quant.ZeroPointLength() else ()
            )


@pytest.mark.parametrize("runtime", ["ai-edge-litert", "tflite-runtime-2.14", "tf.lite"])
def test_check_compatibility_bundled_mobilenet_loads_on_every_runtime(runtime):
    assert check_compatibility(BUNDLED, runtime) == []


def test_check_compatibility_conv_2d_v8_refused_on_tflite_runtime_2_14_only():
    model = _with_op_version(BUNDLED.read_bytes(), "CONV_2D", 8)
    problems = check_compatibility(model, "tflite-runtime-2.14")
    assert problems == [OpProblem("tflite-runtime-2.14", "CONV_2D", 8, 7)]
    assert str(problems[0]) == (
        "CONV_2D v8 is newer than tflite-runtime-2.14 supports (up to v7); "
        "choose another variant or upgrade the runtime"
    )
    assert check_compatibility(model, "ai-edge-litert") == []


def test_problems_for_op_missing_from_the_table_is_reported_unverified():
    facts = TfliteFacts(
        op_codes=(OpCode("RFFT2D", 120, 1), OpCode("CUSTOM:MyOp", 32, 1, "MyOp")),
        operator_codes=(0, 1),
        inputs=(),
        outputs=(),
        min_runtime_version=None,
    )
    messages = [str(p) for p in problems_for(facts, "ai-edge-litert")]
    assert messages[0].startswith(
        "RFFT2D v1 is not in op_versions.json for ai-edge-litert, so loading there is unverified"
    )
    assert messages[1].startswith("CUSTOM:MyOp is a custom op")


def test_check_compatibility_unknown_runtime_raises_config_error():
    with pytest.raises(
        ConfigError,
        match=r"unknown target runtime 'tflite-runtime-2.99'; expected one of ai-edge-litert, tflite-runtime-2.14, tf.lite",
    ):
        check_compatibility(BUNDLED, "tflite-runtime-2.99")


def test_read_tflite_not_a_model_raises_artifact_error(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(ArtifactError, match=r"model.tflite is not a TFLite model \(no 'TFL3' identifier\)"):
        read_tflite(tmp_path / "model.tflite")


def test_read_tflite_truncated_file_raises_artifact_error(tmp_path):
    (tmp_path / "cut.tflite").write_bytes(BUNDLED.read_bytes()[:2000])
    with pytest.raises(ArtifactError, match=r"cut.tflite is a truncated or corrupt TFLite flatbuffer"):
        read_tflite(tmp_path / "cut.tflite")


def test_read_tflite_missing_file_raises_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match=r"nope.tflite: cannot read the .tflite file"):
        read_tflite(tmp_path / "nope.tflite")


@pytest.mark.parametrize("runtime", ["ai-edge-litert", "tflite-runtime-2.14", "tf.lite"])
def test_op_versions_table_covers_mobilenet_ops_for_every_runtime(runtime):
    limits = runtime_info(runtime)["max_versions"]
    assert set(MOBILENET_OPS) <= set(limits)
    assert runtime_info(runtime)["source"]


def test_op_versions_tflite_runtime_2_14_matches_observed_failure():
    # Observed: TF 2.21's dynamic-range MobileNetV2 fails there with FULLY_CONNECTED version 12.
    limits = runtime_info("tflite-runtime-2.14")["max_versions"]
    assert limits["FULLY_CONNECTED"] == 10 and limits["CONV_2D"] == 7
    assert runtimes() == ("ai-edge-litert", "tflite-runtime-2.14", "tf.lite")


def test_compat_import_does_not_import_tensorflow(tmp_path) -> None:
    code = (
        "import sys, mdx.convert.compat as c; c.check_compatibility(sys.argv[1], 'tflite-runtime-2.14'); "
        "assert 'tensorflow' not in sys.modules and 'flatbuffers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(BUNDLED)], cwd=tmp_path, check=True)
