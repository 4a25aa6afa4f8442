"""Grad-CAM maps of a Keras model: for images (`mdx explain --method gradcam`), saved as occlusion maps
are, and beside FP32 occlusion maps (the pipeline's explain stage) with the agreement `mdx check` uses.

TensorFlow is imported inside the functions (mdx.train.gradcam), so `mdx --help` stays TF-free and an
install without it gets one line naming the fix. The algorithm is docs/explain.md's "Grad-CAM".
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import ConfigError
from mdx.runtime.decision import Decision
from mdx.runtime.evaluate import EvaluateConfig
from mdx.runtime.explain import Explanation, save_maps

METHODS = ("occlusion", "gradcam")


def has_tensorflow() -> bool:
    """TensorFlow and tf-keras are installed (found, not imported: that takes seconds)."""
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tf_keras"))


def check_method(method: str, model: Path, is_keras: bool) -> None:
    """Refuse an unknown method, Grad-CAM of a .tflite file, and Grad-CAM where TensorFlow is missing.

    Raises:
        ConfigError: one of those, naming the file and the fix.
    """
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is unknown; expected one of {', '.join(METHODS)}")
    if method == "occlusion":
        return
    if not is_keras:
        raise ConfigError(f"--method gradcam needs a Keras model (.keras, or a run's train/ folder), not {model}; "
                          "pass the run's train/model.keras, or drop --method for occlusion of the .tflite")
    if not has_tensorflow():
        raise ConfigError(f"--method gradcam on {model} needs TensorFlow and tf-keras, which this install lacks; "
                          "pip install 'mdx[train]', or explain the converted .tflite with --method occlusion")


@dataclass(frozen=True, eq=False)
class GradCamResult:
    """Grad-CAM maps of every image, with the model, the feature layer and the decision they were made with."""

    model: dict[str, Any]
    layer: str
    labels: tuple[str, ...]
    decision: Decision
    explanations: tuple[Explanation, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        from mdx.runtime.machine import machine_facts

        return {"stage": "explain", "method": "gradcam", "model": self.model, "layer": self.layer,
                "labels": list(self.labels), "decision": self.decision.to_dict(), "seconds": round(self.seconds, 3),
                "machine": machine_facts(), "images": [e.to_dict() for e in self.explanations]}

    def save(self, folder: Path, *, overwrite: bool = False) -> list[Path]:
        """<image>.png and <image>.npy per image and explain.json, as occlusion's (runtime.explain.save_maps)."""
        return save_maps(Path(folder), self.explanations, self.to_dict(), overwrite=overwrite)


def gradcam_images(model_path: Path, images: Sequence[Path], config: EvaluateConfig = EvaluateConfig(),
                   target: str | None = None) -> GradCamResult:
    """Grad-CAM maps of `images` with a Keras model (file or stage folder), each following its class at the
    decision threshold (labels, preprocessing and threshold found beside the model), or `target`.

    Raises:
        ArtifactError: the model is missing or unreadable.
        InputDataError: an image is missing or unreadable.
        UsageError: no preprocessing or labels, labels that do not match the model, or an unknown `target`.
    """
    from mdx.runtime.decision import decide
    from mdx.runtime.explain import target_index
    from mdx.runtime.files import file_facts
    from mdx.runtime.images import load_image
    from mdx.runtime.model_info import check_class_count, load_model_info
    from mdx.train.predict_keras import resolve_keras_model  # no TensorFlow yet: bad input fails in a blink

    started = time.perf_counter()
    if not images:
        raise ConfigError("no images given; pass one or more image files")
    model_file = resolve_keras_model(model_path)
    info = load_model_info(model_file, config.preprocessing_overrides(), config.labels, threshold=config.threshold)
    if info.preprocessing is None:  # load_model_info requires it for images; this narrows the type
        raise ConfigError("no preprocessing; pass --size, --mean and --std")
    chosen = target_index(target, info.labels)
    decision = decide(info.decision, info.labels)
    pixels = np.stack([load_image(Path(p), info.preprocessing.size) for p in images])
    inputs = info.preprocessing.normalize(pixels)
    from mdx.train.gradcam import feature_layer, grad_cam
    from mdx.train.predict_keras import load_keras_model, predict_proba_keras

    probs = predict_proba_keras(model_file, inputs)
    check_class_count(info, probs.shape[1], model_file)
    targets = np.full(len(inputs), chosen) if chosen is not None else decision.classes(probs)
    model = load_keras_model(model_file)
    cams = grad_cam(model, inputs, targets)
    explanations = tuple(Explanation(str(p), info.labels[t], float(probs[i, t]), cams[i], pixels[i])
                         for i, (p, t) in enumerate(zip(images, (int(v) for v in targets))))
    return GradCamResult(model=file_facts(model_file), layer=feature_layer(model), labels=info.labels,
                         decision=decision, explanations=explanations, seconds=time.perf_counter() - started)


def compare_with_occlusion(model_file: Path, inputs: np.ndarray, targets: Sequence[int], occlusion_maps: np.ndarray,
                           paths: Sequence[str], labels: Sequence[int], class_names: Sequence[str]
                           ) -> tuple[np.ndarray, dict[str, Any]]:
    """Grad-CAM of the Keras model on `inputs`, following `targets`, against the occlusion maps of its float
    .tflite: per image the Spearman correlation and top-10% IoU of `mdx check` and both border shares.

    Args:
        model_file: the float Keras model (.keras).
        inputs: preprocessed float32 images (N, H, W, C), as the occlusion maps were made on.
        targets: the class each occlusion map followed.
        occlusion_maps: (N, H, W) FP32 occlusion maps.
        paths, labels: each image's path and true class index (the border share is averaged per true class).
        class_names: the model's classes.

    Returns:
        (Grad-CAM maps (N, H, W), the agreement as JSON)
    """
    from mdx.runtime.explain_parity import map_stats, nan_mean, rounded
    from mdx.runtime.occlusion import border_share, spearman, top_iou
    from mdx.train.gradcam import feature_layer, grad_cam
    from mdx.train.predict_keras import load_keras_model

    model = load_keras_model(model_file)
    cams = grad_cam(model, inputs, np.asarray(targets))
    rho = [spearman(cam, occ) for cam, occ in zip(cams, occlusion_maps)]
    iou = [top_iou(cam, occ) for cam, occ in zip(cams, occlusion_maps)]
    cam_border, occ_border = [border_share(c) for c in cams], [border_share(o) for o in occlusion_maps]

    def by_class(shares: list[float]) -> dict[str, float | None]:
        return {name: nan_mean([s for s, y in zip(shares, labels) if y == k]) for k, name in enumerate(class_names)}

    summary = {
        "model": str(model_file), "layer": feature_layer(model), "n": len(rho),
        "spearman": map_stats(rho), "top10_iou": map_stats(iou),
        "border_share": {"gradcam": nan_mean(cam_border), "occlusion": nan_mean(occ_border),
                         "gradcam_by_class": by_class(cam_border), "occlusion_by_class": by_class(occ_border)},
        "images": [{"path": str(p), "label": class_names[y], "class": class_names[t], "spearman": round(r, 4),
                    "top10_iou": round(i, 4), "gradcam_border_share": cb, "occlusion_border_share": ob}
                   for p, y, t, r, i, cb, ob in zip(paths, labels, targets, rho, iou, rounded(cam_border),
                                                    rounded(occ_border))],
    }
    return cams, summary
