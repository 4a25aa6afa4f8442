"""Classification metrics with 95% bootstrap confidence intervals, in numpy alone.

Conventions (shared by training, evaluation and parity):

* Binary (2 classes): the positive class is index 1 unless `positive_index` says otherwise (with
  alphabetical class folders, PNEUMONIA). A sample is predicted positive when P(positive) >= threshold
  (0.5 by default). Precision, sensitivity, specificity and F1 are those of the positive class.
* Multi-class: the prediction is the argmax; precision, sensitivity, specificity, F1 and AUC are the
  unweighted mean over classes (macro, one-vs-rest), and `per_class` gives each class's own values.
* A ratio whose denominator is 0 (e.g. precision when nothing is predicted positive) is undefined and
  reported as None, never as 0; a macro mean is None when any class's value is.
* ROC AUC is the Mann-Whitney statistic: P(score of a positive > score of a negative), ties counting 1/2.
* CIs are percentile bootstrap intervals (2.5th and 97.5th percentiles over `n_boot` resamples of the
  samples, seeded), over the resamples where the metric is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputDataError, UsageError

SCALARS = ("accuracy", "precision", "sensitivity", "specificity", "f1", "auc")
PER_CLASS = ("precision", "sensitivity", "specificity", "f1", "auc")
# Resample weights are built in chunks of at most this many cells. About ten float64 arrays of a chunk's
# size are alive at once (draws, counts, weights, the AUC's reordered copies): 1M cells peak near 80 MB
# (4M peaked at 250 MB from 6,240 samples on) and run no slower. The draws do not depend on the chunking.
_MAX_BOOT_CELLS = 1_000_000


def _as_binary(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise InputDataError(f"labels {y.shape} and scores {s.shape} must be 1-D arrays of the same length")
    if y.size and not np.isin(y, (0, 1)).all():
        raise InputDataError(f"binary labels must be 0/1 (1 = positive); got values {sorted(set(np.unique(y).tolist()))[:5]}")
    if not np.isfinite(s).all():
        raise InputDataError("scores contain NaN or infinite values")
    return y.astype(bool), s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(labels: Any, scores: Any) -> float:
    """ROC AUC by the rank (Mann-Whitney U) formula with average ranks for ties.

    Args:
        labels: 0/1 per sample (1 = positive).
        scores: higher means more positive.

    Returns:
        AUC in [0, 1], or NaN when one of the two classes is absent.
    """
    y, s = _as_binary(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates when predicting positive for score >= threshold.

    Returns:
        (fpr, tpr, thresholds): thresholds are +inf (nothing positive) and then every distinct score,
        descending, so the curve runs from (0, 0) to (1, 1).

    Raises:
        InputDataError: only one class is present (the rates are undefined).
    """
    y, s = _as_binary(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputDataError(f"ROC needs both classes; got {n_pos} positive and {n_neg} negative samples")
    order = np.argsort(-s, kind="mergesort")
    ordered, hits = s[order], y[order]
    last_of_group = np.r_[ordered[1:] != ordered[:-1], True]
    tp = np.cumsum(hits)[last_of_group]
    fp = np.cumsum(~hits)[last_of_group]
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, ordered[last_of_group]]


THRESHOLD_RULE = "Youden's J on validation, one-standard-error rule toward 0.5"


def youden_threshold(labels: Any, probs_positive: Any, *, default: float = 0.5) -> float:
    """The decision threshold by Youden's J = sensitivity + specificity - 1, with the one-SE rule.

    Thresholds whose J is within one binomial standard error of the best J are equally supported by
    the validation data; of those, the one nearest `default` (0.5, the rule a class-weighted model was
    trained for) wins, and `default` itself when it qualifies. Plain argmax-J picks an arbitrary
    extreme when validation is nearly separable (AUC 0.998 on the chest X-rays) and that choice does
    not carry to a shifted test set.

    Raises:
        InputDataError: only one class is present.
    """
    fpr, tpr, thresholds = roc_curve(labels, probs_positive)
    # the +inf threshold predicts nothing positive: never a useful operating point
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
    y = np.asarray(labels).astype(bool)
    scores = np.asarray(probs_positive, dtype=np.float64)
    j = tpr - fpr
    best = int(np.argmax(j))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    se = float(np.sqrt(tpr[best] * (1 - tpr[best]) / n_pos + fpr[best] * (1 - fpr[best]) / n_neg))
    floor = j[best] - se - 1e-12
    j_default = float(np.mean(scores[y] >= default) - np.mean(scores[~y] >= default))
    if j_default >= floor:
        return float(default)
    supported = np.flatnonzero(j >= floor)
    return float(thresholds[supported[int(np.argmin(np.abs(thresholds[supported] - default)))]])


def predict_classes(probs: np.ndarray, threshold: float | None = None, positive_index: int | None = None) -> np.ndarray:
    """Predicted class per row: the threshold rule for 2 classes, the argmax otherwise (see module docstring)."""
    probs = np.asarray(probs)
    if probs.shape[1] != 2:
        return probs.argmax(axis=1)
    pos = 1 if positive_index is None else positive_index
    return np.where(probs[:, pos] >= (0.5 if threshold is None else threshold), pos, 1 - pos)


def _validate(labels: Any, probs: Any, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    names = tuple(str(c) for c in class_names)
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=np.float64)
    if len(names) < 2:
        raise UsageError(f"class_names {list(names)} must name at least 2 classes")
    if p.ndim != 2 or p.shape[1] != len(names):
        raise InputDataError(f"probabilities have shape {p.shape}; expected (N, {len(names)}) for classes {list(names)}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise InputDataError(f"labels have shape {y.shape}; expected ({p.shape[0]},), one per row of probabilities")
    if y.size == 0:
        raise InputDataError("no samples: metrics need at least one labelled sample")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(names):
        raise InputDataError(f"labels must be class indices 0..{len(names) - 1}; got values {sorted(set(np.unique(y).tolist()))[:5]}")
    if not np.isfinite(p).all():
        raise InputDataError("probabilities contain NaN or infinite values")
    return y.astype(np.int64), p, names


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of `weights` (B, n), sample i counted weights[b, i] times; NaN where a class is absent.

    Equal to `roc_auc` for weights of ones: sum over tied-score groups of positives x (negatives
    below + half the negatives tied), over positives x negatives.
    """
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    return _ratio((pos * (neg_below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1))


def _metrics(y: np.ndarray, pred: np.ndarray, probs: np.ndarray, pos: int | None, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of `weights` (B, n): scalars (B,) and per-class values (B, K)."""
    k = probs.shape[1]
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + pred] = 1.0
    cm = (weights @ cells).reshape(-1, k, k)  # cm[b, true, predicted]
    tp = np.diagonal(cm, axis1=1, axis2=2)
    actual, predicted, total = cm.sum(axis=2), cm.sum(axis=1), cm.sum(axis=(1, 2))
    fn, fp = actual - tp, predicted - tp
    tn = total[:, None] - tp - fn - fp
    per_class = {
        "precision": _ratio(tp, tp + fp),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": np.stack([_weighted_auc(probs[:, c], y == c, weights) for c in range(k)], axis=1),
    }
    result: dict[str, np.ndarray] = {"accuracy": _ratio(tp.sum(axis=1), total)}
    for name, values in per_class.items():
        result[name] = values[:, pos] if pos is not None else values.mean(axis=1)  # NaN if any class is NaN
        result["class_" + name] = values
    return result


def _resample_weights(n: int, n_boot: int, rng: np.random.Generator):
    """Yield (chunk, n) matrices counting how often each sample is drawn in each bootstrap resample."""
    chunk = max(1, _MAX_BOOT_CELLS // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _scalar(value: float, samples: np.ndarray | None) -> dict[str, Any]:
    ci = None
    if samples is not None:
        defined = samples[np.isfinite(samples)]
        if defined.size:
            ci = [float(v) for v in np.percentile(defined, [2.5, 97.5])]
    return {"value": None if not np.isfinite(value) else float(value), "ci95": ci}


def classification_metrics(
    labels: Any,
    probs: Any,
    class_names: Sequence[str],
    threshold: float | None = None,
    positive_index: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy, precision, sensitivity, specificity, F1 and ROC AUC with 95% bootstrap CIs.

    Args:
        labels: true class index per sample (N,).
        probs: class probabilities (N, K), columns in `class_names` order.
        class_names: the K class names.
        threshold: binary only; P(positive) at or above it predicts positive (default 0.5).
        positive_index: binary only; the positive class (default 1).
        n_boot: bootstrap resamples (0: no CIs).
        seed: seeds the resampling.

    Returns:
        {"n", "classes", "average", "positive_class", "threshold", <each of SCALARS>: {"value", "ci95"},
        "per_class": {name: {<each of PER_CLASS>: {"value", "ci95"}}}, "confusion_matrix" (rows true,
        columns predicted), "bootstrap": {"n_boot", "seed"}}.

    Raises:
        InputDataError: labels or probabilities are malformed.
        UsageError: an option is invalid, or threshold/positive_index are given for more than 2 classes.
    """
    y, p, names = _validate(labels, probs, class_names)
    k = len(names)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise UsageError(f"n_boot={n_boot!r} is invalid; expected an integer >= 0 (0 disables the CIs)")
    pos: int | None = None
    if k == 2:
        pos = 1 if positive_index is None else int(positive_index)
        if pos not in (0, 1):
            raise UsageError(f"positive_index={positive_index!r} is invalid; expected 0 or 1 for 2 classes")
        threshold = 0.5 if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"threshold={threshold} is invalid; expected a probability in [0, 1]")
    elif threshold is not None or positive_index is not None:
        raise UsageError(f"threshold and positive_index apply to 2 classes only; this model has {k} (argmax is used)")
    pred = predict_classes(p, threshold, pos)
    point = _metrics(y, pred, p, pos, np.ones((1, len(y))))
    boot: dict[str, np.ndarray] | None = None
    if n_boot:
        parts = [_metrics(y, pred, p, pos, w) for w in _resample_weights(len(y), int(n_boot), np.random.default_rng(seed))]
        boot = {key: np.concatenate([part[key] for part in parts]) for key in point}
    result: dict[str, Any] = {
        "n": len(y),
        "classes": list(names),
        "average": "binary" if pos is not None else "macro",
        "positive_class": names[pos] if pos is not None else None,
        "threshold": threshold,
    }
    for name in SCALARS:
        result[name] = _scalar(point[name][0], None if boot is None else boot[name])
    result["per_class"] = {
        cls: {m: _scalar(point["class_" + m][0, c], None if boot is None else boot["class_" + m][:, c]) for m in PER_CLASS}
        for c, cls in enumerate(names)
    }
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    result["confusion_matrix"] = cm.tolist()
    result["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "method": "percentile"}
    return result
