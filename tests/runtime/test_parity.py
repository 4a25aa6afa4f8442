"""Parity compare: identical probabilities pass; perturbed ones fail naming the tolerance and by how much."""

from __future__ import annotations

import numpy as np
import pytest

from mdx.runtime.errors import InputDataError, UsageError
from mdx.runtime.parity import Tolerances, compare

NAMES = ("NORMAL", "PNEUMONIA")


@pytest.fixture
def reference() -> tuple[np.ndarray, np.ndarray]:
    """100 samples, 90 right, scores well away from the threshold."""
    rng = np.random.default_rng(5)
    labels = np.array([0, 1] * 50)
    right = np.ones(100, bool)
    right[rng.choice(100, 10, replace=False)] = False
    predicted = np.where(right, labels, 1 - labels)
    scores = np.where(predicted == 1, rng.uniform(0.7, 0.95, 100), rng.uniform(0.05, 0.3, 100))
    return np.stack([1 - scores, scores], axis=1), labels


def test_compare_identical_probabilities_passes(reference) -> None:
    probs, labels = reference
    result = compare(probs, probs.copy(), labels, NAMES)
    assert result.passed and result.failures == ()
    assert result.agreement == 1.0 and result.max_abs_prob_diff == 0.0 and result.flips == {}
    assert all(delta == 0.0 for delta in result.deltas.values())
    assert result.summary() == "parity passed on 100 samples (agreement 100.00%)"


def test_compare_small_noise_within_tolerances_passes(reference) -> None:
    probs, labels = reference
    noisy = np.clip(probs + np.random.default_rng(0).normal(0, 0.004, probs.shape), 0, 1)
    result = compare(probs, noisy, labels, NAMES)
    assert result.passed
    assert 0 < result.max_abs_prob_diff < 0.03


def test_compare_flipped_samples_fail_accuracy_and_agreement(reference) -> None:
    probs, labels = reference
    candidate = probs.copy()
    right = np.flatnonzero(probs.argmax(axis=1) == labels)[:3]  # 3 right answers become wrong
    candidate[right] = candidate[right][:, ::-1]
    result = compare(probs, candidate, labels, NAMES, Tolerances(max_acc_drop_pt=1.0, max_auc_drop=1.0, min_agreement=0.98))
    assert not result.passed
    names = [f.name for f in result.failures]
    assert names == ["accuracy drop", "agreement"]
    assert result.deltas["accuracy"] == pytest.approx(-0.03)
    assert result.failures[0].by == pytest.approx(2.0)
    assert str(result.failures[0]) == "accuracy drop 3 pt (limit 1 pt, missed by 2 pt)"
    assert str(result.failures[1]) == "agreement 0.97 (limit 0.98, missed by 0.01)"
    assert result.agreement == pytest.approx(0.97)
    assert sum(n for row in result.flips.values() for n in row.values()) == 3


def test_compare_flips_counted_per_class_pair() -> None:
    ref = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    cand = np.array([[0.1, 0.9], [0.8, 0.2], [0.9, 0.1], [0.7, 0.3]])
    result = compare(ref, cand, np.array([0, 0, 1, 1]), NAMES)
    assert result.flips == {"NORMAL": {"PNEUMONIA": 1}, "PNEUMONIA": {"NORMAL": 2}}
    assert result.agreement == 0.25


def test_compare_reversed_scores_fail_auc_drop(reference) -> None:
    probs, labels = reference
    result = compare(probs, probs[:, ::-1], labels, NAMES, Tolerances(max_acc_drop_pt=100, max_auc_drop=0.05, min_agreement=0))
    assert [f.name for f in result.failures] == ["AUC drop"]
    assert result.summary().startswith("parity failed on 100 samples: AUC drop ")
    assert "(limit 0.05, missed by" in result.summary()


def test_compare_max_prob_diff_checked_only_when_set(reference) -> None:
    probs, labels = reference
    shifted = probs + np.array([0.02, -0.02])
    assert compare(probs, shifted, labels, NAMES).passed
    result = compare(probs, shifted, labels, NAMES, Tolerances(max_prob_diff=0.01))
    assert [f.name for f in result.failures] == ["max probability difference"]
    assert result.failures[0].by == pytest.approx(0.01)


def test_compare_drop_exactly_at_limit_passes(reference) -> None:
    probs, labels = reference
    candidate = probs.copy()
    first_right = np.flatnonzero(probs.argmax(axis=1) == labels)[:1]
    candidate[first_right] = candidate[first_right][:, ::-1]  # exactly 1.0 pt lower
    result = compare(probs, candidate, labels, NAMES, Tolerances(max_acc_drop_pt=1.0, max_auc_drop=1.0, min_agreement=0.99))
    assert result.passed


def test_compare_to_dict_carries_failures_with_messages(reference) -> None:
    probs, labels = reference
    payload = compare(probs, probs[:, ::-1], labels, NAMES).to_dict()
    assert payload["passed"] is False
    assert {f["name"] for f in payload["failures"]} == {"accuracy drop", "AUC drop", "agreement"}
    assert all("missed by" in f["message"] for f in payload["failures"])


def test_compare_shape_mismatch_refused(reference) -> None:
    probs, labels = reference
    with pytest.raises(InputDataError, match=r"reference probabilities \(100, 2\) and candidate \(99, 2\) differ in shape"):
        compare(probs, probs[:99], labels, NAMES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_acc_drop_pt": -1}, r"tolerance max_acc_drop_pt=-1 is invalid; expected a number >= 0"),
        ({"max_acc_drop_pt": 101}, r"max_acc_drop_pt=101 is invalid; accuracy points range 0\.\.100"),
        ({"min_agreement": 1.5}, r"min_agreement=1\.5 must be in \[0, 1\]"),
        ({"max_auc_drop": float("nan")}, r"tolerance max_auc_drop=nan is invalid"),
        ({"max_prob_diff": 2.0}, r"tolerance max_prob_diff=2\.0 is invalid; expected a value in \[0, 1\]"),
    ],
)
def test_tolerances_invalid_values_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Tolerances(**kwargs)
