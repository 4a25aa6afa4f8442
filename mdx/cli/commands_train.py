"""`mdx import-weights`, `mdx prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mdx.cli.app import app, log, not_built

_MODEL_HELP = "MobileNetV2 1.0 ImageNet .tflite (int8, fp16 or fp32), e.g. " \
    "data/imagenet_mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite"
_OUT_HELP = "NAME.keras: that file plus NAME.record.json beside it; any other path: a stage folder with " \
    "model.keras, labels.txt and record.json"


@app.command("import-weights")
def import_weights_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL.tflite", help=_MODEL_HELP)],
    out: Annotated[Path, typer.Option("--out", help=_OUT_HELP)],
    labels: Annotated[Path | None, typer.Option("--labels", help="class names, one per output; copied")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output")] = False,
) -> None:
    """Read ImageNet weights out of a MobileNetV2 .tflite into a Keras model (offline transfer learning)."""
    from mdx.train.imagenet_import import ImportConfig, import_weights  # imports TensorFlow: only when run

    result = import_weights(model, ImportConfig(labels=labels), out, overwrite=overwrite)
    log(f"import-weights: saved {result.model_path} ({result.model_bytes / 1e6:.1f} MB) in {result.seconds:.1f} s")


@app.command("prune")
def prune_command() -> None:
    """Magnitude-prune a trained model with tensorflow-model-optimization and check the sparsity reached."""
    not_built("prune", "issue 5")
