"""`mdx explain`: occlusion maps of a .tflite model (mdx.runtime, no TensorFlow), or Grad-CAM of a Keras
model (mdx.explain_keras, TensorFlow imported only for that method). Errors are raised; the app prints them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mdx.cli.app import app
from mdx.cli.commands_runtime import (
    _config,
    _is_keras,
    _show,
    _write_json,
    write_explanations,
)
from mdx.cli.options import FILL_HELP, PATCH_HELP, RUNTIME_HELP, STRIDE_HELP, THRESHOLD_HELP
from mdx.errors import ConfigError
from mdx.runtime.preprocess import PRESET_HELP

METHOD_HELP = ("occlusion: any .tflite, no TensorFlow; gradcam: Grad-CAM on the last convolutional block of a "
               ".keras model (a file, its train/ folder or the run folder), needs TensorFlow.")


def _keras_of(model: Path) -> Path:
    """A run folder stands for its train/ stage, where the float Keras model is."""
    return model / "train" if model.is_dir() and _is_keras(model / "train") and not _is_keras(model) else model


@app.command("explain")
def explain_command(
    model: Path = typer.Argument(..., help=".tflite model (occlusion), or .keras model / run folder (--method gradcam)."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(..., "--out", help="Folder for <image>.png (overlay), <image>.npy (map) and explain.json."),
    method: str = typer.Option("occlusion", help=METHOD_HELP),
    target: str | None = typer.Option(None, help="Class to explain (default: each image's class at the threshold)."),
    patch: int | None = typer.Option(None, help=PATCH_HELP),
    stride: int | None = typer.Option(None, help=STRIDE_HELP),
    fill: float | None = typer.Option(None, help=FILL_HELP),
    workers: int = typer.Option(1, help="Interpreters run in parallel threads."),
    threads: int | None = typer.Option(None, help="Interpreter threads (default: the runtime's)."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    size: int | None = typer.Option(None, help="Input size (default: record.json beside the model)."),
    mean: str | None = typer.Option(None, help="Per-channel mean, 1 or 3 comma-separated values."),
    std: str | None = typer.Option(None, help="Per-channel std, 1 or 3 comma-separated values."),
    preset: str | None = typer.Option(None, help=PRESET_HELP),
    labels: str | None = typer.Option(None, help="Labels file (one per line) or NAME,NAME,..."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing explain.json in --out."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result (without the maps) as JSON here."),
) -> None:
    """Where the model looks: occlusion (or Grad-CAM) maps overlaid on each image, with its class and probability."""
    from mdx.explain_keras import check_method

    if method == "gradcam":
        model = _keras_of(model)
    check_method(method, model, _is_keras(model))
    config = _config(runtime, threads, False, size, mean, std, labels, preset, workers=workers, threshold=threshold)
    if method == "gradcam":
        # the sweep and the interpreter do not exist for Grad-CAM: refused, not ignored
        given = [name for name, value, default in (("--patch", patch, None), ("--stride", stride, None),
                                                   ("--fill", fill, None), ("--workers", workers, 1),
                                                   ("--threads", threads, None), ("--runtime", runtime, "auto"))
                 if value != default]
        if given:
            raise ConfigError(f"{', '.join(given)} set occlusion or the interpreter, which --method gradcam does not "
                              "use; drop them, or explain the .tflite with --method occlusion")
        from mdx.explain_keras import gradcam_images

        result = gradcam_images(model, images, config, target)
        _write_json(json_out, _show(result, out, overwrite, f"Grad-CAM on layer {result.layer}"))
        return
    from mdx.runtime.cli import explain_config, probe_models

    explain = explain_config(patch, stride, fill, target)
    probe_models(model, runtime=runtime)
    _write_json(json_out, write_explanations(model, images, config, explain, out, overwrite))
