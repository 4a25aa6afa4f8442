"""MediaPipe Tasks' ImageClassifier on images, per model: what benchmarks/io_choice.py and
tests/integration/test_mediapipe_metadata.py both ask of MediaPipe.

MediaPipe cannot live in mdx's environment, so `classify` runs this file with another Python (the one in
.venv-mediapipe): `python mediapipe_classify.py IMAGES.json MODEL...` prints one JSON line,
{model: {"scores": [{category: score} per image]}} or {model: {"error": the first line of why it did not
load}}. MediaPipe reads the labels, the normalization and the input size from the model's own metadata;
nothing else is passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class MediaPipeMissing(RuntimeError):
    """The given Python has no mediapipe package."""


def classify(python: Path, models: list[Path], images: list[Path], timeout: float = 600.0) -> dict[str, dict[str, Any]]:
    """Every model's category scores on every image, from MediaPipe Tasks run by `python`.

    Raises:
        MediaPipeMissing: `python` cannot import mediapipe.
        RuntimeError: the MediaPipe process failed (its stderr's tail).
    """
    listing = json.dumps([str(p) for p in images])
    done = subprocess.run([str(python), str(Path(__file__).resolve()), listing, *map(str, models)],
                          check=False, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 and "No module named 'mediapipe'" in done.stderr:
        raise MediaPipeMissing(f"{python} has no mediapipe: {Path(python).parent}/pip install mediapipe")
    if done.returncode != 0:
        raise RuntimeError(f"MediaPipe classification failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mediapipe_float_input(pixels: Any, mean: float, std: float) -> Any:
    """The float32 tensor MediaPipe feeds a float-input model for uint8 `pixels`, computed as MediaPipe does.

    ImagePreprocessingGraph turns the metadata's mean/std into a range, min = (0 - mean) / std and
    max = (255 - mean) / std (one value for every channel: it refuses per-channel normalization), and
    ImageToTensorCalculator maps pixels onto it as p * ((max - min) / 255) + min, each step rounded to
    float32. That is (p - mean) / std to within a float32 rounding, but not always bit for bit: with
    mean = std = 127.5 every pixel is half-way between two levels of an int8 input scale of 2/255, and
    that last bit decides which level the model's QUANTIZE picks.
    """
    import numpy as np

    f32 = np.float32
    low, high = (f32(0) - f32(mean)) / f32(std), (f32(255) - f32(mean)) / f32(std)
    scale = (high - low) / f32(255)
    return np.asarray(pixels).astype(f32) * scale + low


def top1(scores: dict[str, float]) -> str:
    """The best category (the first of equal scores, as MediaPipe lists them)."""
    return max(scores, key=lambda name: scores[name])


def _main(listing: str, models: list[str]) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core import base_options

    images = json.loads(listing)
    result: dict[str, dict[str, Any]] = {}
    for model in models:
        options = vision.ImageClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=model))
        try:
            classifier = vision.ImageClassifier.create_from_options(options)
        except (ValueError, RuntimeError) as exc:  # a refusal is a finding (int8 io: ValueError): its first line
            result[model] = {"error": str(exc).splitlines()[0]}
            continue
        rows = []
        for image in images:
            categories = classifier.classify(mp.Image.create_from_file(image)).classifications[0].categories
            rows.append({c.category_name: float(c.score) for c in categories})
        result[model] = {"scores": rows}
        classifier.close()
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2:])
