"""The pipeline's explain stage: where FP32 and INT8 look on the run's test split, for the report.

Writes RUN/explain/: `record.json` (explanation agreement of int8 against FP32 on a sample, and the
border share of each per class: the shortcut check), `grid.png` (a few test images per class that
FP32 gets right and wrong, FP32's map beside INT8's) and `maps.npz` (the grid's raw maps).
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

    def __post_init__(self) -> None:
        require(self.sample >= 1, f"explain sample {self.sample} must be >= 1")
        require(self.per_outcome >= 1, f"explain per_outcome {self.per_outcome} must be >= 1")


@dataclass(frozen=True)
class ExplainRunResult:
    folder: Path
    explanation: dict[str, Any]
    grid: Path
    seconds: float


def grid_picks(labels: np.ndarray, predicted: np.ndarray, per_outcome: int) -> list[tuple[int, bool]]:
    """(index, correct) of the first `per_outcome` correct and wrong images of each class, class by class."""
    picks = []
    for label in np.unique(labels):
        for correct in (True, False):
            hits = np.flatnonzero((labels == label) & ((predicted == labels) == correct))[:per_outcome]
            picks += [(int(i), correct) for i in hits]
    return picks


def _grid_png(rows: list[tuple[str, Any, Any]]) -> bytes:
    """Rows of (caption, left overlay, right overlay) PIL images stacked into one PNG."""
    import io

    from PIL import Image, ImageDraw

    width = rows[0][1].width + rows[0][2].width
    height = sum(ROW_BAND + left.height for _, left, _ in rows)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for caption, left, right in rows:
        ImageDraw.Draw(canvas).text((4, y + 4), caption, fill=(0, 0, 0))
        canvas.paste(left, (0, y + ROW_BAND))
        canvas.paste(right, (left.width, y + ROW_BAND))
        y += ROW_BAND + left.height
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


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
    rows = []
    for n, (index, correct) in enumerate(picks):
        caption = (f"true {names[labels[index]]}, {config.reference} {'correct' if correct else 'wrong'}: "
                   f"{Path(paths[index]).name}")
        cells = [overlay_image(e.pixels, e.heatmap, f"{name}: {e.target} {e.probability:.3f}")
                 for name in (config.reference, config.candidate) for e in [maps[name].explanations[n]]]
        rows.append((caption, *cells))
    folder = run / "explain"
    grid = atomic_write_bytes(folder / GRID_NAME, _grid_png(rows))
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, paths=np.asarray([str(p) for p in images]),
                        **{name: np.stack([e.heatmap for e in maps[name].explanations]) for name in models})
    arrays = atomic_write_bytes(folder / "maps.npz", buffer.getvalue())
    seconds = time.perf_counter() - started
    write_record(folder, stage="explain", config={**config.to_dict(), "test_data": str(test_data)},
                 inputs=list(models.values()), outputs=[grid, arrays], metrics={"explanation": explanation},
                 wall_seconds=seconds, extra={"warnings": list(result.warnings),
                                              "grid": [{"path": str(images[n]), "correct": c} for n, (_, c) in enumerate(picks)]})
    return ExplainRunResult(folder, explanation, grid, seconds)
