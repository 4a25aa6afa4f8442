"""`python -m runtime …`: the harness's own command line (argparse: a board has no typer or rich).

Subcommands evaluate, predict, explain, bench, check and probe print plain tables and can write JSON. Any
harness error becomes one line `error: …` on stderr and its exit code: 1 error, 2 usage, 3 tolerance.
The option parsers and table rows here are shared with `mdx`'s commands.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import RuntimeHarnessError, ToleranceError, UsageError, show_warnings_on_one_line
from .heap import bound_heap_growth
from .interpreter import RUNTIMES
from .metrics import SCALARS
from .preprocess import PRESET_HELP, PRESETS

# ---- option parsing shared with mdx -------------------------------------------------------------

def parse_floats(text: str | None, name: str) -> tuple[float, ...] | None:
    """'127.5' or '123.7,116.3,103.5' -> three floats (one value is used for R, G and B)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise UsageError(f"--{name} {text!r} is invalid; expected 1 or 3 comma-separated numbers, e.g. 127.5") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise UsageError(f"--{name} {text!r} has {len(values)} values; expected 1 or 3 (R,G,B)")
    return values


def parse_threads(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise UsageError(f"--threads {text!r} is invalid; expected comma-separated positive integers, e.g. 1,2,4") from None
    if any(v < 1 for v in values):
        raise UsageError(f"--threads {text!r} is invalid; thread counts must be >= 1")
    return values


def parse_labels(text: str | None) -> tuple[str, ...] | None:
    """--labels: a file with one label per line if such a file exists, else NAME,NAME,..."""
    if text is None:
        return None
    from .model_info import read_labels_file

    if Path(text).is_file():
        return read_labels_file(Path(text))
    if "," not in text and Path(text).suffix:
        raise UsageError(f"--labels {text!r}: no such file; pass a labels file or NAME,NAME,...")
    return tuple(label.strip() for label in text.split(",") if label.strip())


def probe_models(*models: Path, runtime: str) -> None:
    """Load and invoke each .tflite once in a subprocess before this process loads it.

    Costs about 0.3 s per model with ai-edge-litert (a few seconds with `--runtime tf`, which imports TensorFlow).

    A malformed model can crash the interpreter itself (a segfault in allocate_tensors, found by
    fuzzing), which no `except` can catch; probed first, it becomes one `error:` line instead.

    Raises:
        ModelLoadError: a model is invalid, refused, or crashed or hung the interpreter.
    """
    from .interpreter import probe_loadable

    for model in models:
        probe_loadable(Path(model), runtime)


# ---- table rows shared with mdx ---------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, 95% CI) rows for a classification_metrics dict."""
    rows = []
    for name in SCALARS:
        entry = metrics[name]
        ci = entry["ci95"]
        rows.append((name, _pct(entry["value"]), "-" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"))
    return rows


def predict_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(image, class at the decision threshold, top-K) rows for a PredictResult.to_dict()."""
    return [(p["path"], p["class"], ", ".join(f"{t['label']} {t['probability']:.4f}" for t in p["top"]))
            for p in result["predictions"]]


def decision_text(result: dict[str, Any]) -> str:
    """'threshold 0.44 (model metadata)' for an evaluate, check or predict result's "decision"."""
    from .decision import Decision

    return Decision.from_dict(result["decision"]).describe()


def parity_rows(parity: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, reference, candidate, delta) rows for a ParityResult.to_dict()."""
    rows = []
    for name in SCALARS:
        delta = parity["deltas"][name]
        rows.append((name, _pct(parity["reference"][name]["value"]), _pct(parity["candidate"][name]["value"]),
                     "-" if delta is None else f"{delta:+.4f}"))
    rows.append(("agreement", "", f"{parity['agreement']:.4f}", ""))
    rows.append(("max |dp|", "", f"{parity['max_abs_prob_diff']:.4g}", ""))
    rows.append(("mean |dp|", "", f"{parity['mean_abs_prob_diff']:.4g}", ""))
    return rows


EXPLAIN_HEADERS = ("image", "class", "probability", "map max", "border share")


def explain_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows under EXPLAIN_HEADERS for an ExplainResult.to_dict()."""
    return [(e["path"], e["class"], f"{e['probability']:.4f}", f"{e['map_max']:.4f}",
             "-" if e["border_share"] is None else f"{e['border_share']:.3f}") for e in result["images"]]


def explain_config(patch: int | None, stride: int | None, fill: float | None, target: str | None):
    from .explain import ExplainConfig

    return ExplainConfig(patch=patch, stride=stride, fill=fill, target=target)


def explanation_rows(explanation: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Rows under the parity table's headers for a CheckResult's "explanation" (none when not measured)."""
    if explanation is None:
        return []
    rho, iou, border = explanation["spearman"], explanation["top10_iou"], explanation["border_share"]
    show = lambda v: "-" if v is None else f"{v:.4f}"
    delta = lambda c, r: "" if None in (c, r) else f"{c - r:+.4f}"
    flagged = border.get("shortcut_classes", [])
    rows = [(f"map Spearman (n={explanation['n']})", "", f"{rho['mean']:.4f}", f"min {rho['min']:.4f}"),
            ("map top-10% IoU", "", f"{iou['mean']:.4f}", f"min {iou['min']:.4f}"),
            ("map border share", show(border["reference"]), show(border["candidate"]),
             delta(border["candidate"], border["reference"]))]
    for name, share in border["candidate_by_class"].items():  # a marker may give away one class only
        reference = border["reference_by_class"].get(name)
        rows.append((f"  true {name}" + (" (shortcut)" if name in flagged else ""), show(reference), show(share),
                     delta(share, reference)))
    return rows


def explanation_check(args: argparse.Namespace):
    from .explain_parity import ExplanationCheck

    return ExplanationCheck(sample=args.explain_sample, patch=args.patch, stride=args.stride,
                            min_agreement=args.min_explanation_agreement, max_border_share=args.max_border_share)


BENCH_HEADERS = ("threads", "init", "first", "runs", "p50", "p90", "p99", "mean", "std")  # milliseconds


def bench_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows under BENCH_HEADERS for a BenchResult.to_dict()."""
    keys = ("threads", "init_ms", "first_invoke_ms", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms")
    return [tuple(str(t[k]) if isinstance(t[k], int) else _ms(t[k]) for k in keys) for t in result["timings"]]


def _ms(value: float) -> str:
    """Milliseconds in at most 6 characters: 1234, 12.34, 0.0123."""
    return f"{value:.0f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.4f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line("-" * w for w in widths), *(line(r) for r in rows)])


# ---- commands ---------------------------------------------------------------------------------------

def _evaluate_config(args: argparse.Namespace):
    from .evaluate import EvaluateConfig

    batch = {} if args.batch_size is None else {"batch_size": args.batch_size}
    return EvaluateConfig(
        runtime=args.runtime, threads=args.threads, xnnpack=not args.no_xnnpack, **batch,
        workers=args.workers, size=args.size, mean=parse_floats(args.mean, "mean"), std=parse_floats(args.std, "std"),
        labels=parse_labels(args.labels), threshold=args.threshold, positive_class=args.positive_class,
        n_boot=args.n_boot, seed=args.seed, preset=args.preset,
    )


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        from .files import atomic_write_json

        atomic_write_json(Path(path), payload)
        print(f"wrote {path}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    bound_heap_growth()
    config = _evaluate_config(args)
    probe_models(Path(args.model), runtime=config.runtime)
    result = evaluate(Path(args.model), Path(args.data), config)
    m = result.metrics
    print(f"{args.model}: {m['n']} samples, {result.runtime}, outputs {result.output_kind}, "
          f"{result.decision.describe()}, positive {m['positive_class']}")
    for skipped in result.data["skipped"]:
        print(f"skipped {skipped['reason']}", file=sys.stderr)
    print(format_table(("metric", "value", "95% CI"), metric_rows(m)))
    print("confusion (rows true, columns predicted; " + ", ".join(m["classes"]) + "): " + str(m["confusion_matrix"]))
    if args.out:
        result.save(Path(args.out), overwrite=args.overwrite)
        print(f"wrote {args.out}")
    _write_json(args.json, result.to_dict())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_images

    bound_heap_growth()
    config = _evaluate_config(args)
    probe_models(Path(args.model), runtime=config.runtime)
    result = predict_images(Path(args.model), [Path(p) for p in args.images], config, args.top).to_dict()
    logits = ", outputs logits (softmax applied)" if result["outputs"] == "logits" else ""
    print(f"{args.model}: {decision_text(result)}{logits}")
    print(format_table(("image", "class", f"top {args.top}"), predict_rows(result)))
    _write_json(args.json, result)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain_images

    config = _evaluate_config(args)
    explain = explain_config(args.patch, args.stride, args.fill, args.target)
    probe_models(Path(args.model), runtime=config.runtime)
    result = explain_images(Path(args.model), [Path(p) for p in args.images], config, explain)
    result.save(Path(args.out), overwrite=args.overwrite)
    payload = result.to_dict()
    o = payload["occlusion"]
    print(f"{args.model}: occlusion patch {o['patch']} stride {o['stride']}, {decision_text(payload)}, "
          f"{len(payload['images'])} images in {payload['seconds']:.1f} s")
    print(format_table(EXPLAIN_HEADERS, explain_rows(payload)))
    print(f"wrote {len(payload['images'])} overlays (.png) and maps (.npy) to {args.out}")
    _write_json(args.json, payload)
    return 0


def _explain_options(p: argparse.ArgumentParser, fill: bool = True) -> None:
    p.add_argument("--patch", type=int, help="occlusion patch side in pixels (default: a seventh of the input)")
    p.add_argument("--stride", type=int, help="pixels between patch positions (default: the patch)")
    if fill:
        p.add_argument("--fill", type=float, help="pixel value 0..255 the patch is filled with (default: the mean)")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, bench

    config = BenchConfig(threads=parse_threads(args.threads), warmup=args.warmup, runs=args.runs,
                         min_seconds=args.min_seconds, xnnpack=not args.no_xnnpack, runtime=args.runtime)
    probe_models(Path(args.model), runtime=config.runtime)
    result = bench(Path(args.model), config).to_dict()
    model = result["model"]
    print(f"{args.model}: {model['bytes']} bytes ({model['gzip_bytes']} gzipped), "
          f"{result['runtime']['package']} {result['runtime']['version']}, peak RSS {result['peak_rss_mb']} MB")
    print("latency in ms (init: load + allocate; first: the first invoke)")
    print(format_table(BENCH_HEADERS, bench_rows(result)))
    _write_json(args.json, result)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check
    from .parity import Tolerances

    tolerances = Tolerances(max_acc_drop_pt=args.max_acc_drop, max_auc_drop=args.max_auc_drop,
                            min_agreement=args.min_agreement, max_prob_diff=args.max_prob_diff)
    bound_heap_growth()
    config = _evaluate_config(args)
    probe_models(Path(args.candidate), Path(args.reference), runtime=config.runtime)
    result = check(Path(args.candidate), Path(args.reference), Path(args.data), config, tolerances,
                   explanations=explanation_check(args))
    print(f"{args.candidate} vs {args.reference}: {result.parity.n} samples, {result.runtime}, {result.decision.describe()}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    payload = result.to_dict()
    rows = parity_rows(payload["parity"]) + explanation_rows(payload["explanation"])
    print(format_table(("metric", "reference", "candidate", "delta"), rows))
    _write_json(args.json, payload)
    if not result.passed:
        raise ToleranceError(result.summary())
    print(result.summary())
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .interpreter import probe_loadable

    print(f"{args.model}: loads and runs with {probe_loadable(Path(args.model), args.runtime)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one `error: …` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _runtime_options(p: argparse.ArgumentParser, threads: bool = True) -> None:
    p.add_argument("--runtime", default="auto", choices=RUNTIMES, help="interpreter package (default: auto)")
    if threads:
        p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.add_argument("--no-xnnpack", action="store_true", help="run without the default XNNPACK delegate")


def _model_options(p: argparse.ArgumentParser) -> None:
    _runtime_options(p)
    p.add_argument("--size", type=int, help="input size in pixels (default: from record.json beside the model)")
    p.add_argument("--mean", help="per-channel mean, 1 or 3 comma-separated values")
    p.add_argument("--std", help="per-channel std, 1 or 3 comma-separated values")
    p.add_argument("--preset", choices=sorted(PRESETS), help=PRESET_HELP.replace("%", "%%"))
    p.add_argument("--labels", help="labels file (one per line) or NAME,NAME,...")
    p.add_argument("--batch-size", type=int, default=None, help="images per invoke (default 8)")
    p.add_argument("--workers", type=int, default=1, help="interpreters run in parallel threads")
    p.add_argument("--threshold", type=float,
                   help="binary: P(positive) at or above it is positive (default: the model's recorded one, else 0.5)")
    p.add_argument("--positive-class", help="binary: the positive class (default: the second label)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the full result as JSON to this file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m runtime", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("evaluate", help="metrics with 95%% CIs on a folder-per-class tree or an .npz")
    p.add_argument("model")
    p.add_argument("data")
    _model_options(p)
    p.add_argument("--out", help="folder for evaluation.json and predictions.npz")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out result")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("predict", help="top-K classes for images")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=1)
    _model_options(p)
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("explain", help="occlusion maps of images: overlays (.png) and maps (.npy) in --out")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="folder for <image>.png, <image>.npy and explain.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out result")
    p.add_argument("--target", help="class to explain (default: each image's predicted class)")
    _explain_options(p)
    _model_options(p)
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("bench", help="init, first-invoke and invoke latency percentiles")
    p.add_argument("model")
    _runtime_options(p, threads=False)
    p.add_argument("--threads", default="1", help="thread counts, e.g. 1,2,4")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--json", help="write the full result as JSON to this file")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("check", help="parity of a candidate against a reference; exit 3 on a failed tolerance")
    p.add_argument("candidate")
    p.add_argument("data")
    p.add_argument("--reference", required=True)
    _model_options(p)
    p.add_argument("--max-acc-drop", type=float, default=1.0, help="accuracy drop limit, percentage points")
    p.add_argument("--max-auc-drop", type=float, default=0.01)
    p.add_argument("--min-agreement", type=float, default=0.98)
    p.add_argument("--max-prob-diff", type=float, default=None)
    p.add_argument("--explain-sample", type=int, default=0,
                   help="compare both models' occlusion maps on this many images (default 0: off)")
    p.add_argument("--min-explanation-agreement", type=float, default=None,
                   help="mean Spearman correlation of the maps below which the check fails (exit 3); "
                        "samples 16 images unless --explain-sample is given")
    p.add_argument("--max-border-share", type=float, default=0.5,
                   help="warn of a shortcut when the candidate's mean share of attribution in the image border, over "
                        "all images or one class's, is above this")
    _explain_options(p, fill=False)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("probe", help="load and invoke a model in a subprocess (a crash cannot take this one down)")
    p.add_argument("model")
    p.add_argument("--runtime", default="auto", choices=RUNTIMES)
    p.set_defaults(func=cmd_probe)
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (errors print one line, never a traceback)."""
    args = build_parser().parse_args(argv)
    show_warnings_on_one_line()
    if argv is None:  # the real command line: SIGTERM unwinds like Ctrl-C, so no temporary file is left
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except RuntimeHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly, as other command-line tools do
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout again at exit
        return 1
