"""`mdx evaluate`, `mdx predict`, `mdx bench`, `mdx check` — thin wrappers over `mdx.runtime` (`mdx explain`: commands_explain).

A .keras model (predict, or the reference of check) is run by `mdx.train.predict_keras`, imported
inside the command so `mdx --help` never imports TensorFlow. Errors are raised; the app prints them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Column, Table

from mdx.cli.app import app, log, out
from mdx.cli.options import PATCH_HELP, RUNTIME_HELP, STRIDE_HELP, THRESHOLD_HELP
from mdx.errors import ConfigError, MdxError, ParityError
from mdx.runtime.heap import bound_heap_growth
from mdx.runtime.preprocess import PRESET_HELP  # in runtime/ so that `python -m runtime` says the same


def _print_table(title: str, headers: Sequence[str | Column], rows: Sequence[Sequence[str]]) -> None:
    """The title on its own line (a long rich title would widen every column), then the table."""
    table = Table(*headers, box=box.SIMPLE_HEAD)
    for row in rows:
        table.add_row(*row)
    out.print(title, soft_wrap=True)
    out.print(table)


def _keras_module() -> Any:
    """`mdx.train.predict_keras`, or a clear error when this build lacks it."""
    try:
        predict_keras = importlib.import_module("mdx.train.predict_keras")
    except ModuleNotFoundError as exc:
        if exc.name not in ("mdx.train.predict_keras", "mdx.train"):
            raise
        raise MdxError(
            "running a .keras model needs mdx.train.predict_keras, which this build does not have; "
            "convert the model to .tflite (`mdx convert`) and pass that instead"
        ) from None
    return predict_keras


def _is_keras(path: Path) -> bool:
    """A .keras/.h5 file, or a stage folder holding model.keras / model.h5."""
    if path.is_dir():
        return any((path / name).is_file() for name in ("model.keras", "model.h5"))
    return path.suffix in (".keras", ".h5")


def _keras_model(path: Path) -> tuple[Path, Callable[[Any], Any]]:
    """(the model file, inputs -> probabilities) for a Keras model file or stage folder."""
    module = _keras_module()
    model_file = module.resolve_keras_model(path)
    return model_file, lambda inputs: module.predict_proba_keras(model_file, inputs)


def _config(runtime: str, threads: int | None, no_xnnpack: bool, size: int | None, mean: str | None,
            std: str | None, labels: str | None, preset: str | None = None, **extra: Any):
    from mdx.runtime.cli import parse_floats, parse_labels
    from mdx.runtime.evaluate import EvaluateConfig

    return EvaluateConfig(runtime=runtime, threads=threads, xnnpack=not no_xnnpack, size=size,
                          mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"), labels=parse_labels(labels),
                          preset=preset, **extra)


def _logits_note(output_kind: str) -> str:
    """Said in the title when the model outputs logits: its probabilities are the harness's softmax."""
    return ", outputs logits (softmax applied)" if output_kind == "logits" else ""


def _write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        from mdx.runtime.files import atomic_write_json

        atomic_write_json(path, payload)
        log(f"wrote {path}")


@app.command("evaluate")
def evaluate_command(
    model: Path = typer.Argument(..., help=".tflite model."),
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class, or an .npz with inputs and labels."),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    threads: int | None = typer.Option(None, help="Interpreter threads (default: the runtime's)."),
    no_xnnpack: bool = typer.Option(False, "--no-xnnpack", help="Run without the default XNNPACK delegate."),
    workers: int = typer.Option(1, help="Interpreters run in parallel threads."),
    size: int | None = typer.Option(None, help="Input size (default: record.json beside the model)."),
    mean: str | None = typer.Option(None, help="Per-channel mean, 1 or 3 comma-separated values."),
    std: str | None = typer.Option(None, help="Per-channel std, 1 or 3 comma-separated values."),
    preset: str | None = typer.Option(None, help=PRESET_HELP),
    labels: str | None = typer.Option(None, help="Labels file (one per line) or NAME,NAME,..."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    positive_class: str | None = typer.Option(None, help="Binary: the positive class (default: the second label)."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the 95% CIs (0: none)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full result as JSON here."),
) -> None:
    """Accuracy, sensitivity, specificity, F1, AUC with CIs of a .tflite model on a data folder."""
    from mdx.runtime.cli import metric_rows, probe_models
    from mdx.runtime.evaluate import evaluate

    config = _config(runtime, threads, no_xnnpack, size, mean, std, labels, preset, workers=workers, threshold=threshold,
                     positive_class=positive_class, n_boot=n_boot)
    probe_models(model, runtime=runtime)
    bound_heap_growth()
    result = evaluate(model, data, config)
    m = result.metrics
    for skipped in result.data["skipped"]:
        log(f"skipped {skipped['reason']}")
    title = (f"{model.name}: {m['n']} samples, {result.runtime}, {result.decision.describe()}, "
             f"positive {m['positive_class']}{_logits_note(result.output_kind)}")
    _print_table(title, ("metric", "value", "95% CI"), metric_rows(m))
    out.print(f"confusion matrix (rows true, columns predicted; {', '.join(m['classes'])}): {m['confusion_matrix']}")
    _write_json(json_out, result.to_dict())


@app.command("predict")
def predict_command(
    model: Path = typer.Argument(..., help=".tflite or .keras model."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    labels: str | None = typer.Option(None, help="Labels file (one per line) or NAME,NAME,..."),
    top: int = typer.Option(1, help="How many classes to show per image."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    size: int | None = typer.Option(None, help="Input size (default: record.json beside the model)."),
    mean: str | None = typer.Option(None, help="Per-channel mean, 1 or 3 comma-separated values."),
    std: str | None = typer.Option(None, help="Per-channel std, 1 or 3 comma-separated values."),
    preset: str | None = typer.Option(None, help=PRESET_HELP),
    json_out: Path | None = typer.Option(None, "--json", help="Write the predictions as JSON here."),
    explain: Path | None = typer.Option(None, "--explain", help="Also write occlusion overlays and maps here "
                                        "(.tflite only; as `mdx explain --out`)."),
) -> None:
    """Top-K classes with probabilities for images, and each image's class at the decision threshold."""
    from mdx.runtime.cli import predict_rows
    from mdx.runtime.decision import decide
    from mdx.runtime.model_info import check_class_count, load_model_info
    from mdx.runtime.predict import PredictResult, decided_classes, load_inputs, predict_images, top_k

    config = _config(runtime, None, False, size, mean, std, labels, preset, threshold=threshold)
    if explain is not None and _is_keras(model):
        raise ConfigError(f"--explain needs a .tflite model, not {model}; convert it (`mdx convert`) or drop --explain")
    if _is_keras(model):
        top_k([[0.0]], ("",), top)  # refuse a bad --top before loading TensorFlow
        model_file, predict_proba = _keras_model(model)
        # the train record beside model.keras carries the threshold, as a convert record does
        info = load_model_info(model_file, config.preprocessing_overrides(), config.labels, threshold=threshold)
        if info.preprocessing is None:  # load_model_info requires it here; this narrows the type
            raise ConfigError("no preprocessing; pass --size, --mean and --std")
        decision = decide(info.decision, info.labels)
        probs = predict_proba(load_inputs(images, info.preprocessing))
        check_class_count(info, probs.shape[1], model_file)
        rows = top_k(probs, info.labels, top)
        result = PredictResult(str(model), None, info.labels, tuple(str(p) for p in images), tuple(map(tuple, rows)),
                               decided_classes(probs, info.labels, decision), decision)
    else:
        from mdx.runtime.cli import probe_models

        probe_models(model, runtime=runtime)
        bound_heap_growth()
        result = predict_images(model, images, config, top)
    title = (f"{model.name}" + (f", {result.runtime}" if result.runtime else "") + f", {result.decision.describe()}"
             + _logits_note(result.output_kind))
    payload = result.to_dict()
    # the path folds, the decisions never wrap: a long path must not squeeze "PNEUMONIA 0.5963" over two lines
    headers = (Column("image", overflow="fold", min_width=16), Column("class", no_wrap=True), Column(f"top {top}", no_wrap=True))
    _print_table(title, headers, predict_rows(payload))
    _write_json(json_out, payload)
    if explain is not None:
        from mdx.runtime.explain import ExplainConfig

        write_explanations(model, images, config, ExplainConfig(), explain, overwrite=False)


@app.command("bench")
def bench_command(
    model: Path = typer.Argument(..., help=".tflite model."),
    threads: str = typer.Option("1", help="Thread counts to time, e.g. 1,2,4."),
    warmup: int = typer.Option(5, help="Untimed invokes before timing."),
    runs: int = typer.Option(50, help="Timed invokes (at least)."),
    min_seconds: float = typer.Option(0.0, help="Keep timing until at least this long."),
    no_xnnpack: bool = typer.Option(False, "--no-xnnpack", help="Run without the default XNNPACK delegate."),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full result as JSON here."),
    host: str | None = typer.Option(None, "--host", help="Run on a board over SSH (user@board): copies runtime/ "
                                    "and the model there, runs `python -m runtime bench`, brings the JSON back."),
    remote_python: str = typer.Option("python3", help="With --host: the board's Python (with numpy and an interpreter)."),
    ssh_option: list[str] = typer.Option([], "--ssh-option", help="With --host: extra ssh options, e.g. '-p 2222'."),
    remote_timeout: float = typer.Option(900.0, help="With --host: seconds one ssh step may take."),
) -> None:
    """Latency (init, first invoke, p50/p90/p99), peak RSS and size of a .tflite model, here or on a board (--host)."""
    from mdx.runtime.bench import BenchConfig, bench
    from mdx.runtime.cli import BENCH_HEADERS, bench_rows, parse_threads, probe_models

    config = BenchConfig(threads=parse_threads(threads), warmup=warmup, runs=runs, min_seconds=min_seconds,
                         xnnpack=not no_xnnpack, runtime=runtime)
    if host is not None:
        from mdx.runtime.remote import bench_remote

        result = bench_remote(model, config, _remote_config(host, remote_python, ssh_option, remote_timeout))
    else:
        probe_models(model, runtime=runtime)
        result = bench(model, config).to_dict()
    facts = result["model"]
    where = f" on {host}" if host else ""
    title = (f"{model.name}{where}: latency in ms, {facts['bytes']} bytes ({facts['gzip_bytes']} gzipped), "
             f"{result['runtime']['package']} {result['runtime']['version']}, peak RSS {result['peak_rss_mb']} MB")
    _print_table(title, BENCH_HEADERS, bench_rows(result))
    _write_json(json_out, result)


@app.command("check")
def check_command(
    candidate: Path = typer.Argument(..., help=".tflite model under test."),
    data: Path = typer.Argument(..., help="Folder with one sub-folder per class, or an .npz with inputs and labels."),
    reference: Path = typer.Option(..., "--reference", help="The model it must match: .tflite or .keras."),
    max_acc_drop: float = typer.Option(1.0, help="Largest accuracy drop allowed, in percentage points."),
    max_auc_drop: float = typer.Option(0.01, help="Largest ROC AUC drop allowed."),
    min_agreement: float = typer.Option(0.98, help="Smallest fraction of samples with the same predicted class."),
    max_prob_diff: float | None = typer.Option(None, help="Largest absolute probability difference allowed."),
    explain_sample: int = typer.Option(0, help="Compare both models' occlusion maps on this many images, "
                                       "spread over the classes (0: off; see docs/explain.md)."),
    min_explanation_agreement: float | None = typer.Option(
        None, help="Smallest mean Spearman correlation of the two models' maps (exit 3 below it); "
                   "explains 16 images unless --explain-sample is given."),
    max_border_share: float = typer.Option(0.5, help="Warn of a shortcut when the candidate's mean share of "
                                           "attribution in the image border (outer 10%), over all images or "
                                           "one class's, is above this."),
    patch: int | None = typer.Option(None, help=PATCH_HELP),
    stride: int | None = typer.Option(None, help=STRIDE_HELP),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    size: int | None = typer.Option(None, help="Input size (default: record.json beside the candidate)."),
    mean: str | None = typer.Option(None, help="Per-channel mean, 1 or 3 comma-separated values."),
    std: str | None = typer.Option(None, help="Per-channel std, 1 or 3 comma-separated values."),
    preset: str | None = typer.Option(None, help=PRESET_HELP),
    labels: str | None = typer.Option(None, help="Labels file (one per line) or NAME,NAME,..."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP + " Decides both models."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the 95% CIs (0: none)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full result as JSON here."),
    host: str | None = typer.Option(None, "--host", help="Run the check on a board over SSH (user@board): int8 "
                                    "outputs differ between CPUs, so prove parity where the model will run."),
    remote_python: str = typer.Option("python3", help="With --host: the board's Python (with numpy and an interpreter)."),
    ssh_option: list[str] = typer.Option([], "--ssh-option", help="With --host: extra ssh options, e.g. '-p 2222'."),
    remote_timeout: float = typer.Option(900.0, help="With --host: seconds one ssh step may take."),
) -> None:
    """Parity gate: a candidate model against its reference, here or on a board (--host); exits 3 when a tolerance fails."""
    from mdx.runtime.check import check
    from mdx.runtime.cli import decision_text, explanation_rows, parity_rows, probe_models
    from mdx.runtime.explain_parity import ExplanationCheck
    from mdx.runtime.parity import Tolerances

    tolerances = Tolerances(max_acc_drop_pt=max_acc_drop, max_auc_drop=max_auc_drop, min_agreement=min_agreement,
                            max_prob_diff=max_prob_diff)
    explanations = ExplanationCheck(sample=explain_sample, patch=patch, stride=stride,
                                    min_agreement=min_explanation_agreement, max_border_share=max_border_share)
    config = _config(runtime, None, False, size, mean, std, labels, preset, n_boot=n_boot, threshold=threshold)
    if host is not None:
        result = _check_on_host(candidate, reference, data, tolerances, config,
                                _remote_config(host, remote_python, ssh_option, remote_timeout), explanations)
        where = f" on {host}"
    else:
        reference_predict = None
        probe_models(candidate, *([] if _is_keras(reference) else [reference]), runtime=runtime)
        bound_heap_growth()
        if _is_keras(reference):
            reference, reference_predict = _keras_model(reference)
        result = check(candidate, reference, data, config, tolerances, reference_predict=reference_predict,
                       explanations=explanations).to_dict()
        where = ""
    parity = result["parity"]
    title = (f"{candidate.name} vs {reference.name}{where}: {parity['n']} samples, "
             f"{result['runtime']['package']} {result['runtime']['version']}, {decision_text(result)}")
    for warning in result["warnings"]:
        log(f"warning: {warning}")
    rows = parity_rows(parity) + explanation_rows(result.get("explanation"))
    _print_table(title, ("metric", "reference", "candidate", "delta"), rows)
    if parity["flips"]:
        out.print("flips (reference -> candidate): " + ", ".join(
            f"{a} -> {b}: {n}" for a, row in parity["flips"].items() for b, n in row.items()))
    _write_json(json_out, result)
    if not result["passed"]:
        raise ParityError(result["summary"])
    log(result["summary"])


def _show(result: Any, folder: Path, overwrite: bool, how: str) -> dict:
    """Save `result` (overlays, maps, explain.json) in `folder` and print its table; returns the result dict."""
    from mdx.runtime.cli import EXPLAIN_HEADERS, decision_text, explain_rows

    result.save(folder, overwrite=overwrite)
    payload = result.to_dict()
    count = len(payload["images"])
    title = f"{Path(payload['model']['path']).name}: {how}, {decision_text(payload)}, {count} images in {payload['seconds']:.1f} s"
    headers = (Column("image", overflow="fold", min_width=16), *EXPLAIN_HEADERS[1:])
    _print_table(title, headers, explain_rows(payload))
    log(f"explain: saved {count} overlays (.png) and maps (.npy) to {folder}")
    return payload


def write_explanations(model: Path, images: list[Path], config: Any, explain: Any, folder: Path, overwrite: bool) -> dict:
    """Occlusion maps of `images`, saved in `folder` and printed; returns the result dict."""
    from mdx.runtime.explain import explain_images

    result = explain_images(model, images, config, explain)
    o = result.occlusion
    return _show(result, folder, overwrite, f"occlusion patch {o.patch} stride {o.stride}")


def _remote_config(host: str, python: str, ssh_option: list[str], timeout: float):
    import shlex

    from mdx.runtime.remote import RemoteConfig

    return RemoteConfig(host, python, tuple(token for option in ssh_option for token in shlex.split(option)), timeout)


def _check_on_host(candidate: Path, reference: Path, data: Path, tolerances: Any, config: Any, remote: Any,
                   explanations: Any) -> dict:
    """`mdx check` run by the copied harness on the host, with the same tolerances and preprocessing options."""
    from mdx.errors import ConfigError
    from mdx.runtime.remote import check_remote

    if _is_keras(reference):
        raise ConfigError(f"--reference {reference} is a Keras model, which a board cannot run (no TensorFlow there); "
                          "pass the fp32 .tflite as --reference")
    args = ["--max-acc-drop", str(tolerances.max_acc_drop_pt), "--max-auc-drop", str(tolerances.max_auc_drop),
            "--min-agreement", str(tolerances.min_agreement), "--runtime", config.runtime, "--n-boot", str(config.n_boot)]
    if tolerances.max_prob_diff is not None:
        args += ["--max-prob-diff", str(tolerances.max_prob_diff)]
    if explanations.enabled:
        args += ["--explain-sample", str(explanations.sample), "--max-border-share", str(explanations.max_border_share)]
        for option, value in (("--min-explanation-agreement", explanations.min_agreement),
                              ("--patch", explanations.patch), ("--stride", explanations.stride)):
            if value is not None:
                args += [option, str(value)]
    for option, value in (("--size", config.size), ("--mean", config.mean), ("--std", config.std),
                          ("--threshold", config.threshold)):
        if value is not None:
            args += [option, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    if config.labels is not None:
        args += ["--labels", ",".join(config.labels)]
    return check_remote(candidate, reference, data, args, remote)
