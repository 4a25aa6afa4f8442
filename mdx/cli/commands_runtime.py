"""`mdx evaluate`, `mdx predict`, `mdx bench`, `mdx check` — thin wrappers over `mdx.runtime`."""

from __future__ import annotations

from mdx.cli.app import app, not_built


@app.command("evaluate")
def evaluate_command() -> None:
    """Accuracy, sensitivity, specificity, F1, AUC with CIs of a .tflite model on a data folder."""
    not_built("evaluate", "issue 6")


@app.command("predict")
def predict_command() -> None:
    """Top-K classes with probabilities for images, with a .tflite or .keras model."""
    not_built("predict", "issue 6")


@app.command("bench")
def bench_command() -> None:
    """Latency (init, first invoke, p50/p90/p99), peak RSS and size of a .tflite model on this machine."""
    not_built("bench", "issue 6")


@app.command("check")
def check_command() -> None:
    """Parity gate: a candidate model against its reference; exits 3 when a tolerance fails."""
    not_built("check", "issue 6")
