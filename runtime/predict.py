"""Top-K classes for individual images: decode, preprocess, run, rank; and each image's class at the decision
threshold (the model's recorded one unless --threshold is given), as evaluate and the app decide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decision import Decision
from .errors import InputDataError, UsageError
from .evaluate import CHUNK_SIZE, EvaluateConfig, decision_for, resolve_model_info
from .images import load_image
from .interpreter import RuntimeInfo, validate_model_file
from .preprocess import Preprocessing


def load_inputs(paths: Sequence[Path], preprocessing: Preprocessing) -> np.ndarray:
    """Decode and preprocess images into float32 (N, size, size, 3).

    Raises:
        InputDataError: no image given, or one is missing or unreadable (named).
    """
    if not paths:
        raise InputDataError("no images given; pass one or more image files")
    images = np.stack([load_image(Path(p), preprocessing.size) for p in paths])
    return preprocessing.normalize(images)


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """For each row, the `k` most probable (label, probability), most probable first (stable on ties).

    Raises:
        UsageError: `k` is below 1.
    """
    if not isinstance(k, int) or k < 1:
        raise UsageError(f"top={k!r} is invalid; expected an integer >= 1")
    order = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return [[(labels[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


@dataclass(frozen=True)
class PredictResult:
    """Per image: its path, top-K (label, probability), and its class under `decision`."""

    model: str
    runtime: RuntimeInfo | None
    labels: tuple[str, ...]
    paths: tuple[str, ...]
    top: tuple[tuple[tuple[str, float], ...], ...]
    classes: tuple[str, ...]
    decision: Decision
    output_kind: str = "probabilities"  # "logits" when the model ends without a softmax (it is applied here)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runtime": None if self.runtime is None else self.runtime.to_dict(),
            "labels": list(self.labels),
            "decision": self.decision.to_dict(),
            "outputs": self.output_kind,
            "predictions": [
                {"path": path, "class": cls, "top": [{"label": label, "probability": p} for label, p in top]}
                for path, cls, top in zip(self.paths, self.classes, self.top)
            ],
        }


def decided_classes(probs: np.ndarray, labels: Sequence[str], decision: Decision) -> tuple[str, ...]:
    """Each row's class name under `decision` (at a threshold other than 0.5 it may differ from the top-1)."""
    return tuple(labels[i] for i in decision.classes(probs))


def predict_images(model_path: Path, images: Sequence[Path], config: EvaluateConfig = EvaluateConfig(), k: int = 1) -> PredictResult:
    """Top-`k` classes of each image with a .tflite model (labels and preprocessing as in `evaluate`).

    Raises:
        ModelLoadError, InputDataError, UsageError: as `evaluate`.
    """
    top_k(np.zeros((0, 1)), ("",), k)  # validate k before any work
    model_path = validate_model_file(model_path)
    classifier = config.classifier(model_path)
    info = resolve_model_info(model_path, config, classifier)
    decision = decision_for(info, config)
    preprocessing = info.preprocessing
    if preprocessing is None:  # resolve_model_info requires it for image data; this narrows the type
        raise UsageError("no preprocessing; pass --size, --mean and --std")
    raw = [classifier.predict_raw(load_inputs(images[i : i + CHUNK_SIZE], preprocessing))
           for i in range(0, len(images), CHUNK_SIZE)] or [load_inputs(images, preprocessing)]
    probs = classifier.to_probabilities(np.concatenate(raw))  # decoded CHUNK_SIZE at a time; one softmax rule
    rows = top_k(probs, info.labels, k)
    return PredictResult(
        model=str(model_path), runtime=classifier.runtime, labels=info.labels,
        paths=tuple(str(p) for p in images), top=tuple(tuple(r) for r in rows),
        classes=decided_classes(probs, info.labels, decision), decision=decision,
        output_kind=str(classifier.output_kind),
    )
