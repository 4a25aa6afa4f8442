"""Labels, normalization and the decision threshold embedded in every variant, read back by the harness
and by MediaPipe (which must still load a model that carries the second, "mdx_decision" entry).

The MediaPipe tests are opt-in: MediaPipe cannot live in the main environment, so they run its
ImageClassifier in a separate venv (default .venv-mediapipe, built by .ci/install-side-runtimes.sh,
or $MDX_MEDIAPIPE_PYTHON) and skip when that interpreter is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mdx.convert.convert import ConvertConfig, convert
from mdx.records import write_record
from mdx.runtime.classifier import TfliteClassifier, dequantize
from mdx.runtime.errors import ModelLoadError
from mdx.runtime.images import list_images, load_image
from mdx.runtime.model_info import load_model_info, read_embedded_metadata
from mdx.runtime.preprocess import Preprocessing

pytestmark = pytest.mark.tf

SIZE = 32
CLASSES = ("NORMAL", "PNEUMONIA")
PRE = Preprocessing(size=SIZE, mean=(127.5,) * 3, std=(127.5,) * 3)
THRESHOLD, RULE = 0.45, "Youden's J on validation, one-standard-error rule toward 0.5"
DEFAULT_VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8-fallback")  # what `mdx convert --all` writes
REPO = Path(__file__).resolve().parents[2]
MEDIAPIPE_VENV = REPO / ".venv-mediapipe"


@pytest.fixture(scope="module")
def converted(tmp_path_factory, xray_subset) -> SimpleNamespace:
    """Every variant of a tiny classifier at its default io, int8 with uint8 and with int8 io, and the 16 test
    X-rays of the bundled subset at its size (pixels and PNGs)."""
    from PIL import Image

    from mdx.train.keras_shim import keras

    root = tmp_path_factory.mktemp("metadata")
    train = root / "train"
    shutil.copytree(xray_subset(8) / "train", train)
    for name in CLASSES:  # black and white pixels: the calibrated input range is then the full [-1, 1]
        for value in (0, 255):
            Image.new("RGB", (SIZE, SIZE), (value,) * 3).save(train / name / f"flat{value}.png")
    paths, labels, _ = list_images(train, CLASSES)
    images = np.stack([load_image(p, SIZE) for p in paths])
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=2, activation="relu6")(inputs))
    x = keras.layers.Dense(16, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(PRE.normalize(images), labels, epochs=80, batch_size=8, verbose=0)
    run = root / "run"
    (run / "train").mkdir(parents=True)
    model.save(run / "train" / "model.keras")
    (run / "train" / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    write_record(run / "train", stage="train", config={}, inputs=[], outputs=[run / "train" / "model.keras"],
                 extra={"preprocessing": PRE.to_dict(), "labels": list(CLASSES), "threshold": THRESHOLD,
                        "threshold_rule": RULE, "data": {"train_dir": str(train)}})
    convert(run, ConvertConfig(variants=DEFAULT_VARIANTS[1:]))  # calibrates on all 20 images
    for io in ("uint8", "int8"):
        convert(run, ConvertConfig(variants=("int8",), io=io, out=root / io))
    test_paths, _, _ = list_images(xray_subset(8) / "test", CLASSES)  # 16 test X-rays the model never saw
    xrays = np.stack([load_image(p, SIZE) for p in test_paths])
    pngs = []
    for index, image in enumerate(xrays):  # the harness's own decode and resize, so both see these pixels
        pngs.append(root / f"xray{index}.png")
        Image.fromarray(image).save(pngs[-1])
    return SimpleNamespace(out=run / "convert", uint8=root / "uint8" / "int8" / "model.tflite",
                           int8_io=root / "int8" / "int8" / "model.tflite", pngs=pngs, pixels=xrays)


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_read_embedded_metadata_converted_variant_returns_labels_and_normalization(converted, variant):
    found = read_embedded_metadata(converted.out / variant / "model.tflite")
    assert found == {"preprocessing": {"size": SIZE, "mean": [127.5] * 3, "std": [127.5] * 3}, "labels": list(CLASSES),
                     "decision": {"threshold": THRESHOLD, "positive_index": 1, "rule": RULE}}


def test_load_model_info_model_alone_takes_preprocessing_and_labels_from_metadata(converted, tmp_path):
    alone = tmp_path / "model.tflite"  # no record.json, no labels.txt beside it
    alone.write_bytes((converted.out / "int8" / "model.tflite").read_bytes())
    info = load_model_info(alone)
    assert info.labels == CLASSES and info.preprocessing == PRE and info.decision.threshold == THRESHOLD
    assert info.source == "labels: model metadata; preprocessing: model metadata; threshold: model metadata"


def test_read_embedded_metadata_labels_archive_cut_off_raises_model_load_error(converted, tmp_path):
    data = (converted.out / "fp32" / "model.tflite").read_bytes()
    cut = tmp_path / "model.tflite"
    cut.write_bytes(data[: data.rfind(b"PK\x03\x04")])  # the flatbuffer without the zipped labels.txt
    with pytest.raises(ModelLoadError, match=r"its metadata names 'labels.txt' but the model carries no such file"):
        read_embedded_metadata(cut)


def test_read_embedded_metadata_model_without_metadata_returns_none(tmp_path):
    from mdx.train.keras_shim import keras, tf

    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    path = tmp_path / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert read_embedded_metadata(path) is None


@pytest.fixture(scope="module")
def mediapipe_python(side_python) -> Path:
    return side_python("MDX_MEDIAPIPE_PYTHON", MEDIAPIPE_VENV / "bin" / "python",
                       "run .ci/install-side-runtimes.sh (builds .venv-mediapipe)")


@pytest.fixture(scope="module")
def mediapipe(load_script):
    """benchmarks/mediapipe_classify.py: the one MediaPipe classify helper (the benchmark uses it too)."""
    return load_script(REPO / "benchmarks" / "mediapipe_classify.py")


def _mediapipe(mediapipe, python: Path, converted, models: list[Path]) -> dict[str, dict]:
    try:
        return mediapipe.classify(python, models, converted.pngs)
    except mediapipe.MediaPipeMissing as exc:
        pytest.skip(str(exc))


def _scores(result: dict, model: Path) -> np.ndarray:
    row = result[str(model)]
    assert "scores" in row, (model, row)
    assert all(set(image) == set(CLASSES) for image in row["scores"])  # names from the embedded labels.txt
    return np.array([[image[name] for name in CLASSES] for image in row["scores"]], np.float32)


def test_mediapipe_image_classifier_every_default_variant_gives_harness_top1(converted, mediapipe, mediapipe_python):
    models = [converted.out / variant / "model.tflite" for variant in DEFAULT_VARIANTS]
    result = _mediapipe(mediapipe, mediapipe_python, converted, models)
    # MediaPipe normalizes with the embedded mean/std: its float input is the harness's to within one rounding
    fed = mediapipe.mediapipe_float_input(converted.pixels, PRE.mean[0], PRE.std[0])
    assert np.abs(fed - PRE.normalize(converted.pixels)).max() <= 1.2e-7
    for model in models:
        found = _scores(result, model)
        # Fed MediaPipe's own float32 arithmetic, the harness computes MediaPipe's scores: same top-1 on every
        # image, each score within one output step. With the harness's (p - 127.5) / 127.5 the int8 variants
        # may differ on an image whose pixels all sit on QUANTIZE ties (measured: benchmarks/io_choice.py).
        classifier = TfliteClassifier(model)
        harness = classifier.predict_proba(fed)
        assert classifier.output_kind == "probabilities"
        assert (found.argmax(axis=1) == harness.argmax(axis=1)).all(), (model, found, harness)
        assert np.abs(found - harness).max() <= max(classifier.output_step, 1e-6), (model, found, harness)
        if model.parent.name in ("fp32", "fp16", "dynamic"):  # a float input tensor has no ties to round
            own = classifier.predict_proba(PRE.normalize(converted.pixels))
            assert (found.argmax(axis=1) == own.argmax(axis=1)).all(), (model, found, own)


def test_mediapipe_image_classifier_uint8_io_int8_feeds_raw_pixels_and_gives_harness_top1(converted, mediapipe,
                                                                                       mediapipe_python):
    result = _mediapipe(mediapipe, mediapipe_python, converted, [converted.uint8])
    found = _scores(result, converted.uint8)
    classifier = TfliteClassifier(converted.uint8)
    scale, zero_point = classifier.input_quantization
    # MediaPipe copies a uint8 input's pixels in unchanged, so the model reads pixel p as (p - zero_point) * scale,
    # half an input level from (p - 127.5) / 127.5; the harness fed exactly those values computes the same
    harness = classifier.predict_proba(dequantize(converted.pixels, scale, zero_point))
    assert (found.argmax(axis=1) == harness.argmax(axis=1)).all(), (found, harness)
    assert np.abs(found - harness).max() <= classifier.output_step, (found, harness)


def test_mediapipe_image_classifier_refuses_int8_io_naming_uint8_float32(converted, mediapipe, mediapipe_python):
    result = _mediapipe(mediapipe, mediapipe_python, converted, [converted.int8_io])
    assert "Requested one of these types: uint8/float32, got INT8" in result[str(converted.int8_io)]["error"]
