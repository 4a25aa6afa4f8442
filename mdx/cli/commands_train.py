"""`mdx train`, `mdx import-weights`, `mdx prune`."""

from __future__ import annotations

from mdx.cli.app import app, not_built


@app.command("train")
def train_command() -> None:
    """Train a MobileNetV2 transfer-learning classifier on a folder-per-class data set."""
    not_built("train", "issue 3")


@app.command("import-weights")
def import_weights_command() -> None:
    """Read ImageNet weights out of a MobileNetV2 .tflite into a Keras model (offline transfer learning)."""
    not_built("import-weights", "issue 3")


@app.command("prune")
def prune_command() -> None:
    """Magnitude-prune a trained model with tensorflow-model-optimization and check the sparsity reached."""
    not_built("prune", "issue 5")
