"""How a model's probabilities become a class: the binary decision threshold, and where it came from.

`mdx train` chooses the threshold on validation; convert writes it into each variant's record.json and
into the .tflite ("mdx_decision" metadata), so that evaluate, check and predict decide as the pipeline
and the Android app do. Precedence: --threshold, else the threshold recorded with the model, else 0.5
for two classes and the argmax for more. The threshold applies to P(class `positive_index`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ModelLoadError, UsageError
from .metrics import predict_classes

DEFAULT_THRESHOLD = 0.5
DEFAULT = "default"
ARGMAX = "argmax"
OVERRIDE = "--threshold"


def is_probability(value: Any) -> bool:
    """A real number in [0, 1] (not a bool, NaN or string): what a threshold must be wherever it is read."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0


@dataclass(frozen=True)
class Decision:
    """A threshold on P(positive) (None: the argmax) and where it came from.

    Two decisions are equal when they decide alike: `source` and `rule` are not compared.
    """

    threshold: float | None
    positive_index: int | None = 1
    source: str = field(default=DEFAULT, compare=False)
    rule: str | None = field(default=None, compare=False)

    def describe(self) -> str:
        """'threshold 0.44 (model metadata)', 'threshold 0.5 (default)', or 'argmax'."""
        return ARGMAX if self.threshold is None else f"threshold {self.threshold:g} ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "positive_index": self.positive_index, "source": self.source,
                "rule": self.rule}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """The inverse of `to_dict` (a result read back from JSON, e.g. from a board)."""
        return cls(data["threshold"], data["positive_index"], data["source"], data.get("rule"))

    def classes(self, probs: np.ndarray) -> np.ndarray:
        """The predicted class of each row of probabilities."""
        return predict_classes(probs, self.threshold, self.positive_index)


def parse_recorded(data: Any, source: str, fix: str) -> Decision:
    """A Decision from a stored {"threshold", "positive_index"?, "rule"?} (record.json or model metadata).

    Raises:
        ModelLoadError: one line naming `source`, the bad value and `fix`.
    """
    if not isinstance(data, dict):
        raise ModelLoadError(f"{source}: decision {data!r} is not an object with a threshold; {fix}")
    threshold, index = data.get("threshold"), data.get("positive_index", 1)
    if not is_probability(threshold):
        raise ModelLoadError(f"{source}: threshold {threshold!r} is invalid; expected a probability in [0, 1]; {fix}")
    if index not in (0, 1) or isinstance(index, bool):
        raise ModelLoadError(f"{source}: positive_index {index!r} is invalid; expected 0 or 1; {fix}")
    rule = data.get("rule")
    return Decision(float(threshold), int(index), source, None if rule is None else str(rule))


def decide(recorded: Decision | None, labels: tuple[str, ...], positive_index: int | None = None) -> Decision:
    """The decision to apply: `recorded` (an explicit --threshold or the model's own), else the default.

    Args:
        recorded: what load_model_info found (None when nothing gives a threshold).
        labels: the model's classes.
        positive_index: the class --positive-class names, if any.

    Raises:
        UsageError: a threshold or --positive-class for more than 2 classes, or a --positive-class other
            than the class the recorded threshold applies to (without a --threshold of its own).
    """
    if len(labels) != 2:
        if positive_index is not None:
            raise UsageError(f"--positive-class applies to 2 classes only; this model has {len(labels)} (argmax is used)")
        if recorded is not None:
            raise UsageError(f"a threshold applies to 2 classes only; {recorded.source} gives {recorded.threshold:g} "
                             f"for the {len(labels)} classes {list(labels)} (argmax is used): drop it")
        return Decision(None, None, ARGMAX)
    if recorded is None:
        return Decision(DEFAULT_THRESHOLD, 1 if positive_index is None else positive_index, DEFAULT)
    if recorded.source == OVERRIDE:
        return Decision(recorded.threshold, 1 if positive_index is None else positive_index, OVERRIDE, recorded.rule)
    if positive_index is not None and positive_index != recorded.positive_index:
        raise UsageError(
            f"the threshold {recorded.threshold:g} from {recorded.source} applies to P({labels[recorded.positive_index or 0]}),"
            f" not P({labels[positive_index]}); pass --threshold too when choosing --positive-class {labels[positive_index]}"
        )
    return recorded
