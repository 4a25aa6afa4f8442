"""The report's figures, each drawn from the run's files: Pareto plots, ROC overlay, confusion matrices, curves.

A figure whose data is missing is not drawn; the reason goes to the report's notes instead.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdx.errors import ConfigError
from mdx.runtime.files import atomic_write_bytes

if TYPE_CHECKING:
    from mdx.report_facts import RunFacts


@dataclass(frozen=True)
class Figure:
    """A PNG written for the report, with its section title and a caption naming its source files."""

    key: str
    title: str
    path: Path
    caption: str


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("mdx report draws its figures with matplotlib, which is not installed: "
                          "pip install 'mdx[train]' (or matplotlib>=3.8)") from None
    matplotlib.use("Agg")  # no display on CI machines or boards
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _via_helper(draw: Any, path: Path, *args: Any) -> Path:
    """Run a train.plots helper (which writes straight to a path) into a temporary name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.png")
    try:
        draw(*args, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats (lower or equal cost, higher or equal accuracy, one strictly)."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any((c <= cost and a >= acc) and (c < cost or a > acc) for j, (c, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _pareto_plot(names: list[str], cost: list[float], acc: list[float], ci: list[list[float] | None],
                 xlabel: str, path: Path) -> Path:
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(5.5, 4))
    lower = [a - c[0] if c else 0.0 for a, c in zip(acc, ci)]
    upper = [c[1] - a if c else 0.0 for a, c in zip(acc, ci)]
    axis.errorbar(cost, acc, yerr=[lower, upper], fmt="o", capsize=3, label="variant (95% CI)")
    front = pareto_front(list(zip(cost, acc)))
    axis.step([cost[i] for i in front], [acc[i] for i in front], where="post", linestyle="--", color="grey",
              label="Pareto front")
    for name, x, y in zip(names, cost, acc):
        axis.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("test accuracy")
    axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _plot_threads(rows: list[dict[str, Any]]) -> int | None:
    """The thread count to compare at: 1 when any variant was timed with it, else the smallest timed."""
    counts = {t["threads"] for row in rows for t in row["latency"]}
    return None if not counts else (1 if 1 in counts else min(counts))


def _pareto_figures(rows: list[dict[str, Any]], folder: Path, notes: list[str]) -> list[Figure]:
    scored = [r for r in rows if r["metrics"]["accuracy"] is not None]
    if not scored:
        notes.append("no variant was evaluated: the accuracy plots are not drawn")
        return []
    figures = []
    threads = _plot_threads(scored)
    timed = [(r, next(t for t in r["latency"] if t["threads"] == threads)) for r in scored
             if any(t["threads"] == threads for t in r["latency"])]
    if timed:
        path = _pareto_plot([r["variant"] for r, _ in timed], [t["p50_ms"] for _, t in timed],
                            [r["metrics"]["accuracy"]["value"] for r, _ in timed],
                            [r["metrics"]["accuracy"]["ci95"] for r, _ in timed],
                            f"p50 latency (ms), {threads} thread(s)", folder / "latency_vs_accuracy.png")
        left_out = sorted({r["variant"] for r in scored} - {r["variant"] for r, _ in timed})
        caption = (f"p50 latency at {threads} thread(s) from bench/<variant>.json against test accuracy from "
                   f"evaluate/<variant>/evaluation.json." + (f" Not timed at {threads} thread(s): {', '.join(left_out)}."
                                                             if left_out else ""))
        figures.append(Figure("latency_accuracy", "Latency vs accuracy", path, caption))
    else:
        notes.append("no evaluated variant was timed: the latency vs accuracy plot is not drawn")
    path = _pareto_plot([r["variant"] for r in scored], [r["bytes"] / 1e6 for r in scored],
                        [r["metrics"]["accuracy"]["value"] for r in scored],
                        [r["metrics"]["accuracy"]["ci95"] for r in scored], "model size (MB)",
                        folder / "size_vs_accuracy.png")
    figures.append(Figure("size_accuracy", "Size vs accuracy", path,
                          "model.tflite bytes from convert/<variant>/record.json against test accuracy."))
    return figures


def _roc_figure(facts: RunFacts, folder: Path, notes: list[str]) -> list[Figure]:
    from mdx.runtime.errors import InputDataError
    from mdx.runtime.metrics import roc_curve
    from mdx.train import plots

    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for v in facts.variants:
        if v.evaluation is None:
            continue
        metrics = v.evaluation["metrics"]
        if v.predictions is None or metrics.get("average") != "binary":
            notes.append(f"{v.name}: no ROC curve ({'predictions.npz missing' if v.predictions is None else 'not binary'})")
            continue
        with np.load(v.predictions) as data:
            names = [str(c) for c in data["class_names"]]
            positive = names.index(metrics["positive_class"])
            try:
                fpr, tpr, _ = roc_curve(data["labels"] == positive, data["probs"][:, positive])
            except InputDataError as exc:  # a test set with one class has no ROC curve
                notes.append(f"{v.name}: no ROC curve ({exc})")
                continue
        curves[v.name] = (fpr, tpr, float(metrics["auc"]["value"]))
    if not curves:
        return []
    path = _via_helper(plots.roc_plot, folder / "roc.png", curves)
    return [Figure("roc", "ROC curves", path,
                   "From evaluate/<variant>/predictions.npz (P(positive class) against the true labels); "
                   "AUC from evaluation.json.")]


def _threshold(value: float | None) -> str:
    return "argmax" if value is None else f"{value:.4f}"


def _confusion_figures(facts: RunFacts, folder: Path) -> list[Figure]:
    from mdx.train import plots

    figures = []
    for v in facts.variants:
        metrics = (v.evaluation or {}).get("metrics", {})
        if "confusion_matrix" not in metrics:
            continue
        path = _via_helper(plots.confusion_plot, folder / f"confusion_{v.name.replace('/', '_')}.png",
                           metrics["confusion_matrix"], metrics["classes"])
        figures.append(Figure(f"confusion_{v.name}", f"Confusion matrix: {v.name}", path,
                              f"Rows true, columns predicted, at threshold {_threshold(metrics.get('threshold'))} "
                              f"(evaluation.json of {v.name})."))
    return figures


def _history_figures(facts: RunFacts, folder: Path, notes: list[str]) -> list[Figure]:
    from mdx.train import plots

    if not facts.histories:
        notes.append("no train/history.json: training curves are not drawn")
    return [Figure(f"curves_{key}", f"Training curves: {key}",
                   _via_helper(plots.training_curves, folder / f"training_curves_{key}.png", history),
                   f"Per-epoch loss and metrics from {'train' if key == 'train' else key}/history.json.")
            for key, history in facts.histories.items()]


def make_figures(facts: RunFacts, rows: list[dict[str, Any]], folder: Path, notes: list[str]) -> list[Figure]:
    """Draw every figure the run's files allow into `folder`; append a note for each one that cannot be drawn.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    return (_pareto_figures(rows, folder, notes) + _roc_figure(facts, folder, notes)
            + _confusion_figures(facts, folder) + _history_figures(facts, folder, notes))
