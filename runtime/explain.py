"""Where a .tflite model looks: occlusion maps of images, saved as overlays (PNG) and raw maps (.npy).

The model is run as `predict` runs it (labels, preprocessing and threshold found beside it); each
image's map follows its class at the decision threshold, or a class named by `ExplainConfig.target`.
The algorithm itself is `occlusion.occlusion_map` (docs/explain.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classifier import TfliteClassifier, to_probabilities
from .configs import JsonConfig
from .decision import Decision
from .errors import UsageError
from .evaluate import EvaluateConfig, ParallelRunner, decision_for, resolve_model_info
from .files import atomic_write_bytes, atomic_write_json, file_facts
from .images import load_image
from .interpreter import RuntimeInfo, validate_model_file
from .machine import machine_facts
from .occlusion import Occlusion, border_share, default_occlusion, occlusion_map
from .preprocess import Preprocessing

RESULT_NAME = "explain.json"


@dataclass(frozen=True)
class ExplainConfig(JsonConfig):
    """Occlusion settings. None: a patch of a seventh of the input side, a stride of one patch, and
    the preprocessing mean as fill (a grey for [-1, 1] models). `fill` is a pixel value (0..255).
    `target` names the class to follow; None follows each image's decided class."""

    patch: int | None = None
    stride: int | None = None
    fill: float | None = None
    target: str | None = None
    batch: int = 32

    def __post_init__(self) -> None:
        if self.fill is not None and (not math.isfinite(float(self.fill)) or not 0.0 <= float(self.fill) <= 255.0):
            raise UsageError(f"--fill {self.fill!r} is invalid; expected a pixel value from 0 to 255")
        patch = self.patch if self.patch is not None else max(1, self.stride or 1)
        Occlusion(patch=patch, stride=self.stride or 1, batch=self.batch)  # a bad value fails before any work

    def occlusion(self, size: int, preprocessing: Preprocessing) -> Occlusion:
        """The sweep for a `size` x `size` input, the fill turned into model-input units."""
        default = default_occlusion(size)
        patch = self.patch if self.patch is not None else default.patch
        stride = self.stride if self.stride is not None else patch
        fill: float | tuple[float, ...] = 0.0
        if self.fill is not None:
            fill = tuple(float((self.fill - m) / s) for m, s in zip(preprocessing.mean, preprocessing.std))
        return Occlusion(patch=patch, stride=stride, fill=fill, batch=self.batch)


def target_index(name: str | None, labels: Sequence[str]) -> int | None:
    """The class index of `name` (None stays None).

    Raises:
        UsageError: the model has no class of that name.
    """
    if name is None:
        return None
    if name not in labels:
        raise UsageError(f"--target {name!r} is not one of the model's classes {list(labels)}; pass one of them")
    return list(labels).index(name)


def probability_fn(raw: Callable[[np.ndarray], np.ndarray], classifier: TfliteClassifier) -> Callable[[np.ndarray], np.ndarray]:
    """inputs -> probabilities by the classifier's softmax rule, fixed once (its `output_kind`, else decided now).

    Occluded batches are scored by the rule the unoccluded image was: a batch must never flip it.
    """
    scale = classifier.output_quantization[0]

    def predict(inputs: np.ndarray) -> np.ndarray:
        kind = classifier.output_kind or classifier.outputs
        probs, decided = to_probabilities(raw(inputs), kind, scale)
        classifier.output_kind = decided
        return probs

    return predict


@dataclass(frozen=True, eq=False)
class Explanation:
    """One image's map: the class followed, its probability, the map (H, W), the pixels it was made on."""

    path: str
    target: str
    probability: float
    heatmap: np.ndarray = field(repr=False)
    pixels: np.ndarray = field(repr=False)

    @property
    def border_share(self) -> float:
        return border_share(self.heatmap)

    def to_dict(self) -> dict[str, Any]:
        share = self.border_share
        return {"path": self.path, "class": self.target, "probability": round(self.probability, 6),
                "map_min": float(self.heatmap.min()), "map_max": float(self.heatmap.max()),
                "border_share": None if math.isnan(share) else round(share, 4)}


@dataclass(frozen=True, eq=False)
class ExplainResult:
    """Maps of every image, with the model, runtime, sweep and decision they were made with."""

    model: dict[str, Any]
    runtime: RuntimeInfo
    labels: tuple[str, ...]
    occlusion: Occlusion
    decision: Decision
    explanations: tuple[Explanation, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        o = self.occlusion
        return {"stage": "explain", "method": "occlusion", "model": self.model, "runtime": self.runtime.to_dict(), "labels": list(self.labels),
                "occlusion": {"patch": o.patch, "stride": o.stride, "fill": o.fill, "batch": o.batch},
                "decision": self.decision.to_dict(), "seconds": round(self.seconds, 3), "machine": machine_facts(),
                "images": [e.to_dict() for e in self.explanations]}

    def save(self, folder: Path, *, overwrite: bool = False) -> list[Path]:
        """Write <image>.png (overlay) and <image>.npy (the map) per image, and explain.json, into `folder`.

        Raises:
            UsageError: explain.json exists there and `overwrite` is false.
            OutputError: the folder cannot be written.
        """
        return save_maps(Path(folder), self.explanations, self.to_dict(), overwrite=overwrite)


def save_maps(folder: Path, explanations: Sequence[Explanation], payload: dict[str, Any], *,
              overwrite: bool = False) -> list[Path]:
    """<image>.png (overlay titled class and probability) and <image>.npy per explanation, then `payload` as
    explain.json: one layout for every method (occlusion here, Grad-CAM in mdx.explain_keras).

    Raises:
        UsageError: explain.json exists in `folder` and `overwrite` is false.
        OutputError: the folder cannot be written.
    """
    from .overlay import overlay_png

    if (folder / RESULT_NAME).exists() and not overwrite:
        raise UsageError(f"{folder / RESULT_NAME} already exists; pass --overwrite to replace it, or choose another folder")
    written = []
    for stem, item in zip(output_stems([e.path for e in explanations]), explanations):
        title = f"{item.target} {item.probability:.3f}"
        written.append(atomic_write_bytes(folder / f"{stem}.png", overlay_png(item.pixels, item.heatmap, title)))
        written.append(atomic_write_bytes(folder / f"{stem}.npy", npy_bytes(item.heatmap)))
    written.append(atomic_write_json(folder / RESULT_NAME, payload))
    return written


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def output_stems(paths: Sequence[str]) -> list[str]:
    """Each image's file stem; numbered (001_name) when two images share one, so none overwrites another."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i:03d}_{stem}" for i, stem in enumerate(stems)]


def explain_images(model_path: Path, images: Sequence[Path], config: EvaluateConfig = EvaluateConfig(),
                   explain: ExplainConfig = ExplainConfig()) -> ExplainResult:
    """Occlusion maps of `images` with a .tflite model, over `config.workers` interpreters.

    Raises:
        ModelLoadError, InputDataError, UsageError: as `predict_images`; UsageError also for a patch
            larger than the input or a `target` the model lacks.
    """
    import time

    started = time.perf_counter()
    if not images:
        raise UsageError("no images given; pass one or more image files")
    model_path = validate_model_file(model_path)
    classifier = config.classifier(model_path)
    info = resolve_model_info(model_path, config, classifier)
    decision = decision_for(info, config)
    preprocessing = info.preprocessing
    if preprocessing is None:  # resolve_model_info requires it for images; this narrows the type
        raise UsageError("no preprocessing; pass --size, --mean and --std")
    occlusion = explain.occlusion(preprocessing.size, preprocessing)
    occlusion.check_fits(preprocessing.size, preprocessing.size)
    chosen = target_index(explain.target, info.labels)
    runner = ParallelRunner(classifier, config)
    predict = probability_fn(runner.raw, classifier)
    results = []
    try:
        for path in images:
            pixels = load_image(Path(path), preprocessing.size)
            image = preprocessing.normalize(pixels)
            target = chosen if chosen is not None else int(decision.classes(predict(image[None]))[0])
            heatmap, probability = occlusion_map(predict, image, target, occlusion)
            results.append(Explanation(str(path), info.labels[target], probability, heatmap, pixels))
    finally:
        runner.close()
    return ExplainResult(model={**file_facts(model_path), **classifier.describe()}, runtime=classifier.runtime,
                         labels=info.labels, occlusion=occlusion, decision=decision, explanations=tuple(results),
                         seconds=time.perf_counter() - started)
