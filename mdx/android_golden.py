"""Golden vectors for the Android app's JVM tests: real test X-rays through the Python harness.

For each image the app's tensor code must reproduce, from the ARGB pixels Android would hand it,
the exact input tensor the harness fed the model; and from the model's raw output, the harness's
probabilities and decision. The model itself cannot run on the JVM (LiteRT ships Android native
libraries only), so the raw outputs are the harness's, stored in the model's own dtype.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import DataError
from mdx.runtime.classifier import TfliteClassifier, quantize
from mdx.runtime.images import list_images, load_image
from mdx.runtime.manifest import MANIFEST_SUFFIX, manifest_root, read_manifest, split_files
from mdx.runtime.metrics import predict_classes
from mdx.runtime.preprocess import Preprocessing

# File names inside the golden folder; the Kotlin test finds them through golden.json.
PIXELS_NAME = "pixels.bin"
INPUT_NAME = "input.bin"
OUTPUT_NAME = "output.bin"
INDEX_NAME = "golden.json"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class GoldenSet:
    """N images: pixels (N, S, S, 3) uint8, input/raw-output tensors in the model's dtypes, harness results."""

    sources: tuple[str, ...]  # "CLASS/file.jpeg", relative to the test folder
    labels: tuple[int, ...]
    pixels: np.ndarray
    inputs: np.ndarray
    raw_outputs: np.ndarray
    outputs_float: np.ndarray
    probabilities: np.ndarray
    classes: np.ndarray
    output_kind: str

    def argb(self) -> np.ndarray:
        """Pixels as Android's Bitmap.getPixels returns them: one opaque ARGB int per pixel, (N, S*S) uint32."""
        rgb = self.pixels.astype(np.uint32)
        argb = (np.uint32(0xFF) << 24) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        return argb.reshape(len(self.pixels), -1)


def test_images_root(test: Path) -> Path:
    """The folder golden sources are named relative to: the test folder, or the data folder of a manifest."""
    return manifest_root(test) if test.name.endswith(MANIFEST_SUFFIX) else test


def pick_images(test_dir: Path, labels: tuple[str, ...], count: int) -> list[tuple[Path, int]]:
    """`count` images taken in turn from each class (a test folder's class folders, or a split manifest's
    test rows), so every class is present.

    Raises:
        DataError: the folder's classes differ from `labels` or it holds fewer than `count` images.
    """
    if test_dir.name.endswith(MANIFEST_SUFFIX):
        root = manifest_root(test_dir)
        paths, image_labels = split_files(read_manifest(test_dir, root), "test", root, labels)
    else:
        paths, image_labels, _ = list_images(test_dir, labels)
    by_class = [[p for p, y in zip(paths, image_labels) if y == k] for k in range(len(labels))]
    picked: list[tuple[Path, int]] = []
    depth = 0
    while len(picked) < count and depth < max(len(c) for c in by_class):
        for k, files in enumerate(by_class):
            if depth < len(files) and len(picked) < count:
                picked.append((files[depth], k))
        depth += 1
    if len(picked) < count:
        raise DataError(f"{test_dir} holds {len(picked)} images; golden vectors need {count} (lower the count or add images)")
    return picked


def compute_golden(
    classifier: TfliteClassifier,
    preprocessing: Preprocessing,
    images: list[tuple[Path, int]],
    root: Path,
    threshold: float | None,
) -> GoldenSet:
    """Run each image through the harness one at a time and keep every intermediate tensor."""
    pixels = np.stack([load_image(path, preprocessing.size) for path, _ in images])
    normalized = preprocessing.normalize(pixels)
    if classifier.input_dtype == np.float32:
        inputs = normalized.astype(np.float32)
    else:  # the same function the harness applies before set_tensor
        inputs = quantize(normalized, *classifier.input_quantization, classifier.input_dtype)
    output_index = classifier.interpreter.get_output_details()[0]["index"]
    raw, floats = [], []
    for k in range(len(images)):
        floats.append(classifier.predict_raw(normalized[k : k + 1]))
        # the tensor exactly as the model wrote it (int8 stays int8): what the app's output buffer holds
        raw.append(np.array(classifier.interpreter.get_tensor(output_index), copy=True))
    outputs_float = np.concatenate(floats)
    probabilities = classifier.to_probabilities(outputs_float)  # decides logits vs probabilities once for the set
    return GoldenSet(
        sources=tuple(str(path.relative_to(root)) for path, _ in images),
        labels=tuple(label for _, label in images),
        pixels=pixels,
        inputs=inputs,
        raw_outputs=np.concatenate(raw),
        outputs_float=outputs_float,
        probabilities=probabilities,
        classes=predict_classes(probabilities, threshold),
        output_kind=str(classifier.output_kind),
    )


def golden_files(golden: GoldenSet) -> dict[str, bytes]:
    """The three little-endian binary files, by name."""
    return {
        PIXELS_NAME: golden.argb().astype("<u4").tobytes(),
        INPUT_NAME: golden.inputs.astype(golden.inputs.dtype.newbyteorder("<")).tobytes(),
        OUTPUT_NAME: golden.raw_outputs.astype(golden.raw_outputs.dtype.newbyteorder("<")).tobytes(),
    }


def golden_index(golden: GoldenSet, files: dict[str, dict[str, Any]], model_sha256: str,
                 input_dtype: str, output_dtype: str) -> dict[str, Any]:
    """golden.json: what each binary file holds and the harness's results per image."""
    return {
        "format": FORMAT,
        "model_sha256": model_sha256,
        "count": len(golden.sources),
        "size": int(golden.pixels.shape[1]),
        "columns": int(golden.raw_outputs.shape[1]),
        "input_dtype": input_dtype,
        "output_dtype": output_dtype,
        "output_kind": golden.output_kind,
        "byte_order": "little",
        "files": {
            "pixels": {**files[PIXELS_NAME], "holds": "N x size x size ARGB uint32 (Bitmap.getPixels order)"},
            "input": {**files[INPUT_NAME], "holds": f"N x size x size x 3 {input_dtype}, NHWC RGB, as fed to the model"},
            "output": {**files[OUTPUT_NAME], "holds": f"N x columns {output_dtype}, as the model returned it"},
        },
        "images": [
            {
                "source": source,
                "label": int(label),
                # float32 values written as the exact doubles they convert to, so the JVM reads back the same float32
                "output_float": [float(v) for v in golden.outputs_float[k]],
                "probabilities": [float(v) for v in golden.probabilities[k]],
                "class_index": int(golden.classes[k]),
            }
            for k, (source, label) in enumerate(zip(golden.sources, golden.labels))
        ],
    }
