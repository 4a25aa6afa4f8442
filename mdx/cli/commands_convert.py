"""`mdx convert`, `mdx export`, `mdx serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mdx.cli.app import app, console, log, out
from mdx.cli.options import FILL_HELP, PATCH_HELP, STRIDE_HELP
from mdx.errors import ConfigError


def _floats(option: str, text: str | None) -> tuple[float, ...] | None:
    """'127.5' or '123.7,116.3,103.5' -> floats; the config checks the count."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a number or three comma-separated numbers (R,G,B)") from None


@app.command("convert")
def convert_command(
    source: Annotated[
        Path, typer.Argument(help="A run folder (RUN/train/record.json) or a model: .keras, .h5, SavedModel folder.")
    ],
    fp16: Annotated[bool, typer.Option("--fp16", help="Add float16 weights.")] = False,
    dynamic: Annotated[
        bool, typer.Option("--dynamic", help="Add dynamic-range (int8 weights, float activations).")
    ] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Add full-integer int8 (calibrated; float32 input/output around an int8 body, see --io).")
    ] = False,
    int8_fallback: Annotated[
        bool, typer.Option("--int8-fallback", help="Add int8 with float fallback ops and float io.")
    ] = False,
    all_variants: Annotated[
        bool, typer.Option("--all", help="Add every variant: fp16, dynamic, int8, int8-fallback.")
    ] = False,
    io: Annotated[
        str | None, typer.Option("--io", help="Input/output type of the int8 variant: float32 (default; loads in MediaPipe Tasks), uint8 or int8.")
    ] = None,
    calibration_count: Annotated[
        int | None, typer.Option(help="Calibration images (default 200), stratified by class when labelled.")
    ] = None,
    calibration_dir: Annotated[
        Path | None, typer.Option(help="Calibration images: one sub-folder per class, or one flat folder of unlabelled "
                                      "images from the deployment site (default: the run's training split).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Model file only: input size in pixels.")] = None,
    mean: Annotated[str | None, typer.Option(help="Model file only: pixel mean, one value or R,G,B.")] = None,
    std: Annotated[str | None, typer.Option(help="Model file only: pixel std, one value or R,G,B.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Model file only: labels file, one class per line.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Refuse a variant that would not load on this runtime, e.g. tflite-runtime-2.14.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default for a run: RUN/convert).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing variant folders.")] = False,
    bias_correction: Annotated[
        bool,
        typer.Option(
            "--bias-correction/--no-bias-correction",
            help="int8 variants: correct the biases for the mean error of int8 weights and of the output.",
        ),
    ] = True,
    auto_fallback: Annotated[
        bool,
        typer.Option(
            "--auto-fallback",
            help="With --int8: keep the layers int8 hurts most in float until parity holds on the run's validation split.",
        ),
    ] = False,
    fallback_min_agreement: Annotated[
        float | None,
        typer.Option(help="With --auto-fallback: the agreement with FP32 to reach (unset: 0.98, as mdx check)."),
    ] = None,
    fallback_max_acc_drop: Annotated[
        float | None,
        typer.Option(help="With --auto-fallback: the accuracy drop allowed, in points (unset: 1.0, as mdx check)."),
    ] = None,
    fallback_max_auc_drop: Annotated[
        float | None,
        typer.Option(help="With --auto-fallback: the AUC drop allowed (unset: 0.01, as mdx check)."),
    ] = None,
    qat: Annotated[
        bool,
        typer.Option("--qat", help="With --int8: fine-tune the quantized model on the run's training split to agree "
                                   "with FP32 (quantization-aware, tfmot); minutes of training."),
    ] = False,
    qat_epochs: Annotated[int | None, typer.Option(help="With --qat: fine-tuning epochs (unset: 3).")] = None,
) -> None:
    """Convert a trained model to .tflite variants: fp32 (always), fp16, dynamic, int8, int8-fallback."""
    from mdx.convert.convert import ConvertConfig, convert
    from mdx.variants import Quantization

    chosen = {
        Quantization.FP16: fp16,
        Quantization.DYNAMIC: dynamic,
        Quantization.INT8: int8,
        Quantization.INT8_FALLBACK: int8_fallback,
    }
    if all_variants and any(chosen.values()):
        flags = ", ".join(f"--{q.value}" for q, on in chosen.items() if on)
        raise ConfigError(f"--all already includes {flags}; pass one or the other")
    variants = tuple(q for q, on in chosen.items() if on or all_variants)
    config = ConvertConfig(
        variants=variants,
        io=io,
        calibration_count=calibration_count,
        calibration_dir=calibration_dir,
        size=size,
        mean=_floats("--mean", mean),
        std=_floats("--std", std),
        labels_file=labels,
        target=target,
        out=out_dir,
        overwrite=overwrite,
        bias_correction=bias_correction,
        auto_fallback=auto_fallback,
        fallback_min_agreement=fallback_min_agreement,
        fallback_max_acc_drop_pt=fallback_max_acc_drop,
        fallback_max_auc_drop=fallback_max_auc_drop,
        qat=qat,
        qat_epochs=qat_epochs,
    )
    with console.status("converting (TensorFlow)…"):
        result = convert(source, config, on_log=log)
    out.print(str(result.out))


@app.command("export")
def export_command(
    target: Annotated[str, typer.Argument(help="Where to export: android (the demo app) or web (a static page).")],
    run_dir: Annotated[Path, typer.Argument(help="A run folder with convert/<variant>/ and train/record.json.")],
    variant: Annotated[
        str, typer.Option("--variant", help="Variant to export: fp32, fp16, dynamic, int8, int8-fallback.")
    ] = "int8",
    app_dir: Annotated[
        Path | None, typer.Option("--app", help="android: the demo app folder [default: android_demo].")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="web: the page folder [default: RUN/web].")] = None,
    litertjs: Annotated[
        Path | None,
        typer.Option("--litertjs", help="web: the @litertjs npm folder [default: web/node_modules/@litertjs]."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the exported assets and golden vectors, or the page.")
    ] = False,
    patch: Annotated[int | None, typer.Option(help=f"web: the page's heatmap. {PATCH_HELP}")] = None,
    stride: Annotated[int | None, typer.Option(help=f"web: the page's heatmap. {STRIDE_HELP}")] = None,
    fill: Annotated[float | None, typer.Option(help=f"web: the page's heatmap. {FILL_HELP}")] = None,
) -> None:
    """Export a variant with its config and golden vectors into the Android demo app or a web page."""
    if target == "web":
        from mdx.export_web import LITERTJS, WebExportConfig, export_web

        if app_dir is not None:
            raise ConfigError("--app is for mdx export android; the web page goes to --out DIR")
        config = WebExportConfig(variant=variant, out=out_dir or run_dir / "web", litertjs=litertjs or LITERTJS,
                                 overwrite=overwrite, patch=patch, stride=stride, fill=fill)
        with console.status("exporting the web page…"):
            page = export_web(run_dir, config, on_log=log)
        out.print(str(page.out), soft_wrap=True)
        return
    from mdx.export_android import ExportConfig, export_android

    if target != "android":
        raise ConfigError(f"export target {target!r} is unknown; expected android or web (mdx export web RUN)")
    if out_dir is not None or litertjs is not None:
        raise ConfigError("--out and --litertjs are for mdx export web; the Android export writes into --app")
    if (patch, stride, fill) != (None, None, None):
        raise ConfigError("--patch, --stride and --fill set the web page's heatmap; the Android app has none: drop them")
    config = ExportConfig(variant=variant, app=app_dir or Path("android_demo"), overwrite=overwrite)
    with console.status("exporting to the Android app…"):
        result = export_android(run_dir, config, on_log=log)
    out.print(str(result.assets), soft_wrap=True)


@app.command("serve")
def serve_command(
    folder: Annotated[Path, typer.Argument(help="A folder written by mdx export web.")],
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback: only this computer).")] = "127.0.0.1",
) -> None:
    """Serve an exported web page with the headers that let it use threads (COOP/COEP), until Ctrl-C."""
    from mdx.serve import make_server

    server = make_server(folder, host=host, port=port)
    bound_host, bound_port = server.server_address[:2]
    out.print(f"serving {folder} at http://{bound_host}:{bound_port}/ (cross-origin isolated); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an error, nothing to clean up
        out.print("serve: stopped")
    finally:
        server.server_close()
