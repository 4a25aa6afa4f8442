"""The pipeline's explain stage: where FP32 and INT8 look on the run's test split, for the report.

Writes RUN/explain/: `record.json` (explanation agreement of int8 against FP32 on a sample, and the
border share of each per class: the shortcut check), `grid.png` (a few test images per class that
FP32 gets right and wrong, FP32's map beside INT8's and, where TensorFlow and train/model.keras are
there, Grad-CAM of the float Keras model) and `maps.npz` (the grid's raw maps). The record's
`gradcam` holds Grad-CAM's agreement with FP32's occlusion maps on the grid images, measured as
`mdx check` measures int8 against FP32 (mdx/explain_keras.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdx.config import ConfigBase, require
from mdx.errors import ArtifactError
from mdx.records import write_record
from mdx.runtime.files import atomic_write_bytes

GRID_NAME = "grid.png"
ROW_BAND = 20


@dataclass(frozen=True)
class ExplainRunConfig(ConfigBase):
    """Images explained for the agreement (spread over the classes), and grid images per class and outcome."""

    sample: int = 16
    per_outcome: int = 2
    candidate: str = "int8"
    reference: str = "fp32"
    gradcam: bool = True  # Grad-CAM of train/model.keras beside the occlusion maps, when TensorFlow is there

    def __post_init__(self) -> None:
        require(self.sample >= 1, f"explain sample {self.sample} must be >= 1")
        require(self.per_outcome >= 1, f"explain per_outcome {self.per_outcome} must be >= 1")


@dataclass(frozen=True)
class ExplainRunResult:
    folder: Path
    explanation: dict[str, Any]
    grid: Path
    seconds: float
    gradcam: dict[str, Any] | None = None


def grid_picks(labels: np.ndarray, predicted: np.ndarray, per_outcome: int) -> list[tuple[int, bool]]:
    """(index, correct) of the first `per_outcome` correct and wrong images of each class, class by class."""
    picks = []
    for label in np.unique(labels):
        for correct in (True, False):
            hits = np.flatnonzero((labels == label) & ((predicted == labels) == correct))[:per_outcome]
            picks += [(int(i), correct) for i in hits]
    return picks


def _grid_png(rows: list[tuple[str, list[Any]]]) -> bytes:
    """Rows of (caption, overlays side by side) PIL images stacked into one PNG."""
    import io

    from PIL import Image, ImageDraw

    width = max(sum(cell.width for cell in cells) for _, cells in rows)
    height = sum(ROW_BAND + max(cell.height for cell in cells) for _, cells in rows)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for caption, cells in rows:
        ImageDraw.Draw(canvas).text((4, y + 4), caption, fill=(0, 0, 0))
        x = 0
        for cell in cells:
            canvas.paste(cell, (x, y + ROW_BAND))
            x += cell.width
        y += ROW_BAND + max(cell.height for cell in cells)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _gradcam(run: Path, model: Path, explained: Any, labels: list[int], names: list[str]
             ) -> tuple[np.ndarray | None, dict[str, Any] | None, str | None]:
    """(Grad-CAM maps, their agreement with `explained`'s occlusion maps, None), or (None, None, why not)."""
    from mdx.explain_keras import compare_with_occlusion, has_tensorflow
    from mdx.runtime.model_info import load_model_info

    keras_file = run / "train" / "model.keras"
    if not keras_file.is_file():
        return None, None, f"{keras_file} not found: no Grad-CAM maps"
    if not has_tensorflow():
        return None, None, "TensorFlow is not installed: no Grad-CAM maps (pip install 'mdx[train]')"
    preprocessing = load_model_info(model).preprocessing
    if preprocessing is None:  # explain_images found it for the same model; this narrows the type
        raise ArtifactError(f"{model}: no preprocessing recorded beside it; rerun `mdx convert`")
    items = explained.explanations
    inputs = preprocessing.normalize(np.stack([e.pixels for e in items]))
    cams, agreement = compare_with_occlusion(keras_file, inputs, [explained.labels.index(e.target) for e in items],
                                             np.stack([e.heatmap for e in items]), [e.path for e in items], labels,
                                             names)
    return cams, agreement, None


def explain_run(run: Path, test_data: Path, config: ExplainRunConfig = ExplainRunConfig()) -> ExplainRunResult:
    """Explanation agreement of `config.candidate` against `config.reference` and the overlay grid.

    Raises:
        ArtifactError: the run lacks either model or the reference's evaluation (predictions.npz).
    """
    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.explain import explain_images
    from mdx.runtime.explain_parity import ExplanationCheck
    from mdx.runtime.overlay import overlay_image

    started = time.perf_counter()
    run = Path(run)
    models = {name: run / "convert" / name / "model.tflite" for name in (config.reference, config.candidate)}
    predictions = run / "evaluate" / config.reference / "predictions.npz"
    for path in (*models.values(), predictions):
        if not path.is_file():
            raise ArtifactError(f"{path} not found; run `mdx pipeline` (or convert and evaluate) before explaining")
    candidate, reference = models[config.candidate], models[config.reference]
    result = check(candidate, reference, test_data, EvaluateConfig(n_boot=0),
                   explanations=ExplanationCheck(sample=config.sample))
    explanation = result.to_dict()["explanation"]
    with np.load(predictions, allow_pickle=False) as archive:
        labels, paths, names = archive["labels"], [str(p) for p in archive["paths"]], [str(c) for c in archive["class_names"]]
        predicted = result.decision.classes(archive["probs"])
    picks = grid_picks(labels, predicted, config.per_outcome)
    images = [Path(paths[i]) for i, _ in picks]
    maps = {name: explain_images(model, images) for name, model in models.items()}
    cams, gradcam, skipped = (None, None, "Grad-CAM is off (ExplainRunConfig.gradcam)")
    if config.gradcam:
        cams, gradcam, skipped = _gradcam(run, reference, maps[config.reference], [int(labels[i]) for i, _ in picks],
                                          names)
    rows = []
    for n, (index, correct) in enumerate(picks):
        caption = (f"true {names[labels[index]]}, {config.reference} {'correct' if correct else 'wrong'}: "
                   f"{Path(paths[index]).name}")
        cells = [overlay_image(e.pixels, e.heatmap, f"{name}: {e.target} {e.probability:.3f}")
                 for name in (config.reference, config.candidate) for e in [maps[name].explanations[n]]]
        if cams is not None and gradcam is not None:
            e = maps[config.reference].explanations[n]
            cells.append(overlay_image(e.pixels, cams[n], f"Grad-CAM: {e.target}, rho {gradcam['images'][n]['spearman']:.2f}"))
        rows.append((caption, cells))
    folder = run / "explain"
    grid = atomic_write_bytes(folder / GRID_NAME, _grid_png(rows))
    import io

    buffer = io.BytesIO()
    arrays_by_name = {name: np.stack([e.heatmap for e in maps[name].explanations]) for name in models}
    np.savez_compressed(buffer, paths=np.asarray([str(p) for p in images]), **arrays_by_name,
                        **({} if cams is None else {"gradcam": cams}))
    arrays = atomic_write_bytes(folder / "maps.npz", buffer.getvalue())
    seconds = time.perf_counter() - started
    inputs = list(models.values()) + ([run / "train" / "model.keras"] if gradcam is not None else [])
    write_record(folder, stage="explain", config={**config.to_dict(), "test_data": str(test_data)},
                 inputs=inputs, outputs=[grid, arrays], metrics={"explanation": explanation, "gradcam": gradcam},
                 wall_seconds=seconds, extra={"warnings": list(result.warnings), "gradcam_skipped": skipped,
                                              "grid": [{"path": str(images[n]), "correct": c} for n, (_, c) in enumerate(picks)]})
    return ExplainRunResult(folder, explanation, grid, seconds, gradcam)
