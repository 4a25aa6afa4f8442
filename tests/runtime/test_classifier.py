"""TfliteClassifier on the golden models: outputs equal TF's own interpreter's, int8 handled by the tensors' own
scale and zero point, the softmax rule, and bad inputs refused naming the expected shape."""

from __future__ import annotations

import numpy as np
import pytest

from mdx.runtime.classifier import (
    TfliteClassifier,
    dequantize,
    encode_pixels,
    pixel_table,
    quantize,
    softmax,
    to_probabilities,
)
from mdx.runtime.errors import InputDataError, UsageError
from mdx.runtime.model_info import load_model_info
from mdx.runtime.preprocess import PRESETS, Preprocessing

MODELS = ("binary_fp32", "binary_logits", "binary_int8", "binary_uint8", "binary_swapped", "three_fp32", "three_int8")


def _expected(golden: dict[str, np.ndarray], name: str) -> np.ndarray:
    # binary_logits ends without softmax: the harness applies it, so compare with softmax(TF's logits)
    return softmax(golden[name]) if name == "binary_logits" else golden[name]


@pytest.mark.parametrize("name", MODELS)
def test_predict_proba_golden_model_equals_tf_interpreter(model_path, golden, name: str) -> None:
    probs = TfliteClassifier(model_path(name), runtime="litert").predict_proba(golden["inputs"])
    np.testing.assert_allclose(probs, _expected(golden, name), rtol=0, atol=1e-6)
    assert probs.dtype == np.float32


@pytest.mark.tf
@pytest.mark.parametrize("name", ("binary_fp32", "binary_int8", "three_int8"))
def test_predict_proba_tf_runtime_equals_golden(model_path, golden, name: str) -> None:
    classifier = TfliteClassifier(model_path(name), runtime="tf")
    assert classifier.runtime.package == "tensorflow"
    np.testing.assert_allclose(classifier.predict_proba(golden["inputs"]), _expected(golden, name), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ("binary_int8", "binary_uint8", "three_int8"))
def test_predict_proba_int8_without_xnnpack_within_one_output_step(model_path, golden, name: str) -> None:
    # the builtin int8 kernels round differently from XNNPACK's (which made the golden outputs): <= 1 step
    classifier = TfliteClassifier(model_path(name), xnnpack=False)
    difference = np.abs(classifier.predict_proba(golden["inputs"]) - golden[name])
    assert difference.max() <= classifier.output_quantization[0] + 1e-7


@pytest.mark.parametrize("name", ("binary_int8", "binary_uint8", "three_int8"))
def test_quantize_golden_inputs_equals_what_tf_was_fed(model_path, golden, name: str) -> None:
    classifier = TfliteClassifier(model_path(name))
    quantized = quantize(golden["inputs"], *classifier.input_quantization, classifier.input_dtype)
    np.testing.assert_array_equal(quantized, golden[name + "_input_q"])


@pytest.mark.parametrize("name", ("binary_int8", "binary_uint8", "three_int8"))
def test_dequantize_golden_outputs_equals_expected_probabilities(model_path, golden, name: str) -> None:
    classifier = TfliteClassifier(model_path(name))
    np.testing.assert_array_equal(dequantize(golden[name + "_output_q"], *classifier.output_quantization), golden[name])


def test_quantize_rounds_half_away_from_zero_and_clamps() -> None:
    values = np.array([0.5, 1.5, -0.5, -1.5, 0.49, 1000.0, -1000.0], dtype=np.float32)
    np.testing.assert_array_equal(quantize(values, 1.0, 0, np.int8), [1, 2, -1, -2, 0, 127, -128])
    np.testing.assert_array_equal(quantize(np.array([0.0, 1.0]), 0.5, 10, np.uint8), [10, 12])


def _quantize_reference(values: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """The textbook form: sign(x) * floor(|x| + 0.5), + zero point, clamp."""
    info = np.iinfo(dtype)
    scaled = np.asarray(values, dtype=np.float32) / np.float32(scale)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded + zero_point, info.min, info.max).astype(dtype)


@pytest.mark.parametrize(("scale", "zero_point", "dtype"), [(1.0, 0, np.int8), (0.0078125, -1, np.int8),
                                                            (0.02, 5, np.int8), (1 / 255, 0, np.uint8)])
def test_quantize_equals_sign_floor_reference_bit_for_bit(scale, zero_point, dtype) -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 2, 10_000), np.arange(-300, 300) * 0.5 * scale, [0.0, -0.0, 1e9, -1e9]])
    np.testing.assert_array_equal(quantize(values, scale, zero_point, dtype),
                                  _quantize_reference(values, scale, zero_point, dtype))
    assert quantize(values.reshape(-1, 4), scale, zero_point, dtype).shape == (len(values) // 4, 4)
    assert quantize(np.float32(3 * scale), scale, zero_point, dtype) == _quantize_reference(3 * scale, scale, zero_point, dtype)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize(("scale", "zero_point", "dtype"), [(0.0078125, -1, np.int8), (0.0186, 14, np.int8),
                                                            (1 / 255, 0, np.uint8), (0.0161, 117, np.uint8)])
def test_pixel_table_lookup_equals_normalize_then_quantize(preset, scale, zero_point, dtype) -> None:
    preprocessing = Preprocessing(size=16, mean=PRESETS[preset][0], std=PRESETS[preset][1])
    pixels = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    pixels[0, 0, :, :] = np.arange(16, dtype=np.uint8)[:, None] * 17  # 0 and 255 included
    table = pixel_table(preprocessing, scale, zero_point, dtype)
    encoded = encode_pixels(table, pixels)
    assert encoded.dtype == np.dtype(dtype) and encoded.shape == pixels.shape
    np.testing.assert_array_equal(encoded, quantize(preprocessing.normalize(pixels), scale, zero_point, dtype))


def test_normalize_equals_subtract_then_divide_bit_for_bit() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    for mean, std in PRESETS.values():
        out = Preprocessing(size=16, mean=mean, std=std).normalize(pixels)
        expected = (pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
    assert pixels.dtype == np.uint8  # the input is not touched


def test_encode_pixels_refuses_float_or_wrong_channels() -> None:
    table = pixel_table(Preprocessing(size=16), 0.0078125, -1, np.int8)
    with pytest.raises(InputDataError, match=r"expected uint8 RGB"):
        encode_pixels(table, np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(InputDataError, match=r"expected uint8 RGB"):
        encode_pixels(table, np.zeros((1, 4, 4, 1), np.uint8))


@pytest.mark.parametrize("name", ("binary_int8", "binary_uint8", "three_int8"))
def test_pixel_encoder_outputs_equal_float_path(model_path, name: str) -> None:
    classifier = TfliteClassifier(model_path(name))
    preprocessing = load_model_info(model_path(name)).preprocessing
    pixels = np.random.default_rng(3).integers(0, 256, (11, *classifier.input_shape), dtype=np.uint8)
    encode = classifier.pixel_encoder(preprocessing)
    assert encode is not None
    encoded = encode(pixels)
    assert encoded.dtype == classifier.input_dtype
    np.testing.assert_array_equal(classifier.predict_raw(encoded, encoded=True),
                                  classifier.predict_raw(preprocessing.normalize(pixels)))


def test_pixel_encoder_none_for_float_input_and_encoded_dtype_checked(model_path) -> None:
    preprocessing = load_model_info(model_path("binary_fp32")).preprocessing
    assert TfliteClassifier(model_path("binary_fp32")).pixel_encoder(preprocessing) is None
    classifier = TfliteClassifier(model_path("binary_int8"))
    with pytest.raises(InputDataError, match=r"encoded inputs are float32; this model's input tensor is int8"):
        classifier.predict_raw(np.zeros((1, *classifier.input_shape), np.float32), encoded=True)
    with pytest.raises(InputDataError, match=r"encoded input shape \(1, 3, 3, 3\) does not match"):
        classifier.predict_raw(np.zeros((1, 3, 3, 3), np.int8), encoded=True)


def test_dequantize_hand_values() -> None:
    np.testing.assert_array_equal(dequantize(np.array([-128, 0, 127], np.int8), 1 / 256, -128), [0.0, 0.5, 255 / 256])


def test_int8_model_uses_tensor_scale_and_zero_point(model_path) -> None:
    classifier = TfliteClassifier(model_path("binary_int8"))
    assert classifier.input_dtype == np.int8 and classifier.input_quantization[0] > 0
    assert classifier.output_quantization == (pytest.approx(1 / 256), -128)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_predict_proba_any_batch_size_same_result(model_path, golden, batch_size: int) -> None:
    probs = TfliteClassifier(model_path("three_int8"), batch_size=batch_size).predict_proba(golden["inputs"])
    np.testing.assert_array_equal(probs, golden["three_int8"])


def test_predict_proba_fixed_batch_model_loops_one_by_one(model_path, golden) -> None:
    classifier = TfliteClassifier(model_path("binary_fp32"))
    classifier._resizable = False  # as for a model whose batch dimension is fixed at 1
    np.testing.assert_allclose(classifier.predict_proba(golden["inputs"]), golden["binary_fp32"], atol=1e-6)
    assert classifier.describe()["batching"] == "one image per invoke"


def test_output_kind_probability_model_left_alone(model_path, golden) -> None:
    classifier = TfliteClassifier(model_path("binary_int8"))
    classifier.predict_proba(golden["inputs"])
    assert classifier.output_kind == "probabilities"


def test_output_kind_logits_model_gets_softmax(model_path, golden) -> None:
    classifier = TfliteClassifier(model_path("binary_logits"))
    probs = classifier.predict_proba(golden["inputs"])
    assert classifier.output_kind == "logits"
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_outputs_forced_logits_applies_softmax_to_probabilities(model_path, golden) -> None:
    probs = TfliteClassifier(model_path("binary_fp32"), outputs="logits").predict_proba(golden["inputs"])
    np.testing.assert_allclose(probs, softmax(golden["binary_fp32"]), atol=1e-6)


def test_to_probabilities_int8_rows_off_by_rounding_still_probabilities() -> None:
    # an int8 softmax (scale 1/256) may sum to 1 +- 3/256 over 3 classes: not logits
    raw = np.array([[0.2031, 0.2344, 0.5742]], dtype=np.float32)  # sums to 1.0117
    probs, kind = to_probabilities(raw, "auto", output_scale=1 / 256)
    assert kind == "probabilities"
    np.testing.assert_array_equal(probs, raw)
    assert to_probabilities(raw, "auto", output_scale=0.0)[1] == "logits"


def test_to_probabilities_single_sigmoid_column_becomes_two_classes() -> None:
    probs, kind = to_probabilities(np.array([[0.25], [1.0]]))
    assert kind == "probabilities"
    np.testing.assert_allclose(probs, [[0.75, 0.25], [0.0, 1.0]])
    probs, kind = to_probabilities(np.array([[0.0], [2.0]]))
    assert kind == "logits"
    np.testing.assert_allclose(probs[:, 1], [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-6)


def test_predict_proba_wrong_shape_names_expected_and_got(model_path) -> None:
    classifier = TfliteClassifier(model_path("binary_fp32"))
    with pytest.raises(InputDataError, match=r"input shape \(2, 32, 32, 3\) does not match the model's input \(N, 16, 16, 3\); preprocess images to 16x16"):
        classifier.predict_proba(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(InputDataError, match=r"input shape \(16, 16, 3\) does not match the model's input \(N, 16, 16, 3\)"):
        classifier.predict_proba(np.zeros((16, 16, 3), np.float32))


def test_predict_proba_empty_nan_or_integer_inputs_refused(model_path) -> None:
    classifier = TfliteClassifier(model_path("binary_int8"))
    with pytest.raises(InputDataError, match=r"no inputs given; expected an array of shape \(N, 16, 16, 3\) with N >= 1"):
        classifier.predict_proba(np.zeros((0, 16, 16, 3), np.float32))
    with pytest.raises(InputDataError, match=r"inputs contain NaN or infinite values; check the preprocessing"):
        classifier.predict_proba(np.full((1, 16, 16, 3), np.nan, np.float32))
    with pytest.raises(InputDataError, match=r"inputs are uint8; expected preprocessed float32 images"):
        classifier.predict_proba(np.zeros((1, 16, 16, 3), np.uint8))


def test_classifier_bad_options_refused(model_path) -> None:
    with pytest.raises(UsageError, match=r"outputs='softmax' is unknown; choose one of auto, probabilities, logits"):
        TfliteClassifier(model_path("binary_fp32"), outputs="softmax")
    with pytest.raises(UsageError, match=r"batch_size=0 is invalid; expected a positive integer"):
        TfliteClassifier(model_path("binary_fp32"), batch_size=0)
