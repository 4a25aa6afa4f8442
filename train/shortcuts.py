"""Shortcut warnings: does a property that is not the diagnosis predict the class?

If one class's images are larger, brighter, PNG instead of JPEG, or carry a marker in a corner, a
network learns that instead of the disease, and test accuracy on the same source hides it. For each
property, a one-feature classifier (quantile bins of the train images, each bin voting for the class
most over-represented in it) is scored by its balanced accuracy in stratified 5-fold cross-validation
on train. Far above chance (by default halfway from chance to perfect) is a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NUMERIC_PROPERTIES = {
    "width": "original width",
    "height": "original height",
    "aspect": "aspect ratio",
    "file_bytes": "file size",
    "brightness": "mean brightness",
    "corner_highlights": "bright corner pixels (markers, text)",
}
CATEGORICAL_PROPERTIES = {"mode": "image mode", "format": "file format"}
BINS = 16  # fine enough to follow a class boundary, coarse enough to hold a few images each
FOLDS = 5


@dataclass(frozen=True)
class Shortcut:
    """How well one property alone predicts the class on train, against chance (1 / classes)."""

    property: str
    description: str
    balanced_accuracy: float
    chance: float
    threshold: float
    flagged: bool
    by_class: dict[str, Any]  # class -> the property's median (numeric) or its most common value

    def warning(self) -> str:
        return (f"shortcut: the {self.description} alone predicts the class with balanced accuracy "
                f"{self.balanced_accuracy:.2f} on train (chance {self.chance:.2f}; per class {self.by_class}); "
                "a model may learn it instead of the diagnosis: check where the images of each class come from")


def shortcuts(facts: Sequence[Any], classes: Sequence[str], margin: float, seed: int) -> list[Shortcut]:
    """One `Shortcut` per property of `facts` (train images' ImageFacts), strongest first."""
    if len(facts) < 2 * FOLDS:
        return []
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[f.label] for f in facts])
    present = np.unique(labels)
    chance = 1.0 / len(present)
    threshold = chance + margin * (1.0 - chance)
    found = []
    for name, description in {**NUMERIC_PROPERTIES, **CATEGORICAL_PROPERTIES}.items():
        raw = [getattr(f, name) if name != "aspect" else f.width / f.height for f in facts]
        if name in CATEGORICAL_PROPERTIES:
            values = np.unique(np.array(raw, dtype=object).astype(str), return_inverse=True)[1].astype(np.float64)
        else:
            values = np.asarray(raw, dtype=np.float64)
        if np.all(values == values[0]):
            score = chance
        else:
            score = cross_validated_balanced_accuracy(values, labels, name in CATEGORICAL_PROPERTIES, seed)
        found.append(Shortcut(name, description, round(score, 3), round(chance, 3), round(threshold, 3),
                              score >= threshold, _per_class(raw, labels, classes, name in CATEGORICAL_PROPERTIES)))
    return sorted(found, key=lambda s: -s.balanced_accuracy)


def cross_validated_balanced_accuracy(values: np.ndarray, labels: np.ndarray, categorical: bool, seed: int) -> float:
    """Balanced accuracy of the one-feature bin classifier, each image predicted by the folds it is not in."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):  # stratified: each class dealt round the folds
        members = np.flatnonzero(labels == label)
        folds[rng.permutation(members)] = np.arange(len(members)) % FOLDS
    predicted = np.empty_like(labels)
    for fold in range(FOLDS):
        held = folds == fold
        predicted[held] = _fit_predict(values[~held], labels[~held], values[held], categorical)
    return balanced_accuracy(labels, predicted)


def _fit_predict(train_values: np.ndarray, train_labels: np.ndarray, values: np.ndarray, categorical: bool) -> np.ndarray:
    classes = np.unique(train_labels)
    if categorical:
        edges = np.unique(train_values)
        train_bins, bins = np.searchsorted(edges, train_values), np.searchsorted(edges, values)
        n_bins = len(edges) + 1
    else:
        edges = np.unique(np.quantile(train_values, np.linspace(0, 1, BINS + 1)[1:-1]))
        train_bins, bins = np.digitize(train_values, edges), np.digitize(values, edges)
        n_bins = len(edges) + 1
    # each class's share of the bin over its share of train: balanced, so the majority class wins no bin by size
    counts = np.zeros((n_bins, len(classes)))
    for column, label in enumerate(classes):
        np.add.at(counts[:, column], train_bins[train_labels == label], 1.0)
    rates = (counts + 0.5) / (counts.sum(axis=0, keepdims=True) + 0.5 * n_bins)
    return classes[np.argmax(rates[np.clip(bins, 0, n_bins - 1)], axis=1)]


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over classes of each class's recall."""
    return float(np.mean([np.mean(predicted[labels == label] == label) for label in np.unique(labels)]))


def _per_class(raw: list, labels: np.ndarray, classes: Sequence[str], categorical: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for index, name in enumerate(classes):
        values = [v for v, label in zip(raw, labels) if label == index]
        if not values:
            continue
        if categorical:
            kinds, counts = np.unique(np.array(values, dtype=str), return_counts=True)
            summary[name] = str(kinds[np.argmax(counts)])
        else:
            summary[name] = round(float(np.median(values)), 2)
    return summary
