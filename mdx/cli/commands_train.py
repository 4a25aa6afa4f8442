"""`mdx import-weights`, `mdx prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mdx.cli.app import app, log

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
def prune_command(
    source: Annotated[Path, typer.Argument(metavar="RUN_DIR|MODEL", help="run, its train/ folder or model.keras")],
    sparsity: Annotated[float, typer.Option("--sparsity", help="share of each pruned kernel to zero, (0, 1)")] = 0.5,
    schedule: Annotated[str, typer.Option("--schedule", help="constant, or polynomial (0 -> target)")] = "constant",
    epochs: Annotated[int, typer.Option("--epochs", help="fine-tuning epochs while pruning")] = 2,
    structured: Annotated[str | None, typer.Option("--structured", help="M:N structured sparsity, e.g. 2:4")] = None,
    skip_first_last: Annotated[bool, typer.Option("--skip-first-last/--no-skip-first-last",
                                                  help="leave the first conv and the classifier dense")] = True,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="default: the run's")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="default: the run's batch size")] = None,
    clusters: Annotated[int | None, typer.Option(
        "--clusters", help="then cluster each pruned kernel to K values, zeros kept (tfmot), "
                           "e.g. 16: smaller gzip")] = None,
    cluster_epochs: Annotated[int, typer.Option("--cluster-epochs", help="fine-tuning epochs of the clusters")] = 1,
    out: Annotated[Path | None, typer.Option("--out", help="output folder; default RUN/prune-<sparsity>")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output folder")] = False,
) -> None:
    """Magnitude-prune a trained model with tensorflow-model-optimization and check the sparsity reached."""
    from mdx.train.prune_setup import PruneConfig

    config = PruneConfig(sparsity=sparsity, schedule=schedule, epochs=epochs, structured=structured,
                         skip_first_last=skip_first_last, learning_rate=learning_rate, batch_size=batch_size,
                         clusters=clusters, cluster_epochs=cluster_epochs)
    from mdx.convert.sparse import tflite_bytes  # imports TensorFlow: only when run
    from mdx.train.prune import prune

    result = prune(source, config, out, fp32_tflite=tflite_bytes, overwrite=overwrite, log=log)
    report, tflite = result.keras_sparsity, result.tflite_sparsity
    gz = result.size["tflite_fp32"]
    log(f"prune: fp32 .tflite {tflite.overall:.3f} sparse (min {tflite.minimum:.3f}); gzip "
        f"{gz['parent']['gzip_bytes'] / 1e6:.2f} MB parent -> {gz['pruned']['gzip_bytes'] / 1e6:.2f} MB pruned "
        f"(raw {gz['pruned']['bytes'] / 1e6:.2f} MB either way)")
    log(f"prune: {result.target:.2f} target, {report.overall:.3f} achieved (min {report.minimum:.3f} over "
        f"{len(report.kernels)} kernels), saved {result.model_path} in {result.wall_seconds:.0f} s")
    if result.clusters:
        log(f"prune: at most {max(c.max_per_channel for c in result.clusters)} distinct values per output channel "
            f"in {len(result.clusters)} clustered kernels (--clusters {clusters})")
