"""Parity of a candidate model against its reference on the same samples: deltas, agreement, flips.

`compare` only measures and lists the tolerances that failed; raising (ToleranceError, exit code 3)
is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InputDataError, UsageError
from .metrics import SCALARS, classification_metrics, predict_classes

# Float noise must not fail a check that holds exactly (e.g. a 1.0 pt drop against a 1.0 pt limit).
_SLACK = 1e-9


@dataclass(frozen=True)
class Tolerances:
    """How far a candidate may fall behind its reference.

    max_acc_drop_pt: accuracy drop, in percentage points. max_auc_drop: ROC AUC drop (absolute).
    min_agreement: fraction of samples whose predicted class is the same for both models.
    max_prob_diff: largest absolute difference of any probability (None: not checked).
    """

    max_acc_drop_pt: float = 1.0
    max_auc_drop: float = 0.01
    min_agreement: float = 0.98
    max_prob_diff: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_acc_drop_pt", "max_auc_drop", "min_agreement"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise UsageError(f"tolerance {name}={value!r} is invalid; expected a number >= 0")
        if self.max_acc_drop_pt > 100:
            raise UsageError(f"tolerance max_acc_drop_pt={self.max_acc_drop_pt} is invalid; accuracy points range 0..100")
        if self.max_auc_drop > 1 or self.min_agreement > 1:
            raise UsageError(
                f"tolerances max_auc_drop={self.max_auc_drop}, min_agreement={self.min_agreement} must be in [0, 1]"
            )
        if self.max_prob_diff is not None and not 0 <= self.max_prob_diff <= 1:
            raise UsageError(f"tolerance max_prob_diff={self.max_prob_diff} is invalid; expected a value in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {"max_acc_drop_pt": self.max_acc_drop_pt, "max_auc_drop": self.max_auc_drop,
                "min_agreement": self.min_agreement, "max_prob_diff": self.max_prob_diff}


@dataclass(frozen=True)
class Failure:
    """One failed tolerance: what was measured, its limit, and by how much it missed."""

    name: str
    value: float
    limit: float
    by: float
    unit: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.value:.4g}{self.unit} (limit {self.limit:.4g}{self.unit}, missed by {self.by:.4g}{self.unit})"


@dataclass(frozen=True)
class ParityResult:
    """Reference and candidate metrics, their deltas (candidate - reference), agreement and flips."""

    n: int
    class_names: tuple[str, ...]
    tolerances: Tolerances
    reference: dict[str, Any]
    candidate: dict[str, Any]
    deltas: dict[str, float | None]
    agreement: float
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    flips: dict[str, dict[str, int]]
    failures: tuple[Failure, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: PASS, or FAIL naming every failed tolerance and by how much."""
        if self.passed:
            return f"parity passed on {self.n} samples (agreement {self.agreement:.2%})"
        return f"parity failed on {self.n} samples: " + "; ".join(str(f) for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n": self.n,
            "classes": list(self.class_names),
            "tolerances": self.tolerances.to_dict(),
            "failures": [{"name": f.name, "value": f.value, "limit": f.limit, "by": f.by, "unit": f.unit,
                          "message": str(f)} for f in self.failures],
            "agreement": self.agreement,
            "max_abs_prob_diff": self.max_abs_prob_diff,
            "mean_abs_prob_diff": self.mean_abs_prob_diff,
            "deltas": self.deltas,
            "flips": self.flips,
            "reference": self.reference,
            "candidate": self.candidate,
        }


def _value(metrics: dict[str, Any], name: str) -> float | None:
    return metrics[name]["value"]


def compare(
    reference_probs: np.ndarray,
    candidate_probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    tolerances: Tolerances = Tolerances(),
    *,
    threshold: float | None = None,
    positive_index: int | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> ParityResult:
    """Compare two models' probabilities on the same labelled samples.

    Agreement and flips use each model's predicted class by the same rule as the metrics (the
    threshold for 2 classes, else the argmax). `flips[a][b]` counts samples the reference predicted
    `a` and the candidate `b` (only a != b, only non-zero counts).

    Raises:
        InputDataError: the arrays' shapes differ or do not match the labels and classes.
    """
    ref = np.asarray(reference_probs, dtype=np.float64)
    cand = np.asarray(candidate_probs, dtype=np.float64)
    if ref.shape != cand.shape:
        raise InputDataError(f"reference probabilities {ref.shape} and candidate {cand.shape} differ in shape; "
                             "run both models on the same samples")
    names = tuple(class_names)
    ref_metrics = classification_metrics(labels, ref, names, threshold, positive_index, n_boot, seed)
    cand_metrics = classification_metrics(labels, cand, names, threshold, positive_index, n_boot, seed)
    deltas: dict[str, float | None] = {}
    for name in SCALARS:
        r, c = _value(ref_metrics, name), _value(cand_metrics, name)
        deltas[name] = None if r is None or c is None else c - r
    thr = ref_metrics["threshold"]
    pos = None if ref_metrics["positive_class"] is None else names.index(ref_metrics["positive_class"])
    ref_pred, cand_pred = predict_classes(ref, thr, pos), predict_classes(cand, thr, pos)
    agreement = float(np.mean(ref_pred == cand_pred))
    flips: dict[str, dict[str, int]] = {}
    for a, b in zip(ref_pred[ref_pred != cand_pred], cand_pred[ref_pred != cand_pred]):
        row = flips.setdefault(names[a], {})
        row[names[b]] = row.get(names[b], 0) + 1
    diff = np.abs(ref - cand)
    result = ParityResult(
        n=len(ref), class_names=names, tolerances=tolerances, reference=ref_metrics, candidate=cand_metrics,
        deltas=deltas, agreement=agreement, max_abs_prob_diff=float(diff.max()), mean_abs_prob_diff=float(diff.mean()),
        flips=flips,
    )
    return replace(result, failures=_failures(result))


def _failures(result: ParityResult) -> tuple[Failure, ...]:
    tol = result.tolerances
    failures: list[Failure] = []
    acc = result.deltas["accuracy"]
    if acc is not None and -acc * 100 > tol.max_acc_drop_pt + _SLACK:
        failures.append(Failure("accuracy drop", -acc * 100, tol.max_acc_drop_pt, -acc * 100 - tol.max_acc_drop_pt, " pt"))
    auc = result.deltas["auc"]  # None only when the labels lack a class: then for both models alike
    if auc is not None and -auc > tol.max_auc_drop + _SLACK:
        failures.append(Failure("AUC drop", -auc, tol.max_auc_drop, -auc - tol.max_auc_drop))
    if result.agreement < tol.min_agreement - _SLACK:
        failures.append(Failure("agreement", result.agreement, tol.min_agreement, tol.min_agreement - result.agreement))
    if tol.max_prob_diff is not None and result.max_abs_prob_diff > tol.max_prob_diff + _SLACK:
        failures.append(Failure("max probability difference", result.max_abs_prob_diff, tol.max_prob_diff,
                                result.max_abs_prob_diff - tol.max_prob_diff))
    return tuple(failures)
